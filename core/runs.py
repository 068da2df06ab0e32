"""The experiment kit: split, build, train, evaluate at start and end, progress, one summary.

Every diagnosis that trains the lab model goes through `run_model`, so each gets the same
device handling, the same divergence rule (core.rules, applied inside core.train.train), the same
start/end evaluation and the same summary numbers, with stable keys:

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> from core.train import TrainConfig
>>> split = prepare_split(load_builtin("moons"), LabSetup())
>>> rec = run_model(split, LabSetup(), TrainConfig(max_steps=50), key="adam")
>>> sorted(rec.summary())[:4]
['batch_size', 'device', 'diverged_at', 'final_train_loss']
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from sklearn.model_selection import train_test_split

from core.data import Dataset
from core.diagnoses import Progress, no_progress
from core.findings import tail_mean, tail_noise
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp, n_params
from core.rules import Divergence
from core.train import History, Split, TrainConfig, evaluate, make_loss, split_data, train, validate_config

TAIL_SHARE = 0.2  # a run's level is the mean of its last 20% of steps (one noisy point is not a level)


@dataclass(frozen=True)
class Evaluation:
    """Loss and metric on both splits at one moment (full passes, eval mode)."""

    train_loss: float
    val_loss: float
    train_metric: float
    val_metric: float


@dataclass(eq=False)
class RunRecord:
    """One finished training run. `model` is for the diagnosis' own follow-up measurements
    (curvature, sharpness); results handed to a page never carry it."""

    key: str  # stable key of the run (never a display label)
    config: TrainConfig
    history: History
    start: Evaluation
    end: Evaluation  # after the last update (for a diverged run: the weights that diverged)
    tail_loss: float  # mean training loss over the last TAIL_SHARE of steps
    tail_noise: float  # standard error of tail_loss (detrended): this run's own noise
    n_params: int
    model: nn.Module = field(repr=False)

    @property
    def divergence(self) -> Divergence | None:
        """Where and how the run diverged (core.rules), or None."""
        return self.history.divergence

    @property
    def diverged_at(self) -> int | None:
        """The divergent step, or None."""
        return self.history.diverged_at

    @property
    def device(self) -> str:
        """The device the run trained on."""
        return self.history.device

    def summary(self) -> dict:
        """One row of plain numbers with stable keys, for a results table."""
        return dict(
            run=self.key, lr=self.config.lr, optimizer=self.config.optimizer,
            batch_size=self.config.batch_size, steps=int(len(self.history.steps)),
            start_train_loss=self.start.train_loss, final_train_loss=self.end.train_loss,
            tail_train_loss=self.tail_loss, tail_noise=self.tail_noise,
            final_val_loss=self.end.val_loss, final_val_metric=self.end.val_metric,
            final_train_metric=self.end.train_metric, diverged_at=self.diverged_at,
            seconds=self.history.seconds, device=self.device,
        )


def prepare_split(data: Dataset, setup: LabSetup, scaler: str = "standard", val_fraction: float = 0.2,
                  max_train_rows: int | None = None) -> Split:
    """The split every run of a diagnosis shares (seeded by the lab seed), optionally with the
    training part capped at `max_train_rows` rows (stratified for classification)."""
    split = split_data(data, scaler, val_fraction, setup.seed)
    if max_train_rows is not None and len(split.X_train) > max_train_rows:
        X, y = subsample_rows(split.X_train, split.y_train, max_train_rows, split.task, setup.seed)
        split = replace(split, X_train=X, y_train=y)
    return split


def training_rows(n_rows: int, val_fraction: float = 0.2) -> int:
    """Rows the training split of `n_rows` holds before any cap (scikit-learn rounds the
    validation share up), so a page can say "used 2,000 of the 43,152 training rows" without
    splitting the whole table again just to count it.

    >>> training_rows(53_940)
    43152
    """
    return n_rows - math.ceil(n_rows * val_fraction)


def subsample_rows(X: np.ndarray, y: np.ndarray, n: int, task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` rows of (X, y), drawn with scikit-learn (stratified for classification when it can be)."""
    if len(X) <= n:
        return X, y
    stratify = y if task == "classification" and np.bincount(y).min(initial=n) >= 2 else None
    try:
        X_kept, _, y_kept, _ = train_test_split(X, y, train_size=n, random_state=seed, stratify=stratify)
    except ValueError:  # a class too rare to stratify at this size
        X_kept, _, y_kept, _ = train_test_split(X, y, train_size=n, random_state=seed)
    return np.ascontiguousarray(X_kept), y_kept


def build(setup: LabSetup, split: Split, model_spec: ModelSpec | None = None, seed: int | None = None) -> nn.Module:
    """The lab model (or `model_spec`) sized for the split, seeded by the lab seed (or `seed`)."""
    return build_mlp(model_spec or setup.model, split.n_features, split.n_outputs,
                     seed=setup.seed if seed is None else seed)


def run_model(split: Split, setup: LabSetup, config: TrainConfig, key: str,
              model_spec: ModelSpec | None = None, on_progress: Progress | None = None,
              model: nn.Module | None = None, message: str | None = None) -> RunRecord:
    """Build (or take) a model, evaluate it, train it with core.train on the setup's device,
    evaluate again, and return the record. `on_progress(fraction, message)` is called as steps
    finish; under Streamlit it is also where a Stop lands.
    """
    on_progress = on_progress or no_progress
    config = replace(config, device=setup.device if config.device == "auto" else config.device)
    validate_config(config, len(split.X_train))
    model = model if model is not None else build(setup, split, model_spec, config.seed)
    loss_fn = make_loss(config.loss, split.task, split.n_classes)
    start = _evaluate(model, split, loss_fn)
    label = message or key
    hist = train(model, split, config,
                 on_step=lambda k, total, loss: on_progress(k / total, f"{label}: step {k:,} of {total:,}"))
    end = _evaluate(model, split, loss_fn)
    losses = hist.steps["loss"].to_numpy(dtype=float)
    if hist.diverged_at is not None:
        losses = losses[:-1]  # the divergent step's loss is not part of the run's level
    return RunRecord(key=key, config=config, history=hist, start=start, end=end,
                     tail_loss=tail_mean(losses, TAIL_SHARE), tail_noise=tail_noise(losses, TAIL_SHARE),
                     n_params=n_params(model), model=model)


def _evaluate(model: nn.Module, split: Split, loss_fn: Callable) -> Evaluation:
    tl, tm = evaluate(model, split.X_train, split.y_train, split.task, loss_fn)
    vl, vm = evaluate(model, split.X_val, split.y_val, split.task, loss_fn)
    return Evaluation(tl, vl, tm, vm)


def summary_frame(records: list[RunRecord]) -> pd.DataFrame:
    """The summaries of several runs as one DataFrame (one row per run, stable column keys)."""
    frame = pd.DataFrame([r.summary() for r in records])
    if len(frame):
        frame["diverged_at"] = frame["diverged_at"].astype("Int64")
    return frame


def seeds_for(setup: LabSetup, n_seeds: int) -> list[int]:
    """The seeds of an n-seed comparison: the lab seed and the next n-1 (so seed 0 with 5 seeds
    is 0..4, and one seed is exactly the single-run page)."""
    return [setup.seed + i for i in range(max(1, n_seeds))]


def on_device(array: np.ndarray, model: nn.Module) -> torch.Tensor:
    """A numpy array as a tensor on the model's device (for follow-up measurements)."""
    return torch.as_tensor(array, device=next(model.parameters()).device)
