"""Loss function for classification: softmax + MSE against cross-entropy (lecture 5.1).

Three pieces, all computed here and only drawn by core/charts/loss_function.py:

1. Training side by side: the lab model, the same initial weights, seed and optimizer, trained
   full batch (one step per epoch, so every step has its training accuracy) with cross-entropy,
   softmax + MSE against one-hot targets and, optionally, raw outputs + MSE.
2. The lecture's picture: one sample of class 1 with two logits (y1, y2); both losses in closed
   form over a grid, with a gradient-descent path from a confidently wrong start.
3. softmax([z, 0])[0] against sigmoid(z): the two-class softmax is the sigmoid.

The "confidently wrong start" sets the output layer's bias so that every row's logits favour the
rarest training class by a margin M (see `confidently_wrong_init`). Every row then sits at the
same point of the two-logit picture, where the softmax + MSE gradient is ~4 e^-M and the
cross-entropy gradient ~1.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.special import expit, softmax
from torch import nn

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.lab import LabSetup, build_model
from core.train import OPTIMIZERS, TrainConfig, check_dataset_size, evaluate, make_loss, split_data, train

# Runs in the order they are drawn; the keys are core.train.make_loss names.
RUN_LABELS = {"cross_entropy": "cross-entropy", "softmax_mse": "softmax + MSE", "mse": "raw outputs + MSE"}
PICTURE_LOSSES = ("cross_entropy", "softmax_mse")
CONFIDENT = 0.99  # a row counts as confidently wrong when a wrong class gets at least this probability
SOFTMAX_DEMO_Z = (-20.0, -10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
MAX_STEPS = 5000
LEFT_START = 0.05  # a run has "left its start" once its accuracy is this far above the start's


@dataclass(frozen=True)
class Config:
    """What the page asks for. Defaults are the page's default run."""

    optimizer: str = "sgd"  # plain gradient descent, as in the lecture's picture (Adam rescales tiny gradients)
    lr: float = 0.5  # learning rate of every run
    steps: int = 200  # full-batch updates per run (one update per epoch)
    raw_mse: bool = False  # also train raw outputs against one-hot targets with MSE (classification as regression)
    wrong_start: bool = False  # start every run confidently wrong (output-layer bias, see confidently_wrong_init)
    margin: float = 8.0  # logit margin of the wrong start; also the picture's start (y1, y2) = (-M/2, M/2)
    goal: float = 0.9  # training accuracy the verdict counts steps to (lowered when no run can reach it)
    picture_lr: float = 1.0  # gradient-descent step on the two-logit picture
    picture_steps: int = 100  # steps of each path on the picture
    picture_extent: float = 10.0  # the picture covers [-extent, extent]^2 in (y1, y2), as in the lecture
    picture_points: int = 61  # grid points per axis of each heat map


@dataclass(eq=False)
class Result:
    """Everything the page shows; plain numpy / pandas, picklable by st.cache_data."""

    task: str  # the dataset's task; training runs only for "classification"
    trained: bool  # False when the dataset is a regression set (nothing was trained)
    curves: pd.DataFrame  # run, step, loss, accuracy, val_accuracy, grad_norm (step 0 = before training)
    summary: pd.DataFrame  # one row per run: start/final accuracy, steps to goal, steps on the start, ...
    goal: float  # the accuracy the steps-to-goal column counts to
    diverged: dict[str, int]  # run label -> step where its loss or gradient became NaN/inf
    messages: list[str]  # one divergence sentence per diverged run
    wrong_class: str | None  # the class every row starts out predicting (wrong start), else None
    wrong_share: float  # share of training rows confidently wrong before training (p_wrong >= CONFIDENT)
    chance: float  # accuracy of always answering the most frequent training class
    n_train: int
    grid: pd.DataFrame  # loss function, y1, y2, loss: both losses of the two-logit picture
    paths: pd.DataFrame  # loss function, step, y1, y2, loss, grad_norm, p_correct: descent on the picture
    softmax_table: pd.DataFrame  # z, softmax([z, 0])[0], sigmoid(z), abs difference
    softmax_max_diff: float
    verdict: Verdict


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence when the config cannot run."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    for name, value in (("learning rate", config.lr), ("picture's learning rate", config.picture_lr)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"The {name} must be a positive number.")
    for name, value in (("step budget", config.steps), ("picture's step count", config.picture_steps)):
        if not 1 <= value <= MAX_STEPS:
            raise ValueError(f"The {name} must be between 1 and {MAX_STEPS} steps.")
    if not 0 <= config.margin <= 50:
        raise ValueError("The wrong start's logit margin must be between 0 and 50.")
    if not 0 < config.goal <= 1:
        raise ValueError("The accuracy goal must be between 0 and 1.")
    if not 0 < config.picture_extent <= 100:
        raise ValueError("The picture's extent must be between 0 and 100.")
    if not 5 <= config.picture_points <= 201:
        raise ValueError("The picture needs between 5 and 201 grid points per axis.")


