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

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.special import expit, softmax
from torch import nn

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.findings import Comparison, compare
from core.diagnoses.words import capital, divergence_sentence, pct, step_range
from core.lab import LabSetup
from core.runs import build, prepare_split, run_model, seeds_for, training_rows
from core.train import OPTIMIZERS, TrainConfig, check_dataset_size

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
    seeds: int = 3  # initial weights per loss (the lab seed and the next ones); claims must hold across them
    max_train_rows: int = 2000  # full-batch training uses at most this many rows of the training split


@dataclass(eq=False)
class Result:
    """Everything the page shows; plain numpy / pandas, picklable by st.cache_data."""

    task: str  # the dataset's task; training runs only for "classification"
    trained: bool  # False when the dataset is a regression set (nothing was trained)
    curves: pd.DataFrame  # run (key), label, seed, step, loss, accuracy, val_accuracy, grad_norm (step 0 = start)
    bands: pd.DataFrame  # run, label, step, measure, mean, low, high: over seeds, for the charts
    summary: pd.DataFrame  # one row per run key: means over seeds (see _summary)
    goal: float  # the accuracy the steps-to-goal column counts to (the goal used)
    diverged: dict[str, int]  # run key -> divergence step (core.rules) of the lab seed's run
    messages: list[str]  # one divergence sentence per diverged run
    wrong_class: str | None  # the class every row starts out predicting (wrong start), else None
    wrong_share: float  # share of training rows confidently wrong before training (p_wrong >= CONFIDENT)
    chance: float  # accuracy of always answering the most frequent training class
    n_train: int
    grid: pd.DataFrame  # loss function, y1, y2, loss: both losses of the two-logit picture
    paths: pd.DataFrame  # loss function, step, y1, y2, loss, grad_norm, p_correct: descent on the picture
    softmax_table: pd.DataFrame  # z, softmax([z, 0])[0], sigmoid(z), abs difference
    softmax_max_diff: float
    findings: "Findings | None"
    verdict: Verdict
    notes: list = field(default_factory=list)  # what was subsampled, in words
    goal_wanted: float = float("nan")  # the goal the user asked for (config.goal)
    best_accuracy: float = float("nan")  # the best training accuracy any run reached at any step

    @property
    def goal_lowered(self) -> bool:
        """True when no run reached the wanted goal and the steps count to a lower one."""
        return goal_lowered(self.goal, self.goal_wanted)

    def goal_label(self) -> str:
        """The goal as every place on the page names it: '93%' or '93% (lowered from your 99%)'."""
        return goal_label(self.goal, self.goal_wanted)


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
    if not 100 <= config.max_train_rows <= 100_000:
        raise ValueError("Train on between 100 and 100,000 rows.")
    if not 1 <= config.seeds <= 20:
        raise ValueError("Use between 1 and 20 seeds.")
    if config.seeds * config.steps > 20_000:
        raise ValueError("At most 20,000 updates per loss in all (seeds x steps): lower one of them.")


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


def _run_frame(key: str, seed: int, start: tuple[float, float, float], history) -> pd.DataFrame:
    # Row k: the model after k updates. Loss and accuracy come from the per-epoch evaluations
    # (one step per epoch); the gradient norm at k is the one step k+1 was taken with.
    ep = history.epochs
    n = len(ep) + 1
    grad = np.full(n, np.nan)
    g = history.steps["grad_norm"].to_numpy(dtype=float)[:n]
    grad[: len(g)] = g
    return pd.DataFrame({
        "run": key,
        "label": RUN_LABELS[key],
        "seed": seed,
        "step": np.arange(n),
        "loss": np.r_[start[0], ep["train_loss"].to_numpy(dtype=float)],
        "accuracy": np.r_[start[1], ep["train_metric"].to_numpy(dtype=float)],
        "val_accuracy": np.r_[start[2], ep["val_metric"].to_numpy(dtype=float)],
        "grad_norm": grad,
    })


def first_step_at(curve: pd.DataFrame, level: float) -> int | None:
    """First step from which the training accuracy stays at or above `level` to the end of the
    run (reached and held: a run that touches the goal and falls back has not reached it)."""
    acc = curve["accuracy"].to_numpy(dtype=float)
    below = np.flatnonzero(~(acc >= level - 1e-12))
    if not len(acc) or (len(below) and below[-1] == len(acc) - 1):
        return None
    first = int(below[-1]) + 1 if len(below) else 0
    return int(curve["step"].iloc[first])


