"""The feature-scaling page's four experiments: time on moons and on a 54,000-row upload, stop
latency and the heaviest accepted settings, each against a baseline measured in the same run.

Run: .venv/bin/python bench/scaling.py [--heavy]
Prints:
1. each experiment's default run (core.diagnoses.scaling_surface, scaling_lab, bn_curvature,
   batch_norm) on moons and on a 54,000-row synthetic CSV loaded through core.data.load_csv like
   an upload: wall and CPU seconds, and the ratio 54k / moons (target: at most 4, issue 16);
2. the page's total against its bare training (core.runs.run_model for every run and seed the
   lab and batch-norm experiments train, nothing else), the ratio default / bare;
3. the longest gap between two progress calls in each default run (a Stop lands at a progress
   call; target: under 1 s, issue 19);
4. with --heavy: the largest lab and sweep settings check_budget accepts with the sidebar's largest
   model (4 x 64) on the 54k upload: seconds (target: about 2 minutes) and the longest gap.
CPU seconds are printed too: on a shared machine the wall time is the CPU time plus waiting.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import core  # noqa: E402,F401  (one torch thread)
from batch_sweep import synthetic_csv  # noqa: E402
from core.data import load_builtin, load_csv  # noqa: E402
from core.diagnoses import batch_norm, bn_curvature, scaling_lab, scaling_surface  # noqa: E402
from core.lab import LabSetup  # noqa: E402
from core.models import ModelSpec  # noqa: E402
from core.runs import prepare_split, run_model, seeds_for  # noqa: E402
from core.train import TrainConfig  # noqa: E402

EXPERIMENTS = [("surface (lab columns)", scaling_surface.run, scaling_surface.Config(source="lab")),
               ("lab scalers", scaling_lab.run, scaling_lab.Config()),
               ("batch norm's curvature", bn_curvature.run, bn_curvature.Config()),
               ("batch norm inside", batch_norm.run, batch_norm.Config())]


def timed(fn):
    """(result, wall seconds, CPU seconds, longest gap between progress calls) of fn(on_progress)."""
    calls = [time.perf_counter()]
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(lambda f, m: calls.append(time.perf_counter()))
    calls.append(time.perf_counter())
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    return out, time.perf_counter() - wall, time.process_time() - cpu, max(gaps)


def bare(data, setup: LabSetup) -> None:
    """The training the lab and batch-norm experiments cannot avoid: every run and seed through
    run_model with their default settings, no curvature, no checks."""
    lab, bn = scaling_lab.Config(), batch_norm.Config()
    for seed in seeds_for(setup, lab.seeds):
        for key in scaling_lab.RUNS:
            split = prepare_split(data, setup, scaling_lab.SCALER_OF[key], max_train_rows=lab.max_train_rows)
            spec = replace(setup.model, batch_norm=key in scaling_lab.BATCH_NORM)
            run_model(split, setup, TrainConfig(lr=lab.lr, max_steps=lab.steps, batch_size=lab.batch_size, seed=seed,
                                                scaler=scaling_lab.SCALER_OF[key], eval_every=10**9),
                      key=key, model_spec=spec)
    split = prepare_split(data, setup, bn.scaler, max_train_rows=bn.max_train_rows)
    for seed in seeds_for(setup, bn.seeds):
        for batch, norm in ((bn.tiny_batch, True), (bn.normal_batch, True), (bn.tiny_batch, False)):
            run_model(split, setup, TrainConfig(lr=bn.lr, max_steps=bn.steps, batch_size=batch, seed=seed,
                                                eval_every=10**9),
                      key="bn", model_spec=replace(setup.model, batch_norm=norm))


def main() -> None:
    setup = LabSetup()
    moons = load_builtin("moons")
    t = time.perf_counter()
    big = load_csv(synthetic_csv(54_000), name="diamonds_like.csv")
    print(f"54k CSV loaded in {time.perf_counter() - t:.1f} s ({big.n_rows:,} rows, {big.n_features} features; "
          "not counted below: the page caches the load)")
    run_model(prepare_split(moons, setup), setup, TrainConfig(max_steps=5), key="warm")  # one-off torch costs
    totals = {"moons": [0.0, 0.0], "54k": [0.0, 0.0]}
    print(f"{'experiment':<24}{'moons s':>9}{'cpu':>7}{'54k s':>9}{'cpu':>7}{'54k/moons':>11}{'max gap s':>11}")
    for name, fn, config in EXPERIMENTS:
        figures = []
        for label, data in (("moons", moons), ("54k", big)):
            _, wall, cpu, gap = timed(lambda p, d=data: fn(d, setup, config, on_progress=p))
            totals[label][0] += wall
            totals[label][1] += cpu
            figures.append((wall, cpu, gap))
        (mw, mc, mg), (bw, bc, bg) = figures
        print(f"{name:<24}{mw:>9.2f}{mc:>7.2f}{bw:>9.2f}{bc:>7.2f}{bw / mw:>11.2f}{max(mg, bg):>11.2f}")
    (mw, mc), (bw, bc) = totals["moons"], totals["54k"]
    print(f"{'page total':<24}{mw:>9.2f}{mc:>7.2f}{bw:>9.2f}{bc:>7.2f}{bw / mw:>11.2f}")
    for label, data in (("moons", moons), ("54k", big)):
        _, wall, cpu, _ = timed(lambda p, d=data: bare(d, setup))
        print(f"bare training of the lab and batch-norm runs on {label}: {wall:.2f} s (cpu {cpu:.2f}); "
              f"page total / bare = {totals[label][0] / wall:.2f}")

    if "--heavy" in sys.argv:
        largest = LabSetup(model=ModelSpec(hidden=(64, 64, 64, 64)))
        # Near the budget's edge (check_budget estimates about 40-55 s for each; more is refused).
        heavy = [("lab, 3 seeds x 5 runs x 2,000 steps, batch 32, 20,000 rows", scaling_lab.run,
                  scaling_lab.Config(steps=2000, seeds=3, batch_size=32, max_train_rows=20_000)),
                 ("sweep, 2 seeds x 2 models x 12 rates x 60 full-batch steps on 2,000 rows", bn_curvature.run,
                  bn_curvature.Config(n_rates=12, refine=0, steps=60, seeds=2, max_train_rows=2000)),
                 ("batch norm, 10 seeds x 3 runs x 1,200 steps, batch 128", batch_norm.run,
                  batch_norm.Config(normal_batch=128, steps=1200, seeds=10, max_train_rows=20_000))]
        for name, fn, config in heavy:
            try:
                _, wall, cpu, gap = timed(lambda p: fn(big, largest, config, on_progress=p))
                print(f"heavy {name}: {wall:.1f} s (cpu {cpu:.1f}), longest gap {gap:.2f} s")
            except ValueError as exc:
                print(f"heavy {name}: refused: {exc}")


if __name__ == "__main__":
    main()
