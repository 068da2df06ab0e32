"""Overhead of core.probe.Probe against a bare training loop, measured side by side.

A small MLP (784-128-128-10, the size of the MNIST nets Cockpit is measured on) trained with
Adam on random batches of 128, one torch thread. Each round runs every variant on the same
updates, one after the other; the figure is the median over rounds of (probe loop time / bare
loop time of the same round), in CPU time of the process (the writer's thread included), which
a machine shared with other jobs distorts least. Cockpit's cheapest configuration costs 12-18x on a small MLP (its paper's
benchmark); the target here is at most 1.1x without curvature.

Run: `.venv/bin/python bench/probe.py` (about a minute); `--steps` and `--repeats` to change.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from core.probe import Probe  # noqa: E402


def make(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def loop(steps: int, probe_kwargs: dict | None, batches) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) for `steps` updates; with probe_kwargs, a
    Probe writes to a temporary folder. CPU time counts the writer's thread too, and is what a
    machine shared with other jobs still measures fairly."""
    model, opt = make()
    loss_fn = nn.CrossEntropyLoss()
    with tempfile.TemporaryDirectory() as tmp:
        probe = Probe(model, opt, tmp, **probe_kwargs) if probe_kwargs is not None else None
        start, cpu = time.perf_counter(), time.process_time()
        for k in range(steps):
            x, y = batches[k % len(batches)]
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if probe is not None:
                probe.log(loss)
        if probe is not None:
            probe.close()  # flushing the last rows is part of the cost
        return time.process_time() - cpu, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(128, 784, generator=gen), torch.randint(0, 10, (128,), generator=gen)) for _ in range(50)]
    variants = {
        "bare loop": None,
        "probe, a row every 10 updates (default)": {"every": 10},
        "probe, every 10, no update ratios": {"every": 10, "ratios": False},
        "probe, a row every update": {"every": 1},
    }
    loop(200, None, batches)  # warm up the allocator and kernels
    best, wall, rounds = {}, {}, {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved, so a busy moment hits every variant alike
        times = {}
        for name, kwargs in variants.items():
            cpu, w = loop(args.steps, kwargs, batches)
            times[name] = cpu
            best[name] = min(best.get(name, float("inf")), cpu)
            wall[name] = min(wall.get(name, float("inf")), w)
        for name in variants:  # each round's ratio to the bare loop of the same round
            rounds[name].append(times[name] / times["bare loop"])
    base, base_wall = best["bare loop"], wall["bare loop"]
    print(f"{args.steps:,} updates of a 784-128-128-10 MLP (Adam, batch 128, 1 torch thread), best of {args.repeats} "
          "(CPU time of the process; wall time beside it):")
    for name, t in best.items():
        print(f"  {name:42s} {t:7.3f} s  {1e3 * t / args.steps:6.3f} ms/update  best {t / base:5.3f}x  "
              f"median of rounds {statistics.median(rounds[name]):5.3f}x   (wall {wall[name]:6.3f} s)")
    ratio = statistics.median(rounds["probe, a row every 10 updates (default)"])
    print(f"Probe overhead (default, no curvature): {ratio:.3f}x the bare loop, median of {args.repeats} paired rounds "
          "(target <= 1.1x; Cockpit's cheapest configuration: 12-18x).")


if __name__ == "__main__":
    main()
