"""Your training run: the lecture's diagnoses on a log the user's own trainer wrote.

`run(log, config)` takes a core.runlog.TrainingLog and finds, with the project's rules:

- **divergence** (core.rules.find_divergence, the one rule): the logged loss or gradient norm
  stops being a number, or the loss level passes 10x its first logged value. The level is the
  median of the last `level_window` = 3 logged losses: a logged loss may be one mini-batch's (a
  loop logging every step), and one bad batch is a spike, not a divergence; a real blow-up is
  then reported one logged point after it passed the limit (a NaN or inf at once). Logs of means
  over an interval (Hugging Face, Lightning) can use level_window = 1. Everything below looks
  only at the part before the divergence.
- **stalls** (core.rules.stall_spans on the smoothed loss): each one a "critical point" when the
  gradient norm collapsed (core.rules.gradient_collapsed: below 5% of the run's gradient level)
  or, when lambda_min / lambda_max were logged (core.probe), by core.rules.critical_test; an
  "oscillation" when the gradient is not small; a "plateau" when no gradient norm was logged.
  The gradient level is the peak of the gradient norm's running median over stretches of at
  least 10 logged points while the loss was healthy (core.rules.gradient_level: one |g| spike or
  a blow-up cannot set it), not its first window: a run that starts on a saddle has a tiny
  gradient from step 0 (see the report in the tests).
- **spikes**: a logged loss more than SPIKE_Z robust standard deviations (1.4826 x the running
  median absolute deviation) and SPIKE_MIN_RISE above the running median of its neighbours (the
  smoothed loss); adjacent spiking points are one spike, reported at its first step with the
  learning rate logged there. The same rule on the gradient norm finds a heavy tail; either one
  earns a clipping threshold suggestion, the CLIP_QUANTILE quantile of the logged gradient norm.
- **the schedule**, read back from the logged rate by core.schedule_fit (every core.schedules
  family fitted, the best kept).
- **train vs evaluation loss**: where the evaluation loss bottomed out, whether it then rose
  beyond the noise (core.findings.compare) while the training loss kept falling, and
  the step from which the evaluation loss stays more than GAP_OPEN above the training loss.

`compare_runs(results)` puts several runs side by side. Findings first, then `make_verdict`
words them with core.diagnoses.words. Charts read `curve` (every series thinned to at most
`max_points` per series by min/max buckets, so no spike disappears) and never the full log.

>>> from core.runlog import load_log
>>> log = load_log(b"step,loss\\n" + b"".join(b"%d,%g\\n" % (i, 1 / (i + 1)) for i in range(200)))
>>> result = run(log)
>>> result.diverged_at, len(result.spikes), result.verdict.kind
(None, 0, 'good')
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from core.diagnoses import Progress, Verdict, no_progress
from core.findings import Comparison, compare, tail_mean, tail_noise
from core.diagnoses.words import capital, divergence_sentence, num, pct, step_range, steps as steps_word
from core.diagnoses.stall import CRITICAL, OSCILLATION, SMALL_STEPS, UNCLEAR
from core.rules import (
    Divergence, critical_test, find_divergence, gradient_collapsed, gradient_level, loss_healthy, oscillating, smooth,
    stall_kind, stall_spans,
)
from core.runlog import TrainingLog
from core.schedule_fit import FittedSchedule, fit_schedule

PLATEAU = "plateau"  # a stall with no gradient norm logged: critical point or oscillation cannot be told
SPIKE_WINDOW = 21  # logged points in the running median a spike is measured against (spikes up to 10 wide)
SPIKE_Z = 6.0  # robust standard deviations above the running median
SPIKE_MIN_RISE = 0.25  # ... and at least 25% above it (a clean full-batch curve has a MAD of ~0)
LOW_LR_SHARE = 0.1  # a stall where the rate is below 10% of its peak: the schedule had run down
GAP_OPEN = 0.1  # the evaluation loss 10% above the training loss: the gap is open
CLIP_QUANTILE = 0.9  # suggested clipping threshold: this quantile of the logged gradient norm
AUTO_WINDOW_SHARE = 0.1  # the default stall window: a tenth of the logged steps
MIN_WINDOW_POINTS = 5  # a window spans at least this many logged points
MIN_POINTS = 10  # fewer logged losses than this: nothing to diagnose
NOISY = 0.01  # a logged loss with more point-to-point noise than this share is a mini-batch loss
LEVEL_POINTS = 2000  # bucket means kept per run for comparing runs
LAMBDA_MIN_NAMES = ("curvature/lambda_min", "lambda_min", "eig_min")
LAMBDA_MAX_NAMES = ("curvature/lambda_max", "lambda_max", "eig_max")
COSINE_NAMES = ("grad_cos", "train/grad_cos", "gradient_cosine")

STALL_COLUMNS = ["stall", "start", "end", "steps", "kind", "loss_start", "loss_end", "rel_drop", "grad_median",
                 "grad_ratio", "cos_mean", "lr_share", "eig_min", "eig_max"]
SPIKE_COLUMNS = ["step", "loss", "baseline", "ratio", "lr", "grad_norm", "width"]


@dataclass(frozen=True)
class Config:
    """What the page asks for; every field has a default. Frozen: it keys the cache."""

    window: int = 0  # stall window in steps; 0 = a tenth of the logged steps (at least 5 logged points)
    rel_eps: float = 0.01  # a window is flat when the smoothed loss falls by less than this share of itself
    level_window: int = 3  # divergence: median of this many logged losses (one bad batch is a spike, not a divergence)
    spike_z: float = SPIKE_Z  # robust standard deviations that make a spike
    max_points: int = 1200  # chart points per series (min/max buckets keep every spike)


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence when the config cannot run."""
    if config.window < 0:
        raise ValueError("The stall window must be 0 (automatic) or a number of steps.")
    if not 0 < config.rel_eps < 1:
        raise ValueError("The stall threshold must lie between 0 and 1 (a share of the loss).")
    if config.level_window < 1:
        raise ValueError("The divergence level window must be at least 1 logged loss.")
    if not config.spike_z > 0:
        raise ValueError("The spike threshold must be a positive number of standard deviations.")
    if config.max_points < 100:
        raise ValueError("Charts need at least 100 points per series.")


