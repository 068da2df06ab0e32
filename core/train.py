"""The one training loop every diagnosis uses.

`train(model, data, config)` trains in place with a torch.optim optimizer and returns a `History`
of plain numbers: a per-step DataFrame (step, epoch, loss, grad_norm, lr, ...), a per-epoch
DataFrame (train/validation loss and metric, seconds) and `diverged_at`, the step whose loss or
gradient was NaN or infinite (the run stops there).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler
from torch import nn

from core.data import DataError, Dataset
from core.rules import BLOWUP_FACTOR, MINIBATCH_LEVEL_WINDOW, Divergence, divergence_limit, find_divergence

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
SCALERS = {"none": None, "standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
LOSSES = ("auto", "cross_entropy", "softmax_mse", "mse")
# Work per update (parameters x rows) below which the CPU beats a GPU's kernel-launch overhead:
# measured on an H200 with a 64-64 MLP, batch 100 (~5e6) ran at 1.56 ms on the GPU vs 1.68 ms on
# one CPU thread, batch 1,000 (~5e7) at 1.63 vs 4.0 ms.
AUTO_CUDA_MIN_WORK = 2e7

OnStep = Callable[[int, int, float], None]  # (steps done, total steps, last loss)


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Frozen and hashable so it can key a cache."""

    optimizer: str = "adam"  # one of OPTIMIZERS
    lr: float = 0.01  # base learning rate (a schedule multiplies or replaces it per step)
    epochs: int = 30  # passes over the training split (ignored when max_steps is set)
    max_steps: int | None = None  # total optimizer updates; overrides epochs
    batch_size: int | None = None  # rows per update; None = full batch
    momentum: float = 0.9  # for "momentum" and "nesterov"
    weight_decay: float = 0.0
    loss: str = "auto"  # auto = cross-entropy for classification, MSE for regression
    scaler: str = "standard"  # input scaling fitted on the training split only (SCALERS)
    val_fraction: float = 0.2  # held-out share, stratified for classification
    schedule: str | None = None  # a core.schedules name, or None for a constant rate
    schedule_params: tuple[tuple[str, float], ...] = ()  # (name, value) pairs for the schedule
    eval_every: int = 1  # evaluate train/validation loss and metric every k epochs (and the last)
    snapshot_every: int | None = None  # keep a copy of the flat parameters every k steps
    record_grad_cosine: bool = False  # cosine between successive gradients (oscillation test)
    grad_noise: float = 0.0  # std of gaussian noise added to each gradient (SGD-like noise)
    device: str = "auto"  # "auto": CUDA/MPS when available and the model is big enough to gain (pick_device)
    seed: int = 0  # batch order, split and noise


def validate_config(config: TrainConfig, n_train: int | None = None) -> None:
    """Raise ValueError with a plain sentence when the config cannot train."""
    if OPTIMIZER_ALIASES.get(config.optimizer, config.optimizer) not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.max_steps is None and config.epochs < 1:
        raise ValueError("Train for at least one epoch.")
    if config.max_steps is not None and config.max_steps < 1:
        raise ValueError("Train for at least one step.")
    if config.eval_every < 1:
        raise ValueError("Evaluate at least every epoch (eval_every >= 1).")
    if config.batch_size is not None and config.batch_size < 1:
        raise ValueError("The batch size must be at least 1.")
    if n_train is not None and config.batch_size is not None and config.batch_size > n_train:
        raise ValueError(
            f"The batch size ({config.batch_size}) is larger than the training split ({n_train} rows)."
        )
    if config.scaler not in SCALERS:
        raise ValueError(f"Unknown scaler {config.scaler!r}; choose one of {', '.join(SCALERS)}.")
    if config.loss not in LOSSES:
        raise ValueError(f"Unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}.")
    if not 0 < config.val_fraction < 0.9:
        raise ValueError("The validation share must be between 0 and 0.9.")


