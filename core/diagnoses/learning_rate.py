"""Learning-rate lab (lecture section 3): schedules, adaptive optimizers and the LR range test.

Four independent runs, each with its own frozen config so the page caches them apart:

1. `run_preview`: schedules as pure functions of the step (core.schedules), no training.
2. `run_training`: the lab model trained with a constant rate and with schedules (core.train).
3. `run_surfaces` / `run_adaptive`: SGD, Adagrad, RMSprop and Adam (torch.optim) on a 2-D toy
   surface (core.surfaces) and on the lab dataset.
4. `run_range_test`: Smith's LR range test as in fastai's `lr_find` (exponential ramp, debiased
   moving average, stop at 4x the best smoothed loss, "valley" and "steepest" suggestions),
   then a check that trains at a tenth, once and ten times the suggestion.

`recommend(range_result, training_result)` turns the last two into one sentence.

Every run takes `(data, setup, config, on_progress=None)`; the preview and the surfaces ignore
the data. Results hold numpy arrays, floats and DataFrames only (they are pickled by a cache).

>>> from core.lab import LabSetup
>>> r = run_preview(None, LabSetup(), PreviewConfig(schedules=(("cosine", ()),), total_steps=100))
>>> r.table[["schedule", "step 0", "final"]].to_dict("records")
[{'schedule': 'cosine', 'step 0': 0.1, 'final': 0.0}]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core import schedules as sch
from core import surfaces as srf
from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.lab import LabSetup, build_model
from core.train import OPTIMIZERS, Split, TrainConfig, split_data, train

SchedulePick = tuple[str, tuple[tuple[str, float], ...]]  # (schedule name, (param, value) pairs)

BETA = 0.98  # fastai's AvgSmoothLoss (torch-lr-finder: smooth_f = 0.05, i.e. 0.95, not debiased)
STOP_FACTOR = 4.0  # fastai's LRFinder stops past 4x the best smoothed loss (torch-lr-finder: diverge_th = 5)


# ============================================================================ 1. schedule preview


@dataclass(frozen=True)
class PreviewConfig:
    """Which schedules to draw and where to read off their numbers."""

    schedules: tuple[SchedulePick, ...] = (("constant", ()), ("step", ()), ("warmup_cosine", ()),
                                           ("one_cycle", ()))
    total_steps: int = 1000  # optimizer updates in the previewed run
    base_lr: float = 0.1  # the optimizer's lr (one_cycle and cyclic peak there)
    at_steps: tuple[int, ...] = (0, 100, 250, 500, 999)  # steps whose rates the table lists


@dataclass
class PreviewResult:
    """Whole schedules (long table), their rates at chosen steps, and PyTorch code for each."""

    frame: pd.DataFrame  # step, schedule, lr (one row per step and schedule)
    points: pd.DataFrame  # step, schedule, lr at the chosen steps only (the table, long)
    table: pd.DataFrame  # schedule, "step k" columns with the rate there, peak, final
    code: dict[str, str]  # schedule -> copy-pasteable torch code (core.schedules.torch_code)
    params: dict[str, dict]  # schedule -> every parameter used, defaults filled in
    verdict: Verdict


def parse_steps(text: str, total_steps: int) -> tuple[int, ...]:
    """Parse '0, 100, 999' into sorted unique steps inside the run; ValueError with a sentence.

    >>> parse_steps("500, 0 100", 1000)
    (0, 100, 500)
    """
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        steps = sorted({int(p) for p in parts})
    except ValueError:
        raise ValueError(f"Steps must be whole numbers separated by commas, not {text!r}.") from None
    bad = [s for s in steps if not 0 <= s < total_steps]
    if bad:
        raise ValueError(f"Step {bad[0]} is outside the run: steps go from 0 to {total_steps - 1}.")
    return tuple(steps)


def run_preview(data: Dataset | None, setup: LabSetup, config: PreviewConfig,
                on_progress: Progress | None = None) -> PreviewResult:
    """Evaluate each schedule at every step (pure math: milliseconds, no training)."""
    on_progress = on_progress or no_progress
    if not config.schedules:
        raise ValueError("Pick at least one schedule to preview.")
    T = config.total_steps
    if isinstance(T, bool) or not isinstance(T, int) or T < 2:
        raise ValueError(f"Preview at least 2 steps, got {T!r}.")
    at = sorted({k for k in config.at_steps if 0 <= k < T})  # steps past a shortened run are dropped
    frames, rows, code, params = [], [], {}, {}
    for i, (name, pairs) in enumerate(config.schedules):
        p = dict(pairs)
        frame = sch.schedule_frame([(name, p)], T, config.base_lr).assign(schedule=name)
        lr = frame["lr"].to_numpy()
        frames.append(frame)
        rows.append({"schedule": name, **{f"step {k}": lr[k] for k in at},
                     "peak": lr.max(), "peak at step": int(lr.argmax()), "final": lr[-1]})
        code[name] = sch.torch_code(name, T, config.base_lr, **p)
        params[name] = {**sch.default_params(name, T), **p}
        on_progress((i + 1) / len(config.schedules), name)
    table = pd.DataFrame(rows)
    frame = pd.concat(frames, ignore_index=True)
    points = frame[frame["step"].isin(at)].reset_index(drop=True)
    top = table.loc[table["peak"].idxmax()]
    verdict = Verdict(
        "info",
        f"Over {T} steps at base rate {config.base_lr:g}, the highest rate is {top['peak']:.4g} "
        f"({top['schedule']}, step {top['peak at step']}); final rates range from "
        f"{table['final'].min():.3g} to {table['final'].max():.3g}.",
    )
    return PreviewResult(frame, points, table, code, params, verdict)


# ============================================================================ shared helpers


def _split(data: Dataset, setup: LabSetup) -> Split:
    if data is None:
        raise ValueError("This part needs a dataset: pick one in the sidebar.")
    return split_data(data, "standard", 0.2, setup.seed)


def _batch(batch_size: int | None, split: Split) -> int | None:
    """The batch size clamped to the training split (a tiny CSV may have fewer rows than 32)."""
    if batch_size is None:
        return None
    if batch_size < 1:
        raise ValueError("The batch size must be at least 1.")
    return min(batch_size, len(split.X_train))


def _check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


def _check_rate(lr: float, what: str = "The learning rate") -> None:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"{what} must be a positive number, got {lr!r}.")


def _train_run(split: Split, setup: LabSetup, optimizer: str, lr: float, steps: int, batch: int | None,
               schedule: str | None = None, params: tuple = (), on_progress: Progress = no_progress):
    """One run of core.train.train from the setup's initial weights; returns its History."""
    model = build_model(setup, split.n_features, split.n_outputs)
    config = TrainConfig(optimizer=optimizer, lr=lr, max_steps=steps, batch_size=batch, schedule=schedule,
                         schedule_params=params, seed=setup.seed)
    return train(model, split, config, on_step=lambda k, total, loss: on_progress(k / total, f"step {k}"))