@dataclass(frozen=True)
class Gap:
    """Training vs evaluation loss: the findings behind 'where the gap opens'."""

    best_step: int  # where the evaluation loss was lowest
    best_eval: float
    end_step: int
    end_eval: float
    train_at_best: float  # smoothed training loss at best_step
    train_at_end: float
    opens_at: int | None  # first evaluation step from which eval > (1 + GAP_OPEN) x train for good
    end_gap: float  # (eval - train) / train at the last evaluation
    rise: Comparison  # the evaluation loss at its best vs at the end (winner "best": it rose)
    n_evals: int

    @property
    def eval_rose(self) -> bool:
        """The evaluation loss rose from its best beyond the noise."""
        return self.rise.winner == "best"

    @property
    def overfitting(self) -> bool:
        """Evaluation loss rose while the training loss kept falling."""
        return self.eval_rose and self.train_at_end < self.train_at_best


@dataclass(eq=False)
class Result:
    """Everything the page shows for one run: findings, thinned curves and the verdict."""

    name: str
    format: str
    n_points: int  # logged training losses
    first_step: int
    last_step: int
    series: tuple[str, ...]  # canonical series the log has
    window: int  # stall window used, in steps
    window_points: int  # ... in logged points
    smooth_points: int  # smoothing width of the stall detector, in logged points
    divergence: Divergence | None
    divergence_lr: float  # the learning rate logged at the divergent step (NaN if none)
    stalls: pd.DataFrame  # STALL_COLUMNS
    spikes: pd.DataFrame  # SPIKE_COLUMNS
    grad_spikes: pd.DataFrame  # SPIKE_COLUMNS on the gradient norm (a heavy tail)
    clip: float | None  # suggested max_grad_norm, or None
    schedule: FittedSchedule | None
    gap: Gap | None
    start_loss: float
    # The run's level at the end: the mean of the last 20% of the logged losses; for a run that
    # diverged, of those before the blow-up began (the records inside the climb left out by
    # core.rules' healthy-loss notion, the one gradient_level uses), steps final_from..final_to.
    final_loss: float
    final_noise: float
    final_from: int  # the first and last step final_loss averages over
    final_to: int
    min_loss: float
    min_step: int
    grad_level: float  # core.rules.gradient_level: the reference for "small"
    loss_noise: float  # point-to-point noise of the logged loss, a share of its level (0: full batch)
    lr_peak: float
    curve: pd.DataFrame  # step, series, value: thinned, finite values only
    evals: pd.DataFrame  # step, train (smoothed), eval, gap (relative)
    fitted: pd.DataFrame  # step, lr: the fitted schedule at the thinned steps
    levels: pd.DataFrame  # step, loss: bucket means of the finite losses, for compare_runs
    extras: pd.DataFrame  # step, series, value: other logged series (thinned), names as data
    verdict: Verdict
    notes: list[str] = field(default_factory=list)

    @property
    def diverged_at(self) -> int | None:
        """The step where the run diverged (core.rules), or None."""
        return None if self.divergence is None else self.divergence.step


