"""Rate x batch grid: wall times of the page's default grid against a sequential baseline.

Prints, on this machine (one torch thread per worker):
- the default grid on moons (7 rates x 4 batch sizes x 3 seeds = 84 trials) in-process (the
  baseline), through joblib with fresh workers and with warm ones, and a rerun served from the
  trial cache; each against its time estimate (core.diagnoses.lr_batch_grid.estimated_seconds);
- the same on digits (1,437 training rows, 10 classes), joblib only;
- a 54,000-row uploaded CSV with batch sizes 8, 32, 128 and 1,024 (the default with 'full' is
  refused there), and its ratio to moons with the same sizes.

Run: .venv/bin/python bench/lr_batch_grid.py [--quick]   (--quick: skips digits and the CSV)
"""
from __future__ import annotations

import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TRAINSCOPE_TORCH_THREADS", "1")

import numpy as np  # noqa: E402

import core.diagnoses.lr_batch_grid as grid  # noqa: E402
from core.data import load_builtin, load_csv  # noqa: E402
from core.lab import DataSpec, LabSetup  # noqa: E402


def timed(data, setup, config) -> tuple[float, float, object]:
    est = grid.plan(data, setup, config).seconds
    start = time.perf_counter()
    res = grid.run(data, setup, config)
    return time.perf_counter() - start, est, res


def line(name: str, seconds: float, est: float, base: float, res) -> None:
    print(f"{name:<44}{seconds:>8.1f} s  estimate {est:>6.1f} s  vs baseline {seconds / base:>5.2f}x  "
          f"({res.trained} trained, {res.cached} cached, {res.backend})")


def big_csv(rows: int = 54_000, cols: int = 20) -> bytes:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, cols))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    buf = io.StringIO()
    buf.write(",".join(f"f{i}" for i in range(cols)) + ",target\n")
    for r, t in zip(X, y):
        buf.write(",".join(f"{v:.4f}" for v in r) + f",{t}\n")
    return buf.getvalue().encode()


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}")
    moons, setup = load_builtin("moons"), LabSetup()
    inline_cfg = grid.Config(backend="inline")
    base, est, res = timed(moons, setup, inline_cfg)
    line("moons default, in-process (baseline)", base, est, base, res)
    grid.CACHE.clear()
    t, est, res = timed(moons, setup, grid.Config())
    line("moons default, joblib x2, fresh workers", t, est, base, res)
    grid.CACHE.clear()
    t, est, res = timed(moons, setup, grid.Config())
    line("moons default, joblib x2, warm workers", t, est, base, res)
    t, est, res = timed(moons, setup, grid.Config())
    line("moons default, rerun from the trial cache", t, est, base, res)
    print("moons verdict:", res.verdict.text[:400], "...")
    if quick:
        return
    digits = load_builtin("digits")
    t, est, res = timed(digits, LabSetup(data=DataSpec("digits")), grid.Config())
    line("digits default, joblib x2", t, est, base, res)
    sizes = grid.Config(batch_sizes=(8, 32, 128, 1024))
    grid.CACHE.clear()
    small, _, res = timed(load_builtin("moons", n_samples=2000), LabSetup(
        data=DataSpec("moons", params=(("n_samples", 2000),))), sizes)
    line("moons 2,000 rows, sizes 8/32/128/1024", small, 0.0, base, res)
    blob = big_csv()
    data = load_csv(blob, target="target", name="big.csv")
    csv_setup = LabSetup(data=DataSpec(builtin=None, csv_bytes=blob, csv_name="big.csv", target="target"))
    try:
        grid.plan(data, csv_setup, grid.Config())
    except ValueError as exc:
        print("54k CSV default grid refused:", exc)
    t, est, res = timed(data, csv_setup, sizes)
    line("54k CSV, sizes 8/32/128/1024", t, est, base, res)
    print(f"54k CSV vs moons (2,000 rows) with the same sizes: {t / small:.2f}x")


if __name__ == "__main__":
    main()