def blowup_step(losses, factor: float = STOP_FACTOR, beta: float = BETA) -> int | None:
    """First step whose smoothed loss is above `factor` times its best so far, else None.

    The range test's stop rule, reused to call a run "diverged" when its loss explodes without
    ever becoming NaN (a tanh network with cross-entropy rarely overflows: at lr 100 the loss
    climbs into the hundreds and stays finite). A non-finite loss counts from its own step.

    >>> blowup_step([1.0, 0.9, 0.8, 50.0, 80.0, 90.0])
    3
    """
    raw = np.asarray(losses, dtype=float)
    bad = np.flatnonzero(~np.isfinite(raw))
    n = int(bad[0]) if len(bad) else len(raw)
    stop = stop_index(smooth_losses(raw[:n], beta), factor) if n else None
    return stop if stop is not None else (n if n < len(raw) else None)


def _divergence(history) -> tuple[int | None, str | None]:
    """(step, sentence) for a run that produced NaN/inf or whose loss exploded; (None, None) else."""
    losses = history.steps["loss"].to_numpy()
    k = blowup_step(losses)
    nan_step = history.diverged_at  # train() stops at a NaN/inf loss or gradient
    if nan_step is not None and (k is None or nan_step <= k):
        return nan_step, f"diverged at step {nan_step}: the loss or gradient became NaN or infinite"
    if k is None:
        return None, None
    smoothed = smooth_losses(losses[np.isfinite(losses)])
    return k, (f"diverged at step {k}: the smoothed loss rose to {smoothed[k]:.3g}, above "
               f"{STOP_FACTOR:g}x its best ({smoothed[: k + 1].min():.3g})")


def _summary_row(label: str, history, lr: float) -> dict:
    epochs = history.epochs
    step, message = _divergence(history)
    last = epochs.iloc[-1] if len(epochs) else None
    return {
        "run": label,
        "lr": lr,
        "final train loss": float(last["train_loss"]) if last is not None else float("nan"),
        "final val loss": float(last["val_loss"]) if last is not None else float("nan"),
        f"final val {history.metric}": float(last["val_metric"]) if last is not None else float("nan"),
        "diverged at": step,
        "message": message or "",
    }


def _curves(label: str, history) -> pd.DataFrame:
    """Per-epoch losses on the whole training and validation splits (smooth, unlike batch losses)."""
    return history.epochs[["step", "train_loss", "val_loss"]].assign(run=label)


# ============================================================================ 2. train with schedules


