"""Pieces shared by the feature-scaling page's experiments (lecture 5.2): run names, bounds,
the stop ticker, curvature at a point, the smoothed training curve and mean/spread bands.

The experiments themselves live in scaling_surface, scaling_lab, bn_curvature and batch_norm.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from torch import nn

from core.curvature import hessian_extremes, model_loss
from core.diagnoses import Progress, Ticker
from core.rules import smooth
from core.runs import prepare_split
from core.train import check_dataset_size

MIN_SEEDS, MAX_SEEDS = 1, 10  # one seed is a single run (no claim on pace); ten bound the time
MAX_STEPS = 2000  # updates per run: beyond this a page stops being interactive
MAX_TRAIN_ROWS = 20_000  # the most training rows a run may use (Config.max_train_rows)
DEFAULT_TRAIN_ROWS = 2000  # default cap on training rows: a 54k-row upload costs about what moons does
# Curvature (Hessian-vector products over the training rows) uses at most this many of them, fewer
# for big models (rows x parameters <= MEASURE_WORK), so one Lanczos run stays well under a second.
MEASURE_ROWS, MEASURE_WORK = 1024, 4e6
# Training-time estimate behind the two-minute bound (issue 19), measured here on one CPU thread
# through core.runs.run_model: an update of a small MLP costs 0.5-1 ms, plus ~2.5e-10 s per row x
# parameter (4 x 64 MLP on digits); both doubled for a slower laptop.
UPDATE_SECONDS, ROW_PARAM_SECONDS = 1e-3, 5e-10
MAX_TRAIN_SECONDS = 60.0
CURVE_POINTS = 300  # points kept per training curve (the charts need no more)


def batch_norm_split(data, setup, scaler: str, max_train_rows: int):
    """The split both batch-norm experiments train on, after the checks they share: the dataset's
    size, and a hidden layer for batch norm to sit after."""
    check_dataset_size(data)
    if not setup.model.hidden:
        raise ValueError("Batch norm sits after a hidden layer; the sidebar's model has none (a linear model).")
    return prepare_split(data, setup, scaler, max_train_rows=max_train_rows)


def estimated_seconds(updates: int, rows_per_update: int, n_params: int) -> float:
    """Training time of `updates` updates on one CPU thread, by the constants above."""
    return updates * (UPDATE_SECONDS + ROW_PARAM_SECONDS * rows_per_update * n_params)


def check_budget(seconds: float, what: str) -> None:
    """Refuse, with a plain sentence, an experiment estimated past MAX_TRAIN_SECONDS."""
    if seconds > MAX_TRAIN_SECONDS:
        raise ValueError(f"{what} would train for about {seconds:,.0f} s; the page's limit is about "
                         f"{MAX_TRAIN_SECONDS:.0f} s. Use fewer seeds or steps, a smaller batch, or a lower "
                         "training-rows cap.")


def check_common(seeds: int, steps: int, max_train_rows: int) -> None:
    """Raise ValueError for seeds, steps or a rows cap outside the page's bounds."""
    if not MIN_SEEDS <= seeds <= MAX_SEEDS:
        raise ValueError(f"Use between {MIN_SEEDS} and {MAX_SEEDS} seeds.")
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"Train for 1 to {MAX_STEPS:,} steps.")
    if not 10 <= max_train_rows <= MAX_TRAIN_ROWS:
        raise ValueError(f"The training-rows cap must be between 10 and {MAX_TRAIN_ROWS:,}.")


def rows_note(n_kept: int, n_all: int, task: str, what: str = "Training") -> str | None:
    """The page's note when a training split was capped (core.runs.prepare_split), else None."""
    if n_kept >= n_all:
        return None
    how = "a random sample, each class keeping its share" if task == "classification" else "a random sample"
    return (f"{what} used {n_kept:,} of the {n_all:,} training rows ({how}), so the page stays quick on a large "
            "upload; raise the training-rows cap to use more.")


