"""Feature scaling and batch normalization (lecture 5.2).

Three experiments, each with its own config and runner so a page can cache them separately:

1. `run_surface`: linear regression y = w1*x1 + w2*x2 + b on two features of very different
   scale, raw and standardized. The loss is quadratic, so everything is exact: the Hessian is
   2 A^T A / n (A = [x1, x2, 1]), gradient descent has a closed form, and the number of steps to a
   target loss comes from the eigen-decomposition, even when it is a billion steps.
2. `run_lab`: the lab model trained with inputs none / standard / min-max / robust (scalers fitted
   on the training split only) and with batch norm on raw and standardized inputs; lambda_max at
   the start and the stable rate 2 / lambda_max it implies.
3. `run_batches`: batch norm with a tiny batch against a normal one (and the same model without
   batch norm), with training-mode and evaluation-mode losses and how far batch statistics
   stray from the full-data ones.

`run` does all three and returns one `Result`.

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> res = run_surface(load_builtin("scaled_regression"), LabSetup(), SurfaceConfig())
>>> res.raw.condition > 1e6 > 10 > res.standardized.condition
True
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.curvature import hessian_extremes, model_loss
from core.data import DataError, Dataset, load_builtin
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.lab import LabSetup, build_model
from core.train import (
    BLOWUP_FACTOR,
    SCALERS,
    Split,
    TrainConfig,
    evaluate,
    first_blowup,
    make_loss,
    metric_name,
    split_data,
    train,
)

SCALER_LABELS = {"none": "raw", "standard": "standard", "minmax": "min-max", "robust": "robust"}
LAB_OPTIMIZERS = ("sgd", "momentum", "adam")
MAX_STEPS = 5000  # per training run: beyond this a page stops being interactive
MAX_COUNTED_STEPS = 1e15  # the surface's step count gives up here ("more than 1e15 steps")
BLOWUP = 1e6  # a diverging quadratic counts as diverged once its loss is this many times the start


# ============================================================================ 1. error surface
@dataclass(frozen=True)
class SurfaceConfig:
    """The error-surface experiment (linear regression on two features)."""

    source: str = "builtin"  # "builtin" = the scaled_regression set (setup's seed), "lab" = the lab dataset
    x1: str | None = None  # feature for w1; None = the pair whose spreads differ most
    x2: str | None = None  # feature for w2
    lr_fraction: float = 0.9  # GD rate as a fraction of 2 / lambda_max; above 1 it diverges
    target_fraction: float = 0.01  # target loss = L* + this share of (L0 - L*): 1% of the reducible loss left
    path_steps: int = 30  # consecutive GD steps drawn; later ones are log-spaced up to the target
    grid: int = 61  # heat-map cells per axis (odd, so the optimum sits on a cell centre)


@dataclass
class SurfacePanel:
    """One side of the comparison: raw or standardized inputs."""

    name: str  # "raw" or "standardized"
    hessian: np.ndarray  # (3, 3) exact Hessian 2 A^T A / n over (w1, w2, b)
    eigenvalues: np.ndarray  # its eigenvalues, ascending
    condition: float  # lambda_max / lambda_min (inf when the columns are collinear)
    stable_lr: float  # 2 / lambda_max: gradient descent diverges above it
    lr: float  # the rate used: lr_fraction * stable_lr
    optimum: np.ndarray  # (w1, w2, b) minimizing the loss
    steps_to_target: int | None  # exact GD steps to reach the target; None = never (or > 1e15)
    diverged_at: int | None  # first step whose loss exceeds BLOWUP x the start (lr above 2/lambda_max)
    valley_aspect: float  # sqrt of the (w1, w2) profile's condition number: valley length / width
    grid: pd.DataFrame  # w1, w2, loss (b at its best for each (w1, w2)), equal spans on both axes
    path: pd.DataFrame  # step, w1, w2, b, loss of the GD path (first steps, then log-spaced)
    curve: pd.DataFrame  # inputs, step, loss, excess: loss against step (log-spaced, step >= 1)


@dataclass
class SurfaceResult:
    """Raw against standardized inputs on one linear regression."""

    x1: str
    x2: str
    target: str
    n_rows: int
    start_loss: float  # loss at w = 0, b = 0 (the same for both: the prediction is 0)
    best_loss: float  # L*, the same for both (standardizing is a change of coordinates)
    target_loss: float
    raw: SurfacePanel
    standardized: SurfacePanel
    speedup: float | None  # raw steps / standardized steps (inf when raw never gets there)
    verdict: Verdict
    notes: tuple[str, ...] = ()


def design(x: np.ndarray) -> np.ndarray:
    """The design matrix [x1, x2, 1] (float64) of the linear model y = w1*x1 + w2*x2 + b.

    >>> design(np.array([[1.0, 2.0]]))
    array([[1., 2., 1.]])
    """
    x = np.asarray(x, dtype=np.float64)
    return np.column_stack([x, np.ones(len(x))])


def quadratic_hessian(A: np.ndarray) -> np.ndarray:
    """Hessian of L(theta) = mean((A theta - y)^2): 2 A^T A / n, whatever theta and y are."""
    return 2.0 * A.T @ A / len(A)


def quadratic_loss(A: np.ndarray, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """mean((A theta - y)^2) for one theta (k,) or many (m, k) at once."""
    theta = np.asarray(theta, dtype=np.float64)
    resid = np.atleast_2d(theta) @ A.T - y
    out = np.mean(resid**2, axis=1)
    return out if theta.ndim == 2 else out[0]


def gd_path(H: np.ndarray, theta_star: np.ndarray, theta0: np.ndarray, lr: float, steps) -> np.ndarray:
    """Gradient-descent iterates on a quadratic with Hessian H, in closed form, at any steps.

    GD on L = L* + 1/2 e^T H e (e = theta - theta*) gives e_k = (I - lr H)^k e_0; in H's
    eigenbasis each coordinate is multiplied by (1 - lr lambda_i) per step. Returns (len(steps), k).

    >>> H = np.diag([2.0, 2.0])
    >>> gd_path(H, np.zeros(2), np.ones(2), 0.25, [0, 1, 2])
    array([[1.  , 1.  ],
           [0.5 , 0.5 ],
           [0.25, 0.25]])
    """
    lam, V = np.linalg.eigh(H)
    c0 = V.T @ (np.asarray(theta0, dtype=np.float64) - theta_star)
    factors = _powers(1.0 - lr * lam, np.asarray(steps, dtype=np.float64))  # (steps, k)
    return theta_star + (factors * c0) @ V.T


def _powers(base: np.ndarray, k: np.ndarray) -> np.ndarray:
    """base ** k for whole-number k (up to 1e15) without overflow warnings; (len(k), len(base))."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        logs = np.log(np.abs(base))
        mag = np.exp(np.minimum(np.outer(k, logs), 700.0))
    sign = np.where((base < 0)[None, :] & (np.mod(k, 2) == 1)[:, None], -1.0, 1.0)
    mag = np.where(base[None, :] == 0, (k == 0)[:, None].astype(float), mag)
    return sign * mag