@dataclass(frozen=True)
class TrainingConfig:
    """A constant rate against schedules, all on the lab model from the same initial weights."""

    optimizer: str = "adam"  # core.train.OPTIMIZERS
    lr: float = 0.01  # base rate for every run (the page passes the range test's suggestion)
    steps: int = 200  # optimizer updates per run (20 epochs of moons at batch 32; the range check's length)
    batch_size: int | None = 32  # rows per update; None = full batch
    schedules: tuple[SchedulePick, ...] = (("warmup_cosine", ()), ("cosine", ()))  # besides constant


@dataclass
class TrainingResult:
    """Loss curves, rates and a summary per run; the constant run is always first."""

    curves: pd.DataFrame  # run, step, train_loss, val_loss (per epoch)
    rates: pd.DataFrame  # run, step, lr, loss (per step; the batch loss)
    summary: pd.DataFrame  # run, lr, final train/val loss, final val metric, diverged at, message
    best: str  # run with the lowest final training loss among those that did not diverge ("" if none)
    optimizer: str
    lr: float
    steps: int
    verdict: Verdict


def run_training(data: Dataset, setup: LabSetup, config: TrainingConfig,
                 on_progress: Progress | None = None) -> TrainingResult:
    """Train the lab model with a constant rate and with each schedule (core.train.train)."""
    _check_optimizer(config.optimizer)
    _check_rate(config.lr)
    if config.steps < 2:
        raise ValueError("Train for at least 2 steps (a schedule needs a start and an end).")
    split = _split(data, setup)
    batch = _batch(config.batch_size, split)
    runs = [("constant", None, ())] + [(n, n, tuple(p)) for n, p in config.schedules if n != "constant"]
    curves, rates, rows = [], [], []
    for i, (label, name, params) in enumerate(runs):
        progress = sub_progress(on_progress, i / len(runs), (i + 1) / len(runs))
        hist = _train_run(split, setup, config.optimizer, config.lr, config.steps, batch, name, params, progress)
        curves.append(_curves(label, hist))
        rates.append(hist.steps[["step", "lr", "loss"]].assign(run=label))
        rows.append(_summary_row(label, hist, config.lr))
    summary = pd.DataFrame(rows)
    ok = summary[summary["diverged at"].isna()]
    best = str(ok.loc[ok["final train loss"].idxmin(), "run"]) if len(ok) else ""
    return TrainingResult(pd.concat(curves, ignore_index=True), pd.concat(rates, ignore_index=True), summary,
                          best, config.optimizer, config.lr, config.steps, _training_verdict(summary, best, config))


def _training_verdict(summary: pd.DataFrame, best: str, config: TrainingConfig) -> Verdict:
    diverged = summary[summary["diverged at"].notna()]
    div_text = "; ".join(f"{r.run} {r.message}" for r in diverged.itertuples())
    if not best:
        return Verdict("problem", f"Every run diverged at lr {config.lr:g}: {div_text}.",
                       "Lower the learning rate (the range test suggests one).")
    loss = summary[summary["diverged at"].isna()].set_index("run")["final train loss"]
    others = ", ".join(f"{r} {loss[r]:.3g}" for r in loss.index if r != best)
    text = (f"With {config.optimizer} at lr {config.lr:.3g}, {best} reached the lowest training loss after "
            f"{config.steps} steps: {loss[best]:.3g}" + (f" (vs {others})" if others else "") + ".")
    if len(diverged):
        return Verdict("warning", text + f" Diverged: {div_text}.", "A warmup or a lower base rate avoids the blow-up.")
    return Verdict("good", text)


# ============================================================================ 3. adaptive optimizers

# Rates that make each optimizer show its character on each surface within a few hundred steps
# (measured: GD at 1.5 on the bowl zigzags along x but crawls along y; RMSprop at 0.03 on the
# plateau reaches the cliff at step ~28 and takes an 8x-rate step there).
SURFACE_RATES: dict[str, dict[str, float]] = {
    "elongated": {"gd": 1.5, "adagrad": 1.0, "rmsprop": 0.1, "adam": 0.3},
    "rosenbrock": {"gd": 1.5e-3, "adagrad": 1.0, "rmsprop": 0.03, "adam": 0.3},
    "flat_then_steep": {"gd": 0.2, "adagrad": 0.3, "rmsprop": 0.03, "adam": 0.1},
}
SURFACE_OPTIMIZERS = ("gd", "adagrad", "rmsprop", "adam")  # core.surfaces names ("gd" = plain SGD)


def surface_rates(surface: str) -> dict[str, float]:
    """Default rate per optimizer for one of SURFACE_RATES' surfaces (a fresh dict)."""
    if surface not in SURFACE_RATES:
        raise ValueError(f"Choose one of the surfaces {', '.join(SURFACE_RATES)}, not {surface!r}.")
    return dict(SURFACE_RATES[surface])


