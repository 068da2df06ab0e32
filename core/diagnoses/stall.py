"""Gradient-norm stall detector: where did the loss stop falling, and why?

The lecture (section 2) gives two answers to "my loss stopped going down":
- the gradient is ~0: the parameters sit near a critical point, and the Hessian says which kind
  (saddle point, local minimum, flat);
- the gradient is not ~0 but the loss does not fall: the step is too large for the curvature
  and bounces across a valley (successive gradients point in opposite directions).

`run` trains the lab model (or the built-in stall scenario) with the one training loop, finds the
stalls with a sliding window, labels each one by its gradient norm, and classifies the critical
ones with core.curvature at a parameter snapshot taken inside the stall, and the end of training.
`toy_point` does the same classification on the lecture's one-sample network y = w1*w2*x.

>>> from core.lab import LabSetup
>>> from core.data import load_builtin
>>> res = run(load_builtin("moons"), LabSetup(), Config(steps=300))      # doctest: +SKIP
>>> res.stalls[["start", "end", "kind"]]                                 # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from core.curvature import EXACT_MAX_PARAMS, classify_point, hessian_eigenvalues, model_loss
from core.data import Dataset, load_builtin
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp, n_params, toy_loss
from core.train import (
    BLOWUP_FACTOR, OPTIMIZERS, TrainConfig, first_blowup, make_loss, set_flat_params, split_data, train,
    validate_config,
)

CRITICAL = "critical point"
MAX_CURVE_ROWS = 4000  # Altair refuses to export a chart whose data has more than 5,000 rows
OSCILLATION = "oscillation"


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
    grad_rel: float = 0.05  # critical when the stall's median |g| <= grad_rel x the run's peak |g|
    grad_floor: float = 1e-4  # ... or <= this absolute floor
    max_classified: int = 3  # critical stalls classified with the Hessian (each costs HVPs)
    spectrum: bool = True  # full eigenvalue spectrum when the model has <= EXACT_MAX_PARAMS params
    escape_points: int = 41  # points t of the 1-D escape plot L(theta + t u)


@dataclass(eq=False)
class Result:
    """Everything the page shows: numpy, floats and DataFrames only (pickled by the cache)."""

    steps: pd.DataFrame  # step, loss, grad_norm, grad_cos, lr, smooth_loss, window_drop, flat
    curve: pd.DataFrame  # `steps` thinned to at most MAX_CURVE_ROWS rows, for charts
    stalls: pd.DataFrame  # one row per stall, see STALL_COLUMNS
    points: pd.DataFrame  # one row per classified point (stalls' snapshots and the end)
    spectra: pd.DataFrame  # point, eigenvalue (exact spectra; empty when the model is too big)
    histogram: pd.DataFrame  # point, bin_start, bin_end, count, sign
    escape: pd.DataFrame  # point, t, loss, quadratic (loss along the escape direction)
    verdict: Verdict
    n_params: int
    task: str
    model: str  # the model's one-line description
    data_name: str
    grad_peak: float  # the largest gradient norm of the run (reference for "tiny")
    grad_threshold: float  # a stall is critical when its median |g| is at or below this
    diverged_at: int | None
    divergence: str | None
    final_loss: float  # full training loss at the end (last finite step loss if diverged)
    scenario: bool
    notes: list[str] = field(default_factory=list)


STALL_COLUMNS = ["stall", "start", "end", "steps", "kind", "loss_start", "loss_end", "rel_drop",
                 "grad_median", "grad_ratio", "cos_mean", "point_kind", "eig_min", "eig_max"]
POINT_COLUMNS = ["point", "step", "loss", "grad_norm", "kind", "eig_min", "eig_max", "tolerance",
                 "neg_share", "min_ratio", "n_eigenvalues", "n_hvp", "sentence"]


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
    if not 0 < config.grad_rel < 1:
        raise ValueError("The relative gradient threshold must be between 0 and 1.")
    if not config.grad_floor >= 0:
        raise ValueError("The absolute gradient floor must be zero or more.")
    if config.max_classified < 0:
        raise ValueError("The number of classified stalls cannot be negative.")
    if config.escape_points < 3:
        raise ValueError("The escape plot needs at least 3 points.")


# --------------------------------------------------------------------------- detection
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
    drop = np.full(len(loss), np.nan)
    if len(loss) > window:
        before, after = loss[:-window], loss[window:]
        drop[window:] = (before - after) / np.maximum(np.abs(before), 1e-12)
    return drop


def stall_windows(flat: np.ndarray, window: int) -> list[tuple[int, int]]:
    """Merge the windows [t - window, t] of every flat step t into disjoint (start, end) ranges.

    >>> stall_windows(np.array([False, False, True, True, False, False, False, True]), 2)
    [(0, 3), (5, 7)]
    """
    spans: list[tuple[int, int]] = []
    for t in np.flatnonzero(flat):
        start = int(t) - window
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], int(t))
        else:
            spans.append((start, int(t)))
    return spans


def detect_stalls(steps: pd.DataFrame, window: int, rel_eps: float, grad_threshold: float) -> pd.DataFrame:
    """Stalls of a run: where the smoothed loss fell by less than `rel_eps` over `window` steps.

    `steps` needs columns step, loss, grad_norm and optionally grad_cos (as History.steps). A
    stall is a "critical point" stall when its median gradient norm is at or below
    `grad_threshold`, an "oscillation" stall otherwise. Adds smooth_loss, window_drop and flat
    columns to `steps` (in place) and returns one row per stall.
    """
    loss = steps["loss"].to_numpy(dtype=float)
    grads = steps["grad_norm"].to_numpy(dtype=float)
    cos = steps["grad_cos"].to_numpy(dtype=float) if "grad_cos" in steps else np.full(len(loss), np.nan)
    s = smooth(loss, max(1, window // 10))
    drop = window_drop(s, window)
    flat = np.nan_to_num(drop, nan=np.inf) < rel_eps
    steps["smooth_loss"], steps["window_drop"], steps["flat"] = s, drop, flat
    rows = []
    for i, (a, b) in enumerate(stall_windows(flat, window), start=1):
        g = float(np.median(grads[a : b + 1]))
        c = cos[a : b + 1]
        c = c[np.isfinite(c)]
        rows.append(dict(
            stall=f"S{i}", start=int(steps["step"].iloc[a]), end=int(steps["step"].iloc[b]), steps=b - a,
            kind=CRITICAL if g <= grad_threshold else OSCILLATION,
            loss_start=float(s[a]), loss_end=float(s[b]),
            rel_drop=float((s[a] - s[b]) / max(abs(s[a]), 1e-12)),
            grad_median=g, grad_ratio=float("nan"), cos_mean=float(c.mean()) if len(c) else float("nan"),
            point_kind="", eig_min=float("nan"), eig_max=float("nan"),
        ))
    return pd.DataFrame(rows, columns=STALL_COLUMNS)


# --------------------------------------------------------------------------- classification
def escape_profile(f, theta: torch.Tensor, direction: np.ndarray, eig_min: float, n: int = 41,
                   target_fall: float = 0.05) -> pd.DataFrame:
    """The loss along a line, L(theta + t u) for t in [-a, a], and its quadratic model.

    `a` is chosen so the quadratic model L0 + g.u t + eig_min t^2 / 2 predicts a fall of
    `target_fall` x |L0| at the ends (clipped to [1e-3, 5]): far enough to see the fall, near
    enough for the second-order picture to hold.
    """
    u = torch.as_tensor(direction, dtype=theta.dtype)
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


def _classify(model, loss_fn, split, params: np.ndarray, label: str, step: int, grad_tol: float,
              config: Config, spectrum: bool) -> tuple[dict, np.ndarray | None, pd.DataFrame | None]:
    """Classify one parameter vector: a points row, its spectrum and its escape profile."""
    set_flat_params(model, params)
    f, theta = model_loss(model, loss_fn, split.X_train, split.y_train)
    cp = classify_point(f, theta, grad_tol=grad_tol)
    eigs = hessian_eigenvalues(f, theta) if spectrum else None
    row = dict(point=label, step=step, loss=cp.loss, grad_norm=cp.grad_norm, kind=cp.kind,
               eig_min=cp.eig_min, eig_max=cp.eig_max, tolerance=cp.tolerance,
               neg_share=float("nan"), min_ratio=float("nan"), n_eigenvalues=0, n_hvp=cp.n_hvp,
               sentence=cp.sentence)
    if eigs is not None:
        row.update(neg_share=float(np.mean(eigs < -cp.tolerance)),
                   min_ratio=float(np.mean(eigs > cp.tolerance)), n_eigenvalues=len(eigs),
                   n_hvp=cp.n_hvp + len(eigs))
    escape = None
    if cp.escape_direction is not None:
        escape = escape_profile(f, theta, cp.escape_direction, cp.eig_min, config.escape_points)
        escape.insert(0, "point", label)
    return row, eigs, escape


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
    """Train, find the stalls, classify the critical ones and the end point, write a verdict.

    With `config.scenario` the lab data, model and optimizer are replaced by SCENARIO.
    """
    validate(config)
    on_progress = on_progress or no_progress
    notes: list[str] = []
    if config.scenario:
        sc = SCENARIO
        data = load_builtin(sc.dataset, seed=sc.seed)
        spec, seed = ModelSpec(hidden=sc.hidden, activation=sc.activation, init_scale=sc.init_scale), sc.seed
        train_cfg = TrainConfig(optimizer=sc.optimizer, lr=sc.lr, max_steps=sc.steps, schedule=sc.schedule, seed=seed)
    else:
        spec, seed = setup.model, setup.seed
        train_cfg = TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=config.steps,
                                batch_size=config.batch_size, seed=seed)
    window, total = config.window, train_cfg.max_steps
    if window >= total:
        raise ValueError(f"The window ({window} steps) must be shorter than the run ({total} steps).")
    # A stall lasts at least one window, so a snapshot every half window lands inside each one.
    # The stall detector reads per-step records only: evaluate the splits once, at the end.
    train_cfg = replace(train_cfg, snapshot_every=max(1, window // 2), record_grad_cosine=True, eval_every=total)

    split = split_data(data, train_cfg.scaler, train_cfg.val_fraction, seed)
    validate_config(train_cfg, len(split.X_train))  # before training: a too-large batch fails fast
    model = build_mlp(spec, split.n_features, split.n_outputs, seed=seed)
    n = n_params(model)
    loss_fn = make_loss(train_cfg.loss, split.task, split.n_classes)

    on_train = sub_progress(on_progress, 0.0, 0.7)
    hist = train(model, split, train_cfg, on_step=lambda k, tot, loss: on_train(k / tot, f"step {k:,} of {tot:,}"))

    steps = hist.steps.copy()
    finite = steps[np.isfinite(steps["loss"]) & np.isfinite(steps["grad_norm"])].copy()
    grads = finite["grad_norm"].to_numpy()
    grad_peak = float(grads.max()) if len(grads) else float("nan")
    threshold = max(config.grad_floor, config.grad_rel * grad_peak) if len(grads) else config.grad_floor
    stalls = detect_stalls(finite, window, config.rel_eps, threshold)
    steps = steps.join(finite[["smooth_loss", "window_drop", "flat"]])
    if len(stalls):
        stalls["grad_ratio"] = stalls["grad_median"] / grad_peak

    # Curvature: the longest few critical stalls (at a snapshot near their middle), then the end.
    spectrum = config.spectrum and n <= EXACT_MAX_PARAMS
    if config.spectrum and not spectrum:
        notes.append(f"The model has {n:,} parameters, more than {EXACT_MAX_PARAMS:,}: no full spectrum "
                     "(the extreme eigenvalues come from Lanczos iterations).")
    critical = stalls[stalls["kind"] == CRITICAL]
    chosen = critical.nlargest(config.max_classified, "steps").sort_values("start") if len(critical) else critical
    if len(critical) > len(chosen):
        notes.append(f"{len(critical)} critical-point stalls; the {len(chosen)} longest were classified.")
    jobs = []
    for idx, stall in chosen.iterrows():
        snap = _pick_snapshot(hist.snapshots, stall["start"], stall["end"])
        if snap is not None:
            jobs.append((idx, f"{stall['stall']} (step {snap})", snap, hist.snapshots[snap]))
    if hist.diverged_at is None and hist.final_params is not None:
        jobs.append((None, f"end (step {total})", total, hist.final_params))
    elif hist.diverged_at is not None:
        notes.append("The run diverged, so its end point was not classified.")

    point_rows, spectra, hists, escapes = [], [], [], []
    for i, (idx, label, step, params) in enumerate(jobs):
        on_progress(0.7 + 0.3 * i / max(1, len(jobs)), f"curvature at {label}")
        row, eigs, esc = _classify(model, loss_fn, split, params, label, step, threshold, config, spectrum)
        point_rows.append(row)
        if eigs is not None:
            spectra.append(pd.DataFrame({"point": label, "eigenvalue": eigs}))
            hists.append(spectrum_histogram(eigs, row["tolerance"]).assign(point=label))
        if esc is not None:
            escapes.append(esc)
        if idx is not None:
            stalls.loc[idx, ["point_kind", "eig_min", "eig_max"]] = [row["kind"], row["eig_min"], row["eig_max"]]
    on_progress(1.0, "done")

    points = pd.DataFrame(point_rows, columns=POINT_COLUMNS)
    # The end point's loss is the full training loss after the last update: the number the verdict
    # and the points table share (the last per-step loss was taken before that update).
    final_loss = float(points["loss"].iloc[-1]) if jobs and jobs[-1][0] is None else hist.final_loss
    spectra_df = pd.concat(spectra, ignore_index=True) if spectra else pd.DataFrame(columns=["point", "eigenvalue"])
    hist_df = (pd.concat(hists, ignore_index=True)[["point", "bin_start", "bin_end", "count", "sign"]] if hists
               else pd.DataFrame(columns=["point", "bin_start", "bin_end", "count", "sign"]))
    escape_df = (pd.concat(escapes, ignore_index=True) if escapes
                 else pd.DataFrame(columns=["point", "t", "loss", "quadratic"]))
    if train_cfg.batch_size is not None and train_cfg.batch_size < len(split.X_train):
        notes.append("Mini-batches: each step's loss and gradient come from one batch, so the gradient "
                     "norm never vanishes and stalls look like oscillation; full batch gives the clean test.")
    result = Result(
        steps=steps, curve=thin(steps, MAX_CURVE_ROWS), stalls=stalls, points=points, spectra=spectra_df, histogram=hist_df, escape=escape_df,
        verdict=Verdict("info", ""), n_params=n, task=split.task, model=spec.describe(), data_name=data.name,
        grad_peak=grad_peak, grad_threshold=threshold, diverged_at=hist.diverged_at,
        divergence=hist.divergence_message(), final_loss=final_loss, scenario=config.scenario, notes=notes,
    )
    result.verdict = make_verdict(result, window, config.rel_eps)
    return result


# --------------------------------------------------------------------------- verdict
def make_verdict(result: Result, window: int, rel_eps: float) -> Verdict:
    """The plain-language answer, with the numbers, from a finished Result.

    Order: divergence; no stall; the loss ended above where it started (step far too large);
    a saddle; an oscillation; a critical stall at the end after real progress (converged).
    """
    stalls, points = result.stalls, result.points
    first_loss = float(result.steps["loss"].iloc[0])
    end = points[points["point"].str.startswith("end")]
    end_text = ""
    if len(end):
        e = end.iloc[0]
        where = "are not at a critical point" if e["kind"] == "not critical" else f"sit at {_a(e['kind'])}"
        end_text = (f" At the end of training (loss {e['loss']:.4g}, |g| = {e['grad_norm']:.2g}) the parameters "
                    f"{where} (λ_min = {e['eig_min']:.3g}, λ_max = {e['eig_max']:.3g}).")
    if result.diverged_at is not None:
        before = f" Before that, {len(stalls)} stall(s) were found." if len(stalls) else ""
        return Verdict("problem", f"{result.divergence}{before}",
                       "Lower the learning rate (by 10x), standardize the inputs, or see the Learning rate page.")
    if not len(stalls):
        return Verdict("good", f"No stall: the loss fell by at least {rel_eps:.0%} in every {window}-step window "
                       f"(final loss {result.final_loss:.4g}).{end_text}",
                       "Nothing is stuck; train longer if the loss is still falling.")
    saddles = stalls[stalls["point_kind"] == "saddle point"]
    osc = stalls[stalls["kind"] == OSCILLATION]
    crit = stalls[stalls["kind"] == CRITICAL]
    count = f" {len(stalls)} stall(s) in all: {len(crit)} at a critical point, {len(osc)} oscillating."
    if result.final_loss > first_loss * (1 + rel_eps):
        blowup = first_blowup(result.steps)
        blown = (f"Training diverged at step {blowup} (the loss passed {BLOWUP_FACTOR:g}x its start). "
                 if blowup is not None else "")
        return Verdict(
            "problem",
            f"{blown}The loss ended at {result.final_loss:.4g}, above where it started ({first_loss:.4g}): the steps "
            f"are far too large and threw the weights somewhere worse (often where tanh or sigmoid units "
            f"saturate, so gradient and curvature both fade).{end_text}{count}",
            "Lower the learning rate by 10x or more; see the Learning rate page.",
        )
    if len(saddles):
        s = saddles.iloc[0]
        escaped = result.final_loss < s["loss_end"] * (1 - rel_eps)
        after = (f" The run escaped it: the loss fell from {s['loss_end']:.4g} to {result.final_loss:.4g}."
                 if escaped else " The run never escaped it.")
        return Verdict(
            "warning",
            f"Stalled at steps {s['start']}–{s['end']} with |g| = {s['grad_median']:.2g} "
            f"({_pct(s['grad_ratio'])} of its peak): a saddle point (λ_min = {s['eig_min']:.3g} < 0, "
            f"λ_max = {s['eig_max']:.3g}).{after}{end_text}{count}",
            "Try momentum, a larger initial scale, or a negative-curvature step; see the Saddle escape page.",
        )
    if len(osc):
        o = osc.loc[osc["steps"].idxmax()]
        cos = f"; successive gradients have cosine {o['cos_mean']:.2f}" if np.isfinite(o["cos_mean"]) else ""
        bounce = " (near −1: bouncing across a valley)" if o["cos_mean"] < -0.5 else ""
        return Verdict(
            "warning",
            f"Stalled at steps {o['start']}–{o['end']} but the gradient is not small (|g| = {o['grad_median']:.2g}, "
            f"{_pct(o['grad_ratio'])} of its peak{cos}{bounce}): the loss is flat because the step is too large "
            f"for the curvature, not because of a critical point.{end_text}{count}",
            "Lower the learning rate, decay it with a schedule, or use an adaptive optimizer (Adam, RMSprop); "
            "see the Learning rate page.",
        )
    c = crit.loc[crit["steps"].idxmax()]
    kind = c["point_kind"]
    what = _a(kind) if kind else "a critical point (not classified)"
    eig = f" (λ_min = {c['eig_min']:.3g}, λ_max = {c['eig_max']:.3g})" if np.isfinite(c["eig_min"]) else ""
    text = (f"Stalled at steps {c['start']}–{c['end']} with |g| = {c['grad_median']:.2g} "
            f"({_pct(c['grad_ratio'])} of its peak): {what}{eig}.{end_text}{count}")
    at_end = c["end"] >= result.steps["step"].iloc[-1] - 1
    progressed = result.final_loss < first_loss * (1 - 10 * rel_eps)
    if kind in ("local minimum", "flat (degenerate)") and at_end and progressed:
        return Verdict("good" if kind == "local minimum" else "info", "Converged. " + text,
                       "More steps of the same optimizer will not lower the loss; if it is still too high, "
                       "try a larger model or another initialization.")
    if not progressed:
        return Verdict("warning", "Stuck from the start. " + text,
                       "The weights start in a flat region: try another initial scale, another activation "
                       "(ReLU), or momentum; see the Saddle escape page.")
    return Verdict("info", text, "Check the classification table; for a saddle see the Saddle escape page.")


def _pct(x: float) -> str:
    """0.0012 -> '0.12%', 1.6e-9 -> '1.6e-07%': two significant digits at any size."""
    return f"{100 * x:.2g}%"


def _a(kind: str) -> str:
    """'a saddle point', 'a local minimum', 'a flat (degenerate) point', 'not a critical point'."""
    if kind == "not critical":
        return "not a critical point"
    if kind.startswith("flat"):
        kind += " point"
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


# --------------------------------------------------------------------------- the lecture's example
@dataclass(eq=False)
class ToyPoint:
    """The lecture's network y = w1*w2*x (x = 1, y = 1) at one (w1, w2), classified."""

    w: np.ndarray  # (w1, w2)
    loss: float
    gradient: np.ndarray  # dL/dw1, dL/dw2
    hessian: np.ndarray  # 2 x 2
    eigenvalues: np.ndarray  # ascending
    eigenvectors: np.ndarray  # columns, unit, largest component positive
    kind: str  # classify_point's kind
    sentence: str
    escape_direction: np.ndarray | None
    arrow: pd.DataFrame  # x, y, x2, y2, angle, what: the arrow drawn on the map

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
    """Gradient, Hessian, eigenpairs and classify_point's verdict on the lecture's toy loss.

    The arrow is the escape direction (both ways) at a saddle, else the negative gradient.

    >>> p = toy_point(0.0, 0.0)
    >>> p.kind, p.eigenvalues.tolist(), p.hessian.tolist()
    ('saddle point', [-2.0, 2.0], [[0.0, -2.0], [-2.0, 0.0]])
    """
    from core.curvature import gradient, hessian_matrix

    theta = torch.tensor([float(w1), float(w2)], dtype=torch.float64)
    cp = classify_point(toy_loss, theta)
    g = gradient(toy_loss, theta).numpy()
    H = hessian_matrix(toy_loss, theta)
    vals, vecs = np.linalg.eigh(H)
    for j in range(vecs.shape[1]):  # eigenvectors have no sign: fix the largest component positive
        if vecs[np.argmax(np.abs(vecs[:, j])), j] < 0:
            vecs[:, j] = -vecs[:, j]
    if cp.escape_direction is not None:
        u = np.asarray(cp.escape_direction) * arrow_length
        ends, what = [u, -u], "escape direction"
    elif np.linalg.norm(g) > 0:
        ends, what = [-g / np.linalg.norm(g) * arrow_length], "negative gradient"
    else:
        ends, what = [], ""
    rows = [dict(x=w1, y=w2, x2=w1 + d[0], y2=w2 + d[1], angle=float(np.degrees(np.arctan2(d[0], d[1]))),
                 what=what) for d in ends]
    return ToyPoint(np.array([w1, w2], dtype=float), cp.loss, g, H, vals, vecs, cp.kind, cp.sentence,
                    cp.escape_direction, pd.DataFrame(rows, columns=["x", "y", "x2", "y2", "angle", "what"]))


def toy_map(n: int = 61) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The lecture surface for a heat map: (grid, critical points, valley curve w1*w2 = 1).

    The grid comes from core.surfaces; the critical points are its marks, each re-checked with
    classify_point; the valley is two branches of the hyperbola inside the plot's bounds.
    """
    from core.surfaces import SURFACES, grid

    surface = SURFACES["lecture"]
    cells = grid(surface, n=n)
    marks = []
    for m in surface.critical_points:
        kind = classify_point(toy_loss, torch.tensor([m.x, m.y], dtype=torch.float64)).kind
        # Valley points are global minima whose Hessian is singular (flat along the valley).
        label = "saddle" if kind == "saddle point" else "min"
        marks.append(dict(x=m.x, y=m.y, kind=kind, label=label))
    (x0, x1), _ = surface.bounds
    branch = np.linspace(1 / x1, x1, 60)  # w1 in [0.5, 2] keeps w2 = 1/w1 inside [-2, 2]
    valley = pd.DataFrame({
        "x": np.concatenate([branch, -branch]), "y": np.concatenate([1 / branch, -1 / branch]),
        "branch": ["w1 > 0"] * len(branch) + ["w1 < 0"] * len(branch),
    })
    return cells, pd.DataFrame(marks), valley
