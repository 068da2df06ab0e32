"""Feature scaling on an exact quadratic (lecture 5.2): the error surface, raw vs standardized.

Linear regression y = w1*x1 + w2*x2 + b on two features of very different scale, fitted by plain
gradient descent from w = 0, b = 0 at a fraction of each side's largest stable rate 2 / lambda_max.
The loss is quadratic, so everything is exact: the Hessian is 2 A^T A / n (A = [x1, x2, 1]),
gradient descent has a closed form, and the number of steps to a target loss comes from the
eigen-decomposition, even when it is a billion steps. A rate above 2 / lambda_max diverges; the
step is found by the one divergence rule (core.rules.first_divergence) on the closed-form losses.

Deciding (`find`) and wording (`make_verdict`) are separate: the verdict reads only the findings.

>>> from core.lab import LabSetup
>>> res = run(None, LabSetup(), Config())
>>> res.findings.steps.winner, res.raw.condition > 1e6 > 10 > res.standardized.condition
('standardized', True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data import DataError, Dataset, load_builtin
from core.diagnoses import Progress, Verdict, no_progress
from core.findings import Comparison, compare
from core.diagnoses.words import comparison_sentence, divergence_sentence, num, times
from core.lab import LabSetup
from core.rules import Divergence, first_divergence

MAX_COUNTED_STEPS = 1e15  # the step count gives up here ("more than 1e15 steps")
DIVERGENCE_HORIZON = 100_000  # closed-form losses checked by the divergence rule (above 2/lambda_max)
MATTERS = 2.0  # a speed-up below this many times is reported, but is no reason to warn
PANELS = ("raw", "standardized")  # stable keys of the two sides
LABELS = {"raw": "raw inputs", "standardized": "standardized inputs"}
RESOLVED = 1e-12  # s_min / s_max below this is not resolved by float64's SVD: the ratio is reported as "over 1e12"
FLOAT64_CONDITION = 1 / float(np.finfo(np.float64).eps)  # ~4.5e15: lambda_min below the rounding of lambda_max


@dataclass(frozen=True)
class Config:
    """The error-surface experiment (linear regression on two features)."""

    source: str = "builtin"  # "builtin" = the scaled_regression set (setup's seed), "lab" = the lab dataset
    x1: str | None = None  # feature for w1; None = the pair whose spreads differ most
    x2: str | None = None  # feature for w2
    lr_fraction: float = 0.9  # GD rate as a fraction of 2 / lambda_max; above 1 it diverges
    target_fraction: float = 0.01  # target loss = L* + this share of (L0 - L*): 1% of the reducible loss left
    path_steps: int = 30  # consecutive GD steps drawn; later ones are log-spaced up to the target
    grid: int = 61  # heat-map cells per axis (odd, so the optimum sits on a cell centre)


@dataclass
class Panel:
    """One side of the comparison: raw or standardized inputs."""

    key: str  # "raw" or "standardized"
    hessian: np.ndarray  # (3, 3) exact Hessian 2 A^T A / n over (w1, w2, b)
    eigenvalues: np.ndarray  # its eigenvalues, ascending
    condition: float  # lambda_max / lambda_min (inf when the columns are collinear)
    stable_lr: float  # 2 / lambda_max: gradient descent diverges above it
    lr: float  # the rate used: lr_fraction * stable_lr
    optimum: np.ndarray  # (w1, w2, b) minimizing the loss
    steps_to_target: int | None  # exact GD steps to reach the target; None = never (or > 1e15)
    divergence: Divergence | None  # by core.rules on the closed-form losses (only above 2/lambda_max)
    valley_aspect: float  # sqrt of the (w1, w2) profile's condition number: valley length / width
    grid: pd.DataFrame  # w1, w2, loss (b at its best for each (w1, w2)), equal spans on both axes
    path: pd.DataFrame  # step, w1, w2, b, loss of the GD path (first steps, then log-spaced)
    curve: pd.DataFrame  # inputs, step, loss, excess: loss against step (log-spaced, step >= 1)

    @property
    def label(self) -> str:
        """What the page calls this side."""
        return LABELS[self.key]

    @property
    def diverged_at(self) -> int | None:
        """The divergent step, or None."""
        return None if self.divergence is None else self.divergence.step


@dataclass(frozen=True)
class Findings:
    """What the experiment found, before any wording."""

    condition: Comparison  # condition number, standardized (a) vs raw (b); lower is better; exact
    steps: Comparison  # GD steps to the target, standardized vs raw; fewer is better; exact
    divergences: dict  # panel key -> Divergence, for the sides that diverged
    lr_fraction: float


@dataclass
class Result:
    """Raw against standardized inputs on one linear regression."""

    x1: str
    x2: str
    target: str
    n_rows: int
    start_loss: float  # loss at w = 0, b = 0 (the same for both: the prediction is 0)
    best_loss: float  # L*, the same for both (standardizing is a change of coordinates)
    target_loss: float
    raw: Panel
    standardized: Panel
    findings: Findings
    verdict: Verdict
    notes: tuple[str, ...] = ()

    def panel(self, key: str) -> Panel:
        """The panel with stable key `key`."""
        return {"raw": self.raw, "standardized": self.standardized}[key]


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


def spread_ratio(M: np.ndarray) -> float:
    """s_max / s_min of M's singular values (inf when s_min is below RESOLVED x s_max).

    The SVD of M itself, not the eigenvalues of M^T M: each singular value is accurate to about
    float64's eps x s_max, so the ratio is exact to many digits up to 1 / RESOLVED, while M^T M's
    smallest eigenvalue is lost once the squared ratio passes 1 / eps (~4.5e15), as it does for a
    column in the hundreds of thousands next to one in thousandths.

    >>> spread_ratio(np.diag([1e6, 1e-3]))
    1000000000.0
    """
    sv = np.linalg.svd(np.asarray(M, dtype=np.float64), compute_uv=False)
    return float(sv[0] / sv[-1]) if sv[-1] > RESOLVED * sv[0] else math.inf


def condition_text(condition: float) -> str:
    """The page's words for a condition number: the number, marked when it is past what float64
    gradient descent can resolve (lambda_min below float64's rounding of lambda_max).

    >>> condition_text(1.04), condition_text(7.9e16), condition_text(math.inf)
    ('1.04', '7.9e+16 (beyond float64 precision)', 'over 1e+24 (beyond float64 precision)')
    """
    if not math.isfinite(condition):
        return f"over {1 / RESOLVED**2:.0e} (beyond float64 precision)"
    if condition > FLOAT64_CONDITION:
        return f"{num(condition)} (beyond float64 precision)"
    return num(condition)


def aspect_text(aspect: float) -> str:
    """The page's words for the valley's length over its width (inf: past what the SVD resolves).

    >>> aspect_text(2.5), aspect_text(math.inf)
    ('2.5', 'over 1e+12')
    """
    return num(aspect) if math.isfinite(aspect) else f"over {1 / RESOLVED:.0e}"


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


def _surface_data(data: Dataset, setup: LabSetup, config: Config):
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


def _panel(key: str, Z: np.ndarray, y: np.ndarray, config: Config, target_loss: float) -> Panel:
    A = design(Z)
    H = quadratic_hessian(A)
    lam = np.linalg.eigvalsh(H)
    condition = spread_ratio(A) ** 2  # cond(2 A^T A / n) = (s_max / s_min)^2 of A
    theta_star = np.linalg.lstsq(A, y, rcond=None)[0]
    best = float(quadratic_loss(A, y, theta_star))
    stable_lr = 2.0 / float(lam[-1])
    lr = config.lr_fraction * stable_lr
    theta0 = np.zeros(3)
    steps_to_target = steps_to_excess(H, theta_star, theta0, lr, target_loss - best)

    # Divergence by the one rule (core.rules), on the exact losses of the first steps; only a rate
    # above 2 / lambda_max can grow the loss at all.
    divergence = None
    if np.any(np.abs(1.0 - lr * lam) > 1.0):
        losses = excess_after(H, theta_star, theta0, lr, np.arange(DIVERGENCE_HORIZON + 1)) + best
        at = first_divergence(losses)
        if at is not None:
            divergence = Divergence(int(at), float(losses[0]), float(losses[at]))
    diverged_at = None if divergence is None else divergence.step

    # Path: the first steps one by one, then log-spaced up to the target (or the give-up point).
    last = steps_to_target if steps_to_target else (diverged_at or int(MAX_COUNTED_STEPS))
    last = max(last, config.path_steps)
    ks = np.unique(np.concatenate([np.arange(config.path_steps + 1),
                                   np.round(np.geomspace(max(config.path_steps, 1), last, 40))])).astype(np.int64)
    if diverged_at is not None:
        ks = ks[ks <= diverged_at]
    thetas = gd_path(H, theta_star, theta0, lr, ks)
    path = pd.DataFrame({"step": ks, "w1": thetas[:, 0], "w2": thetas[:, 1], "b": thetas[:, 2],
                         "loss": quadratic_loss(A, y, thetas)})
    curve_steps = np.unique(np.round(np.geomspace(1, max(last, 10), 120))).astype(np.int64)
    if diverged_at is not None:
        curve_steps = curve_steps[curve_steps <= diverged_at]
    excess = excess_after(H, theta_star, theta0, lr, curve_steps)
    curve = pd.DataFrame({"inputs": LABELS[key], "step": curve_steps, "loss": excess + best, "excess": excess})

    # The loss over (w1, w2) with b at its best for each pair: L* + (w - w*)^T S (w - w*), where
    # S is the covariance of the two columns (profiling b out centres the problem).
    S = np.cov(Z.T, bias=True)
    aspect = spread_ratio(Z - Z.mean(axis=0))  # sqrt of S's condition number, from the centred columns
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
    return Panel(key, H, lam, condition, stable_lr, lr, theta_star, steps_to_target, divergence,
                 aspect, grid, path, curve)


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for an impossible config."""
    if config.source not in ("builtin", "lab"):
        raise ValueError(f"The surface data must be 'builtin' or 'lab', not {config.source!r}.")
    if not 0 < config.lr_fraction <= 2:
        raise ValueError("The learning-rate fraction must be above 0 and at most 2.")
    if not 0 < config.target_fraction < 1:
        raise ValueError("The target share of the reducible loss must be between 0 and 1.")
    if not 3 <= config.grid <= 301 or not 0 <= config.path_steps <= 1000:
        raise ValueError("The grid needs 3 to 301 cells per axis and the path 0 to 1,000 steps.")


def run(data: Dataset | None, setup: LabSetup, config: Config = Config(),
        on_progress: Progress | None = None) -> Result:
    """Raw against standardized inputs for y = w1*x1 + w2*x2 + b, exactly (no training loop).

    `data` is the lab dataset (used when config.source is "lab"; may be None for "builtin").
    Both sides start at w = 0, b = 0, where the prediction is 0, so they share the start loss; they
    share the best loss too (standardizing only changes coordinates), hence one target loss.
    """
    on_progress = on_progress or no_progress
    validate(config)
    if config.source == "lab" and data is None:
        raise DataError("There is no lab dataset to take two columns from.")
    on_progress(0.1, "solving the two regressions")
    data, x1, x2, X, y, notes = _surface_data(data, setup, config)
    start_loss = float(np.mean(y**2))
    best = float(quadratic_loss(design(X), y, np.linalg.lstsq(design(X), y, rcond=None)[0]))
    target_loss = best + config.target_fraction * (start_loss - best)
    raw = _panel("raw", X, y, config, target_loss)
    on_progress(0.5, "standardized inputs")
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    std = _panel("standardized", Z, y, config, target_loss)
    findings = find(raw, std, config)
    on_progress(1.0, "done")
    return Result(x1, x2, data.target_name, data.n_rows, start_loss, best, target_loss, raw, std, findings,
                  make_verdict(findings, target_loss), notes)


def find(raw: Panel, std: Panel, config: Config) -> Findings:
    """Compare the two sides. Both figures are exact, so any difference counts (noise = 0); a side
    that never reaches the target (or diverges) has no step count and loses to one that does."""
    steps = lambda p: [] if p.steps_to_target is None or p.divergence else [float(p.steps_to_target)]  # noqa: E731
    return Findings(
        condition=compare("condition", "standardized", [std.condition], "raw", [raw.condition],
                          higher_is_better=False, noise=0.0),
        steps=compare("steps_to_target", "standardized", steps(std), "raw", steps(raw),
                      higher_is_better=False, noise=0.0),
        divergences={p.key: p.divergence for p in (raw, std) if p.divergence is not None},
        lr_fraction=config.lr_fraction,
    )


def make_verdict(f: Findings, target_loss: float) -> Verdict:
    """The verdict, worded from the findings only."""
    c = f.condition
    cond = (f"The condition number (λmax / λmin of the exact Hessian) is {condition_text(c.value('raw'))} for raw "
            f"inputs and {condition_text(c.value('standardized'))} for standardized ones.")
    if max(c.a_value, c.b_value) > FLOAT64_CONDITION:
        cond += (f" Past about {FLOAT64_CONDITION:.1e} (1 / float64's eps) λmin is below float64's rounding error "
                 "of λmax: the flattest direction is beyond float64 precision, and gradient descent at a stable "
                 "rate barely moves along it.")
    if f.divergences:
        said = " ".join(divergence_sentence(d, f"Gradient descent on {LABELS[k]}") for k, d in f.divergences.items())
        return Verdict("problem", f"At {f.lr_fraction:g} x 2/λmax: {said} {cond} No rate above 2/λmax "
                                  "is stable on a quadratic.",
                       "Keep the rate below 2 / λmax (a fraction below 1).")
    s = f.steps
    if s.n_a == 0 and s.n_b == 0:
        return Verdict("warning", f"Neither side reaches the target loss ({num(target_loss)}) within "
                                  f"{MAX_COUNTED_STEPS:.0e} steps at {f.lr_fraction:g} x 2/λmax. {cond}",
                       "Use a learning-rate fraction closer to 0.9, or a less demanding target.")
    said = comparison_sentence(s, LABELS, f"reached the target loss ({num(target_loss)})", "sooner",
                               "steps to the target", unit_plural="steps")
    text = f"{cond} At {f.lr_fraction:g} x each one's 2/λmax, {said}"
    if s.winner == "standardized":
        lo, hi = s.value("standardized"), s.value("raw")
        if not math.isfinite(hi) or hi >= MATTERS * lo:
            return Verdict("warning", text, "Standardize the inputs (fit the scaler on the training split).")
        return Verdict("good", f"{text} The speed-up is under {MATTERS:g}x ({times(hi, lo)}): these two columns "
                               "already share a scale, so scaling matters little here.")
    if s.winner == "raw":
        why = ("Standardizing lowered the condition number, which bounds the worst case, but how many steps a "
               "start needs also depends on where it lies in the valley." if f.condition.winner == "standardized"
               else "These two columns were already as well conditioned as standardizing makes them.")
        return Verdict("info", f"{text} {why}")
    return Verdict("good", f"{text} These two columns already share a scale, so scaling matters little here.")
