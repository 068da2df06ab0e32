"""One rule per concept, shared by every page: divergence, stall, "gradient ~ 0", escape.

Every diagnosis imports these; none invents its own threshold. Each rule returns plain numbers so
that a finding can carry them and `core.diagnoses.words` can word them.

- **Divergence**: the loss or gradient stops being a number, or the loss's robust level passes
  BLOWUP_FACTOR x its starting level (tanh and sigmoid units keep a cross-entropy finite at absurd
  learning rates, so NaN alone misses most blow-ups). On toy surfaces a parameter past
  PARAM_LIMIT counts too.
- **Stall**: a stretch where the (smoothed) loss falls by less than `rel_eps` of itself in every
  `window` steps. A stretch whose loss fell by more than that overall is a slow descent, never a
  stall: a falling loss is never called flat.
- **Gradient ~ 0 (a critical point)**: judged on the problem's own scale, from curvature. One
  gradient step at the largest stable rate 1 / lambda (lambda = the largest |Hessian eigenvalue|)
  lowers a quadratic model of the loss by |g|^2 / (2 lambda). The point is critical when even that
  best safe step would gain less than CRITICAL_GAIN of the loss the run started from (the scale of
  what training has to remove). Without curvature (a training log) only the gradient's collapse
  relative to its own early level can be seen: `gradient_collapsed`.
- **Escape** (from a saddle): the loss falls `delta` below the saddle's, or the distance from it
  passes `radius`, before any divergence; a run that later diverges did not escape, it blew up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

BLOWUP_FACTOR = 10.0  # a loss level this many times its start is a divergence
PARAM_LIMIT = 1e6  # a toy-surface coordinate past this size is a divergence
MINIBATCH_LEVEL_WINDOW = 16  # mini-batch losses: the divergence level is the median of this many
CRITICAL_GAIN = 1e-4  # critical: the best safe gradient step gains < this share of the start loss
GRADIENT_COLLAPSE = 0.05  # logs: a stall is "gradient small" when its |g| is < 5% of the early |g|
OSCILLATION_COSINE = -0.5  # successive gradients this anti-aligned: the step bounces across a valley
SMALL_STEP_COSINE = 0.9  # successive gradients this aligned (gradient not ~0): the steps are too small
STALL_RISE = 10.0  # stalls: a window whose loss rose by more than this many rel_eps (and beyond noise) is no stall
LEVEL_MIN_RECORDS = 10  # the gradient level is a median over at least this many records ...
LEVEL_SHARE = 0.01  # ... and at least this share of the run
LEVEL_LOSS_RISE = 0.25  # records where the loss is this share (or 3 noise units) above its lowest level so far: a blow-up
LEVEL_LOSS_POINTS = 5  # the loss level of the blow-up test: a centred median of this many records


# --------------------------------------------------------------------------- divergence
def first_divergence(loss, reference: float | None = None, level_window: int = 1,
                     grad_norm=None, scale: float = 0.0) -> int | None:
    """Index of the first divergent entry of a loss sequence, or None.

    An entry diverges when the loss (or the gradient norm, if given) is NaN/inf, or when the
    loss's level (the median of the last `level_window` losses, for noisy mini-batch losses;
    1 = the loss itself) exceeds `reference + (BLOWUP_FACTOR - 1) * max(|reference|, scale)`.
    `reference` defaults to the first loss; `scale` keeps the rule meaningful when the start loss
    is ~0 (a saddle of a toy surface). For a positive start this is "10x the start".

    >>> first_divergence([0.7, 0.6, 3.0, 7.5, 1.0])
    3
    >>> first_divergence([0.7, float("nan")])
    1
    """
    loss = np.asarray(loss, dtype=float)
    if not len(loss):
        return None
    bad = ~np.isfinite(loss)
    if grad_norm is not None:
        bad |= ~np.isfinite(np.asarray(grad_norm, dtype=float))
    ref = float(loss[0]) if reference is None else float(reference)
    if math.isfinite(ref):
        limit = ref + (BLOWUP_FACTOR - 1.0) * max(abs(ref), scale, 1e-12)
        level = loss if level_window <= 1 else (
            pd.Series(loss).rolling(level_window, min_periods=1).median().to_numpy())
        bad |= np.nan_to_num(level, nan=np.inf) > limit
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


def divergence_limit(reference: float, scale: float = 0.0) -> float:
    """The loss level above which a run counts as diverged (see first_divergence)."""
    return reference + (BLOWUP_FACTOR - 1.0) * max(abs(reference), scale, 1e-12)


@dataclass(frozen=True)
class Divergence:
    """Where and how a run diverged: a finding the wording step turns into one sentence."""

    step: int
    start_loss: float  # the reference level the rule compared with
    loss: float  # the loss at that step (NaN/inf when it stopped being a number)

    @property
    def non_finite(self) -> bool:
        """True when the loss stopped being a number (rather than passing the limit)."""
        return not math.isfinite(self.loss)


def find_divergence(steps: pd.DataFrame, reference: float | None = None, level_window: int = 1,
                    scale: float = 0.0) -> Divergence | None:
    """The Divergence of a per-step record (columns step, loss, optionally grad_norm), or None."""
    if not len(steps):
        return None
    grads = steps["grad_norm"] if "grad_norm" in steps else None
    i = first_divergence(steps["loss"], reference, level_window, grads, scale)
    if i is None:
        return None
    ref = float(steps["loss"].iloc[0]) if reference is None else float(reference)
    return Divergence(int(steps["step"].iloc[i]), ref, float(steps["loss"].iloc[i]))


# --------------------------------------------------------------------------- stalls
def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Trailing mean over `width` steps (fewer at the start), which tames mini-batch noise.

    >>> smooth(np.array([1.0, 3.0, 5.0]), 2)
    array([1., 2., 4.])
    """
    return pd.Series(values).rolling(max(1, width), min_periods=1).mean().to_numpy()