def excess_after(H: np.ndarray, theta_star: np.ndarray, theta0: np.ndarray, lr: float, steps) -> np.ndarray:
    """L(theta_k) - L* after k GD steps (closed form): 1/2 sum_i lambda_i c_i^2 (1 - lr lambda_i)^(2k)."""
    lam, V = np.linalg.eigh(H)
    c0 = V.T @ (np.asarray(theta0, dtype=np.float64) - theta_star)
    weights = 0.5 * np.clip(lam, 0.0, None) * c0**2
    return _powers((1.0 - lr * lam) ** 2, np.asarray(steps, dtype=np.float64)) @ weights


def steps_to_excess(H: np.ndarray, theta_star: np.ndarray, theta0: np.ndarray, lr: float,
                    target_excess: float) -> int | None:
    """Fewest GD steps after which L - L* <= target_excess; None if never (or beyond 1e15 steps).

    With every |1 - lr lambda_i| <= 1 the excess never grows, so a bisection over whole numbers
    finds the first step exactly, however many billions of steps it is.
    """
    f = lambda k: float(excess_after(H, theta_star, theta0, lr, [k])[0])  # noqa: E731
    if f(0) <= target_excess:
        return 0
    lam = np.linalg.eigvalsh(H)
    if np.any(np.abs(1.0 - lr * lam) > 1.0) or f(MAX_COUNTED_STEPS) > target_excess:
        return None
    lo, hi = 0, int(MAX_COUNTED_STEPS)  # f(lo) > target >= f(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if f(mid) > target_excess else (lo, mid)
    return hi


def pick_columns(data: Dataset) -> tuple[str, str]:
    """The two non-constant features whose standard deviations differ most (largest, smallest).

    >>> pick_columns(load_builtin("scaled_regression"))
    ('x1_thousands', 'x2_fractions')
    """
    std = data.X.astype(np.float64).std(axis=0)
    usable = np.flatnonzero(std > 0)
    if len(usable) < 2:
        raise DataError("The error-surface comparison needs at least two feature columns that vary.")
    hi = usable[np.argmax(std[usable])]
    lo = usable[np.argmin(np.where(usable == hi, np.inf, std[usable]))]
    return data.feature_names[hi], data.feature_names[lo]


def _surface_data(data: Dataset, setup: LabSetup, config: SurfaceConfig):
    notes = []
    if config.source == "builtin":
        data = load_builtin("scaled_regression", seed=setup.seed)
    elif config.source != "lab":
        raise ValueError(f"The surface data must be 'builtin' or 'lab', not {config.source!r}.")
    if data.n_features < 2:
        raise DataError("The error-surface comparison needs two feature columns; this dataset has one.")
    auto = pick_columns(data)
    x1, x2 = config.x1 or auto[0], config.x2 or auto[1]
    for col in (x1, x2):
        if col not in data.feature_names:
            raise DataError(f"There is no feature column '{col}' in {data.name or 'the data'}.")
    if x1 == x2:
        raise ValueError("Choose two different columns for x1 and x2.")
    X = data.X[:, [data.feature_names.index(x1), data.feature_names.index(x2)]].astype(np.float64)
    for col, s in zip((x1, x2), X.std(axis=0)):
        if s == 0:
            raise DataError(f"The column '{col}' has the same value in every row, so it cannot be standardized.")
    y = data.y.astype(np.float64)
    if data.task == "classification":
        notes.append(f"The target '{data.target_name}' holds classes; the regression fits the class index "
                     f"(0 to {data.n_classes - 1}) as a number.")
    if y.std() == 0:
        raise DataError("The target has the same value in every row; there is nothing to fit.")
    # Standardize the target for both panels: losses read as a share of its variance, and the
    # Hessian (which never involves y) is unchanged.
    y = (y - y.mean()) / y.std()
    return data, x1, x2, X, y, tuple(notes)