# ---------------------------------------------------------------------------------------------
# The lecture's picture: one sample of class 1, two logits (y1, y2). Both losses depend only on
# d = y2 - y1, so the closed forms are written in d with numerically stable numpy/scipy pieces.


def two_logit_loss(y1, y2, loss: str) -> np.ndarray:
    """Loss of logits (y1, y2) for a sample of class 1 (one-hot target [1, 0]).

    cross_entropy: -log softmax(y)_1 = log(1 + e^(y2 - y1)).
    softmax_mse:   (p1 - 1)^2 + p2^2 = 2 sigmoid(y2 - y1)^2.

    >>> float(two_logit_loss(0.0, 0.0, "cross_entropy"))  # log 2
    0.6931471805599453
    >>> float(two_logit_loss(0.0, 0.0, "softmax_mse"))
    0.5
    """
    d = np.asarray(y2, dtype=np.float64) - np.asarray(y1, dtype=np.float64)
    if loss == "cross_entropy":
        return np.logaddexp(0.0, d)
    if loss == "softmax_mse":
        return 2.0 * expit(d) ** 2
    raise ValueError(f"The picture shows 'cross_entropy' or 'softmax_mse', not {loss!r}.")


def two_logit_gradient(y1, y2, loss: str) -> np.ndarray:
    """Gradient (dL/dy1, dL/dy2) of `two_logit_loss`, stacked on the last axis.

    Both point along (-1, 1): cross-entropy's has size sigmoid(d) (about 1 when confidently wrong),
    softmax + MSE's 4 sigmoid(d)^2 sigmoid(-d) (about 4 e^-d: the plateau).
    """
    d = np.asarray(y2, dtype=np.float64) - np.asarray(y1, dtype=np.float64)
    if loss == "cross_entropy":
        slope = expit(d)
    elif loss == "softmax_mse":
        slope = 4.0 * expit(d) ** 2 * expit(-d)
    else:
        raise ValueError(f"The picture shows 'cross_entropy' or 'softmax_mse', not {loss!r}.")
    return np.stack([-slope, slope], axis=-1)


def loss_grid(extent: float = 10.0, points: int = 61) -> pd.DataFrame:
    """Both picture losses on a points x points grid over [-extent, extent]^2 (long format:
    loss function, y1, y2, loss)."""
    axis = np.linspace(-extent, extent, points)
    y1, y2 = (a.ravel() for a in np.meshgrid(axis, axis, indexing="xy"))
    frames = [pd.DataFrame({"loss function": RUN_LABELS[name], "y1": y1, "y2": y2, "loss": two_logit_loss(y1, y2, name)})
              for name in PICTURE_LOSSES]
    return pd.concat(frames, ignore_index=True)


def descent_path(loss: str, start: tuple[float, float], lr: float, steps: int) -> pd.DataFrame:
    """Plain gradient descent on the picture: rows step 0..steps with y1, y2, loss, grad_norm and
    p_correct (the softmax probability of class 1), labelled by "loss function".

    >>> path = descent_path("cross_entropy", (-4.0, 4.0), lr=1.0, steps=10)
    >>> bool(path["p_correct"].iloc[-1] > 0.9)
    True
    """
    point = np.asarray(start, dtype=np.float64)
    rows = []
    for step in range(steps + 1):
        grad = two_logit_gradient(point[0], point[1], loss)
        rows.append((step, point[0], point[1], float(two_logit_loss(point[0], point[1], loss)),
                     float(np.linalg.norm(grad)), float(expit(point[0] - point[1]))))
        point = point - lr * grad
    frame = pd.DataFrame(rows, columns=["step", "y1", "y2", "loss", "grad_norm", "p_correct"])
    frame.insert(0, "loss function", RUN_LABELS[loss])
    return frame