@dataclass(frozen=True)
class Findings:
    """The comparison of cross-entropy with softmax + MSE, decided before any wording."""

    steps: Comparison  # steps to reach and hold the goal (fewer is better; never = budget + 1)
    final: Comparison  # final training accuracy (higher is better)
    diverged: dict  # run key -> divergence step of the lab seed's run
    best_final: float  # the best mean final training accuracy of any run
    chance: float
    n_seeds: int
    goal: float = float("nan")  # the goal the steps count to (the goal used)
    goal_wanted: float = float("nan")  # the goal asked for; above `goal` when no run reached it
    best_accuracy: float = float("nan")  # the best training accuracy any run reached at any step

    @property
    def goal_lowered(self) -> bool:
        """True when the goal used is below the one asked for."""
        return goal_lowered(self.goal, self.goal_wanted)


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train the lab model with each loss from the same start, over `config.seeds` initial weights,
    and build the lecture's picture.

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
        return Result(task=data.task, trained=False, curves=pd.DataFrame(), bands=pd.DataFrame(),
                      summary=pd.DataFrame(), goal=config.goal, goal_wanted=config.goal, diverged={}, messages=[], wrong_class=None,
                      wrong_share=float("nan"), chance=float("nan"), n_train=0, findings=None, verdict=verdict,
                      **common)

    check_dataset_size(data)
    # Full-batch runs over every row of a large upload would take minutes: train on a stratified
    # sample of the training split (the page shows the note).
    split = prepare_split(data, setup, max_train_rows=config.max_train_rows)
    n_split = training_rows(data.n_rows)
    notes = ([f"Trained on {len(split.X_train):,} of the {n_split:,} training rows (a random sample, each class "
              "keeping its share), so the page stays quick on a large upload."] if n_split > len(split.X_train) else [])
    k = split.n_classes
    names = [n for n in RUN_LABELS if n != "mse" or config.raw_mse]
    seeds = seeds_for(setup, config.seeds)
    frames, diverged, messages, div_steps = [], {}, [], {}
    wrong_class, wrong_share = None, float("nan")
    jobs = [(seed, name) for seed in seeds for name in names]
    for i, (seed, name) in enumerate(jobs):
        base = build(setup, split, seed=seed)
        if config.wrong_start:
            wrong_class = data.class_names[confidently_wrong_init(base, split.y_train, k, config.margin)]
        if seed == setup.seed and name == names[0]:
            wrong_share = confidently_wrong_share(base, split.X_train, split.y_train)
        tc = TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=config.steps, batch_size=None,
                         loss=name, seed=seed)
        rec = run_model(split, setup, tc, key=name, model=base,
                        on_progress=sub_progress(progress, i / len(jobs), (i + 1) / len(jobs)),
                        message=f"{RUN_LABELS[name]}, seed {seed}")
        s0 = rec.start
        frames.append(_run_frame(name, seed, (s0.train_loss, s0.train_metric, s0.val_metric), rec.history))
        div_steps[(name, seed)] = rec.divergence.step if rec.divergence is not None else None
        if seed == setup.seed and rec.divergence is not None:
            diverged[name] = rec.divergence.step
            who = capital(RUN_LABELS[name]) + (f" (seed {seed}, the lab seed)" if len(seeds) > 1 else "")
            messages.append(divergence_sentence(rec.divergence, who))
    progress(1.0, "done")
    curves = pd.concat(frames, ignore_index=True)
    chance = float(np.bincount(split.y_train, minlength=k).max() / len(split.y_train))
    goal = _goal(curves, config.goal, chance)
    summary = _summary(curves, goal, config.steps, div_steps)
    findings = find(curves, summary, goal, config, chance, diverged, len(seeds), div_steps)
    return Result(task=data.task, trained=True, curves=curves, bands=_bands(curves), summary=summary, goal=goal,
                  diverged=diverged, messages=messages, wrong_class=wrong_class, wrong_share=wrong_share,
                  chance=chance, n_train=len(split.y_train), findings=findings,
                  verdict=make_verdict(findings, summary, goal, config), notes=notes, goal_wanted=config.goal,
                  best_accuracy=findings.best_accuracy, **common)


GOAL_SHARE = 0.9  # a lowered goal sits this share of the way from chance to the best accuracy reached