def _panel(name: str, Z: np.ndarray, y: np.ndarray, config: SurfaceConfig, start_loss: float,
           target_loss: float) -> SurfacePanel:
    A = design(Z)
    H = quadratic_hessian(A)
    lam = np.linalg.eigvalsh(H)
    condition = float(lam[-1] / lam[0]) if lam[0] > lam[-1] * 1e-15 else math.inf
    theta_star = np.linalg.lstsq(A, y, rcond=None)[0]
    best = float(quadratic_loss(A, y, theta_star))
    stable_lr = 2.0 / float(lam[-1])
    lr = config.lr_fraction * stable_lr
    theta0 = np.zeros(3)
    steps_to_target = steps_to_excess(H, theta_star, theta0, lr, target_loss - best)

    # Divergence: the first step whose loss passes BLOWUP x the start (only above 2 / lambda_max).
    diverged_at = None
    if np.any(np.abs(1.0 - lr * lam) > 1.0):
        ks = np.arange(0, 100_001)
        over = np.flatnonzero(excess_after(H, theta_star, theta0, lr, ks) + best > BLOWUP * start_loss)
        diverged_at = int(ks[over[0]]) if len(over) else None

    # Path: the first steps one by one, then log-spaced up to the target (or the give-up point).
    last = steps_to_target if steps_to_target else (diverged_at or int(MAX_COUNTED_STEPS))
    last = max(last, config.path_steps)
    ks = np.unique(np.concatenate([np.arange(config.path_steps + 1),
                                   np.round(np.geomspace(max(config.path_steps, 1), last, 40))])).astype(np.int64)
    if diverged_at is not None:
        ks = ks[ks < diverged_at]
    thetas = gd_path(H, theta_star, theta0, lr, ks)
    path = pd.DataFrame({"step": ks, "w1": thetas[:, 0], "w2": thetas[:, 1], "b": thetas[:, 2],
                         "loss": quadratic_loss(A, y, thetas)})
    curve_steps = np.unique(np.round(np.geomspace(1, max(last, 10), 120))).astype(np.int64)
    if diverged_at is not None:
        curve_steps = curve_steps[curve_steps <= diverged_at]
    excess = excess_after(H, theta_star, theta0, lr, curve_steps)
    curve = pd.DataFrame({"inputs": name, "step": curve_steps, "loss": excess + best, "excess": excess})

    # The loss over (w1, w2) with b at its best for each pair: L* + (w - w*)^T S (w - w*), where
    # S is the covariance of the two columns (profiling b out centres the problem).
    S = np.cov(Z.T, bias=True)
    s_eig = np.linalg.eigvalsh(S)
    aspect = float(np.sqrt(s_eig[-1] / s_eig[0])) if s_eig[0] > s_eig[-1] * 1e-15 else math.inf
    w_star = theta_star[:2]
    # Equal spans on both axes (the geometry gradient descent sees), centred on the optimum so a
    # valley narrower than a cell still falls on a cell centre; wide enough to hold the start.
    half = 1.3 * max(float(np.max(np.abs(w_star))), 1e-3)
    offsets = np.linspace(-half, half, config.grid)
    W1, W2 = np.meshgrid(w_star[0] + offsets, w_star[1] + offsets)
    D = np.stack([W1.ravel() - w_star[0], W2.ravel() - w_star[1]], axis=1)
    # A log colour scale cannot show 0, which a noise-free fit reaches at the optimum.
    grid_loss = np.maximum(best + np.einsum("ij,jk,ik->i", D, S, D), 1e-12)
    grid = pd.DataFrame({"w1": W1.ravel(), "w2": W2.ravel(), "loss": grid_loss})
    return SurfacePanel(name, H, lam, condition, stable_lr, lr, theta_star, steps_to_target, diverged_at,
                        aspect, grid, path, curve)


def run_surface(data: Dataset, setup: LabSetup, config: SurfaceConfig = SurfaceConfig(),
                on_progress: Progress | None = None) -> SurfaceResult:
    """Raw against standardized inputs for y = w1*x1 + w2*x2 + b, exactly (no training loop).

    Both start at w = 0, b = 0, where the prediction is 0, so they share the start loss; they share
    the best loss too (standardizing only changes coordinates), hence one target loss for both.

    >>> res = run_surface(load_builtin("scaled_regression"), LabSetup(), SurfaceConfig())
    >>> res.standardized.steps_to_target < res.raw.steps_to_target
    True
    """
    on_progress = on_progress or no_progress
    if not 0 < config.lr_fraction <= 2:
        raise ValueError("The learning-rate fraction must be above 0 and at most 2.")
    if not 0 < config.target_fraction < 1:
        raise ValueError("The target share of the reducible loss must be between 0 and 1.")
    if not 3 <= config.grid <= 301 or not 0 <= config.path_steps <= 1000:
        raise ValueError("The grid needs 3 to 301 cells per axis and the path 0 to 1,000 steps.")
    on_progress(0.1, "solving the two regressions")
    data, x1, x2, X, y, notes = _surface_data(data, setup, config)
    start_loss = float(np.mean(y**2))
    best = float(quadratic_loss(design(X), y, np.linalg.lstsq(design(X), y, rcond=None)[0]))
    target_loss = best + config.target_fraction * (start_loss - best)
    raw = _panel("raw", X, y, config, start_loss, target_loss)
    on_progress(0.5, "standardized inputs")
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    std = _panel("standardized", Z, y, config, start_loss, target_loss)
    speedup = None
    if std.steps_to_target:
        speedup = raw.steps_to_target / std.steps_to_target if raw.steps_to_target else math.inf
    result = SurfaceResult(x1, x2, data.target_name, data.n_rows, start_loss, best, target_loss, raw, std,
                           speedup, Verdict("info", ""), notes)
    result.verdict = surface_verdict(result)
    on_progress(1.0, "done")
    return result


