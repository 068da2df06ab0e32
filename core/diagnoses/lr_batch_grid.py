"""A learning-rate x batch-size grid (lecture 4, issue 18): best rate per batch size, the scaling
rules and the critical batch size, each claim only where it holds across seeds.

`run` trains the lab model once for every (batch size, learning rate, seed) of a log grid through
core.sweep.run_sweep (in-process, joblib workers or Ray; finished trials kept in the module's
bounded `CACHE`, so a grown grid trains only its new cells and a stopped grid keeps what
finished), then decides:

1. **Best rate per batch size**: the rate with the best mean of `Config.measure` over the seeds
   among the cells where no seed diverged (core.rules, inside core.train) and none failed, and the
   range of rates whose cell is not clearly worse (core.findings.compare: Welch's t-test
   across seeds). A range that touches the grid's edge is open on that side.
2. **Scaling rule**: from the smallest to the largest batch (k times larger) the best rate grows
   by a factor known only within the two ranges, widened by the grid's spacing (the true optimum
   may sit half a grid step beyond a grid point). The linear rule (rate proportional to the batch,
   Goyal et al. 2017) predicts k, square-root scaling sqrt(k); a rule is consistent when its factor
   lies in that interval. Both consistent: the grid cannot tell them apart.
3. **Divergence boundary** per batch size: the largest rate below which no seed diverged and the
   rates from which some or every seed diverged.
4. **Critical batch size**: under the same-updates budget, the smallest batch that no larger batch
   beats clearly at its own best rate ("a larger batch stops helping"); under the same-epochs budget,
   where a larger batch first falls clearly behind a smaller one. Compared with the gradient noise
   scale B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018), measured with the batch-size page's
   own estimator (core.diagnoses.batch_size.gradient_noise_scale) at the start and the end of the
   smallest batch's runs at its best rate.

Findings (`Findings`) are typed facts; `make_verdict` words them through core.diagnoses.words.

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> cfg = Config(lr_min=0.1, lr_max=1.0, n_rates=3, batch_sizes=(32, FULL), seeds=2, updates=20, backend="inline")
>>> res = run(load_builtin("moons", n_samples=100), LabSetup(), cfg)
>>> list(res.rates), sorted(set(res.cells["batch_size"])), len(res.trials)
([0.1, 0.316, 1.0], [32, 80], 12)
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from core import sweep
from core.data import Dataset
from core.diagnoses import Progress, Ticker, Verdict, no_progress, sub_progress
from core.diagnoses.batch_size import (
    AUTO_SIZES,
    FULL,
    ROW_PARAM_SECONDS,
    UPDATE_SECONDS,
    batch_gradient_fn,
    gradient_noise_scale,
    measure_rows,
    size_label,
)
from core.findings import Comparison, compare
from core.diagnoses.words import divergence_sentence, num
from core.lab import LabSetup
from core.models import n_params as count_params
from core.rules import BLOWUP_FACTOR, Divergence
from core.runs import build, prepare_split, run_model, seeds_for, subsample_rows
from core.stop import Stopped
from core.train import OPTIMIZER_LABELS, OPTIMIZERS, TrainConfig, check_dataset_size, make_loss, metric_name

MEASURES = ("val_loss", "val_metric", "train_loss")  # what "best" means (Config.measure)
BUDGETS = ("updates", "epochs")
MIN_RATES, MAX_RATES = 3, 9
MAX_SIZES = 6
MIN_SEEDS, MAX_SEEDS = 2, 5  # a spread needs two seeds; five bound the time
MAX_UPDATES = 3_000  # optimizer updates per trial, whatever the budget
MAX_RATE = 1_000.0
MAX_RAY_CPUS = 64  # Ray may spread trials past this machine's cores
MAX_SECONDS = 100.0  # estimated wall time of a grid (`estimated_seconds`); the page refuses more
# Time estimate on one CPU thread per worker: the batch-size page's per-update costs (measured
# there) plus a trial's fixed cost (load the data, split, build, evaluate at the end: ~30 ms on
# moons) and, for an uploaded CSV, parsing it again in every trial (measured: 0.066 s for a
# 54,000 x 21 CSV, ~6e-8 s a cell; 1e-7 leaves room for text columns).
TRIAL_SECONDS = 0.03
CSV_CELL_SECONDS = 1e-7
BIG_BATCH = 4_096  # a refused grid whose largest batch is past this many rows is told so
WORKER_START_SECONDS = 4.0  # fresh joblib workers import torch (2-4 s each, in parallel)
CACHE_ENTRIES = 1_024  # a few KB per result; the heaviest grid is 9 x 6 x 5 = 270 trials
NOISE_BATCHES = 16  # batch pairs for each B_simple estimate (the batch-size page's default)
EVAL_AT_END = 10**9  # TrainConfig.eval_every: evaluate only after the last update (full-batch
# runs have an epoch per update, and evaluating each would double their time)

# One cache for the whole process (every session): a key is the whole trial, data included, so a
# session can only ever be served results of its own inputs. Bounded, thread-safe (core.sweep).
CACHE = sweep.TrialCache(max_entries=CACHE_ENTRIES)


@dataclass(frozen=True)
class Config:
    """The grid. Defaults are the page's grid: 7 rates x (8, 32, 128, full) x 3 seeds on moons."""

    lr_min: float = 0.01  # smallest learning rate of the log grid
    lr_max: float = 10.0  # largest learning rate of the log grid
    n_rates: int = 7  # rates, evenly spaced on a log scale (7 over 0.01-10: half a decade apart)
    batch_sizes: tuple[int, ...] = ()  # rows per update; FULL (0) = whole training split; () = auto
    seeds: int = 3  # runs per cell; each seed its own split, initial weights and batch order
    budget: str = "updates"  # "updates": every cell takes `updates` steps; "epochs": `epochs` passes
    updates: int = 300  # updates per trial under the "updates" budget
    epochs: int = 20  # passes over the training split per trial under the "epochs" budget
    optimizer: str = "sgd"  # the linear scaling rule is a rule for SGD (Goyal et al. 2017)
    measure: str = "val_loss"  # what "best" means: one of MEASURES (a loss is finer than accuracy)
    backend: str = "auto"  # core.sweep.BACKENDS
    n_jobs: int = 2  # worker processes (joblib) or CPUs (local Ray)
    val_fraction: float = 0.2  # held-out share of each seed's split

    @property
    def rates(self) -> tuple[float, ...]:
        """The grid's learning rates: `n_rates` log-spaced from lr_min to lr_max, 3 significant digits.

        >>> Config(lr_min=0.01, lr_max=1.0, n_rates=5).rates
        (0.01, 0.0316, 0.1, 0.316, 1.0)
        """
        return tuple(float(f"{r:.3g}") for r in np.geomspace(self.lr_min, self.lr_max, self.n_rates))

    @property
    def step(self) -> float:
        """The factor between neighbouring rates of the grid."""
        return (self.lr_max / self.lr_min) ** (1.0 / (self.n_rates - 1))

    @property
    def higher_is_better(self) -> bool:
        """True when the measure is a score (accuracy, R^2), False for a loss."""
        return self.measure == "val_metric"