@dataclass(frozen=True)
class SurfaceConfig:
    """Optimizers racing on a 2-D surface, plus scheduled twins of one of them."""

    surface: str = "flat_then_steep"  # a key of SURFACE_RATES
    steps: int = 150  # updates per optimizer (RMSprop meets the cliff at step ~29, Adam the well at ~46)
    rates: tuple[tuple[str, float], ...] = ()  # (optimizer, lr); missing ones take SURFACE_RATES
    demo_optimizer: str = "rmsprop"  # whose scheduled twins show how warmup and decay tame it
    warmup_fraction: float = 0.1  # share of the steps spent warming up from 1% of the rate


@dataclass
class SurfaceResult:
    """Trajectories (one long table), the surface grid and per-run numbers."""

    paths: pd.DataFrame  # run, optimizer, step, x, y, loss, lr, step_x, step_y, eff_lr_x, eff_lr_y
    grid: pd.DataFrame  # x, y, loss, log_loss
    summary: pd.DataFrame  # run, lr, final loss, steps to near min, first step / lr, burst, late move
    surface: str
    axis_names: tuple[str, str]
    minimum: tuple[float, float]
    verdict: Verdict


def _runs_for(config: SurfaceConfig) -> list[tuple[str, str, float, str | None, dict]]:
    """(label, optimizer, lr, schedule, schedule params) for each run of a surface race."""
    rates = {**surface_rates(config.surface), **dict(config.rates)}
    unknown = sorted(set(rates) - set(SURFACE_OPTIMIZERS))
    if unknown:
        raise ValueError(f"Unknown optimizer {unknown[0]!r}; choose among {', '.join(SURFACE_OPTIMIZERS)}.")
    for name, lr in rates.items():
        _check_rate(lr, f"The rate of {name}")
    if config.steps < 10:
        raise ValueError("Run at least 10 steps on a surface.")
    if not 0 < config.warmup_fraction < 1:
        raise ValueError("The warmup share must lie between 0 and 1.")
    runs = [(srf.OPTIMIZERS[o], o, rates[o], None, {}) for o in SURFACE_OPTIMIZERS]
    demo = config.demo_optimizer
    if demo:
        if demo not in rates:
            raise ValueError(f"Unknown optimizer {demo!r}; choose among {', '.join(SURFACE_OPTIMIZERS)}.")
        lr, label = rates[demo], srf.OPTIMIZERS[demo]
        warm = max(1, round(config.warmup_fraction * config.steps))
        # warmup only: warmup_cosine whose cosine ends at the rate itself, i.e. stays flat after
        runs.append((f"{label} + warmup", demo, lr, "warmup_cosine", {"warmup_steps": warm, "min_lr": lr}))
        runs.append((f"{label} + cosine decay", demo, lr, "cosine", {}))
    return runs


def _surface_row(label: str, lr: float, traj: srf.Trajectory, surface: srf.Surface) -> dict:
    f = traj.frame
    moved = f[["step_x", "step_y"]].max(axis=1)  # largest coordinate step of each update
    in_rates = (moved / lr).to_numpy()  # in units of the base rate
    k = int(np.nanargmax(in_rates[1:])) + 1 if len(f) > 2 and np.isfinite(in_rates[1:]).any() else None
    late = moved.iloc[int(0.75 * (len(f) - 1)):].max()
    spread = max(float(f["loss"].iloc[0]) - surface.min_loss, 1e-12)
    near = traj.first_below(surface.min_loss + 1e-3 * spread)
    return {
        "run": label,
        "lr": lr,
        "final loss": float(f["loss"].iloc[-1]),
        "steps to near minimum": near,
        "first step / lr": float(in_rates[0]) if len(f) > 1 else float("nan"),
        "largest later step / lr": float(in_rates[k]) if k is not None else float("nan"),
        "at step": k,
        "largest step in last quarter": float(late),
        "diverged at": traj.diverged_at,
    }


def run_surfaces(data: Dataset | None, setup: LabSetup, config: SurfaceConfig,
                 on_progress: Progress | None = None) -> SurfaceResult:
    """Run SGD, Adagrad, RMSprop and Adam (torch.optim) on a 2-D surface, plus a warmup and a
    cosine-decay twin of `demo_optimizer`; `data` is not used."""
    on_progress = on_progress or no_progress
    runs = _runs_for(config)
    surface = srf.SURFACES[config.surface]
    frames, rows = [], []
    for i, (label, opt, lr, name, params) in enumerate(runs):
        scheduler = (lambda o, n=name, p=params: sch.to_torch(o, n, config.steps, **p)) if name else None
        traj = srf.run_optimizer(surface, opt, surface.start, config.steps, lr, lr_scheduler=scheduler)
        frames.append(traj.frame.assign(run=label, optimizer=opt))
        rows.append(_surface_row(label, lr, traj, surface))
        on_progress((i + 1) / len(runs), label)
    summary = pd.DataFrame(rows)
    minimum = next((c.x, c.y) for c in surface.critical_points if c.kind == "local minimum")
    return SurfaceResult(pd.concat(frames, ignore_index=True), srf.grid(surface, 50), summary, config.surface,
                         surface.axis_names, minimum, _surface_verdict(summary, config))


