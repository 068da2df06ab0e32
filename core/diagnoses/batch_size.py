"""Batch size against speed, optimisation, generalisation and sharpness (lecture section 4).

`run` does three experiments on the lab model and decides every claim against the noise:

1. **Timing profile** (`time_profile`): wall time of one update (forward, backward, optimizer
   step) at batch sizes 1, 2, 4, ... up to the whole training split, on the device the lab setup
   chose, several timed updates each; the time of one row's forward + backward processed alone
   (what an update costs without parallelism: b of them one after another); the time per epoch
   (per-update time x updates per epoch); and `parallel_limit`, the batch size from which the
   per-update time stays clearly above its small-batch level (where parallelism runs out).
2. **The sweep**: for each of `Config.seeds` seeds (core.runs.seeds_for; each seed draws its own
   train/validation split, initial weights and batch order) and each batch size, core.runs.run_model
   trains the lab model with the same budget (the same number of updates, or the same epochs) and
   the same learning rate.
3. **Measures at each run's end**, on a subsample of its training split (float64, CPU): the
   gradient and curvature there and core.rules.critical_test (is the gradient ~0?). A mini-batch
   run ends jittering around a minimum, so before sharpness is measured the point is *settled*:
   full-batch gradient descent at the safe rate 1 / lambda_max (halved whenever a step would raise
   the loss) until the critical-point rule holds (`settle`); the page reports how far that moved
   and how much it lowered the loss. At the settled point: lambda_max, Keskar's epsilon-sharpness
   (`epsilon_sharpness`) and the Hessian trace. Also the gradient noise scale B_simple at the end
   of the smallest batch's runs (`gradient_noise_scale`, McCandlish et al. 2018) and, for the
   first seed, the loss along the line between the smallest- and largest-batch solutions
   (`interpolation_frame`, Keskar et al. 2017).

Findings (`Findings`) compare the smallest with the largest batch through
core.findings.compare (Welch's t-test across seeds or timing repeats); `make_verdict`
and `summary_table` word them. Nothing large is kept: no model states, no per-step records.

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> res = run(load_builtin("moons", n_samples=100), LabSetup(), Config(batch_sizes=(16, FULL), updates=20))
>>> list(res.sweep["batch_size"]), res.seeds
([16, 80], (0, 1, 2))
"""
from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize
from torch import nn
from torch.func import functional_call

from core.curvature import gradient, hessian_extremes, hutchinson_trace, model_loss
from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress, Ticker
from core.findings import SIGNIFICANCE, Comparison, compare
from core.diagnoses.words import capital, comparison_sentence, divergence_sentence, factor, gaps_as_text, num
from core.lab import LabSetup
from core.models import n_params as count_params
from core.rules import Divergence, critical_test
from core.runs import build, on_device, prepare_split, run_model, seeds_for, subsample_rows
from core.train import (
    OPTIMIZERS,
    Split,
    TrainConfig,
    check_dataset_size,
    evaluate,
    make_loss,
    make_optimizer,
    metric_name,
    pick_device,
)

FULL = 0  # in Config.batch_sizes: "the whole training split"
AUTO_SIZES = (8, 32, 128)  # the automatic spread: these (where smaller than the split) and the full batch
MAX_SIZES = 8  # more sizes than this make the page too slow to stay interactive
MIN_SEEDS, MAX_SEEDS = 2, 10  # a claim across seeds needs two of them; ten bound the time
MAX_UPDATES = 5_000  # updates per run (per size and seed), whatever the budget
MAX_TRAIN_ROWS = 50_000  # the most training rows the sweep may train on (Config.max_train_rows)
# Time estimate behind the page's two-minute bound (`estimated_seconds`, one CPU thread): an
# update of a tiny MLP costs ~0.25 ms plus ~1e-9 s per row x parameter; the measures at a run's
# end (curvature, settling, sharpness) ~0.05 s plus ~3.5e-7 s per measure row x parameter
# (measured: 0.21 s for 2,048 rows x 354 parameters, 1.4 s for 312 rows x 12,802).
UPDATE_SECONDS, ROW_PARAM_SECONDS = 5e-4, 1.5e-9
MEASURE_SECONDS, MEASURE_ROW_PARAM_SECONDS = 0.05, 3.5e-7
MAX_SECONDS = 80.0  # estimated training + measures; the timing profile and the rest stay within seconds
# Measures (curvature, sharpness, noise scale) use at most MEASURE_ROWS training rows, fewer for
# big models (rows x parameters <= MEASURE_WORK), so one Lanczos run stays well under a second.
MEASURE_ROWS, MEASURE_WORK = 2048, 4e6
# Timing profile: updates whose work (rows x parameters) passes this are not timed (one update
# would take ~0.3 s or more on a CPU thread); each size gets TIMING_REPEATS samples (fewer for
# slow sizes, at least TIMING_MIN_REPEATS), each the fastest of a block of up to TIMING_BLOCK
# updates, after one untimed warm-up update.
TIMING_MAX_WORK = 2e8
TIMING_REPEATS, TIMING_MIN_REPEATS, TIMING_BLOCK, TIMING_SIZE_SECONDS = 10, 3, 5, 0.05
SEQUENTIAL_ROWS = 32  # rows timed one at a time for the "no parallelism" cost
# Parallelism limit: the per-update time counts as risen once its typical time passes this multiple
# of the cheapest at any smaller size, and the difference passes Welch's test (findings.compare).
RISE_FACTOR = 1.5
TIMING_MIN_RATIO = 1.2  # "faster" needs at least this ratio of medians besides passing the t-test
SETTLE_LEGS = 3  # settle legs, each followed by a fresh curvature measurement
CURVE_POINTS = 12  # about this many evaluations along each run (for the loss-over-updates chart)


@dataclass(frozen=True)
class Config:
    """The sweep. Defaults are the page's default run (moons: 8, 32, 128 and 320 rows, 3 seeds)."""

    batch_sizes: tuple[int, ...] = ()  # rows per update; FULL (0) = whole training split; () = auto_sizes
    budget: str = "updates"  # "updates": every size takes `updates` steps; "epochs": `epochs` passes
    updates: int = 300  # updates per run under the "updates" budget
    epochs: int = 20  # passes over the training split per run under the "epochs" budget
    seeds: int = 3  # runs per batch size (each seed its own split, weights and batch order)
    optimizer: str = "adam"  # a core.train.OPTIMIZERS name; Keskar et al. compared batch sizes with Adam
    lr: float = 0.01  # the same learning rate for every size (no scaling rule), so only the batch varies
    max_train_rows: int = 4096  # train on at most this many rows of the training split (the "full" batch)
    eps: float = 1e-3  # epsilon-sharpness box half-width, relative: |delta_i| <= eps * (|theta_i| + 1)
    sharpness_iters: int = 20  # L-BFGS-B iterations per start (bounded: the measure is a local maximum anyway)
    sharpness_starts: int = 0  # random starts in the box, besides the vertices along the top eigenvector
    trace_probes: int = 20  # Rademacher probes for the Hutchinson trace (fixed count: fixed cost)
    settle_steps: int = 300  # most full-batch descent steps to reach a point where the gradient is ~0
    noise_batches: int = 16  # batch pairs drawn for the noise scale; averaging steadies the estimate
    interp_points: int = 41  # alphas in [-0.5, 1.5]; 41 puts points exactly on 0 and 1
    val_fraction: float = 0.2  # held-out share (of each seed's split)

    @property
    def same_updates(self) -> bool:
        """True when every size gets the same number of updates."""
        return self.budget == "updates"


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TimingProfile:
    """Per-update wall times against the batch size on one device."""

    samples: pd.DataFrame  # batch_size, repeat, ms: every timing sample (the fastest of a block of updates)
    frame: pd.DataFrame  # batch_size, updates_per_epoch, ms (median sample), low_ms, high_ms (fastest, slowest sample), repeats, epoch_ms, sequential_ms
    device: str  # where the updates ran ("cpu", "cuda:0", ...)
    threads: int  # torch intra-op threads (CPU)
    n_rows: int  # rows an epoch covers (the whole training split)
    row_ms: float  # one row's forward + backward, rows processed one at a time
    step_ms: float  # one optimizer step (zero_grad + step) alone
    limit: int | None  # parallel_limit: first size of the final rise, None = no rise over the sizes timed
    base_ms: float  # the cheapest typical time over the sizes timed (the flat level)
    skipped: tuple[int, ...]  # sizes too large to time (TIMING_MAX_WORK)


@dataclass(frozen=True)
class Failure:
    """A run that did not train: it diverged (with its Divergence) or its loss rose."""

    batch_size: int
    seed: int
    kind: str  # "diverged" or "no_progress"
    divergence: Divergence | None
    start_loss: float
    end_loss: float


@dataclass(frozen=True)
class SpeedFinding:
    """What the timing profile says about small against large batches on this device."""

    device: str
    threads: int
    limit: int | None  # parallel_limit
    largest_timed: int
    base_ms: float
    row_ms: float
    step_ms: float
    n_rows: int  # rows per epoch
    marginal_row_ms: float  # extra ms per extra row, from the cheapest size to the largest timed
    update: Comparison | None  # per-update ms, small vs large (lower is better)
    epoch: Comparison | None  # per-epoch ms, small vs large
    update_gap: str = "noise"  # time_gap of `update`: "clear", "small" (beyond the noise, under the ratio), "noise"
    epoch_gap: str = "noise"  # time_gap of `epoch`


@dataclass(frozen=True)
class SharpnessFinding:
    """Sharpness of the settled points, small against large, and whether the measures agree.

    kind: "agree" (every measure with a clear difference points the same way, at least two of
    them), "one_measure" (only one measure shows a clear difference), "disagree", "none" (no
    clear difference), or "not_critical" (fewer than two seeds of a side settled at a point where
    the gradient is ~0, so nothing is compared).
    """

    kind: str
    comparisons: tuple[Comparison, ...]  # lambda_max, eps_sharpness, hessian_trace; winner = flatter
    sharper: str | None  # key of the sharper run when kind is "agree" or "one_measure"
    critical: tuple[float, float]  # share of seeds whose settled point is critical (small, large)
    end_critical: tuple[float, float]  # share of seeds whose final weights were already critical
    settle_drop: tuple[float, float]  # mean training-loss drop while settling (small, large)
    settle_move: tuple[float, float]  # mean distance moved while settling, relative to |theta|