# --------------------------------------------------------------------------- findings
@dataclass(frozen=True)
class BestRate:
    """The best rate of one batch size, with the rates that are not clearly worse.

    `low`/`high` bound the rates whose cell is not clearly worse than the best (t-test across
    seeds); `open_low`/`open_high` say the range touches the grid's smallest rate, or its largest
    with no divergence seen, so the optimum may lie beyond the grid.
    """

    batch_size: int
    rate: float
    value: float  # mean of the measure over the seeds at the best rate
    spread: float  # standard deviation over those seeds
    samples: tuple[float, ...]  # the measure per seed at the best rate
    low: float
    high: float
    open_low: bool
    open_high: bool
    at_edge: bool  # the next larger rate of the grid diverged in some seed: stability caps the rate
    seed_best: tuple[float, ...]  # each seed's own best rate (its spread over seeds)


@dataclass(frozen=True)
class Boundary:
    """Where training diverges (core.rules) along the rates of one batch size."""

    batch_size: int
    last_stable: float | None  # largest rate below which (and at which) no seed diverged
    first_unstable: float | None  # smallest rate at which some seed diverged (None: none did)
    all_diverged: float | None  # smallest rate at which every seed diverged
    example: Divergence | None  # the divergence of one seed at first_unstable (for the sentence)


@dataclass(frozen=True)
class Scaling:
    """How the best rate grows from batch `small` to batch `large` (k = large / small times).

    kind: "linear" (only the linear rule fits), "sqrt" (only square-root scaling fits), "both"
    (the grid cannot tell them apart), "neither", or "unknown" (fewer than two batch sizes have a
    best rate).
    """

    kind: str
    small: int
    large: int
    batch_ratio: float
    rate_ratio: float  # best rate at `large` / best rate at `small`
    ratio_low: float  # the factor is known to lie in [ratio_low, ratio_high] (0 / inf when open)
    ratio_high: float

    @property
    def linear(self) -> float:
        """The factor the linear rule predicts."""
        return self.batch_ratio

    @property
    def sqrt(self) -> float:
        """The factor square-root scaling predicts."""
        return math.sqrt(self.batch_ratio)


@dataclass(frozen=True)
class Critical:
    """The critical batch size estimate: B_crit lies between `low` and `high` rows.

    kind: "below" (the smallest batch already gains nothing from larger ones: B_crit <= high),
    "between", "above" (larger batches kept helping, or kept up, to the largest: B_crit >= low),
    or "unknown" (fewer than two batch sizes have a best rate).
    """

    kind: str
    low: int | None
    high: int | None
    budget: str
    comparisons: tuple[Comparison, ...]  # every pair of batch sizes at their best rates (a = smaller)

    @property
    def doubt(self) -> Comparison | None:
        """With the same updates, "a larger batch stops helping at `high`" rests on no larger batch
        beating it clearly: the larger batch that did better on average, by more than the seeds'
        spread, without the t-test carrying it (then the estimate is not a finding), or None."""
        if self.budget != "updates" or self.kind not in ("below", "between"):
            return None
        return unresolved_lead(self, self.high, larger_better=True)


@dataclass(frozen=True)
class NoiseFinding:
    """B_simple at the start and the end of the smallest batch's runs at its best rate."""

    batch_size: int
    rate: float
    start: float  # mean over seeds (inf: noise swamps the gradient; NaN: not measured)
    start_spread: float
    end: float
    end_spread: float
    n_seeds: int
    relation: str  # the grid's critical range against [start, end]: "within", "smaller", "larger", "unknown"


@dataclass(frozen=True)
class Findings:
    """The typed facts the verdict is worded from."""

    measure: str
    metric: str
    higher_is_better: bool
    budget: str
    updates: int  # under the updates budget; 0 otherwise
    epochs: int  # under the epochs budget; 0 otherwise
    n_train: int
    seeds: int
    optimizer: str
    rates: tuple[float, ...]
    step: float
    best: tuple[BestRate, ...]  # one per batch size with a usable cell, smallest batch first
    no_best: tuple[int, ...]  # batch sizes where every cell diverged or failed
    boundaries: tuple[Boundary, ...]
    scaling: Scaling
    critical: Critical
    noise: NoiseFinding | None
    n_failed: int  # trials that raised (their cells are left out)
    failed_example: str  # one failed trial's message ("" if none)


@dataclass(eq=False)
class Result:
    """What the grid measured: plain numbers and DataFrames (pickled by the UI cache)."""

    trials: pd.DataFrame  # one row per trial, see TRIAL_COLUMNS
    cells: pd.DataFrame  # one row per (batch size, rate), see `cell_frame`
    trace: pd.DataFrame  # per batch size: best rate, its range, the two rules' predictions, the boundary
    noise: pd.DataFrame  # per seed: seed, b_simple_start, b_simple_end
    findings: Findings
    verdict: Verdict
    rates: tuple[float, ...]
    sizes: tuple[int, ...]  # rows per update, sorted (the last may be the whole split)
    n_train: int
    n_params: int
    metric: str  # "accuracy" or "R^2"
    backend: str  # the backend that trained the new trials ("cache" when every trial was cached)
    trained: int  # trials trained by this run
    cached: int  # trials served from the cache
    seconds: float
    notes: tuple[str, ...]

    def label(self, b: int) -> str:
        """How the page names a batch size: '32', or '320 (full)' for the whole training split."""
        return size_label(b, self.n_train)


TRIAL_COLUMNS = ["batch_size", "lr", "seed", "status", "val_metric", "val_loss", "train_loss", "diverged_at",
                 "updates", "seconds", "cached", "error"]


# --------------------------------------------------------------------------- config
def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for impossible settings (sizes and the time estimate
    are checked once the training split is known, in `run`)."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if not (0 < config.lr_min < config.lr_max <= MAX_RATE) or not math.isfinite(config.lr_min):
        raise ValueError(f"The rates need 0 < smallest < largest <= {MAX_RATE:g}.")
    if not MIN_RATES <= config.n_rates <= MAX_RATES:
        raise ValueError(f"Use between {MIN_RATES} and {MAX_RATES} learning rates.")
    if len(set(config.rates)) < config.n_rates:
        raise ValueError("The rates are too close together to tell apart; widen the range or use fewer rates.")
    if not MIN_SEEDS <= config.seeds <= MAX_SEEDS:
        raise ValueError(f"Use between {MIN_SEEDS} and {MAX_SEEDS} seeds (two are the fewest a spread needs).")
    if config.budget not in BUDGETS:
        raise ValueError("The budget is either the same number of updates or the same number of epochs.")
    if config.budget == "updates" and not 1 <= config.updates <= MAX_UPDATES:
        raise ValueError(f"Train for between 1 and {MAX_UPDATES:,} updates per trial.")
    if config.budget == "epochs" and config.epochs < 1:
        raise ValueError("Train for at least one epoch.")
    if config.measure not in MEASURES:
        raise ValueError(f"Unknown measure {config.measure!r}; choose one of {', '.join(MEASURES)}.")
    if config.backend not in sweep.BACKENDS:
        raise ValueError(f"Unknown backend {config.backend!r}; choose one of {', '.join(sweep.BACKENDS)}.")
    cores = max(1, os.cpu_count() or 1)
    if not 1 <= config.n_jobs <= (MAX_RAY_CPUS if config.backend == "ray" else cores):
        raise ValueError(f"Use between 1 and {cores} workers (the cores of this machine), or Ray for more.")
    if not 0 < config.val_fraction < 0.9:
        raise ValueError("The validation share must be between 0 and 0.9.")


