"""Resource bounds: a 100,000-row CSV loads within 10 s and 1 GB of memory."""
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd

from core.data import load_csv


def test_large_csv_loads_within_time_and_memory(tmp_path):
    rng = np.random.default_rng(0)
    n = 100_000
    frame = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"f{i}" for i in range(20)])
    frame["city"] = rng.choice(["Oslo", "Lima", "Pune", "Kobe"], n)
    frame["customer_id"] = [f"C{i:07d}" for i in range(n)]
    frame["label"] = rng.integers(0, 3, n)
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    # A fresh interpreter, so the peak resident memory is this load's alone (plus imports).
    script = textwrap.dedent(f"""
        import resource, time
        from core.data import load_csv
        start = time.perf_counter()
        data = load_csv({str(path)!r})
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(data.n_rows, data.n_features, round(seconds, 3), round(peak_mb))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=".").stdout
    rows, features, seconds, peak_mb = out.split()
    assert int(rows) == n and int(features) == 20 + 4  # 20 numbers + 4 one-hot cities; the id is dropped
    assert float(seconds) < 10, f"loading took {seconds} s"
    assert float(peak_mb) < 1024, f"peak memory {peak_mb} MB"
    data = load_csv(path, max_rows=50_000)
    assert data.n_rows == 50_000 and any("sampled" in note.lower() for note in data.notes)
