"""Batch size against speed, accuracy and sharpness (lecture section 4, Keskar et al. 2017).

`run` trains the same model from the same initial weights with each batch size of a sweep (the
same epoch budget, or optionally the same number of updates) and measures, per size:
- speed: wall time per epoch and per update, updates per epoch;
- quality: final training / validation loss and metric, and the generalization gap;
- sharpness of the solution reached, on the training loss at the final weights:
  lambda_max of the Hessian (core.curvature.hessian_extremes), Keskar's epsilon-sharpness
  (`epsilon_sharpness`) and the Hessian trace (Hutchinson).
It also draws the loss along the straight line from the smallest-batch solution to the
largest-batch one (`interpolation_frame`, Keskar's figure) and estimates the gradient noise
scale B_simple = tr(Sigma) / |G|^2 from gradient norms at two batch sizes (`gradient_noise_scale`,
McCandlish et al. 2018, appendix A).

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> res = run(load_builtin("moons"), LabSetup(), Config(batch_sizes=(32, FULL), epochs=2))
>>> list(res.sweep["batch_size"])
[32, 320]
"""
from __future__ import annotations

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

from core.curvature import hessian_extremes, hutchinson_trace, model_loss
from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.lab import LabSetup, build_model
from core.train import (
    BLOWUP_FACTOR,
    OPTIMIZERS,
    Split,
    TrainConfig,
    check_dataset_size,
    evaluate,
    make_loss,
    metric_name,
    split_data,
    train,
    validate_config,
)

FULL = 0  # in Config.batch_sizes: "the whole training split"
AUTO_SIZES = (8, 32, 128)  # the automatic spread: these (where smaller than the split) and the full batch
MAX_SIZES = 8  # more sizes than this make the page too slow to stay interactive


@dataclass(frozen=True)
class Config:
    """The sweep. Defaults are the page's default run (moons: 8, 32, 128 and 320 rows, 20 epochs)."""

    batch_sizes: tuple[int, ...] = ()  # rows per update; FULL (0) = whole training split; () = auto_sizes
    epochs: int = 20  # epoch budget per size (when same_updates is False)
    same_updates: bool = False  # give every size the same number of updates instead of epochs
    updates: int = 300  # updates per size when same_updates is True
    optimizer: str = "adam"  # a core.train.OPTIMIZERS name; Keskar et al. compared batch sizes with Adam
    lr: float = 0.01  # the same learning rate for every size (no scaling rule), so only the batch varies
    eps: float = 1e-3  # epsilon-sharpness box half-width, relative: |delta_i| <= eps * (|theta_i| + 1)
    sharpness_iters: int = 20  # L-BFGS-B iterations per start (bounded: the measure is a local maximum anyway)
    sharpness_starts: int = 1  # random starts in the box, besides the vertex along the top eigenvector
    trace_probes: int = 30  # Rademacher probes for the Hutchinson trace (fixed count: fixed cost)
    noise_points: int = 4  # points along the smallest-batch run where the noise scale is measured
    noise_batches: int = 16  # batch pairs drawn per point; averaging steadies the estimate
    interp_points: int = 41  # alphas in [-0.5, 1.5]; 41 puts points exactly on 0 and 1
    metric_tolerance: float = 0.01  # validation metrics within this of the best count as equally good
    val_fraction: float = 0.2  # held-out share
    device: str = "cpu"  # timings are taken on the CPU; tiny models gain nothing from a GPU


