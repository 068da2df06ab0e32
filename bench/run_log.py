"""A 1,000,000-step training log: load and diagnose times, against pandas reading the same bytes.

The log is made here: a loss falling as 1/sqrt(step) with 5% multiplicative noise and three
spikes (3x) at known steps, a noisy gradient norm, and a warmup + cosine rate (2,000 warm-up
steps to 3e-4, cosine to 0 at step 1,000,000), written as a plain CSV (about 31 MB, under the
50 MB upload cap) and as the same run in Lightning's metrics.csv layout. The baseline is
`pandas.read_csv` of the same bytes: the floor any CSV reader pays. Also timed: a TensorBoard
event file (tensorboard's pure-Python reader) of `--tb-steps` steps, 3 scalars each.

Run: `.venv/bin/python bench/run_log.py` (about 30 s).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core.diagnoses.run_log import run  # noqa: E402
from core.runlog import load_log  # noqa: E402

SPIKES = (150_000, 420_000, 777_777)


def make_csv(n: int, header: str = "step,loss,grad_norm,learning_rate") -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    warm = 2000
    lr = 3e-4 * np.where(t < warm, 0.01 + 0.99 * t / warm, 0.5 * (1 + np.cos(np.pi * (t - warm) / (n - warm))))
    loss = (2.0 + 8.0 / np.sqrt(1 + t / 500)) * np.exp(0.05 * rng.standard_normal(n))
    loss[list(SPIKES)] *= 3
    grad = 1.0 + 0.2 * rng.standard_normal(n) ** 2
    buf = io.StringIO()
    buf.write(header + "\n")
    np.savetxt(buf, np.column_stack([t, loss, grad, lr]), fmt=["%d", "%.5g", "%.4g", "%.6g"], delimiter=",")
    return buf.getvalue().encode()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--tb-steps", type=int, default=50_000)
    args = parser.parse_args()
    raw = make_csv(args.steps)
    print(f"{args.steps:,}-step log: {len(raw) / 2**20:.1f} MB of CSV")
    _, base = timed(lambda: pd.read_csv(io.BytesIO(raw)))
    log, t_load = timed(lambda: load_log(raw, "big.csv"))
    result, t_run = timed(lambda: run(log))
    print(f"  pandas.read_csv (baseline)   {base:6.2f} s")
    print(f"  core.runlog.load_log         {t_load:6.2f} s   {t_load / base:4.1f}x the baseline")
    print(f"  core.diagnoses.run_log.run   {t_run:6.2f} s")
    print(f"  load + diagnose              {t_load + t_run:6.2f} s   (target: under 10 s)")
    found = result.spikes["step"].tolist()
    print(f"  spikes found at {found} (made at {list(SPIKES)}); schedule: {result.schedule.describe()}")
    sizes = result.curve.groupby("series").size().to_dict()
    print(f"  chart points per series: {sizes}; every spike drawn: "
          f"{set(SPIKES) <= set(result.curve[result.curve['series'] == 'loss']['step'])}")

    # Lightning's layout: the same run, epoch column, train_loss_step
    raw_pl = make_csv(args.steps, "step,train_loss_step,grad_2.0_norm_total,lr-Adam")
    raw_pl = raw_pl.replace(b"step,", b"epoch,step,", 1)
    lines = raw_pl.split(b"\n")
    raw_pl = b"\n".join([lines[0]] + [b"0," + line for line in lines[1:] if line])
    log_pl, t_pl = timed(lambda: load_log(raw_pl, "metrics.csv"))
    _, t_pl_run = timed(lambda: run(log_pl))
    print(f"  Lightning metrics.csv layout: load {t_pl:.2f} s + diagnose {t_pl_run:.2f} s ({log_pl.format})")

    # TensorBoard: tensorboard's own (pure-Python) event reader
    from torch.utils.tensorboard import SummaryWriter

    with tempfile.TemporaryDirectory() as tmp:
        frame = log.steps.iloc[: args.tb_steps]
        writer = SummaryWriter(tmp)
        for row in frame.itertuples(index=False):
            writer.add_scalar("train/loss", row.loss, row.step)
            writer.add_scalar("train/grad_norm", row.grad_norm, row.step)
            writer.add_scalar("train/learning_rate", row.lr, row.step)
        writer.close()
        path = next(os.path.join(tmp, f) for f in os.listdir(tmp) if "tfevents" in f)
        tb_log, t_tb = timed(lambda: load_log(path))
        _, t_tb_run = timed(lambda: run(tb_log))
        size = os.path.getsize(path) / 2**20
    rate = 3 * args.tb_steps / t_tb
    print(f"  TensorBoard event file, {args.tb_steps:,} steps x 3 tags ({size:.1f} MB): load {t_tb:.2f} s "
          f"({rate:,.0f} scalars/s; a 50 MB file holds ~{50 / size * 3 * args.tb_steps:,.0f}), diagnose {t_tb_run:.2f} s")


if __name__ == "__main__":
    main()
