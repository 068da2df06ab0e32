"""Saddle escape race: who gets away from the same saddle, how fast, and at what cost.

Six racers start from one point, either exactly at a saddle or pushed off it by a small seeded
random step of length epsilon (both races are always run, so the page can be honest about the
exact start): plain gradient descent, gradient descent with gradient noise (SGD-like), one
negative-curvature step and then gradient descent, SGD with momentum, Nesterov and Adam. Every
racer except the curvature step is the real torch.optim optimizer acting on a parameter tensor.

The ground is a 2-D surface from core.surfaces (the lecture's L = (1 - w1*w2)^2, a classic
saddle, a monkey saddle) or "your network": the lab model placed at a saddle on the lab data.

A racer has escaped at the first step whose loss is below L(saddle) - delta or whose distance
from the saddle is above radius.

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> res = run(load_builtin("moons"), LabSetup(), Config(surface="lecture"))     # doctest: +SKIP
>>> res.table[["racer", "start", "steps_to_escape"]]                              # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.curvature import CriticalPoint, classify_point, hessian_extremes, model_loss
from core.data import Dataset
from core.diagnoses import Progress, Ticker, Verdict, no_progress, sub_progress
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp, n_params
from core.diagnoses.words import capital, num, steps as steps_text
from core.rules import escape_index
from core.surfaces import SURFACES, descend, descend_along, grid as surface_grid, negative_curvature_step
from core.train import make_loss, split_data

SURFACE_CHOICES = ("lecture", "saddle", "monkey")  # the core.surfaces keys that have a saddle
NETWORK = "network"

# racer key -> (label, core.surfaces optimizer name)
RACERS: dict[str, tuple[str, str]] = {
    "gd": ("Gradient descent", "sgd"),
    "noise": ("GD + gradient noise", "sgd"),
    "curvature": ("Curvature step, then GD", "sgd"),
    "momentum": ("Momentum", "momentum"),
    "nesterov": ("Nesterov", "nesterov"),
    "adam": ("Adam", "adam"),
}
FIRST_ORDER = ("gd", "momentum", "nesterov", "adam")  # racers that see only the exact gradient
STARTS = {"exact": "exactly at the saddle", "pushed": "pushed by epsilon"}
NAMES = {"gd": "gradient descent", "noise": "gradient noise", "curvature": "the curvature step",
         "momentum": "momentum", "nesterov": "Nesterov", "adam": "Adam"}  # racers inside sentences

# Why a racer sits out a race (torch.optim.SGD refuses Nesterov without momentum; with beta 0
# it would be plain gradient descent anyway).
LEFT_OUT_WHY = {"nesterov": "with momentum beta 0 Nesterov is plain gradient descent "
                            "(torch's SGD accepts Nesterov only with a positive momentum)"}


def racers_for(config: "Config") -> tuple[str, ...]:
    """The racers this config can run: every RACERS key, less Nesterov when beta is 0.

    >>> "nesterov" in racers_for(Config(momentum=0.0)), len(racers_for(Config()))
    (False, 6)
    """
    return tuple(r for r in RACERS if not (r == "nesterov" and config.momentum == 0))

# A network with no hidden layer is a convex model (no saddle): this mode gives it one.
DEFAULT_NETWORK_HIDDEN = (16,)


@dataclass(frozen=True)
class Config:
    """One race. The defaults are the page's default run."""

    surface: str = "lecture"  # a SURFACE_CHOICES key, or "network" for the lab model at a saddle
    steps: int = 200  # optimizer updates per racer (the step budget)
    lr: float = 0.1  # learning rate of every racer
    epsilon: float = 0.01  # length of the seeded random push off the saddle (the "pushed" race)
    noise_sigma: float = 0.5  # std of the N(0, sigma^2) noise added to each gradient coordinate
    momentum: float = 0.9  # beta of momentum and Nesterov (torch.optim.SGD's momentum)
    delta: float = 0.05  # escaped once the loss is this far below L(saddle) (loss units)
    radius: float = 1.0  # ... or once this far from the saddle (Euclidean, parameter units)
    curvature_scale: float = 0.5  # curvature step length = scale * |lambda_min| (before halving)
    all_zero: bool = False  # network: zero every layer, not only the last two (see network_saddle)


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence when the race cannot be run."""
    if config.surface not in SURFACE_CHOICES + (NETWORK,):
        raise ValueError(f"Unknown surface {config.surface!r}; choose one of {', '.join(SURFACE_CHOICES)} or network.")
    if config.steps < 1:
        raise ValueError("Give the racers at least one step.")
    if config.steps > 5000:
        raise ValueError("At most 5,000 steps per racer.")
    checks = [
        (config.lr, "The learning rate"),
        (config.epsilon, "The push epsilon"),
        (config.delta, "The loss drop delta"),
        (config.radius, "The escape radius"),
        (config.curvature_scale, "The curvature step scale"),
    ]
    for value, name in checks:
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number.")
    if not (config.noise_sigma >= 0 and math.isfinite(config.noise_sigma)):
        raise ValueError("The gradient noise sigma cannot be negative.")
    if not 0 <= config.momentum < 1:
        raise ValueError("Momentum beta must be at least 0 and below 1.")


@dataclass(frozen=True)
class Lap:
    """One racer's run from one start.

    frame: one row per step (step 0 = the start): step, loss, grad_norm, distance (from the
    saddle), and x, y on a 2-D surface. The curvature racer's row 1 is the point after its
    curvature step. Costs are those of the curvature step (zero for the other racers).
    """

    racer: str
    start: str  # "exact" or "pushed"
    frame: pd.DataFrame
    diverged_at: int | None
    seconds: float  # wall time of the whole run
    hessian_evals: int = 0  # exact Hessians (2-D surfaces)
    hvps: int = 0  # Hessian-vector products (network: Lanczos for lambda_min)
    curvature_seconds: float = 0.0  # wall time of the eigen-solve and the step
    eig_min: float = float("nan")  # lambda_min where the curvature step looked


@dataclass
class Result:
    """Everything the page shows; numpy, floats and DataFrames only."""

    config: Config
    surface_label: str
    saddle_loss: float  # L at the saddle; escape means below saddle_loss - delta
    frame: pd.DataFrame  # all laps: racer, label, start, step, loss, grad_norm, distance[, x, y]
    table: pd.DataFrame  # one row per racer and start (see escape_table)
    grid: pd.DataFrame | None  # surface heat map (x, y, loss); None in network mode
    marks: pd.DataFrame | None  # saddle, start points and minima (x, y, label)
    check: CriticalPoint | None  # network mode: classify_point at the saddle
    network_notes: tuple[str, ...]  # network mode: what was changed in the lab model and why
    n_params: int  # parameters racing (2 on a surface)
    honesty: str  # what happened at the exact saddle and with the push, with numbers
    verdict: Verdict


# ---------------------------------------------------------------------------------------------
# Starting points


def push(n: int, epsilon: float, seed: int) -> np.ndarray:
    """A seeded random vector of length epsilon in n dimensions (the 'pushed' start offset).

    >>> float(np.linalg.norm(push(5, 0.01, seed=0)))
    0.01
    """
    z = np.random.default_rng(seed).standard_normal(n)
    return epsilon * z / np.linalg.norm(z)


def escape_step(frame: pd.DataFrame, saddle_loss: float, delta: float, radius: float | None,
                diverged_at: int | None = None) -> tuple[int | None, str]:
    """First step with loss < saddle_loss - delta or distance > radius, and which rule fired
    (core.rules.escape_index). A racer that diverged did not escape: (None, "").

    >>> f = pd.DataFrame({"step": [0, 1, 2], "loss": [1.0, 0.99, 0.5], "distance": [0.0, 2.0, 3.0]})
    >>> escape_step(f, 1.0, 0.05, 1.0), escape_step(f, 1.0, 0.05, None), escape_step(f, 1.0, 0.05, 1.0, 2)
    ((1, 'distance'), (2, 'loss'), (None, ''))
    """
    i, by = escape_index(frame["loss"], frame["distance"], saddle_loss, delta, radius, diverged_at)
    return (None, "") if i is None else (int(frame["step"].iloc[i]), by)


# ---------------------------------------------------------------------------------------------
# 2-D surfaces


def race_surface(key: str, start: np.ndarray, config: Config, seed: int, start_name: str) -> list[Lap]:
    """Race every racer on a core.surfaces surface from `start` (2 numbers)."""
    surface = SURFACES[key]
    center = np.asarray(surface.saddle, dtype=np.float64)
    laps = []
    for racer in racers_for(config):
        opt = RACERS[racer][1]
        kw = {"momentum": config.momentum} if opt in ("momentum", "nesterov") else {}
        sigma = config.noise_sigma if racer == "noise" else 0.0
        t0 = time.perf_counter()
        cost: dict = {}
        first = None
        begin = start
        if racer == "curvature":
            nc = negative_curvature_step(surface, start, scale=config.curvature_scale)
            first = pd.DataFrame({"step": [0], "x": [start[0]], "y": [start[1]], "loss": [nc.loss_before],
                                  "grad_norm": [float(np.linalg.norm(surface.gradient(start)))],
                                  "distance": [float(np.linalg.norm(start - center))]})
            cost = dict(hessian_evals=nc.hessian_evals, curvature_seconds=nc.seconds, eig_min=nc.eig_min)
            begin = nc.new_point
        run = descend(surface.fn, begin, opt, config.steps - (first is not None), config.lr, noise_sigma=sigma,
                      seed=seed, center=center, **kw)
        frame, diverged = _after(first, run)
        laps.append(Lap(racer, start_name, frame[["step", "x", "y", "loss", "grad_norm", "distance"]].copy(),
                        diverged, time.perf_counter() - t0, **cost))
    return laps


def _after(first: pd.DataFrame | None, run) -> tuple[pd.DataFrame, int | None]:
    """A descent's frame, shifted one step when a curvature step came first (that step is row 0)."""
    if first is None:
        return run.frame, run.diverged_at
    frame = pd.concat([first, run.frame.assign(step=run.frame["step"] + 1)], ignore_index=True)
    return frame, None if run.diverged_at is None else run.diverged_at + 1