@dataclass(eq=False)
class Result:
    """What the sweep measured. Plain numbers and DataFrames (pickled by the UI cache)."""

    sweep: pd.DataFrame  # one row per batch size, see SWEEP_COLUMNS
    curves: pd.DataFrame  # batch_size, epoch, step, train_loss, val_loss, train_metric, val_metric
    interpolation: pd.DataFrame  # alpha, split ("train"/"validation"), loss, metric
    interp_from: int | None  # batch size at alpha = 0 (the smallest that trained)
    interp_to: int | None  # batch size at alpha = 1 (the largest that trained)
    noise: pd.DataFrame  # per measuring point: step, grad_sq, trace_sigma, b_simple
    b_simple: float  # gradient noise scale over the smallest-batch run (NaN if not measured)
    noise_batches: tuple[int, int]  # (B_small, B_big) used for the noise scale
    metric: str  # "accuracy" or "R^2"
    n_train: int  # rows in the training split (the full batch)
    n_params: int
    initial_loss: float  # training loss at the shared initial weights
    states: dict[int, dict[str, np.ndarray]]  # batch size -> final state_dict as numpy arrays
    notes: tuple[str, ...]  # plain sentences about skipped measures
    verdict: Verdict
    seconds: float  # wall time of the whole diagnosis

    def b_simple_text(self) -> str:
        """B_simple for display: a number, 'unbounded' (noise swamps the gradient) or 'not measured'."""
        if math.isfinite(self.b_simple):
            return f"{self.b_simple:.3g}"
        return "unbounded" if self.b_simple == float("inf") else "not measured"


SWEEP_COLUMNS = [
    "batch_size", "label", "updates_per_epoch", "updates", "epochs", "train_seconds",
    "seconds_per_epoch", "seconds_per_update", "train_loss", "val_loss", "train_metric",
    "val_metric", "gap", "lambda_max", "eps_sharpness", "hessian_trace", "trace_std_error",
    "measure_seconds", "status", "diverged_at",
]


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
            sizes.append(int(p))
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


def resolve_sizes(config: Config, n_train: int) -> list[int]:
    """The sweep's batch sizes as sorted distinct row counts (FULL -> n_train), validated."""
    sizes = []
    for b in config.batch_sizes or auto_sizes(n_train):
        if b == FULL:
            b = n_train
        if b < 1:
            raise ValueError(f"A batch size must be at least 1, not {b}.")
        if b > n_train:
            raise ValueError(
                f"The batch size {b} is larger than the training split ({n_train} rows); "
                f"use at most {n_train} or 'full'."
            )
        sizes.append(int(b))
    sizes = sorted(set(sizes))
    if len(sizes) < 2:
        raise ValueError("Compare at least two different batch sizes.")
    if len(sizes) > MAX_SIZES:
        raise ValueError(f"Compare at most {MAX_SIZES} batch sizes at once.")
    return sizes


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for impossible settings (sizes are checked later)."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.same_updates and config.updates < 1:
        raise ValueError("Train for at least one update.")
    if not config.same_updates and config.epochs < 1:
        raise ValueError("Train for at least one epoch.")
    if not 0 < config.eps <= 0.5:
        raise ValueError("The sharpness box epsilon must be between 0 and 0.5.")
    if config.sharpness_iters < 1 or config.sharpness_starts < 0:
        raise ValueError("The sharpness search needs at least one iteration and no negative start count.")
    if config.trace_probes < 2:
        raise ValueError("The Hessian trace needs at least two probes.")
    if config.noise_points < 1 or config.noise_batches < 1:
        raise ValueError("The noise scale needs at least one point and one batch pair.")
    if config.interp_points < 3:
        raise ValueError("The interpolation needs at least three points.")
    if config.metric_tolerance < 0:
        raise ValueError("The metric tolerance cannot be negative.")