def window_drop(loss: np.ndarray, window: int) -> np.ndarray:
    """Relative fall of `loss` over the `window` steps ending at each step (NaN before one window).

    drop[t] = (loss[t - window] - loss[t]) / |loss[t - window]|; negative when the loss rose.

    >>> window_drop(np.array([4.0, 3.0, 2.0, 3.0]), 2)
    array([nan, nan, 0.5, 0. ])
    """
    loss = np.asarray(loss, dtype=float)
    drop = np.full(len(loss), np.nan)
    if len(loss) > window:
        before, after = loss[:-window], loss[window:]
        drop[window:] = (before - after) / np.maximum(np.abs(before), 1e-12)
    return drop


def stall_spans(smoothed: np.ndarray, window: int, rel_eps: float, raw=None) -> list[tuple[int, int]]:
    """Index ranges (start, end) where the smoothed loss stopped falling: THE stall rule.

    A step t is flat when the loss fell by less than `rel_eps` of itself over [t - window, t]
    and did not rise by more than `rise_limit` (STALL_RISE x rel_eps, or more for a noisy `raw`
    loss, see _rise_limit): a loss that wobbles or creeps up within that tolerance is not falling,
    but a loss that climbs many-fold is blowing up, not stalling (issue: a span over a blow-up
    from 0.87 to 34 was once called a stall). Consecutive flat steps form a span
    [first - window, last]; runs closer than a tenth of a window, and spans that share steps, are
    joined. A span is kept only where the evidence carries "the loss fell by less than rel_eps per
    window":
    - end to end, the smoothed loss fell by at most rel_eps per window (else it is a slow descent:
      a falling loss is never a stall);
    - with `raw` (the unsmoothed loss, same length), the least-squares trend of the raw loss over
      the span plus NOISE_MULTIPLE standard errors is below rel_eps per window, so a noisy
      mini-batch loss whose wiggle hides a slow descent is no stall (issue 12: a 62% fall was
      once reported as a flat loss).

    >>> stall_spans(np.r_[np.linspace(2, 1, 50), np.ones(60)], 20, 0.01)
    [(49, 109)]
    >>> stall_spans(np.r_[np.linspace(2, 1, 50), np.ones(60), np.geomspace(1, 30, 40)], 20, 0.01)
    [(49, 111)]
    """
    s = np.asarray(smoothed, dtype=float)
    raw_loss = None if raw is None else np.asarray(raw, dtype=float)
    drop = np.nan_to_num(window_drop(s, window), nan=np.inf)
    flat = (drop < rel_eps) & (drop >= -_rise_limit(rel_eps, raw_loss))
    runs: list[list[int]] = []
    for t in np.flatnonzero(flat):
        t = int(t)
        if runs and t - runs[-1][1] <= max(1, window // 10):
            runs[-1][1] = t
        else:
            runs.append([t, t])
    joined: list[tuple[int, int]] = []
    for first, last in runs:
        a, b = max(0, first - window), last
        if joined and a <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(b, joined[-1][1]))
        else:
            joined.append((a, b))
    return [(a, b) for a, b in joined
            if _flat_end_to_end(s[a], s[b], b - a, window, rel_eps)
            and (raw_loss is None or _flat_beyond_noise(raw_loss[a: b + 1], s[a], window, rel_eps))]


