"""The learning-rate page's figures: default times, a 54k-row upload, Stop latency, headline vs check.

Run: .venv/bin/python bench/learning_rate.py          (all sections)
     .venv/bin/python bench/learning_rate.py --quick  (times only, no headline table)

1. The page's default answer (range test + check + schedules, core.diagnoses.learning_rate.run)
   on moons and on a 54,000-row uploaded CSV, and each tab's default experiment. Baseline: the
   moons answer, measured in the same process; target: the upload within 4x of it (issue 16),
   the moons answer within ~3 s on 2 cores.
2. Stop latency: the longest gap between two progress calls (where a Stop lands) in the most
   expensive runs the budget admits (full batch, the largest model); target under 1 s (issue 19).
3. The headline against the check over the property test's cases (tests/test_learning_rate.py).
"""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (one torch thread, as in the app)
from core.data import load_csv  # noqa: E402
from core.diagnoses import learning_rate, lr_burst, lr_optimizers, lr_range, lr_surfaces  # noqa: E402
from core.diagnoses.words import num  # noqa: E402
from core.lab import DataSpec, LabSetup, load_data  # noqa: E402
from core.models import MAX_HIDDEN_LAYERS, MAX_HIDDEN_WIDTH, ModelSpec  # noqa: E402

CASES = [("moons", "sgd", 0), ("moons", "adam", 0), ("moons", "momentum", 1), ("circles", "sgd", 0),
         ("circles", "adam", 1), ("xor", "rmsprop", 0), ("spirals", "adagrad", 0), ("blobs", "sgd", 2)]


def upload(rows: int = 54_000, features: int = 10, seed: int = 0):
    """A CSV of `rows` rows as a user would upload it, loaded through core.data.load_csv."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = (X[:, 0] + 0.5 * np.sin(3 * X[:, 1]) + 0.3 * rng.normal(size=rows) > 0).astype(int)
    lines = [",".join([f"f{i}" for i in range(features)] + ["label"])]
    lines += [",".join(f"{v:.4f}" for v in row) + f",{t}" for row, t in zip(X, y)]
    blob = ("\n".join(lines) + "\n").encode()
    return blob, load_csv(blob, target="label")


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - start, out


def gaps(fn, *args) -> tuple[float, float]:
    """(total seconds, longest gap between progress calls) of one run."""
    stamps = [time.perf_counter()]
    fn(*args, on_progress=lambda f, m: stamps.append(time.perf_counter()))
    stamps.append(time.perf_counter())
    return stamps[-1] - stamps[0], float(np.diff(stamps).max())


def main() -> None:
    setup = LabSetup()
    moons = load_data(setup.data, 0)
    learning_rate.run(moons, setup, learning_rate.Config(
        range_test=lr_range.Config(num_steps=20, check_steps=10, seeds=1)))  # one-off costs first
    base, _ = timed(learning_rate.run, moons, setup, learning_rate.Config())
    blob, big = upload()
    up_setup = LabSetup(data=DataSpec(builtin=None, csv_bytes=blob, csv_name="big.csv", target="label"))
    up, _ = timed(learning_rate.run, big, up_setup, learning_rate.Config())
    print("1. Default runs (seconds; 3 seeds per compared run)")
    print(f"   answer (range test + check + schedules), moons          {base:6.2f}   1.00x  (baseline)")
    print(f"   answer, 54,000-row upload                               {up:6.2f}   {up / base:.2f}x  (target <= 4x)")
    for name, fn, cfg, data in (("surface race (torch optimizers)", lr_surfaces.run, lr_surfaces.Config(), None),
                                ("the lecture's Adagrad burst", lr_burst.run, lr_burst.Config(), None),
                                ("optimizers on the lab model", lr_optimizers.run, lr_optimizers.Config(), moons)):
        t, _ = timed(fn, data, setup, cfg)
        print(f"   {name:<55}{t:6.2f}   {t / base:.2f}x")

    print("\n2. Stop latency: longest gap between progress calls (target < 1 s)")
    largest = LabSetup(data=up_setup.data, model=ModelSpec(hidden=(MAX_HIDDEN_WIDTH,) * MAX_HIDDEN_LAYERS))
    heavy = [
        ("range test, full batch, largest model, 54k upload", lr_range.run, big, largest,
         lr_range.Config(num_steps=30, batch_size=None, check_steps=10, seeds=1)),
        ("burst, 10,000 steps", lr_burst.run, None, setup, lr_burst.Config(steps=lr_burst.MAX_STEPS)),
        ("surface race, 2,000 steps", lr_surfaces.run, None, setup, lr_surfaces.Config(steps=lr_surfaces.MAX_STEPS)),
    ]
    for name, fn, data, s, cfg in heavy:
        total, gap = gaps(fn, data, s, cfg)
        print(f"   {name:<55}{total:6.2f} s total, longest gap {gap:.3f} s")

    if "--quick" in sys.argv:
        return
    print("\n3. Headline vs check (default range test and check, 3 seeds; tail training loss, mean of seeds)")
    print(f"   {'dataset':<8} {'optimizer':<9} seed  {'valley':>8}  {'0.1x':>6} {'1x':>6} {'10x':>6}  "
          f"{'check says':<22} headline rate")
    for dataset, optimizer, seed in CASES:
        s = LabSetup(data=DataSpec(builtin=dataset), seed=seed)
        r = learning_rate.run(load_data(s.data, seed), s, learning_rate.Config(range_test=lr_range.Config(optimizer=optimizer)))
        rt = r.range_test
        means = {g.key: (num(g.mean) if g.stable else "div.") for g in rt.groups}
        says = rt.choice.kind
        head = r.verdict.text.split(" (")[0].replace("Use ", "")
        print(f"   {dataset:<8} {optimizer:<9} {seed:>4}  {num(rt.valley_lr):>8}  {means.get('0.1x', '-'):>6} "
              f"{means.get('1x', '-'):>6} {means.get('10x', '-'):>6}  {says:<22} {head}")


if __name__ == "__main__":
    main()
