"""2-D toy loss surfaces and optimizer trajectories on them.

A `Surface` is a named loss L(w) of a 2-element parameter vector, written in torch so that
autograd gives exact gradients and Hessians. `run_optimizer` walks the real `torch.optim`
optimizers over a surface and records every step in a DataFrame; `grid` samples a surface
for heat maps and contours; `negative_curvature_step` is the second-order way out of a saddle.

Every `Surface.fn` also accepts a batch of points of shape (..., 2) and returns a loss of shape
(...), which is what makes `grid` a single vectorized call.

Example:
    >>> traj = run_optimizer(SURFACES["lecture"], "momentum", start=(0.05, -0.04), steps=100, lr=0.1)
    >>> traj.frame[["step", "x", "y", "loss"]].tail(1)      # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.rules import PARAM_LIMIT, divergence_limit
from core.stop import check_stop
from core.train import OPTIMIZER_ALIASES, OPTIMIZER_LABELS
from core.train import make_optimizer as train_optimizer

DIVERGENCE_LIMIT = PARAM_LIMIT  # kept name: a coordinate past this size is a divergence (core.rules)
# Toy surfaces are built with losses of order 1: the divergence rule's loss scale on them, so a
# start at a saddle with L = 0 still has a meaningful "10x its start" (core.rules.first_divergence).
SURFACE_LOSS_SCALE = 1.0


@dataclass(frozen=True)
class CriticalPointMark:
    """A point where the gradient vanishes, for marking on plots.

    kind uses the vocabulary of `core.curvature.classify_point` ("local minimum",
    "local maximum", "saddle point", "flat (degenerate)"); note says anything the kind cannot
    (e.g. "one point of the valley w1*w2 = 1").
    """

    x: float
    y: float
    kind: str
    note: str = ""


@dataclass(frozen=True)
class Surface:
    """A 2-D toy loss surface.

    fn maps a float64 tensor of shape (2,) (or a batch (..., 2)) to the loss (shape () or (...));
    it is smooth, so torch can differentiate it twice.
    """

    key: str
    label: str
    description: str  # one line, plain words
    formula: str  # LaTeX for st.latex
    fn: Callable[[torch.Tensor], torch.Tensor]
    bounds: tuple[tuple[float, float], tuple[float, float]]  # ((xmin, xmax), (ymin, ymax)) for plots
    saddle: tuple[float, float] | None  # the point of interest of a saddle demo, if any
    critical_points: tuple[CriticalPointMark, ...]
    axis_names: tuple[str, str]
    min_loss: float  # the global minimum value (used for log-scaled colours)
    start: tuple[float, float]  # a start point that makes a good demo
    continuum: str | None = None  # set when the minima form a curve: what the marks stand for

    def loss(self, point: Sequence[float] | np.ndarray) -> float:
        """Loss at one point.

        >>> SURFACES["lecture"].loss((0.0, 0.0))
        1.0
        """
        return float(self.fn(torch.as_tensor(point, dtype=torch.float64)))

    def gradient(self, point: Sequence[float] | np.ndarray) -> np.ndarray:
        """Exact gradient (autograd) at one point, as a numpy array of 2."""
        p = torch.as_tensor(point, dtype=torch.float64).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(self.fn(p), p)
        return g.numpy()

    def hessian(self, point: Sequence[float] | np.ndarray) -> np.ndarray:
        """Exact 2x2 Hessian (torch.func, reverse over reverse) at one point."""
        return _hessian(self.fn, torch.tensor(np.asarray(point, dtype=np.float64))).numpy()


def _hessian(fn: Callable[[torch.Tensor], torch.Tensor], p: torch.Tensor) -> torch.Tensor:
    # jacrev(jacrev) rather than torch.func.hessian (jacfwd over jacrev): same exact matrix, but
    # forward mode loads torch's TorchScript jvp decompositions (DeprecationWarnings on first use)
    # and measured ~4x slower per call on 2 parameters.
    return torch.func.jacrev(torch.func.jacrev(fn))(p)


# ----------------------------------------------------------------------------------------------
# The surfaces. Each fn unpacks the last axis so that it works on one point and on batches.


def _lecture(p: torch.Tensor) -> torch.Tensor:
    # One-sample network y_hat = w1*w2*x with x = 1 and target y = 1, squared error.
    w1, w2 = p[..., 0], p[..., 1]
    return (1.0 - w1 * w2) ** 2


def _saddle(p: torch.Tensor) -> torch.Tensor:
    # x^2 - y^2 alone is unbounded below; the quartic turns it into two minima at y = ±sqrt(2).
    x, y = p[..., 0], p[..., 1]
    return x**2 - y**2 + y**4 / 4.0


def _monkey(p: torch.Tensor) -> torch.Tensor:
    # In polar form r^3 cos(3θ) + (3/4) r^4: three valleys at r = 1, θ = 60°, 180°, 300°.
    x, y = p[..., 0], p[..., 1]
    return x**3 - 3.0 * x * y**2 + 0.75 * (x**2 + y**2) ** 2


ELONGATED_A, ELONGATED_B = 1.0, 0.01  # curvatures along x and y: condition number 100


def _elongated(p: torch.Tensor) -> torch.Tensor:
    x, y = p[..., 0], p[..., 1]
    return 0.5 * (ELONGATED_A * x**2 + ELONGATED_B * y**2)


def _rosenbrock(p: torch.Tensor) -> torch.Tensor:
    x, y = p[..., 0], p[..., 1]
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def _tilted_double_well(p: torch.Tensor) -> torch.Tensor:
    # x^4 - 2x^2 tilted by 0.5x: a shallow local minimum at x = 0.930 (L = -0.517), a barrier at
    # x = 0.127 (L = 0.032) and the global minimum at x = -1.057 (L = -1.515); y^2 keeps it 2-D.
    x, y = p[..., 0], p[..., 1]
    return x**4 - 2.0 * x**2 + 0.5 * x + y**2


# The double well's critical points along y = 0: roots of 4x^3 - 4x + 0.5 (numpy.roots).
WELL_GLOBAL_X, WELL_BARRIER_X, WELL_LOCAL_X = -1.0574537707383778, 0.1270508441825262, 0.9304029265558516

FLAT_WELL_WIDTH = 0.5  # half-width of the well in flat_then_steep


def _flat_then_steep(p: torch.Tensor) -> torch.Tensor:
    # A Lorentzian well: its slope falls off like 1/d^3 far from x = 1, so the walk from
    # x = -4.5 is a long, almost flat approach (slope ~0.003) that ends in a cliff (slope ~1.3).
    x, y = p[..., 0], p[..., 1]
    d = (x - 1.0) / FLAT_WELL_WIDTH
    return 0.5 * y**2 - 1.0 / (1.0 + d**2)


def _valley_points() -> tuple[CriticalPointMark, ...]:
    note = "one point of the valley w1*w2 = 1 (every point of it is a global minimum, L = 0)"
    pts = [(1.0, 1.0), (-1.0, -1.0), (2.0, 0.5), (0.5, 2.0), (-2.0, -0.5), (-0.5, -2.0)]
    return tuple(CriticalPointMark(a, b, "local minimum", note) for a, b in pts)


_S3 = math.sqrt(3.0) / 2.0
_SQ2 = math.sqrt(2.0)

SURFACES: dict[str, Surface] = {
    s.key: s
    for s in [
        Surface(
            key="lecture",
            label="Lecture: one-sample network",
            description="The network y = w1*w2*x fit to the single sample x = 1, y = 1: "
            "a saddle at the origin and a curved valley of perfect fits.",
            formula=r"L(w_1, w_2) = (1 - w_1 w_2)^2",
            fn=_lecture,
            bounds=((-2.0, 2.0), (-2.0, 2.0)),
            saddle=(0.0, 0.0),
            critical_points=(CriticalPointMark(0.0, 0.0, "saddle point", "L = 1, Hessian [[0,-2],[-2,0]]"),)
            + _valley_points(),
            axis_names=("w1", "w2"),
            min_loss=0.0,
            start=(0.05, -0.04),
            continuum="Every point of the hyperbola w1*w2 = 1 is a global minimum (L = 0); "
            "the marked minima are a few of them.",
        ),
        Surface(
            key="saddle",
            label="Classic saddle",
            description="A horse saddle: uphill along x, downhill along y until a quartic wall "
            "stops the fall in two minima.",
            formula=r"L(x, y) = x^2 - y^2 + \tfrac{1}{4} y^4",
            fn=_saddle,
            bounds=((-2.0, 2.0), (-2.5, 2.5)),
            saddle=(0.0, 0.0),
            critical_points=(
                CriticalPointMark(0.0, 0.0, "saddle point", "L = 0, Hessian diag(2, -2)"),
                CriticalPointMark(0.0, _SQ2, "local minimum", "L = -1"),
                CriticalPointMark(0.0, -_SQ2, "local minimum", "L = -1"),
            ),
            axis_names=("x", "y"),
            min_loss=-1.0,
            start=(1.5, 0.01),
        ),
        Surface(
            key="monkey",
            label="Monkey saddle",
            description="Three valleys meet at a perfectly flat point: the Hessian there is zero, "
            "so curvature alone cannot show the way down.",
            formula=r"L(x, y) = x^3 - 3 x y^2 + \tfrac{3}{4} (x^2 + y^2)^2",
            fn=_monkey,
            bounds=((-1.5, 1.5), (-1.5, 1.5)),
            saddle=(0.0, 0.0),
            critical_points=(
                CriticalPointMark(0.0, 0.0, "flat (degenerate)", "monkey saddle: gradient and Hessian both zero"),
                CriticalPointMark(-1.0, 0.0, "local minimum", "L = -1/4"),
                CriticalPointMark(0.5, _S3, "local minimum", "L = -1/4"),
                CriticalPointMark(0.5, -_S3, "local minimum", "L = -1/4"),
            ),
            axis_names=("x", "y"),
            min_loss=-0.25,
            start=(0.6, 0.02),
        ),
        Surface(
            key="double_well",
            label="Tilted double well (a local minimum to roll through)",
            description="A shallow local minimum on the right, a small ridge, and a deeper global minimum "
            "on the left: gradient descent from the right stops in the first dip, a rolling ball can "
            "carry on over the ridge.",
            formula=r"L(x, y) = x^4 - 2x^2 + \tfrac{1}{2}x + y^2",
            fn=_tilted_double_well,
            bounds=((-1.8, 2.2), (-1.0, 1.0)),
            saddle=None,
            critical_points=(
                CriticalPointMark(WELL_GLOBAL_X, 0.0, "local minimum", "global minimum, L = -1.515"),
                CriticalPointMark(WELL_BARRIER_X, 0.0, "saddle point", "top of the ridge, L = 0.032"),
                CriticalPointMark(WELL_LOCAL_X, 0.0, "local minimum", "shallow local minimum, L = -0.517"),
            ),
            axis_names=("x", "y"),
            min_loss=-1.5147536412757057,
            start=(2.0, 0.5),
        ),
        Surface(
            key="elongated",
            label="Elongated bowl (condition number 100)",
            description="A bowl 100 times steeper along x than along y: one learning rate cannot "
            "suit both directions.",
            formula=r"L(x, y) = \tfrac{1}{2}\,(x^2 + 0.01\, y^2)",
            fn=_elongated,
            bounds=((-2.0, 2.0), (-12.0, 12.0)),
            saddle=None,
            critical_points=(CriticalPointMark(0.0, 0.0, "local minimum", "L = 0, Hessian diag(1, 0.01)"),),
            axis_names=("x", "y"),
            min_loss=0.0,
            start=(1.5, 10.0),
        ),
        Surface(
            key="rosenbrock",
            label="Rosenbrock banana",
            description="A narrow curved valley with a nearly flat floor leading to the minimum at (1, 1).",
            formula=r"L(x, y) = (1 - x)^2 + 100\,(y - x^2)^2",
            fn=_rosenbrock,
            bounds=((-2.0, 2.0), (-1.0, 3.0)),
            saddle=None,
            critical_points=(CriticalPointMark(1.0, 1.0, "local minimum", "L = 0"),),
            axis_names=("x", "y"),
            min_loss=0.0,
            start=(-1.2, 1.0),
        ),
        Surface(
            key="flat_then_steep",
            label="Long plateau, then a cliff",
            description="Along x a long almost flat approach ends in a narrow steep well at x = 1; "
            "along y an ordinary bowl.",
            formula=r"L(x, y) = \tfrac{1}{2} y^2 - \frac{1}{1 + 4\,(x - 1)^2}",
            fn=_flat_then_steep,
            bounds=((-5.0, 3.0), (-1.5, 1.5)),
            saddle=None,
            critical_points=(CriticalPointMark(1.0, 0.0, "local minimum", "L = -1"),),
            axis_names=("x", "y"),
            min_loss=-1.0,
            start=(-4.5, 1.0),
        ),
    ]
}


def grid(
    surface: Surface,
    n: int = 80,
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
    clip_quantile: float | None = None,
    log_floor: float = 1e-3,
) -> pd.DataFrame:
    """Sample a surface on an n x n grid for heat maps and contours.

    Columns: x, y, loss and log_loss = log10(loss - surface.min_loss + log_floor), which keeps
    the valley visible on surfaces with a huge range (Rosenbrock spans 0..2500); log_floor stops
    a grid point that lands exactly on the minimum from stretching the colour scale.
    clip_quantile (e.g. 0.95) caps the loss column at that quantile, for colour scales;
    log_loss is computed before clipping. One vectorized call: 80 x 80 takes about a millisecond.

    >>> df = grid(SURFACES["saddle"], n=3)
    >>> list(df.columns)
    ['x', 'y', 'loss', 'log_loss']
    """
    (x0, x1), (y0, y1) = bounds or surface.bounds
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    X, Y = np.meshgrid(xs, ys, indexing="xy")
    pts = torch.from_numpy(np.stack([X.ravel(), Y.ravel()], axis=-1))
    with torch.no_grad():
        loss = surface.fn(pts).numpy()
    log_loss = np.log10(np.maximum(loss - surface.min_loss, 0.0) + log_floor)
    if clip_quantile is not None:
        loss = np.minimum(loss, np.quantile(loss, clip_quantile))
    return pd.DataFrame({"x": X.ravel(), "y": Y.ravel(), "loss": loss, "log_loss": log_loss})


# ----------------------------------------------------------------------------------------------
# Optimizers

class _Labels(dict):
    """Optimizer labels that also answer to the old alias "gd" (now "sgd", as in core.train)."""

    def __missing__(self, key):
        if key in OPTIMIZER_ALIASES:
            return self[OPTIMIZER_ALIASES[key]]
        raise KeyError(key)

    def get(self, key, default=None):
        """dict.get that resolves aliases."""
        try:
            return self[key]
        except KeyError:
            return default


# The app's one optimizer vocabulary (core.train), shown with the same labels everywhere.
OPTIMIZERS: dict[str, str] = _Labels(OPTIMIZER_LABELS)


def make_optimizer(name: str, params, lr: float, **kw) -> torch.optim.Optimizer:
    """The torch.optim optimizer behind a name of OPTIMIZERS: core.train.make_optimizer, with
    keyword arguments under torch's names (`momentum`, `betas`, `alpha`, `eps`, ...).

    >>> p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    >>> make_optimizer("adam", [p], lr=0.1, betas=(0.8, 0.99)).param_groups[0]["betas"]
    (0.8, 0.99)
    """
    if OPTIMIZER_ALIASES.get(name, name) not in OPTIMIZER_LABELS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
    return train_optimizer(name, params, lr, **kw)


@dataclass(frozen=True)
class EscapeRule:
    """Second-order saddle escape for `run_optimizer`.

    Whenever the true gradient norm is below grad_tol and the Hessian has a negative eigenvalue
    (below -min_curvature), the optimizer's update is replaced by `negative_curvature_step`
    with this scale.
    """

    grad_tol: float = 1e-3
    scale: float = 0.5  # step length = scale * |eig_min| before backtracking
    min_curvature: float = 1e-8  # eigenvalues above -min_curvature count as flat


@dataclass(frozen=True)
class Trajectory:
    """One optimizer run on a surface.

    frame has one row per step: step 0 is the start, row k the point after k updates.
    Columns: step, x, y, loss, grad_norm (true gradient at that point, before noise), lr (the
    learning rate of the update that leaves the point), step_x, step_y (|Δx|, |Δy| of that
    update), eff_lr_x, eff_lr_y (|Δ| / |g| per coordinate, g the gradient the optimizer was
    given; NaN where g = 0), curvature_step (True where an EscapeRule replaced the update).
    The last row (and a diverged row) has no update: its step/eff_lr columns are NaN.
    diverged_at is the step at which the loss or a parameter became non-finite or a parameter
    exceeded DIVERGENCE_LIMIT in size; that row is the frame's last and may hold inf or NaN.
    """

    optimizer: str
    label: str
    frame: pd.DataFrame
    diverged_at: int | None
    seconds: float

    def first_below(self, level: float) -> int | None:
        """First step whose loss is below level, or None (e.g. the escape step in a race).

        >>> run_optimizer(SURFACES["lecture"], "gd", (0.1, 0.1), 200, 0.1).first_below(0.5)  # doctest: +SKIP
        """
        hit = self.frame.loc[self.frame["loss"] < level, "step"]
        return int(hit.iloc[0]) if len(hit) else None


@dataclass(frozen=True)
class Descent:
    """What `descend` recorded: one row per visited point (step 0 = the start).

    frame columns: step, loss, grad_norm (true gradient, before noise), lr (of the update that
    leaves the point), distance (from `center`, when given), x and y (2-parameter runs), step_x,
    step_y, eff_lr_x, eff_lr_y (2-parameter runs: |update| and |update| / |gradient seen| per
    coordinate; NaN on the last row and where the gradient was 0), kicked (True where a kick
    replaced the optimizer's update). diverged_at: the first divergent step (core.rules), the
    frame's last row.
    """

    frame: pd.DataFrame
    diverged_at: int | None
    final: np.ndarray  # the parameters at the last row
    seconds: float


Kick = Callable[[np.ndarray, float], "np.ndarray | None"]  # (point, |g|) -> replacement point or None


def descend(
    fn: Callable[[torch.Tensor], torch.Tensor],
    start,
    optimizer: str,
    steps: int,
    lr: float,
    noise_sigma: float = 0.0,
    seed: int = 0,
    center=None,
    loss_scale: float = SURFACE_LOSS_SCALE,
    kick: Kick | None = None,
    lr_scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **optimizer_kw,
) -> Descent:
    """The one descent loop for toy surfaces and saddle races, in any dimension.

    A real torch.optim optimizer (core.train's vocabulary) updates a float64 copy of `start` for
    `steps` updates on `fn`. `noise_sigma` adds seeded N(0, sigma^2) noise to every gradient
    coordinate (the noise of a mini-batch gradient); `kick(point, |g|)` may return a point that
    replaces the optimizer's update (a negative-curvature step). The run stops at the first
    divergent point by core.rules: a non-finite loss, gradient or parameter, a coordinate past
    PARAM_LIMIT, or a loss past core.rules.divergence_limit(start loss, loss_scale).
    `should_stop` (core.stop) is checked before every step.
    """
    t0 = time.perf_counter()
    p = torch.as_tensor(np.asarray(start, dtype=np.float64)).clone().reshape(-1).requires_grad_(True)
    two_d = p.numel() == 2
    c = None if center is None else torch.as_tensor(np.asarray(center, dtype=np.float64)).reshape(-1)
    opt = make_optimizer(optimizer, [p], lr, **optimizer_kw)
    sched = lr_scheduler(opt) if lr_scheduler is not None else None
    gen = torch.Generator().manual_seed(seed)
    nan = float("nan")
    rows: list[dict] = []
    limit = None
    diverged_at = None
    for k in range(steps + 1):
        check_stop(should_stop, "the descent")
        loss_t = fn(p)
        (g,) = torch.autograd.grad(loss_t, p)
        loss, gnorm = loss_t.item(), g.norm().item()
        point = p.detach().numpy().copy()
        row = dict(step=k, loss=loss, grad_norm=gnorm, lr=float(opt.param_groups[0]["lr"]))
        if c is not None:
            row["distance"] = float(np.linalg.norm(point - c.numpy()))
        if two_d:
            row.update(x=float(point[0]), y=float(point[1]))
        limit = divergence_limit(loss, loss_scale) if limit is None else limit
        finite = math.isfinite(loss) and math.isfinite(gnorm) and bool(np.isfinite(point).all())
        if not finite or np.abs(point).max() > PARAM_LIMIT or loss > limit:
            diverged_at = k
            rows.append(row)
            break
        if k == steps:
            rows.append(row)
            break
        new_point = kick(point, gnorm) if kick is not None else None
        seen = g
        if new_point is not None:
            with torch.no_grad():
                p.copy_(torch.as_tensor(new_point))
        else:
            if noise_sigma > 0:
                seen = g + noise_sigma * torch.randn(g.shape, generator=gen, dtype=g.dtype)
            p.grad = seen
            opt.step()
        if sched is not None:
            sched.step()
        row["kicked"] = new_point is not None
        if two_d:
            delta = np.abs(p.detach().numpy() - point)
            row.update(step_x=float(delta[0]), step_y=float(delta[1]))
            if new_point is None:
                seen_np = seen.detach().numpy()
                row.update(eff_lr_x=float(delta[0] / abs(seen_np[0])) if seen_np[0] != 0 else nan,
                           eff_lr_y=float(delta[1] / abs(seen_np[1])) if seen_np[1] != 0 else nan)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "kicked" not in frame:
        frame["kicked"] = False
    frame["kicked"] = frame["kicked"].fillna(False).astype(bool)
    if two_d:
        for col in ("step_x", "step_y", "eff_lr_x", "eff_lr_y"):
            if col not in frame:
                frame[col] = nan
    final = p.detach().numpy().copy()
    return Descent(frame, diverged_at, final, time.perf_counter() - t0)


def run_optimizer(
    surface: Surface,
    optimizer: str,
    start: Sequence[float],
    steps: int,
    lr: float,
    noise_sigma: float = 0.0,
    seed: int = 0,
    escape: EscapeRule | None = None,
    lr_scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **optimizer_kw,
) -> Trajectory:
    """Run a real torch.optim optimizer for `steps` updates on a surface, from `start` (through
    `descend`, the one descent loop).

    noise_sigma adds N(0, sigma^2) noise to each gradient coordinate before the update (the
    noise of a mini-batch gradient), drawn from a torch.Generator seeded with `seed`.
    escape (an EscapeRule) swaps in a negative-curvature step near saddles.
    lr_scheduler is a callable optimizer -> torch LR scheduler, stepped after every update,
    e.g. `lambda opt: schedules.to_torch(opt, "cosine", total_steps=200)`.
    optimizer_kw go to `make_optimizer` (momentum=0.5, betas=(0.9, 0.99), ...).
    The run stops early at divergence (see Trajectory).

    >>> t = run_optimizer(SURFACES["elongated"], "adam", start=(1.5, 10.0), steps=100, lr=0.1)
    >>> t.frame.shape[0], t.diverged_at
    (101, None)
    """
    if np.asarray(start).shape != (2,):
        raise ValueError(f"start must have 2 coordinates, got shape {np.asarray(start).shape}")

    kick = None
    if escape is not None:
        def kick(point: np.ndarray, gnorm: float):
            if gnorm >= escape.grad_tol:
                return None
            nc = negative_curvature_step(surface, point, scale=escape.scale)
            ok = nc.eig_min < -escape.min_curvature and nc.loss_after < nc.loss_before
            return nc.new_point if ok else None

    d = descend(surface.fn, start, optimizer, steps, lr, noise_sigma=noise_sigma, seed=seed, kick=kick,
                lr_scheduler=lr_scheduler, should_stop=should_stop, **optimizer_kw)
    frame = d.frame.rename(columns={"kicked": "curvature_step"})[
        ["step", "x", "y", "loss", "grad_norm", "lr", "step_x", "step_y", "eff_lr_x", "eff_lr_y", "curvature_step"]]
    name = OPTIMIZER_ALIASES.get(optimizer, optimizer)
    return Trajectory(name, OPTIMIZERS[name], frame, d.diverged_at, d.seconds)


def stack(trajectories: Sequence[Trajectory]) -> pd.DataFrame:
    """All trajectories' frames in one long DataFrame with optimizer and label columns (for
    one Altair chart with a colour per optimizer)."""
    return pd.concat(
        [t.frame.assign(optimizer=t.optimizer, label=t.label) for t in trajectories], ignore_index=True
    )


# ----------------------------------------------------------------------------------------------
# Second-order escape


@dataclass(frozen=True)
class CurvatureStep:
    """Result of `negative_curvature_step`. direction and new_point are numpy arrays of 2."""

    eig_min: float
    eig_max: float
    direction: np.ndarray  # unit eigenvector of eig_min, signed so that the step lowers the loss
    step_size: float  # length of the step taken (0 when none lowered the loss)
    new_point: np.ndarray
    loss_before: float
    loss_after: float
    hessian_evals: int  # exact 2x2 Hessians computed (always 1)
    loss_evals: int  # trial losses spent on the sign choice and backtracking
    seconds: float

    @property
    def has_negative_curvature(self) -> bool:
        """True when the point has a descent direction of negative curvature."""
        return self.eig_min < 0


def descend_along(
    fn: Callable[[torch.Tensor], torch.Tensor],
    point: torch.Tensor,
    direction: torch.Tensor,
    length: float,
    max_halvings: int = 20,
) -> tuple[float, torch.Tensor, float, torch.Tensor, int]:
    """Step of `length` along ±direction from point, keeping the sign with the lower loss and
    halving the length until the loss drops (at most max_halvings times).

    Works for any flat parameter tensor (2-D surfaces and whole networks alike). Returns
    (step_size, new_point, loss_after, signed_direction, loss_evals); step_size is 0 and
    new_point is point when no trial lowered the loss (or length is 0).

    >>> f = lambda t: (1 - t[..., 0] * t[..., 1]) ** 2
    >>> v = torch.tensor([1.0, 1.0], dtype=torch.float64) / 2 ** 0.5
    >>> descend_along(f, torch.zeros(2, dtype=torch.float64), v, 1.0)[2]   # doctest: +ELLIPSIS
    0.25...
    """
    loss_before = float(fn(point))
    n_evals = 0
    if length > 0:
        for _ in range(max_halvings + 1):
            trials = [(s * direction, float(fn(point + length * s * direction))) for s in (1.0, -1.0)]
            n_evals += 2
            d, trial_loss = min(trials, key=lambda t: t[1])
            # a decrease at rounding level is no escape (e.g. the lecture saddle's L = (1 - 2)^2)
            if trial_loss < loss_before - 1e-12 * (1.0 + abs(loss_before)):
                return length, point + length * d, trial_loss, d, n_evals
            length /= 2
    return 0.0, point, loss_before, direction, n_evals


def negative_curvature_step(
    surface: Surface, point: Sequence[float], scale: float = 0.5, max_halvings: int = 20
) -> CurvatureStep:
    """Step along the Hessian's most negative eigenvector, away from a saddle.

    Size rule: try length scale * |eig_min| (the cubic-regularized Newton step |λ_min|/ρ with
    ρ = 1/scale), in both signs of the eigenvector, and keep the sign with the lower loss; if
    neither lowers the loss, halve the length (at most max_halvings times). When no trial
    lowers the loss (no negative curvature, e.g. the monkey saddle's zero Hessian), the point
    stays put and step_size is 0.

    >>> r = negative_curvature_step(SURFACES["lecture"], (0.0, 0.0))
    >>> round(r.eig_min, 6), round(r.loss_after, 6)
    (-2.0, 0.25)
    """
    t0 = time.perf_counter()
    p = torch.as_tensor(np.asarray(point, dtype=np.float64))
    H = _hessian(surface.fn, p)
    evals, evecs = torch.linalg.eigh(H)  # ascending
    eig_min, eig_max = float(evals[0]), float(evals[1])
    v = evecs[:, 0]
    loss_before = float(surface.fn(p))

    length = scale * abs(eig_min) if eig_min < 0 else 0.0
    step_size, new_p, loss_after, d, n_evals = descend_along(surface.fn, p, v, length, max_halvings)
    if step_size == 0.0 and float(d[0]) < 0:
        d = -d  # a fixed sign convention when no step was taken
    return CurvatureStep(
        eig_min=eig_min,
        eig_max=eig_max,
        direction=d.numpy().copy(),
        step_size=step_size,
        new_point=new_p.numpy().copy(),
        loss_before=loss_before,
        loss_after=loss_after,
        hessian_evals=1,
        loss_evals=n_evals,
        seconds=time.perf_counter() - t0,
    )