# --------------------------------------------------------------------------- sharpness
@dataclass(frozen=True)
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
) -> EpsSharpness:
    """Keskar's sharpness: max of f(theta + delta) over |delta_i| <= eps * (|theta_i| + 1).

    The maximum is searched with scipy's L-BFGS-B (bounds = the box) on -f, with the exact
    gradient from torch, at most ``maxiter`` iterations per start. At a minimum the gradient is
    zero, so delta = 0 is no start: each of ``directions`` (e.g. the top Hessian eigenvector)
    starts at the box vertex sign(d) and at -sign(d), and ``n_random`` more start uniformly in the
    box (seeded); the best end point counts. A local search: on a convex quadratic the maximum
    sits at a vertex, which the starts reach for small problems; in general it is a lower bound.

    >>> A = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> s = epsilon_sharpness(lambda x: 0.5 * x @ A @ x, torch.zeros(2, dtype=torch.float64), eps=0.1)
    >>> round(s.value, 6)   # 100 * 0.5 * 0.1^2 * (1 + 4)
    2.5
    """
    theta = torch.as_tensor(theta).detach().to(torch.float64)
    x0 = theta.numpy().copy()
    bound = eps * (np.abs(x0) + 1.0)
    count = [0]

    def neg(u: np.ndarray) -> tuple[float, np.ndarray]:
        # Searched in box units u = delta / bound in [-1, 1]: every coordinate on the same scale.
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
        small.append(float(np.sum(batch_gradient(rng.integers(0, n, b_small)) ** 2)))
        big.append(float(np.sum(batch_gradient(rng.integers(0, n, b_big)) ** 2)))
    g2s, g2b = float(np.mean(small)), float(np.mean(big))
    grad_sq, trace = unbiased_noise_estimates(g2s, g2b, b_small, b_big)
    return NoiseScale(_ratio(trace, grad_sq), grad_sq, trace, g2s, g2b, b_small, b_big, n_batches)


def _ratio(trace: float, grad_sq: float) -> float:
    return trace / grad_sq if grad_sq > 0 else float("inf")