def resolve_sizes(config: Config, n_train: int) -> tuple[int, ...]:
    """The grid's batch sizes as sorted distinct row counts (FULL -> n_train), validated.

    >>> resolve_sizes(Config(), 320), resolve_sizes(Config(batch_sizes=(FULL, 16)), 320)
    ((8, 32, 128, 320), (16, 320))
    """
    chosen = config.batch_sizes or tuple(b for b in AUTO_SIZES if b < n_train) + (FULL,)
    sizes = set()
    for b in chosen:
        b = n_train if b == FULL else int(b)
        if b < 1:
            raise ValueError(f"A batch size must be at least 1, not {b}.")
        if b > n_train:
            raise ValueError(f"The batch size {b:,} is larger than the training split ({n_train:,} rows); "
                             f"use at most {n_train:,} or 'full'.")
        sizes.add(b)
    if len(sizes) < 2:
        raise ValueError("The grid needs at least two different batch sizes.")
    if len(sizes) > MAX_SIZES:
        raise ValueError(f"Use at most {MAX_SIZES} batch sizes.")
    return tuple(sorted(sizes))


def updates_for(config: Config, b: int, n_train: int) -> int:
    """Updates one trial at batch size b takes under the budget."""
    return config.updates if config.budget == "updates" else config.epochs * math.ceil(n_train / b)


def workers(config: Config, n_trials: int) -> int:
    """How many trials run at once: 1 in-process, else the workers asked for (at most the trials)."""
    if config.backend == "inline" or (config.backend == "auto" and (n_trials <= sweep.INLINE_MAX or config.n_jobs == 1)):
        return 1
    return max(1, min(config.n_jobs, n_trials))


def estimated_seconds(config: Config, sizes: tuple[int, ...], n_train: int, n_params: int,
                      csv_cells: int = 0) -> float:
    """A deterministic estimate of the grid's wall time with nothing cached (see TRIAL_SECONDS)."""
    fixed = TRIAL_SECONDS + CSV_CELL_SECONDS * csv_cells
    per_seed_rate = sum(fixed + updates_for(config, b, n_train) * (UPDATE_SECONDS + ROW_PARAM_SECONDS * b * n_params)
                        for b in sizes)
    n_trials = len(sizes) * config.n_rates * config.seeds
    k = workers(config, n_trials)
    start = WORKER_START_SECONDS if k > 1 else 0.0
    return start + per_seed_rate * config.n_rates * config.seeds / k


def check_budget(config: Config, sizes: tuple[int, ...], n_train: int, n_params: int, csv_cells: int = 0) -> None:
    """Refuse, with a plain sentence, a trial past MAX_UPDATES or a grid past about MAX_SECONDS."""
    for b in sizes:
        k = updates_for(config, b, n_train)
        if k > MAX_UPDATES:
            raise ValueError(
                f"{config.epochs:,} epochs at batch size {b:,} are {k:,} updates per trial; the page allows "
                f"{MAX_UPDATES:,}. Use fewer epochs, a larger smallest batch, or the same-updates budget.")
    est = estimated_seconds(config, sizes, n_train, n_params, csv_cells)
    if est > MAX_SECONDS:
        n = len(sizes) * config.n_rates * config.seeds
        big = (f" Most of it is the largest batch ({max(sizes):,} rows an update): leave out 'full' or use smaller "
               "sizes." if max(sizes) > BIG_BATCH else "")
        raise ValueError(
            f"This grid would take about {est:,.0f} s ({n:,} trials: {config.n_rates} rates x {len(sizes)} batch "
            f"sizes x {config.seeds} seeds, {n_params:,} parameters, up to {max(sizes):,} rows a batch); the page's "
            f"limit is about {MAX_SECONDS:.0f} s. Use fewer rates, seeds or updates, smaller batches, or a "
            f"smaller model.{big}")


def trials_for(config: Config, setup: LabSetup, sizes: tuple[int, ...], n_train: int) -> list[sweep.Trial]:
    """The grid's trials (batch size slowest, then rate, seed fastest), through core.sweep.grid.

    The whole split is `batch_size=None` (core.train's full batch), so its key does not depend on
    how the size was written; the other budget's setting stays at its default, so changing it does
    not invalidate cached trials.
    """
    base = TrainConfig(
        optimizer=config.optimizer, val_fraction=config.val_fraction, eval_every=EVAL_AT_END, device=setup.device,
        max_steps=config.updates if config.budget == "updates" else None,
        epochs=config.epochs if config.budget == "epochs" else TrainConfig.epochs,
    )
    batch = tuple(None if b == n_train else b for b in sizes)
    return sweep.grid(setup.data, setup.model, base, seeds=tuple(seeds_for(setup, config.seeds)),
                      data_seed=setup.seed, batch_size=batch, lr=config.rates)


# --------------------------------------------------------------------------- the diagnosis
@dataclass(frozen=True, eq=False)
class Plan:
    """The grid `run` would train, checked: its sizes, trials, how many are cached, the time estimate."""

    sizes: tuple[int, ...]
    n_train: int
    n_params: int
    trials: tuple[sweep.Trial, ...]
    cached: int  # trials already in CACHE (served without training)
    seconds: float  # estimated wall time of the trials still to train