def _steps(n: int | None) -> str:
    if n is None:
        return f"more than {MAX_COUNTED_STEPS:.0e} steps"
    return f"{n:,} step{'s' if n != 1 else ''}" if n < 1e6 else f"{num(n)} steps"


def surface_verdict(res: SurfaceResult) -> Verdict:
    """One sentence with the condition numbers and the speed-up."""
    raw, std = res.raw, res.standardized
    cond = f"cut the condition number from {num(raw.condition)} to {num(std.condition)}"
    if raw.diverged_at is not None or std.diverged_at is not None:
        which = [p for p in (raw, std) if p.diverged_at is not None]
        text = (f"Standardizing {cond}; at {which[0].lr / which[0].stable_lr:.3g} x 2/lambda_max gradient "
                f"descent diverged ({', '.join(f'{p.name} at step {p.diverged_at}' for p in which)}): "
                "no rate above 2/lambda_max is stable.")
        return Verdict("problem", text, "Keep the rate below 2 / lambda_max (a fraction below 1).")
    if res.speedup is None:
        text = (f"Standardizing {cond}, but at this rate standardized inputs never reach the target loss "
                f"({num(res.target_loss)}).")
        return Verdict("warning", text, "Use a learning-rate fraction closer to 0.9.")
    speed = "infinitely" if math.isinf(res.speedup) else f"{num(res.speedup)}x"
    text = (f"Standardizing {cond} and reached the target loss ({num(res.target_loss)}) {speed} sooner "
            f"({_steps(std.steps_to_target)} instead of {_steps(raw.steps_to_target)} at each one's "
            "largest stable rate).")
    if raw.condition >= 100 * std.condition:
        return Verdict("warning", text, "Standardize the inputs (fit the scaler on the training split).")
    return Verdict("good", text + " These two columns already share a scale, so scaling matters little.")


# ============================================================================ 2. lab model
@dataclass(frozen=True)
class LabConfig:
    """The lab model trained with each input scaling, and with batch norm on raw inputs."""

    optimizer: str = "adam"  # "sgd", "momentum" or "adam"
    lr: float | None = 0.01  # one rate for every run; None = each run at lr_fraction x its own 2/lambda_max
    lr_fraction: float = 0.5  # used when lr is None; below 0.9 because nets sharpen while they train
    steps: int = 150  # optimizer updates per run
    batch_size: int | None = 32  # rows per update; None = full batch (2 / lambda_max is exact there)
    target_fraction: float = 0.3  # target loss = this x the loss of the best constant prediction


# (label, scaler, batch norm): the four scalers without batch norm, then batch norm on raw inputs
# (batch norm on standardized inputs is run_batches' normal-batch run).
LAB_RUNS = (
    ("raw", "none", False), ("standard", "standard", False), ("min-max", "minmax", False),
    ("robust", "robust", False), ("raw + batch norm", "none", True),
)


@dataclass
class LabResult:
    """One row per run in `runs`; curves for the charts; the fitted scaler statistics."""

    runs: pd.DataFrame  # run, scaler, batch_norm, lambda_max, stable_lr, lr, steps_to_target,
    #                     final_train_loss, final_val_metric, diverged_at
    steps: pd.DataFrame  # run, step, loss: per-step training loss (training mode, the batch seen)
    evals: pd.DataFrame  # run, step, train_loss, val_loss, val_metric in evaluation mode
    scaler_stats: pd.DataFrame  # scaler, feature, center, scale: X_scaled = (X - center) / scale
    metric: str  # "accuracy" or "R^2"
    baseline_loss: float  # loss of the best constant prediction on the training split
    target_loss: float
    n_train: int
    verdict: Verdict  # about input scaling
    bn_verdict: Verdict  # about batch norm on raw inputs
    notes: tuple[str, ...] = ()


def validate_lab(config: LabConfig, n_train: int | None = None) -> None:
    """Raise ValueError with a plain sentence for an impossible lab config."""
    if config.optimizer not in LAB_OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(LAB_OPTIMIZERS)}.")
    if config.lr is not None and not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.lr is None and not 0 < config.lr_fraction <= 2:
        raise ValueError("The fraction of 2 / lambda_max must be above 0 and at most 2.")
    if not 1 <= config.steps <= MAX_STEPS:
        raise ValueError(f"Train for 1 to {MAX_STEPS:,} steps.")
    if config.batch_size is not None:
        if config.batch_size < 2:
            raise ValueError("Batch norm needs at least 2 rows per batch.")
        if n_train is not None and config.batch_size > n_train:
            raise ValueError(f"The batch size ({config.batch_size}) is larger than the training split "
                             f"({n_train} rows).")
    if not 0 < config.target_fraction < 1:
        raise ValueError("The target share of the baseline loss must be between 0 and 1.")