# --------------------------------------------------------------------------- detection pieces
def thin_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices to draw `values` with at most ~max_points points: each of max_points / 2 buckets
    keeps its lowest and highest value (so every spike and dip stays), plus the ends.

    >>> thin_indices(np.array([0, 5, 1, 1, 1, 1, 1, 1.0]), 4).tolist()
    [0, 1, 4, 7]
    """
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2)
    size = math.ceil(n / buckets)
    buckets = math.ceil(n / size)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, size)
    filled = np.where(np.isnan(grid), np.inf, grid)
    lo = np.argmin(filled, axis=1)
    hi = np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    base = np.arange(buckets) * size
    keep = np.unique(np.concatenate([base + lo, base + hi, [0, n - 1]]))
    return keep[keep < n]


def _running_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centered running median; near the ends the window shrinks symmetrically (at the first
    point it is the point itself), so a steep start is not mistaken for a spike."""
    med = ndimage.median_filter(np.asarray(x, dtype=float), size=min(window, len(x)), mode="nearest")
    h = min(window // 2, len(x) // 2)
    for i in range(h):
        med[i] = np.median(x[: 2 * i + 1])
        med[-1 - i] = np.median(x[len(x) - 2 * i - 1 :])
    return med


def find_spikes(steps: np.ndarray, values: np.ndarray, z: float = SPIKE_Z, window: int = SPIKE_WINDOW,
                width: int | None = None) -> pd.DataFrame:
    """Spikes of a logged series: step, loss, baseline, ratio, width (see _spikes)."""
    return _spikes(steps, values, z, window, width)[0]


def _despike(values: np.ndarray, mask, base) -> np.ndarray:
    """`values` with every spiking point replaced by the running median around it: what the
    stall detector reads, so a spike does not pass for a window where the loss rose."""
    return np.where(mask, base, values) if mask is not None else values


def _spikes(steps: np.ndarray, values: np.ndarray, z: float = SPIKE_Z, window: int = SPIKE_WINDOW,
            width: int | None = None) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
    """Spikes of a logged series (see the module docstring): step, loss, baseline, ratio, width.

    `values` must be finite. The rule runs on the smoothed series (a trailing mean over `width`
    points; by default just enough to tame the series' own noise, see spike_width), on a log
    scale for a positive series, where mini-batch noise is about symmetric: a point is spiking
    when it exceeds the running median by more than `z` robust standard deviations (1.4826 x the
    running median absolute deviation over 5 windows) and by SPIKE_MIN_RISE of the median.
    Adjacent spiking points are one spike, reported at the step of its highest logged value.

    >>> y = np.ones(100); y[40] = 3.0
    >>> find_spikes(np.arange(100), y)[["step", "loss", "ratio"]].to_dict("records")
    [{'step': 40, 'loss': 3.0, 'ratio': 3.0}]
    """
    out = pd.DataFrame(columns=["step", "loss", "baseline", "ratio", "width"])
    if len(values) < 5:
        return out, None, None
    width = spike_width(values) if width is None else max(1, int(width))
    smoothed = smooth(values, width)
    positive = bool(np.all(smoothed > 0))
    x = np.log(smoothed) if positive else smoothed
    centre = _running_median(x, window)
    resid = x - centre
    # The upper spread (84th percentile of the residuals over 5 windows: one standard deviation
    # for normal noise) rather than the MAD: the mean of a few mini-batch losses is skewed upwards.
    sigma = ndimage.percentile_filter(resid, 84.13, size=min(5 * window, len(resid)), mode="nearest")
    base = np.exp(centre) if positive else centre
    hit = (resid > z * sigma) & ((smoothed - base) > SPIKE_MIN_RISE * np.abs(base))
    idx = np.flatnonzero(hit)
    if not len(idx):
        return out, None, None
    groups = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    rows = []
    mask = np.zeros(len(values), bool)
    for g in groups:
        first = max(0, g[0] - width + 1)  # the trailing mean at g[0] already holds the spike
        top = first + int(np.argmax(values[first : g[-1] + 1]))  # the logged point that spiked
        rows.append(dict(step=int(steps[top]), loss=float(values[top]), baseline=float(base[top]),
                         ratio=float(values[top] / base[top]) if base[top] > 0 else float("inf"), width=len(g)))
        span = np.arange(first, g[-1] + 1)
        mask[span] = (values[span] - base[span]) > SPIKE_MIN_RISE * np.abs(base[span])
    return pd.DataFrame(rows, columns=["step", "loss", "baseline", "ratio", "width"]), mask, base


def spike_width(values: np.ndarray) -> int:
    """Smoothing width for the spike rule: 1 (none) for a clean series; for a noisy one, enough
    points that the mean's noise is under SPIKE_MIN_RISE, at most SPIKE_WINDOW // 4 so a spike
    still stands out from the running median."""
    noise = relative_noise(values)
    return int(min(SPIKE_WINDOW // 4, max(1, math.ceil((noise / SPIKE_MIN_RISE) ** 2))))


def relative_noise(values: np.ndarray, window: int = SPIKE_WINDOW) -> float:
    """Point-to-point noise of a logged loss as a share of its level: 1.4826 x the median absolute
    deviation of log(loss) from its running median (0 for a clean full-batch curve)."""
    v = values[np.isfinite(values)]
    if len(v) < 5:
        return 0.0
    if len(v) > 100_000:  # the noise is local: 20 evenly spread stretches of 5,000 points tell it
        starts = np.linspace(0, len(v) - 5000, 20).astype(int)
        v = np.concatenate([v[a : a + 5000] for a in starts])
    x = np.log(v) if np.all(v > 0) else v / max(float(np.median(np.abs(v))), 1e-12)
    return float(1.4826 * np.median(np.abs(x - _running_median(x, window))))


def _series_of(log: TrainingLog, names) -> str | None:
    return next((c for c in log.steps.columns if c in names), None)


# --------------------------------------------------------------------------- the diagnosis
def run(log: TrainingLog, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Diagnose one training log (see the module docstring). Raises ValueError with a plain
    sentence when there is too little to diagnose."""
    validate(config)
    progress = on_progress or no_progress
    frame = log.steps
    notes: list[str] = []
    # Rows where the training loss was logged (a NaN there is a logged NaN, a divergence);
    # rows of other series only (evaluation rows, a rate logged more often) are left out.
    rows = log.logged("loss").copy()
    first_finite = np.flatnonzero(rows & np.isfinite(frame["loss"].to_numpy()))
    if len(first_finite) < MIN_POINTS:
        raise ValueError(f"The log {log.name!r} has {len(first_finite)} finite training losses; "
                         f"at least {MIN_POINTS} are needed to diagnose it.")
    rows[: first_finite[0]] = False  # nothing diverges before the first loss
    cols = [c for c in ("step", "loss", "grad_norm", "lr") if c in frame]
    train = frame.loc[rows, cols].reset_index(drop=True)
    step = train["step"].to_numpy()
    loss = train["loss"].to_numpy(dtype=float)
    has_grad = "grad_norm" in train and np.isfinite(train["grad_norm"].to_numpy(dtype=float)).sum() >= MIN_POINTS
    grad = train["grad_norm"].to_numpy(dtype=float) if "grad_norm" in train else np.full(len(train), np.nan)
    lr = train["lr"].to_numpy(dtype=float) if "lr" in train else np.full(len(train), np.nan)
    progress(0.05, "divergence")

    # 1) divergence, by the one rule; the rest looks at the part before it
    div_frame = train[["step", "loss"]].assign(grad_norm=np.where(log.logged("grad_norm")[rows], grad, 0.0)) \
        if "grad_norm" in train else train[["step", "loss"]]
    divergence = find_divergence(div_frame, level_window=config.level_window)
    cut = len(train) if divergence is None else int(np.searchsorted(step, divergence.step))
    ok = np.isfinite(loss[:cut])
    s_step, s_loss = step[:cut][ok], loss[:cut][ok]
    s_grad, s_lr = grad[:cut][ok], lr[:cut][ok]
    if len(s_loss) < MIN_POINTS:
        notes.append(f"Only {len(s_loss)} finite losses before the divergence: too few for stalls and spikes.")

    # 2) stalls, with the window in logged points
    interval = float(np.median(np.diff(s_step))) if len(s_step) > 1 else 1.0
    if config.window:
        window_points = max(MIN_WINDOW_POINTS, int(round(config.window / interval)))
    else:
        window_points = max(MIN_WINDOW_POINTS, int(round(AUTO_WINDOW_SHARE * len(s_loss))))
    window_points = min(window_points, max(1, len(s_loss) - 1))
    window_steps = int(round(window_points * interval))
    # The stall page's detector: the loss smoothed over a tenth of a window, core.rules.stall_spans
    # with the raw loss for its noise test. Spikes are replaced by their running median first, so a
    # bad batch does not pass for a window where the loss rose.
    spikes, spike_mask, spike_base = _spikes(s_step, s_loss, config.spike_z)
    clean = _despike(s_loss, spike_mask, spike_base)
    smooth_points = max(1, window_points // 10)
    smoothed = smooth(clean, smooth_points)
    progress(0.2, "stalls")
    grad_level = _grad_level(s_grad, smooth_points, s_loss) if has_grad else float("nan")
    lam_min, lam_max = _series_of(log, LAMBDA_MIN_NAMES), _series_of(log, LAMBDA_MAX_NAMES)
    curv = None
    if lam_min and lam_max:
        both = np.isfinite(frame[lam_min].to_numpy(dtype=float)) & np.isfinite(frame[lam_max].to_numpy(dtype=float))
        curv = frame.loc[both, ["step", lam_min, lam_max]].to_numpy(dtype=float)
    cos_name = _series_of(log, COSINE_NAMES)
    cos = frame.loc[rows, cos_name].to_numpy(dtype=float)[:cut][ok] if cos_name else np.full(len(s_loss), np.nan)
    stalls = _stalls(s_step, clean, smoothed, s_grad, cos, s_lr, window_points, config.rel_eps, has_grad,
                     grad_level, curv)
    if len(s_loss) and len(s_loss) <= window_points:
        notes.append("The log is shorter than one stall window: no stall can be judged.")

    # 3) spikes on the loss, heavy tail on the gradient norm, clipping
    progress(0.4, "spikes")
    at = np.searchsorted(s_step, spikes["step"].to_numpy()) if len(spikes) else np.array([], int)
    spikes = spikes.assign(lr=s_lr[at] if len(at) else [], grad_norm=s_grad[at] if len(at) else [])[SPIKE_COLUMNS]
    g_ok = np.isfinite(s_grad)
    grad_spikes = find_spikes(s_step[g_ok], s_grad[g_ok], config.spike_z) if has_grad else pd.DataFrame(
        columns=["step", "loss", "baseline", "ratio", "width"])
    grad_spikes = grad_spikes.rename(columns={"loss": "grad_norm"})
    clip = None
    if has_grad and (len(spikes) or len(grad_spikes) or divergence is not None) and g_ok.any():
        clip = float(np.quantile(s_grad[g_ok], CLIP_QUANTILE))

    # 4) the schedule
    progress(0.55, "schedule")
    schedule = None
    if "lr" in frame:
        lr_rows = log.logged("lr") & np.isfinite(frame["lr"].to_numpy())
        schedule = fit_schedule(frame["step"].to_numpy()[lr_rows], frame["lr"].to_numpy()[lr_rows])
    lr_peak = float(np.nanmax(lr)) if np.isfinite(lr).any() else float("nan")

    # 5) train vs evaluation loss
    progress(0.75, "evaluation loss")
    gap, evals = _gap(log, s_step, smoothed, config.rel_eps,
                      None if divergence is None else divergence.step)

    # 6) summary numbers and chart data
    start_loss = float(s_loss[0]) if len(s_loss) else float("nan")
    # A diverged run's last losses are the climb itself (0.83 -> 38 before the NaN): its level is
    # the one before the blow-up began, so the climbing records are left out.
    settled = loss_healthy(s_loss) if divergence is not None and len(s_loss) else np.ones(len(s_loss), bool)
    if not settled.any():
        settled[:] = True
    f_step, f_loss = s_step[settled], s_loss[settled]
    final = tail_mean(f_loss) if len(f_loss) else float("nan")
    final_noise = tail_noise(f_loss) if len(f_loss) else float("nan")
    tail_from = len(f_loss) - max(1, math.ceil(0.2 * len(f_loss)))  # tail_mean's share
    final_from = int(f_step[tail_from]) if len(f_step) else 0
    final_to = int(f_step[-1]) if len(f_step) else 0
    i_min = int(np.argmin(smoothed)) if len(smoothed) else 0
    progress(0.85, "charts")
    curve = _curve(step, loss, s_step, smoothed, grad, lr, frame, log, config.max_points)
    fitted = pd.DataFrame(columns=["step", "lr"])
    if schedule is not None:
        fs = np.unique(curve.loc[curve["series"] == "lr", "step"].to_numpy())
        fs = fs[fs < schedule.total_steps]
        fitted = pd.DataFrame({"step": fs.astype(np.int64), "lr": schedule.lr(fs)})
    levels = _levels(s_step, s_loss)
    extras = _extras(log, config.max_points)
    result = Result(
        name=log.name, format=log.format, n_points=int(len(train)), first_step=int(step[0]), last_step=int(step[-1]),
        series=tuple(c for c in ("loss", "grad_norm", "lr", "eval_loss") if c in frame), window=window_steps,
        window_points=window_points, smooth_points=smooth_points, divergence=divergence,
        divergence_lr=float(lr[cut]) if divergence is not None and cut < len(lr) else float("nan"), stalls=stalls,
        spikes=spikes.reset_index(drop=True), grad_spikes=grad_spikes.reset_index(drop=True), clip=clip,
        schedule=schedule, gap=gap, start_loss=start_loss, final_loss=final, final_noise=final_noise,
        final_from=final_from, final_to=final_to,
        min_loss=float(smoothed[i_min]) if len(smoothed) else float("nan"),
        min_step=int(s_step[i_min]) if len(s_step) else 0, grad_level=grad_level,
        loss_noise=relative_noise(clean) if len(s_loss) else 0.0, lr_peak=lr_peak,
        curve=curve, evals=evals, fitted=fitted, levels=levels, extras=extras,
        verdict=Verdict("info", ""), notes=notes,
    )
    result.verdict = make_verdict(result, config)
    progress(1.0, "done")
    return result


def final_loss_words(r: Result) -> tuple[str, str]:
    """The label and tooltip of `final_loss`: 'Loss before the blow-up' for a run that diverged."""
    where = step_range(r.final_from, r.final_to)
    if r.divergence is not None:
        return ("Loss before the blow-up",
                f"Mean of the last 20% of the losses logged before the loss began to climb ({where}); the climb "
                f"up to the divergence at step {r.divergence.step:,} is left out.")
    return "Final loss", f"Mean of the last 20% of the logged losses ({where})."


def _grad_level(grad: np.ndarray, width: int, loss: np.ndarray) -> float:
    """The run's gradient level (core.rules.gradient_level): stretches of at least `width` logged
    points (the smoothing width; the rule makes them at least 10 points), records inside a loss
    blow-up left out."""
    return gradient_level(grad, width, loss=loss)


def _stalls(step, loss, smoothed, grad, cos, lr, window, rel_eps, has_grad, grad_level, curv) -> pd.DataFrame:
    """One row per stall (STALL_COLUMNS): core.rules.stall_spans, each span's kind by the rules.

    Kind: with lambda_min / lambda_max logged inside the span, core.rules.critical_test decides
    (the problem's own scale); else CRITICAL when the gradient collapsed (gradient_collapsed
    against the run's gradient level); else, with the gradient cosine logged, OSCILLATION when it
    oscillates (core.rules.oscillating) and UNCLEAR when not (as the Gradient stall page); without
    a cosine, OSCILLATION (the gradient is not small). PLATEAU when no gradient norm was logged.
    """
    rows = []
    if len(loss) <= window:
        return pd.DataFrame(columns=STALL_COLUMNS)
    lr_peak = float(np.nanmax(lr)) if np.isfinite(lr).any() else float("nan")
    for i, (a, b) in enumerate(stall_spans(smoothed, window, rel_eps, raw=loss), start=1):
        g = grad[a : b + 1]
        g = g[np.isfinite(g)]
        g_med = float(np.median(g)) if len(g) else float("nan")
        c = cos[a : b + 1]
        c = c[np.isfinite(c)]
        cos_mean = float(c.mean()) if len(c) else float("nan")
        eig_min = eig_max = float("nan")
        if curv is not None:
            inside = curv[(curv[:, 0] >= step[a]) & (curv[:, 0] <= step[b])]
            if len(inside):
                eig_min, eig_max = float(np.median(inside[:, 1])), float(np.median(inside[:, 2]))
        kind = stall_kind(g_med if has_grad else float("nan"), grad_level, cos_mean, eig_min, eig_max,
                          loss_scale=float(loss[0]))
        l = lr[a : b + 1]
        l = l[np.isfinite(l)]
        rows.append(dict(
            stall=f"S{i}", start=int(step[a]), end=int(step[b]), steps=int(step[b] - step[a]), kind=kind,
            loss_start=float(smoothed[a]), loss_end=float(smoothed[b]),
            rel_drop=float((smoothed[a] - smoothed[b]) / max(abs(smoothed[a]), 1e-12)),
            grad_median=g_med, grad_ratio=g_med / grad_level if has_grad and grad_level > 0 else float("nan"),
            cos_mean=cos_mean, lr_share=float(np.median(l)) / lr_peak if len(l) and lr_peak > 0 else float("nan"),
            eig_min=eig_min, eig_max=eig_max,
        ))
    return pd.DataFrame(rows, columns=STALL_COLUMNS)


def _gap(log: TrainingLog, step, smoothed, rel_eps, diverged_at):
    """(Gap or None, evals frame) from the evaluation rows before any divergence."""
    empty = pd.DataFrame(columns=["step", "train", "eval", "gap"])
    if "eval_loss" not in log.steps or len(step) < 2:
        return None, empty
    ev = log.steps.loc[log.logged("eval_loss"), ["step", "eval_loss"]]
    ev = ev[np.isfinite(ev["eval_loss"].to_numpy())]
    if diverged_at is not None:
        ev = ev[ev["step"] < diverged_at]
    ev = ev[(ev["step"] >= step[0]) & (ev["step"] <= step[-1])]
    if len(ev) < 3:
        return None, empty
    e_step = ev["step"].to_numpy()
    e_loss = ev["eval_loss"].to_numpy(dtype=float)
    train_at = np.interp(e_step, step, smoothed)
    rel = (e_loss - train_at) / np.maximum(np.abs(train_at), 1e-12)
    evals = pd.DataFrame({"step": e_step.astype(np.int64), "train": train_at, "eval": e_loss, "gap": rel})
    best = int(np.argmin(e_loss))
    above = rel > GAP_OPEN
    opens = None
    if above[-1]:
        below = np.flatnonzero(~above)
        opens = int(e_step[below[-1] + 1]) if len(below) else int(e_step[0])
    after = e_loss[best:]
    rise = compare("eval_loss", "best", [float(e_loss[best])], "end", [float(e_loss[-1])], higher_is_better=False,
                   noise=tail_noise(after) if len(after) >= 3 else 0.0, split="validation", min_relative=rel_eps)
    gap = Gap(int(e_step[best]), float(e_loss[best]), int(e_step[-1]), float(e_loss[-1]), float(train_at[best]),
              float(train_at[-1]), opens, float(rel[-1]), rise, len(ev))
    return gap, evals


def _curve(step, loss, s_step, smoothed, grad, lr, frame, log, max_points) -> pd.DataFrame:
    """Long frame (step, series, value) of the charted series, thinned, finite values only."""
    parts = []

    def add(name, x, y):
        ok = np.isfinite(y)
        x, y = x[ok], y[ok]
        keep = thin_indices(y, max_points)
        parts.append(pd.DataFrame({"step": x[keep].astype(np.int64), "series": name, "value": y[keep]}))

    add("loss", step, loss)
    add("smoothed loss", s_step, smoothed)
    if np.isfinite(grad).any():
        add("grad_norm", step, grad)
    if np.isfinite(lr).any():
        lr_rows = log.logged("lr")
        add("lr", frame["step"].to_numpy()[lr_rows], frame["lr"].to_numpy(dtype=float)[lr_rows])
    if "eval_loss" in frame:
        ev = log.logged("eval_loss")
        add("eval_loss", frame["step"].to_numpy()[ev], frame["eval_loss"].to_numpy(dtype=float)[ev])
    return pd.concat(parts, ignore_index=True)


def _levels(step, loss) -> pd.DataFrame:
    """Bucket means of the finite losses (at most LEVEL_POINTS), for comparing runs."""
    n = len(loss)
    if n <= LEVEL_POINTS:
        return pd.DataFrame({"step": step.astype(np.int64), "loss": loss})
    edges = np.linspace(0, n, LEVEL_POINTS + 1).astype(int)
    sums = np.add.reduceat(loss, edges[:-1])
    counts = np.diff(edges)
    return pd.DataFrame({"step": step[edges[1:] - 1].astype(np.int64), "loss": sums / counts})


def _extras(log: TrainingLog, max_points: int, limit: int = 12) -> pd.DataFrame:
    """Other logged numeric series (update ratios, curvature, epoch, ...): names kept as data."""
    parts = []
    for c in [c for c in log.steps.columns if c not in ("step", "loss", "grad_norm", "lr", "eval_loss")][:limit]:
        y = log.steps[c].to_numpy(dtype=float)
        ok = np.isfinite(y)
        if not ok.any():
            continue
        x, y = log.steps["step"].to_numpy()[ok], y[ok]
        keep = thin_indices(y, max_points)
        parts.append(pd.DataFrame({"step": x[keep].astype(np.int64), "series": str(c), "value": y[keep]}))
    if not parts:
        return pd.DataFrame({"step": pd.Series(dtype=np.int64), "series": pd.Series(dtype=str),
                             "value": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- several runs
@dataclass(eq=False)
class RunComparison:
    """Several runs side by side: a table (one row per run), the comparisons and a verdict."""

    table: pd.DataFrame
    horizon: int  # the step every compared run reached: levels are compared there
    comparisons: list[Comparison]
    verdict: Verdict


def compare_runs(results: list[Result]) -> RunComparison:
    """The same diagnoses side by side, and which run reached the lowest loss by the step they
    all reached (only beyond each run's noise, by findings.compare)."""
    keys = [f"run{i}" for i in range(len(results))]
    alive = [(k, r) for k, r in zip(keys, results) if len(r.levels)]
    horizon = min((int(r.levels["step"].iloc[-1]) for _, r in alive), default=0)
    rows, levels = [], {}
    for k, r in zip(keys, results):
        lv = r.levels[(r.levels["step"] <= horizon) & (r.levels["step"] > 0.8 * horizon)]["loss"].to_numpy()
        if not len(lv) and len(r.levels):
            lv = r.levels[r.levels["step"] <= horizon]["loss"].to_numpy()[-1:]
        diverged_before = r.divergence is not None and r.divergence.step <= horizon
        level = float(lv.mean()) if len(lv) and not diverged_before else float("nan")
        # the yardstick is the loss's spread near the horizon (detrended), not the standard error
        # of its mean: two runs of one config differ by more than their means' standard errors
        noise = tail_noise(lv, share=1.0) * math.sqrt(len(lv)) if len(lv) >= 3 else 0.0
        levels[k] = (level, noise)
        rows.append(dict(run=r.name, format=r.format, logged_points=r.n_points, last_step=r.last_step,
                         loss_at_horizon=level, final_loss=r.final_loss, diverged_at=r.diverged_at,
                         stalls=len(r.stalls), spikes=len(r.spikes),
                         schedule=r.schedule.describe() if r.schedule is not None else "",
                         best_eval=r.gap.best_eval if r.gap is not None else float("nan"),
                         verdict=r.verdict.kind))
    table = pd.DataFrame(rows)
    table["diverged_at"] = table["diverged_at"].astype("Int64")
    labels = dict(zip(keys, (r.name for r in results)))
    finite = [k for k in keys if math.isfinite(levels[k][0])]
    comparisons = []
    if len(finite) >= 2:
        best = min(finite, key=lambda k: levels[k][0])
        for k in finite:
            if k != best:
                noise = max(levels[best][1], levels[k][1])
                comparisons.append(compare("loss_at_horizon", best, [levels[best][0]], k, [levels[k][0]],
                                           higher_is_better=False, noise=noise, split="train"))
    return RunComparison(table, horizon, comparisons, _comparison_verdict(results, labels, comparisons, horizon))


def overlay_frame(results: list[Result], labels: list[str], series: str = "smoothed loss",
                  max_rows: int = 4000) -> pd.DataFrame:
    """One series of several runs in one long frame (step, run, value) for an overlay chart,
    thinned so the whole chart stays under `max_rows` (min/max buckets keep every spike)."""
    per_run = max(100, max_rows // max(1, len(results)))
    parts = []
    for r, label in zip(results, labels):
        part = r.curve[r.curve["series"] == series]
        keep = thin_indices(part["value"].to_numpy(), per_run)
        parts.append(pd.DataFrame({"step": part["step"].to_numpy()[keep], "run": label,
                                   "value": part["value"].to_numpy()[keep]}))
    if not parts:
        return pd.DataFrame({"step": pd.Series(dtype=np.int64), "run": pd.Series(dtype=str),
                             "value": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)


def _comparison_verdict(results, labels, comparisons, horizon) -> Verdict:
    parts = []
    diverged = [r for r in results if r.divergence is not None]
    for r in diverged:
        parts.append(f"{r.name} diverged at step {r.divergence.step:,}.")
    if comparisons:
        winner = comparisons[0].a
        beaten = [labels[c.b] for c in comparisons if c.winner == winner]
        tied = [labels[c.b] for c in comparisons if c.winner is None]
        lvl = comparisons[0].a_value
        if beaten:
            parts.append(f"By step {horizon:,} (the last step all runs reached), {labels[winner]} had the lowest "
                         f"training loss ({num(lvl)}), lower than " + ", ".join(
                             f"{labels[c.b]} ({num(c.b_value)})" for c in comparisons if c.winner == winner)
                         + " beyond the runs' noise.")
        if tied:
            parts.append(f"No clear difference at step {horizon:,} between {labels[winner]} ({num(lvl)}) and "
                         + ", ".join(f"{labels[c.b]} ({num(c.b_value)})" for c in comparisons if c.winner is None)
                         + ": within the noise of the logged losses.")
    elif len(results) >= 2 and not diverged:
        parts.append("The runs cannot be compared: no step that all of them reached.")
    kind = "warning" if diverged else "info"
    return Verdict(kind, " ".join(parts) or "One run: nothing to compare.",
                   "Compare runs at the same step and with the same logging interval; a training loss says "
                   "nothing about generalization, compare evaluation losses for that." if comparisons else "")


# --------------------------------------------------------------------------- verdict
def _others(r: Result, main: str) -> str:
    """The stalls and spikes a verdict about something else still mentions (with their steps)."""
    out = []
    if main != "spikes" and len(r.spikes):
        out.append(f"{_count(len(r.spikes), 'loss spike')} at step{'s' if len(r.spikes) > 1 else ''} "
                   + ", ".join(f"{int(x):,}" for x in r.spikes["step"][:6]) + (" …" if len(r.spikes) > 6 else "") + ".")
    if main not in ("stalls", "divergence") and len(r.stalls):
        out.append(f"{_count(len(r.stalls), 'stall')}: " + ", ".join(step_range(a, b) for a, b in
                                                                     zip(r.stalls["start"], r.stalls["end"])) + ".")
    return (" " + " ".join(out)) if out else ""


def make_verdict(r: Result, config: Config) -> Verdict:
    """The plain-language answer, worded from the findings only.

    Order: divergence; overfitting; spikes; a stall (oscillation, a critical point from the
    start, a plateau with no gradient logged, the schedule running down); then all clear.
    Other findings are listed after the main one.
    """
    extra = _side_findings(r)
    clip = _clip_advice(r)
    if r.divergence is not None:
        where = f" The learning rate there was {num(r.divergence_lr)}." if math.isfinite(r.divergence_lr) else ""
        before = (f" Before that, the loss stalled at {', '.join(step_range(a, b) for a, b in zip(r.stalls['start'], r.stalls['end']))}."
                  if len(r.stalls) else "")
        return Verdict("problem", divergence_sentence(r.divergence) + where + before + _others(r, "divergence") + extra,
                       "Lower the peak learning rate (2-10x) or warm up longer" + (f"; {clip}" if clip else "")
                       + "; check the data of that step for NaN or extreme values.")
    if r.gap is not None and r.gap.overfitting:
        g = r.gap
        opens = f" The evaluation loss stays more than {pct(GAP_OPEN)} above the training loss from step {g.opens_at:,}." \
            if g.opens_at is not None else ""
        return Verdict(
            "warning",
            f"Overfitting: the evaluation loss was lowest at step {g.best_step:,} ({num(g.best_eval)}) and rose to "
            f"{num(g.end_eval)} by step {g.end_step:,} ({_rise(g.end_eval / g.best_eval - 1)}), beyond the noise, while "
            f"the training loss kept falling ({num(g.train_at_best)} → {num(g.train_at_end)}).{opens}{_others(r, 'gap')}{extra}",
            f"Keep the model from step {g.best_step:,} (early stopping; load_best_model_at_end in the Hugging Face "
            "Trainer), add weight decay or dropout, or get more data.")
    if len(r.spikes):
        top = r.spikes.loc[r.spikes["ratio"].idxmax()]
        lr_txt = f" at learning rate {num(top['lr'])}" if math.isfinite(top["lr"]) else ""
        steps_txt = ", ".join(f"{int(s):,}" for s in r.spikes["step"][:6]) + (" …" if len(r.spikes) > 6 else "")
        return Verdict(
            "warning",
            f"{_count(len(r.spikes), 'loss spike')} (at step{'s' if len(r.spikes) > 1 else ''} {steps_txt}): the "
            f"largest, at step {int(top['step']):,}{lr_txt}, reached {num(top['loss'])}, {_x(top['ratio'])} the "
            f"smoothed loss around it ({num(top['baseline'])}).{_others(r, 'spikes')}{extra}",
            (capital(clip) + "; " if clip else "Log the gradient norm to size a clipping threshold; ")
            + "if spikes come at the peak of the schedule, lower the peak rate or warm up longer; "
            "look for bad batches at the spike steps.")
    if len(r.stalls):
        return _stall_verdict(r, _others(r, "stalls") + extra)
    fell = r.final_loss < r.start_loss * (1 - config.rel_eps)
    if not fell:
        return Verdict("warning", f"The loss did not fall: {num(r.start_loss)} at the start, {num(r.final_loss)} at the "
                       f"end (mean of the last 20%).{extra}",
                       "Check the learning rate (the Learning rate page's range test) and the data pipeline.")
    return Verdict("good", f"No divergence, no spike and no stall: no {r.window:,}-step window or longer "
                   f"was shown to fall by less than {pct(config.rel_eps)} per window beyond its step-to-step noise "
                   f"(the stall rule); {num(r.start_loss, 4)} → {num(r.final_loss, 4)} (mean of the "
                   f"last 20%).{extra}",
                   "Nothing is stuck; if the loss is still falling at the end, train longer.")


def _stall_verdict(r: Result, extra: str) -> Verdict:
    stalls = r.stalls
    osc = stalls[stalls["kind"] == OSCILLATION]
    small = stalls[stalls["kind"] == SMALL_STEPS]
    crit = stalls[stalls["kind"] == CRITICAL]
    plat = stalls[stalls["kind"] == PLATEAU]
    unclear = stalls[stalls["kind"] == UNCLEAR]
    count = ""
    if len(stalls) > 1:  # the Gradient stall page's count sentence
        count = (f" {len(stalls)} stalls in all: {len(crit)} at a critical point, {len(osc) + len(small)} with a "
                 f"gradient that is not ~0" + (f" ({len(small)} with steps too small)" if len(small) else "")
                 + (f", {len(unclear)} unclear" if len(unclear) else "")
                 + (f", {len(plat)} with no gradient logged" if len(plat) else "") + ".")
    s = stalls.loc[stalls["steps"].idxmax()]  # the longest stall speaks
    where = f"Stalled at {_span(s)}"
    lr_low = math.isfinite(s["lr_share"]) and s["lr_share"] < LOW_LR_SHARE
    lr_txt = (f" The learning rate there was {pct(s['lr_share'])} of its peak: the schedule had run down, so "
              "the steps were tiny." if lr_low else "")
    if math.isfinite(s["lr_share"]) and not lr_low and s["lr_share"] < 0.5:
        lr_txt = f" The learning rate there was {pct(s['lr_share'])} of its peak."
    at_end = s["end"] >= r.last_step - max(1, r.window // 10)
    progressed = r.final_loss < r.start_loss * 0.9
    if s["kind"] == PLATEAU:
        return Verdict("warning" if not (at_end and progressed) else "info",
                       f"{where}. No gradient norm was "
                       f"logged, so this plateau cannot be told apart as a critical point (gradient ~0) or an "
                       f"oscillation (gradient not small).{lr_txt}{count}{extra}",
                       "Log the gradient norm (grad_norm: the Hugging Face Trainer logs it; in your own loop "
                       "core.probe.Probe writes it to TensorBoard) and upload the log again.")
    g = f"|g| = {num(s['grad_median'])}, {pct(s['grad_ratio'], 3)} of the run's gradient level ({num(r.grad_level)})"
    cos = f"; successive gradients have cosine {num(s['cos_mean'], 2)}" if math.isfinite(s["cos_mean"]) else ""
    if s["kind"] == UNCLEAR:
        return Verdict("info", f"{where}: the gradient neither collapsed ({g}) nor bounces{cos}; the log cannot tell "
                               f"the cause.{lr_txt}{count}{extra}",
                       "Log lambda_min and lambda_max (core.probe's curvature_every) to judge the point by its curvature.")
    if s["kind"] in (OSCILLATION, SMALL_STEPS):
        if lr_low:
            return Verdict("info" if progressed else "warning",
                           f"{where} with the gradient not small ({g}).{lr_txt}{count}{extra}",
                           "Nothing to fix if this is the end of the schedule; if the loss is still too high, use a "
                           "higher final rate (min_lr) or a longer schedule.")
        if s["kind"] == SMALL_STEPS:  # core.rules.stall_kind: successive gradients aligned
            return Verdict("warning",
                           f"{where} but the gradient is not small ({g}{cos}): successive gradients point the same "
                           "way, so every step goes downhill but is too short; the learning rate is too small, not "
                           f"a critical point.{lr_txt}{count}{extra}",
                           "Raise the learning rate (try 10x; the Learning rate page's range test finds the largest "
                           "stable one), or use an adaptive optimizer (Adam).")
        return Verdict("warning",
                       f"{where} but the gradient is not small ({g}{cos}): the loss is flat because the steps are too large "
                       f"for the curvature{' (or for the mini-batch noise)' if r.loss_noise > NOISY else ''} and "
                       f"bounce across the valley, not because of a critical point.{lr_txt}{count}{extra}",
                       "Lower the learning rate, decay it with a schedule, or use an adaptive optimizer (Adam); "
                       "see the Learning rate page.")
    curv = (f" (logged curvature: λ_min = {num(s['eig_min'])}, λ_max = {num(s['eig_max'])}"
            + ("; a negative λ_min: a saddle point)" if s["eig_min"] < 0 else ")")) if math.isfinite(s["eig_min"]) else (
        " (a minimum or a saddle: log λ_min with core.probe's curvature_every to tell which)")
    text = f"{where} with the gradient ~0 ({g}): a critical point{curv}.{lr_txt}{count}{extra}"
    if s["start"] <= r.first_step + r.window and not progressed:
        return Verdict("warning", "Stuck from the start. " + text,
                       "The weights start in a flat region (a saddle near the origin): try another initial scale, "
                       "another activation (ReLU), or momentum; see the Saddle escape page.")
    if at_end and progressed:
        return Verdict("good", "Levelled off at the end. " + text,
                       "More steps of the same optimizer will not lower the loss; if it is still too high, try a "
                       "larger model or another initialization.")
    escaped = r.final_loss < s["loss_end"] * (1 - 0.01)
    after = (f" The run left it: the loss fell from {num(s['loss_end'])} to {num(r.final_loss)}." if escaped
             else " The run never left it.")
    return Verdict("info" if escaped else "warning", text + after,
                   "A saddle plateau is left faster with momentum or a larger initial scale; see the Saddle escape page.")


def _span(s) -> str:
    """'steps 0–588 (loss 1 → 0.9902, a 0.98% fall over 588 steps)': the Gradient stall page's words."""
    drop = s["rel_drop"]
    change = f"a {pct(drop)} fall" if drop >= 0 else f"a {pct(-drop)} rise"
    return (f"{step_range(s['start'], s['end'])} (loss {num(s['loss_start'], 4)} → {num(s['loss_end'], 4)}, {change} "
            f"over {int(s['end'] - s['start']):,} steps)")


def _side_findings(r: Result) -> str:
    """Short sentences for the findings that are not the verdict's main one."""
    out = []
    if r.schedule is not None:
        out.append(r.schedule.sentence())
    if len(r.grad_spikes) and not len(r.spikes):
        out.append(f"The gradient norm has a heavy tail: {_count(len(r.grad_spikes), 'spike')} above its running median.")
    if r.gap is not None and not r.gap.overfitting and r.divergence is None:
        g = r.gap
        if g.opens_at is not None:
            out.append(f"The evaluation loss stays more than {pct(GAP_OPEN)} above the training loss from step "
                       f"{g.opens_at:,} (it ends {_rise(g.end_gap)} over it).")
        else:
            out.append(f"The evaluation loss ends {_rise(abs(g.end_gap))} {'above' if g.end_gap >= 0 else 'below'} the "
                       f"training loss, lowest at step {g.best_step:,}.")
    return (" " + " ".join(out)) if out else ""


def _clip_advice(r: Result) -> str:
    if r.clip is None:
        return ""
    return (f"clip gradients at about {num(r.clip)} (the {CLIP_QUANTILE:.0%} quantile of the logged gradient norm): "
            f"max_grad_norm={num(r.clip)} in the Hugging Face Trainer, or "
            f"torch.nn.utils.clip_grad_norm_(model.parameters(), {num(r.clip)})")


def _rise(share: float) -> str:
    """A relative change: '+18%' below doubling, '3.2x' above (no '1.5e+02%')."""
    return f"+{pct(share, 3)}" if share < 1 else _x(1 + share)


def _x(ratio: float) -> str:
    """'37x', '1,463x'."""
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2g}x"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'s' if n != 1 else ''}"