def plan(data: Dataset, setup: LabSetup, config: Config) -> Plan:
    """Validate the config against the data and plan the grid; raises ValueError (or DataError)
    with a plain sentence, so a page can refuse a grid before the user presses Run."""
    validate(config)
    check_dataset_size(data)
    split = prepare_split(data, setup, "standard", config.val_fraction)
    n_train = len(split.X_train)
    sizes = resolve_sizes(config, n_train)
    n_params = count_params(build(setup, split))
    csv_cells = data.X.size if setup.data.builtin is None else 0
    check_budget(config, sizes, n_train, n_params, csv_cells)
    if setup.model.batch_norm:
        for b in sizes:
            if n_train % b == 1:
                raise ValueError(f"With batch norm every batch needs at least two rows, but batch size {b:,} leaves "
                                 f"a last batch of one row out of {n_train:,}; choose another size.")
    trials = tuple(trials_for(config, setup, sizes, n_train))
    cached = sum(t in CACHE for t in trials)
    est = estimated_seconds(config, sizes, n_train, n_params, csv_cells)
    return Plan(sizes, n_train, n_params, trials, cached, est * (len(trials) - cached) / len(trials))


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train the grid (see the module doc), decide and word; raises ValueError for bad settings."""
    start = time.perf_counter()
    on_progress = on_progress or no_progress
    p = plan(data, setup, config)
    sizes, n_train, trials = p.sizes, p.n_train, list(p.trials)
    cached = {t for t in trials if t in CACHE}
    todo = len(trials) - len(cached)
    backend = "cache" if todo == 0 else sweep._choose_backend(config.backend, todo, config.n_jobs)

    tick = Ticker(sub_progress(on_progress, 0.0, 0.9))
    tick.at(0.0, f"{todo} of {len(trials)} trials to train ({backend})")

    def on_result(result: sweep.TrialResult, done: int, total: int) -> None:
        t = result.trial
        tick.at(done / total, f"trial {done} of {total}: batch {size_label(_rows(t, n_train), n_train)}, "
                              f"rate {num(t.train.lr)}, seed {t.seed}")

    try:
        results = sweep.run_sweep(trials, backend=config.backend, n_jobs=config.n_jobs, on_result=on_result,
                                  should_stop=tick, cache=CACHE)
    except sweep.BackendError as exc:  # Ray missing or unreachable: a message for the page
        raise ValueError(str(exc)) from None
    if len(results) < len(trials):
        raise Stopped(f"Stopped by request after {len(results)} of {len(trials)} trials (the finished ones "
                      "are kept: run again to train only the rest).")

    metric = metric_name(data.task)
    frame = trial_frame(results, n_train, cached)
    cells = cell_frame(frame, config, n_train)
    best, no_best = best_rates(cells, frame, config)
    boundaries = tuple(boundary(frame, b) for b in sizes)
    scaling = decide_scaling(best, config.step)
    critical = decide_critical(best, config)

    notes = []
    noise_rows: list[tuple] = []
    noise = None
    if best:
        b0 = best[0]
        noise_rows = measure_noise(data, setup, trials, b0, n_train, sizes, sub_progress(on_progress, 0.9, 0.98))
        noise = noise_finding(noise_rows, b0, critical)
    # The one divergence sentence needs the Divergence core.train found: train one diverged trial
    # again (it stops where it diverges, so this is short).
    first = next((bd for bd in boundaries if bd.first_unstable is not None), None)
    if first is not None:
        diverged = frame[(frame["batch_size"] == first.batch_size) & (frame["lr"] == first.first_unstable)
                         & (frame["status"] == "diverged")]
        trial = next(t for t in trials if _rows(t, n_train) == first.batch_size
                     and t.train.lr == first.first_unstable and t.seed == int(diverged["seed"].iloc[0]))
        on_progress(0.98, "the first divergence again, for its sentence")
        example = retrain(data, setup, trial).divergence
        boundaries = tuple(replace(bd, example=example) if bd is first else bd for bd in boundaries)
    noise_frame = pd.DataFrame(noise_rows, columns=["seed", "b_simple_start", "b_simple_end"])
    failed = frame[frame["status"] == "failed"]
    findings = Findings(
        measure=config.measure, metric=metric, higher_is_better=config.higher_is_better, budget=config.budget,
        updates=config.updates if config.budget == "updates" else 0,
        epochs=config.epochs if config.budget == "epochs" else 0, n_train=n_train, seeds=config.seeds,
        optimizer=config.optimizer, rates=config.rates, step=config.step, best=best, no_best=no_best,
        boundaries=boundaries, scaling=scaling, critical=critical, noise=noise, n_failed=len(failed),
        failed_example=str(failed["error"].iloc[0]) if len(failed) else "",
    )
    if setup.data.builtin is None and backend not in ("inline", "cache"):  # in-process trials share the page's memory
        notes.append("Every trial reads the uploaded file again (workers share no memory with the page); on a big "
                     "file that is part of each trial's time.")
    on_progress(1.0, "done")
    return Result(
        trials=frame, cells=cells, trace=trace_frame(best, boundaries, sizes), noise=noise_frame, findings=findings,
        verdict=make_verdict(findings), rates=config.rates, sizes=sizes, n_train=n_train, n_params=p.n_params,
        metric=metric, backend=backend, trained=todo, cached=len(cached), seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )


def _rows(trial: sweep.Trial, n_train: int) -> int:
    return n_train if trial.train.batch_size is None else int(trial.train.batch_size)


def trial_frame(results: list[sweep.TrialResult], n_train: int, cached: set = frozenset()) -> pd.DataFrame:
    """One row per trial (TRIAL_COLUMNS): status "ok", "diverged" (core.rules) or "failed" (it raised)."""
    rows = []
    for r in results:
        t = r.trial
        status = "failed" if r.error is not None else "diverged" if r.diverged_at is not None else "ok"
        rows.append(dict(
            batch_size=_rows(t, n_train), lr=float(t.train.lr), seed=int(t.seed), status=status,
            val_metric=r.val_metric, val_loss=r.val_loss, train_loss=r.final_train_loss, diverged_at=r.diverged_at,
            updates=int(r.n_steps), seconds=float(r.seconds), cached=t in cached, error=r.error or "",
        ))
    frame = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    for col in ("batch_size", "seed", "updates"):
        frame[col] = frame[col].astype(np.int64)
    frame["diverged_at"] = frame["diverged_at"].astype("Int64")
    frame["cached"] = frame["cached"].astype(bool)
    return frame


def cell_frame(trials: pd.DataFrame, config: Config, n_train: int) -> pd.DataFrame:
    """One row per (batch size, rate): counts of seeds that trained, diverged or failed; mean and
    standard deviation over the seeds that trained of each measure; `status` ("ok", "unstable":
    some seeds diverged, "diverged": all did, "failed": some trial raised); `value`/`value_sd` =
    the chosen measure; and text for the chart: `rate_label`, `batch_label`, `value_text`
    (mean ± sd), `metric_text`, `seed_values` (the measure per seed), `status_note` (how many seeds
    diverged or failed) and `note` (the status note, or "best" / "not clearly worse", set by `best_rates`)."""
    rows = []
    rates = config.rates
    for (b, lr), g in trials.groupby(["batch_size", "lr"], sort=True):
        ok = g[g["status"] == "ok"]
        n_div, n_fail = int((g["status"] == "diverged").sum()), int((g["status"] == "failed").sum())
        status = "failed" if n_fail else "diverged" if n_div == len(g) else "unstable" if n_div else "ok"
        row = dict(batch_size=int(b), lr=float(lr), rate_index=rates.index(lr) if lr in rates else -1,
                   seeds=len(g), trained=len(ok), diverged=n_div, failed=n_fail, status=status)
        for m in MEASURES:
            v = ok[m].to_numpy(dtype=float)
            row[f"{m}_mean"] = float(v.mean()) if len(v) else float("nan")
            row[f"{m}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        row["value"], row["value_sd"] = row[f"{config.measure}_mean"], row[f"{config.measure}_sd"]
        row["seed_values"] = ", ".join(f"{num(x)}" for x in ok[config.measure]) or "none"
        row["rate_label"], row["batch_label"] = num(float(lr)), size_label(int(b), n_train)
        row["value_text"] = _pm(row["value"], row["value_sd"]) if len(ok) else ""
        row["metric_text"] = f"{row['val_metric_mean']:.3f}" if len(ok) else ""
        row["status_note"] = {"ok": "", "unstable": f"{n_div} of {len(g)} diverged", "diverged": "diverged",
                              "failed": f"{n_fail} of {len(g)} failed"}[status]
        row["note"] = row["status_note"]
        rows.append(row)
    cells = pd.DataFrame(rows)
    for col in ("batch_size", "rate_index", "seeds", "trained", "diverged", "failed"):
        cells[col] = cells[col].astype(np.int64)
    cells["best"] = False
    cells["tied"] = False
    return cells


def _pm(mean: float, sd: float) -> str:
    return num(mean) if not math.isfinite(sd) or sd == 0 else f"{num(mean)} ± {num(sd)}"


def best_rates(cells: pd.DataFrame, trials: pd.DataFrame, config: Config) -> tuple[tuple[BestRate, ...], tuple[int, ...]]:
    """Per batch size, the best usable cell and the rates not clearly worse (marks `best`, `tied`
    and their `note` in `cells`). Usable: every seed trained (none diverged, none failed)."""
    found, missing = [], []
    hib = config.higher_is_better
    top_rate = max(config.rates)
    for b, g in cells.groupby("batch_size", sort=True):
        usable = g[(g["status"] == "ok") & np.isfinite(g["value"])]
        if usable.empty:
            missing.append(int(b))
            continue
        values = usable["value"].to_numpy()
        i = int(np.argmax(values) if hib else np.argmin(values))
        best = usable.iloc[i]
        samples = _samples(trials, b, best["lr"], config.measure)
        tied = []
        for _, c in usable.iterrows():
            other = _samples(trials, b, c["lr"], config.measure)
            if c["lr"] == best["lr"] or compare(config.measure, "best", samples, "other", other, hib).winner is None:
                tied.append(float(c["lr"]))
        cells.loc[best.name, ["best", "note"]] = [True, "best"]
        others = usable.index[usable["lr"].isin(tied) & (usable["lr"] != best["lr"])]
        cells.loc[others, ["tied", "note"]] = [True, "not clearly worse"]
        low, high = min(tied), max(tied)
        above = g[g["lr"] > best["lr"]].sort_values("lr")
        at_edge = bool(len(above)) and above.iloc[0]["status"] in ("unstable", "diverged")
        ok_top = g[(g["lr"] == top_rate) & (g["status"] == "ok")]
        found.append(BestRate(
            batch_size=int(b), rate=float(best["lr"]), value=float(best["value"]),
            spread=float(np.std(samples, ddof=1)) if len(samples) > 1 else 0.0, samples=tuple(samples),
            low=low, high=high, open_low=low == min(config.rates), open_high=high == top_rate and len(ok_top) > 0,
            at_edge=at_edge, seed_best=_seed_best(trials, b, config),
        ))
    return tuple(found), tuple(missing)


def _samples(trials: pd.DataFrame, b: int, lr: float, measure: str) -> list[float]:
    g = trials[(trials["batch_size"] == b) & (trials["lr"] == lr) & (trials["status"] == "ok")]
    return [float(x) for x in g.sort_values("seed")[measure]]


def _seed_best(trials: pd.DataFrame, b: int, config: Config) -> tuple[float, ...]:
    """Each seed's own best rate at batch b (over the rates where that seed trained)."""
    out = []
    for _, g in trials[(trials["batch_size"] == b) & (trials["status"] == "ok")].groupby("seed", sort=True):
        v = g[config.measure].to_numpy(dtype=float)
        if np.isfinite(v).any():
            i = int(np.nanargmax(v) if config.higher_is_better else np.nanargmin(v))
            out.append(float(g["lr"].iloc[i]))
    return tuple(out)