def measure_rows(n_rows: int, n_params: int) -> int:
    """How many training rows a curvature measure uses (MEASURE_ROWS, fewer for big models)."""
    return int(max(16, min(n_rows, MEASURE_ROWS, MEASURE_WORK // max(n_params, 1))))


def lambda_max(model: nn.Module, loss_fn, X: np.ndarray, y: np.ndarray, should_stop=None) -> float:
    """Largest Hessian eigenvalue of loss_fn(model(X), y) at the model's weights, in the model's
    current mode (batch norm in training mode uses the statistics of all of X), on its device.
    Lanczos to 1% (core.curvature.hessian_extremes); the model is not changed."""
    f, theta = model_loss(model, loss_fn, X, y)
    return float(hessian_extremes(f, theta, rtol=1e-2, should_stop=should_stop).eig_max)


def smoothed_curve(steps: pd.DataFrame, width: int) -> pd.DataFrame:
    """step and smooth (trailing mean of `width` mini-batch losses, core.rules.smooth) of a run's
    per-step record. Row `step` holds the loss of the batch seen after that many updates, as in
    core.train's record."""
    loss = steps["loss"].to_numpy(dtype=float)
    return pd.DataFrame({"step": steps["step"].to_numpy(dtype=np.int64), "smooth": smooth(loss, width)})


def thin(frame: pd.DataFrame, points: int = CURVE_POINTS) -> pd.DataFrame:
    """At most `points` evenly spaced rows of a curve, the first and last always kept."""
    if len(frame) <= points:
        return frame.reset_index(drop=True)
    keep = np.unique(np.r_[np.linspace(0, len(frame) - 1, points).round().astype(int), len(frame) - 1])
    return frame.iloc[keep].reset_index(drop=True)


def first_at_or_below(curve: pd.DataFrame, target: float) -> int | None:
    """First step whose smoothed loss is at or below `target`, or None."""
    hit = np.flatnonzero(curve["smooth"].to_numpy(dtype=float) <= target)
    return int(curve["step"].iloc[hit[0]]) if len(hit) else None


def smooth_width(steps: int) -> int:
    """Trailing-mean width for mini-batch losses: 5% of the run, at least 5 steps."""
    return max(5, steps // 20)


def bands(frame: pd.DataFrame, keys: list[str], x: str, value: str) -> pd.DataFrame:
    """Mean, min and max of `value` over seeds per (keys..., x): a line and its spread.

    >>> f = pd.DataFrame({"run": ["a", "a"], "seed": [0, 1], "step": [1, 1], "loss": [1.0, 3.0]})
    >>> b = bands(f, ["run"], "step", "loss")
    >>> float(b["mean"][0]), float(b["low"][0]), float(b["high"][0]), int(b["n"][0])
    (2.0, 1.0, 3.0, 2)
    """
    g = frame.groupby(keys + [x], sort=False)[value]
    out = pd.DataFrame({"mean": g.mean(), "low": g.min(), "high": g.max(), "n": g.count()}).reset_index()
    out["n"] = out["n"].astype(np.int64)
    return out


def geometric_mean(values) -> float:
    """Geometric mean of the finite positive values (NaN when there are none): the page's one
    summary over seeds for curvatures and rates, so 2 / (mean lambda_max) is the mean 2 / lambda_max
    and columns side by side agree.

    >>> round(geometric_mean([1.0, 100.0, float("nan")]), 9), round(geometric_mean([2.0, 8.0]), 9)
    (10.0, 4.0)
    """
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.mean(np.log(v)))) if len(v) else float("nan")


def finite_or_none(x) -> float | None:
    """x as a float, or None when missing or not finite."""
    if x is None or pd.isna(x):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def compare_log(measure: str, a: str, a_samples, b: str, b_samples, higher_is_better: bool,
                noise: float | None = None, **kw):
    """core.findings.compare on log10 values, for measures that span orders of magnitude
    (curvatures, learning rates): the winner is decided on the logs (a 100x gap is judged as one,
    not swamped by the spread of the larger side), and the values reported are geometric means.
    `spread_*` and `noise` stay in log10 units.

    >>> c = compare_log("rate", "bn", [100.0, 200.0], "plain", [1.0, 2.0], higher_is_better=True)
    >>> c.winner, round(c.a_value, 1), round(c.b_value, 2)
    ('bn', 141.4, 1.41)
    """
    from dataclasses import replace

    from core.findings import compare

    def logs(xs):
        return [math.log10(x) for x in xs if x is not None and math.isfinite(x) and x > 0]

    c = compare(measure, a, logs(a_samples), b, logs(b_samples), higher_is_better, noise=noise, **kw)
    return replace(c, a_value=10 ** c.a_value if math.isfinite(c.a_value) else c.a_value,
                   b_value=10 ** c.b_value if math.isfinite(c.b_value) else c.b_value)