def _rise_limit(rel_eps: float, raw: np.ndarray | None) -> float:
    """The largest relative rise per window a flat step may show: STALL_RISE x rel_eps, or, for a
    noisy raw loss, NOISE_MULTIPLE x the noise of a difference of two single logged losses (the
    least smoothing the caller can have used), so mini-batch noise alone never breaks a stall."""
    from core.findings import NOISE_MULTIPLE

    limit = STALL_RISE * rel_eps
    if raw is None:
        return limit
    return max(limit, NOISE_MULTIPLE * math.sqrt(2.0) * _point_noise(raw))


def _point_noise(loss: np.ndarray) -> float:
    """The relative noise of one logged loss: 1.4826 x the median |relative step| / sqrt 2 (a
    robust standard deviation; 0 for a smooth full-batch curve)."""
    x = loss[np.isfinite(loss)]
    if len(x) < 3:
        return 0.0
    step = np.diff(x) / np.maximum(np.abs(x[:-1]), 1e-12)
    return 1.4826 * float(np.median(np.abs(step))) / math.sqrt(2.0)


def _flat_end_to_end(first: float, last: float, length: int, window: int, rel_eps: float) -> bool:
    return (first - last) / max(abs(first), 1e-12) <= rel_eps * max(1.0, length / window)


def _flat_beyond_noise(raw: np.ndarray, level: float, window: int, rel_eps: float) -> bool:
    from core.findings import NOISE_MULTIPLE

    raw = raw[np.isfinite(raw)]
    if len(raw) < 3:
        return True
    x = np.arange(len(raw), dtype=float)
    slope, intercept = np.polyfit(x, raw, 1)
    resid = raw - (slope * x + intercept)
    se = math.sqrt(float(resid @ resid) / (len(raw) - 2) / float(((x - x.mean()) ** 2).sum()))
    scale = max(abs(level), 1e-12)
    return -slope * window / scale + NOISE_MULTIPLE * se * window / scale < rel_eps