def boundary(trials: pd.DataFrame, b: int, example: Divergence | None = None) -> Boundary:
    """The divergence boundary of batch size b along the grid's rates."""
    g = trials[trials["batch_size"] == b]
    last_stable = first_unstable = all_div = None
    for lr, c in g.groupby("lr", sort=True):
        div = int((c["status"] == "diverged").sum())
        if div and first_unstable is None:
            first_unstable = float(lr)
        if div == len(c) and all_div is None:
            all_div = float(lr)
        if first_unstable is None and (c["status"] == "ok").all():
            last_stable = float(lr)
    return Boundary(int(b), last_stable, first_unstable, all_div, example if first_unstable is not None else None)


def decide_scaling(best: tuple[BestRate, ...], step: float) -> Scaling:
    """Which scaling rule fits the best rates of the smallest and the largest batch size.

    Each best rate is known within its range of rates not clearly worse, widened by half a grid
    step on each side (sqrt(step): the optimum may sit between grid points), and open where the
    range touches the grid's edge. A rule fits when its factor lies in the resulting interval.

    >>> a = BestRate(8, 0.1, 0.3, 0.01, (0.3,), 0.1, 0.1, False, False, False, (0.1,))
    >>> b = BestRate(128, 1.6, 0.2, 0.01, (0.2,), 1.6, 1.6, False, False, False, (1.6,))
    >>> s = decide_scaling((a, b), step=2.0)
    >>> s.kind, s.rate_ratio, round(s.ratio_low, 9), round(s.ratio_high, 9)
    ('linear', 16.0, 8.0, 32.0)
    """
    if len(best) < 2:
        b = best[0].batch_size if best else 0
        return Scaling("unknown", b, b, 1.0, float("nan"), 0.0, math.inf)
    s, l = best[0], best[-1]
    k = l.batch_size / s.batch_size
    s_lo, s_hi = _range(s, step)
    l_lo, l_hi = _range(l, step)
    lo = l_lo / s_hi if s_hi < math.inf else 0.0
    hi = l_hi / s_lo if s_lo > 0 else math.inf
    fits_linear = lo <= k <= hi
    fits_sqrt = lo <= math.sqrt(k) <= hi
    kind = "both" if fits_linear and fits_sqrt else "linear" if fits_linear else "sqrt" if fits_sqrt else "neither"
    return Scaling(kind, s.batch_size, l.batch_size, k, l.rate / s.rate, lo, hi)


def _range(b: BestRate, step: float) -> tuple[float, float]:
    half = math.sqrt(step)
    return (0.0 if b.open_low else b.low / half), (math.inf if b.open_high else b.high * half)