# ---------------------------------------------------------------------------------------------
# Your network


@dataclass(frozen=True, eq=False)
class NetworkSaddle:
    """The lab model placed at a saddle: its loss as f(theta) and the saddle's theta."""

    f: object  # theta (1-D float64 tensor) -> scalar loss on the full training split
    theta: torch.Tensor  # the saddle
    spec: ModelSpec  # the model actually used (tanh, no batch norm)
    n_params: int
    notes: tuple[str, ...]


def network_saddle(data: Dataset, setup: LabSetup, all_zero: bool = False) -> NetworkSaddle:
    """Place the lab model at a saddle of its full-batch training loss.

    The last hidden layer's weights and biases and the output weights are zero, and the output
    bias is the best constant (log class priors for cross-entropy, the target mean for MSE);
    earlier layers keep their seeded initial weights (with all_zero they are zeroed too). Then
    the last hidden layer outputs tanh(0) = 0, so no gradient reaches any weight, and the output
    bias is at its optimum: a critical point. It is a strict saddle because the Hessian couples
    output weight W_out[k, j] with the last hidden layer's weight W[j, i] through
    C[k, i] = mean over rows of (dLoss/dout_k) * h_i (h: that layer's input), which gives
    eigenvalue pairs ±sigma(C). With all_zero and two or more hidden layers h = 0, so C = 0:
    the point is still critical but degenerate (third order, like the monkey saddle).
    Activation is forced to tanh (relu has zero slope at 0 in torch, so its coupling
    vanishes too) and batch norm is left out (it rescales the zero pre-activations).
    """
    notes = []
    hidden = setup.model.hidden
    if not hidden:
        hidden = DEFAULT_NETWORK_HIDDEN
        notes.append(f"The lab model has no hidden layer (a convex model has no saddle), so this mode "
                     f"uses one hidden layer of {hidden[0]} units.")
    if setup.model.activation != "tanh":
        notes.append(f"The lab model uses {setup.model.activation}; this mode uses tanh. At zero weights "
                     "relu has slope 0 (torch's choice at the kink), so no signal couples the zeroed "
                     "layers and the point would be flat, not a saddle; tanh has slope 1 at 0.")
    if setup.model.batch_norm:
        notes.append("Batch norm is left out in this mode: it would rescale the zero pre-activations "
                     "and its own shift parameters would move the point off the saddle.")
    spec = ModelSpec(hidden=hidden, activation="tanh", batch_norm=False)
    split = split_data(data, "standard", 0.2, setup.seed)
    n_out = split.n_outputs
    model = build_mlp(spec, split.n_features, n_out, seed=setup.seed)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer in linears if all_zero else linears[-2:]:
            layer.weight.zero_()
            layer.bias.zero_()
        linears[-1].bias.copy_(torch.as_tensor(best_constant(split.y_train, split.task, n_out)))
    if all_zero and len(hidden) >= 2:
        notes.append("Every weight is zero: with two or more hidden layers the Hessian vanishes in every "
                     "weight direction (the saddle is of third order), so the curvature step has nothing "
                     "to follow.")
    loss_fn = make_loss("auto", split.task, split.n_classes)
    f, theta = model_loss(model, loss_fn, split.X_train, split.y_train)
    return NetworkSaddle(f, theta, spec, n_params(model), tuple(notes))