@dataclass(frozen=True)
class Findings:
    """The typed facts the verdict and the summary table are worded from."""

    small: int  # smallest batch size that trained
    large: int  # largest batch size that trained
    n_train: int
    n_val: int  # validation rows per seed
    n_measure: int  # training rows the curvature and sharpness measures used
    seeds: int  # seeds that ran
    budget: str
    updates: tuple[int, int]  # updates per run (small, large)
    metric: str
    speed: SpeedFinding | None
    optimisation: Comparison | None  # final training loss, lower is better
    generalisation: Comparison | None  # validation metric, higher is better
    sharpness: SharpnessFinding | None
    b_simple: float  # mean over seeds (inf: noise swamps the gradient; NaN: not measured)
    b_simple_spread: float
    failures: tuple[Failure, ...]


@dataclass(eq=False)
class Result:
    """What the diagnosis measured. Plain numbers and DataFrames (pickled by the UI cache)."""

    timing: TimingProfile
    runs: pd.DataFrame  # one row per (batch_size, seed), see RUN_COLUMNS
    sweep: pd.DataFrame  # one row per batch size: means and spreads over seeds, see `aggregate`
    curves: pd.DataFrame  # batch_size, seed, step, train_loss, val_metric (about CURVE_POINTS per run)
    interpolation: pd.DataFrame  # alpha, split ("train"/"validation"), loss, metric (first seed)
    interp_from: int | None  # batch size at alpha = 0
    interp_to: int | None  # batch size at alpha = 1
    noise: pd.DataFrame  # per seed: seed, grad_sq, trace_sigma, b_simple (end of the smallest batch's run)
    noise_batches: tuple[int, int]  # (B_small, B_big) used for the noise scale
    findings: Findings
    summary: pd.DataFrame  # the lecture's 4.3 table from this run's numbers (`summary_table`)
    verdict: Verdict
    metric: str  # "accuracy" or "R^2"
    n_train: int  # rows each run trained on (the full batch)
    n_split: int  # rows in the training split before the cap
    n_val: int  # validation rows per seed
    n_measure: int  # rows the measures used
    n_params: int
    seeds: tuple[int, ...]
    device: str
    notes: tuple[str, ...]  # plain sentences: subsamples, skipped measures
    seconds: float  # wall time of the whole diagnosis

    def b_simple_text(self) -> str:
        """B_simple for display: a number, 'unbounded' (noise swamps the gradient) or 'not measured'."""
        b = self.findings.b_simple
        if math.isfinite(b):
            return _rows(b)
        return "unbounded" if b == float("inf") else "not measured"

    def label(self, b: int) -> str:
        """How the page names a batch size: '32', or '320 (full)' for the whole training split."""
        return size_label(b, self.n_train)


RUN_COLUMNS = [
    "batch_size", "seed", "status", "diverged_at", "updates", "epochs", "train_seconds", "seconds_per_update",
    "start_loss", "train_loss", "val_loss", "train_metric", "val_metric", "gap",
    "end_grad_norm", "end_critical", "settle_steps", "settle_move", "settle_drop", "settled_loss",
    "settled_grad_norm", "critical", "eig_min", "lambda_max", "eps_sharpness", "hessian_trace",
]
MEASURES = ("train_loss", "val_loss", "train_metric", "val_metric", "gap", "lambda_max", "eps_sharpness",
            "hessian_trace", "settle_drop", "seconds_per_update")


def size_label(b: int, n_train: int) -> str:
    """'32', or '320 (full)' when b is the whole training split."""
    return f"{b:,} (full)" if b == n_train else f"{b:,}"


# --------------------------------------------------------------------------- config
def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """Parse '8, 32, 128, full' into (8, 32, 128, FULL), 'auto' into (); raise ValueError with a
    plain sentence.

    >>> parse_batch_sizes("8 32, full")
    (8, 32, 0)
    """
    if text.strip().lower() == "auto":
        return ()
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    if not parts:
        raise ValueError("Enter at least two batch sizes, e.g. '8, 32, 128, full'.")
    sizes = []
    for p in parts:
        if p.lower() in ("full", "all", "n"):
            sizes.append(FULL)
            continue
        try:
            sizes.append(int(p.replace("_", "")))
        except ValueError:
            raise ValueError(f"Batch sizes must be whole numbers or 'full', not {p!r}.") from None
        if sizes[-1] < 1:
            raise ValueError(f"A batch size must be at least 1, not {sizes[-1]}.")
    return tuple(sizes)