def decide_critical(best: tuple[BestRate, ...], config: Config) -> Critical:
    """The critical batch size from the best cells of every batch size (each at its own best rate).

    Same updates: B_crit is about the smallest batch that no larger batch beats clearly (a larger
    batch stops helping). Same epochs: a larger batch takes fewer updates and keeps up only below
    B_crit, which lies before the first batch that some smaller batch beats clearly.
    """
    hib, m = config.higher_is_better, config.measure
    pairs = {}
    for i, a in enumerate(best):
        for b in best[i + 1:]:
            pairs[(a.batch_size, b.batch_size)] = compare(m, str(a.batch_size), a.samples, str(b.batch_size),
                                                           b.samples, hib)
    comps = tuple(pairs.values())
    sizes = [x.batch_size for x in best]
    if len(sizes) < 2:
        return Critical("unknown", None, None, config.budget, comps)
    if config.budget == "updates":
        for i, b in enumerate(sizes):
            if not any(pairs[(b, c)].winner == str(c) for c in sizes[i + 1:]):
                break
        if i == 0:
            return Critical("below", None, sizes[0], config.budget, comps)
        if i == len(sizes) - 1:
            return Critical("above", sizes[-2], None, config.budget, comps)
        return Critical("between", sizes[i - 1], sizes[i], config.budget, comps)
    for i, b in enumerate(sizes):
        if any(pairs[(a, b)].winner == str(a) for a in sizes[:i]):
            return Critical("between", sizes[i - 1], sizes[i], config.budget, comps)
    return Critical("above", sizes[-1], None, config.budget, comps)


def retrain(data: Dataset, setup: LabSetup, trial: sweep.Trial, on_progress: Progress | None = None,
            model=None, message: str = ""):
    """Train one of the grid's trials again through core.runs.run_model, keeping its model.

    The same split, initial weights, batch order and so the same numbers as core.sweep.run_trial
    (trials keep no model, and core.sweep keeps no Divergence). `model` may be the trial's freshly
    built model (to measure it before training).
    """
    seed_setup = replace(setup, seed=trial.seed)
    split = prepare_split(data, seed_setup, trial.train.scaler, trial.train.val_fraction)
    return run_model(split, seed_setup, replace(trial.train, seed=trial.seed), key=f"trial_s{trial.seed}",
                     model=model, on_progress=on_progress, message=message or trial.label)


def measure_noise(data: Dataset, setup: LabSetup, trials: list[sweep.Trial], b0: BestRate, n_train: int,
                  sizes: tuple[int, ...], on_progress: Progress) -> list[tuple]:
    """B_simple at the start and the end of the smallest batch's trials at its best rate, per seed.

    Each seed's trial is trained again (`retrain`). The estimator is the batch-size page's
    (`gradient_noise_scale`) on up to `measure_rows` training rows, with batch pairs of the
    smallest batch and min(that sample, the largest batch).
    """
    tick = Ticker(on_progress)
    mine = [t for t in trials if _rows(t, n_train) == b0.batch_size and t.train.lr == b0.rate]
    rows = []
    for i, trial in enumerate(mine):
        part = sub_progress(on_progress, i / len(mine), (i + 1) / len(mine))
        tick.on_progress = part
        seed = trial.seed
        split = prepare_split(data, replace(setup, seed=seed), trial.train.scaler, trial.train.val_fraction)
        model = build(setup, split, seed=seed)
        X, y = subsample_rows(split.X_train, split.y_train, measure_rows(count_params(model), n_train),
                              split.task, seed)
        pair = (b0.batch_size, min(max(sizes), len(X)))
        loss_fn = make_loss(trial.train.loss, split.task, split.n_classes)
        tick.at(0.0, f"gradient noise scale at the start, seed {seed}")
        start = _b_simple(model, loss_fn, X, y, pair, seed, tick)
        rec = retrain(data, setup, trial, sub_progress(part, 0.1, 0.8), model=model,
                      message=f"training batch {b0.batch_size}, seed {seed} again")
        tick.at(0.8, f"gradient noise scale at the end, seed {seed}")
        end = _b_simple(rec.model, loss_fn, X, y, pair, seed, tick) if rec.diverged_at is None else math.nan
        rows.append((seed, start, end))
    return rows


def _b_simple(model, loss_fn, X, y, pair: tuple[int, int], seed: int, tick) -> float:
    b_small, b_big = pair
    if b_big <= b_small:
        return math.nan
    cpu = copy.deepcopy(model).to("cpu").eval()
    est = gradient_noise_scale(batch_gradient_fn(cpu, loss_fn, X, y), len(X), b_small, b_big, NOISE_BATCHES,
                               seed, should_stop=tick)
    return est.b_simple