def _best_accuracy(curves: pd.DataFrame) -> float:
    acc = curves["accuracy"].to_numpy(dtype=float)
    return float(np.max(acc[np.isfinite(acc)], initial=0.0))


def _goal(curves: pd.DataFrame, wanted: float, chance: float) -> float:
    # When no run reaches the wanted accuracy (a hard set, a short budget), count steps to 90% of
    # the way from chance to the best accuracy reached, so the comparison still says who got there
    # first. The verdict, cards, table and chart then all say the goal was lowered (goal_sentence).
    best = _best_accuracy(curves)
    if best >= wanted:
        return wanted
    return math.floor(100 * (chance + GOAL_SHARE * max(best - chance, 0.0))) / 100


def goal_lowered(goal: float, wanted: float) -> bool:
    """True when the goal used is below the goal asked for."""
    return math.isfinite(wanted) and goal < wanted - 1e-12


def goal_label(goal: float, wanted: float) -> str:
    """The goal used, with the wanted one when it was lowered.

    >>> goal_label(0.93, 0.99), goal_label(0.9, 0.9)
    ('93% (lowered from your 99%)', '90%')
    """
    return f"{pct(goal)} (lowered from your {pct(wanted)})" if goal_lowered(goal, wanted) else pct(goal)


def goal_sentence(goal: float, wanted: float, best: float, chance: float) -> str:
    """Why the goal used differs from the one asked for ('' when it does not)."""
    if not goal_lowered(goal, wanted):
        return ""
    return (f"Your {pct(wanted)} goal is above the best training accuracy any run reached ({pct(best, 3)}), so the "
            f"goal used is {pct(goal)} ({GOAL_SHARE:.0%} of the way from chance, {pct(chance)}, to that best).")


def mean_steps_text(x: float, budget: int) -> str:
    """Mean steps to the goal as the verdict and the cards both write it: '89.2', '68' or 'never'.

    >>> mean_steps_text(4.666, 200), mean_steps_text(68.0, 200), mean_steps_text(float("nan"), 200)
    ('4.7', '68', 'never')
    """
    if not math.isfinite(x) or x > budget:
        return "never"
    x = round(float(x), 1)
    return f"{x:.0f}" if x.is_integer() else f"{x:.1f}"


def divergence_words(first: int, last: int, diverged: int, n_seeds: int) -> str:
    """Where the seeds that diverged did: 'at step 2', 'at steps 2–5', plus 'in 2 of 3 seeds' when not all.

    >>> divergence_words(2, 2, 3, 3), divergence_words(2, 5, 2, 3)
    ('at step 2', 'at steps 2–5 in 2 of 3 seeds')
    """
    where = f"at step {first:,}" if first == last else f"at {step_range(first, last)}"
    return where if diverged == n_seeds else f"{where} in {diverged} of {n_seeds} seeds"


def _per_seed(curves: pd.DataFrame, goal: float, budget: int, div_steps: dict | None = None) -> pd.DataFrame:
    """One row per (run, seed): steps to reach and hold the goal (budget + 1 when never), final
    accuracy, and the divergence step (core.rules, via core.train; None when it did not diverge)."""
    div_steps = div_steps or {}
    rows = []
    for (key, seed), curve in curves.groupby(["run", "seed"], sort=False):
        finite = curve[np.isfinite(curve["accuracy"])]
        reached = first_step_at(finite, goal)
        rows.append(dict(run=key, seed=seed, reached=reached is not None,
                         steps_to_goal=reached if reached is not None else budget + 1,
                         final_accuracy=float(finite["accuracy"].iloc[-1]),
                         final_val_accuracy=float(finite["val_accuracy"].iloc[-1]),
                         start_accuracy=float(curve["accuracy"].iloc[0]),
                         start_grad_norm=float(curve["grad_norm"].iloc[0]),
                         steps_run=int(finite["step"].iloc[-1]),
                         diverged_at=div_steps.get((key, seed))))
    return pd.DataFrame(rows)


