"""Gradient stall page: time and memory of its runs, against the moons default measured beside them.

Run: .venv/bin/python bench/stall.py            (default run on moons and on a 54k-row upload,
                                                 peak memory on a 200k-row upload, min-ratio experiment)
     .venv/bin/python bench/stall.py --heavy    (also the heaviest widget combinations)
Targets (issues 16 and 19): the 54k-row default within 4x the moons default; peak resident memory
on a 200,000-row x 11-column upload far under 2 GB; the minimum-ratio experiment well under a
minute; every widget combination within about 2 minutes. One torch thread, as in the app.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import core  # noqa: E402,F401
from core.data import load_builtin, load_csv  # noqa: E402
from core.diagnoses import minimum_ratio, stall  # noqa: E402
from core.lab import LabSetup  # noqa: E402
from core.models import ModelSpec  # noqa: E402


def regression_csv(path: str, rows: int, features: int = 10, seed: int = 0) -> None:
    """A numeric regression CSV: `features` inputs and a noisy nonlinear target (diamonds-sized at 53,940)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ rng.normal(size=features) + np.sin(X[:, 0]) + 0.3 * rng.normal(size=rows)
    pd.DataFrame(np.column_stack([X, y]), columns=[f"x{i}" for i in range(features)] + ["price"]).to_csv(
        path, index=False)


def best_of(n: int, fn) -> float:
    """The fastest of n timed calls (the machine's other work only ever adds time)."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory_mb(path: str) -> tuple[float, float]:
    """Peak resident memory (MB) of a fresh interpreter that loads `path` and runs the default, and
    of one that only loads it (the baseline)."""
    body = textwrap.dedent(f"""
        import resource
        import core
        from core.data import load_csv
        from core.lab import LabSetup
        from core.diagnoses.stall import Config, run
        data = load_csv({path!r}, target="price")
        if RUN:
            run(data, LabSetup(), Config())
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """)
    out = []
    for flag in ("True", "False"):
        res = subprocess.run([sys.executable, "-c", f"RUN = {flag}\n" + body], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        out.append(float(res.stdout.split()[-1]))
    return out[0], out[1]


def main() -> None:
    heavy = "--heavy" in sys.argv
    moons = load_builtin("moons")
    stall.run(moons, LabSetup(), stall.Config(steps=200, window=50))  # one-off warm-ups (first optimizer step)
    with tempfile.TemporaryDirectory() as tmp:
        mid, big = os.path.join(tmp, "reg54k.csv"), os.path.join(tmp, "reg200k.csv")
        regression_csv(mid, 53_940)
        regression_csv(big, 200_000)
        upload = load_csv(mid, target="price")
        t_moons = best_of(3, lambda: stall.run(moons, LabSetup(), stall.Config()))
        t_upload = best_of(3, lambda: stall.run(upload, LabSetup(), stall.Config()))
        print(f"default run, moons (400 rows):              {t_moons:6.2f} s  (baseline)")
        print(f"default run, 53,940-row regression upload:  {t_upload:6.2f} s  = {t_upload / t_moons:.1f}x moons "
              "(target <= 4x)")
        peak, baseline = peak_memory_mb(big)
        print(f"peak memory, 200,000 x 11 upload + default: {peak:6.0f} MB  (loading alone {baseline:.0f} MB; "
              "target far under 2,048)")
    t_mr = best_of(1, lambda: minimum_ratio.run(moons, LabSetup(), minimum_ratio.Config()))
    print(f"minimum-ratio experiment, 30 points, moons: {t_mr:6.2f} s  = {t_mr / t_moons:.1f}x the moons default "
          "(target well under 60 s)")
    if heavy:
        digits = load_builtin("digits")
        largest = LabSetup(model=ModelSpec(hidden=(64, 64, 64, 64)))
        cases = [
            ("digits, 4 x 64, defaults", digits, largest, stall.Config()),
            ("digits, 4 x 64, most steps the bound allows, 10 judged", digits, largest,
             stall.Config(steps=1600, window=100, max_classified=10, curvature_rows=20_000)),
            ("digits, 32-32 (3,466 params: Lanczos), 10 judged", digits, LabSetup(model=ModelSpec(hidden=(32, 32))),
             stall.Config(steps=5000, window=25, max_classified=10, curvature_rows=20_000)),
            ("digits, 24-24 (2,434 params: exact spectra), 10 judged", digits,
             LabSetup(model=ModelSpec(hidden=(24, 24))),
             stall.Config(steps=5000, window=25, max_classified=10, curvature_rows=20_000)),
            ("minimum ratio, digits, 40 seeds x 3 widths", digits, LabSetup(), None),
        ]
        for label, data, setup, config in cases:
            if config is None:
                seconds = best_of(1, lambda: minimum_ratio.run(data, setup, minimum_ratio.Config(seeds=40)))
            else:
                seconds = best_of(1, lambda: stall.run(data, setup, config))
            print(f"{label:<58} {seconds:7.1f} s = {seconds / t_moons:.0f}x moons (target about 120 s)")


if __name__ == "__main__":
    main()