def baseline_loss(split: Split) -> float:
    """Loss of the best constant prediction on the training split (cross-entropy or MSE).

    Classification: the entropy of the class shares. Regression: the variance of the (already
    standardized) targets, i.e. 1.
    """
    if split.task == "classification":
        p = np.bincount(split.y_train, minlength=split.n_classes) / len(split.y_train)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())
    return float(np.var(split.y_train.astype(np.float64)))


def scaler_table(split: Split, scaler: str, feature_names) -> pd.DataFrame:
    """The fitted statistics of a split's scaler as center and scale: X_scaled = (X - center) / scale."""
    s = split.scaler
    if s is None:
        center, scale = np.zeros(split.n_features), np.ones(split.n_features)
    elif scaler == "minmax":
        center, scale = s.data_min_, s.data_range_
    elif scaler == "robust":
        center, scale = s.center_, s.scale_
    else:
        center, scale = s.mean_, s.scale_
    return pd.DataFrame({"scaler": SCALER_LABELS[scaler], "feature": list(feature_names),
                         "center": np.asarray(center, dtype=np.float64), "scale": np.asarray(scale, dtype=np.float64)})


def _bn_safe(split: Split, batch: int | None, batch_norm: bool) -> tuple[Split, str | None]:
    """Drop one training row when the last batch would hold a single row (batch norm refuses it)."""
    n = len(split.X_train)
    if not batch_norm or batch is None or batch >= n or n % batch != 1:
        return split, None
    trimmed = dataclasses.replace(split, X_train=split.X_train[:-1], y_train=split.y_train[:-1])
    return trimmed, (f"One training row was left out of the batch-norm runs: with {n} rows in batches of "
                     f"{batch} the last batch would hold a single row, and batch norm needs two.")


def _start_curvature(model: nn.Module, split: Split, loss_fn) -> float:
    """lambda_max of the full training loss at the model's current weights (training mode)."""
    f, theta = model_loss(model, loss_fn, split.X_train, split.y_train)
    return float(hessian_extremes(f, theta, tol=1e-3).eig_max)


def _train_run(model: nn.Module, split: Split, cfg: TrainConfig, every: int, loss_fn,
               progress: Progress) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """Train through core.train.train, evaluating (eval mode) at step 0 and every `every` steps.

    Returns the per-step losses, the evaluations and the divergence step: the first NaN/inf step
    (training stops there) or the first evaluation whose training loss is non-finite or above
    BLOWUP_FACTOR x its start.
    """
    rows = []

    def record(step: int) -> None:
        tr_loss, _ = evaluate(model, split.X_train, split.y_train, split.task, loss_fn)
        va_loss, va_metric = evaluate(model, split.X_val, split.y_val, split.task, loss_fn)
        rows.append((step, tr_loss, va_loss, va_metric))

    def on_step(step: int, total: int, loss: float) -> None:
        if step % every == 0 or step == total:
            record(step)
        progress(step / total, f"step {step}/{total}")

    record(0)
    hist = train(model, split, cfg, on_step=on_step)
    evals = pd.DataFrame(rows, columns=["step", "train_loss", "val_loss", "val_metric"])
    diverged = hist.diverged_at
    if diverged is None:
        # A tanh net with cross-entropy rarely overflows: too large a rate shows as a loss that
        # shoots far above where it started instead.
        diverged = first_blowup(evals.rename(columns={"train_loss": "loss"}))
    return hist.steps[["step", "loss"]].copy(), evals, diverged


def _first_reach(evals: pd.DataFrame, target: float) -> int | None:
    hit = evals.loc[evals["train_loss"] <= target, "step"]
    return int(hit.iloc[0]) if len(hit) else None