@dataclass(frozen=True, eq=False)
class Split:
    """A dataset cut into scaled training and validation arrays (numpy, float32)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    task: str
    n_classes: int
    scaler: object | None  # the fitted scikit-learn scaler, or None
    y_mean: float = 0.0  # regression targets are standardized with training statistics
    y_std: float = 1.0

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return self.X_train.shape[1]

    @property
    def n_outputs(self) -> int:
        """Output width of a model for this task: classes, or 1 for regression."""
        return self.n_classes if self.task == "classification" else 1


def split_data(data: Dataset, scaler: str = "standard", val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Split with scikit-learn (stratified for classification) and scale on the training part only.

    Regression targets are standardized too (training mean and std) so one learning rate suits
    every dataset; R^2 does not depend on it.
    """
    if scaler not in SCALERS:
        raise ValueError(f"Unknown scaler {scaler!r}; choose one of {', '.join(SCALERS)}.")
    stratify = data.y if data.task == "classification" and _can_stratify(data.y, val_fraction) else None
    X_tr, X_va, y_tr, y_va = train_test_split(
        data.X, data.y, test_size=val_fraction, random_state=seed, stratify=stratify
    )
    fitted = None
    if SCALERS[scaler] is not None:
        fitted = SCALERS[scaler]().fit(X_tr)
        X_tr, X_va = fitted.transform(X_tr), fitted.transform(X_va)
    y_mean, y_std = 0.0, 1.0
    if data.task == "regression":
        y_mean = float(np.mean(y_tr))
        y_std = float(np.std(y_tr)) or 1.0
        y_tr, y_va = (y_tr - y_mean) / y_std, (y_va - y_mean) / y_std
        y_tr, y_va = y_tr.astype(np.float32), y_va.astype(np.float32)
    return Split(
        X_train=np.ascontiguousarray(X_tr, dtype=np.float32),
        y_train=y_tr,
        X_val=np.ascontiguousarray(X_va, dtype=np.float32),
        y_val=y_va,
        task=data.task,
        n_classes=data.n_classes,
        scaler=fitted,
        y_mean=y_mean,
        y_std=y_std,
    )


def _can_stratify(y: np.ndarray, val_fraction: float) -> bool:
    counts = np.bincount(y)
    counts = counts[counts > 0]
    n_val = math.ceil(len(y) * val_fraction)
    return counts.min() >= 2 and n_val >= len(counts) and len(y) - n_val >= len(counts)


