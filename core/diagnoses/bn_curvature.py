"""Batch norm's curvature (lecture 5.2, issue 15 item 9): why lambda_max is larger with batch norm,
and the measure that shows what batch norm does to the surface.

lambda_max at the start is much larger with batch norm (87 against 1.75 on moons), which read as
the opposite of the lecture's "smoother surface". It is not a fair yardstick here: batch norm
divides each unit by its batch's standard deviation, so the loss does not change when the weights
feeding a batch-norm layer are multiplied by c > 0, and the curvature along them scales as 1/c^2.
At the small initial weights it is large, and its quadratic bound 2 / lambda_max on gradient
descent's rate says little, because each step that overshoots lengthens those weights (the
gradient is orthogonal to them, up to batch norm's eps) and so lowers the curvature.

The measure used instead is the one the lecture's "easier to train" is about: the largest rate at
which plain full-batch gradient descent trains without diverging (core.rules, inside
core.train.train), found by a geometric sweep of rates, compared with each model's own
2 / lambda_max at the start; plus lambda_max and the weights' norm after training at that rate,
and the lowest loss any rate reached. Everything is repeated over seeds (initial weights) and
compared through core.findings.compare.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses._kits.scaling import (
    MAX_SEEDS, MIN_SEEDS, Ticker, bands, batch_norm_split, check_budget, compare_log, estimated_seconds, geometric_mean,
    lambda_max, measure_rows, rows_note,
)
from core.findings import Comparison, compare
from core.diagnoses.words import capital, comparison_sentence, factor, num, times
from core.lab import LabSetup
from core.models import n_params
from core.runs import build, run_model, seeds_for, training_rows
from core.train import SCALERS, TrainConfig, make_loss

MODELS = ("plain", "bn")
LABELS = {"plain": "the plain model", "bn": "the batch-norm model"}
SCALER_LABELS = {"none": "raw", "standard": "standardized", "minmax": "min-max", "robust": "robust"}
STATUS = ("trained", "diverged", "not tried")
MAX_RATES, MAX_SWEEP_STEPS, MAX_SWEEP_ROWS = 12, 1000, 5000


@dataclass(frozen=True)
class Config:
    """A sweep of plain gradient-descent rates on the lab model, with and without batch norm."""

    scaler: str = "none"  # inputs of both models: raw (as the lab's 'raw + batch norm' run) or a scaler
    low: float = 0.01  # smallest rate of the sweep
    high: float = 30.0  # largest rate of the sweep
    n_rates: int = 5  # rates, evenly spaced on a log scale from low to high
    refine: int = 2  # extra rates that halve (on a log scale) the gap where training started to diverge
    steps: int = 40  # full-batch gradient-descent updates per rate
    seeds: int = 3  # initial weights per model; claims must hold across them
    max_train_rows: int = 1000  # training rows (a random sample of a larger split); full batch


@dataclass(frozen=True)
class Findings:
    """The comparisons behind the verdict, decided before any wording."""

    lambda_start: Comparison  # lambda_max at the start, bn (a) vs plain (b); lower is "smoother"
    max_rate: Comparison  # largest rate that trained, bn vs plain; higher is better
    past_bound: Comparison  # max_rate / (2 / lambda_start), bn vs plain: how far past its own quadratic bound
    best_loss: Comparison  # lowest tail loss over the rates that trained, bn vs plain; lower is better
    multiple: dict  # model -> geometric mean of max_rate / (2 / lambda_start): how far past its quadratic bound
    lambda_end: dict  # model -> geometric mean of lambda_max after training at its largest stable rate
    norm_start: dict  # model -> mean norm of the hidden linear weights at the start
    norm_end: dict  # model -> ... after training at the largest stable rate
    none_stable: tuple  # models that diverged even at the smallest rate (in some seed)
    low: float
    high: float
    n_seeds: int


@dataclass
class Result:
    """The sweep, its per-seed points and summary, findings and verdict."""

    sweep: pd.DataFrame  # model, label, seed, lr, status, tail_loss, diverged_at
    bands: pd.DataFrame  # model, label, lr, mean, low, high, n: tail loss over the seeds that trained
    points: pd.DataFrame  # model, label, seed, lambda_start, stable_lr, max_rate, multiple, lambda_end,
    #                       norm_start, norm_end, best_loss
    summary: pd.DataFrame  # one row per model: geometric means of curvatures and rates, means of the rest
    rates: tuple[float, ...]
    n_train: int
    findings: Findings
    verdict: Verdict
    notes: tuple[str, ...] = ()


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for an impossible config."""
    if config.scaler not in SCALERS:
        raise ValueError(f"Unknown scaler {config.scaler!r}; choose one of {', '.join(SCALERS)}.")
    if not (0 < config.low < config.high and math.isfinite(config.high)):
        raise ValueError("The sweep needs positive rates with the smallest below the largest.")
    if not 2 <= config.n_rates <= MAX_RATES:
        raise ValueError(f"Sweep between 2 and {MAX_RATES} rates.")
    if not 0 <= config.refine <= 6:
        raise ValueError("Refine the edge 0 to 6 times.")
    if not 1 <= config.steps <= MAX_SWEEP_STEPS:
        raise ValueError(f"Train for 1 to {MAX_SWEEP_STEPS:,} steps per rate.")
    if not MIN_SEEDS <= config.seeds <= MAX_SEEDS:
        raise ValueError(f"Use between {MIN_SEEDS} and {MAX_SEEDS} seeds.")
    if not 10 <= config.max_train_rows <= MAX_SWEEP_ROWS:
        raise ValueError(f"The training-rows cap must be between 10 and {MAX_SWEEP_ROWS:,} (every step is full batch).")