def _step(value) -> str:
    return str(int(value)) if pd.notna(value) else "none"


def _surface_verdict(summary: pd.DataFrame, config: SurfaceConfig) -> Verdict:
    s = summary.set_index("run")
    parts = []
    reached = s["steps to near minimum"].dropna()
    if len(reached):
        parts.append(f"{reached.idxmin()} got near the minimum first (step {int(reached.min())})")
    slow = s.index[s["steps to near minimum"].isna()].tolist()
    if slow:
        parts.append(f"{', '.join(slow)} did not within {config.steps} steps")
    text = "; ".join(parts) + "." if parts else ""
    demo = srf.OPTIMIZERS.get(config.demo_optimizer, "")
    if demo in s.index:
        row = s.loc[demo]
        text += (f" {demo} at a constant rate: first step {row['first step / lr']:.2g}x the rate, largest later "
                 f"step {row['largest later step / lr']:.2g}x (step {_step(row['at step'])})")
        warm, decay = s.loc[f"{demo} + warmup"], s.loc[f"{demo} + cosine decay"]
        text += (f"; with warmup: first step {warm['first step / lr']:.2g}x, largest later "
                 f"{warm['largest later step / lr']:.2g}x (step {_step(warm['at step'])}); with cosine decay: largest "
                 f"later {decay['largest later step / lr']:.2g}x, largest move in the last quarter "
                 f"{decay['largest step in last quarter']:.2g} (constant: {row['largest step in last quarter']:.2g}).")
    diverged = s["diverged at"].dropna()
    if len(diverged):
        text += " Diverged: " + ", ".join(f"{r} at step {int(k)}" for r, k in diverged.items()) + "."
    return Verdict("warning" if len(diverged) else "info", text.strip())


@dataclass(frozen=True)
class AdaptiveConfig:
    """The four optimizers on the lab model, each at its own rate."""

    steps: int = 200  # updates per optimizer
    batch_size: int | None = 32  # rows per update; None = full batch
    rates: tuple[tuple[str, float], ...] = (("sgd", 0.1), ("adagrad", 0.05), ("rmsprop", 0.005), ("adam", 0.01))


@dataclass
class AdaptiveResult:
    """Per-epoch loss curves and a summary per optimizer."""

    curves: pd.DataFrame  # run, step, train_loss, val_loss
    summary: pd.DataFrame  # as TrainingResult.summary
    verdict: Verdict


def run_adaptive(data: Dataset, setup: LabSetup, config: AdaptiveConfig,
                 on_progress: Progress | None = None) -> AdaptiveResult:
    """Train the lab model with each optimizer of `config.rates` (core.train.train)."""
    if not config.rates:
        raise ValueError("Pick at least one optimizer.")
    for name, lr in config.rates:
        _check_optimizer(name)
        _check_rate(lr, f"The rate of {name}")
    if config.steps < 1:
        raise ValueError("Train for at least one step.")
    split = _split(data, setup)
    batch = _batch(config.batch_size, split)
    curves, rows = [], []
    for i, (name, lr) in enumerate(config.rates):
        progress = sub_progress(on_progress, i / len(config.rates), (i + 1) / len(config.rates))
        hist = _train_run(split, setup, name, lr, config.steps, batch, on_progress=progress)
        curves.append(_curves(name, hist))
        rows.append(_summary_row(name, hist, lr))
    summary = pd.DataFrame(rows)
    ok = summary[summary["diverged at"].isna()]
    if not len(ok):
        verdict = Verdict("problem", "Every optimizer diverged: " + "; ".join(
            f"{r.run} {r.message}" for r in summary.itertuples()) + ".", "Lower the rates.")
    else:
        b = ok.loc[ok["final train loss"].idxmin()]
        others = ok[ok["run"] != b["run"]]
        text = (f"After {config.steps} steps {b['run']} (lr {b['lr']:g}) has the lowest training loss, "
                f"{b['final train loss']:.3g}; " + ", ".join(
                    f"{r} {v:.3g}" for r, v in zip(others["run"], others["final train loss"])) + ".")
        bad = summary[summary["diverged at"].notna()]
        if len(bad):
            text += " " + "; ".join(f"{r.run} {r.message}" for r in bad.itertuples()) + "."
        verdict = Verdict("warning" if len(bad) else "info", text)
    return AdaptiveResult(pd.concat(curves, ignore_index=True), summary, verdict)