def make_loss(name: str, task: str, n_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss for a task: cross-entropy, softmax + MSE against one-hot targets, or plain MSE.

    "auto" is cross-entropy for classification and MSE for regression. For classification, "mse"
    compares raw outputs with one-hot targets (classification treated as regression).
    """
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"
    if task == "regression":
        if name != "mse":
            raise ValueError("Regression trains with mean squared error only.")
        return lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y)
    if name == "cross_entropy":
        return nn.functional.cross_entropy
    if name == "softmax_mse":
        return lambda out, y: _one_hot_mse(torch.softmax(out, dim=-1), y, n_classes)
    if name == "mse":
        return lambda out, y: _one_hot_mse(out, y, n_classes)
    raise ValueError(f"Unknown loss {name!r}.")


def _one_hot_mse(out: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    # Sum over classes, mean over rows: the lecture's ||y_hat - y||^2 per sample.
    target = nn.functional.one_hot(y, n_classes).to(out.dtype)
    return ((out - target) ** 2).sum(dim=-1).mean()


def metric_name(task: str) -> str:
    """'accuracy' for classification, 'R^2' for regression."""
    return "accuracy" if task == "classification" else "R^2"


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, task: str, loss_fn) -> tuple[float, float]:
    """(loss, metric) of a model on arrays, in eval mode, restoring the model's mode after."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.as_tensor(X, device=device))
            loss = float(loss_fn(out, torch.as_tensor(y, device=device)))
            out = out.cpu().numpy()
    finally:
        model.train(was_training)
    if not np.all(np.isfinite(out)):
        return loss, float("nan")
    return loss, metric_value(task, y, out)


def metric_value(task: str, y: np.ndarray, out: np.ndarray) -> float:
    """Accuracy of argmax(out) or R^2 of out[:, 0], the same numbers as sklearn's metrics.

    Written with numpy because sklearn's input validation costs ~4 ms a call, which made up most
    of train()'s per-epoch overhead; tests/test_train.py checks both against sklearn.
    """
    if task == "classification":
        return float(np.mean(out.argmax(axis=1) == y))
    pred = out[:, 0].astype(np.float64)
    resid = float(np.sum((y - pred) ** 2))
    total = float(np.sum((y - np.mean(y)) ** 2))
    return 1.0 - resid / total if total > 0 else float("nan")


# The one optimizer vocabulary of the app (pages, surfaces and races alike): short name -> label.
OPTIMIZER_LABELS = {
    "sgd": "Gradient descent",
    "momentum": "Momentum",
    "nesterov": "Nesterov momentum",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
}
OPTIMIZER_ALIASES = {"gd": "sgd"}  # older name kept so saved links and callers keep working


def make_optimizer(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, **torch_kw):
    """A torch.optim optimizer by short name (see OPTIMIZERS).

    `momentum` is SGD's beta for "momentum"/"nesterov" (ignored by the others); further keywords go
    to the torch constructor under torch's names (`betas` for Adam, `alpha` for RMSprop, `eps`...).

    >>> p = torch.zeros(2, requires_grad=True)
    >>> make_optimizer("adam", [p], lr=0.1, betas=(0.8, 0.99)).param_groups[0]["betas"]
    (0.8, 0.99)
    """
    name = OPTIMIZER_ALIASES.get(name, name)
    common = dict(lr=lr, weight_decay=weight_decay, **torch_kw)
    if name == "sgd":
        return torch.optim.SGD(params, **common)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(params, momentum=momentum, nesterov=name == "nesterov", **common)
    if name == "adagrad":
        return torch.optim.Adagrad(params, **common)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, **common)
    if name == "adam":
        return torch.optim.Adam(params, **common)
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


DEVICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> tuple[str, ...]:
    """The device choices this machine offers: auto and cpu always, cuda and mps where torch has them."""
    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return tuple(found)


def pick_device(requested: str = "auto", n_params: int = 0, rows_per_step: int = 0) -> torch.device:
    """The torch device for a run. "auto" takes an accelerator only when the work per update
    (parameters x rows) is large enough to beat its launch overhead (AUTO_CUDA_MIN_WORK); tiny
    models train as fast or faster on one CPU thread. An explicit choice that is not available
    raises ValueError with a plain sentence.
    """
    if requested not in DEVICES:
        raise ValueError(f"Unknown device {requested!r}; choose one of {', '.join(DEVICES)}.")
    if requested == "auto":
        accel = [d for d in available_devices() if d in ("cuda", "mps")]
        if accel and n_params * max(rows_per_step, 1) >= AUTO_CUDA_MIN_WORK:
            return torch.device(accel[0])
        return torch.device("cpu")
    if requested not in available_devices():
        raise ValueError(f"The device {requested!r} is not available on this machine; choose auto or cpu.")
    return torch.device(requested)


def resolve_device(device: str, n_params: int = 0, rows_per_step: int = 0) -> torch.device:
    """The device a TrainConfig.device names (see pick_device)."""
    return pick_device(device, n_params, rows_per_step)