def gradient_level(grad, width: int, loss=None) -> float:
    """The run's gradient level, the yardstick of "the gradient collapsed": the highest median
    |g| over any consecutive stretch of records while the loss was healthy.

    - A stretch holds at least max(`width`, LEVEL_MIN_RECORDS, LEVEL_SHARE of the records)
      records, so a spike of one or a few records (fewer than half a stretch) cannot set the
      level: a single |g| of 40 among |g| ~ 1 once made the level 20 and called a stall with
      |g| 0.7 a critical point.
    - With `loss` (same length as `grad`), records inside a loss blow-up are left out: where the
      loss level (a centred median of LEVEL_LOSS_POINTS records, so one bad batch does not count)
      is more than LEVEL_LOSS_RISE (or 3 of its point-to-point noise units, for a noisy mini-batch
      loss) above the lowest level it had reached so far, or not a number. The
      gradient of a diverging run grows with its loss; it says what a gradient looks like when
      training fails, not what a normal one is for this run.
    - The highest stretch, not the first one: a run that sits on a saddle plateau from step 0
      has its small gradient there, and only the later escape shows what a normal gradient is.

    >>> gradient_level(np.r_[np.full(50, 1e-3), np.ones(50), [100.0]], 10)
    1.0
    >>> gradient_level(np.r_[np.ones(60), [40.0], np.ones(39)], 2)
    1.0
    >>> gradient_level(np.r_[np.ones(60), np.geomspace(2, 50, 40)], 10, loss=np.r_[np.ones(60), np.geomspace(2, 50, 40)])
    1.0
    """
    g = np.asarray(grad, dtype=float)
    keep = np.isfinite(g)
    if loss is not None:
        keep &= loss_healthy(np.asarray(loss, dtype=float))
    g = g[keep]
    if not len(g):
        return float("nan")
    width = max(int(width), LEVEL_MIN_RECORDS, math.ceil(LEVEL_SHARE * len(g)))
    width = min(width, len(g))
    return float(pd.Series(g).rolling(width).median().max())


def loss_healthy(loss: np.ndarray) -> np.ndarray:
    """True where the loss is not inside a blow-up (see gradient_level)."""
    level = pd.Series(loss).rolling(LEVEL_LOSS_POINTS, center=True, min_periods=1).median().to_numpy()
    lowest = np.fmin.accumulate(np.where(np.isfinite(level), level, np.nan))
    allowed = max(LEVEL_LOSS_RISE, 3.0 * _point_noise(loss)) * np.maximum(np.abs(lowest), 1e-12)
    with np.errstate(invalid="ignore"):
        return np.isfinite(level) & (level - lowest <= allowed)


def gradient_collapsed(window_grad_median: float, level: float) -> bool:
    """Log-only evidence of a critical point: the gradient norm in a stall fell below
    GRADIENT_COLLAPSE of the run's gradient level (`gradient_level`)."""
    return bool(math.isfinite(window_grad_median) and math.isfinite(level)
                and window_grad_median <= GRADIENT_COLLAPSE * level)


STALL_KINDS = ("critical point", "oscillation", "small steps", "unclear", "plateau")


def stall_kind(grad_median: float, level: float, cos_mean: float = float("nan"),
               eig_min: float = float("nan"), eig_max: float = float("nan"), loss_scale: float = 1.0) -> str:
    """The kind of a stall, the same on every page (one of STALL_KINDS):
    - "plateau" when no gradient norm is known (a log without one: log it to tell the kinds apart);
    - "critical point" when the gradient is ~0: critical_test passes (curvature known), or, without
      curvature, the gradient collapsed (gradient_collapsed against `level`);
    - otherwise the gradient is not ~0, and the gradient cosine says why the loss hardly falls:
      "small steps" when successive gradients point the same way (cosine >= SMALL_STEP_COSINE:
      every step goes downhill, each too short, so the rate is too small), "oscillation" when they
      point against each other (`oscillating`);
    - neither: with curvature known, or without a cosine, "oscillation" (the gradient is not small,
      so the step, not a critical point, stalls it); from the log alone with a cosine, "unclear".

    >>> stall_kind(0.5, 0.5, cos_mean=1.0, eig_min=-0.6, eig_max=1.7), stall_kind(0.5, 0.5, cos_mean=-0.99)
    ('small steps', 'oscillation')
    """
    if not math.isfinite(grad_median):
        return "plateau"
    curvature = math.isfinite(eig_min) and math.isfinite(eig_max)
    if curvature and critical_test(grad_median, eig_min, eig_max, loss_scale).critical:
        return "critical point"
    if not curvature and gradient_collapsed(grad_median, level):
        return "critical point"
    if math.isfinite(cos_mean) and cos_mean >= SMALL_STEP_COSINE:
        return "small steps"
    if curvature or not math.isfinite(cos_mean):
        return "oscillation"
    return "oscillation" if oscillating(cos_mean) else "unclear"


