"""The batch-size sweep against its own bare training: what the measures cost on top.

Run: .venv/bin/python bench/batch_sweep.py [dataset ...]   (default: moons digits)
For each dataset it runs the page's default sweep (core.diagnoses.batch_size.Config(), lab
setup MLP 16-16 tanh, seed 0) and, interleaved, the same sweep's bare training (train() once per
batch size, no sharpness, interpolation or noise scale). It prints the sweep's wall time, the
per-size training and measuring times, the bare training time and the ratio sweep / bare
(best of REPEATS each). Target: the default sweep in about 20 s or less on 2 cores.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import core  # noqa: E402,F401  (one torch thread)
from core.data import load_builtin  # noqa: E402
from core.diagnoses.batch_size import Config, resolve_sizes, run  # noqa: E402
from core.lab import LabSetup, build_model  # noqa: E402
from core.train import TrainConfig, split_data, train  # noqa: E402

REPEATS = 2


def bare_training(data, setup: LabSetup, config: Config) -> float:
    """Wall time of training every size of the sweep with train(), nothing else."""
    split = split_data(data, "standard", config.val_fraction, setup.seed)
    start = time.perf_counter()
    for b in resolve_sizes(config, len(split.X_train)):
        model = build_model(setup, split.n_features, split.n_outputs)
        train(model, split, TrainConfig(optimizer=config.optimizer, lr=config.lr, epochs=config.epochs,
                                        batch_size=b, device=config.device, seed=setup.seed))
    return time.perf_counter() - start


def main(names: list[str]) -> None:
    setup, config = LabSetup(), Config()
    # Warm-up: the first torch.optim step of a process imports torch._dynamo (seconds, one-off;
    # the app does it at start-up), which must not land in either timing.
    first = load_builtin("moons")
    run(first, setup, replace(config, batch_sizes=(32, 0), epochs=1, trace_probes=2, noise_batches=1))
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average) on {os.cpu_count()} cores")
    for name in names:
        data = load_builtin(name)
        sweeps, bares, result = [], [], None
        for _ in range(REPEATS):  # interleaved, so a burst of load elsewhere hits both alike
            start = time.perf_counter()
            result = run(data, setup, config)
            sweeps.append(time.perf_counter() - start)
            bares.append(bare_training(data, setup, config))
        sweep, bare = min(sweeps), min(bares)
        print(f"\n{name}: {result.n_train} training rows, {result.n_params} parameters, "
              f"{config.epochs} epochs, {config.optimizer} lr {config.lr:g}")
        print(f"{'batch':>12} {'updates':>8} {'train s':>8} {'ms/epoch':>9} {'ms/update':>10} {'measures s':>11}")
        for r in result.sweep.itertuples():
            print(f"{r.label:>12} {r.updates:>8} {r.train_seconds:>8.3f} {1000 * r.seconds_per_epoch:>9.2f} "
                  f"{1000 * r.seconds_per_update:>10.3f} {r.measure_seconds:>11.3f}")
        print(f"sweep wall time {sweep:.2f} s (best of {REPEATS}), bare training {bare:.2f} s, "
              f"ratio sweep / bare training {sweep / bare:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["moons", "digits"])