@dataclass(eq=False)
class History:
    """What a training run recorded. `steps` has one row per optimizer update."""

    steps: pd.DataFrame  # step, epoch, loss, grad_norm, lr (+ grad_cos when recorded)
    epochs: pd.DataFrame  # epoch, train_loss, val_loss, train_metric, val_metric, seconds
    diverged_at: int | None  # first divergent step by core.rules (NaN/inf, or a blow-up); the run stops there
    metric: str  # "accuracy" or "R^2"
    seconds: float  # wall time of the whole run
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)  # step -> flat parameters
    final_params: np.ndarray | None = None  # flat parameters at the end (or before divergence)
    divergence: Divergence | None = None  # the finding behind diverged_at
    device: str = "cpu"  # where the run trained

    @property
    def final_loss(self) -> float:
        """Last finite training loss recorded per step (NaN if none)."""
        finite = self.steps["loss"][np.isfinite(self.steps["loss"])]
        return float(finite.iloc[-1]) if len(finite) else float("nan")

    def blowup_at(self) -> int | None:
        """The divergent step (the same as diverged_at; kept for callers of the old name)."""
        return self.diverged_at

    def divergence_message(self) -> str | None:
        """The one sentence for a diverged run (core.diagnoses.words), else None."""
        if self.divergence is None:
            return None
        from core.diagnoses.words import divergence_sentence

        return divergence_sentence(self.divergence)


def first_blowup(steps: pd.DataFrame) -> int | None:
    """The `step` of the first divergent row of a per-step record, by core.rules.first_divergence.

    >>> first_blowup(pd.DataFrame({"step": [0, 1, 2], "loss": [0.7, 3.0, 9.1]}))
    2
    """
    d = find_divergence(steps)
    return None if d is None else d.step


def flat_params(model: nn.Module) -> np.ndarray:
    """All trainable parameters as one float64 numpy vector (the order of model.parameters())."""
    return torch.cat([p.detach().reshape(-1).double().cpu() for p in model.parameters()]).numpy()


def set_flat_params(model: nn.Module, flat: np.ndarray) -> None:
    """Write a flat vector (as from flat_params) back into the model's parameters."""
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(torch.as_tensor(flat[offset : offset + n]).reshape(p.shape))
            offset += n


