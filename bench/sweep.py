"""A 24-trial grid run one after another, on 2 local worker processes (joblib/loky) and on Ray.

Run: .venv/bin/python bench/sweep.py [--steps N]
Grid: 4 learning rates x 3 batch sizes x 2 seeds, SGD for N updates (default 1500) of an MLP
16-16 tanh on moons (400 rows); each trial takes ~0.3-0.8 s. It prints each backend's wall time
and its ratio to the sequential run measured in the same process, and checks that every backend
gives bit-identical numbers. Target (issue 18): 2 local workers in at most 0.6x the sequential
time. "cold" includes starting the workers (processes, torch import, first optimizer step);
"warm" reuses them, as the app's second sweep does (loky keeps workers for 300 s); "warmed" runs
right after core.sweep.warm_workers() started a fresh pool (what a page can do when it opens).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("TRAINSCOPE_RAY_ADDRESS", None)  # the bench measures a local Ray

import core  # noqa: E402,F401  (one torch thread)
from core.lab import DataSpec  # noqa: E402
from core.models import ModelSpec  # noqa: E402
from core.sweep import grid, ray_init, run_sweep, run_trial, warm_workers  # noqa: E402
from core.train import TrainConfig  # noqa: E402

N_JOBS = 2
TARGET = 0.6
REPEATS = 2


def numbers(result) -> tuple:
    """Every number of a result but its wall time (NaN made comparable)."""
    fix = lambda x: "nan" if isinstance(x, float) and math.isnan(x) else x  # noqa: E731
    return (fix(result.final_train_loss), fix(result.val_loss), fix(result.val_metric), result.diverged_at,
            result.n_steps, result.error, result.curve_step.tobytes(), result.curve_loss.tobytes())


def timed(trials, backend):
    start = time.perf_counter()
    results = run_sweep(trials, backend=backend, n_jobs=N_JOBS)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    trials = grid(DataSpec("moons"), ModelSpec(hidden=(16, 16)), TrainConfig(optimizer="sgd", max_steps=args.steps),
                  seeds=(0, 1), lr=(0.03, 0.1, 0.3, 1.0), batch_size=(16, 32, 64))
    load_start = os.getloadavg()[0]
    run_trial(trials[0])  # in-process warm-up: torch's first optimizer step imports torch._dynamo
    print(f"{len(trials)} trials, {args.steps} SGD updates each, {N_JOBS} workers, {os.cpu_count()} cores, "
          f"load {load_start:.2f} (1-min average) at start")

    times: dict[str, list[float]] = {}
    outputs = {}

    def record(name, seconds, results):
        times.setdefault(name, []).append(seconds)
        outputs.setdefault(name, results)

    def kill_pool():
        # A stopped sweep kills the running workers: the next joblib sweep starts cold.
        got = []
        run_sweep(trials, backend="joblib", n_jobs=N_JOBS, on_result=lambda r, done, total: got.append(r),
                  should_stop=lambda: bool(got))

    start = time.perf_counter()
    ray_init(num_cpus=N_JOBS)
    ray_start = time.perf_counter() - start
    record("ray cold", *timed(trials, "ray"))  # first tasks: Ray starts and warms its workers
    warm_ups = []
    for rep in range(REPEATS):  # interleaved, so a burst of load elsewhere hits every backend alike
        if rep:
            kill_pool()
        record("joblib cold", *timed(trials, "joblib"))  # fresh worker processes
        record("sequential", *timed(trials, "inline"))
        record("joblib warm", *timed(trials, "joblib"))
        record("ray warm", *timed(trials, "ray"))
        kill_pool()
        warm_ups.append(warm_workers(N_JOBS))  # what a page can do when it opens
        record("joblib warmed", *timed(trials, "joblib"))
    warm_up = min(warm_ups)

    seq = min(times["sequential"])
    print(f"\n{'backend':<14}{'wall s':>8}{'ratio':>8}   (best of {REPEATS} interleaved runs; ray cold: 1 run, "
          f"its start-up {ray_start:.2f} s not included)")
    for name in ("sequential", "joblib cold", "joblib warm", "joblib warmed", "ray cold", "ray warm"):
        best = min(times[name])
        print(f"{name:<14}{best:>8.2f}{best / seq:>8.2f}")
    per_trial = sorted(r.seconds for r in outputs["sequential"])
    print(f"\ntrial time (sequential): median {per_trial[len(per_trial) // 2]:.2f} s, "
          f"range {per_trial[0]:.2f}-{per_trial[-1]:.2f} s; load {os.getloadavg()[0]:.2f} at end")

    reference = [numbers(r) for r in outputs["sequential"]]
    same = {name: [numbers(r) for r in res] == reference for name, res in outputs.items()}
    print("identical numbers to the sequential run: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()))
    verdicts = []
    for name in ("joblib cold", "joblib warm", "joblib warmed"):
        ratio = min(times[name]) / seq
        verdicts.append(f"{name.split()[1]} {ratio:.2f} ({'met' if ratio <= TARGET else 'MISSED'})")
    print(f"target <= {TARGET} x sequential with {N_JOBS} workers: " + ", ".join(verdicts))
    print(f"warm_workers({N_JOBS}) on a fresh pool: {warm_up:.2f} s ('joblib warmed' is the sweep after it)")
    if max(load_start, os.getloadavg()[0]) > os.cpu_count():
        print("note: more runnable processes than cores during the run; parallel figures are pessimistic "
              "(every hand-off between processes waits for a time slice)")
    if not all(same.values()):
        sys.exit("backends disagree")


if __name__ == "__main__":
    main()