def softmax_vs_sigmoid(z=SOFTMAX_DEMO_Z) -> pd.DataFrame:
    """softmax([z, 0])[0] beside sigmoid(z) for each z: e^z / (e^z + 1) is the sigmoid.

    >>> float(softmax_vs_sigmoid([0.0])["abs difference"].max())
    0.0
    """
    z = np.asarray(z, dtype=np.float64)
    soft = softmax(np.stack([z, np.zeros_like(z)], axis=1), axis=1)[:, 0]
    sig = expit(z)
    return pd.DataFrame({"z": z, "softmax([z, 0])[0]": soft, "sigmoid(z)": sig, "abs difference": np.abs(soft - sig)})


# ---------------------------------------------------------------------------------------------
# Training side by side


def confidently_wrong_init(model: nn.Module, y_train: np.ndarray, n_classes: int, margin: float) -> int:
    """Make `model` confidently predict one class for every row; return that class's index.

    The output layer's bias becomes +M/2 for the rarest training class and -M/2 for the others, so
    the logits favour that class by M (probability about 1 / (1 + (K-1) e^-M)) whatever the input.
    The rarest class makes the start wrong on as many rows as a constant answer can be: every row
    of the other classes (half of a balanced two-class set, two thirds of three classes). The
    output weights and the hidden layers keep their seeded initial values, so this works for any
    number of classes, activation or batch norm; their input-dependent part of the logits is small
    next to M (the page reports how many rows end up confidently wrong).

    A bias-only start rather than a label-aware one is deliberate: an output layer fitted to wrong
    labels leaves rows near its decision boundary with small margins, and their gradients let MSE
    walk out. Here every row sits at the same point of the two-logit picture.

    >>> from core.models import ModelSpec, build_mlp
    >>> m = build_mlp(ModelSpec(hidden=(4,)), 2, 2, seed=0)
    >>> confidently_wrong_init(m, np.array([0, 0, 1]), 2, margin=8.0)
    1
    >>> m[-1].bias.tolist()
    [-4.0, 4.0]
    """
    last = model[-1] if isinstance(model, nn.Sequential) else None
    if not isinstance(last, nn.Linear) or last.out_features != n_classes:
        raise ValueError("The wrong start needs a model whose last layer is a Linear layer with one output per class.")
    target = int(np.argmin(np.bincount(y_train, minlength=n_classes)))
    bias = torch.full((n_classes,), -margin / 2.0, dtype=last.bias.dtype)
    bias[target] = margin / 2.0
    with torch.no_grad():
        last.bias.copy_(bias)
    return target


def _probabilities(model: nn.Module, X: np.ndarray) -> np.ndarray:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.as_tensor(X))
    finally:
        model.train(was_training)
    return torch.softmax(out.double(), dim=1).numpy()


def confidently_wrong_share(model: nn.Module, X: np.ndarray, y: np.ndarray, level: float = CONFIDENT) -> float:
    """Share of rows where some wrong class gets probability >= level."""
    p = _probabilities(model, X)
    p_wrong = p.copy()
    p_wrong[np.arange(len(y)), y] = 0.0
    return float(np.mean(p_wrong.max(axis=1) >= level))


def _run_frame(label: str, start: tuple[float, float], history) -> pd.DataFrame:
    # Row k: the model after k updates. Loss and accuracy come from the per-epoch evaluations
    # (one step per epoch); the gradient norm at k is the one step k+1 was taken with.
    ep = history.epochs
    n = len(ep) + 1
    grad = np.full(n, np.nan)
    g = history.steps["grad_norm"].to_numpy(dtype=float)[:n]
    grad[: len(g)] = g
    return pd.DataFrame({
        "run": label,
        "step": np.arange(n),
        "loss": np.r_[start[0], ep["train_loss"].to_numpy(dtype=float)],
        "accuracy": np.r_[start[1], ep["train_metric"].to_numpy(dtype=float)],
        "val_accuracy": np.r_[start[2], ep["val_metric"].to_numpy(dtype=float)],
        "grad_norm": grad,
    })