def _summary(curves: pd.DataFrame, goal: float, budget: int, div_steps: dict | None = None) -> pd.DataFrame:
    """One row per loss (stable key `run`, display `label`): means over seeds. The final
    accuracies are over the seeds that did not diverge (NaN when every seed diverged: a diverged
    run's last accuracy is where it stopped, not a result); `diverged_seeds` counts the others and
    `first_divergence` / `last_divergence` give their steps (<NA> when none diverged)."""
    per = _per_seed(curves, goal, budget, div_steps)
    rows = []
    for key, g in per.groupby("run", sort=False):
        held = g.loc[g["reached"], "steps_to_goal"]
        div = g["diverged_at"].dropna().astype(int)
        ok = g[g["diverged_at"].isna()]
        rows.append(dict(
            run=key, label=RUN_LABELS[key], seeds=len(g), reached_goal=int(g["reached"].sum()),
            steps_to_goal=float(held.mean()) if len(held) == len(g) else float("nan"),
            start_accuracy=float(g["start_accuracy"].mean()),
            final_accuracy=float(ok["final_accuracy"].mean()) if len(ok) else float("nan"),
            final_accuracy_sd=float(ok["final_accuracy"].std(ddof=1)) if len(ok) > 1 else (0.0 if len(ok) else float("nan")),
            final_val_accuracy=float(ok["final_val_accuracy"].mean()) if len(ok) else float("nan"),
            start_grad_norm=float(g["start_grad_norm"].mean()), steps_run=int(g["steps_run"].min()),
            diverged_seeds=len(div), first_divergence=int(div.min()) if len(div) else None,
            last_divergence=int(div.max()) if len(div) else None,
        ))
    frame = pd.DataFrame(rows)
    for col in ("first_divergence", "last_divergence"):
        frame[col] = frame[col].astype("Int64")
    return frame


def card(row: pd.Series, budget: int, goal: float) -> tuple[str, str, bool]:
    """What a loss's card shows: (value, delta, good). A loss whose every seed diverged shows
    "diverged" and the step (core.rules' divergence), never an accuracy it stopped at; the steps
    to the goal (the goal used, `goal`) are written as in the verdict (mean_steps_text)."""
    seeds, k = int(row["seeds"]), int(row["diverged_seeds"])
    if k:
        words = divergence_words(int(row["first_divergence"]), int(row["last_divergence"]), k, seeds)
        if k == seeds:
            return "diverged", words, False
        return f"{row['final_accuracy']:.0%}", f"diverged {words}", False
    if pd.isna(row["steps_to_goal"]):
        return (f"{row['final_accuracy']:.0%}", f"{pct(goal)} reached in {int(row['reached_goal'])} of {seeds} seeds",
                False)
    mean = " (mean)" if seeds > 1 else ""
    return (f"{row['final_accuracy']:.0%}",
            f"{pct(goal)} held after {mean_steps_text(row['steps_to_goal'], budget)} steps{mean}", True)