def rates(config: Config) -> tuple[float, ...]:
    """The swept rates: n_rates evenly spaced on a log scale from low to high.

    >>> [round(r, 3) for r in rates(Config(low=0.01, high=10.0, n_rates=4))]
    [0.01, 0.1, 1.0, 10.0]
    """
    return tuple(float(r) for r in np.geomspace(config.low, config.high, config.n_rates))


def hidden_weight_norm(model: nn.Module) -> float:
    """Norm of all hidden linear layers' weights (every Linear but the output layer): with batch
    norm, the weights that feed a batch-norm layer, along which the loss is scale-invariant."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    if not linears:
        return float("nan")
    return float(torch.sqrt(sum((m.weight.detach().double() ** 2).sum() for m in linears)).cpu())


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Sweep plain gradient-descent rates with and without batch norm, for each seed."""
    on_progress = on_progress or no_progress
    validate(config)
    split = batch_norm_split(data, setup, config.scaler, config.max_train_rows)
    notes = [n for n in [rows_note(len(split.X_train), training_rows(data.n_rows), data.task, "The sweep")] if n]
    specs = {"plain": dataclasses.replace(setup.model, batch_norm=False),
             "bn": dataclasses.replace(setup.model, batch_norm=True)}
    sweep_rates = rates(config)
    seeds = seeds_for(setup, config.seeds)
    n = len(split.X_train)
    size = n_params(build(setup, split, specs["bn"]))
    check_budget(estimated_seconds(len(seeds) * len(MODELS) * (config.n_rates + config.refine) * config.steps, n, size),
                 f"A sweep of {config.n_rates} rates x {len(seeds)} seeds x 2 models")
    m = measure_rows(n, size)
    if m < n:
        notes.append(f"lambda_max is measured on {m:,} of the {n:,} training rows (a large model).")
    X_m, y_m = split.X_train[:m], split.y_train[:m]
    loss_fn = make_loss("auto", data.task, data.n_classes)
    tick = Ticker(on_progress)
    rows, points = [], []
    jobs = [(seed, key) for seed in seeds for key in MODELS]
    for j, (seed, key) in enumerate(jobs):
        label = f"{LABELS[key]}, seed {seed}"
        lo, hi = j / len(jobs), (j + 1) / len(jobs)
        tick.at(lo, f"{label}: curvature at the start")
        start_model = build(setup, split, specs[key], seed=seed)
        lam0 = lambda_max(start_model, loss_fn, X_m, y_m, should_stop=tick)
        norm0 = hidden_weight_norm(start_model)
        best, last_ok, first_bad = math.inf, None, None
        span = len(sweep_rates) + config.refine
        tried = 0

        def attempt(lr: float) -> bool:
            nonlocal best, last_ok, tried
            tc = TrainConfig(optimizer="sgd", lr=lr, max_steps=config.steps, batch_size=None, scaler=config.scaler,
                             seed=seed, eval_every=10**9)
            rec = run_model(split, setup, tc, key=key, model_spec=specs[key], message=f"{label}, rate {lr:.3g}",
                            on_progress=sub_progress(on_progress, lo + (hi - lo) * tried / span,
                                                     lo + (hi - lo) * (tried + 1) / span))
            tried += 1
            diverged = rec.diverged_at is not None
            rows.append(dict(model=key, label=LABELS[key], seed=seed, lr=lr,
                             status="diverged" if diverged else "trained",
                             tail_loss=np.nan if diverged else rec.tail_loss, diverged_at=rec.diverged_at))
            if not diverged:
                best = min(best, rec.tail_loss)
                if last_ok is None or lr > last_ok[0]:
                    last_ok = (lr, rec.model)
            return not diverged

        for lr in sweep_rates:
            if first_bad is not None:
                rows.append(dict(model=key, label=LABELS[key], seed=seed, lr=lr, status="not tried",
                                 tail_loss=np.nan, diverged_at=None))
            elif not attempt(lr):
                first_bad = lr  # higher rates are not tried: the sweep looks for the edge
        # Refine the edge between the last rate that trained and the first that diverged, halving
        # the gap on a log scale each time.
        for _ in range(config.refine if first_bad is not None and last_ok is not None else 0):
            mid = math.sqrt(last_ok[0] * first_bad)
            if not attempt(mid):
                first_bad = mid
        stopped = first_bad is not None
        lam_end = norm_end = np.nan
        if last_ok is not None:
            tick.at(hi, f"{label}: curvature after training at rate {last_ok[0]:.3g}")
            lam_end = lambda_max(last_ok[1], loss_fn, X_m, y_m, should_stop=tick)
            norm_end = hidden_weight_norm(last_ok[1])
        # A run that trained at every rate has its edge above the sweep: the largest rate is a lower bound.
        max_rate = last_ok[0] if last_ok is not None else np.nan
        stable = 2.0 / lam0 if lam0 > 0 else np.inf
        points.append(dict(model=key, label=LABELS[key], seed=seed, lambda_start=lam0, stable_lr=stable,
                           max_rate=max_rate, multiple=max_rate / stable, lambda_end=lam_end,
                           norm_start=norm0, norm_end=norm_end, best_loss=best if math.isfinite(best) else np.nan,
                           edge_found=stopped))
    on_progress(1.0, "done")
    sweep = pd.DataFrame(rows).sort_values(["seed", "model", "lr"], kind="stable").reset_index(drop=True)
    sweep["diverged_at"] = sweep["diverged_at"].astype("Int64")
    pts = pd.DataFrame(points)
    trained = sweep[sweep["status"] == "trained"]
    band = bands(trained, ["model", "label"], "lr", "tail_loss")
    summary = _summary(pts)
    findings = find(pts, config, len(seeds))
    if not pts["edge_found"].all():
        notes.append(f"Some runs trained at every swept rate, up to {config.high:g}: their largest stable rate is at "
                     "least that (raise the largest rate to find the edge).")
    return Result(sweep=sweep, bands=band, points=pts, summary=summary, rates=sweep_rates, n_train=n,
                  findings=findings, verdict=make_verdict(findings), notes=tuple(notes))


