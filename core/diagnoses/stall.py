"""Gradient stall: where did the loss stop falling, and why? (lecture 2.1 and section 3.1)

The lecture gives two answers to "my loss stopped going down":
- the gradient is ~0: the parameters sit near a critical point, and the Hessian says which kind
  (saddle point, local minimum, flat);
- the gradient is not ~0 but the loss does not fall: the step is too large for the curvature and
  bounces across a valley (successive gradients point in opposite directions).
A third case the stall rule also catches: the gradient is not ~0 and successive gradients point the
same way, so every step goes downhill but each is too short (the learning rate is too small): the
loss still falls, only slower than the stall threshold.

Every concept comes from core.rules: a stall is `stall_spans` (a falling loss is never a stall),
"gradient ~0" is `critical_test` (on the problem's own scale, from curvature), and without
curvature (a training log) a stall's kind comes from `gradient_collapsed` and `oscillating`;
`stall_kind` decides every stall's kind, with or without curvature.

- `detect_stalls(steps)` needs only a per-step record (step, loss, grad_norm[, grad_cos]), so the
  training-log page uses the same detector.
- `run` trains the lab model (or the built-in stall scenario) through core.runs, finds the stalls,
  and judges the longest few and the end point with core.curvature at a parameter snapshot:
  `critical_test` decides "critical or not", the Hessian's signs decide which kind.
- `toy_point` does the same on the lecture's one-sample network y = w1*w2*x.

Decide first (the `Stall` and `Point` findings), word second (`make_verdict`, `point_sentence`).

>>> from core.lab import LabSetup
>>> from core.data import load_builtin
>>> res = run(load_builtin("moons"), LabSetup(), Config(steps=300, window=50))   # doctest: +SKIP
>>> res.stalls[["start", "end", "kind"]]                                          # doctest: +SKIP
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from core.curvature import EXACT_MAX_PARAMS, classify_point, gradient, hessian_eigenvalues, model_loss
from core.data import Dataset, load_builtin
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses.words import capital, divergence_sentence, num, pct, step_range
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp, n_params, toy_loss
from core.rules import (
    CRITICAL_GAIN, SMALL_STEP_COSINE, CriticalTest, Divergence, critical_test, gradient_collapsed, gradient_level, oscillating, smooth,
    stall_kind, stall_spans,
)
from core.runs import on_device, prepare_split, run_model, subsample_rows
from core.train import OPTIMIZERS, TrainConfig, make_loss, set_flat_params, validate_config

# Stall kinds (stable keys; the training-log page shares them).
CRITICAL = "critical point"  # the gradient is ~0 (critical_test; in a log: gradient_collapsed)
OSCILLATION = "oscillation"  # the gradient is not ~0 but the loss does not fall
SMALL_STEPS = "small steps"  # the gradient is not ~0, successive gradients aligned: the rate is too small
UNCLEAR = "unclear"  # log rules only: the gradient neither collapsed nor bounces
STALL_KINDS = (CRITICAL, OSCILLATION, SMALL_STEPS, UNCLEAR)
NOT_CRITICAL_KINDS = (OSCILLATION, SMALL_STEPS)  # stalls with a gradient that is not ~0
# Point kinds beyond core.curvature.KINDS.
NOT_CRITICAL = "not critical"
# A run with no stall whose end is not critical still falls "slowly because the steps are small"
# when one safe gradient step (rate 1/max|lambda|, core.rules.critical_test's gain) is worth at
# least SLOW_SHARE of everything the run's steps gained AND at least SLOW_STEPS of its average
# steps: at a good rate a step gains about what the safe step does, so a safe step worth 10 or
# more average steps says the rate is roughly 10x or more below the stable one (the "try 10x" of
# the advice), and one worth a tenth of the whole run says the run is far from done. The second
# condition keeps a short run (under 100 steps) from being called slow for a safe step worth a
# couple of its steps. Or when successive gradients at the end are aligned (SMALL_STEP_COSINE).
SLOW_SHARE = 0.1
SLOW_STEPS = 10
NOT_CLASSIFIED = "not classified"

MAX_CURVE_ROWS = 4000  # Altair refuses to export a chart whose data has more than 5,000 rows
# Bounded work (issue 19): every widget combination finishes within about 2 minutes on 2 cores.
# One full-batch update of a tanh MLP costs about 1.5 ns per (row x parameter) on one thread
# (digits, 4 x 64 units: 37 ms for 1,437 rows x 17,290 parameters), so 4e10 is about a minute.
MAX_TRAIN_WORK = 4e10  # steps x rows per step x parameters
# One Hessian-vector product in float64 costs about 1.6 ns per (row x parameter), and the exact
# spectrum takes one per parameter: 3e10 row x parameter^2 is under a minute, over all points.
MAX_SPECTRUM_WORK = 3e10
SNAPSHOT_FLOATS = 4_000_000  # parameter snapshots kept during training (32 MB of float64)
CURVATURE_STOP_EVERY = 0.3  # seconds between progress calls inside a curvature computation

# core.curvature is gaining a stop callback and a relative eigenvalue tolerance; use them where present.
# (LAPACK runs under threadpool_limits(1): on 2 busy cores a 2-thread OpenBLAS eigvalsh of a
# 354 x 354 Hessian took 0.77 s against 0.02 s on one thread.)
_CLASSIFY_ARGS = set(inspect.signature(classify_point).parameters)
_SPECTRUM_ARGS = set(inspect.signature(hessian_eigenvalues).parameters)


@dataclass(frozen=True)
class Scenario:
    """A built-in run that reliably sits on a saddle plateau, then drops, then settles.

    A deep narrow tanh chain (2 -> 1 -> 1 -> 1) with a tiny initial scale starts next to the
    origin, a saddle of the loss: every weight is small, so every gradient is a product of small
    numbers and plain gradient descent crawls for hundreds of steps before the loss drops. The
    learning rate decays (cosine) so the end of the run settles instead of bouncing at the edge of
    stability (with a constant rate the sharpness grows until it reaches 2 / lr). The seed is
    fixed: how long the plateau lasts depends on the initial weights, and this one shows it well.
    """

    dataset: str = "scaled_regression"  # 2 features, a linear target plus noise (regression)
    hidden: tuple[int, ...] = (1, 1)  # one unit per hidden layer: narrow and deep for its size
    activation: str = "tanh"
    init_scale: float = 0.05  # times PyTorch's default init: starts right next to the saddle
    optimizer: str = "sgd"  # full-batch gradient descent: no noise, no momentum to escape with
    lr: float = 0.15
    steps: int = 1500
    batch_size: int | None = None  # full batch
    schedule: str = "cosine"  # lr falls from 0.15 to 0 over the run
    seed: int = 0

    def describe(self) -> str:
        """One line for the page."""
        shape = "-".join(str(h) for h in self.hidden)
        return (f"{self.dataset.replace('_', ' ')} (regression) · MLP {shape} {self.activation}, "
                f"init x{self.init_scale:g} · full-batch GD, lr {self.lr:g} with a {self.schedule} "
                f"decay · {self.steps:,} steps · seed {self.seed}")


SCENARIO = Scenario()


@dataclass(frozen=True)
class Config:
    """What the page asks for. Frozen and hashable: it keys the cache."""

    scenario: bool = False  # train the built-in stall scenario instead of the lab model and data
    optimizer: str = "sgd"  # core.train.OPTIMIZERS; plain SGD stalls where the lecture says it does
    lr: float = 0.5  # learning rate
    steps: int = 1000  # optimizer updates
    batch_size: int | None = None  # rows per update; None = full batch (clean gradient norms)
    window: int = 100  # steps per sliding window; a stall lasts at least this long
    rel_eps: float = 0.01  # a window is flat when the loss falls by less than this fraction of it
    max_train_rows: int = 2000  # train on at most this many rows of the training split (issue 16)
    curvature_rows: int = 1000  # the Hessian is computed on at most this many of those rows
    max_classified: int = 3  # stalls judged with the Hessian, longest first (each costs HVPs)
    spectrum: bool = True  # full eigenvalue spectrum when the model has <= EXACT_MAX_PARAMS params
    escape_points: int = 41  # points t of the 1-D escape plot L(theta + t u)


# --------------------------------------------------------------------------- findings
@dataclass(frozen=True)
class Point:
    """One parameter vector judged: the critical test (gradient ~0 on the problem's scale) and
    the Hessian's signs. `kind` is a core.curvature kind when the test passes, else NOT_CRITICAL."""

    point: str  # stable key: "S1", "S2", ... (a stall's snapshot) or "end"
    label: str  # "S1 (step 450)", "end (step 1000)"
    step: int
    loss: float  # training loss (the rows training used)
    test: CriticalTest  # core.rules.critical_test with the start loss as the scale
    kind: str  # "saddle point", "local minimum", ... or NOT_CRITICAL
    hessian_kind: str  # what the eigenvalue signs alone say (classify_point with its gradient test off)
    eig_min: float
    eig_max: float
    tolerance: float  # eigenvalues within +-tolerance count as zero
    neg_share: float  # share of eigenvalues below -tolerance (NaN without the spectrum)
    min_ratio: float  # share above +tolerance: the lecture's "minimum ratio" (NaN without the spectrum)
    n_eigenvalues: int
    n_hvp: int


@dataclass(frozen=True)
class Stall:
    """One stall: its span, why the loss was flat (kind) and on what evidence."""

    stall: str  # stable key "S1", "S2", ...
    start: int  # first step of the span
    end: int  # last step of the span
    kind: str  # CRITICAL, OSCILLATION, SMALL_STEPS or UNCLEAR
    evidence: str  # "curvature" (critical_test at a snapshot) or "log" (gradient_collapsed / oscillating)
    loss_start: float  # smoothed loss at the start and end of the span
    loss_end: float
    grad_median: float  # median per-step gradient norm inside the span
    grad_early: float  # the run's gradient level (core.rules.gradient_level: the log rules' yardstick)
    cos_mean: float  # mean cosine of successive gradients inside the span (NaN if not recorded)
    point: Point | None = None  # the snapshot judged with curvature, if any

    @property
    def rel_drop(self) -> float:
        """Relative fall of the smoothed loss over the span (stall_spans keeps it small)."""
        return (self.loss_start - self.loss_end) / max(abs(self.loss_start), 1e-12)


@dataclass(frozen=True)
class Findings:
    """Everything the verdict is worded from."""

    divergence: Divergence | None
    start_loss: float  # full training loss before the first update (the critical test's scale)
    final_loss: float  # full training loss after the last update
    stalls: tuple[Stall, ...]
    end: Point | None  # the end point judged with curvature (None if diverged or not computed)
    window: int
    rel_eps: float
    minibatch: bool
    last_step: int
    end_cos: float = float("nan")  # mean cosine of successive gradients over the last window (NaN if not recorded)


@dataclass(eq=False)
class Result:
    """Everything the page shows: numpy, floats and DataFrames only (pickled by the cache)."""

    steps: pd.DataFrame  # step, epoch, loss, grad_norm, lr, grad_cos, smooth_loss
    curve: pd.DataFrame  # `steps` thinned to at most MAX_CURVE_ROWS rows, for charts
    stalls: pd.DataFrame  # one row per stall, STALL_COLUMNS
    points: pd.DataFrame  # one row per judged point, POINT_COLUMNS
    spectra: pd.DataFrame  # point, eigenvalue (exact spectra; empty when not computed)
    histogram: pd.DataFrame  # point, bin_start, bin_end, count, sign
    escape: pd.DataFrame  # point, t, loss, quadratic (loss along the escape direction)
    findings: Findings
    verdict: Verdict
    n_params: int
    task: str
    model: str  # the model's one-line description
    data_name: str
    train_rows: int  # rows trained on
    split_rows: int  # rows in the training split before the cap
    curvature_rows: int  # rows the Hessian was computed on
    diverged_at: int | None
    divergence: str | None  # the one divergence sentence, or None
    start_loss: float
    final_loss: float
    scenario: bool
    notes: list[str] = field(default_factory=list)


DETECT_COLUMNS = ["stall", "start", "end", "steps", "kind", "evidence", "loss_start", "loss_end", "rel_drop",
                  "grad_median", "grad_early", "grad_ratio", "cos_mean"]
STALL_COLUMNS = DETECT_COLUMNS + ["point_kind", "eig_min", "eig_max", "gain_share"]
POINT_COLUMNS = ["point", "label", "step", "loss", "grad_norm", "curvature", "safe_step_gain", "gain_share",
                 "critical", "kind", "hessian_kind", "eig_min", "eig_max", "tolerance", "neg_share", "min_ratio",
                 "n_eigenvalues", "n_hvp", "sentence"]


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence when the config cannot run."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.steps < 2:
        raise ValueError("Train for at least two steps.")
    if config.steps > 20_000:
        raise ValueError("At most 20,000 steps: the page records and scans every one.")
    if config.window < 2:
        raise ValueError("The window must span at least 2 steps.")
    if config.window >= config.steps:
        raise ValueError(f"The window ({config.window} steps) must be shorter than the run ({config.steps} steps).")
    if config.window * 200 < config.steps:
        raise ValueError("The window must be at least 1/200 of the run (snapshots are taken every half window).")
    if not 0 < config.rel_eps < 1:
        raise ValueError("The relative threshold must be between 0 and 1.")
    if config.max_train_rows < 20:
        raise ValueError("Train on at least 20 rows.")
    if config.curvature_rows < 20:
        raise ValueError("Compute the curvature on at least 20 rows.")
    if config.max_classified < 0:
        raise ValueError("The number of classified stalls cannot be negative.")
    if config.escape_points < 3:
        raise ValueError("The escape plot needs at least 3 points.")


def check_work(steps: int, rows_per_step: int, params: int) -> None:
    """Refuse, with a plain sentence, a run whose training would take more than about a minute."""
    work = steps * rows_per_step * params
    if work > MAX_TRAIN_WORK:
        raise ValueError(
            f"This run is too large for the page: {steps:,} steps x {rows_per_step:,} rows per step x "
            f"{params:,} parameters is {work:.2g} row-parameter updates, above the bound of "
            f"{MAX_TRAIN_WORK:.0e} (about a minute on 2 cores). Lower the steps, the training rows, the batch "
            "size or the model size.")


# --------------------------------------------------------------------------- detection
def _window_rows(step: np.ndarray, window: int) -> int:
    """A window of `window` steps in records (logs may record every k-th step)."""
    spacing = float(np.median(np.diff(step))) if len(step) > 1 else 1.0
    return max(2, int(round(window / max(spacing, 1e-12))))


def detect_stalls(steps: pd.DataFrame, window: int = 100, rel_eps: float = 0.01) -> pd.DataFrame:
    """Stalls of a run from its per-step record alone, with their kind by the log rules.

    `steps` needs columns step and loss, and uses grad_norm and grad_cos when present (as
    core.train.History.steps or a core.runlog log). `window` is in steps (converted to records by
    the median step spacing). A stall is core.rules.stall_spans of the loss smoothed over a tenth
    of a window: a stretch that fell by less than `rel_eps` per window (a falling loss is never a
    stall). Its kind: CRITICAL when the median gradient norm inside it collapsed
    (core.rules.stall_kind: gradient_collapsed against core.rules.gradient_level), else SMALL_STEPS
    when successive gradients point the same way, OSCILLATION when they point against each other
    (core.rules.oscillating), else UNCLEAR.
    Returns one row per stall with DETECT_COLUMNS (start and end are `step` values).

    >>> t = np.arange(400)
    >>> log = pd.DataFrame({"step": t, "loss": np.r_[np.linspace(1, 0.5, 100), np.full(300, 0.5)],
    ...                     "grad_norm": np.r_[np.ones(100), np.full(300, 1e-3)]})
    >>> detect_stalls(log, window=50)[["start", "end", "kind"]].values.tolist()
    [[101, 399, 'critical point']]
    """
    frame = steps[np.isfinite(steps["loss"].to_numpy(dtype=float))]
    stalls = _detect(frame, window, rel_eps)
    return pd.DataFrame([_stall_row(s) for s in stalls], columns=DETECT_COLUMNS)


def _detect(frame: pd.DataFrame, window: int, rel_eps: float) -> list[Stall]:
    if len(frame) < 3:
        return []
    step = frame["step"].to_numpy()
    loss = frame["loss"].to_numpy(dtype=float)
    nan = np.full(len(frame), np.nan)
    grads = frame["grad_norm"].to_numpy(dtype=float) if "grad_norm" in frame else nan
    cos = frame["grad_cos"].to_numpy(dtype=float) if "grad_cos" in frame else nan
    rows = _window_rows(step, window)
    s = smooth(loss, max(1, rows // 10))
    early = gradient_level(grads, rows, loss=loss)  # the log rules' yardstick, blow-up records left out
    spans = stall_spans(s, rows, rel_eps, raw=loss)
    out = []
    for i, (a, b) in enumerate(spans, start=1):
        g = _median(grads[a: b + 1])
        c = cos[a: b + 1]
        c = float(c[np.isfinite(c)].mean()) if np.isfinite(c).any() else float("nan")
        kind = stall_kind(g, early, c)
        out.append(Stall(f"S{i}", int(step[a]), int(step[b]), kind, "log", float(s[a]), float(s[b]), g, early, c))
    return out


def _end_cosine(frame: pd.DataFrame, window: int) -> float:
    """Mean cosine of successive gradients over the run's last `window` steps (NaN if not recorded)."""
    if "grad_cos" not in frame or not len(frame):
        return float("nan")
    last = frame[frame["step"] > frame["step"].iloc[-1] - window]["grad_cos"].to_numpy(dtype=float)
    last = last[np.isfinite(last)]
    return float(last.mean()) if len(last) else float("nan")


def _median(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else float("nan")


def _stall_row(s: Stall) -> dict:
    p = s.point
    ratio = s.grad_median / s.grad_early if s.grad_early > 0 else float("nan")
    return dict(stall=s.stall, start=s.start, end=s.end, steps=s.end - s.start, kind=s.kind, evidence=s.evidence,
                loss_start=s.loss_start, loss_end=s.loss_end, rel_drop=s.rel_drop, grad_median=s.grad_median,
                grad_early=s.grad_early, grad_ratio=ratio, cos_mean=s.cos_mean,
                point_kind=p.kind if p else NOT_CLASSIFIED,
                eig_min=p.eig_min if p else float("nan"), eig_max=p.eig_max if p else float("nan"),
                gain_share=p.test.gain_share if p else float("nan"))


def _point_row(p: Point) -> dict:
    t = p.test
    return dict(point=p.point, label=p.label, step=p.step, loss=p.loss, grad_norm=t.grad_norm, curvature=t.curvature,
                safe_step_gain=t.safe_step_gain, gain_share=t.gain_share, critical=t.critical, kind=p.kind,
                hessian_kind=p.hessian_kind, eig_min=p.eig_min, eig_max=p.eig_max, tolerance=p.tolerance,
                neg_share=p.neg_share, min_ratio=p.min_ratio, n_eigenvalues=p.n_eigenvalues, n_hvp=p.n_hvp,
                sentence=point_sentence(p))


def display_stalls(stalls: pd.DataFrame) -> pd.DataFrame:
    """The stall table as text for the page: numbers to 3 significant digits, '—' where a stall
    was not judged with the Hessian (never 'None' or 'nan')."""
    def fmt(x) -> str:
        return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else num(float(x))

    out = pd.DataFrame({
        "stall": stalls["stall"], "steps": [step_range(a, b).removeprefix("steps ") for a, b in
                                            zip(stalls["start"], stalls["end"])],
        "kind": stalls["kind"], "judged by": stalls["evidence"].map({"curvature": "Hessian", "log": "log rules"}),
        "loss start → end": [f"{num(a, 4)} → {num(b, 4)}" for a, b in zip(stalls["loss_start"], stalls["loss_end"])],
        "fall (− = rise)": [pct(x) for x in stalls["rel_drop"]],
        "median |g|": [fmt(x) for x in stalls["grad_median"]],
        "|g| / the run's |g| level": [fmt(x) for x in stalls["grad_ratio"]],
        "gradient cosine": [fmt(x) for x in stalls["cos_mean"]],
        "Hessian says": stalls["point_kind"],
        "λ_min": [fmt(x) for x in stalls["eig_min"]], "λ_max": [fmt(x) for x in stalls["eig_max"]],
        "safe-step gain / start loss": [pct(x) if math.isfinite(x) else "—" for x in stalls["gain_share"]],
    })
    return out


def display_points(points: pd.DataFrame) -> pd.DataFrame:
    """The judged points as text for the page ('—' where a number was not computed)."""
    def fmt(x) -> str:
        return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else num(float(x))

    return pd.DataFrame({
        "point": points["label"], "loss": [num(x, 4) for x in points["loss"]],
        "|g|": [fmt(x) for x in points["grad_norm"]], "largest |λ|": [fmt(x) for x in points["curvature"]],
        "safe-step gain |g|²/(2·largest |λ|)": [fmt(x) for x in points["safe_step_gain"]],
        "gain / start loss": [pct(x) for x in points["gain_share"]],
        "gradient ~0?": ["yes" if c else "no" for c in points["critical"]],
        "kind": points["kind"], "signs of λ alone say": points["hessian_kind"],
        "λ_min": [fmt(x) for x in points["eig_min"]], "λ_max": [fmt(x) for x in points["eig_max"]],
        "minimum ratio": [fmt(x) for x in points["min_ratio"]],
        "negative share": [fmt(x) for x in points["neg_share"]],
    })


# --------------------------------------------------------------------------- curvature at one point
def _stopper(on_progress: Progress, fraction: float, message: str):
    """A should_stop callback for core.curvature: it calls on_progress (where a Stop lands under
    Streamlit) at most every CURVATURE_STOP_EVERY seconds and never asks to stop by itself."""
    import time

    last = [0.0]

    def should_stop() -> bool:
        now = time.perf_counter()
        if now - last[0] >= CURVATURE_STOP_EVERY:
            last[0] = now
            on_progress(fraction, message)
        return False

    return should_stop


def judge_point(f, theta: torch.Tensor, grad_norm: float, loss: float, loss_scale: float, point: str, label: str,
                step: int, spectrum: bool, should_stop=None) -> tuple[Point, np.ndarray | None, np.ndarray | None]:
    """Judge one point: core.rules.critical_test decides "critical or not" from `grad_norm`
    (the training loss's gradient) and the Hessian of `f`; the Hessian's signs decide the kind.

    classify_point runs with its own gradient test switched off (grad_tol = inf): its default
    (|g| <= 1e-3 (1 + loss)) is a different rule, and "gradient ~0" has one rule, critical_test.
    Returns the Point, the exact spectrum (or None) and the escape direction (a unit vector, only
    at a critical point with a clearly negative eigenvalue).
    """
    kwargs = {}
    if should_stop is not None and "should_stop" in _CLASSIFY_ARGS:
        kwargs["should_stop"] = should_stop
    if "rtol" in _CLASSIFY_ARGS:  # the faster Lanczos path, accurate to 1e-4 of each end
        kwargs["rtol"] = 1e-4
    with threadpool_limits(limits=1, user_api="blas"):
        cp = classify_point(f, theta, grad_tol=math.inf, **kwargs)
    test = critical_test(grad_norm, cp.eig_min, cp.eig_max, loss_scale)
    kind = cp.kind if test.critical else NOT_CRITICAL
    eigs = None
    n_hvp = cp.n_hvp
    neg = ratio = float("nan")
    if spectrum:
        skw = {"should_stop": should_stop} if should_stop is not None and "should_stop" in _SPECTRUM_ARGS else {}
        with threadpool_limits(limits=1, user_api="blas"):
            eigs = hessian_eigenvalues(f, theta, **skw)
        neg, ratio = float(np.mean(eigs < -cp.tolerance)), float(np.mean(eigs > cp.tolerance))
        n_hvp += len(eigs)
    escape = cp.escape_direction if test.critical else None
    p = Point(point, label, step, loss, test, kind, cp.kind, cp.eig_min, cp.eig_max, cp.tolerance, neg, ratio,
              0 if eigs is None else len(eigs), n_hvp)
    return p, eigs, escape


def escape_profile(f, theta: torch.Tensor, direction: np.ndarray, eig_min: float, n: int = 41,
                   target_fall: float = 0.05) -> pd.DataFrame:
    """The loss along a line, L(theta + t u) for t in [-a, a], and its quadratic model.

    `a` is chosen so the quadratic model L0 + g.u t + eig_min t^2 / 2 predicts a fall of
    `target_fall` x |L0| at the ends (clipped to [1e-3, 5]): far enough to see the fall, near
    enough for the second-order picture to hold.
    """
    u = torch.as_tensor(direction, dtype=theta.dtype, device=theta.device)
    with torch.enable_grad():
        x = theta.clone().requires_grad_(True)
        value = f(x)
        g = torch.autograd.grad(value, x)[0]
    L0, slope = float(value.detach()), float(g @ u)
    a = math.sqrt(2 * target_fall * max(abs(L0), 1e-3) / max(abs(eig_min), 1e-12))
    a = min(max(a, 1e-3), 5.0)
    ts = np.linspace(-a, a, n)
    with torch.no_grad():
        losses = [float(f(theta + float(t) * u)) for t in ts]
    return pd.DataFrame({"t": ts, "loss": losses, "quadratic": L0 + slope * ts + 0.5 * eig_min * ts**2})


def spectrum_histogram(eigs: np.ndarray, tolerance: float, bins_per_side: int = 12) -> pd.DataFrame:
    """Histogram of a spectrum on log-spaced bins: negative, zero (|eig| <= tolerance), positive.

    Network spectra pile up near zero with a few large outliers, so equal-width bins put nearly
    everything in one bar. Here each side gets `bins_per_side` bins spaced evenly in log|eig| from
    the tolerance to the largest magnitude, and the zero band is one bin: a bin's sign is exact,
    and the counts are those classify_point uses (eigenvalues within +-tolerance count as zero).
    Chart it on a symlog axis.
    """
    eigs = np.asarray(eigs, dtype=float)
    tol = max(float(tolerance), 1e-300)
    rows = []
    neg, pos = -eigs[eigs < -tol], eigs[eigs > tol]
    if len(neg):
        edges = np.geomspace(tol, neg.max() * (1 + 1e-9), bins_per_side + 1)
        counts, _ = np.histogram(neg, edges)
        rows += [(-hi, -lo, c, "negative") for lo, hi, c in zip(edges[:-1], edges[1:], counts)][::-1]
    rows.append((-tol, tol, int(np.sum(np.abs(eigs) <= tol)), "zero"))
    if len(pos):
        edges = np.geomspace(tol, pos.max() * (1 + 1e-9), bins_per_side + 1)
        counts, _ = np.histogram(pos, edges)
        rows += [(lo, hi, c, "positive") for lo, hi, c in zip(edges[:-1], edges[1:], counts)]
    return pd.DataFrame(rows, columns=["bin_start", "bin_end", "count", "sign"]).astype({"count": int})


def thin(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """Every k-th row (and the last) so that at most about `max_rows` remain.

    >>> len(thin(pd.DataFrame({"a": range(10_000)}), 4000))
    3334
    """
    stride = max(1, math.ceil(len(frame) / max_rows))
    if stride == 1:
        return frame
    keep = np.zeros(len(frame), dtype=bool)
    keep[::stride] = True
    keep[-1] = True
    return frame[keep].reset_index(drop=True)


def _pick_snapshot(snapshots: dict[int, np.ndarray], start: int, end: int) -> int | None:
    inside = [s for s in snapshots if start <= s <= end]
    middle = (start + end) / 2
    return min(inside, key=lambda s: abs(s - middle)) if inside else None


# --------------------------------------------------------------------------- run
def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train, find the stalls, judge the longest few and the end with curvature, write a verdict.

    With `config.scenario` the lab data, model and optimizer are replaced by SCENARIO. Training
    uses at most `config.max_train_rows` rows of the training split (a random, stratified draw) and
    the Hessian at most `config.curvature_rows` of those; the notes say so when it matters.
    """
    validate(config)
    on_progress = on_progress or no_progress
    notes: list[str] = []
    if config.scenario:
        sc = SCENARIO
        data = load_builtin(sc.dataset, seed=sc.seed)
        spec = ModelSpec(hidden=sc.hidden, activation=sc.activation, init_scale=sc.init_scale)
        setup = LabSetup(model=spec, seed=sc.seed, device=setup.device)
        train_cfg = TrainConfig(optimizer=sc.optimizer, lr=sc.lr, max_steps=sc.steps, batch_size=sc.batch_size,
                                schedule=sc.schedule, seed=sc.seed)
    else:
        spec = setup.model
        train_cfg = TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=config.steps,
                                batch_size=config.batch_size, seed=setup.seed)
    window, total = config.window, train_cfg.max_steps
    if window >= total:
        raise ValueError(f"The window ({window} steps) must be shorter than the run ({total} steps).")

    split = prepare_split(data, setup, train_cfg.scaler, train_cfg.val_fraction)
    split_rows = len(split.X_train)
    if split_rows > config.max_train_rows:
        X, y = subsample_rows(split.X_train, split.y_train, config.max_train_rows, split.task, setup.seed)
        split = replace(split, X_train=X, y_train=y)
        notes.append(f"Trained on {config.max_train_rows:,} of the {split_rows:,} training rows (a random draw) so "
                     "the page stays fast; raise 'training rows' to use more.")
    train_rows = len(split.X_train)
    validate_config(train_cfg, train_rows)  # before training: a too-large batch fails fast
    n = n_params(build_mlp(spec, split.n_features, split.n_outputs))
    batch = train_rows if train_cfg.batch_size is None else min(train_cfg.batch_size, train_rows)
    check_work(total, batch, n)
    # A stall lasts at least one window, so a snapshot every half window lands inside each one;
    # large models keep fewer (at most SNAPSHOT_FLOATS numbers in all), still one per window.
    every = max(1, window // 2, math.ceil(total * n / SNAPSHOT_FLOATS))
    train_cfg = replace(train_cfg, snapshot_every=min(every, window), record_grad_cosine=True, eval_every=total)

    rec = run_model(split, setup, train_cfg, key="stall", model_spec=spec,
                    on_progress=sub_progress(on_progress, 0.0, 0.7), message="training")
    hist, model = rec.history, rec.model
    steps = hist.steps.copy()
    finite = steps[np.isfinite(steps["loss"]) & np.isfinite(steps["grad_norm"])]
    if hist.diverged_at is not None:
        finite = finite[finite["step"] < hist.diverged_at]
    stalls = _detect(finite, window, config.rel_eps)
    steps["smooth_loss"] = np.nan
    steps.loc[finite.index, "smooth_loss"] = smooth(finite["loss"].to_numpy(dtype=float), max(1, window // 10))

    # Curvature: the longest few stalls (at a snapshot near their middle), then the end.
    loss_fn = make_loss(train_cfg.loss, split.task, split.n_classes)
    X_full, y_full = on_device(split.X_train, model), on_device(split.y_train, model)
    Xc, yc = split.X_train, split.y_train
    if len(Xc) > config.curvature_rows:
        Xc, yc = subsample_rows(Xc, yc, config.curvature_rows, split.task, setup.seed)
        notes.append(f"The Hessian is computed on {config.curvature_rows:,} of the {train_rows:,} training rows "
                     "(a random draw); the gradient norm and the loss on all of them.")
    Xc, yc = on_device(Xc, model), on_device(yc, model)
    spectrum_budget = MAX_SPECTRUM_WORK if config.spectrum and n <= EXACT_MAX_PARAMS else 0.0
    if config.spectrum and n > EXACT_MAX_PARAMS:
        notes.append(f"The model has {n:,} parameters, more than {EXACT_MAX_PARAMS:,}: no full spectrum "
                     "(the extreme eigenvalues come from Lanczos iterations).")
    chosen = sorted(stalls, key=lambda s: s.end - s.start, reverse=True)[: config.max_classified]
    if len(stalls) > len(chosen):
        notes.append(f"{len(stalls)} stalls; the {len(chosen)} longest were judged with the Hessian, the others "
                     "by the log rules (gradient collapse, gradient cosine).")
    jobs = []
    for s in sorted(chosen, key=lambda s: s.start):
        snap = _pick_snapshot(hist.snapshots, s.start, s.end)
        if snap is not None:
            jobs.append((s.stall, f"{s.stall} (step {snap:,})", snap, hist.snapshots[snap]))
    if hist.diverged_at is None and hist.final_params is not None:
        jobs.append(("end", f"end (step {total:,})", total, hist.final_params))
    else:
        notes.append("The run diverged, so its end point was not judged.")
    hist.snapshots.clear()  # nobody reads the other snapshots: free them before the curvature work

    points: dict[str, Point] = {}
    spectra, hists, escapes = [], [], []
    skipped_spectrum = 0
    for i, (key, label, step, params) in enumerate(jobs):
        fraction = 0.7 + 0.3 * i / max(1, len(jobs))
        message = f"curvature at {label}"
        on_progress(fraction, message)
        set_flat_params(model, params)
        f_full, th_full = model_loss(model, loss_fn, X_full, y_full)
        with torch.enable_grad():
            x = th_full.clone().requires_grad_(True)
            value = f_full(x)
            g = torch.autograd.grad(value, x)[0]
        loss, grad_norm = float(value.detach()), float(torch.linalg.vector_norm(g))
        del f_full, th_full, x, g, value
        f, theta = model_loss(model, loss_fn, Xc, yc)
        cost = float(n) ** 2 * len(Xc)
        want_spectrum = spectrum_budget >= cost
        if spectrum_budget and not want_spectrum:
            skipped_spectrum += 1
        spectrum_budget -= cost if want_spectrum else 0.0
        try:
            p, eigs, escape = judge_point(f, theta, grad_norm, loss, rec.start.train_loss, key, label, step,
                                          want_spectrum, _stopper(on_progress, fraction, message))
        except RuntimeError as exc:  # Lanczos did not converge on a large model
            notes.append(f"{label}: the curvature could not be computed ({exc}).")
            continue
        points[key] = p
        if eigs is not None:
            spectra.append(pd.DataFrame({"point": label, "eigenvalue": eigs}))
            hists.append(spectrum_histogram(eigs, p.tolerance).assign(point=label))
        if escape is not None:
            esc = escape_profile(f, theta, escape, p.eig_min, config.escape_points)
            esc.insert(0, "point", label)
            escapes.append(esc)
    if skipped_spectrum:
        notes.append(f"The full spectrum was skipped at {skipped_spectrum} point(s) to bound the work "
                     "(each costs one Hessian-vector product per parameter).")
    on_progress(1.0, "done")

    # A stall judged with curvature takes its kind from core.rules.stall_kind at its snapshot
    # (critical_test on the full gradient there; the cosine tells small steps from a bounce).
    judged = []
    for s in stalls:
        p = points.get(s.stall)
        if p is not None:
            kind = stall_kind(p.test.grad_norm, s.grad_early, s.cos_mean, p.eig_min, p.eig_max, p.test.loss_scale)
            s = replace(s, point=p, evidence="curvature", kind=kind)
        judged.append(s)
    minibatch = batch < train_rows
    if minibatch:
        notes.append("Mini-batches: each step's loss and gradient come from one batch, so the per-step gradient "
                     "norm never vanishes; the critical test uses the full gradient over the training rows.")
    findings = Findings(
        divergence=rec.divergence, start_loss=rec.start.train_loss,
        final_loss=rec.end.train_loss if rec.diverged_at is None else hist.final_loss,
        stalls=tuple(judged), end=points.get("end"), window=window, rel_eps=config.rel_eps,
        minibatch=minibatch, last_step=total, end_cos=_end_cosine(finite, window),
    )
    stall_df = pd.DataFrame([_stall_row(s) for s in judged], columns=STALL_COLUMNS)
    point_df = pd.DataFrame([_point_row(p) for p in points.values()], columns=POINT_COLUMNS)
    spectra_df = pd.concat(spectra, ignore_index=True) if spectra else pd.DataFrame(columns=["point", "eigenvalue"])
    hist_df = (pd.concat(hists, ignore_index=True)[["point", "bin_start", "bin_end", "count", "sign"]] if hists
               else pd.DataFrame(columns=["point", "bin_start", "bin_end", "count", "sign"]))
    escape_df = (pd.concat(escapes, ignore_index=True) if escapes
                 else pd.DataFrame(columns=["point", "t", "loss", "quadratic"]))
    return Result(
        steps=steps, curve=thin(steps, MAX_CURVE_ROWS), stalls=stall_df, points=point_df, spectra=spectra_df,
        histogram=hist_df, escape=escape_df, findings=findings, verdict=make_verdict(findings), n_params=n,
        task=split.task, model=spec.describe(), data_name=data.name, train_rows=train_rows, split_rows=split_rows,
        curvature_rows=len(Xc), diverged_at=rec.diverged_at,
        divergence=divergence_sentence(rec.divergence) if rec.divergence else None,
        start_loss=findings.start_loss, final_loss=findings.final_loss, scenario=config.scenario, notes=notes,
    )


# --------------------------------------------------------------------------- wording
def _gain_clause(t: CriticalTest) -> str:
    """The critical test's numbers in words: '|g| = 0.052, and one safe gradient step would gain
    0.051% of the start loss (the ~0 line is 0.01%)'."""
    return (f"|g| = {num(t.grad_norm)}, and one safe gradient step would gain {pct(t.gain_share)} of the start "
            f"loss ({'below' if t.critical else 'above'} the {pct(CRITICAL_GAIN)} line for ~0)")


def _hessian_clause(p: Point) -> str:
    """What the eigenvalue signs say, with the numbers."""
    lo, hi = num(p.eig_min), num(p.eig_max)
    if p.kind == "saddle point":
        return f"the Hessian has λ_min = {lo} < 0 < λ_max = {hi}: a saddle point"
    if p.kind == "local minimum":
        return f"every Hessian eigenvalue is positive (λ_min = {lo}, λ_max = {hi}): a local minimum"
    if p.kind == "local maximum":
        return f"every Hessian eigenvalue is negative (λ_min = {lo}, λ_max = {hi}): a local maximum"
    return (f"an eigenvalue is zero within tolerance (λ_min = {lo}, λ_max = {hi}): a flat (degenerate) point, "
            "which the Hessian cannot classify")


def point_sentence(p: Point) -> str:
    """One point in one sentence: critical or not by critical_test, then the Hessian's kind.
    A point that fails the test is 'not a critical point' whatever its eigenvalue signs."""
    if not p.test.critical:
        return (f"Not a critical point: {_gain_clause(p.test)}; so its eigenvalue signs (λ_min = {num(p.eig_min)}, "
                f"λ_max = {num(p.eig_max)}) do not make it a saddle or a minimum.")
    return f"A critical point: {_gain_clause(p.test)}, and {_hessian_clause(p)}."


def _span(s: Stall) -> str:
    change = f"a {pct(s.rel_drop)} fall" if s.rel_drop >= 0 else f"a {pct(-s.rel_drop)} rise"
    return (f"{step_range(s.start, s.end)} (loss {num(s.loss_start, 4)} → {num(s.loss_end, 4)}, {change} "
            f"over {s.end - s.start:,} steps)")


def _stall_sentence(s: Stall, f: Findings) -> str:
    """'at steps a–b (...) ...': why this stall's loss was flat, from its findings."""
    cos = f"successive gradients have cosine {num(s.cos_mean, 2)}" if math.isfinite(s.cos_mean) else ""
    p = s.point
    if s.kind == CRITICAL and p is not None:
        text = f"at {_span(s)} at a critical point: at step {p.step:,}, {_gain_clause(p.test)}, and {_hessian_clause(p)}."
        if p.kind == "saddle point":
            escaped = f.final_loss < s.loss_end * (1 - f.rel_eps)
            text += (f" The run escaped it: the loss then fell to {num(f.final_loss, 4)}." if escaped
                     else " The run never escaped it.")
        return text
    if s.kind == CRITICAL:
        return (f"at {_span(s)}: the gradient collapsed (median |g| = {num(s.grad_median)}, "
                f"{pct(s.grad_median / s.grad_early)} of the run's gradient level), the log rule for a critical point; "
                "the Hessian was not computed for this stall.")
    if s.kind in NOT_CRITICAL_KINDS:
        if p is not None:
            head = (f"at {_span(s)} with a gradient that is not ~0: at step {p.step:,}, {_gain_clause(p.test)}, so "
                    "this is not a critical point.")
        else:
            head = f"at {_span(s)} with a gradient that did not collapse (median |g| = {num(s.grad_median)})."
        if s.kind == SMALL_STEPS:
            fell = (f"the loss still falls, only by less than {pct(f.rel_eps)} per {f.window:,}-step window (the "
                    "stall threshold)" if s.rel_drop > 0 else "yet each is too short to lower the loss visibly")
            return head + (f" {capital(cos)} (at or above {num(SMALL_STEP_COSINE)}): every step goes the same way "
                           f"downhill and {fell}: the steps are too small (the learning rate is too low).")
        if oscillating(s.cos_mean):
            return head + f" {capital(cos)}: each step undoes the last, bouncing across a valley (the step is too " \
                          "large for the curvature)."
        if f.minibatch:
            return head + (f" {capital(cos)}: " if cos else " ") + ("the loss sits at the level the mini-batch noise "
                                                                    "allows.")
        return head + (f" {capital(cos)}: " if cos else " ") + "the steps do not lower the loss although a gradient " \
                                                               "step could."
    return (f"at {_span(s)}: the gradient neither collapsed (median |g| = {num(s.grad_median)}) nor bounces"
            f"{' (' + cos + ')' if cos else ''}; the Hessian was not computed here, so the cause is unclear.")


def _end_sentence(f: Findings) -> str:
    e = f.end
    if e is None:
        return ""
    where = f"At the end (step {e.step:,}, loss {num(e.loss, 4)})"
    if not e.test.critical:
        return f" {where} the parameters are not at a critical point: {_gain_clause(e.test)}."
    return f" {where} the gradient is ~0: {_gain_clause(e.test)}, and {_hessian_clause(e)}."


def slow_steps(f: Findings) -> tuple[bool, bool]:
    """(a safe step is worth a large share of the run's fall, successive gradients at the end are
    aligned): the two signs that a run with a non-critical end falls slowly because its steps are
    small (SLOW_SHARE, SLOW_STEPS, SMALL_STEP_COSINE). Both False when the end was not judged or is critical."""
    e = f.end
    if e is None or e.test.critical:
        return False, False
    fall = max(f.start_loss - f.final_loss, 0.0) / max(abs(f.start_loss), 1e-12)  # the gain's unit: start loss
    gain = e.test.gain_share
    worth = gain >= SLOW_SHARE * fall and gain * f.last_step >= SLOW_STEPS * fall
    aligned = math.isfinite(f.end_cos) and f.end_cos >= SMALL_STEP_COSINE
    return bool(worth), bool(aligned)


def _slow_sentence(f: Findings) -> str:
    """' The loss is still falling, but slowly because the steps are small: ...' or ''."""
    worth, aligned = slow_steps(f)
    if not (worth or aligned):
        return ""
    fall = (f.start_loss - f.final_loss) / max(abs(f.start_loss), 1e-12)
    gain = f.end.test.gain_share
    why = []
    if worth:
        if fall > 0:
            why.append(f"one safe gradient step ({pct(gain)} of the start loss) would gain {pct(gain / fall)} of what "
                       f"all {f.last_step:,} steps gained ({pct(fall, 3)} of it), as much as "
                       f"{gain / fall * f.last_step:,.0f} of the run's average steps")
        else:
            why.append(f"one safe gradient step would gain {pct(gain)} of the start loss, while all {f.last_step:,} "
                       "steps gained nothing")
    if aligned:
        why.append(f"successive gradients at the end have cosine {num(f.end_cos, 2)} (at or above "
                   f"{num(SMALL_STEP_COSINE)}: every step goes the same way downhill)")
    return (" The loss is still falling, but slowly because the steps are small (the learning rate is too low): "
            + "; and ".join(why) + ".")


def make_verdict(f: Findings) -> Verdict:
    """The plain-language answer, worded from the findings only.

    Order: divergence; the loss ended above its start; no stall (with what the end point is);
    the most telling stall (one judged with the Hessian, the longest) and what the end point is.
    "No stall" is said only with no stall; "saddle"/"minimum" only where critical_test passed.
    """
    if f.divergence is not None:
        before = (f" Before that, the loss stalled at {', '.join(step_range(s.start, s.end) for s in f.stalls)}."
                  if f.stalls else "")
        return Verdict("problem", divergence_sentence(f.divergence) + before,
                       "Lower the learning rate (by 10x), standardize the inputs, or see the Learning rate page.")
    end = _end_sentence(f)
    count = ""
    if len(f.stalls) > 1:
        kinds = [s.kind for s in f.stalls]
        small = kinds.count(SMALL_STEPS)
        count = (f" {len(kinds)} stalls in all: {kinds.count(CRITICAL)} at a critical point, "
                 f"{kinds.count(OSCILLATION) + small} with a gradient that is not ~0"
                 + (f" ({small} with steps too small)" if small else "")
                 + (f", {kinds.count(UNCLEAR)} unclear." if UNCLEAR in kinds else "."))
    if f.final_loss > f.start_loss * (1 + f.rel_eps):
        return Verdict(
            "problem",
            f"The loss ended at {num(f.final_loss, 4)}, above where it started ({num(f.start_loss, 4)}): the steps are "
            f"far too large and threw the weights somewhere worse (often where tanh or sigmoid units saturate, so "
            f"gradient and curvature both fade).{end}{count}",
            "Lower the learning rate by 10x or more; see the Learning rate page.")
    if not f.stalls:
        text = (f"No stall: no {f.window:,}-step window or longer was shown to fall by less than "
                f"{pct(f.rel_eps)} per window beyond its step-to-step noise (the stall rule); the training loss "
                f"went from {num(f.start_loss, 4)} to {num(f.final_loss, 4)} over {f.last_step:,} steps.{end}")
        if f.end is not None and f.end.test.critical:
            text += " The loss was still falling there, so the run is passing through this region, not stuck in it."
            return Verdict("info" if f.end.kind == "saddle point" else "good", text,
                           "Train longer and watch whether the loss keeps falling.")
        slow = _slow_sentence(f)
        if slow:
            return Verdict("warning", text + slow,
                           "Raise the learning rate (try 10x; the Learning rate page's range test finds the largest "
                           "stable one), or train much longer: at this rate the loss keeps falling only slowly.")
        return Verdict("good", text, "Nothing is stuck; train longer if the loss is still falling.")
    judged = [s for s in f.stalls if s.point is not None]
    s = max(judged or list(f.stalls), key=lambda s: s.end - s.start)
    text = "Stalled " + _stall_sentence(s, f) + end + count
    progressed = f.final_loss < f.start_loss * (1 - 10 * f.rel_eps)
    at_end = s.end >= f.last_step - 1
    if s.kind == CRITICAL and s.point is not None and s.point.kind == "saddle point":
        return Verdict("warning", text, "Try momentum, a larger initial scale, or a negative-curvature step; see the "
                                        "Saddle escape page.")
    if s.kind == CRITICAL and at_end and progressed and f.end is not None and f.end.test.critical \
            and f.end.kind in ("local minimum", "flat (degenerate)"):
        return Verdict("good" if f.end.kind == "local minimum" else "info", "Converged. " + text,
                       "More steps of the same optimizer will not lower the loss; if it is still too high, try a "
                       "larger model or another initialization.")
    if s.kind == SMALL_STEPS:
        return Verdict("warning", text, "Raise the learning rate (try 10x; the Learning rate page's range test finds "
                                        "the largest stable one, and a warmup schedule lets a larger rate start "
                                        "safely), or use an adaptive optimizer (Adam, RMSprop).")
    if s.kind == OSCILLATION:
        return Verdict("warning", text, "Lower the learning rate, decay it with a schedule, or use an adaptive "
                                        "optimizer (Adam, RMSprop); see the Learning rate page.")
    if not progressed:
        return Verdict("warning", "Stuck from the start. " + text,
                       "The weights start in a flat region: try another initial scale, another activation (ReLU), "
                       "or momentum; see the Saddle escape page.")
    return Verdict("info", text, "Check the tables below; for a saddle see the Saddle escape page.")


# --------------------------------------------------------------------------- the lecture's example
TOY_LOSS_SCALE = 1.0  # the toy loss at the origin, (1 - 0)^2: the scale of what training removes
TOY_LOSS_FLOOR = 0.0  # the toy loss's lowest value: a square, 0 exactly on the valley w1*w2 = 1
VALLEY_MINIMUM = "minimum (valley)"  # the map's label for a point of the valley of minima


@dataclass(eq=False)
class ToyPoint:
    """The lecture's network y = w1*w2*x (x = 1, y = 1) at one (w1, w2), judged."""

    w: np.ndarray  # (w1, w2)
    loss: float
    gradient: np.ndarray  # dL/dw1, dL/dw2
    hessian: np.ndarray  # 2 x 2
    eigenvalues: np.ndarray  # ascending
    eigenvectors: np.ndarray  # columns, unit, largest component positive
    kind: str  # the Hessian's kind at a critical point, else "not critical"
    test: CriticalTest
    sentence: str
    escape_direction: np.ndarray | None
    arrow: pd.DataFrame  # x, y, x2, y2, angle, what: the arrow drawn on the map
    # A critical point whose Hessian is degenerate but has no negative eigenvalue, with the loss at
    # the surface's known lowest value (within CRITICAL_GAIN of the scale): a minimum on the valley.
    valley_minimum: bool = False

    @property
    def hessian_frame(self) -> pd.DataFrame:
        """The Hessian as a small labelled table."""
        return pd.DataFrame({"": ["w1", "w2"], "w1": self.hessian[:, 0], "w2": self.hessian[:, 1]})

    @property
    def eigen_frame(self) -> pd.DataFrame:
        """One row per eigenvalue with its unit eigenvector (w1, w2 components)."""
        return pd.DataFrame({"eigenvalue": self.eigenvalues, "vector w1": self.eigenvectors[0],
                             "vector w2": self.eigenvectors[1]})


def toy_point(w1: float, w2: float, arrow_length: float = 0.6) -> ToyPoint:
    """Gradient, Hessian, eigenpairs and the same judgement as the network's points, on the
    lecture's toy loss (critical_test with the origin's loss, 1, as the scale).

    The arrow is the escape direction (both ways) at a saddle, else the negative gradient.
    Where the Hessian cannot classify the point (a zero eigenvalue) the loss's known floor can:
    no negative eigenvalue and the loss at its lowest possible value is a minimum (`valley_minimum`).

    >>> p = toy_point(0.0, 0.0)
    >>> p.kind, p.eigenvalues.tolist(), p.hessian.tolist()
    ('saddle point', [-2.0, 2.0], [[0.0, -2.0], [-2.0, 0.0]])
    >>> toy_point(1.0, 1.0).valley_minimum
    True
    """
    from core.curvature import hessian_matrix

    theta = torch.tensor([float(w1), float(w2)], dtype=torch.float64)
    g = gradient(toy_loss, theta).numpy()
    p, _, escape = judge_point(toy_loss, theta, float(np.linalg.norm(g)), float(toy_loss(theta)), TOY_LOSS_SCALE,
                               "toy", "toy", 0, spectrum=False)
    H = hessian_matrix(toy_loss, theta)
    vals, vecs = np.linalg.eigh(H)
    for j in range(vecs.shape[1]):  # eigenvectors have no sign: fix the largest component positive
        if vecs[np.argmax(np.abs(vecs[:, j])), j] < 0:
            vecs[:, j] = -vecs[:, j]
    # At the loss's floor no step can lower it by more than loss - floor: when that is under the
    # critical threshold, the point is a minimum of the valley whatever the Hessian says (just off
    # the valley, the Hessian has a tiny negative eigenvalue, but no saddle is there).
    at_floor = p.test.critical and p.loss - TOY_LOSS_FLOOR <= CRITICAL_GAIN * TOY_LOSS_SCALE
    valley = at_floor and (p.kind == "saddle point" or (p.kind == "flat (degenerate)" and p.eig_min >= -p.tolerance))
    if valley:
        escape = None
    if escape is not None:
        u = np.asarray(escape) * arrow_length
        ends, what = [u, -u], "escape direction"
    elif np.linalg.norm(g) > 0:
        ends, what = [-g / np.linalg.norm(g) * arrow_length], "negative gradient"
    else:
        ends, what = [], ""
    rows = [dict(x=w1, y=w2, x2=w1 + d[0], y2=w2 + d[1], angle=float(np.degrees(np.arctan2(d[0], d[1]))),
                 what=what) for d in ends]
    sentence = toy_valley_sentence(p) if valley else point_sentence(p)
    kind = VALLEY_MINIMUM if valley else p.kind
    return ToyPoint(np.array([w1, w2], dtype=float), p.loss, g, H, vals, vecs, kind, p.test, sentence,
                    escape, pd.DataFrame(rows, columns=["x", "y", "x2", "y2", "angle", "what"]), valley)


def toy_valley_sentence(p: Point) -> str:
    """The toy point on the valley of minima, worded: critical, the loss at its floor, and why the
    Hessian (zero along the valley) cannot say so alone."""
    if p.loss == TOY_LOSS_FLOOR:
        floor = f"the loss is {num(p.loss)}, the lowest value this surface can take"
    else:
        floor = (f"the loss, {num(p.loss)}, is above the lowest value this surface can take ({num(TOY_LOSS_FLOOR)}) "
                 f"by less than {pct(CRITICAL_GAIN)} of the origin's loss")
    head = f"A critical point: {_gain_clause(p.test)}, and {floor}: a minimum, one of the valley of minima w1·w2 = 1."
    if p.eig_min < -p.tolerance:  # just off the valley
        return (head + f" The Hessian has a small negative eigenvalue (λ_min = {num(p.eig_min)}, λ_max = "
                f"{num(p.eig_max)}) because the point sits just off the valley, but no step can take the loss below "
                f"its floor: moving along that direction could lower it by at most {num(p.loss - TOY_LOSS_FLOOR)}, "
                f"under the critical threshold ({pct(CRITICAL_GAIN)} of the origin's loss), so there is no saddle "
                "here to escape.")
    return (head + f" The Hessian has no negative eigenvalue (λ_min = {num(p.eig_min)}, zero within tolerance; "
            f"λ_max = {num(p.eig_max)}): it is zero along the valley, where the loss does not change, which is why "
            "the second-order test alone cannot classify this point.")


def toy_map(n: int = 61) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The lecture surface for a heat map: (grid, critical points, valley curve w1*w2 = 1).

    The grid comes from core.surfaces; the critical points are its marks, each re-judged with
    toy_point; the valley is two branches of the hyperbola inside the plot's bounds.
    """
    from core.surfaces import SURFACES, grid

    surface = SURFACES["lecture"]
    cells = grid(surface, n=n)
    marks = []
    for m in surface.critical_points:
        p = toy_point(m.x, m.y)
        # Valley points are global minima whose Hessian is singular (flat along the valley).
        kind = VALLEY_MINIMUM if p.valley_minimum else p.kind
        label = "saddle" if kind == "saddle point" else "min"
        marks.append(dict(x=m.x, y=m.y, kind=kind, label=label))
    (x0, x1), _ = surface.bounds
    branch = np.linspace(1 / x1, x1, 60)  # w1 in [0.5, 2] keeps w2 = 1/w1 inside [-2, 2]
    valley = pd.DataFrame({
        "x": np.concatenate([branch, -branch]), "y": np.concatenate([1 / branch, -1 / branch]),
        "branch": ["w1 > 0"] * len(branch) + ["w1 < 0"] * len(branch),
    })
    return cells, pd.DataFrame(marks), valley