def train(
    model: nn.Module,
    data: Dataset | Split,
    config: TrainConfig = TrainConfig(),
    on_step: OnStep | None = None,
) -> History:
    """Train `model` in place on `data` and record every step.

    Batches are drawn by an index permutation per epoch (seeded), not a DataLoader: the data is
    a few in-memory tensors and a DataLoader's per-batch overhead would dominate. The run stops
    at the first NaN/inf loss or gradient and reports that step as `diverged_at`.

    >>> from core.data import load_builtin
    >>> from core.models import ModelSpec, build_mlp
    >>> model = build_mlp(ModelSpec(hidden=(8,)), n_in=2, n_out=2, seed=0)
    >>> hist = train(model, load_builtin("moons"), TrainConfig(epochs=5))
    >>> list(hist.steps.columns)[:5]
    ['step', 'epoch', 'loss', 'grad_norm', 'lr']
    """
    split = data if isinstance(data, Split) else split_data(data, config.scaler, config.val_fraction, config.seed)
    n_train = len(split.X_train)
    validate_config(config, n_train)
    batch = n_train if config.batch_size is None else min(config.batch_size, n_train)
    device = resolve_device(config.device, sum(p.numel() for p in model.parameters()), batch)
    model.to(device)
    X = torch.as_tensor(split.X_train, device=device)
    y = torch.as_tensor(split.y_train, device=device)
    loss_fn = make_loss(config.loss, split.task, split.n_classes)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config.optimizer, params, config.lr, config.momentum, config.weight_decay)

    steps_per_epoch = math.ceil(n_train / batch)
    total = config.max_steps if config.max_steps is not None else config.epochs * steps_per_epoch
    scheduler = None
    if config.schedule is not None:
        from core.schedules import to_torch

        scheduler = to_torch(optimizer, config.schedule, total, **dict(config.schedule_params))

    # The one divergence rule (core.rules): full-batch losses are compared one by one with the
    # start; mini-batch losses through the median of the last few, against the full training loss
    # at the start, so one unlucky batch is not a divergence.
    full_batch = batch >= n_train
    level_window = 1 if full_batch else MINIBATCH_LEVEL_WINDOW
    reference = None if full_batch else evaluate(model, split.X_train, split.y_train, split.task, loss_fn)[0]
    recent: list[float] = []
    limit = divergence_limit(reference) if reference is not None and math.isfinite(reference) else None
    divergence = None

    gen = torch.Generator().manual_seed(config.seed)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1) if config.grad_noise else None
    rows: list[tuple] = []
    cosines: list[float] = []
    epoch_rows: list[dict] = []
    snapshots: dict[int, np.ndarray] = {}
    diverged_at = None
    prev_grad = None
    step = 0
    start = time.perf_counter()
    model.train()
    epoch = 0
    while step < total and diverged_at is None:
        epoch += 1
        epoch_start = time.perf_counter()
        order = torch.randperm(n_train, generator=gen).to(device) if batch < n_train else None
        for first in range(0, n_train, batch):
            if step >= total:
                break
            if config.snapshot_every and step % config.snapshot_every == 0:
                snapshots[step] = flat_params(model)
            if order is None:
                xb, yb = X, y
            else:
                idx = order[first : first + batch]
                xb, yb = X[idx], y[idx]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            if noise_gen is not None:
                for g in grads:
                    g.add_(torch.randn(g.shape, generator=noise_gen, device=device, dtype=g.dtype), alpha=config.grad_noise)
            # One fused call for the per-tensor norms: this runs every step, on tiny tensors.
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            loss_value, grad_value = loss.item(), grad_norm.item()
            lr = optimizer.param_groups[0]["lr"]
            rows.append((step, epoch, loss_value, grad_value, lr))
            if config.record_grad_cosine:
                flat = torch.cat([g.reshape(-1) for g in grads])
                cosines.append(_cosine(prev_grad, flat))
                prev_grad = flat.clone()
            if limit is None:
                limit = divergence_limit(loss_value) if math.isfinite(loss_value) else -math.inf
            recent.append(loss_value)
            if len(recent) > level_window:
                recent.pop(0)
            level = loss_value if level_window == 1 else float(np.median(recent))
            if not (math.isfinite(loss_value) and math.isfinite(grad_value)) or not level <= limit:
                diverged_at = step
                ref = reference if reference is not None else rows[0][2]
                divergence = Divergence(step, float(ref), loss_value)
                break
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            if on_step is not None:
                on_step(step, total, loss_value)
        seconds = time.perf_counter() - epoch_start
        # Full-batch runs have an epoch per step: evaluating each one can double the run's time.
        due = epoch % config.eval_every == 0 or step >= total
        if diverged_at is None and due:
            train_loss, train_metric = evaluate(model, split.X_train, split.y_train, split.task, loss_fn)
            val_loss, val_metric = evaluate(model, split.X_val, split.y_val, split.task, loss_fn)
            epoch_rows.append(
                dict(epoch=epoch, step=step, train_loss=train_loss, val_loss=val_loss,
                     train_metric=train_metric, val_metric=val_metric, seconds=seconds)
            )
    steps = pd.DataFrame(rows, columns=["step", "epoch", "loss", "grad_norm", "lr"])
    if config.record_grad_cosine:
        steps["grad_cos"] = cosines
    epochs = pd.DataFrame(
        epoch_rows,
        columns=["epoch", "step", "train_loss", "val_loss", "train_metric", "val_metric", "seconds"],
    )
    return History(
        steps=steps,
        epochs=epochs,
        diverged_at=diverged_at,
        metric=metric_name(split.task),
        seconds=time.perf_counter() - start,
        snapshots=snapshots,
        final_params=flat_params(model),
        divergence=divergence,
        device=str(device),
    )


def _cosine(a: torch.Tensor | None, b: torch.Tensor) -> float:
    if a is None:
        return float("nan")
    denom = float(torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    return float(torch.dot(a, b)) / denom if denom > 0 else float("nan")


def check_dataset_size(data: Dataset, minimum: int = 10) -> None:
    """Raise DataError when a dataset is too small to split into training and validation."""
    if data.n_rows < minimum:
        raise DataError(f"The dataset has {data.n_rows} rows; at least {minimum} are needed.")