def _mean_sd(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if np.isinf(v).all() and len(v):
        return math.inf, math.nan
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def noise_finding(rows: list[tuple], b0: BestRate, critical: Critical) -> NoiseFinding:
    """B_simple's mean and spread over seeds, and where the grid's critical range lies against it."""
    start, start_sd = _mean_sd([r[1] for r in rows])
    end, end_sd = _mean_sd([r[2] for r in rows])
    relation = "unknown"
    known = [x for x in (start, end) if not math.isnan(x)]
    if known and critical.kind != "unknown":
        lo_b, hi_b = min(known), max(known)
        lo_c = critical.low if critical.low is not None else 0
        hi_c = critical.high if critical.high is not None else math.inf
        relation = "smaller" if hi_c < lo_b else "larger" if lo_c > hi_b else "within"
    return NoiseFinding(b0.batch_size, b0.rate, start, start_sd, end, end_sd, len(rows), relation)


def trace_frame(best: tuple[BestRate, ...], boundaries: tuple[Boundary, ...], sizes: tuple[int, ...]) -> pd.DataFrame:
    """Per batch size: the best rate and its range, what the linear and square-root rules predict
    from the smallest batch's best rate, and the divergence boundary (NaN where there is none)."""
    by_size = {x.batch_size: x for x in best}
    ref = best[0] if best else None
    rows = []
    for b, bd in zip(sizes, boundaries):
        x = by_size.get(b)
        k = b / ref.batch_size if ref is not None else math.nan
        rows.append(dict(
            batch_size=int(b), best_lr=x.rate if x else math.nan, low=x.low if x else math.nan,
            high=x.high if x else math.nan, value=x.value if x else math.nan, spread=x.spread if x else math.nan,
            seed_best=", ".join(num(r) for r in x.seed_best) if x else "",
            linear_lr=ref.rate * k if ref else math.nan, sqrt_lr=ref.rate * math.sqrt(k) if ref else math.nan,
            last_stable=_nan(bd.last_stable), first_unstable=_nan(bd.first_unstable), all_diverged=_nan(bd.all_diverged),
        ))
    frame = pd.DataFrame(rows)
    frame["batch_size"] = frame["batch_size"].astype(np.int64)
    return frame


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


# --------------------------------------------------------------------------- words
MEASURE_WORDS = {"val_loss": "validation loss", "train_loss": "training loss", "val_metric": "validation {metric}"}


def measure_label(measure: str, metric: str) -> str:
    """How the page names a measure: 'validation loss', 'validation accuracy', 'training loss'."""
    return MEASURE_WORDS[measure].format(metric=metric)


def _sizes_text(sizes: list[str]) -> str:
    return sizes[0] if len(sizes) == 1 else f"{', '.join(sizes[:-1])} and {sizes[-1]}"


def best_sentence(f: Findings) -> str:
    """The best rate of every batch size (the ranges and each seed's best are in `best_table`)."""
    label = measure_label(f.measure, f.metric)
    rates = {x.rate for x in f.best}
    lab = lambda b: size_label(b, f.n_train)  # noqa: E731
    if len(rates) == 1 and len(f.best) > 1:
        which = f"{num(f.best[0].rate)} at every batch size ({_sizes_text([lab(x.batch_size) for x in f.best])})"
    else:
        which = "; ".join(f"batch {lab(x.batch_size)}: {num(x.rate)}" for x in f.best)
    text = (f"Best learning rate by mean {label} over {f.seeds} seeds, among the rates where no seed diverged: "
            f"{which}.")
    edges = [lab(x.batch_size) for x in f.best if x.open_low or x.open_high]
    if edges:
        text += (f" For batch {_sizes_text(edges)} the rates not clearly worse reach the grid's edge, so the "
                 "optimum may lie outside the grid.")
    if f.no_best:
        text += (f" No rate trained in every seed for batch {_sizes_text([lab(b) for b in f.no_best])}, so it has "
                 "no best rate.")
    return text


def scaling_sentence(f: Findings) -> str:
    """What the best rates say about the linear and the square-root scaling rules."""
    s = f.scaling
    if s.kind == "unknown":
        return "The scaling rules cannot be checked: fewer than two batch sizes have a best rate."
    small, large = size_label(s.small, f.n_train), size_label(s.large, f.n_train)
    if s.ratio_low == 0 and s.ratio_high == math.inf:
        bounds = "the grid does not bound the factor (the rates not clearly worse reach the grid's edges)"
    else:
        lo = "no lower bound" if s.ratio_low == 0 else f"{num(s.ratio_low)}x"
        hi = "no upper bound" if s.ratio_high == math.inf else f"{num(s.ratio_high)}x"
        bounds = (f"allowing for the seeds and the grid's spacing ({num(f.step)}x between rates) the factor lies "
                  f"between {lo} and {hi}")
    where = (f"From batch {small} to batch {large} ({num(s.batch_ratio)}x larger) the best rate went from "
             f"{num(f.best[0].rate)} to {num(f.best[-1].rate)} ({num(s.rate_ratio)}x); {bounds}.")
    rules = f"the linear rule predicts {num(s.linear)}x and square-root scaling {num(s.sqrt)}x"
    verdict = {
        "linear": f"That fits the linear scaling rule ({rules}): not square-root scaling.",
        "sqrt": f"That fits square-root scaling ({rules}): not the linear rule.",
        "both": f"The grid cannot tell the rules apart ({rules}, both inside that interval).",
        "neither": f"That fits neither rule ({rules}).",
    }[s.kind]
    edge = [size_label(x.batch_size, f.n_train) for x in f.best if x.at_edge]
    cap = ""
    if edge and s.kind in ("neither", "sqrt"):
        cap = (f" For batch {_sizes_text(edge)} the next larger rate of the grid already diverged in some seed: "
               "there the rate may be capped by stability (the curvature) rather than by the gradient noise, and "
               "no scaling rule can push past that.")
    return f"{where} {verdict}{cap}"


def boundary_sentence(f: Findings) -> str:
    """Where training diverges for each batch size (the one divergence rule, core.rules)."""
    lab = lambda b: size_label(b, f.n_train)  # noqa: E731
    groups: dict[tuple, list[str]] = {}
    for bd in f.boundaries:
        groups.setdefault((bd.first_unstable, bd.all_diverged), []).append(lab(bd.batch_size))
    parts, none = [], []
    for (first, every), sizes in groups.items():
        who = f"batch {_sizes_text(sizes)}" if len(groups) > 1 else "every batch size"
        if first is None:
            none.append(f"batch {_sizes_text(sizes)}" if len(groups) > 1 else "any batch size")
        elif every == first:
            parts.append(f"from rate {num(first)} in every seed for {who}")
        elif every is None:
            parts.append(f"from rate {num(first)} in some seeds (never in all) for {who}")
        else:
            parts.append(f"from rate {num(first)} in some seeds and from {num(every)} in every seed for {who}")
    text = ""
    if parts:
        text = f"Training diverged (loss past {BLOWUP_FACTOR:g}x its start, or NaN) " + "; ".join(parts) + "."
    if none:
        text += (" " if text else "") + f"No seed diverged at any rate of the grid, for {' or '.join(none)}."
    example = next((bd for bd in f.boundaries if bd.example is not None), None)
    if example is not None:
        text += " For example: " + divergence_sentence(
            example.example, what=f"batch {lab(example.batch_size)} at rate {num(example.first_unstable)}")
    return text


def unresolved_lead(c: Critical, size: int, larger_better: bool) -> Comparison | None:
    """The comparison of batch `size` with a larger batch whose mean went the other way from the
    estimate's "no clear difference" reading (the larger batch better on average when
    `larger_better`, else worse) by more than either mean's spread across seeds, without the t-test
    carrying it: the widest such gap, or None. (A gap inside the spread is what seeds do; a wider
    one that two or three seeds cannot confirm is not evidence of no difference.)"""
    def gap(x: Comparison) -> float:
        small, large = x.a_value, x.b_value
        better = large > small if x.higher_is_better else large < small
        wide = abs(large - small) > max(x.spread_a, x.spread_b)
        return abs(large - small) if better == larger_better and wide else 0.0

    open_ = [x for x in c.comparisons if x.a == str(size) and x.winner is None and gap(x) > 0]
    return max(open_, key=gap) if open_ else None


def critical_sentence(f: Findings) -> str:
    """The critical batch size estimate, from comparisons across seeds only. Where the estimate
    rests on "no clear difference" although a mean went the other way, it says the seeds cannot
    tell rather than reading the missing evidence as a finding."""
    c = f.critical
    label = measure_label(f.measure, f.metric)
    lo = size_label(c.low, f.n_train) if c.low is not None else ""
    hi = size_label(c.high, f.n_train) if c.high is not None else ""
    if c.kind == "unknown":
        return "The critical batch size cannot be estimated: fewer than two batch sizes have a best rate."
    lead = c.doubt
    if lead is not None:
        big = size_label(int(lead.b), f.n_train)
        return (f"With the same {f.updates:,} updates for every batch size (each at its own best rate), no batch "
                f"larger than {hi} reached a clearly better {label}, but batch {big} did better on average "
                f"({num(lead.b_value)} vs {num(lead.a_value)} for batch {hi}) and {min(lead.n_a, lead.n_b)} seeds "
                f"cannot tell whether that is real (Welch's t-test, p = {num(lead.p_value, 2)}): the grid cannot "
                f"place the critical batch size{' above batch ' + lo if lo else ''}. Run more seeds to tell.")
    if c.budget == "updates":
        head = f"With the same {f.updates:,} updates for every batch size (each at its own best rate), "
        if c.kind == "below":
            body = (f"no larger batch reached a clearly better {label} than batch {hi}: a larger batch does not help "
                    f"here, so the critical batch size is at most about {hi} rows.")
        elif c.kind == "between":
            body = (f"batch {lo} fell clearly behind a larger batch, while no batch larger than {hi} beat batch {hi} "
                    f"clearly: a larger batch stops helping there, so the critical batch size is between about {lo} "
                    f"and {hi} rows.")
        else:
            body = (f"batch {lo} fell clearly behind the largest batch: larger batches kept helping, so the critical "
                    f"batch size is at least about {lo} rows (perhaps past this grid).")
    else:
        head = f"With the same {f.epochs:,} epochs for every batch size (larger batches take fewer updates), "
        if c.kind == "between":
            body = (f"batch {hi} fell clearly behind a smaller batch in {label} while batch {lo} kept up: the "
                    f"critical batch size is between about {lo} and {hi} rows.")
        else:
            body = (f"no batch fell clearly behind a smaller one in {label}, up to batch {lo}: the critical batch "
                    f"size is at least about {lo} rows.")
    return head + body + " (Welch's t-test across seeds at p < 0.05.)"


def noise_sentence(f: Findings) -> str:
    """The measured gradient noise scale next to the grid's critical batch estimate."""
    n = f.noise
    if n is None:
        return "The gradient noise scale was not measured: no batch size has a best rate."

    def bs(x: float, sd: float) -> str:
        if x == math.inf:
            return "unbounded (the noise swamps the mean gradient)"
        if math.isnan(x):
            return "not measured (the run diverged)"
        return f"{num(round(x, 1))}" + (f" ± {num(round(sd, 1))}" if sd and math.isfinite(sd) else "")

    text = (f"The gradient noise scale B_simple = tr(Σ)/|G|², measured as on the batch-size page on the same setup "
            f"(batch {size_label(n.batch_size, f.n_train)} at rate {num(n.rate)}, mean over {n.n_seeds} seeds), is "
            f"{bs(n.start, n.start_spread)} at the start and {bs(n.end, n.end_spread)} at the end of training.")
    relation = {
        "within": " The grid's critical batch estimate lies within that span, as McCandlish et al. (2018) predict "
                  "(the critical batch is about the noise scale, which grows as the loss falls).",
        "smaller": " The grid's critical batch estimate is smaller than B_simple anywhere in that span.",
        "larger": " The grid's critical batch estimate is larger than B_simple anywhere in that span.",
        "unknown": "",
    }[n.relation]
    if f.critical.doubt is not None:  # no estimate to set against the noise scale
        relation = ""
    return text + relation


def _trials(n: int) -> str:
    return f"{n:,} trial{'s' if n != 1 else ''}"


def make_verdict(f: Findings) -> Verdict:
    """The verdict, worded from the findings only."""
    if not f.best:
        failed = f" {_trials(f.n_failed)} failed, e.g.: {f.failed_example}" if f.n_failed else ""
        return Verdict("problem", "No cell of the grid trained in every seed: every rate diverged or failed for "
                                  f"every batch size.{failed}",
                       "Lower the rates (and check the data's scale), then run the grid again.")
    parts = [best_sentence(f), scaling_sentence(f), boundary_sentence(f), critical_sentence(f), noise_sentence(f)]
    if f.n_failed:
        parts.append(f"{_trials(f.n_failed)} failed and their cells are left out (see the errors table), e.g.: "
                     f"{f.failed_example}")
    text = " ".join(p for p in parts if p)
    advice = []
    s = f.scaling
    if s.kind == "both":
        advice.append("To separate the rules, narrow the rate range around the best rates with more rates, "
                      "add seeds, or widen the batch range.")
    if any(x.open_low or x.open_high for x in f.best):
        advice.append("Extend the rate range where the rates not clearly worse than the best reach the grid's "
                      "edge: a better rate may lie beyond it.")
    if f.optimizer == "adam":
        advice.append("For Adam, square-root scaling is the usual expectation (Malladi et al. 2022); the linear "
                      "rule is SGD's (Goyal et al. 2017), and it needs warm-up at large rates.")
    elif not advice:
        advice.append("Goyal et al. (2017) scale the rate linearly with the batch for SGD, with a warm-up; the "
                      "rule ends where the rate meets the divergence boundary or the batch passes the "
                      "critical batch size.")
    kind = "warning" if f.n_failed or f.no_best else "good" if s.kind in ("linear", "sqrt", "neither") else "info"
    return Verdict(kind, text, " ".join(advice))


# --------------------------------------------------------------------------- tables for the page
def best_table(result: Result) -> pd.DataFrame:
    """Per batch size, for display: best rate, rates not clearly worse, seeds' best rates, the
    measure at the best rate (mean ± sd), and the divergence boundary."""
    f = result.findings
    label = measure_label(f.measure, f.metric)
    by_size = {x.batch_size: x for x in f.best}
    rows = []
    for bd in f.boundaries:
        x = by_size.get(bd.batch_size)
        rows.append({
            "batch size": result.label(bd.batch_size),
            "best rate": num(x.rate) if x else "none",
            "not clearly worse": (f"{num(x.low)}–{num(x.high)}" if x.low != x.high else num(x.low)) if x else "",
            "each seed's best": ", ".join(num(r) for r in x.seed_best) if x else "",
            f"{label} at best": (f"{num(x.value)} ± {num(x.spread)}" if x else ""),
            "next rate diverged": ("yes" if x.at_edge else "no") if x else "",
            "first rate that diverged": num(bd.first_unstable) if bd.first_unstable is not None else "none",
            "every seed diverged from": num(bd.all_diverged) if bd.all_diverged is not None else "none",
        })
    return pd.DataFrame(rows)


def errors_table(result: Result) -> pd.DataFrame:
    """The trials that raised, with their message (shown as plain text by the page)."""
    t = result.trials
    bad = t[t["status"] == "failed"]
    return pd.DataFrame({"batch size": [result.label(int(b)) for b in bad["batch_size"]], "rate": bad["lr"],
                         "seed": bad["seed"], "error": bad["error"]})


def backend_text(backend: str) -> str:
    """How the page names the backend that trained the grid."""
    return {"inline": "in-process", "joblib": "joblib", "ray": "Ray", "cache": "cache only"}.get(backend, backend)


def optimizer_label(name: str) -> str:
    """The optimizer's display name."""
    return OPTIMIZER_LABELS.get(name, name)