def best_constant(y: np.ndarray, task: str, n_out: int) -> np.ndarray:
    """Output bias of the best constant prediction: log class priors (cross-entropy; a class
    absent from the training rows gets half a count so its log stays finite) or the mean target."""
    if task == "regression":
        return np.array([float(np.mean(y, dtype=np.float64))])  # float64: the loss is computed in float64
    counts = np.bincount(y, minlength=n_out).astype(np.float64)
    counts[counts == 0] = 0.5
    return np.log(counts / counts.sum())


def race_loss(
    f,
    theta0: torch.Tensor,
    center: torch.Tensor,
    racer: str,
    config: Config,
    seed: int,
    should_stop=None,
) -> tuple[pd.DataFrame, int | None, dict]:
    """One racer on a loss f(theta) of a flat float64 parameter vector, from theta0, through
    core.surfaces.descend (the one descent loop; divergence by core.rules).

    "noise" adds N(0, sigma^2) to each gradient coordinate (seeded); "curvature" first steps along
    the eigenvector of lambda_min (core.curvature.hessian_extremes, Lanczos on Hessian-vector
    products) with length curvature_scale * |lambda_min| and then runs plain gradient descent.
    Returns (frame with step, loss, grad_norm, distance; diverged_at; curvature costs).
    """
    _, opt_name = RACERS[racer]
    cost: dict = {}
    first = None
    begin = theta0.detach()
    if racer == "curvature":
        theta = theta0.detach().clone().requires_grad_(True)
        loss0 = f(theta)
        g0 = torch.autograd.grad(loss0, theta)[0]
        first = pd.DataFrame({"step": [0], "loss": [loss0.item()], "grad_norm": [g0.norm().item()],
                              "distance": [(theta0 - center).norm().item()]})
        t0 = time.perf_counter()
        ext = hessian_extremes(f, theta0, should_stop=should_stop)
        length = config.curvature_scale * abs(ext.eig_min) if ext.eig_min < 0 else 0.0
        v = torch.as_tensor(ext.vec_min, dtype=theta0.dtype, device=theta0.device)
        with torch.no_grad():
            _, begin, _, _, _ = descend_along(f, theta0.detach(), v, length)
        cost = dict(hvps=ext.n_hvp, curvature_seconds=time.perf_counter() - t0, eig_min=ext.eig_min)
    kw = {"momentum": config.momentum} if opt_name in ("momentum", "nesterov") else {}
    sigma = config.noise_sigma if racer == "noise" else 0.0
    # Network losses are positive: the divergence rule's "10x the start" needs no extra scale.
    run = descend(f, begin.cpu().numpy(), opt_name, config.steps - (first is not None), config.lr,
                  noise_sigma=sigma, seed=seed, center=center.detach().cpu().numpy(), loss_scale=0.0,
                  should_stop=should_stop, **kw)
    frame, diverged = _after(first, run)
    return frame[["step", "loss", "grad_norm", "distance"]].copy(), diverged, cost