def first_step_at(curve: pd.DataFrame, level: float) -> int | None:
    """First step whose training accuracy is at least `level`, None if never."""
    hit = curve.loc[curve["accuracy"] >= level - 1e-12, "step"]
    return int(hit.iloc[0]) if len(hit) else None


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train the lab model with each loss from the same start and build the lecture's picture.

    On a regression dataset nothing is trained (`trained` is False) and the verdict says why;
    the picture and the softmax table are still there.
    """
    validate(config)
    progress = on_progress or no_progress
    grid = loss_grid(config.picture_extent, config.picture_points)
    start = (-config.margin / 2.0, config.margin / 2.0)
    paths = pd.concat([descent_path(name, start, config.picture_lr, config.picture_steps) for name in PICTURE_LOSSES],
                      ignore_index=True)
    table = softmax_vs_sigmoid()
    common = dict(grid=grid, paths=paths, softmax_table=table, softmax_max_diff=float(table["abs difference"].max()))

    if data.task != "classification":
        verdict = Verdict("info", f"This diagnosis is about classification, and {data.name or 'this dataset'} is a "
                                  "regression dataset: its target is a number, so there are no classes, no softmax "
                                  "and no cross-entropy. Mean squared error is the right loss for it.",
                          "Switch to a built-in classification set (moons, iris, ...) to compare the losses.")
        return Result(task=data.task, trained=False, curves=pd.DataFrame(), summary=pd.DataFrame(), goal=config.goal,
                      diverged={}, messages=[], wrong_class=None, wrong_share=float("nan"), chance=float("nan"),
                      n_train=0, verdict=verdict, **common)

    check_dataset_size(data)
    split = split_data(data, "standard", 0.2, setup.seed)
    k = split.n_classes
    base = build_model(setup, split.n_features, k)
    wrong_class = None
    if config.wrong_start:
        wrong_class = data.class_names[confidently_wrong_init(base, split.y_train, k, config.margin)]
    wrong_share = confidently_wrong_share(base, split.X_train, split.y_train)
    chance = float(np.bincount(split.y_train, minlength=k).max() / len(split.y_train))

    names = [n for n in RUN_LABELS if n != "mse" or config.raw_mse]
    frames, diverged, messages = [], {}, []
    for i, name in enumerate(names):
        label = RUN_LABELS[name]
        model = copy.deepcopy(base)  # same initial weights for every loss
        loss_fn = make_loss(name, "classification", k)
        loss0, acc0 = evaluate(model, split.X_train, split.y_train, "classification", loss_fn)
        _, val0 = evaluate(model, split.X_val, split.y_val, "classification", loss_fn)
        step_progress = sub_progress(progress, i / len(names), (i + 1) / len(names))
        tc = TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=config.steps, batch_size=None,
                         loss=name, seed=setup.seed)
        history = train(model, split, tc, on_step=lambda s, total, _l, f=step_progress, lab=label: f(s / total, lab))
        frames.append(_run_frame(label, (loss0, acc0, val0), history))
        if history.diverged_at is not None:
            diverged[label] = int(history.diverged_at)
            messages.append(f"{label[0].upper()}{label[1:]} diverged at step {history.diverged_at}: its loss or gradient became NaN or "
                            "infinite, so its curves stop there. Lower the learning rate.")
    progress(1.0, "done")
    curves = pd.concat(frames, ignore_index=True)
    goal = _goal(curves, config.goal, chance)
    summary = _summary(curves, goal, diverged)
    verdict = _verdict(summary, goal, config, chance, diverged)
    return Result(task=data.task, trained=True, curves=curves, summary=summary, goal=goal, diverged=diverged,
                  messages=messages, wrong_class=wrong_class, wrong_share=wrong_share, chance=chance,
                  n_train=len(split.y_train), verdict=verdict, **common)


def _goal(curves: pd.DataFrame, wanted: float, chance: float) -> float:
    # When no run reaches the wanted accuracy (a hard set, a short budget), count steps to 90% of
    # the way from chance to the best accuracy reached, so the comparison still says who got there first.
    acc = curves["accuracy"].to_numpy(dtype=float)
    best = float(np.max(acc[np.isfinite(acc)], initial=0.0))
    if best >= wanted:
        return wanted
    return math.floor(100 * (chance + 0.9 * max(best - chance, 0.0))) / 100


def _summary(curves: pd.DataFrame, goal: float, diverged: dict[str, int]) -> pd.DataFrame:
    rows = []
    for label, curve in curves.groupby("run", sort=False):
        acc = curve["accuracy"].to_numpy(dtype=float)
        left = first_step_at(curve, acc[0] + LEFT_START)
        finite = curve[np.isfinite(curve["accuracy"])]
        rows.append({
            "run": label,
            "start accuracy": acc[0],
            "final accuracy": float(finite["accuracy"].iloc[-1]),
            "final validation accuracy": float(finite["val_accuracy"].iloc[-1]),
            "steps to goal": first_step_at(curve, goal),
            "steps on the start": left if left is not None else int(curve["step"].iloc[-1]),
            "start gradient norm": float(curve["grad_norm"].iloc[0]),
            "steps run": int(finite["step"].iloc[-1]),
            "diverged at": diverged.get(label),
        })
    # Nullable integers: "never reached" and "did not diverge" show as empty, not as NaN floats.
    return pd.DataFrame(rows).astype({"steps to goal": "Int64", "diverged at": "Int64"})


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _verdict(summary: pd.DataFrame, goal: float, config: Config, chance: float, diverged: dict[str, int]) -> Verdict:
    rows = summary.set_index("run")
    ce, sm = rows.loc[RUN_LABELS["cross_entropy"]], rows.loc[RUN_LABELS["softmax_mse"]]
    budget = config.steps
    notes = [f"{label[0].upper()}{label[1:]} diverged at step {step}." for label, step in diverged.items()]
    tail = (" " + " ".join(notes)) if notes else ""
    start = "From the confidently wrong start, " if config.wrong_start else ""
    if RUN_LABELS["cross_entropy"] in diverged:
        return Verdict("problem", f"Cross-entropy diverged at step {diverged[RUN_LABELS['cross_entropy']]} with "
                                  f"learning rate {config.lr:g}.{tail}", "Lower the learning rate and run again.")
    best = float(summary["final accuracy"].max())
    if best < chance + 0.05:
        return Verdict("problem", f"No loss trained: the best final training accuracy is {_pct(best)}, and always "
                                  f"answering the most frequent class gives {_pct(chance)}, after {budget} steps "
                                  f"of {config.optimizer} at learning rate {config.lr:g}.{tail}",
                       "The loss is not the problem here: try another learning rate or more steps.")
    goal_words = f"{_pct(goal)} training accuracy"
    ce_steps, sm_steps = ce["steps to goal"], sm["steps to goal"]
    ce_steps = None if pd.isna(ce_steps) else int(ce_steps)
    sm_steps = None if pd.isna(sm_steps) else int(sm_steps)
    grads = (f" At the start the softmax + MSE gradient norm was {sm['start gradient norm']:.2g} against "
             f"{ce['start gradient norm']:.2g} for cross-entropy.")
    advice = ("Train classifiers with cross-entropy on the raw logits (torch.nn.CrossEntropyLoss applies the "
              "softmax itself).")
    if ce_steps is not None and sm_steps is None:
        return Verdict("warning", f"{start}cross-entropy reached {goal_words} in {ce_steps} steps; softmax + MSE "
                                  f"was at {_pct(sm['final accuracy'])} after {int(sm['steps run'])}.{grads}{tail}",
                       advice)
    if ce_steps is not None and sm_steps is not None:
        ratio = sm_steps / max(ce_steps, 1)
        if ratio >= 1.5:
            return Verdict("info", f"{start}cross-entropy reached {goal_words} in {ce_steps} steps, softmax + MSE "
                                   f"in {sm_steps} ({ratio:.1f}x as many).{grads}{tail}", advice)
        hint = ("" if config.wrong_start else
                " MSE's trouble is specific to confidently wrong outputs: turn on the confidently wrong start to see it.")
        return Verdict("info", f"{start}both losses trained at a similar pace: cross-entropy reached {goal_words} "
                               f"in {ce_steps} steps, softmax + MSE in {sm_steps}.{tail}{hint}", "")
    if sm_steps is not None:
        return Verdict("info", f"{start}softmax + MSE reached {goal_words} in {sm_steps} steps, cross-entropy did "
                               f"not within {budget} (it ended at {_pct(ce['final accuracy'])}).{tail}",
                       "Unusual: try a smaller learning rate for cross-entropy, whose gradients are larger.")
    return Verdict("problem", f"Neither loss reached {goal_words} in {budget} steps (cross-entropy "
                              f"{_pct(ce['final accuracy'])}, softmax + MSE {_pct(sm['final accuracy'])}).{tail}",
                   "Try more steps or another learning rate.")