def oscillating(cos_mean: float) -> bool:
    """Successive gradients point against each other (cosine <= OSCILLATION_COSINE): the step
    bounces across a valley. (Aligned gradients, cosine >= SMALL_STEP_COSINE, are the opposite
    case: steps too small, see stall_kind.)"""
    return bool(math.isfinite(cos_mean) and cos_mean <= OSCILLATION_COSINE)


# --------------------------------------------------------------------------- critical points
@dataclass(frozen=True)
class CriticalTest:
    """The "gradient ~ 0" test at one point, with the numbers it used.

    `safe_step_gain` = |g|^2 / (2 lambda): what one gradient step at the largest stable rate
    1/lambda would lower a quadratic model of the loss by; `newton_distance` = |g| / lambda: how far
    that step moves. `critical` when the gain is below CRITICAL_GAIN x `loss_scale`.
    """

    grad_norm: float
    curvature: float  # max(|lambda_min|, |lambda_max|)
    loss_scale: float  # the loss the run started from (what training has to remove)
    safe_step_gain: float
    newton_distance: float
    critical: bool

    @property
    def gain_share(self) -> float:
        """safe_step_gain as a share of loss_scale."""
        return self.safe_step_gain / self.loss_scale if self.loss_scale > 0 else float("inf")


def critical_test(grad_norm: float, eig_min: float, eig_max: float, loss_scale: float) -> CriticalTest:
    """Is the gradient ~0 on this problem's scale? See the module docstring.

    >>> critical_test(1e-3, -0.5, 2.0, loss_scale=1.0).critical
    True
    >>> critical_test(0.2, 0.1, 2.0, loss_scale=0.7).critical
    False
    """
    curvature = max(abs(eig_min), abs(eig_max)) if math.isfinite(eig_min) and math.isfinite(eig_max) else float("nan")
    scale = abs(loss_scale) if math.isfinite(loss_scale) and loss_scale != 0 else 1.0
    if not math.isfinite(grad_norm) or not math.isfinite(curvature):
        return CriticalTest(grad_norm, curvature, scale, float("nan"), float("nan"), False)
    if curvature <= 1e-12:  # no curvature at all: only an exactly vanishing gradient is critical
        gain = 0.0 if grad_norm <= 1e-12 else float("inf")
        return CriticalTest(grad_norm, curvature, scale, gain, gain, gain == 0.0)
    gain = grad_norm ** 2 / (2.0 * curvature)
    return CriticalTest(grad_norm, curvature, scale, gain, grad_norm / curvature,
                        gain < CRITICAL_GAIN * scale)


# --------------------------------------------------------------------------- escape
def escape_index(loss, distance, saddle_loss: float, delta: float, radius: float | None,
                 diverged_at: int | None = None) -> tuple[int | None, str]:
    """First index where a run left a saddle: loss below saddle_loss - delta ("loss") or distance
    beyond radius ("distance"). A run that diverged did not escape: (None, "") then.

    >>> escape_index([1.0, 0.99, 0.9], [0, 0.1, 0.2], 1.0, 0.05, None)
    (2, 'loss')
    """
    if diverged_at is not None:
        return None, ""
    loss = np.asarray(loss, dtype=float)
    by_loss = np.flatnonzero(loss < saddle_loss - delta)
    by_dist = np.flatnonzero(np.asarray(distance, dtype=float) > radius) if radius is not None else np.array([], int)
    first_loss = int(by_loss[0]) if len(by_loss) else None
    first_dist = int(by_dist[0]) if len(by_dist) else None
    if first_loss is None and first_dist is None:
        return None, ""
    if first_dist is None or (first_loss is not None and first_loss <= first_dist):
        return first_loss, "loss"
    return first_dist, "distance"