def race_network(net: NetworkSaddle, start: torch.Tensor, config: Config, seed: int, start_name: str,
                 on_progress: Progress = no_progress) -> list[Lap]:
    """Race every racer on the network's loss from `start`."""
    laps = []
    tick = Ticker(on_progress)
    racers = racers_for(config)
    for i, racer in enumerate(racers):
        tick.at(i / len(racers), f"{RACERS[racer][0]} from {STARTS[start_name]}")
        t0 = time.perf_counter()
        frame, diverged, cost = race_loss(net.f, start, net.theta, racer, config, seed, should_stop=tick)
        laps.append(Lap(racer, start_name, frame, diverged, time.perf_counter() - t0, **cost))
    return laps


# ---------------------------------------------------------------------------------------------
# Results


def escape_radius(config: Config) -> float | None:
    """The distance rule's radius, or None in network mode: there Adam's first step alone moves
    each of hundreds of parameters by the learning rate (a distance of lr * sqrt(n)) and
    gradient noise wanders as far, without any escape, so only the loss rule counts."""
    return None if config.surface == NETWORK else config.radius


def escape_table(laps: list[Lap], saddle_loss: float, config: Config) -> pd.DataFrame:
    """One row per lap: racer, label, start, escaped, steps_to_escape, escaped_by, final_loss,
    loss_change (last finite loss minus the start's), final_distance, diverged_at, hessian_evals, hvps,
    curvature_seconds, eig_min (lambda_min where the curvature step looked; NaN for others), seconds."""
    rows = []
    for lap in laps:
        step, by = escape_step(lap.frame, saddle_loss, config.delta, escape_radius(config), lap.diverged_at)
        finite = lap.frame["loss"][np.isfinite(lap.frame["loss"])]
        rows.append(dict(
            racer=lap.racer, label=RACERS[lap.racer][0], start=lap.start, escaped=step is not None,
            steps_to_escape=step, escaped_by=by,
            final_loss=float(finite.iloc[-1]) if len(finite) else float("nan"),
            loss_change=float(finite.iloc[-1] - lap.frame["loss"].iloc[0]) if len(finite) else float("nan"),
            final_distance=float(lap.frame["distance"].iloc[-1]),
            diverged_at=lap.diverged_at, hessian_evals=lap.hessian_evals, hvps=lap.hvps,
            curvature_seconds=lap.curvature_seconds, eig_min=lap.eig_min, seconds=lap.seconds,
        ))
    table = pd.DataFrame(rows)
    for col in ("steps_to_escape", "diverged_at"):
        table[col] = table[col].astype("Int64")
    return table


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Run the race from exactly the saddle and from the pushed start (both, always)."""
    validate(config)
    on_progress = on_progress or no_progress
    seed = setup.seed
    grid = marks = check = None
    notes: tuple[str, ...] = ()
    if config.surface == NETWORK:
        on_progress(0.0, "placing the network at a saddle")
        net = network_saddle(data, setup, config.all_zero)
        tick = Ticker(on_progress)
        tick.at(0.05, "checking the saddle (gradient and Hessian)")
        check = classify_point(net.f, net.theta, should_stop=tick)
        saddle_loss, n, notes = check.loss, net.n_params, net.notes
        label = f"Your network ({net.spec.describe()}, {n} parameters, {data.name or 'lab data'})"
        pushed = net.theta + torch.as_tensor(push(n, config.epsilon, seed))
        laps = race_network(net, net.theta, config, seed, "exact", sub_progress(on_progress, 0.1, 0.55))
        laps += race_network(net, pushed, config, seed, "pushed", sub_progress(on_progress, 0.55, 1.0))
    else:
        surface = SURFACES[config.surface]
        center = np.asarray(surface.saddle, dtype=np.float64)
        pushed_xy = center + push(2, config.epsilon, seed)
        saddle_loss, n, label = surface.loss(center), 2, surface.label
        on_progress(0.1, "racing from exactly the saddle")
        laps = race_surface(config.surface, center, config, seed, "exact")
        on_progress(0.5, "racing from the pushed start")
        laps += race_surface(config.surface, pushed_xy, config, seed, "pushed")
        grid = surface_grid(surface, n=60, clip_quantile=0.95)
        minima = [(c.x, c.y, "minimum") for c in surface.critical_points if c.kind == "local minimum"]
        marks = pd.DataFrame([(center[0], center[1], "saddle"), (pushed_xy[0], pushed_xy[1], "pushed start")]
                             + minima, columns=["x", "y", "label"])
    frame = pd.concat(
        [lap.frame.assign(racer=lap.racer, label=RACERS[lap.racer][0], start=lap.start) for lap in laps],
        ignore_index=True,
    )
    table = escape_table(laps, saddle_loss, config)
    on_progress(1.0, "done")
    return Result(
        config=config, surface_label=label, saddle_loss=saddle_loss, frame=frame, table=table, grid=grid,
        marks=marks, check=check, network_notes=notes, n_params=n,
        honesty=honesty_text(find(table, config, saddle_loss, check), config, saddle_loss),
        verdict=make_verdict(table, config, saddle_loss, check),
    )


# ---------------------------------------------------------------------------------------------
# Words


@dataclass(frozen=True)
class Outcome:
    """A racer's result from one start, decided before any wording: "escaped" (at `step`, by the
    loss or the distance rule, core.rules.escape_index), "diverged" (at `step`, core.rules) or
    "none" (neither in budget). `distance` is where it ended (from the saddle) and `loss_change`
    its last finite loss minus its start loss: for the exact start, how far it moved and whether
    the loss changed at all."""

    racer: str
    start: str
    kind: str
    step: int | None
    by: str = ""
    distance: float = 0.0
    loss_change: float = 0.0


# An extra racer's pushed escape against the first-order winners' step count.
SOONER, AS_FAST, LATER = "sooner", "as fast", "later"


@dataclass(frozen=True)
class RaceFindings:
    """What the race showed, with stable racer keys (words come from `make_verdict`)."""

    first: tuple[str, ...]  # first-order racers (FIRST_ORDER that ran) tied for the fewest pushed escape steps
    first_order: tuple[str, ...]  # the first-order racers that ran: the group `first` is ranked in
    relation: dict  # extra racer (noise, curvature) that escaped the push -> SOONER / AS_FAST / LATER than `first`
    outcomes: tuple[Outcome, ...]
    overshoot: tuple[tuple[str, str, float], ...]  # (racer, start, final loss) ended above the saddle
    check_kind: str | None  # network mode: classify_point's kind at the saddle
    left_out: tuple[str, ...]  # racers this config could not run (LEFT_OUT_WHY)
    eig_min: float  # lambda_min the curvature step saw at the exact saddle

    def outcome(self, racer: str, start: str) -> Outcome:
        """The outcome of one racer from one start."""
        return next(o for o in self.outcomes if o.racer == racer and o.start == start)

    @property
    def diverged(self) -> tuple[Outcome, ...]:
        """Every run that diverged."""
        return tuple(o for o in self.outcomes if o.kind == "diverged")


def outcome_of(table: pd.DataFrame, racer: str, start: str) -> Outcome:
    """The Outcome of one table row (a diverged run never counts as escaped)."""
    row = table[(table["racer"] == racer) & (table["start"] == start)].iloc[0]
    where = dict(distance=float(row["final_distance"]), loss_change=float(row["loss_change"]))
    if pd.notna(row["diverged_at"]):
        return Outcome(racer, start, "diverged", int(row["diverged_at"]), **where)
    if pd.notna(row["steps_to_escape"]):
        return Outcome(racer, start, "escaped", int(row["steps_to_escape"]), row["escaped_by"], **where)
    return Outcome(racer, start, "none", None, **where)


def find(table: pd.DataFrame, config: Config, saddle_loss: float, check: CriticalPoint | None = None) -> RaceFindings:
    """Decide the race from its table: who escaped first (ties kept), who diverged, who overshot.

    "First" is judged among the deterministic first-order racers that ran (gradient descent,
    momentum, Nesterov, Adam) after the push; gradient noise (random kicks, seed-dependent) and the
    curvature step (an eigen-solve) use more than the gradient, so each gets its own relation to
    that winner (sooner, as fast, later), never a place in the ranking."""
    ran = [r for r in RACERS if r in set(table["racer"])]
    outcomes = tuple(outcome_of(table, r, st) for st in STARTS for r in ran)
    first_order = tuple(r for r in FIRST_ORDER if r in ran)
    escaped = [o for o in outcomes if o.start == "pushed" and o.racer in first_order and o.kind == "escaped"]
    best = min((o.step for o in escaped), default=None)
    first = tuple(o.racer for o in escaped if o.step == best)
    relation = {}
    for o in outcomes:
        if o.start == "pushed" and o.racer not in FIRST_ORDER and o.kind == "escaped" and best is not None:
            relation[o.racer] = SOONER if o.step < best else AS_FAST if o.step == best else LATER
    ok = table[table["diverged_at"].isna() & (table["final_loss"] > saddle_loss + config.delta)]
    overshoot = tuple((r.racer, r.start, float(r.final_loss)) for r in ok.itertuples())
    left_out = tuple(r for r in RACERS if r not in ran)
    lam = float(table[(table["racer"] == "curvature") & (table["start"] == "exact")]["eig_min"].iloc[0])
    return RaceFindings(first, first_order, relation, outcomes, overshoot,
                        None if check is None else check.kind, left_out, lam)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _took(o: Outcome, budget: int) -> str:
    if o.kind == "escaped":
        return f"escaped in {steps_text(o.step)}"
    if o.kind == "diverged":
        return f"diverged at step {o.step}"
    return f"did not escape in {budget} steps"


def _grouped(outcomes: list[Outcome], budget: int) -> str:
    """Racers with the same result named together: 'gradient descent and momentum diverged at step 2; ...'."""
    said: dict[str, list[str]] = {}
    for o in outcomes:
        said.setdefault(_took(o, budget), []).append(NAMES[o.racer])
    return "; ".join(f"{_join(names)} {took}" for took, names in said.items())


def _moved(o: Outcome) -> str:
    """How far a racer that did not escape moved from the exact saddle, and what its loss did."""
    if o.distance == 0 and o.loss_change == 0:
        return "did not move at all"
    loss = "its loss unchanged" if o.loss_change == 0 else f"its loss changed by {num(o.loss_change)}"
    return f"moved {num(o.distance)}, {loss}"


def honesty_text(f: RaceFindings, config: Config, saddle_loss: float) -> str:
    """What the exact start did to every racer and what the push changed, in words with numbers
    (escaped or not by core.rules.escape_index, as in the table)."""
    exact = [f.outcome(r, "exact") for r in f.first_order]
    still = [o for o in exact if o.kind == "none" and o.distance == 0 and o.loss_change == 0]
    drift = [o for o in exact if o.kind == "none" and o not in still]
    gone = [o for o in exact if o.kind != "none"]
    said = []
    if still:
        said.append(f"{_join([NAMES[o.racer] for o in still])} did not move at all (distance 0, loss unchanged)")
    if drift:
        most = max(abs(o.loss_change) for o in drift)
        loss = "the loss unchanged" if most == 0 else f"the loss changing by at most {num(most)}"
        moved = [f"{NAMES[o.racer]}{' moved' if i == 0 else ''} {num(o.distance)}" for i, o in enumerate(drift)]
        said.append(f"{_join(moved)}, with {loss}")
    said += [f"{NAMES[o.racer]} {'escaped' if o.kind == 'escaped' else 'diverged'} at step {o.step}" for o in gone]
    parts = [f"Started exactly at the saddle (loss {num(saddle_loss, 4)}), over {config.steps} steps: "
             f"{'; '.join(said)}."]
    stuck = still + drift
    if stuck and not gone:
        parts.append("None of them escaped: the gradient there is zero (up to rounding), so there is nothing "
                     "to follow and nothing for momentum to accumulate.")
    elif stuck:
        parts.append(f"{capital(_join([NAMES[o.racer] for o in stuck]))} did not escape.")
    curv, noise = f.outcome("curvature", "exact"), f.outcome("noise", "exact")
    if curv.kind == "escaped":
        parts.append(f"From the same point the curvature step escaped at step {curv.step}: the Hessian's most "
                     f"negative eigenvalue ({f.eig_min:.3g}) points downhill where the gradient shows nothing.")
    elif curv.kind == "diverged":
        parts.append(f"From the same point the curvature step diverged at step {curv.step}: the gradient "
                     "descent after it took steps too long for the curvature.")
    else:
        why = (f"the Hessian there has no clearly negative eigenvalue (lambda_min = {f.eig_min:.2g}), so "
               "second-order information shows no way down (a degenerate saddle, like the monkey saddle)"
               if f.eig_min > -1e-6 else "the step was too short to lower the loss enough")
        parts.append(f"The curvature step did not escape within {config.steps} steps (it {_moved(curv)}): {why}.")
    if noise.kind == "escaped":
        parts.append(f"Gradient noise (sigma {config.noise_sigma:g}) escaped at step {noise.step}: it knocks the "
                     "parameters off the balance point, the way mini-batch noise does.")
    elif noise.kind == "diverged":
        parts.append(f"Gradient noise (sigma {config.noise_sigma:g}) diverged at step {noise.step}.")
    else:
        parts.append(f"Gradient noise (sigma {config.noise_sigma:g}) did not escape within {config.steps} "
                     f"steps (it {_moved(noise)}).")
    gd, mom = f.outcome("gd", "pushed"), f.outcome("momentum", "pushed")
    parts.append(f"Pushed {config.epsilon:g} off the saddle, gradient descent {_took(gd, config.steps)} and "
                 f"momentum (beta {config.momentum:g}) {_took(mom, config.steps)}.")
    return " ".join(parts)


def _group(n: int) -> str:
    return {1: "the one racer", 2: "the two racers", 3: "the three racers", 4: "the four racers"}[n]


def make_verdict(table: pd.DataFrame, config: Config, saddle_loss: float, check: CriticalPoint | None = None) -> Verdict:
    """The race in words, from its findings (`find`): which first-order racer escaped first after
    the push (and, separately, whether gradient noise or the curvature step was sooner), what the
    curvature step cost, what happened at the exact saddle, overshoots, divergences, left-out racers."""
    f = find(table, config, saddle_loss, check)
    curv_row = table[(table["racer"] == "curvature") & (table["start"] == "pushed")].iloc[0]
    cost = (f"{int(curv_row['hvps'])} Hessian-vector products" if curv_row["hvps"]
            else f"{int(curv_row['hessian_evals'])} exact Hessian")
    helped = {"noise": f"gradient noise (random kicks, sigma {config.noise_sigma:g})",
              "curvature": f"the curvature step (an eigen-solve: {cost}, {curv_row['curvature_seconds'] * 1000:.0f} ms)"}
    extra = []
    for r in ("noise", "curvature"):
        o = f.outcome(r, "pushed")
        rel = f", {f.relation[r]}" if r in f.relation else ""
        extra.append(f"{helped[r]} {_took(o, config.steps)}{rel}")
    extra_part = f"With help beyond the gradient, {'; '.join(extra)}."
    group = f"{_group(len(f.first_order))} that follow the exact gradient alone"
    exact_out = [f"{NAMES[o.racer]} (step {o.step})" for o in f.outcomes if o.start == "exact" and o.kind == "escaped"]
    exact_part = (f"From exactly the saddle only {_join(exact_out)} got away." if exact_out
                  else "From exactly the saddle no racer got away.")
    if not f.first:
        fo = [f.outcome(r, "pushed") for r in f.first_order]
        fo_part = f" ({_grouped(fo, config.steps)})" if any(o.kind != "none" for o in fo) else ""
        text = (f"Pushed {config.epsilon:g} off the saddle, none of {group} escaped within {config.steps} "
                f"steps{fo_part}. {extra_part} {exact_part}")
        kind, advice = "warning", "Raise the learning rate, the push epsilon or the step budget."
    else:
        step = f.outcome(f.first[0], "pushed").step
        who = _join([NAMES[r] for r in f.first])
        lead = (f"{who} escaped first, in {steps_text(step)}" if len(f.first) == 1
                else f"{who} tied for first, each escaping in {steps_text(step)}")
        others = [f.outcome(r, "pushed") for r in f.first_order if r not in f.first]
        rest = f" ({_grouped(others, config.steps)})" if others else ""
        text = f"Pushed {config.epsilon:g} off the saddle, of {group}, {lead}{rest}. {extra_part} {exact_part}"
        kind, advice = "info", "Momentum, Adam or a little gradient noise are the cheap ways off a saddle."
    for r in f.left_out:
        text += f" {capital(NAMES[r])} sat this race out: {LEFT_OUT_WHY[r]}."
    if f.check_kind is not None and f.check_kind != "saddle point":
        text += f" The check found a {f.check_kind} point, not a strict saddle."
        kind = "warning"
    if f.overshoot:
        worst = max(loss for _, _, loss in f.overshoot)
        text += (f" {len(f.overshoot)} of {len(table)} runs ended above the saddle's loss {saddle_loss:.4g} "
                 f"(worst {worst:.4g}) without diverging: steps too long for the curvature overshoot.")
        kind, advice = "warning", f"Lower the learning rate (now {config.lr:g})."
    if f.diverged:
        groups = []
        for start, words in (("exact", "from exactly the saddle"), ("pushed", "after the push")):
            rows = [o for o in f.diverged if o.start == start]
            if rows:
                groups.append(_join([f"{NAMES[o.racer]} at step {o.step}" for o in rows]) + f" {words}")
        text += f" {len(f.diverged)} of {len(table)} runs diverged: {'; '.join(groups)}."
        kind, advice = "problem", f"Lower the learning rate (now {config.lr:g})."
    return Verdict(kind, capital(text), advice)