def auto_sizes(n_train: int) -> tuple[int, ...]:
    """The default spread from small to full batch: AUTO_SIZES below the split, then the split.

    >>> auto_sizes(320), auto_sizes(60), auto_sizes(6)
    ((8, 32, 128, 320), (8, 32, 60), (1, 6))
    """
    small = tuple(b for b in AUTO_SIZES if b < n_train) or (max(1, n_train // 4),)
    return small + (n_train,)


def resolve_sizes(config: Config, n_train: int, n_split: int | None = None) -> list[int]:
    """The sweep's batch sizes as sorted distinct row counts (FULL -> n_train), validated.

    ``n_split`` is the training split before the `max_train_rows` cap (for the message)."""
    sizes = []
    for b in config.batch_sizes or auto_sizes(n_train):
        if b == FULL:
            b = n_train
        if b < 1:
            raise ValueError(f"A batch size must be at least 1, not {b}.")
        if b > n_train:
            capped = (f" (a sample of {n_train:,} of the {n_split:,} training rows; raise the training-rows "
                      "cap to train on more)") if n_split and n_split > n_train else ""
            raise ValueError(
                f"The batch size {b:,} is larger than the training split{capped}: {n_train:,} rows; "
                f"use at most {n_train:,} or 'full'."
            )
        sizes.append(int(b))
    sizes = sorted(set(sizes))
    if len(sizes) < 2:
        raise ValueError("Compare at least two different batch sizes.")
    if len(sizes) > MAX_SIZES:
        raise ValueError(f"Compare at most {MAX_SIZES} batch sizes at once.")
    return sizes


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for impossible settings (sizes and the time
    estimate are checked once the split is known, by `check_budget`)."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.budget not in ("updates", "epochs"):
        raise ValueError("The budget is either the same number of updates or the same number of epochs.")
    if config.same_updates and not 1 <= config.updates <= MAX_UPDATES:
        raise ValueError(f"Train for between 1 and {MAX_UPDATES:,} updates per run.")
    if not config.same_updates and config.epochs < 1:
        raise ValueError("Train for at least one epoch.")
    if not MIN_SEEDS <= config.seeds <= MAX_SEEDS:
        raise ValueError(f"Use between {MIN_SEEDS} and {MAX_SEEDS} seeds (two are the fewest a spread needs).")
    if not 10 <= config.max_train_rows <= MAX_TRAIN_ROWS:
        raise ValueError(f"The training-rows cap must be between 10 and {MAX_TRAIN_ROWS:,}.")
    if not 0 < config.eps <= 0.5:
        raise ValueError("The sharpness box epsilon must be between 0 and 0.5.")
    if not 1 <= config.sharpness_iters <= 500 or not 0 <= config.sharpness_starts <= 10:
        raise ValueError("The sharpness search needs 1-500 iterations and 0-10 random starts.")
    if not 2 <= config.trace_probes <= 200:
        raise ValueError("The Hessian trace needs between 2 and 200 probes.")
    if not 0 <= config.settle_steps <= 2000:
        raise ValueError("Settling takes between 0 and 2,000 steps.")
    if not 1 <= config.noise_batches <= 200:
        raise ValueError("The noise scale needs between 1 and 200 batch pairs.")
    if not 3 <= config.interp_points <= 201:
        raise ValueError("The interpolation needs between 3 and 201 points.")
    if not 0 < config.val_fraction < 0.9:
        raise ValueError("The validation share must be between 0 and 0.9.")


def updates_for(config: Config, b: int, n_train: int) -> int:
    """Updates one run of batch size b takes under the config's budget."""
    return config.updates if config.same_updates else config.epochs * math.ceil(n_train / b)


def measure_rows(n_params: int, n_train: int) -> int:
    """Training rows the measures use: MEASURE_ROWS, fewer for big models (MEASURE_WORK), at least 256."""
    return int(min(n_train, MEASURE_ROWS, max(256, MEASURE_WORK // max(n_params, 1))))


def estimated_seconds(config: Config, sizes: list[int], n_train: int, n_params: int) -> float:
    """A deterministic estimate of the sweep's training and measuring time on one CPU thread
    (see UPDATE_SECONDS and MEASURE_SECONDS)."""
    measure = MEASURE_SECONDS + MEASURE_ROW_PARAM_SECONDS * measure_rows(n_params, n_train) * n_params
    per_seed = sum(updates_for(config, b, n_train) * (UPDATE_SECONDS + ROW_PARAM_SECONDS * b * n_params) + measure
                   for b in sizes)
    return config.seeds * per_seed


def check_budget(config: Config, sizes: list[int], n_train: int, n_params: int) -> None:
    """Refuse, with a plain sentence, a sweep past MAX_UPDATES per run or about MAX_SECONDS."""
    for b in sizes:
        k = updates_for(config, b, n_train)
        if k > MAX_UPDATES:
            raise ValueError(
                f"{config.epochs:,} epochs at batch size {b:,} are {k:,} updates per run; the page allows "
                f"{MAX_UPDATES:,}. Use fewer epochs, a larger smallest batch, or the same-updates budget."
            )
    est = estimated_seconds(config, sizes, n_train, n_params)
    if est > MAX_SECONDS:
        raise ValueError(
            f"This sweep would take about {est:,.0f} s to train and measure ({config.seeds} seeds x {len(sizes)} "
            f"sizes, {n_params:,} parameters, up to {n_train:,} rows a batch); the page's limit is about "
            f"{MAX_SECONDS:.0f} s. Use fewer seeds, updates or sizes, a smaller model or a lower training-rows cap."
        )


# --------------------------------------------------------------------------- timing profile
def _sync(device: torch.device) -> None:
    # Kernels run asynchronously on accelerators: wait for them before reading the clock.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timing_sizes(n_rows: int, extra: tuple[int, ...] = ()) -> list[int]:
    """1, 2, 4, ... below n_rows, n_rows itself, and `extra` (the sweep's sizes).

    >>> timing_sizes(20, (8, 12))
    [1, 2, 4, 8, 12, 16, 20]
    """
    sizes = {n_rows, *[b for b in extra if 1 <= b <= n_rows]}
    b = 1
    while b < n_rows:
        sizes.add(b)
        b *= 2
    return sorted(sizes)


def parallel_limit(samples: pd.DataFrame) -> int | None:
    """The batch size where the per-update time starts to rise for good, or None.

    ``samples`` has columns batch_size and ms (every timing sample). A size has *risen* when its
    median time passes RISE_FACTOR x the cheapest median at any size up to it, and the difference from that cheapest size's samples passes findings.compare on log
    times (`compare_times`: beyond the timing noise). The limit
    is the first size of the final run of risen sizes (a single slow size in the middle is a
    hiccup, not a limit); None when the largest size has not risen (flat all the way).

    >>> t = pd.DataFrame({"batch_size": [1, 1, 64, 64, 512, 512, 4096, 4096],
    ...                   "ms": [0.20, 0.21, 0.21, 0.22, 0.50, 0.52, 3.1, 3.2]})
    >>> parallel_limit(t)
    512
    """
    groups = {int(b): g["ms"].to_numpy(dtype=float) for b, g in samples.groupby("batch_size")}
    sizes = sorted(groups)
    if len(sizes) < 2:
        return None
    typical = [float(np.median(groups[b])) for b in sizes]
    risen = []
    cheapest = 0
    for i, b in enumerate(sizes):
        if typical[i] < typical[cheapest]:
            cheapest = i
        base = sizes[cheapest]
        up = typical[i] > RISE_FACTOR * typical[cheapest] and i != cheapest
        if up:
            c = compare_times("update_ms", "base", groups[base], "size", groups[b])
            up = c.winner == "base"
        risen.append(up)
    if not risen[-1]:
        return None
    k = len(sizes) - 1
    while k > 0 and risen[k - 1]:
        k -= 1
    return sizes[k]


def time_profile(model: nn.Module, split: Split, optimizer: str, lr: float, device: torch.device,
                 extra: tuple[int, ...] = (), on_progress: Progress | None = None, seed: int = 0) -> TimingProfile:
    """Time one update at each of `timing_sizes` on `device` (a scratch copy of `model` trains)."""
    on_progress = on_progress or no_progress
    model = copy.deepcopy(model).to(device).train()
    X = on_device(split.X_train, model)
    y = on_device(split.y_train, model)
    n = len(split.X_train)
    loss_fn = make_loss("auto", split.task, split.n_classes)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen).to(device)
    P = count_params(model)
    batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # Batch norm in training mode needs two rows a batch: its timing starts at batch 2.
    sizes = [b for b in timing_sizes(n, extra) if b >= 2 or not batch_norm]
    timed = [b for b in sizes if b * P <= TIMING_MAX_WORK or b == sizes[0]]
    skipped = tuple(b for b in sizes if b not in timed)

    def update(b: int) -> float:
        xb, yb = (X, y) if b >= n else (X[order[:b]], y[order[:b]])
        _sync(device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        opt.step()
        _sync(device)
        return 1000 * (time.perf_counter() - start)

    # The weights wander as the updates run; reset them so every size times the same model.
    state = copy.deepcopy(model.state_dict())
    rows = []
    for i, b in enumerate(timed):
        on_progress(i / (len(timed) + 1), f"timing batch {b:,} on {device}")
        first = min(update(b), update(b))  # warm-up: allocations and first-call dispatch land here
        # Each sample is the fastest of a block of updates (up to TIMING_BLOCK; timeit's advice:
        # the minimum is the least disturbed figure), so one stray pause of the machine does not
        # become a sample; slow sizes get one update per sample.
        block = int(min(TIMING_BLOCK, max(1, TIMING_SIZE_SECONDS / TIMING_REPEATS / max(first / 1000, 1e-9))))
        spent, times = 0.0, []
        while len(times) < TIMING_REPEATS and (len(times) < TIMING_MIN_REPEATS or spent < TIMING_SIZE_SECONDS):
            ms = [update(b) for _ in range(block)]
            times.append(float(np.min(ms)))
            spent += sum(ms) / 1000
        rows += [(b, k, t) for k, t in enumerate(times)]
        model.load_state_dict(state)
        opt = make_optimizer(optimizer, model.parameters(), lr)
    samples = pd.DataFrame(rows, columns=["batch_size", "repeat", "ms"])

    # No parallelism: the rows of a batch one after another (forward + backward each), then one step.
    on_progress(len(timed) / (len(timed) + 1), "timing rows one at a time")
    k = min(SEQUENTIAL_ROWS, n)
    row_times, step_times = [], []
    # One row at a time cannot run batch norm in training mode; its statistics cost next to nothing
    # at one row, so such a model is timed in eval mode here.
    model.train(not batch_norm)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        _sync(device)
        start = time.perf_counter()
        for r in range(k):
            idx = order[r : r + 1]
            loss_fn(model(X[idx]), y[idx]).backward()
        _sync(device)
        row_times.append(1000 * (time.perf_counter() - start) / k)
        start = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        step_times.append(1000 * (time.perf_counter() - start))
    row_ms, step_ms = float(np.median(row_times)), float(np.median(step_times))

    g = samples.groupby("batch_size")["ms"]
    frame = pd.DataFrame({
        "batch_size": np.array(timed, dtype=np.int64),
        "ms": g.median().to_numpy(), "low_ms": g.min().to_numpy(),
        "high_ms": g.max().to_numpy(), "repeats": g.size().to_numpy().astype(np.int64),
    })
    frame.insert(1, "updates_per_epoch", np.array([math.ceil(n / b) for b in timed], dtype=np.int64))
    frame["epoch_ms"] = frame["ms"] * frame["updates_per_epoch"]
    frame["sequential_ms"] = frame["batch_size"] * row_ms + step_ms
    on_progress(1.0, "timing done")
    return TimingProfile(samples=samples, frame=frame, device=str(device), threads=torch.get_num_threads(),
                         n_rows=n, row_ms=row_ms, step_ms=step_ms, limit=parallel_limit(samples),
                         base_ms=float(frame["ms"].min()), skipped=skipped)


def compare_times(measure: str, a: str, a_ms, b: str, b_ms) -> Comparison:
    """findings.compare on log times (lower is better): timing noise is multiplicative (a pause
    slows an update by a factor). The values reported back are the medians in ms; a winner also
    needs the slower median to pass TIMING_MIN_RATIO x the faster.

    >>> compare_times("update_ms", "a", [1.0, 1.1, 0.9], "b", [3.0, 3.3, 2.7]).winner
    'a'
    """
    a_ms, b_ms = np.asarray(a_ms, dtype=float), np.asarray(b_ms, dtype=float)
    c = compare(measure, a, np.log(a_ms), b, np.log(b_ms), higher_is_better=False)
    c = replace(c, a_value=float(np.median(a_ms)), b_value=float(np.median(b_ms)),
                spread_a=float("nan"), spread_b=float("nan"))
    lo, hi = sorted((c.a_value, c.b_value))
    if c.winner is not None and not hi > TIMING_MIN_RATIO * lo:
        c = replace(c, winner=None)  # significant but small: a busy machine shifts times this much
    return c


def time_gap(c: Comparison | None) -> str:
    """How a `compare_times` comparison came out, keeping significance and size apart:
    "clear" (a winner: beyond the timing noise and past TIMING_MIN_RATIO), "small" (beyond the
    timing noise by Welch's t-test, but the medians are TIMING_MIN_RATIO x or less apart) or
    "noise" (within the timing noise).

    >>> time_gap(compare_times("m", "a", [1.0, 1.01, 0.99], "b", [1.1, 1.11, 1.09]))
    'small'
    """
    if c is None:
        return "noise"
    if c.winner is not None:
        return "clear"
    return "small" if math.isfinite(c.p_value) and c.p_value < SIGNIFICANCE else "noise"


# --------------------------------------------------------------------------- sharpness
@dataclass(frozen=True, eq=False)
class EpsSharpness:
    """Keskar et al.'s epsilon-sharpness at a point and the perturbation that achieved it."""

    value: float  # 100 * (max f(theta + delta) - f(theta)) / (1 + f(theta)), in percent
    loss: float  # f(theta)
    max_loss: float  # the largest f(theta + delta) found in the box
    delta: np.ndarray  # the maximizing perturbation
    n_evals: int  # loss + gradient evaluations spent


def epsilon_sharpness(
    f: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    eps: float = 1e-3,
    maxiter: int = 20,
    directions: tuple[np.ndarray, ...] = (),
    n_random: int = 2,
    seed: int = 0,
    should_stop: Callable[[], object] | None = None,
) -> EpsSharpness:
    """Keskar's sharpness: max of f(theta + delta) over |delta_i| <= eps * (|theta_i| + 1).

    The maximum is searched with scipy's L-BFGS-B (bounds = the box) on -f, with the exact
    gradient from torch, at most ``maxiter`` iterations per start. At a minimum the gradient is
    zero, so delta = 0 is no start: each of ``directions`` (e.g. the top Hessian eigenvector)
    starts at the box vertex sign(d) and at -sign(d), and ``n_random`` more start uniformly in the
    box (seeded); the best end point counts. A local search: on a convex quadratic the maximum
    sits at a vertex, which the starts reach for small problems; in general it is a lower bound.
    Away from a minimum the slope dominates it (f rises along the gradient): measure it where the
    gradient is ~0 (`settle`). ``should_stop`` is called before every evaluation.

    >>> A = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> s = epsilon_sharpness(lambda x: 0.5 * x @ A @ x, torch.zeros(2, dtype=torch.float64), eps=0.1)
    >>> round(s.value, 6)   # 100 * 0.5 * 0.1^2 * (1 + 4)
    2.5
    """
    theta = torch.as_tensor(theta).detach().to("cpu", torch.float64)
    x0 = theta.numpy().copy()
    bound = eps * (np.abs(x0) + 1.0)
    count = [0]

    def neg(u: np.ndarray) -> tuple[float, np.ndarray]:
        # Searched in box units u = delta / bound in [-1, 1]: every coordinate on the same scale.
        if should_stop is not None:
            should_stop()
        count[0] += 1
        t = torch.as_tensor(x0 + bound * u).requires_grad_(True)
        with torch.enable_grad():
            value = f(t)
            (g,) = torch.autograd.grad(value, t)
        v = float(value.detach())
        if not math.isfinite(v):  # a blown-up model: tell L-BFGS-B this point is no maximum
            return 0.0, np.zeros_like(u)
        # Minimize the loss increase over the base loss, scaled by `scale`: L-BFGS-B's stopping
        # tests are absolute for values below 1, and the increase is tiny (order eps^2).
        return -(v - base) / scale, -(g.detach().to(torch.float64).numpy() * bound) / scale

    with torch.no_grad():
        base = float(f(theta))
    scale = eps**2 * (1.0 + abs(base))
    rng = np.random.default_rng(seed)
    starts = []
    for d in directions:
        s = np.sign(np.asarray(d, dtype=np.float64).reshape(-1))
        s[s == 0] = 1.0
        starts += [s, -s]
    starts += [rng.uniform(-1.0, 1.0, x0.size) for _ in range(n_random)]
    if not starts:
        starts = [rng.uniform(-1.0, 1.0, x0.size)]
    best_value, best_delta = base, np.zeros_like(x0)
    box = [(-1.0, 1.0)] * x0.size
    for start in starts:
        out = minimize(neg, start, jac=True, method="L-BFGS-B", bounds=box, options={"maxiter": maxiter})
        value = base - float(out.fun) * scale
        if value > best_value:
            best_value, best_delta = value, bound * np.asarray(out.x, dtype=np.float64)
    sharp = 100.0 * (best_value - base) / (1.0 + base)
    return EpsSharpness(sharp, base, best_value, best_delta, count[0])


@dataclass(frozen=True, eq=False)
class Settled:
    """Where `settle` stopped: the point, the steps taken and the losses before and after."""

    theta: torch.Tensor
    steps: int
    start_loss: float
    loss: float
    grad_norm: float
    critical: bool  # the critical-point rule held when it stopped (with the starting curvature)


def settle(f, theta: torch.Tensor, eig_min: float, eig_max: float, loss_scale: float, max_steps: int,
           should_stop: Callable[[], object] | None = None) -> Settled:
    """Full-batch gradient descent from `theta` until core.rules.critical_test holds.

    The rate is the safe 1 / lambda_max (`eig_max`, the curvature at the start), halved whenever
    a step would raise the loss, so the descent stays in the basin the run ended in: it only
    removes the slope a mini-batch run leaves behind (or shows, by how far the loss still falls,
    that a run had not reached a minimum). The test uses the starting curvature; the caller
    re-measures it at the end.

    >>> A = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> s = settle(lambda x: 0.5 * x @ A @ x, torch.tensor([1.0, 1.0], dtype=torch.float64), 1.0, 4.0, 1.0, 500)
    >>> s.critical, s.steps > 0, s.loss < s.start_loss
    (True, True, True)
    """
    theta = torch.as_tensor(theta).detach().clone()
    lr = 1.0 / eig_max if eig_max > 0 and math.isfinite(eig_max) else 1.0

    def value_grad(t: torch.Tensor) -> tuple[float, torch.Tensor]:
        t = t.clone().requires_grad_(True)
        with torch.enable_grad():
            v = f(t)
            (g,) = torch.autograd.grad(v, t)
        return float(v.detach()), g.detach()

    start, g = value_grad(theta)
    loss, steps = start, 0
    test = critical_test(float(g.norm()), eig_min, eig_max, loss_scale)
    while not test.critical and steps < max_steps and math.isfinite(loss):
        if should_stop is not None:
            should_stop()
        for _ in range(30):  # backtracking: a step that raises the loss is retried at half the rate
            trial = theta - lr * g
            new_loss, new_g = value_grad(trial)
            if new_loss <= loss:
                break
            lr /= 2
        else:
            break  # no step lowers the loss: numerically at the bottom
        theta, loss, g, steps = trial, new_loss, new_g, steps + 1
        test = critical_test(float(g.norm()), eig_min, eig_max, loss_scale)
    return Settled(theta, steps, start, loss, float(g.norm()), test.critical)


# --------------------------------------------------------------------------- noise scale
def unbiased_noise_estimates(g2_small: float, g2_big: float, b_small: int, b_big: int) -> tuple[float, float]:
    """Unbiased |G|^2 and tr(Sigma) from squared gradient norms at two batch sizes.

    With batches drawn independently (with replacement), E|G_B|^2 = |G|^2 + tr(Sigma) / B, where
    Sigma is the per-example gradient covariance. Two sizes give two equations (McCandlish et al.
    2018, appendix A):
    |G|^2 = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small),
    tr(Sigma) = (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big).

    >>> unbiased_noise_estimates(1.0 + 8.0 / 2, 1.0 + 8.0 / 8, 2, 8)   # |G|^2 = 1, tr = 8
    (1.0, 8.0)
    """
    if not 0 < b_small < b_big:
        raise ValueError("The noise scale needs two batch sizes with 0 < B_small < B_big.")
    grad_sq = (b_big * g2_big - b_small * g2_small) / (b_big - b_small)
    trace = (g2_small - g2_big) / (1.0 / b_small - 1.0 / b_big)
    return float(grad_sq), float(trace)


@dataclass(frozen=True)
class NoiseScale:
    """The simple gradient noise scale B_simple = tr(Sigma) / |G|^2 and its ingredients."""

    b_simple: float  # inf when the |G|^2 estimate is not positive (noise dominates)
    grad_sq: float  # unbiased estimate of |G|^2, the squared norm of the full-data gradient
    trace_sigma: float  # unbiased estimate of tr(Sigma), per-example gradient variance
    g2_small: float  # mean squared norm of the B_small batch gradients
    g2_big: float  # mean squared norm of the B_big batch gradients
    b_small: int
    b_big: int
    n_batches: int


def gradient_noise_scale(
    batch_gradient: Callable[[np.ndarray], np.ndarray],
    n: int,
    b_small: int,
    b_big: int,
    n_batches: int = 16,
    seed: int = 0,
    should_stop: Callable[[], object] | None = None,
) -> NoiseScale:
    """Estimate B_simple from ``n_batches`` gradients at each of two batch sizes.

    ``batch_gradient(idx)`` returns the gradient of the mean loss over rows ``idx`` (numpy).
    Rows are drawn with replacement so the expectation in `unbiased_noise_estimates` holds
    exactly. The squared norms are averaged before the estimates are formed (the ratio of
    averages, steadier than an average of noisy ratios).
    """
    rng = np.random.default_rng(seed)
    small, big = [], []
    for _ in range(n_batches):
        if should_stop is not None:
            should_stop()
        small.append(float(np.sum(batch_gradient(rng.integers(0, n, b_small)) ** 2)))
        big.append(float(np.sum(batch_gradient(rng.integers(0, n, b_big)) ** 2)))
    g2s, g2b = float(np.mean(small)), float(np.mean(big))
    grad_sq, trace = unbiased_noise_estimates(g2s, g2b, b_small, b_big)
    return NoiseScale(_ratio(trace, grad_sq), grad_sq, trace, g2s, g2b, b_small, b_big, n_batches)


def _ratio(trace: float, grad_sq: float) -> float:
    return trace / grad_sq if grad_sq > 0 else float("inf")


def batch_noise(b_simple: float, b: int, n: int) -> float:
    """Variance of a batch-b gradient (rows drawn without replacement from n) over |G|^2:
    B_simple / b x (n - b) / (n - 1); 0 for the full batch.

    >>> batch_noise(40.0, 8, 321), batch_noise(40.0, 321, 321)   # 40 / 8 * 313 / 320
    (4.890625, 0.0)
    """
    if n <= 1 or not math.isfinite(b_simple):
        return float("nan") if b < n else 0.0
    return b_simple / b * (n - b) / (n - 1)


def batch_gradient_fn(model: nn.Module, loss_fn: Callable, X: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``idx -> gradient`` of the mean loss over rows ``idx`` (float64 numpy, on the CPU), in the
    model's mode.

    The data are cast to float64 once and the model is called functionally, so the model is not
    changed; rows may repeat in ``idx`` (sampling with replacement). The model must be on the CPU.
    """
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()])
    buffers = {n: b.detach().to(torch.float64) if b.is_floating_point() else b for n, b in model.named_buffers()}
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64))
    yt = torch.as_tensor(y)
    yt = yt.to(torch.float64) if yt.is_floating_point() else yt

    def batch_gradient(idx: np.ndarray) -> np.ndarray:
        t = theta.clone().requires_grad_(True)
        params = {n: c.view(s) for n, c, s in zip(names, t.split(sizes), shapes)}
        rows = torch.as_tensor(idx)
        with torch.enable_grad():
            out = functional_call(model, (params, {n: b.clone() for n, b in buffers.items()}), (Xt[rows],))
            return torch.autograd.grad(loss_fn(out, yt[rows]), t)[0].numpy()

    return batch_gradient


# --------------------------------------------------------------------------- interpolation
def state_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """A model's state_dict (parameters and buffers) as numpy copies on the CPU."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_state(model: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Load a `state_numpy` dict back into a model, on the model's device (returns the model)."""
    device = next(model.parameters()).device
    model.load_state_dict({k: torch.as_tensor(v, device=device) for k, v in state.items()})
    return model


def interpolation_frame(
    model: nn.Module,
    state_a: dict[str, np.ndarray],
    state_b: dict[str, np.ndarray],
    split: Split,
    loss_fn: Callable,
    alphas: np.ndarray,
    should_stop: Callable[[], object] | None = None,
) -> pd.DataFrame:
    """Loss and metric along theta(alpha) = (1 - alpha) * theta_a + alpha * theta_b.

    Floating buffers (batch-norm running statistics) are interpolated the same way, so alpha = 0
    and 1 are exactly the two trained models. Evaluated in eval mode on the training and the
    validation split. ``model`` is a scratch model of the right shape; its weights are overwritten.
    """
    rows = []
    for a in alphas:
        if should_stop is not None:
            should_stop()
        mixed = {
            k: ((1 - a) * va + a * state_b[k]).astype(va.dtype) if np.issubdtype(va.dtype, np.floating) else va
            for k, va in state_a.items()
        }
        load_state(model, mixed)
        for name, X, y in (("train", split.X_train, split.y_train), ("validation", split.X_val, split.y_val)):
            loss, metric = evaluate(model, X, y, split.task, loss_fn)
            rows.append((float(a), name, loss, metric))
    return pd.DataFrame(rows, columns=["alpha", "split", "loss", "metric"])


# --------------------------------------------------------------------------- the diagnosis
def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Time, train and measure every batch size over several seeds; see the module doc."""
    start = time.perf_counter()
    on_progress = on_progress or no_progress
    tick = Ticker(on_progress)
    validate(config)
    check_dataset_size(data)
    seeds = seeds_for(setup, config.seeds)
    full_split = prepare_split(data, setup, "standard", config.val_fraction)
    n_split = len(full_split.X_train)
    n_train = min(n_split, config.max_train_rows)
    sizes = resolve_sizes(config, n_train, n_split)
    probe = build(setup, full_split)
    n_params = count_params(probe)
    check_budget(config, sizes, n_train, n_params)
    if setup.model.batch_norm:
        for b in sizes:
            if n_train % b == 1:
                raise ValueError(
                    f"With batch norm every batch needs at least two rows, but batch size {b:,} leaves a last "
                    f"batch of one row out of {n_train:,}; choose another size."
                )
    # One device for every size, so the timings compare: "auto" decides for the largest batch.
    device = pick_device(setup.device, n_params, sizes[-1])
    notes = []
    if n_split > n_train:
        notes.append(f"Each run trains on a random sample of {n_train:,} of the {n_split:,} training rows "
                     f"(the training-rows cap keeps the page fast); 'full' means that sample. The timing "
                     f"profile uses all {n_split:,} rows.")

    # 1. Timing profile on the whole training split.
    profile = time_profile(probe, full_split, config.optimizer, config.lr, device, tuple(sizes),
                           sub_progress(on_progress, 0.0, 0.1), seed=setup.seed)
    if profile.skipped:
        notes.append(f"Batch sizes from {profile.skipped[0]:,} rows up were not timed: one update of this "
                     f"{n_params:,}-parameter model would take too long on one CPU thread.")
    del probe, full_split

    # 2 and 3. Train and measure every size for every seed.
    totals = [updates_for(config, b, n_train) for b in sizes]
    weights = np.array([t + 150.0 for t in totals] * len(seeds), dtype=float)  # 150: the measures
    edges = 0.1 + 0.85 * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    rows, curves, noise_rows, failures = [], [], [], []
    interp_states: dict[int, dict[str, np.ndarray]] = {}
    interp_split = None
    n_val = n_measure = 0
    for s_i, seed in enumerate(seeds):
        seed_setup = replace(setup, seed=seed)
        split = prepare_split(data, seed_setup, "standard", config.val_fraction, max_train_rows=n_train)
        n_val = len(split.X_val)
        mX, my = subsample_rows(split.X_train, split.y_train, measure_rows(n_params, n_train), split.task, seed)
        n_measure = len(mX)
        loss_fn = make_loss("auto", split.task, split.n_classes)
        for i, b in enumerate(sizes):
            k = s_i * len(sizes) + i
            part = sub_progress(on_progress, edges[k], edges[k + 1])
            label = f"batch {size_label(b, n_train)}, seed {seed}"
            per_epoch = math.ceil(n_train / b)
            epochs_total = math.ceil(totals[i] / per_epoch)
            tc = TrainConfig(
                optimizer=config.optimizer, lr=config.lr, batch_size=b, seed=seed, device=str(device),
                epochs=config.epochs, max_steps=totals[i] if config.same_updates else None,
                val_fraction=config.val_fraction, eval_every=max(1, epochs_total // CURVE_POINTS),
            )
            rec = run_model(split, seed_setup, tc, key=f"b{b}_s{seed}", message=f"training {label}",
                            on_progress=sub_progress(part, 0.0, 0.75))
            row, failure = _run_row(b, seed, rec, per_epoch)
            if failure is not None:
                failures.append(failure)
            else:
                tick.on_progress = sub_progress(part, 0.75, 1.0)
                tick.at(0.0, f"measuring {label}")
                row.update(measure_point(rec.model, loss_fn, mX, my, rec.start.train_loss, config, seed, tick).row())
                if b == sizes[0] and len(sizes) > 1:
                    tick.at(0.8, f"noise scale, seed {seed}")
                    noise_rows.append(_noise_at(rec.model, loss_fn, mX, my, (b, min(sizes[-1], n_measure)),
                                                config, seed, tick))
                if s_i == 0 and b in (sizes[0], sizes[-1]):
                    interp_states[b] = state_numpy(rec.model)
                    interp_split = split
            rows.append(row)
            ep = rec.history.epochs
            curves.append(pd.DataFrame({"batch_size": b, "seed": seed, "step": ep["step"].astype(np.int64),
                                        "train_loss": ep["train_loss"], "val_metric": ep["val_metric"]}))
            part(1.0, f"{label} done")
            del rec

    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for col in ("batch_size", "seed", "updates", "settle_steps"):
        runs[col] = runs[col].astype(np.int64)
    runs["epochs"] = runs["epochs"].astype(float)  # passes over the data: 300 updates of 40 per epoch are 7.5
    runs["diverged_at"] = runs["diverged_at"].astype("Int64")
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["batch_size", "seed", "step", "train_loss", "val_metric"])

    # Interpolation between the smallest- and largest-batch solutions of the first seed.
    tick.on_progress = on_progress
    tick.at(0.96, "interpolating between the smallest- and largest-batch solutions")
    alphas = np.round(np.linspace(-0.5, 1.5, config.interp_points), 10)
    interp = pd.DataFrame(columns=["alpha", "split", "loss", "metric"])
    interp_from = interp_to = None
    if len(interp_states) == 2 and interp_split is not None:
        interp_from, interp_to = sizes[0], sizes[-1]
        scratch = build(setup, interp_split).to(device)
        interp = interpolation_frame(scratch, interp_states[sizes[0]], interp_states[sizes[-1]], interp_split,
                                     make_loss("auto", interp_split.task, interp_split.n_classes), alphas, tick)
    else:
        notes.append("The interpolation needs the smallest and the largest batch of the first seed to train; "
                     "one of them did not.")
    del interp_states, interp_split

    noise = pd.DataFrame(noise_rows, columns=["seed", "grad_sq", "trace_sigma", "b_simple"])
    if noise.empty:
        notes.append("The noise scale needs a smallest-batch run that trained; none did.")
    metric = metric_name(data.task)
    sweep = aggregate(runs)
    findings = decide(runs, profile, noise, metric, n_train, n_val, config, tuple(failures), n_measure)
    return Result(
        timing=profile, runs=runs, sweep=sweep, curves=curves_frame, interpolation=interp,
        interp_from=interp_from, interp_to=interp_to, noise=noise,
        noise_batches=(sizes[0], min(sizes[-1], n_measure)), findings=findings,
        summary=summary_table(findings, profile), verdict=make_verdict(findings), metric=metric,
        n_train=n_train, n_split=n_split, n_val=n_val, n_measure=n_measure, n_params=n_params,
        seeds=tuple(seeds), device=str(device), notes=tuple(notes), seconds=time.perf_counter() - start,
    )


def _run_row(b: int, seed: int, rec, per_epoch: int) -> tuple[dict, Failure | None]:
    hist = rec.history
    steps = len(hist.steps) - (1 if hist.diverged_at is not None else 0)
    # Epoch rows time the updates only (not the evaluation); a run that diverged in its first
    # epoch has none, so fall back to the run's wall time.
    train_seconds = float(hist.epochs["seconds"].sum()) if len(hist.epochs) else float(hist.seconds)
    nan = float("nan")
    row = dict.fromkeys(RUN_COLUMNS, nan)
    row.update(
        batch_size=b, seed=seed, status="ok", diverged_at=rec.diverged_at, updates=steps,
        epochs=steps / per_epoch, train_seconds=train_seconds,
        seconds_per_update=train_seconds / steps if steps else nan, start_loss=rec.start.train_loss,
        train_loss=rec.end.train_loss, val_loss=rec.end.val_loss, train_metric=rec.end.train_metric,
        val_metric=rec.end.val_metric, gap=rec.end.train_metric - rec.end.val_metric, settle_steps=0,
        end_critical=False, critical=False,
    )
    failure = None
    if rec.divergence is not None:
        row["status"] = "diverged"
        failure = Failure(b, seed, "diverged", rec.divergence, rec.start.train_loss, rec.end.train_loss)
    elif not math.isfinite(rec.end.train_loss) or not rec.end.train_loss < rec.start.train_loss:
        row["status"] = "no_progress"
        failure = Failure(b, seed, "no_progress", None, rec.start.train_loss, rec.end.train_loss)
    if failure is not None:
        for key in ("train_loss", "val_loss", "train_metric", "val_metric", "gap"):
            row[key] = nan  # a failed run's numbers would only drag the means
    return row, failure


@dataclass(frozen=True, eq=False)
class PointMeasures:
    """The measures at one run's end (see `measure_point`); `theta` is the settled point."""

    end_grad_norm: float  # gradient norm at the final weights (on the measure rows)
    end_critical: bool  # core.rules.critical_test at the final weights
    settle_steps: int
    settle_move: float  # |theta_settled - theta_end| / |theta_end|
    settle_drop: float  # loss at the final weights - loss at the settled point
    settled_loss: float
    settled_grad_norm: float
    critical: bool  # core.rules.critical_test at the settled point (fresh curvature)
    eig_min: float
    lambda_max: float
    eps_sharpness: float  # percent
    hessian_trace: float
    theta: np.ndarray  # the settled parameters (float64); not kept in results

    def row(self) -> dict:
        """The scalar measures, for a results row."""
        return {k: v for k, v in self.__dict__.items() if k != "theta"}


def measure_point(model: nn.Module, loss_fn, X: np.ndarray, y: np.ndarray, loss_scale: float, config: Config,
                  seed: int = 0, should_stop: Callable[[], object] | None = None) -> PointMeasures:
    """Critical-point test at the model's weights, `settle`, then sharpness at the settled point.

    On a CPU float64 copy of the model in eval mode (batch norm uses its running statistics, so the
    loss is a fixed function of the weights); the model itself is untouched. ``loss_scale`` is the
    loss the run started from (core.rules.critical_test).
    """
    tick = should_stop if isinstance(should_stop, Ticker) else None
    stop = should_stop or (lambda: False)

    def advance() -> None:
        if tick is not None:
            tick.at(tick.fraction + 0.25, tick.message)

    cpu = copy.deepcopy(model).to("cpu").eval()
    f, theta = model_loss(cpu, loss_fn, X, y)
    g = float(gradient(f, theta).norm())
    with torch.no_grad():
        start_loss = float(f(theta))
    ext = hessian_extremes(f, theta, v0_seed=seed, should_stop=stop)
    end = critical_test(g, ext.eig_min, ext.eig_max, loss_scale)
    advance()
    # Settle, re-measuring the curvature after each leg: the rule is judged with the curvature
    # where the descent stopped, and a leg may stop early on its starting curvature.
    done = settle(f, theta, ext.eig_min, ext.eig_max, loss_scale, config.settle_steps, stop)
    steps, legs = done.steps, 1
    while True:
        if done.steps:
            ext = hessian_extremes(f, done.theta, v0_seed=seed, should_stop=stop)
        test = critical_test(done.grad_norm, ext.eig_min, ext.eig_max, loss_scale)
        if test.critical or not done.steps or steps >= config.settle_steps or legs >= SETTLE_LEGS:
            break
        done = settle(f, done.theta, ext.eig_min, ext.eig_max, loss_scale, config.settle_steps - steps, stop)
        steps, legs = steps + done.steps, legs + 1
    theta2 = done.theta
    advance()
    sharp = epsilon_sharpness(f, theta2, config.eps, config.sharpness_iters, directions=(ext.vec_max,),
                              n_random=config.sharpness_starts, seed=seed, should_stop=stop)
    trace = hutchinson_trace(f, theta2, min_samples=config.trace_probes, max_samples=config.trace_probes,
                             seed=seed, should_stop=stop)
    norm = float(theta.norm())
    return PointMeasures(
        end_grad_norm=g, end_critical=bool(end.critical), settle_steps=int(steps),
        settle_move=float((theta2 - theta).norm()) / norm if norm > 0 else float("nan"),
        settle_drop=start_loss - done.loss, settled_loss=done.loss, settled_grad_norm=done.grad_norm,
        critical=bool(test.critical), eig_min=ext.eig_min, lambda_max=ext.eig_max,
        eps_sharpness=sharp.value, hessian_trace=trace.trace, theta=theta2.detach().cpu().numpy(),
    )


def _noise_at(model: nn.Module, loss_fn, X, y, pair: tuple[int, int], config: Config, seed: int, tick) -> tuple:
    cpu = copy.deepcopy(model).to("cpu").eval()
    b_small, b_big = pair
    if b_big <= b_small:
        return (seed, float("nan"), float("nan"), float("nan"))
    est = gradient_noise_scale(batch_gradient_fn(cpu, loss_fn, X, y), len(X), b_small, b_big,
                               config.noise_batches, seed, should_stop=tick)
    return (seed, est.grad_sq, est.trace_sigma, est.b_simple)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Per batch size: runs that trained, and mean / standard deviation (over those seeds) of every
    measure in MEASURES; sharpness means only over seeds whose settled point is critical."""
    out = []
    for b, g in runs.groupby("batch_size", sort=True):
        ok = g[g["status"] == "ok"]
        crit = ok[ok["critical"].astype(bool)]
        row = {"batch_size": int(b), "seeds": len(g), "trained": len(ok), "critical": len(crit),
               "end_critical": int(ok["end_critical"].astype(bool).sum()),
               "updates": int(g["updates"].max()), "updates_per_epoch": int(round(g["updates"].max() / g["epochs"].max())) if g["epochs"].max() > 0 else 0}
        for m in MEASURES:
            src = crit if m in ("lambda_max", "eps_sharpness", "hessian_trace") else ok
            v = src[m].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            row[f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
            row[f"{m}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        out.append(row)
    frame = pd.DataFrame(out)
    if len(frame):
        frame["batch_size"] = frame["batch_size"].astype(np.int64)
    return frame


# --------------------------------------------------------------------------- findings
def _values(runs: pd.DataFrame, b: int, col: str, only_critical: bool = False) -> list[float]:
    g = runs[(runs["batch_size"] == b) & (runs["status"] == "ok")]
    if only_critical:
        g = g[g["critical"].astype(bool)]
    return [float(v) for v in g[col] if math.isfinite(float(v))]


def _share(runs: pd.DataFrame, b: int, col: str) -> float:
    g = runs[(runs["batch_size"] == b) & (runs["status"] == "ok")]
    return float(g[col].astype(bool).mean()) if len(g) else float("nan")


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def decide(runs: pd.DataFrame, profile: TimingProfile, noise: pd.DataFrame, metric: str, n_train: int,
           n_val: int, config: Config, failures: tuple[Failure, ...] = (), n_measure: int = 0) -> Findings:
    """The findings: smallest against largest batch that trained, every claim through compare()."""
    trained = sorted(int(b) for b in runs.loc[runs["status"] == "ok", "batch_size"].unique())
    sizes = sorted(int(b) for b in runs["batch_size"].unique())
    small, large = (trained[0], trained[-1]) if len(trained) >= 2 else (sizes[0], sizes[-1])
    bs = noise["b_simple"].to_numpy(dtype=float) if len(noise) else np.array([])
    b_simple = float(np.mean(bs)) if len(bs) and np.all(np.isfinite(bs)) else (
        float("inf") if len(bs) and np.any(bs == np.inf) else float("nan"))
    b_spread = float(np.std(bs, ddof=1)) if len(bs) > 1 and np.all(np.isfinite(bs)) else float("nan")
    speed = _speed(profile, small, large)
    optimisation = generalisation = sharpness = None
    if len(trained) >= 2:
        optimisation = compare("train_loss", "small", _values(runs, small, "train_loss"), "large",
                               _values(runs, large, "train_loss"), higher_is_better=False, split="train")
        generalisation = compare("val_metric", "small", _values(runs, small, "val_metric"), "large",
                                 _values(runs, large, "val_metric"), higher_is_better=True, split="validation")
        sharpness = _sharpness(runs, small, large)
    return Findings(
        small=small, large=large, n_train=n_train, n_val=n_val, n_measure=n_measure, seeds=int(runs["seed"].nunique()),
        budget=config.budget, updates=(updates_for(config, small, n_train), updates_for(config, large, n_train)),
        metric=metric, speed=speed, optimisation=optimisation, generalisation=generalisation,
        sharpness=sharpness, b_simple=b_simple, b_simple_spread=b_spread, failures=failures,
    )


def _speed(profile: TimingProfile, small: int, large: int) -> SpeedFinding:
    s = profile.samples
    a = s.loc[s["batch_size"] == small, "ms"].to_numpy(dtype=float)
    b = s.loc[s["batch_size"] == large, "ms"].to_numpy(dtype=float)
    update = epoch = None
    if len(a) and len(b):
        update = compare_times("update_ms", "small", a, "large", b)
        n = profile.n_rows
        epoch = compare_times("epoch_ms", "small", a * math.ceil(n / small), "large", b * math.ceil(n / large))
    fr = profile.frame
    cheapest, largest = fr.loc[fr["ms"].idxmin()], fr.iloc[-1]
    span = float(largest["batch_size"] - cheapest["batch_size"])
    marginal = float(largest["ms"] - cheapest["ms"]) / span if span > 0 else float("nan")
    return SpeedFinding(device=profile.device, threads=profile.threads, limit=profile.limit,
                        largest_timed=int(largest["batch_size"]), base_ms=profile.base_ms,
                        row_ms=profile.row_ms, step_ms=profile.step_ms, n_rows=profile.n_rows,
                        marginal_row_ms=marginal, update=update, epoch=epoch,
                        update_gap=time_gap(update), epoch_gap=time_gap(epoch))


SHARPNESS_MEASURES = ("lambda_max", "eps_sharpness", "hessian_trace")


def _sharpness(runs: pd.DataFrame, small: int, large: int) -> SharpnessFinding:
    comps = tuple(
        compare(m, "small", _values(runs, small, m, True), "large", _values(runs, large, m, True),
                higher_is_better=False)  # lower = flatter: the "winner" is the flatter run
        for m in SHARPNESS_MEASURES
    )
    shares = lambda col: (_share(runs, small, col), _share(runs, large, col))  # noqa: E731
    moves = (_mean(_values(runs, small, "settle_move")), _mean(_values(runs, large, "settle_move")))
    drops = (_mean(_values(runs, small, "settle_drop")), _mean(_values(runs, large, "settle_drop")))
    if min(comps[0].n_a, comps[0].n_b) < 2:
        kind, sharper = "not_critical", None
    else:
        clear = [c for c in comps if c.winner is not None]
        directions = {c.loser for c in clear}
        if not clear:
            kind, sharper = "none", None
        elif len(directions) > 1:
            kind, sharper = "disagree", None
        else:
            kind, sharper = ("agree" if len(clear) >= 2 else "one_measure"), clear[0].loser
    return SharpnessFinding(kind=kind, comparisons=comps, sharper=sharper, critical=shares("critical"),
                            end_critical=shares("end_critical"), settle_drop=drops, settle_move=moves)


# --------------------------------------------------------------------------- wording
MEASURE_LABELS = {
    "lambda_max": "lambda_max", "eps_sharpness": "epsilon-sharpness", "hessian_trace": "the Hessian trace",
}


def _labels(f: Findings) -> dict[str, str]:
    return {"small": f"batch {size_label(f.small, f.n_train)}", "large": f"batch {size_label(f.large, f.n_train)}"}


def _rows(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) and abs(x) >= 100 else num(x)


def _ms(x: float) -> str:
    return f"{num(x / 1000)} s" if math.isfinite(x) and x >= 1000 else f"{num(x)} ms"


def _pct(x: float) -> str:
    return f"{num(x)}%"


def speed_sentences(f: Findings) -> list[str]:
    """The timing story: per-update time, where it starts to rise, per-epoch time."""
    s, labels = f.speed, _labels(f)
    if s is None or s.update is None:
        return []
    where = s.device + (f", {s.threads} thread{'s' if s.threads != 1 else ''}" if s.device == "cpu" else "")
    u = s.update
    if s.update_gap == "small":  # significant but small: say both, apart
        first = (f"On {where}, one update takes {_ms(u.a_value)} at {labels['small']} and {_ms(u.b_value)} at "
                 f"{labels['large']}: {TIMING_MIN_RATIO:g}x or less apart, beyond the timing noise but too small "
                 f"to matter here (the page counts a per-update time difference only above {TIMING_MIN_RATIO:g}x).")
    elif u.winner is None:
        first = (f"On {where}, one update takes about as long at {labels['small']} ({_ms(u.a_value)}) as at "
                 f"{labels['large']} ({_ms(u.b_value)}): no clear difference beyond the timing noise.")
    else:
        slower = labels[u.loser]
        first = (f"On {where}, one update takes {_ms(u.value(u.loser))} at {slower} against "
                 f"{_ms(u.value(u.winner))} at {labels[u.winner]} ({factor(u.value(u.loser) / u.value(u.winner))} "
                 f"{'longer' if u.loser == 'large' else 'shorter'} for the larger batch).")
    if s.limit is None:
        limit = (f" Per-update time stays within {RISE_FACTOR:g}x of its small-batch level up to batch "
                 f"{s.largest_timed:,}, the largest size timed: the device computes the rows of a batch in parallel.")
    else:
        limit = (f" Per-update time starts to rise at batch {s.limit:,} (past {RISE_FACTOR:g}x its small-batch "
                 f"level of {_ms(s.base_ms)}): there the device's parallelism runs out.")
    e = s.epoch
    if e is None:
        epoch = ""
    elif s.epoch_gap == "small":
        epoch = (f" An epoch over {s.n_rows:,} rows takes {_ms(e.a_value)} at {labels['small']} and {_ms(e.b_value)} "
                 f"at {labels['large']}: {TIMING_MIN_RATIO:g}x or less apart, too small to matter here.")
    elif e.winner is None:
        epoch = (f" An epoch over {s.n_rows:,} rows takes about as long at either size ({_ms(e.a_value)} and "
                 f"{_ms(e.b_value)}): no clear difference beyond the timing noise.")
    else:
        epoch = (f" An epoch over {s.n_rows:,} rows takes {_ms(e.value(e.winner))} at {labels[e.winner]} and "
                 f"{_ms(e.value(e.loser))} at {labels[e.loser]} ({factor(e.value(e.loser) / e.value(e.winner))} longer).")
    return [first + limit + epoch]


def _failure_sentence(x: Failure, n_train: int) -> str:
    what = f"Batch {size_label(x.batch_size, n_train)} (seed {x.seed})"
    if x.divergence is not None:
        return divergence_sentence(x.divergence, what=what)
    return f"{what} did not train: its training loss went from {num(x.start_loss)} to {num(x.end_loss)}."


def sharpness_sentence(f: Findings) -> str:
    """One or two sentences on sharpness, from the SharpnessFinding only."""
    sh, labels = f.sharpness, _labels(f)
    if sh is None:
        return ""
    lam, eps, trace = sh.comparisons
    if sh.kind == "not_critical":
        which = [labels[k] for k, share in zip(("small", "large"), sh.critical) if not share >= 0.5]
        return (f"Sharpness is not compared: {' and '.join(which) or 'one side'} did not settle at a point where "
                f"the gradient is ~0 in at least two seeds (core.rules.critical_test), and away from a minimum "
                f"the slope, not the curvature, dominates epsilon-sharpness.")
    numbers = (f"lambda_max {num(lam.a_value)} vs {num(lam.b_value)}, epsilon-sharpness {_pct(eps.a_value)} vs "
               f"{_pct(eps.b_value)}, trace {num(trace.a_value)} vs {num(trace.b_value)} "
               f"({labels['small']} vs {labels['large']}, mean of the seeds that settled)")
    if sh.kind == "agree":
        text = f"{capital(labels[sh.sharper])} settled in a sharper minimum by every measure that differs: {numbers}."
    elif sh.kind == "one_measure":
        c = next(c for c in sh.comparisons if c.winner is not None)
        text = (f"Only {MEASURE_LABELS[c.measure]} finds {labels[sh.sharper]} sharper; the other measures show no "
                f"clear difference ({numbers}), so there is no clear sharpness difference overall.")
    elif sh.kind == "disagree":
        says = "; ".join(f"{MEASURE_LABELS[c.measure]} says {labels[c.loser]} is sharper"
                         for c in sh.comparisons if c.winner is not None)
        text = f"The sharpness measures disagree ({says}): {numbers}. No sharpness claim either way."
    else:
        text = f"No clear difference in sharpness: {numbers}."
    far = [labels[k] for k, share in zip(("small", "large"), sh.end_critical) if share < 0.5]
    if far:
        drops = ", ".join(f"{num(d)} for {labels[k]}" for k, d in zip(("small", "large"), sh.settle_drop))
        text += (f" The final weights of {' and '.join(far)} were not yet at a point where the gradient is ~0, so "
                 f"each run was first settled by full-batch descent at the safe rate; that lowered the training loss "
                 f"by {drops} on average (a large drop means the run had not finished training).")
    return text


def make_verdict(f: Findings) -> Verdict:
    """The verdict, worded from the findings only."""
    labels = _labels(f)
    failures = " ".join(_failure_sentence(x, f.n_train) for x in f.failures)
    if f.optimisation is None:
        return Verdict("problem", f"Fewer than two batch sizes trained. {failures}".strip(),
                       "Lower the learning rate (or standardize the data) and run the sweep again.")
    parts = speed_sentences(f)
    budget = (f"the same {f.updates[0]:,} updates" if f.budget == "updates"
              else f"the same epochs ({f.updates[0]:,} and {f.updates[1]:,} updates)")
    o = comparison_sentence(f.optimisation, labels, "reached", "a lower training loss", "training loss")
    parts.append(f"With {budget}, {o[0].lower() + o[1:] if o.startswith('No') else o}")
    g = f.generalisation
    parts.append(capital(comparison_sentence(g, labels, "generalised", "better", f"validation {f.metric}",
                                             fmt=lambda x: f"{x:.3f}")
                         .replace(" (mean of", f" on {f.n_val:,} validation rows per seed (mean of")))
    parts.append(sharpness_sentence(f))
    if math.isfinite(f.b_simple):
        parts.append(f"The gradient noise scale B_simple is about {_rows(f.b_simple)} rows: batches well beyond it "
                     "buy little per update.")
    elif f.b_simple == float("inf"):
        parts.append("The gradient noise swamps the mean gradient at the end of the small-batch runs "
                     "(B_simple is unbounded): they sit near a minimum.")
    text = " ".join(p for p in parts if p)
    advice = ("A large batch usually needs its own learning rate (and warm-up): re-tuned, it often matches the "
              "small batch's validation score (Google's Deep Learning Tuning Playbook), so compare tuned runs "
              "before choosing a batch size for quality rather than speed.")
    if g.winner is None and f.seeds < 5:
        advice = f"With {f.seeds} seeds only large differences show: try 5 or more seeds. " + advice
    if failures:
        return Verdict("warning", f"{text} Some runs failed: {failures}",
                       "Lower the learning rate for the sizes that failed. " + advice)
    return Verdict("good", text, advice)


def _pm(mean: float, sd: float, fmt=num) -> str:
    return fmt(mean) if not math.isfinite(sd) or sd == 0 else f"{fmt(mean)} ± {fmt(sd)}"


def _short(c: Comparison | None, labels: dict[str, str], better: str, gap: str = "noise") -> str:
    if c is None:
        return "not measured"
    if c.winner is None and gap == "small":
        return f"{TIMING_MIN_RATIO:g}x or less apart: beyond the timing noise, too small to matter"
    if c.winner is None:
        return "no clear difference"
    return f"{labels[c.winner]} {better}"


SUMMARY_KEYS = ("update_parallel", "update_serial", "epoch_time", "gradient_noise", "optimisation",
                "generalisation", "lambda_max", "eps_sharpness")


def summary_table(f: Findings, profile: TimingProfile) -> pd.DataFrame:
    """The lecture's section 4.3 table from this run: one row per SUMMARY_KEYS entry with the
    lecture's expectation, the small- and large-batch numbers, what this run found (beyond the
    noise or not) and where each number comes from."""
    labels = _labels(f)
    small, large = f.small, f.large
    fr = profile.frame.set_index("batch_size")
    rows = []

    def add(key, measure, lecture, a, b, found, source):
        rows.append(dict(key=key, measure=measure, lecture=lecture, small=a, large=b, this_run=found, source=source))

    s = f.speed
    timed = s is not None and s.update is not None
    q = (lambda b: f"{_ms(fr.loc[b, 'ms'])} (samples {num(fr.loc[b, 'low_ms'])}–{num(fr.loc[b, 'high_ms'])})"
         if b in fr.index else "not timed")
    add("update_parallel", "Time per update, rows in parallel (this device)",
        "about the same (until the parallelism limit)", q(small), q(large),
        _short(s.update, labels, "faster", s.update_gap) if timed else "not measured",
        f"timing profile on {profile.device}: median of {_count_range(fr['repeats'])} samples per size, each the "
        f"fastest of up to {TIMING_BLOCK} updates; Welch's t-test on log times, and a difference counts only "
        f"above {TIMING_MIN_RATIO:g}x")
    seq = lambda b: _ms(b * profile.row_ms + profile.step_ms)  # noqa: E731
    add("update_serial", "Time per update, rows one after another (no parallelism)", "small faster",
        seq(small), seq(large), f"{labels['small']} faster ({times_text(large, small, profile)} less time)",
        f"batch size × {_ms(profile.row_ms)} (one row's forward + backward, timed one row at a time) + "
        f"{_ms(profile.step_ms)} (one optimizer step)")
    ep = lambda b: _ms(fr.loc[b, "epoch_ms"]) if b in fr.index else "not timed"  # noqa: E731
    add("epoch_time", f"Time per epoch ({profile.n_rows:,} rows)", "small slower", ep(small), ep(large),
        _short(s.epoch, labels, "faster", s.epoch_gap) if timed else "not measured",
        "time per update (above) × updates per epoch (⌈rows / batch⌉)")
    if math.isfinite(f.b_simple):
        nz = lambda b: num(batch_noise(f.b_simple, b, f.n_train))  # noqa: E731
        found = f"{labels['small']} noisier" if small < large else "the same"
        src = (f"B_simple / batch × (N − batch) / (N − 1), with B_simple = tr(Σ)/|G|² = {_pm(f.b_simple, f.b_simple_spread, _rows)} "
               f"at the end of the {labels['small']} runs (McCandlish et al. 2018), N = {f.n_train:,}")
        add("gradient_noise", "Gradient noise: variance of the batch gradient / |G|²", "small noisy, large stable",
            nz(small), nz(large), found, src)
    else:
        add("gradient_noise", "Gradient noise: variance of the batch gradient / |G|²", "small noisy, large stable",
            "not measured", "not measured", "not measured",
            "B_simple could not be estimated (noise swamps the gradient, or no run trained)")
    budget = f"{f.updates[0]:,} updates" if f.budget == "updates" else f"{f.updates[0]:,} vs {f.updates[1]:,} updates"
    o, g = f.optimisation, f.generalisation
    mean_sd = lambda c, side, fmt=num: (_pm(c.a_value, c.spread_a, fmt) if side == "a" else _pm(c.b_value, c.spread_b, fmt))  # noqa: E731
    if o is not None:
        add("optimisation", "Training loss at the end", "small better", mean_sd(o, "a"), mean_sd(o, "b"),
            _short(o, labels, "lower"), f"full pass over the {f.n_train:,} training rows after {budget}; mean ± sd of "
            f"{o.n_a} and {o.n_b} seeds, Welch's t-test at p < 0.05")
    if g is not None:
        fmt3 = lambda x: f"{x:.3f}"  # noqa: E731
        add("generalisation", f"Validation {f.metric}", "small better", mean_sd(g, "a", fmt3), mean_sd(g, "b", fmt3),
            _short(g, labels, "higher"), f"{f.n_val:,} validation rows per seed, each seed its own split; mean ± sd "
            f"of {g.n_a} and {g.n_b} seeds, Welch's t-test at p < 0.05")
    sh = f.sharpness
    if sh is not None:
        for c, name in zip(sh.comparisons[:2], ("lambda_max at the settled point", "epsilon-sharpness at the settled point (%)")):
            found = "not compared (not at a minimum)" if sh.kind == "not_critical" else _short(c, labels, "flatter")
            add(c.measure, f"Sharpness: {name}", "small flatter", mean_sd(c, "a"), mean_sd(c, "b"), found,
                f"training loss on {f.n_measure:,} of the {f.n_train:,} training rows, after settling where the "
                f"gradient is ~0; mean ± sd of the {c.n_a} and {c.n_b} seeds that settled")
    return pd.DataFrame(rows, columns=["key", "measure", "lecture", "small", "large", "this_run", "source"])


def _count_range(counts: pd.Series) -> str:
    """'10' when every size has the same count, else '3–10'."""
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def times_text(large: int, small: int, profile: TimingProfile) -> str:
    """How many times longer the no-parallelism update of `large` is than that of `small`."""
    a = small * profile.row_ms + profile.step_ms
    b = large * profile.row_ms + profile.step_ms
    return factor(b / a) if a > 0 else "n/a"


def device_story(f: Findings) -> str:
    """The lecture's section 4.1 told with this device's numbers (Markdown-free plain text)."""
    s = f.speed
    if s is None:
        return ""
    flat = (f"Per-update time stays within {RISE_FACTOR:g}x of its cheapest level ({_ms(s.base_ms)}) up to "
            f"batch {s.largest_timed:,}, the largest size timed")
    if s.limit is not None:
        flat = (f"Per-update time is flat at about {_ms(s.base_ms)} for small batches and starts to rise at batch "
                f"{s.limit:,} (the first size past {RISE_FACTOR:g}x that level, beyond the timing noise, and "
                f"above it from there on)")
    serial = (f"Without parallelism an update would cost the rows one after another: {_ms(s.row_ms)} per row "
              f"(forward + backward, timed one row at a time) plus {_ms(s.step_ms)} for the optimizer step, "
              f"so batch {s.largest_timed:,} would take {_ms(s.largest_timed * s.row_ms + s.step_ms)} per update.")
    if s.device.startswith("cpu"):
        why = (f" On the CPU, torch runs on {s.threads} thread{'s' if s.threads != 1 else ''} here. Each update "
               f"pays a fixed cost (Python, dispatching the kernels, the optimizer step) and then the arithmetic "
               f"for its rows, which the core does a few numbers at a time (its vector units are its only "
               f"parallelism). While the fixed cost dominates, the curve is flat; once the arithmetic dominates, "
               f"the time grows with the batch, here by about {num(1000 * s.marginal_row_ms)} µs per extra row. "
               "A GPU computes thousands of rows at once, so its curve stays flat far longer (lecture 4.1).")
    else:
        why = (f" On {s.device} thousands of rows are computed at once, so a larger batch costs hardly more per "
               "update until the device's cores are all busy; that is the parallelism limit of lecture 4.1.")
    epoch = (f" An epoch of {s.n_rows:,} rows takes ⌈rows / batch⌉ updates, so small batches pay the per-update "
             "cost many times per epoch: the right-hand chart.")
    return f"{flat}.{why} {serial}{epoch}"


def sweep_table(result: Result) -> pd.DataFrame:
    """Per batch size, for display: runs that trained and settled, and mean ± sd of the main measures."""
    rows = []
    for r in result.sweep.itertuples():
        rows.append({
            "batch size": result.label(int(r.batch_size)), "runs trained": f"{r.trained} of {r.seeds}",
            "settled (gradient ~0)": f"{r.critical} of {r.trained}", "updates": int(r.updates),
            "training loss": _pm(r.train_loss_mean, r.train_loss_sd),
            f"validation {result.metric}": _pm(r.val_metric_mean, r.val_metric_sd),
            "gap": _pm(r.gap_mean, r.gap_sd), "lambda_max": _pm(r.lambda_max_mean, r.lambda_max_sd),
            "eps-sharpness (%)": _pm(r.eps_sharpness_mean, r.eps_sharpness_sd),
            "loss drop while settling": _pm(r.settle_drop_mean, r.settle_drop_sd),
        })
    return pd.DataFrame(rows)


def epochs_text(x: float) -> str:
    """Epochs as the runs table shows them: '300', '7.5' (one decimal when fractional), '0.03'.

    >>> epochs_text(300.0), epochs_text(7.5), epochs_text(10 / 320), epochs_text(float("nan"))
    ('300', '7.5', '0.03', '–')
    """
    if not math.isfinite(x):
        return "–"
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.1f}" if abs(x) >= 0.1 else num(x, 1)


def table_cell(x) -> str:
    """One cell of the runs and sweep tables: '–' for a missing value (a run that did not
    diverge has no divergence step), numbers through words.num, the rest as text."""
    if x is None or x is pd.NA or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, float, np.integer, np.floating)):
        return num(float(x), 4)
    return str(x)


def dash_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for display where every column with a missing value shows '–' there (Streamlit
    draws a grey "None" for a missing cell whatever the formatting); other columns keep their
    types.

    >>> dash_missing(pd.DataFrame({"step": pd.array([3, None], dtype="Int64"), "n": [1, 2]}))["step"].tolist()
    ['3', '–']
    """
    return gaps_as_text(frame, default=table_cell)


def runs_table(result: Result) -> pd.DataFrame:
    """Every run (batch size x seed), for display, with its status and measures. Integer columns
    stay integer ("diverged at step" is nullable: <NA> when the run did not diverge); epochs are
    fractional (updates / updates per epoch). The page shows it through `table_cell` / `epochs_text`."""
    r = result.runs
    table = pd.DataFrame({
        "batch size": [result.label(int(b)) for b in r["batch_size"]], "seed": r["seed"],
        "status": r["status"].map({"ok": "trained", "diverged": "diverged", "no_progress": "did not train"}),
        "diverged at step": r["diverged_at"], "updates": r["updates"], "epochs": r["epochs"],
        "training loss": r["train_loss"], f"validation {result.metric}": r["val_metric"],
        "gradient ~0 at the end": r["end_critical"], "settling steps": r["settle_steps"],
        "loss drop while settling": r["settle_drop"], "gradient ~0 after settling": r["critical"],
        "lambda_min": r["eig_min"], "lambda_max": r["lambda_max"], "eps-sharpness (%)": r["eps_sharpness"],
        "Hessian trace": r["hessian_trace"],
    })
    return table
