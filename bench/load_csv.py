"""Loading whole CSV files: time and peak memory of core.data.load_csv against pandas.read_csv.

Run: .venv/bin/python bench/load_csv.py
For a 200,000-row numeric file and a ~44 MB mixed file (numbers, a category, an id, date-times,
thousands-separated prices) just under the 50 MB upload cap, each load runs in a fresh
interpreter and prints: seconds, peak resident memory, the memory added by the load, and the
ratio to a bare pandas.read_csv of the same file measured beside it (targets: under 10 s and
1 GB in all, the 200k-row file in a few seconds). Also: the leak check on the loaded file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import core  # the app's imports (torch among them) count in the baseline memory
    import pandas as pd
    from core.data import load_csv
    from core.checks import data_checks

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    path, how = sys.argv[1], sys.argv[2]
    before = rss_mb()
    start = time.perf_counter()
    out = {}
    if how == "pandas":
        out["rows"] = len(pd.read_csv(path))
    else:
        data = load_csv(path)
        out["rows"] = data.n_rows
        out["load_s"] = time.perf_counter() - start
        t = time.perf_counter()
        out["checks"] = [c.kind + ":" + c.column for c in data_checks(data)]
        out["checks_s"] = time.perf_counter() - t
    out["seconds"] = out.get("load_s", time.perf_counter() - start)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["before_mb"] = before
    print(json.dumps(out))
""")


def run(path: str, how: str) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", CHILD, path, how], capture_output=True, text=True,
                         check=True, cwd=ROOT, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def numeric_file(path: str) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(200_000, 10)).round(6), columns=[f"x{i}" for i in range(10)])
    frame["y"] = rng.integers(0, 2, 200_000)
    frame.to_csv(path, index=False)


def mixed_file(path: str) -> None:
    rng = np.random.default_rng(2)
    block = 10_000
    frame = pd.DataFrame(rng.normal(size=(block, 8)).round(5), columns=[f"x{i}" for i in range(8)])
    frame["city"] = rng.choice(["Oslo", "Lima", "Pune", "Kobe"], block)
    frame["customer_id"] = [f"C{i:07d}" for i in range(block)]
    frame["when"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 365, block), unit="s")
                     ).strftime("%Y-%m-%d %H:%M:%S")
    frame["price"] = [f"{v:,.2f}" for v in rng.uniform(100, 2e6, block)]
    header, body = frame.to_csv(index=False).encode().split(b"\n", 1)
    with open(path, "wb") as f:
        f.write(header + b"\n" + body * 40)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in (("200k numeric rows", numeric_file), ("mixed file under the cap", mixed_file)):
            path = os.path.join(tmp, "file.csv")
            make(path)
            size = os.path.getsize(path) / 2**20
            base, ours = run(path, "pandas"), run(path, "trainscope")
            print(f"{label}: {size:.1f} MB, {ours['rows']:,} rows")
            print(f"  pandas.read_csv  {base['seconds']:6.2f} s   peak {base['peak_mb']:5.0f} MB "
                  f"(+{base['peak_mb'] - base['before_mb']:.0f} MB)")
            print(f"  core.load_csv    {ours['seconds']:6.2f} s   peak {ours['peak_mb']:5.0f} MB "
                  f"(+{ours['peak_mb'] - ours['before_mb']:.0f} MB)   "
                  f"ratio {ours['seconds'] / base['seconds']:.1f}x time, "
                  f"{(ours['peak_mb'] - ours['before_mb']) / max(base['peak_mb'] - base['before_mb'], 1):.1f}x "
                  "added memory")
            print(f"  data checks      {ours['checks_s']:6.2f} s   found: {ours['checks'] or 'none'}")


if __name__ == "__main__":
    main()
