"""train() with its per-step records against a bare torch loop: same model, data, batch size.

Run: .venv/bin/python bench/train_overhead.py
Prints both wall times (best of several repeats) and the ratio train() / bare loop (target <= 1.2).
"""
from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import core  # noqa: E402,F401  (one torch thread)
from core.data import load_builtin  # noqa: E402
from core.models import ModelSpec, build_mlp  # noqa: E402
from core.train import TrainConfig, split_data, train  # noqa: E402

SPEC = ModelSpec(hidden=(64, 32), activation="relu")
EPOCHS, BATCH, LR, REPEATS = 10, 32, 1e-3, 7


def bare_loop(split) -> float:
    """The minimal loop a user would write: permute, slice, forward, backward, step."""
    model = build_mlp(SPEC, split.n_features, split.n_outputs, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    X, y = torch.as_tensor(split.X_train), torch.as_tensor(split.y_train)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def with_train(split) -> float:
    model = build_mlp(SPEC, split.n_features, split.n_outputs, seed=0)
    start = time.perf_counter()
    train(model, split, TrainConfig(optimizer="adam", lr=LR, epochs=EPOCHS, batch_size=BATCH, device="cpu"))
    return time.perf_counter() - start


def main() -> None:
    data = load_builtin("digits")
    split = split_data(data, seed=0)
    steps = EPOCHS * math.ceil(len(split.X_train) / BATCH)
    with_train(split), bare_loop(split)  # warm-up (allocator, first-call dispatch)
    # Interleaved so a burst of load elsewhere on the machine hits both sides alike.
    bare_times, our_times = [], []
    for _ in range(REPEATS):
        bare_times.append(bare_loop(split))
        our_times.append(with_train(split))
    bare, ours = min(bare_times), min(our_times)
    print(f"digits {split.X_train.shape}, {SPEC.describe()}, batch {BATCH}, {EPOCHS} epochs = {steps} steps, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'loop':<28}{'seconds':>10}{'ms/step':>10}")
    print(f"{'bare torch loop (baseline)':<28}{bare:>10.3f}{1000 * bare / steps:>10.3f}")
    print(f"{'core.train.train':<28}{ours:>10.3f}{1000 * ours / steps:>10.3f}")
    print(f"ratio train/bare: {ours / bare:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