def run_lab(data: Dataset, setup: LabSetup, config: LabConfig = LabConfig(),
            on_progress: Progress | None = None) -> LabResult:
    """Train the lab model with each scaler (no batch norm) and with batch norm on raw and
    standardized inputs; same split, same initial weights (the setup's seed), same step budget.

    Every scaler is a scikit-learn one fitted on the training split only (core.train.split_data).
    lambda_max is the largest Hessian eigenvalue of the full training loss at the start (training
    mode: batch norm uses the statistics of the whole training split, as full-batch training does).
    """
    on_progress = on_progress or no_progress
    validate_lab(config)
    notes: list[str] = []
    loss_fn = make_loss("auto", data.task, data.n_classes)
    every = max(1, config.steps // 40)
    run_rows, step_frames, eval_frames, stats = [], [], [], []
    splits = {}
    target = base = None
    for i, (label, scaler, bn) in enumerate(LAB_RUNS):
        progress = sub_progress(on_progress, i / len(LAB_RUNS), (i + 1) / len(LAB_RUNS))
        if scaler not in splits:
            splits[scaler] = split_data(data, scaler, 0.2, setup.seed)
            stats.append(scaler_table(splits[scaler], scaler, data.feature_names))
        split = splits[scaler]
        validate_lab(config, len(split.X_train))
        if base is None:
            base = baseline_loss(split)
            target = config.target_fraction * base
        split, note = _bn_safe(split, config.batch_size, bn)
        if note and note not in notes:
            notes.append(note)
        model = build_model(setup, split.n_features, split.n_outputs,
                            dataclasses.replace(setup.model, batch_norm=bn))
        progress(0.0, f"{label}: curvature at the start")
        lam = _start_curvature(model, split, loss_fn)
        stable = 2.0 / lam if lam > 0 else math.inf
        lr = config.lr if config.lr is not None else config.lr_fraction * stable
        if not math.isfinite(lr):
            lr = 0.1
            notes.append(f"{label}: no positive curvature at the start, so it trains at 0.1.")
        cfg = TrainConfig(optimizer=config.optimizer, lr=lr, max_steps=config.steps,
                          batch_size=config.batch_size, scaler=scaler, seed=setup.seed)
        steps, evals, diverged = _train_run(model, split, cfg, every, loss_fn,
                                            lambda f, m, p=progress, lb=label: p(0.1 + 0.9 * f, f"{lb}: {m}"))
        steps.insert(0, "run", label)
        evals.insert(0, "run", label)
        step_frames.append(steps)
        eval_frames.append(evals)
        last = evals.iloc[-1]
        run_rows.append(dict(run=label, scaler=SCALER_LABELS[scaler], batch_norm=bn, lambda_max=lam,
                             stable_lr=stable, lr=lr, steps_to_target=_first_reach(evals, target),
                             final_train_loss=float(last["train_loss"]), final_val_metric=float(last["val_metric"]),
                             diverged_at=diverged))
    runs = pd.DataFrame(run_rows)
    runs["steps_to_target"] = runs["steps_to_target"].astype("Int64")
    runs["diverged_at"] = runs["diverged_at"].astype("Int64")
    result = LabResult(runs, pd.concat(step_frames, ignore_index=True), pd.concat(eval_frames, ignore_index=True),
                       pd.concat(stats, ignore_index=True), metric_name(data.task), float(base), float(target),
                       len(splits["none"].X_train), Verdict("info", ""), Verdict("info", ""), tuple(notes))
    result.verdict, result.bn_verdict = lab_verdicts(result, config)
    on_progress(1.0, "done")
    return result


def num(x: float) -> str:
    """A number for a sentence: 3 significant digits, or short scientific notation (9.3e8).

    >>> num(930000000.0), num(0.0229), num(1e9), num(float("inf"))
    ('9.3e8', '0.0229', '1.0e9', 'infinite')
    """
    if not math.isfinite(x):
        return "infinite" if x > 0 else "undefined"
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _reach(row, steps: int) -> str:
    if pd.notna(row["diverged_at"]):
        return (f"diverged at step {int(row['diverged_at'])} (the training loss went past "
                f"{BLOWUP_FACTOR:g}x its start or stopped being a number)")
    n = row["steps_to_target"]
    return f"did not reach the target within {steps} steps" if pd.isna(n) else f"reached the target in {int(n)} steps"


def lab_verdicts(res: LabResult, config: LabConfig) -> tuple[Verdict, Verdict]:
    """Verdicts for input scaling (raw vs standardized) and batch norm on raw inputs."""
    r = res.runs.set_index("run")
    raw, std, bn_raw = r.loc["raw"], r.loc["standard"], r.loc["raw + batch norm"]
    rate = (f"{config.optimizer} at {config.lr:g}" if config.lr is not None
            else f"{config.optimizer}, each run at {config.lr_fraction:g} x its own 2/lambda_max")
    text = (f"With {rate} and a target loss of {num(res.target_loss)}, standardized inputs "
            f"{_reach(std, config.steps)} (final loss {num(std['final_train_loss'])}) and raw inputs "
            f"{_reach(raw, config.steps)} (final loss {num(raw['final_train_loss'])}). lambda_max at the start is "
            f"{num(raw['lambda_max'])} raw vs {num(std['lambda_max'])} standardized, so plain gradient descent "
            f"is stable only below {num(raw['stable_lr'])} vs {num(std['stable_lr'])}.")
    ok = lambda row: pd.isna(row["diverged_at"])  # noqa: E731
    raw_n = raw["steps_to_target"] if ok(raw) else pd.NA
    std_n = std["steps_to_target"] if ok(std) else pd.NA
    if not (ok(raw) and ok(std)):
        kind, advice = "problem", "Lower the learning rate below the run's 2 / lambda_max, or standardize the inputs."
    elif (pd.notna(std_n) and pd.notna(raw_n) and raw_n > 1.5 * std_n) or (pd.isna(raw_n) and (
            raw["final_train_loss"] > 1.5 * std["final_train_loss"] or (pd.notna(std_n) and 3 * std_n < config.steps))):
        kind, advice = "warning", "Standardize the inputs (a scaler fitted on the training split)."
    elif std["final_train_loss"] > 1.5 * raw["final_train_loss"]:
        kind, advice = "info", ""
        text += " Raw inputs trained better here: their scales already suit the model."
    else:
        kind, advice = "good", ""
        text += " The features already share a scale here, so scaling changes little."
    scaling = Verdict(kind, text, advice)

    if not ok(bn_raw):
        return scaling, Verdict("problem", f"Batch norm on raw inputs {_reach(bn_raw, config.steps)}.",
                                "Lower the learning rate.")
    gap = bn_raw["final_val_metric"] - std["final_val_metric"]
    bn_text = (f"Batch norm on raw inputs ended at validation {res.metric} {bn_raw['final_val_metric']:.3f}, against "
               f"{std['final_val_metric']:.3f} for standardized inputs without it (gap {gap:+.3f}) and "
               f"{raw['final_val_metric']:.3f} for raw inputs without it; it {_reach(bn_raw, config.steps)} "
               f"(standardized without it: {_reach(std, config.steps).split(' (')[0]}).")
    if gap >= -0.05:
        return scaling, Verdict("good", bn_text, "")
    return scaling, Verdict("info", bn_text, "Standardize the inputs as well: batch norm rescales each hidden unit, "
                                             "not each input, so weights on small-scale inputs still learn slowly.")


# ============================================================================ 3. batch size with batch norm
@dataclass(frozen=True)
class BatchConfig:
    """Batch norm with a tiny batch against a normal one (and the same model without batch norm)."""

    tiny_batch: int = 2  # rows per batch; batch norm's mean and variance come from just these
    normal_batch: int = 32
    optimizer: str = "adam"  # the lab experiment's defaults, so the batch-32 run matches its setting
    lr: float = 0.01
    steps: int = 150  # the same number of updates for every run
    scaler: str = "standard"  # inputs are standardized so only the batch statistics differ
    n_batches: int = 500  # random batches drawn to measure how far batch statistics stray


TRAIN_MODE = "training mode (the batch's statistics; smoothed)"
EVAL_MODE = "evaluation mode (running averages)"


@dataclass
class BatchResult:
    """Three runs (batch norm at the tiny and the normal batch, none at the tiny one) and the
    noise of batch statistics."""

    runs: pd.DataFrame  # run, batch_norm, batch_size, train_mode_loss, eval_train_loss,
    #                     final_val_metric, diverged_at
    steps: pd.DataFrame  # run, step, loss, smooth: per-step training-mode loss (the batch seen)
    evals: pd.DataFrame  # run, step, train_loss, val_loss, val_metric in evaluation mode
    curves: pd.DataFrame  # run, step, mode, loss: smoothed training-mode and evaluation-mode losses
    batch_stats: pd.DataFrame  # batch_size, mean_error, std_error, expected_mean_error
    metric: str
    verdict: Verdict
    notes: tuple[str, ...] = ()


def batch_stat_error(z: np.ndarray, batch: int, n_batches: int = 500, seed: int = 0) -> tuple[float, float]:
    """How far a batch's mean and standard deviation stray from the full data's, per unit.

    `z` is (rows, units), e.g. the inputs of the first batch-norm layer. Returns the root mean
    square over random batches (drawn without replacement) and units of (mean_B - mean) / std and
    of std_B / std - 1 (std_B is the biased batch std batch norm uses). For the mean, sampling
    theory gives sqrt((1/B) (N - B) / (N - 1)).
    """
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    if not 2 <= batch <= n:
        raise ValueError(f"The batch size must be between 2 and the number of rows ({n}).")
    mu, sd = z.mean(axis=0), z.std(axis=0)
    keep = sd > 0
    z, mu, sd = z[:, keep], mu[keep], sd[keep]
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(n, size=batch, replace=False) for _ in range(n_batches)])
    b = z[idx]  # (n_batches, batch, units)
    mean_err = (b.mean(axis=1) - mu) / sd
    std_err = b.std(axis=1) / sd - 1.0
    return float(np.sqrt(np.mean(mean_err**2))), float(np.sqrt(np.mean(std_err**2)))


