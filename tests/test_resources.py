"""Resource bounds: whole CSV files load within 10 s and 1 GB, measured in a fresh interpreter.

Three files: 100,000 mixed rows, 200,000 numeric rows, and a ~48 MB mixed file just under the
50 MB upload cap (numbers, a category, an id, a date-time and thousands-separated prices). The
peak resident memory includes the interpreter and its imports (torch among them), the way the app
carries them; the load's own share is printed beside it (run with -s to see the figures).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

TIME_LIMIT_S = 10.0
MEMORY_LIMIT_MB = 1024.0


def measure_load(path) -> dict:
    """Load `path` with core.data.load_csv in a fresh interpreter; rows, features, seconds, memory."""
    script = textwrap.dedent(f"""
        import json, resource, time
        from core.data import load_csv

        def rss_mb():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

        before = rss_mb()
        start = time.perf_counter()
        data = load_csv({str(path)!r})
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(dict(rows=data.n_rows, features=data.n_features, task=data.task,
                              seconds=seconds, peak_mb=peak, before_mb=before, notes=list(data.notes))))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=".")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{path.name}: {path.stat().st_size / 2**20:.1f} MB, {result['rows']:,} rows in "
          f"{result['seconds']:.2f} s, peak RSS {result['peak_mb']:.0f} MB "
          f"({result['before_mb']:.0f} MB before loading)")
    return result


def mixed_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"f{i}" for i in range(20)])
    frame["city"] = rng.choice(["Oslo", "Lima", "Pune", "Kobe"], n)
    frame["customer_id"] = [f"C{i:07d}" for i in range(n)]
    frame["label"] = rng.integers(0, 3, n)
    return frame


def test_100k_mixed_rows(tmp_path):
    path = tmp_path / "big.csv"
    mixed_frame(100_000).to_csv(path, index=False)
    r = measure_load(path)
    assert r["rows"] == 100_000 and r["features"] == 20 + 4  # 20 numbers + 4 one-hot cities; the id is dropped
    assert r["seconds"] < TIME_LIMIT_S and r["peak_mb"] < MEMORY_LIMIT_MB


def test_200k_numeric_rows_load_whole(tmp_path):
    rng = np.random.default_rng(1)
    n = 200_000
    frame = pd.DataFrame(rng.normal(size=(n, 10)).round(6), columns=[f"x{i}" for i in range(10)])
    frame["y"] = rng.integers(0, 2, n)
    path = tmp_path / "numeric200k.csv"
    frame.to_csv(path, index=False)
    r = measure_load(path)
    assert r["rows"] == n and r["features"] == 10 and not any("ampl" in note for note in r["notes"])
    assert r["seconds"] < TIME_LIMIT_S and r["peak_mb"] < MEMORY_LIMIT_MB


@pytest.mark.slow
def test_a_file_just_under_the_upload_cap(tmp_path):
    rng = np.random.default_rng(2)
    block = 10_000  # a block of rows written once and repeated keeps the test's set-up cheap
    frame = pd.DataFrame(rng.normal(size=(block, 8)).round(5), columns=[f"x{i}" for i in range(8)])
    frame["city"] = rng.choice(["Oslo", "Lima", "Pune", "Kobe"], block)
    frame["customer_id"] = [f"C{i:07d}" for i in range(block)]
    frame["when"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 365, block), unit="s")
                     ).strftime("%Y-%m-%d %H:%M:%S")
    frame["price"] = [f"{v:,.2f}" for v in rng.uniform(100, 2e6, block)]
    header, body = frame.to_csv(index=False).encode().split(b"\n", 1)
    copies = 40
    path = tmp_path / "upload_cap.csv"
    path.write_bytes(header + b"\n" + body * copies)
    size_mb = path.stat().st_size / 2**20
    assert 40 < size_mb < 50
    r = measure_load(path)
    # 8 numbers + 4 one-hot cities + the date as days and hour; the price target is read as numbers.
    assert r["rows"] == block * copies and r["features"] == 14 and r["task"] == "regression"
    assert r["seconds"] < TIME_LIMIT_S and r["peak_mb"] < MEMORY_LIMIT_MB
