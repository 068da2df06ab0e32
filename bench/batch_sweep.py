"""The batch-size page's time, stop latency and memory, against bare training measured beside it.

Run: .venv/bin/python bench/batch_sweep.py [--quick]
Prints, each figure with its ratio to a baseline measured in the same run:
1. the default run on moons and on a 54,000-row synthetic CSV (loaded through core.data.load_csv
   like an upload): wall and CPU seconds, and the ratio 54k / moons (target: at most 4);
2. for each, bare training (core.runs.run_model for every size and seed, nothing else) and the
   ratio default run / bare training (what the timing profile and the measures cost on top);
3. the heaviest sweeps the page accepts, on moons and on the 54k CSV with the sidebar's largest
   model (4 x 64): 8 sizes 1..full, the most seeds and then updates that
   core.diagnoses.batch_size.check_budget lets through: seconds (target: about 2 minutes) and the
   longest gap between two progress calls (a Stop lands at a progress call; target: under 1 s);
4. the peak resident memory of a default run on a 200,000-row upload (target: far under 2 GB).
CPU seconds are printed too: on a shared machine the wall time is the CPU time plus waiting.
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (one torch thread)
from core.data import load_builtin, load_csv  # noqa: E402
from core.diagnoses.batch_size import (  # noqa: E402
    MAX_SIZES, MAX_UPDATES, Config, check_budget, resolve_sizes, run, updates_for,
)
from core.lab import LabSetup  # noqa: E402
from core.models import ModelSpec, n_params  # noqa: E402
from core.runs import build, prepare_split, run_model, seeds_for  # noqa: E402
from core.train import TrainConfig  # noqa: E402


def synthetic_csv(rows: int, seed: int = 0) -> bytes:
    """A diamonds-like table: 6 numeric and 3 categorical columns, a price to predict."""
    rng = np.random.default_rng(seed)
    carat = rng.gamma(2.0, 0.4, rows)
    x = 6 * carat ** (1 / 3) + rng.normal(0, 0.05, rows)
    cols = {
        "carat": carat, "depth": rng.normal(61.7, 1.4, rows), "table": rng.normal(57.4, 2.2, rows),
        "x": x, "y": x + rng.normal(0, 0.05, rows), "z": 0.62 * x + rng.normal(0, 0.05, rows),
    }
    cut = rng.choice(["Fair", "Good", "Very Good", "Premium", "Ideal"], rows)
    colour = rng.choice(list("DEFGHIJ"), rows)
    clarity = rng.choice(["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"], rows)
    price = np.round(3900 * carat ** 1.6 * np.exp(rng.normal(0, 0.15, rows))).astype(int)
    lines = ["carat,depth,table,x,y,z,cut,color,clarity,price"]
    for i in range(rows):
        lines.append(",".join(f"{cols[c][i]:.3f}" for c in cols) + f",{cut[i]},{colour[i]},{clarity[i]},{price[i]}")
    return ("\n".join(lines) + "\n").encode()


def timed(fn):
    """(result, wall seconds, CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def bare_training(data, setup: LabSetup, config: Config) -> None:
    """Every size and seed of the sweep through run_model: the training the page cannot avoid."""
    split0 = prepare_split(data, setup, max_train_rows=config.max_train_rows)
    sizes = resolve_sizes(config, len(split0.X_train))
    for seed in seeds_for(setup, config.seeds):
        s = replace(setup, seed=seed)
        split = prepare_split(data, s, max_train_rows=config.max_train_rows)
        for b in sizes:
            k = updates_for(config, b, len(split.X_train))
            run_model(split, s, TrainConfig(optimizer=config.optimizer, lr=config.lr, batch_size=b, seed=seed,
                                            max_steps=k, device="cpu"), key=str(b))


def heaviest(data, setup: LabSetup) -> Config | None:
    """The widest sweep check_budget accepts: MAX_SIZES sizes from 1 to full, the most seeds (10
    down to 2) for which some update count passes, and then the most updates."""
    split = prepare_split(data, setup, max_train_rows=Config().max_train_rows)
    n = len(split.X_train)
    P = n_params(build(setup, split))
    sizes = (1, 2, 4, 8, 16, 32, 64, 0)[-MAX_SIZES:]
    resolved = resolve_sizes(Config(batch_sizes=sizes), n)

    def ok(config: Config) -> bool:
        try:
            check_budget(config, resolved, n, P)
            return True
        except ValueError:
            return False

    for seeds in range(10, 1, -1):
        config = Config(batch_sizes=sizes, seeds=seeds, updates=1)
        if not ok(config):
            continue
        lo, hi = 1, MAX_UPDATES
        while lo < hi:  # the largest accepted update count
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(replace(config, updates=mid)) else (lo, mid - 1)
        return replace(config, updates=lo)
    return None


def main(quick: bool) -> None:
    setup = LabSetup()
    moons = load_builtin("moons")
    run(moons, setup, Config(batch_sizes=(8, 0), updates=5, seeds=2))  # warm-up: one-off imports
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average) on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "diamonds54k.csv")
        with open(path, "wb") as fh:
            fh.write(synthetic_csv(54_000))
        big = load_csv(path, target="price")
    cases = [("moons", moons), ("54k-row CSV", big)]
    defaults = {}
    for name, data in cases:
        res, wall, cpu = timed(lambda: run(data, setup, Config()))
        _, bwall, bcpu = timed(lambda: bare_training(data, setup, Config()))
        defaults[name] = (wall, cpu)
        print(f"\n{name}: {data.n_rows:,} rows, trains on {res.n_train:,}, measures on {res.n_measure:,}, "
              f"validates on {res.n_val:,} per seed; {len(res.seeds)} seeds x {len(res.sweep)} sizes")
        print(f"  default run {wall:.2f} s wall / {cpu:.2f} s CPU; bare training {bwall:.2f} s / {bcpu:.2f} s CPU; "
              f"ratio run / bare training {cpu / bcpu:.2f} (CPU)")
        print(f"  per-update ms by batch size: " + ", ".join(
            f"{int(r.batch_size):,}: {r.ms:.3g}" for r in res.timing.frame.itertuples()))
        print(f"  parallelism limit: {res.timing.limit}")
    (mw, mc), (bw, bc) = defaults["moons"], defaults["54k-row CSV"]
    print(f"\n54k-row CSV / moons default: {bw / mw:.2f}x wall, {bc / mc:.2f}x CPU (target <= 4)")
    if quick:
        return

    for name, data, heavy_setup in (("moons", moons, setup),
                                    ("54k-row CSV, 4 x 64 model", big, replace(setup, model=ModelSpec(hidden=(64,) * 4)))):
        config = heaviest(data, heavy_setup)
        gaps, last = [], [time.perf_counter()]

        def on_progress(fraction: float, message: str) -> None:
            now = time.perf_counter()
            gaps.append((now - last[0], message))
            last[0] = now

        res, wall, cpu = timed(lambda: run(data, heavy_setup, config, on_progress=on_progress))
        worst = max(gaps)
        print(f"\nheaviest accepted sweep, {name}: {config.seeds} seeds x {len(res.sweep)} sizes "
              f"{list(res.sweep['batch_size'])} x {config.updates:,} updates: {wall:.1f} s wall / {cpu:.1f} s CPU "
              f"({cpu / mc:.0f}x the moons default's CPU); longest gap between progress calls {worst[0]:.3f} s "
              f"({worst[1]!r})")

    rows = 200_000
    huge = load_csv(synthetic_csv(rows, seed=1), target="price")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _, wall, cpu = timed(lambda: run(huge, setup, Config()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{rows:,}-row upload, default run: {wall:.1f} s wall / {cpu:.1f} s CPU; peak RSS {peak:.0f} MB "
          f"(before the run {before:.0f} MB: the run raised it by {peak - before:.0f} MB)")


if __name__ == "__main__":
    main("--quick" in sys.argv)