def run_batches(data: Dataset, setup: LabSetup, config: BatchConfig = BatchConfig(),
                on_progress: Progress | None = None) -> BatchResult:
    """Batch norm with a tiny and a normal batch (plus the model without batch norm at the tiny one).

    Every run starts from the same weights and makes the same number of updates at the same rate.
    The evaluation-mode losses use batch norm's running averages, as a deployed model does.
    """
    on_progress = on_progress or no_progress
    if config.optimizer not in LAB_OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(LAB_OPTIMIZERS)}.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.tiny_batch < 2 or config.normal_batch < 2:
        raise ValueError("Batch norm needs at least 2 rows per batch.")
    if config.tiny_batch >= config.normal_batch:
        raise ValueError("The tiny batch must be smaller than the normal one.")
    if not 1 <= config.steps <= MAX_STEPS:
        raise ValueError(f"Train for 1 to {MAX_STEPS:,} steps.")
    if config.scaler not in SCALERS:
        raise ValueError(f"Unknown scaler {config.scaler!r}; choose one of {', '.join(SCALERS)}.")
    split0 = split_data(data, config.scaler, 0.2, setup.seed)
    n_train = len(split0.X_train)
    if config.normal_batch > n_train:
        raise ValueError(f"The normal batch ({config.normal_batch}) is larger than the training split "
                         f"({n_train} rows).")
    loss_fn = make_loss("auto", data.task, data.n_classes)
    every = max(1, config.steps // 50)
    notes: list[str] = []
    run_rows, step_frames, eval_frames = [], [], []
    # Without batch norm at the tiny batch too: it tells the batch statistics' cost from plain
    # small-batch noise.
    plan = [(True, config.tiny_batch), (True, config.normal_batch), (False, config.tiny_batch)]
    for i, (bn, batch) in enumerate(plan):
        label = f"{'batch norm' if bn else 'no batch norm'}, batch {batch}"
        progress = sub_progress(on_progress, i / len(plan), (i + 1) / len(plan))
        split, note = _bn_safe(split0, batch, bn)
        if note and note not in notes:
            notes.append(note)
        model = build_model(setup, split.n_features, split.n_outputs,
                            dataclasses.replace(setup.model, batch_norm=bn))
        cfg = TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=config.steps, batch_size=batch,
                          scaler=config.scaler, seed=setup.seed)
        steps, evals, diverged = _train_run(model, split, cfg, every, loss_fn,
                                            lambda f, m, p=progress, lb=label: p(f, f"{lb}: {m}"))
        # The per-step loss of a batch of 2 is mostly noise: a running mean shows its trend.
        steps["smooth"] = steps["loss"].rolling(max(5, config.steps // 20), min_periods=1).mean()
        steps.insert(0, "run", label)
        evals.insert(0, "run", label)
        step_frames.append(steps)
        eval_frames.append(evals)
        tail = steps["loss"].iloc[-max(1, len(steps) // 10):]
        last = evals.iloc[-1]
        run_rows.append(dict(run=label, batch_norm=bn, batch_size=batch,
                             train_mode_loss=float(tail.mean()), eval_train_loss=float(last["train_loss"]),
                             final_val_metric=float(last["val_metric"]), diverged_at=diverged))
    # How noisy are batch statistics? Measured on the first layer's outputs at the start, which
    # are the inputs of the first batch-norm layer.
    first = build_model(setup, split0.n_features, split0.n_outputs)[0]
    with torch.no_grad():
        z = first(torch.as_tensor(split0.X_train)).double().numpy()
    stat_rows = []
    for batch in (config.tiny_batch, config.normal_batch):
        m_err, s_err = batch_stat_error(z, batch, config.n_batches, setup.seed)
        expected = math.sqrt((1 / batch) * (n_train - batch) / (n_train - 1))
        stat_rows.append(dict(batch_size=batch, mean_error=m_err, std_error=s_err, expected_mean_error=expected))
    runs = pd.DataFrame(run_rows)
    runs["diverged_at"] = runs["diverged_at"].astype("Int64")
    steps, evals = pd.concat(step_frames, ignore_index=True), pd.concat(eval_frames, ignore_index=True)
    curves = pd.concat([
        steps[["run", "step"]].assign(mode=TRAIN_MODE, loss=steps["smooth"]),
        evals[["run", "step"]].assign(mode=EVAL_MODE, loss=evals["train_loss"]),
    ], ignore_index=True)
    result = BatchResult(runs, steps, evals, curves, pd.DataFrame(stat_rows), metric_name(data.task),
                         Verdict("info", ""), tuple(notes))
    result.verdict = batch_verdict(result, config)
    on_progress(1.0, "done")
    return result


def batch_verdict(res: BatchResult, config: BatchConfig) -> Verdict:
    """How much worse batch norm does with the tiny batch, with the statistics' noise as the reason."""
    r = res.runs.set_index(["batch_norm", "batch_size"])
    tiny, normal = r.loc[(True, config.tiny_batch)], r.loc[(True, config.normal_batch)]
    plain_tiny = r.loc[(False, config.tiny_batch)]
    s = res.batch_stats.set_index("batch_size")
    noise = (f"a batch of {config.tiny_batch} puts each unit's mean off by {s.loc[config.tiny_batch, 'mean_error']:.2f} "
             f"standard deviations on average (batch of {config.normal_batch}: "
             f"{s.loc[config.normal_batch, 'mean_error']:.2f})")
    diverged = res.runs[res.runs["diverged_at"].notna()]
    if len(diverged):
        first = diverged.iloc[0]
        return Verdict("problem", f"The run '{first['run']}' diverged at step {int(first['diverged_at'])} (the "
                       f"training loss went past {BLOWUP_FACTOR:g}x its start or stopped being a number); {noise}.",
                       "Lower the learning rate.")
    text = (f"With batch norm, batches of {config.tiny_batch} ended at a training loss (evaluation mode) of "
            f"{num(tiny['eval_train_loss'])} against {num(normal['eval_train_loss'])} with {config.normal_batch} "
            f"and {num(plain_tiny['eval_train_loss'])} without batch norm at {config.tiny_batch} (validation "
            f"{res.metric} {tiny['final_val_metric']:.3f}, {normal['final_val_metric']:.3f}, "
            f"{plain_tiny['final_val_metric']:.3f}): {noise}.")
    worse = normal["final_val_metric"] - tiny["final_val_metric"]
    if worse > 0.02 or tiny["eval_train_loss"] > 1.5 * normal["eval_train_loss"]:
        return Verdict("warning", text, "Use batches of 32 or more with batch norm (or a norm that does not "
                                        "depend on the batch, like layer norm).")
    return Verdict("info", text + " Here the noise did not cost much.", "")


# ============================================================================ all three
@dataclass(frozen=True)
class Config:
    """The page's default run: the three experiments' configs."""

    surface: SurfaceConfig = SurfaceConfig()
    lab: LabConfig = LabConfig()
    batches: BatchConfig = BatchConfig()


@dataclass
class Result:
    """The three experiments and one verdict (the surface's, which carries the lecture's point)."""

    surface: SurfaceResult
    lab: LabResult
    batches: BatchResult
    verdict: Verdict


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Run the error-surface, lab-model and batch-size experiments."""
    on_progress = on_progress or no_progress
    surface = run_surface(data, setup, config.surface, sub_progress(on_progress, 0.0, 0.05))
    lab = run_lab(data, setup, config.lab, sub_progress(on_progress, 0.05, 0.65))
    batches = run_batches(data, setup, config.batches, sub_progress(on_progress, 0.65, 1.0))
    return Result(surface, lab, batches, surface.verdict)