LOG_COLUMNS = ("lambda_start", "stable_lr", "max_rate", "multiple", "lambda_end")  # averaged geometrically


_gmean = geometric_mean


def _summary(points: pd.DataFrame) -> pd.DataFrame:
    """One row per model: geometric means over seeds of curvatures and rates (they span orders of
    magnitude, and the verdict compares them on a log scale), plain means of the rest."""
    rows = []
    for (key, label), g in points.groupby(["model", "label"], sort=False):
        row = dict(model=key, label=label, seeds=len(g))
        for col in ("lambda_start", "stable_lr", "max_rate", "multiple", "lambda_end", "norm_start", "norm_end",
                    "best_loss"):
            row[col] = _gmean(g[col]) if col in LOG_COLUMNS else float(g[col].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def find(points: pd.DataFrame, config: Config, n_seeds: int) -> Findings:
    """Compare batch norm with the plain model across seeds (Welch's t-test). With one seed no
    difference is claimed (noise unknown), except against a model with no stable rate at all."""
    by = {k: points[points["model"] == k] for k in MODELS}
    noise = None if n_seeds < 2 else 0.0

    def cmp(measure: str, col: str, higher: bool, log: bool = True, **kw) -> Comparison:
        # Curvatures and rates span orders of magnitude: compared on a log scale (geometric means).
        values = {k: [float(v) for v in by[k][col] if pd.notna(v)] for k in MODELS}
        how = compare_log if log else compare
        return how(measure, "bn", values["bn"], "plain", values["plain"], higher_is_better=higher, noise=noise,
                   split="train", **kw)

    mean = lambda k, col: float(by[k][col].mean())  # noqa: E731
    gmean = lambda k, col: _gmean(by[k][col])  # noqa: E731

    return Findings(
        lambda_start=cmp("lambda_start", "lambda_start", False),
        max_rate=cmp("max_stable_rate", "max_rate", True),
        past_bound=cmp("rate_over_bound", "multiple", True),
        best_loss=cmp("best_loss", "best_loss", False, log=False, min_relative=0.05),
        multiple={k: gmean(k, "multiple") for k in MODELS},
        lambda_end={k: gmean(k, "lambda_end") for k in MODELS},
        norm_start={k: mean(k, "norm_start") for k in MODELS},
        norm_end={k: mean(k, "norm_end") for k in MODELS},
        none_stable=tuple(k for k in MODELS if by[k]["max_rate"].isna().any()),
        low=config.low, high=config.high, n_seeds=n_seeds,
    )


def _held(c: Comparison) -> str:
    """How a difference across seeds was judged: the test's p-value, or identical seeds."""
    if c.n_a < 2 or c.n_b < 2:
        return "one seed"
    if math.isfinite(c.p_value):
        return f"Welch's t-test across {min(c.n_a, c.n_b)} seeds, p = {c.p_value:.2g}"
    return f"the same in each of {min(c.n_a, c.n_b)} seeds"


def _conclusion(f: Findings) -> str:
    """What the sweep says about the lecture's claim, from the headline measure (the largest
    stable rate) first, then the rate in units of each model's own 2/lambda_max: each measure is
    stated as it came out, so no clause contradicts a number shown above it."""
    rate, past = f.max_rate, f.past_bound
    measure = "the largest stable rate, the measure the lecture's \"easier to train\" is about"
    if rate.winner == "bn":
        head = (f"By {measure}, batch norm survived a {factor(rate.ratio)} higher rate ({_held(rate)}): "
                "the sweep supports the lecture's claim here")
    elif rate.winner == "plain":
        head = (f"By {measure}, the plain model survived a {factor(1 / rate.ratio)} higher rate ({_held(rate)}): "
                "the sweep does not support the lecture's claim here")
    else:
        head = (f"By {measure}, the sweep shows no clear difference between the two models with {f.n_seeds} "
                f"seed{'s' if f.n_seeds > 1 else ''}, so it does not support the lecture's claim here")
    if past.winner == "bn":
        went = "also went" if rate.winner == "bn" else "did go"
        tail = (f"; batch norm {went} further past its own 2/λmax ({_held(past)}), so λmax at the start "
                "overstates what limits training with batch norm.")
    elif past.winner == "plain":
        tail = f"; relative to its own 2/λmax, though, the plain model went further ({_held(past)})."
    else:
        tail = ("; its rate relative to its own 2/λmax was not clearly different from the plain model's, so the sweep "
                "does not show whether λmax at the start overstates what limits training with batch norm.")
    return head + tail


def make_verdict(f: Findings) -> Verdict:
    """The verdict, worded from the findings only."""
    if f.none_stable:
        which = " and ".join(LABELS[k] for k in f.none_stable)
        return Verdict("problem", f"Plain gradient descent diverged even at the smallest rate ({f.low:g}) {which}, so "
                                  "the sweep found no stable rate to compare.",
                       "Lower the smallest rate of the sweep.")
    c = f.lambda_start
    seeds = f" (geometric mean of {f.n_seeds} seeds)" if f.n_seeds > 1 else ""
    start = (f"At the start, λmax is {num(c.value('bn'))} with batch norm and {num(c.value('plain'))} "
             f"without{seeds}")
    gap = max(c.value("bn"), c.value("plain")) / max(min(c.value("bn"), c.value("plain")), 1e-300)
    unclear = (f", no clear difference by λmax: the seeds spread too widely for a {times(c.value('bn'), c.value('plain'))} "
               "gap between the means to count." if f.n_seeds > 1 and gap >= 2 else ", no clear difference by λmax.")
    start += {"plain": ": by λmax alone the batch-norm surface is sharper, not smoother.",
              "bn": ": by λmax alone the batch-norm surface is smoother."}.get(c.winner, unclear)
    rate = capital(comparison_sentence(f.max_rate, LABELS, "trained without diverging", "at higher rates",
                                       "the largest stable rate of plain gradient descent"))
    past = capital(comparison_sentence(f.past_bound, LABELS, "went", "further past its own 2/λmax",
                                       "the largest stable rate in units of 2/λmax at the start", fmt=factor))
    rate, past = (x.replace("(mean of", "(geometric mean of") for x in (rate, past))
    after = (f"After training at its largest stable rate, λmax was {num(f.lambda_end['bn'])} with batch norm "
             f"(from {num(c.value('bn'))}) and the hidden weights' norm had grown from {num(f.norm_start['bn'])} to "
             f"{num(f.norm_end['bn'])}; without batch norm λmax was {num(f.lambda_end['plain'])} (from "
             f"{num(c.value('plain'))}) and the norm {num(f.norm_start['plain'])} to {num(f.norm_end['plain'])}.")
    best = capital(comparison_sentence(f.best_loss, LABELS, "reached", "a lower training loss at its best rate",
                                       "the lowest training loss of the sweep"))
    text = f"{capital(start)} {rate} {past} {after} {best} {_conclusion(f)}"
    undecided = f.max_rate.winner is None or f.past_bound.winner is None
    advice = "Raise the seed count to judge a smaller difference." if undecided and f.n_seeds < 5 else ""
    return Verdict("info", text, advice)