# ============================================================================ 4. LR range test


def smooth_losses(raw, beta: float = BETA, despike: bool = True) -> np.ndarray:
    """Debiased exponential moving average of a loss record, as fastai's AvgSmoothLoss.

    avg_k = beta * avg_(k-1) + (1 - beta) * loss_k, reported as avg_k / (1 - beta^(k+1)) so the
    first values are not pulled towards the zero start. With `despike` each raw loss is first
    replaced by the median of itself and its two neighbours (the ends use their one neighbour
    twice): one bad batch then counts as one of its neighbours, so it neither stops the test nor
    moves a suggestion by more than a step, while a real blow-up, which lasts, comes through
    one step late. fastai has no such filter: early in the test, when the debiased
    average still weighs each loss heavily, one spike of 4x can stop it.

    >>> smooth_losses([2.0, 2.0, 2.0]).round(6).tolist()
    [2.0, 2.0, 2.0]
    """
    x = np.asarray(raw, dtype=float)
    if despike and len(x) >= 3:
        padded = np.concatenate([x[:1], x, x[-1:]])
        x = np.median(np.lib.stride_tricks.sliding_window_view(padded, 3), axis=1)
    out = np.empty(len(x))
    avg = 0.0
    for k, value in enumerate(x):
        avg = beta * avg + (1 - beta) * value
        out[k] = avg / (1 - beta ** (k + 1))
    return out


def stop_index(smoothed, factor: float = STOP_FACTOR) -> int | None:
    """First index whose smoothed loss exceeds `factor` times the best before it (or None).

    fastai LRFinder.after_batch: `if smooth_loss > 4 * best_loss: raise CancelFitException`.
    """
    s = np.asarray(smoothed, dtype=float)
    if len(s) == 0:
        return None
    best = np.minimum.accumulate(s)
    over = np.flatnonzero(s > factor * best)
    return int(over[0]) if len(over) else None


def valley(lrs, losses) -> int:
    """Index of fastai's "valley" suggestion (fastai.callback.schedule.valley, fastai 2.x).

    The longest strictly decreasing subsequence of the loss ends at `max_end`; fastai takes
    `max_start = max_end - length` and returns index `max_start + int(L/3) + int(L/6)` with
    L = max_end - max_start, i.e. about half-way along the valley (past its first third, before
    its second). Written as in fastai, O(n^2) over at most a few hundred points.

    >>> valley(np.logspace(-3, 0, 9), np.array([5, 4, 3, 2, 1, 0.5, 0.4, 2, 9.0]))  # -1 + 2 + 1
    2

    fastai's max_start is one before the valley's first point (-1 here); a valley of 2 points
    at the very start would give index -1, the last rate, so the index is clamped at 0.
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n  # lds[i]: length of the longest decreasing subsequence ending at i
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max(0, max_start + int(sections) + int(sections / 2))


def steepest(lrs, losses) -> int:
    """Index of fastai's "steep" suggestion: the most negative slope of loss against log(lr).

    fastai: grads = (losses[1:] - losses[:-1]) / (log lrs[1:] - log lrs[:-1]); lrs[argmin(grads)].

    >>> steepest(np.logspace(-3, 0, 5), np.array([3.0, 2.9, 1.0, 0.9, 2.0]))
    1
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    grads = np.diff(losses) / np.diff(np.log(lrs))
    return int(np.argmin(grads))


@dataclass(frozen=True)
class RangeAnalysis:
    """What a range-test record says; indices point into the record."""

    smoothed: np.ndarray  # one value per finite raw loss before the first non-finite one
    stop: int | None  # index where the smoothed loss passed factor x best, None if it never did
    end: int  # length of the record kept: through the stop point, or up to a NaN/inf loss
    window: tuple[int, int]  # [start, end) of the points the suggestions look at
    valley: int | None  # None when the window is too short to suggest anything
    steep: int | None