def _bands(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean and min/max over seeds per (run, step) and measure, for the charts' lines and bands."""
    out = []
    for measure in ("accuracy", "loss", "grad_norm"):
        g = curves.groupby(["run", "label", "step"], sort=False)[measure]
        out.append(pd.DataFrame({"mean": g.mean(), "low": g.min(), "high": g.max()}).reset_index()
                   .assign(measure=measure))
    return pd.concat(out, ignore_index=True)


def find(curves: pd.DataFrame, summary: pd.DataFrame, goal: float, config: Config, chance: float,
         diverged: dict, n_seeds: int, div_steps: dict | None = None) -> Findings:
    """Compare cross-entropy with softmax + MSE across seeds (core.findings.compare); a seed that
    diverged has no final accuracy to compare."""
    per = _per_seed(curves, goal, config.steps, div_steps)
    ce, sm = per[per["run"] == "cross_entropy"], per[per["run"] == "softmax_mse"]

    def reach_steps(g: pd.DataFrame) -> list:
        # A loss that never reached the goal in any seed has no steps at all (it loses to one that
        # did); otherwise a miss counts as budget + 1 steps, a conservative stand-in.
        return [] if not g["reached"].any() else g["steps_to_goal"].tolist()

    # One seed gives no run-to-run noise to judge a difference by: no claim then (noise=None),
    # unless one loss never reached the goal at all.
    steps = compare("steps_to_goal", "cross_entropy", reach_steps(ce), "softmax_mse", reach_steps(sm),
                    higher_is_better=False, split="train")
    ok = lambda g: g.loc[g["diverged_at"].isna(), "final_accuracy"]  # noqa: E731
    final = compare("final_accuracy", "cross_entropy", ok(ce), "softmax_mse", ok(sm),
                    higher_is_better=True, split="train", min_relative=0.01)
    best_final = float(summary["final_accuracy"].max()) if summary["final_accuracy"].notna().any() else 0.0
    return Findings(steps, final, dict(diverged), best_final, chance, n_seeds, goal=goal,
                    goal_wanted=config.goal, best_accuracy=_best_accuracy(curves))


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if math.isfinite(x) else "none (every seed diverged)"


def make_verdict(f: Findings, summary: pd.DataFrame, goal: float, config: Config) -> Verdict:
    """The verdict, worded from the findings only."""
    rows = summary.set_index("run")
    ce, sm = rows.loc["cross_entropy"], rows.loc["softmax_mse"]
    seeds = f" (means over {f.n_seeds} seeds, which vary the initial weights)" if f.n_seeds > 1 else ""
    def where(k: str) -> str:
        # The seeds' span, as the cards say it ("at steps 2–3"); the lab seed's step when not summarised.
        if k in rows.index and "first_divergence" in rows.columns and pd.notna(rows.at[k, "first_divergence"]):
            return divergence_words(int(rows.at[k, "first_divergence"]), int(rows.at[k, "last_divergence"]),
                                    int(rows.at[k, "diverged_seeds"]), int(rows.at[k, "seeds"]))
        return f"at step {f.diverged[k]}"

    tail = "".join(f" {capital(RUN_LABELS[k])} diverged {where(k)}." for k in f.diverged if k != "cross_entropy")
    start = "From the confidently wrong start, " if config.wrong_start else ""
    if "cross_entropy" in f.diverged:
        return Verdict("problem", f"Cross-entropy diverged {where('cross_entropy')} with learning "
                                  f"rate {config.lr:g}.{tail}", "Lower the learning rate and run again.")
    if f.best_final < f.chance + 0.05:
        return Verdict("problem", f"No loss trained: the best final training accuracy is {_pct(f.best_final)}, "
                                  f"and always answering the most frequent class gives {_pct(f.chance)}, after "
                                  f"{config.steps} steps of {config.optimizer} at learning rate {config.lr:g}.{tail}",
                       "The loss is not the problem here: try another learning rate or more steps.")
    lowered = goal_sentence(goal, config.goal, f.best_accuracy, f.chance)
    lowered = f"{lowered} " if lowered else ""
    goal_words = f"reached and held {pct(goal)} training accuracy"
    reach = {k: f"{int(rows.at[k, 'reached_goal'])} of {int(rows.at[k, 'seeds'])}" for k in ("cross_entropy", "softmax_mse")}
    one_seed = " (one seed: raise the seed count to judge a difference in pace)" if f.n_seeds == 1 else ""
    grads = (f" At the start the softmax + MSE gradient norm was {sm['start_grad_norm']:.2g} "
             f"against {ce['start_grad_norm']:.2g} for cross-entropy.")
    advice = ("Train classifiers with cross-entropy on the raw logits (torch.nn.CrossEntropyLoss applies the "
              "softmax itself).")

    def steps_fmt(x: float) -> str:
        return mean_steps_text(x, config.steps)

    c = f.steps
    if c.winner is None:
        hint = ("" if config.wrong_start else
                " MSE's trouble is specific to confidently wrong outputs: turn on the confidently wrong start to see it.")
        text = (f"{start}no clear difference in pace: cross-entropy {goal_words} in {steps_fmt(c.a_value)} steps, "
                f"softmax + MSE in {steps_fmt(c.b_value)}{seeds}{one_seed}; runs reaching the goal: "
                f"{reach['cross_entropy']} and {reach['softmax_mse']}; final accuracy {_pct(ce['final_accuracy'])} "
                f"and {_pct(sm['final_accuracy'])}.{tail}{hint}")
        return Verdict("info", lowered + capital(text), "")
    w, l = c.winner, c.loser
    text = (f"{start}{RUN_LABELS[w]} {goal_words} sooner: in {steps_fmt(c.value(w))} steps{seeds} against "
            f"{steps_fmt(c.value(l))} for {RUN_LABELS[l]}; runs reaching the goal: "
            f"{reach[w]} and {reach[l]}; final accuracy {_pct(rows.at[w, 'final_accuracy'])} and "
            f"{_pct(rows.at[l, 'final_accuracy'])}.{grads}{tail}")
    if w == "cross_entropy":
        kind = "warning" if int(rows.at["softmax_mse", "reached_goal"]) == 0 else "info"
        return Verdict(kind, lowered + capital(text), advice)
    return Verdict("info", lowered + capital(text), "Unusual: try a smaller learning rate for cross-entropy, whose gradients "
                                          "are larger.")