def batch_gradient_fn(model: nn.Module, loss_fn: Callable, X: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``idx -> gradient`` of the mean loss over rows ``idx`` (float64 numpy), in the model's mode.

    The data are cast to float64 once and the model is called functionally, so the model is not
    changed; rows may repeat in ``idx`` (sampling with replacement).
    """
    _, theta = model_loss(model, loss_fn, X[:1], y[:1])
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
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
    """A model's state_dict (parameters and buffers) as numpy copies."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_state(model: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Load a `state_numpy` dict back into a model (returns the model)."""
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    return model


def interpolation_frame(
    model: nn.Module,
    state_a: dict[str, np.ndarray],
    state_b: dict[str, np.ndarray],
    split: Split,
    loss_fn: Callable,
    alphas: np.ndarray,
) -> pd.DataFrame:
    """Loss and metric along theta(alpha) = (1 - alpha) * theta_a + alpha * theta_b.

    Floating buffers (batch-norm running statistics) are interpolated the same way, so alpha = 0
    and 1 are exactly the two trained models. Evaluated in eval mode on the training and the
    validation split. ``model`` is a scratch model of the right shape; its weights are overwritten.
    """
    rows = []
    for a in alphas:
        mixed = {
            k: ((1 - a) * va + a * state_b[k]).astype(va.dtype) if np.issubdtype(va.dtype, np.floating) else va
            for k, va in state_a.items()
        }
        load_state(model, mixed)
        for name, X, y in (("train", split.X_train, split.y_train), ("validation", split.X_val, split.y_val)):
            loss, metric = evaluate(model, X, y, split.task, loss_fn)
            rows.append((float(a), name, loss, metric))
    return pd.DataFrame(rows, columns=["alpha", "split", "loss", "metric"])


# --------------------------------------------------------------------------- the sweep
def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train once per batch size and measure speed, quality and sharpness; see the module doc."""
    start = time.perf_counter()
    on_progress = on_progress or no_progress
    validate(config)
    check_dataset_size(data)
    split = split_data(data, "standard", config.val_fraction, setup.seed)
    n_train = len(split.X_train)
    sizes = resolve_sizes(config, n_train)
    loss_fn = make_loss("auto", split.task, split.n_classes)
    base = TrainConfig(
        optimizer=config.optimizer, lr=config.lr, epochs=config.epochs,
        max_steps=config.updates if config.same_updates else None,
        val_fraction=config.val_fraction, device=config.device, seed=setup.seed,
    )
    for b in sizes:
        validate_config(_with_batch(base, b), n_train)
        if setup.model.batch_norm and n_train % b == 1:
            raise ValueError(
                f"With batch norm every batch needs at least two rows, but batch size {b} leaves a last "
                f"batch of one row out of {n_train}; choose another size."
            )

    def fresh() -> nn.Module:
        return build_model(setup, split.n_features, split.n_outputs)

    initial_loss, _ = evaluate(fresh(), split.X_train, split.y_train, split.task, loss_fn)
    # One throwaway step first: the first optimizer step in a process pays one-off dispatch and
    # allocation costs that would otherwise land on whichever size is timed first.
    train(fresh(), split, TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=1, device=config.device))

    totals = [_total_steps(base, b, n_train) for b in sizes]
    # Progress weights: training steps, plus a fixed share for the measures of each size.
    weights = np.array(totals, dtype=float) + 100.0
    edges = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * 0.85

    rows, curves, states, point_states, notes = [], [], {}, {}, []
    for i, b in enumerate(sizes):
        part = sub_progress(on_progress, edges[i], edges[i + 1])
        label = f"batch {b}" + (" (full)" if b == n_train else "")
        model = fresh()
        marks = _noise_steps(totals[i], config.noise_points)
        captured: dict[int, dict[str, np.ndarray]] = {}

        def on_step(step: int, total: int, loss: float, model=model, marks=marks, captured=captured,
                    part=part, label=label) -> None:
            if step in marks:
                captured[step] = state_numpy(model)
            if step % 20 == 0 or step == total:
                part(0.8 * step / total, f"training {label} (step {step:,} of {total:,})")

        hist = train(model, split, _with_batch(base, b), on_step=on_step)
        model.to("cpu").eval()
        row = _row(b, n_train, hist, initial_loss)
        if row["status"] == "ok":
            part(0.8, f"sharpness at {label}")
            row.update(_sharpness(model, loss_fn, split, config, setup.seed))
            states[b] = state_numpy(model)
            point_states[b] = captured
        rows.append(row)
        curves.append(hist.epochs.assign(batch_size=b))
        part(1.0, f"{label} done")

    sweep = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    ok = [b for b in sizes if b in states]

    # Interpolation between the smallest and the largest batch that trained.
    on_progress(0.86, "interpolating between the smallest- and largest-batch solutions")
    alphas = np.round(np.linspace(-0.5, 1.5, config.interp_points), 10)
    interp = pd.DataFrame(columns=["alpha", "split", "loss", "metric"])
    interp_from = interp_to = None
    if len(ok) >= 2:
        interp_from, interp_to = ok[0], ok[-1]
        interp = interpolation_frame(fresh(), states[ok[0]], states[ok[-1]], split, loss_fn, alphas)
    else:
        notes.append("The interpolation needs two batch sizes that trained; fewer did.")

    # Noise scale along the smallest batch size's run that trained.
    on_progress(0.93, "measuring the gradient noise scale")
    noise = pd.DataFrame(columns=["step", "grad_sq", "trace_sigma", "b_simple"])
    b_simple = float("nan")
    pair = (sizes[0], sizes[-1])
    if ok:
        noise, b_simple = _noise_along_run(fresh(), point_states[ok[0]], loss_fn, split, pair, config, setup.seed)
    else:
        notes.append("The noise scale needs a run that trained; none did.")

    verdict = make_verdict(sweep, metric_name(split.task), b_simple, config)
    on_progress(1.0, "done")
    return Result(
        sweep=sweep, curves=curves_frame, interpolation=interp, interp_from=interp_from,
        interp_to=interp_to, noise=noise, b_simple=b_simple, noise_batches=pair,
        metric=metric_name(split.task), n_train=n_train,
        n_params=sum(p.numel() for p in fresh().parameters()), initial_loss=float(initial_loss),
        states=states, notes=tuple(notes), verdict=verdict, seconds=time.perf_counter() - start,
    )


def _with_batch(base: TrainConfig, b: int) -> TrainConfig:
    return replace(base, batch_size=b)


def _total_steps(base: TrainConfig, b: int, n_train: int) -> int:
    return base.max_steps if base.max_steps is not None else base.epochs * math.ceil(n_train / b)


def _noise_steps(total: int, points: int) -> set[int]:
    # Evenly spaced after the start, ending at the last step (the start's large gradient would
    # dominate every average).
    return {max(1, round(total * (k + 1) / points)) for k in range(points)}


def _row(b: int, n_train: int, hist, initial_loss: float) -> dict:
    steps = len(hist.steps) - (1 if hist.diverged_at is not None else 0)
    per_epoch_updates = math.ceil(n_train / b)
    # Epoch rows time the updates only (not the evaluation); a run that diverged in its first
    # epoch has no epoch row, so fall back to the run's wall time.
    train_seconds = float(hist.epochs["seconds"].sum()) if len(hist.epochs) else float(hist.seconds)
    per_update = train_seconds / steps if steps else float("nan")
    last = hist.epochs.iloc[-1] if len(hist.epochs) else None
    nan = float("nan")
    row = dict(
        batch_size=b, label=f"{b} (full)" if b == n_train else str(b),
        updates_per_epoch=per_epoch_updates, updates=steps,
        epochs=int(last["epoch"]) if last is not None else 0, train_seconds=train_seconds,
        seconds_per_epoch=per_update * per_epoch_updates, seconds_per_update=per_update,
        train_loss=float(last["train_loss"]) if last is not None else nan,
        val_loss=float(last["val_loss"]) if last is not None else nan,
        train_metric=float(last["train_metric"]) if last is not None else nan,
        val_metric=float(last["val_metric"]) if last is not None else nan,
        lambda_max=nan, eps_sharpness=nan, hessian_trace=nan, trace_std_error=nan, measure_seconds=0.0,
        diverged_at=hist.diverged_at, status="ok",
    )
    row["gap"] = row["train_metric"] - row["val_metric"]
    blowup = hist.blowup_at()
    if hist.diverged_at is not None:
        row["status"] = f"diverged at step {hist.diverged_at} (the loss became NaN or infinite)"
    elif not math.isfinite(row["train_loss"]) or not math.isfinite(row["val_metric"]):
        row["status"] = "diverged: the outputs became NaN or infinite"
    elif row["train_loss"] > initial_loss and blowup is not None:
        # A cross-entropy run can blow up without ever reaching NaN; report its step all the same.
        row["status"] = (f"diverged at step {blowup} (the loss passed {BLOWUP_FACTOR:g}x its "
                         f"start; {initial_loss:.3g} at the start, {row['train_loss']:.3g} at the end)")
    elif row["train_loss"] > initial_loss:
        row["status"] = f"did not train (the loss rose from {initial_loss:.3g} to {row['train_loss']:.3g})"
    return row


def _sharpness(model: nn.Module, loss_fn: Callable, split: Split, config: Config, seed: int) -> dict:
    # The training loss at the final weights, float64, eval mode (batch norm uses its running
    # statistics, so the loss is a fixed function of the weights).
    start = time.perf_counter()
    f, theta = model_loss(model, loss_fn, split.X_train, split.y_train)
    ext = hessian_extremes(f, theta, v0_seed=seed)
    sharp = epsilon_sharpness(f, theta, config.eps, config.sharpness_iters, directions=(ext.vec_max,),
                              n_random=config.sharpness_starts, seed=seed)
    trace = hutchinson_trace(f, theta, min_samples=config.trace_probes, max_samples=config.trace_probes, seed=seed)
    return dict(lambda_max=ext.eig_max, eps_sharpness=sharp.value, hessian_trace=trace.trace,
                trace_std_error=trace.std_error, measure_seconds=time.perf_counter() - start)


def _noise_along_run(model, captured, loss_fn, split, pair, config, seed) -> tuple[pd.DataFrame, float]:
    rows = []
    g2_sum = trace_sum = 0.0
    for k, (step, state) in enumerate(sorted(captured.items())):
        load_state(model, state).eval()
        grad_fn = batch_gradient_fn(model, loss_fn, split.X_train, split.y_train)
        est = gradient_noise_scale(grad_fn, len(split.X_train), pair[0], pair[1], config.noise_batches, seed + k)
        rows.append((step, est.grad_sq, est.trace_sigma, est.b_simple))
        g2_sum += est.grad_sq
        trace_sum += est.trace_sigma
    frame = pd.DataFrame(rows, columns=["step", "grad_sq", "trace_sigma", "b_simple"])
    return frame, (_ratio(trace_sum, g2_sum) if rows else float("nan"))


# --------------------------------------------------------------------------- verdict
def best_trade(sweep: pd.DataFrame, tolerance: float) -> int | None:
    """The batch size that trains fastest among those whose validation metric is within
    ``tolerance`` of the best one (runs that failed do not count); None if none trained."""
    ok = sweep[(sweep["status"] == "ok") & np.isfinite(sweep["val_metric"])]
    if ok.empty:
        return None
    good = ok[ok["val_metric"] >= ok["val_metric"].max() - tolerance]
    return int(good.loc[good["train_seconds"].idxmin(), "batch_size"])


def make_verdict(sweep: pd.DataFrame, metric: str, b_simple: float, config: Config) -> Verdict:
    """Name the batch size that best trades training time against validation quality."""
    failed = sweep[sweep["status"] != "ok"]
    failures = "; ".join(f"batch {r.label}: {r.status}" for r in failed.itertuples())
    choice = best_trade(sweep, config.metric_tolerance)
    if choice is None:
        return Verdict(
            "problem", f"No batch size trained ({failures}).",
            "Lower the learning rate (or standardize the data) and run the sweep again.",
        )
    ok = sweep[sweep["status"] == "ok"].set_index("batch_size")
    pick = ok.loc[choice]
    best_b = int(ok["val_metric"].idxmax())
    best = ok.loc[best_b]
    text = (
        f"Batch {pick['label']} is the best trade: validation {metric} {pick['val_metric']:.3f} "
        f"(best {best['val_metric']:.3f} at batch {best['label']}) in {pick['train_seconds']:.2f} s of "
        f"training ({1000 * pick['seconds_per_epoch']:.1f} ms per epoch, {pick['updates']:,} updates)"
    )
    if best_b != choice and pick["train_seconds"] > 0:
        text += f", {best['train_seconds'] / pick['train_seconds']:.1f}x faster than batch {best['label']}"
    text += f"; its generalization gap is {pick['gap']:+.3f}."
    small, large = ok.iloc[0], ok.iloc[-1]
    if len(ok) >= 2 and np.isfinite([small["lambda_max"], large["lambda_max"]]).all():
        trend = "sharper" if large["lambda_max"] > small["lambda_max"] else "not sharper"
        text += (
            f" The largest batch ({large['label']}) ended {trend} than the smallest ({small['label']}): "
            f"lambda_max {large['lambda_max']:.3g} vs {small['lambda_max']:.3g}, epsilon-sharpness "
            f"{large['eps_sharpness']:.3g}% vs {small['eps_sharpness']:.3g}%."
        )
        if large["train_loss"] > 1.5 * small["train_loss"]:
            # Sharpness compares minima; a run still far up the slope has not reached one.
            text += (
                f" But after {large['updates']:,} updates its training loss ({large['train_loss']:.3g}) is still "
                f"far above the smallest batch's ({small['train_loss']:.3g}): it has not reached a minimum yet, "
                "so its sharpness is not yet comparable."
            )
    if math.isfinite(b_simple):
        text += f" The gradient noise scale B_simple is about {b_simple:.3g} rows: batches well beyond it buy little per update."
    elif b_simple == float("inf"):
        text += " The gradient noise swamps the mean gradient (B_simple is unbounded): the runs sit near a minimum."
    advice = ""
    if not config.same_updates and large["val_metric"] < best["val_metric"] - config.metric_tolerance:
        advice = ("Large batches take fewer updates per epoch: try 'same number of updates' to see whether "
                  "they catch up when given as many steps.")
    if len(failed):
        text += f" Some runs failed: {failures}."
        return Verdict("warning", text, advice or "Lower the learning rate for the sizes that failed.")
    return Verdict("good", text, advice)