def analyze_range(lrs, raw_losses, num_steps: int | None = None, beta: float = BETA,
                  factor: float = STOP_FACTOR, despike: bool = True) -> RangeAnalysis:
    """Smooth, apply the stop rule, trim as fastai's lr_find does, and find both suggestions.

    fastai drops the first num_steps // 10 points (rates too small to matter, average still
    settling) and the last 5 (the blow-up) before suggesting: `recorder.losses[num_it//10:-5]`.
    A non-finite raw loss ends the record before it.

    >>> lrs = np.logspace(-5, 1, 100)
    >>> a = analyze_range(lrs, 1 + (np.log10(lrs) + 2) ** 2)  # a parabola in log(lr), lowest at 1e-2
    >>> a.stop is None, a.window, bool(1e-5 < lrs[a.valley] < 1e-2)  # never 4x its best: only the end trimmed
    (True, (10, 95), True)
    """
    lrs = np.asarray(lrs, dtype=float)
    raw = np.asarray(raw_losses, dtype=float)
    bad = np.flatnonzero(~np.isfinite(raw))
    n = int(bad[0]) if len(bad) else len(raw)
    smoothed = smooth_losses(raw[:n], beta, despike)
    stop = stop_index(smoothed, factor)
    end = stop + 1 if stop is not None else n  # fastai records the point that stops it
    lo, hi = (num_steps or len(raw)) // 10, end - 5
    if hi - lo < 3:  # fastai would fail here; say "no suggestion" instead
        return RangeAnalysis(smoothed, stop, end, (lo, max(lo, hi)), None, None)
    v = lo + valley(lrs[lo:hi], smoothed[lo:hi])
    s = lo + steepest(lrs[lo:hi], smoothed[lo:hi])
    return RangeAnalysis(smoothed, stop, end, (lo, hi), v, s)


@dataclass(frozen=True)
class RangeTestConfig:
    """Smith's LR range test with fastai's defaults where they fit a small model."""

    optimizer: str = "adam"  # Adam: the rate it finds transfers (steps ~ lr whatever the gradient scale)
    start_lr: float = 1e-4  # fastai starts at 1e-7; Adam barely moves below 1e-4 in this short test
    end_lr: float = 10.0  # fastai's end
    num_steps: int = 200  # fastai uses 100; 200 halves the lag (in log-rate) of the 0.98 average
    batch_size: int | None = 32  # rows per step (fastai: one batch of the data loader)
    check_steps: int = 200  # then train this many steps at 0.1x, 1x and 10x the valley (0 = skip)


@dataclass
class RangeTestResult:
    """The record, the suggestions and (optionally) the check at a tenth and ten times the valley."""

    record: pd.DataFrame  # step, lr, loss (raw batch loss), smoothed, in_window (used by suggestions)
    stop_step: int | None  # where the test stopped (smoothed loss > 4x best), None if it ran through
    valley_lr: float | None
    steep_lr: float | None
    valley_step: int | None
    steep_step: int | None
    check: pd.DataFrame  # factor, lr, final train loss, diverged at, message
    check_curves: pd.DataFrame  # run ("0.1x" / "1x" / "10x"), step, train_loss, val_loss
    optimizer: str
    verdict: Verdict
    notes: list[str] = field(default_factory=list)


def run_range_test(data: Dataset, setup: LabSetup, config: RangeTestConfig,
                   on_progress: Progress | None = None) -> RangeTestResult:
    """Ramp the rate exponentially from start_lr to end_lr over num_steps mini-batches.

    The ramp is core.train.train with the "exponential" schedule, gamma = (end/start)^(1/(N-1)),
    so step k uses start * gamma^k and the last step uses end_lr. The test runs all N steps and
    the stop rule cuts the record afterwards: the same record as stopping on line (later steps
    cannot change earlier ones), for a few dozen extra steps of a small model.
    """
    _check_optimizer(config.optimizer)
    _check_rate(config.start_lr, "The start rate")
    _check_rate(config.end_lr, "The end rate")
    if config.end_lr <= config.start_lr:
        raise ValueError("The end rate must be larger than the start rate.")
    if config.num_steps < 10:
        raise ValueError("The range test needs at least 10 steps.")
    if config.check_steps < 0:
        raise ValueError("The check cannot run a negative number of steps.")
    split = _split(data, setup)
    batch = _batch(config.batch_size, split)
    n_checks = 3 if config.check_steps else 0
    share = config.num_steps / (config.num_steps + n_checks * config.check_steps)
    gamma = (config.end_lr / config.start_lr) ** (1 / (config.num_steps - 1))
    hist = _train_run(split, setup, config.optimizer, config.start_lr, config.num_steps, batch,
                      "exponential", (("gamma", gamma),), sub_progress(on_progress, 0, share))
    lrs, raw = hist.steps["lr"].to_numpy(), hist.steps["loss"].to_numpy()
    a = analyze_range(lrs, raw, config.num_steps)
    end = a.end
    record = pd.DataFrame({"step": np.arange(end), "lr": lrs[:end], "loss": raw[:end],
                           "smoothed": a.smoothed[:end]})
    record["in_window"] = (record["step"] >= a.window[0]) & (record["step"] < a.window[1])
    v_lr = float(lrs[a.valley]) if a.valley is not None else None
    s_lr = float(lrs[a.steep]) if a.steep is not None else None

    checks, check_curves = [], []
    if v_lr is not None and config.check_steps:
        for i, factor in enumerate((0.1, 1.0, 10.0)):
            label = f"{factor:g}x"
            progress = sub_progress(on_progress, share + i * (1 - share) / 3, share + (i + 1) * (1 - share) / 3)
            h = _train_run(split, setup, config.optimizer, v_lr * factor, config.check_steps, batch,
                           on_progress=progress)
            checks.append({**_summary_row(label, h, v_lr * factor), "factor": factor})
            check_curves.append(_curves(label, h))
    check = pd.DataFrame(checks) if checks else pd.DataFrame(
        columns=["run", "lr", "final train loss", "diverged at", "message", "factor"])
    curves = pd.concat(check_curves, ignore_index=True) if check_curves else pd.DataFrame(
        columns=["step", "train_loss", "val_loss", "run"])
    notes = []
    if a.end < len(raw) and a.stop is None:
        notes.append(f"The loss became NaN or infinite at step {a.end}; the record ends there.")
    elif a.stop is None:
        notes.append(f"The loss never passed {STOP_FACTOR:g}x its best: the test ran to {config.end_lr:g}. "
                     "A higher end rate would show where training breaks.")
    return RangeTestResult(record, a.stop, v_lr, s_lr, a.valley, a.steep, check, curves, config.optimizer,
                           _range_verdict(v_lr, s_lr, a, check, config), notes)


def _range_verdict(v_lr, s_lr, a: RangeAnalysis, check: pd.DataFrame, config: RangeTestConfig) -> Verdict:
    if v_lr is None:
        where = f"by step {a.stop}" if a.stop is not None else "too early"
        return Verdict("problem", f"The loss blew up {where}, before the test had enough points to suggest a rate.",
                       f"Lower the start rate below {config.start_lr:g} or run more steps.")
    text = f"Range test ({config.optimizer}): valley at lr {v_lr:.3g}, steepest descent at {s_lr:.3g}"
    text += f"; the smoothed loss passed {STOP_FACTOR:g}x its best at step {a.stop}." if a.stop is not None else "."
    if not len(check):
        return Verdict("info", text)
    c = check.set_index("factor")
    lo, mid, hi = c.loc[0.1], c.loc[1.0], c.loc[10.0]
    text += (f" Trained {config.check_steps} steps: {mid['final train loss']:.3g} at the valley, "
             f"{lo['final train loss']:.3g} at a tenth, ")
    text += (f"and ten times {hi['message']}." if pd.notna(hi["diverged at"])
             else f"{hi['final train loss']:.3g} at ten times.")
    beats_low = mid["final train loss"] < lo["final train loss"] and pd.isna(mid["diverged at"])
    beats_high = pd.notna(hi["diverged at"]) or hi["final train loss"] >= mid["final train loss"]
    if beats_low and beats_high:
        return Verdict("good", text)
    advice = (f"The valley is conservative for a run this short: rates up to ten times it ({10 * v_lr:.3g}) "
              "trained better." if not beats_high
              else "A tenth of the valley trained as well: the loss curve may be too flat to read.")
    return Verdict("warning", text, advice)


# ============================================================================ the page's answer


def recommend(range_result: RangeTestResult | None, training: TrainingResult | None) -> Verdict:
    """One sentence with a rate and a schedule, from the range test and the schedule comparison."""
    if range_result is None or range_result.valley_lr is None:
        if training is not None and training.best:
            row = training.summary.set_index("run").loc[training.best]
            return Verdict("info", f"Use {training.optimizer} at lr {training.lr:.3g} with the {training.best} "
                           f"schedule: it reached training loss {row['final train loss']:.3g} in "
                           f"{training.steps} steps.")
        return Verdict("problem", "No rate to recommend: the range test found no valley and no schedule trained.",
                       "Lower the start rate of the range test.")
    v = range_result.valley_lr
    if training is None or not training.best:
        return Verdict("warning", f"Start {range_result.optimizer} at lr {v:.3g} (the range test's valley); "
                       "no schedule run trained without diverging at the rate compared.")
    row = training.summary.set_index("run")
    best = row.loc[training.best]
    same = training.optimizer == range_result.optimizer and math.isclose(training.lr, v, rel_tol=1e-9)
    others = [f"{r} diverged at step {int(row.loc[r, 'diverged at'])}" if pd.notna(row.loc[r, "diverged at"])
              else f"{r} {row.loc[r, 'final train loss']:.3g}" for r in row.index if r != training.best]
    versus = f" ({', '.join(others)})" if others else ""
    if same:
        return Verdict("good", f"Use {training.optimizer} at lr {v:.3g} (the range test's valley) with the "
                       f"{training.best} schedule: training loss {best['final train loss']:.3g} after "
                       f"{training.steps} steps{versus}.")
    return Verdict("info", f"The range test suggests {range_result.optimizer} at lr {v:.3g}; at your rate "
                   f"{training.lr:.3g} ({training.optimizer}) the {training.best} schedule did best: training loss "
                   f"{best['final train loss']:.3g} after {training.steps} steps{versus}.")
