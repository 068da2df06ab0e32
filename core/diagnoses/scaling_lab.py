"""Input scaling on the lab model, and batch norm on raw inputs (lecture 5.2), across seeds.

The lab model is trained on one split with each scikit-learn scaler (fitted on the training split
only) and, without any scaler, with batch norm after each hidden linear layer. Every run of a
seed starts from the same weights and sees the same batches; the seeds change both. Runs are
named by stable keys (RUNS); LABELS is only what the page shows.

Per run and seed: lambda_max of the full training loss at the start (the stable rate of plain
gradient descent is 2 / lambda_max), the steps until the smoothed training loss reaches a target
(a share of the loss of the best constant prediction), the loss level over the last 20% of steps,
and the final validation metric. Comparisons go through core.findings.compare (Welch's
t-test across seeds; one seed: the runs' own tail noise), the verdicts through core.diagnoses.words.

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> res = run(load_builtin("moons"), LabSetup(), Config(steps=30, seeds=1))
>>> list(res.summary["run"])
['none', 'standard', 'minmax', 'robust', 'bn_raw']
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses._kits.scaling import (
    DEFAULT_TRAIN_ROWS, Ticker, bands, check_budget, check_common, estimated_seconds, first_at_or_below,
    geometric_mean, lambda_max, measure_rows, rows_note, smooth_width, smoothed_curve, thin,
)
from core.findings import Comparison, compare
from core.diagnoses.words import (
    capital, comparison_sentence, difference_sentence, divergence_sentence, factor, num,
)
from core.lab import LabSetup
from core.models import n_params
from core.runs import build, prepare_split, run_model, seeds_for, training_rows
from core.train import Split, TrainConfig, check_dataset_size, make_loss, metric_name

RUNS = ("none", "standard", "minmax", "robust", "bn_raw")
LABELS = {"none": "raw", "standard": "standardized", "minmax": "min-max", "robust": "robust",
          "bn_raw": "raw + batch norm"}
SCALER_OF = {"none": "none", "standard": "standard", "minmax": "minmax", "robust": "robust", "bn_raw": "none"}
BATCH_NORM = frozenset({"bn_raw"})
OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class Config:
    """The lab model trained with each input scaling, and with batch norm on raw inputs."""

    optimizer: str = "adam"  # "sgd", "momentum" or "adam"
    lr: float | None = 0.01  # one rate for every run; None = each run at lr_fraction x its own 2/lambda_max
    lr_fraction: float = 0.5  # used when lr is None; below 0.9 because nets sharpen while they train
    steps: int = 150  # optimizer updates per run
    batch_size: int | None = 32  # rows per update; None = full batch (2 / lambda_max is exact there)
    target_fraction: float = 0.3  # target loss = this x the loss of the best constant prediction
    seeds: int = 3  # initial weights and batch order per run; claims must hold across them
    max_train_rows: int = DEFAULT_TRAIN_ROWS  # training rows used (a random sample of a larger split)


@dataclass(frozen=True)
class Findings:
    """The comparisons behind the two verdicts, decided before any wording."""

    scaling_pace: Comparison  # steps_to_target, standard (a) vs none (b); fewer is better
    scaling_level: Comparison  # tail_loss (training), standard vs none; lower is better
    bn_pace: Comparison  # steps_to_target, bn_raw vs none
    bn_level: Comparison  # tail_loss, bn_raw vs none
    bn_val: Comparison  # final_val_metric, bn_raw vs none; higher is better
    bn_vs_standard: Comparison  # tail_loss, bn_raw vs standard
    lambda_start: dict  # run key -> geometric mean over seeds of lambda_max at the start
    reached: dict  # run key -> seeds whose smoothed loss reached the target
    diverged: dict  # run key -> ((seed, Divergence), ...) for seeds that diverged
    scale_spread: float  # largest / smallest standard deviation of the (non-constant) input columns
    n_seeds: int
    steps: int  # the step budget of every run
    target_loss: float
    lr_fraction: float | None = None  # each run's rate as a share of its own 2 / lambda_max; None = one rate


@dataclass
class Result:
    """Every run of every seed, their summary, curves with spread, findings and two verdicts."""

    runs: pd.DataFrame  # one row per (run, seed): run, label, seed, batch_norm, lambda_max, stable_lr, lr,
    #                     steps_to_target, tail_loss, tail_noise, final_train_loss, final_val_metric, diverged_at
    summary: pd.DataFrame  # one row per run: means over seeds and their spreads (see _summary)
    curves: pd.DataFrame  # run, label, seed, step, smooth: smoothed training loss (thinned)
    bands: pd.DataFrame  # run, label, step, mean, low, high, n: the curves' mean and spread over seeds
    scaler_stats: pd.DataFrame  # scaler, feature, center, scale: X_scaled = (X - center) / scale
    metric: str  # "accuracy" or "R^2"
    baseline_loss: float  # loss of the best constant prediction on the training split
    target_loss: float
    n_train: int
    seeds: tuple[int, ...]
    findings: Findings
    verdict: Verdict  # about input scaling
    bn_verdict: Verdict  # about batch norm on raw inputs
    messages: tuple[str, ...]  # one divergence sentence per diverged run
    notes: tuple[str, ...] = ()


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for an impossible config."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if config.lr is not None and not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.lr is None and not 0 < config.lr_fraction <= 2:
        raise ValueError("The fraction of 2 / lambda_max must be above 0 and at most 2.")
    check_common(config.seeds, config.steps, config.max_train_rows)
    if config.batch_size is not None and config.batch_size < 2:
        raise ValueError("Batch norm needs at least 2 rows per batch.")
    if not 0 < config.target_fraction < 1:
        raise ValueError("The target share of the baseline loss must be between 0 and 1.")


def baseline_loss(split: Split) -> float:
    """Loss of the best constant prediction on the training split (cross-entropy or MSE).

    Classification: the entropy of the class shares. Regression: the variance of the (already
    standardized) targets, i.e. 1.
    """
    if split.task == "classification":
        p = np.bincount(split.y_train, minlength=split.n_classes) / len(split.y_train)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())
    return float(np.var(split.y_train.astype(np.float64)))


def scaler_table(split: Split, scaler: str, feature_names) -> pd.DataFrame:
    """The fitted statistics of a split's scaler as center and scale: X_scaled = (X - center) / scale."""
    s = split.scaler
    if s is None:
        center, scale = np.zeros(split.n_features), np.ones(split.n_features)
    elif scaler == "minmax":
        center, scale = s.data_min_, s.data_range_
    elif scaler == "robust":
        center, scale = s.center_, s.scale_
    else:
        center, scale = s.mean_, s.scale_
    return pd.DataFrame({"scaler": LABELS[scaler], "feature": list(feature_names),
                         "center": np.asarray(center, dtype=np.float64), "scale": np.asarray(scale, dtype=np.float64)})


def trim_for_batch_norm(split: Split, batch: int | None) -> tuple[Split, str | None]:
    """Drop one training row when the last batch of an epoch would hold a single row (batch norm
    cannot normalize one row); every run uses the trimmed split, so all see the same rows."""
    n = len(split.X_train)
    if batch is None or batch >= n or n % batch != 1:
        return split, None
    trimmed = dataclasses.replace(split, X_train=split.X_train[:-1], y_train=split.y_train[:-1])
    return trimmed, (f"One training row was left out: with {n:,} rows in batches of {batch} the last batch "
                     "would hold a single row, and batch norm needs two.")


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train the lab model with each scaler and with batch norm on raw inputs, for each seed."""
    on_progress = on_progress or no_progress
    validate(config)
    check_dataset_size(data)
    notes: list[str] = []
    splits: dict[str, Split] = {}
    stats = []
    for scaler in dict.fromkeys(SCALER_OF.values()):
        split = prepare_split(data, setup, scaler, max_train_rows=config.max_train_rows)
        split, note = trim_for_batch_norm(split, config.batch_size)
        splits[scaler] = split
        stats.append(scaler_table(split, scaler, data.feature_names))
        if note and note not in notes:
            notes.append(note)
    n_all = training_rows(data.n_rows)
    note = rows_note(len(splits["none"].X_train), n_all, data.task)
    if note:
        notes.insert(0, note)
    if setup.model.batch_norm:
        notes.append("The sidebar's model has batch norm; here it is off in the scaler runs and on in "
                     "'raw + batch norm', so each run changes one thing.")
    base_split = splits["none"]
    base = baseline_loss(base_split)
    target = config.target_fraction * base
    seeds = seeds_for(setup, config.seeds)
    specs = {k: dataclasses.replace(setup.model, batch_norm=k in BATCH_NORM) for k in RUNS}
    size = max(n_params(build(setup, base_split, specs[k])) for k in ("none", "bn_raw"))
    rows_per = config.batch_size or len(base_split.X_train)
    check_budget(estimated_seconds(len(seeds) * len(RUNS) * config.steps, rows_per, size),
                 f"{len(seeds)} seeds x {len(RUNS)} runs of {config.steps:,} steps")

    loss_fn = make_loss("auto", data.task, data.n_classes)
    tick = Ticker(on_progress)
    width = smooth_width(config.steps)
    rows, curves, messages = [], [], []
    jobs = [(seed, key) for seed in seeds for key in RUNS]
    for i, (seed, key) in enumerate(jobs):
        split = splits[SCALER_OF[key]]
        label = f"{LABELS[key]}, seed {seed}"
        tick.at(i / len(jobs), f"{label}: curvature at the start")
        model = build(setup, split, specs[key], seed=seed)
        m = measure_rows(len(split.X_train), n_params(model))
        lam = lambda_max(model, loss_fn, split.X_train[:m], split.y_train[:m], should_stop=tick)
        stable = 2.0 / lam if lam > 0 else math.inf
        lr = config.lr if config.lr is not None else config.lr_fraction * stable
        if not math.isfinite(lr):
            lr = 0.1
            notes.append(f"{label}: no positive curvature at the start, so it trains at 0.1.")
        # eval_every past the budget: run_model evaluates start and end itself; per-epoch passes
        # over both splits would only add time.
        tc = TrainConfig(optimizer=config.optimizer, lr=lr, max_steps=config.steps, batch_size=config.batch_size,
                         scaler=SCALER_OF[key], seed=seed, eval_every=10**9)
        rec = run_model(split, setup, tc, key=key, model=model, message=label,
                        on_progress=sub_progress(on_progress, (i + 0.1) / len(jobs), (i + 1) / len(jobs)))
        curve = smoothed_curve(rec.history.steps, width)
        if rec.diverged_at is not None:
            curve = curve[curve["step"] < rec.diverged_at]
            if not any(k == key for k, _ in messages):
                messages.append((key, divergence_sentence(rec.divergence, f"{capital(LABELS[key])} (seed {seed})")))
        reached = first_at_or_below(curve, target)
        rows.append(dict(run=key, label=LABELS[key], seed=seed, batch_norm=key in BATCH_NORM, lambda_max=lam,
                         stable_lr=stable, lr=lr, steps_to_target=reached, tail_loss=rec.tail_loss,
                         tail_noise=rec.tail_noise, final_train_loss=rec.end.train_loss,
                         final_val_metric=rec.end.val_metric, diverged_at=rec.diverged_at,
                         divergence=rec.divergence))
        curves.append(thin(curve).assign(run=key, label=LABELS[key], seed=seed))
    on_progress(1.0, "done")

    runs = pd.DataFrame(rows)
    divergences = runs.pop("divergence")
    for col in ("steps_to_target", "diverged_at"):
        runs[col] = runs[col].astype("Int64")
    curve_frame = pd.concat(curves, ignore_index=True)[["run", "label", "seed", "step", "smooth"]]
    band = bands(curve_frame, ["run", "label"], "step", "smooth")
    findings = find(runs, divergences, splits["standard"], config, target)
    summary = _summary(runs, config.steps)
    return Result(
        runs=runs, summary=summary, curves=curve_frame, bands=band, scaler_stats=pd.concat(stats, ignore_index=True),
        metric=metric_name(data.task), baseline_loss=base, target_loss=target, n_train=len(base_split.X_train),
        seeds=tuple(seeds), findings=findings, verdict=scaling_verdict(findings),
        bn_verdict=bn_verdict(findings, metric_name(data.task)), messages=tuple(m for _, m in messages),
        notes=tuple(notes),
    )


def _steps_samples(g: pd.DataFrame, budget: int) -> list[float]:
    # Censored at the budget: a seed that never reached the target (or diverged) counts as
    # budget + 1 steps, so a run that reached it in only some seeds, near the end, is no clear win
    # over one that never did; the sentence says how many seeds reached it.
    reached = g["steps_to_target"].notna() & g["diverged_at"].isna()
    return [float(s) if ok else float(budget + 1) for s, ok in zip(g["steps_to_target"].fillna(0), reached)]


def find(runs: pd.DataFrame, divergences: pd.Series, standard_split: Split, config: Config,
         target: float) -> Findings:
    """Compare standardized with raw inputs, and batch norm on raw inputs with raw and standardized
    inputs, across seeds (core.findings.compare)."""
    by = {k: runs[runs["run"] == k] for k in RUNS}

    def level(a: str, b: str) -> Comparison:
        # One seed: a difference must pass NOISE_MULTIPLE x the noisier run's own tail noise.
        noise = float(max(by[a]["tail_noise"].max(), by[b]["tail_noise"].max()))
        return compare("tail_loss", a, _ok(by[a], "tail_loss"), b, _ok(by[b], "tail_loss"), higher_is_better=False,
                       noise=noise, split="train")

    def pace(a: str, b: str) -> Comparison:
        return compare("steps_to_target", a, _steps_samples(by[a], config.steps), b,
                       _steps_samples(by[b], config.steps), higher_is_better=False, split="train")

    scale = np.asarray(standard_split.scaler.scale_, dtype=float)
    scale = scale[scale > 0]
    diverged = {}
    for key in RUNS:
        hits = [(int(r.seed), d) for r, d in zip(runs.itertuples(), divergences) if r.run == key and d is not None]
        if hits:
            diverged[key] = tuple(hits)
    return Findings(
        scaling_pace=pace("standard", "none"),
        scaling_level=level("standard", "none"),
        bn_pace=pace("bn_raw", "none"),
        bn_level=level("bn_raw", "none"),
        bn_val=compare("final_val_metric", "bn_raw", _ok(by["bn_raw"], "final_val_metric"), "none",
                       _ok(by["none"], "final_val_metric"), higher_is_better=True, split="validation",
                       min_relative=0.01),
        bn_vs_standard=level("bn_raw", "standard"),
        lambda_start={k: geometric_mean(by[k]["lambda_max"]) for k in RUNS},
        reached={k: int((by[k]["steps_to_target"].notna() & by[k]["diverged_at"].isna()).sum()) for k in RUNS},
        diverged=diverged,
        scale_spread=float(scale.max() / scale.min()) if len(scale) else float("nan"),
        n_seeds=int(runs["seed"].nunique()),
        steps=config.steps,
        target_loss=target,
        lr_fraction=config.lr_fraction if config.lr is None else None,
    )


def _ok(g: pd.DataFrame, col: str) -> list[float]:
    """The values of a measure over the seeds that did not diverge."""
    return g.loc[g["diverged_at"].isna(), col].astype(float).tolist()


def _summary(runs: pd.DataFrame, budget: int) -> pd.DataFrame:
    """One row per run key: means over seeds. Curvatures and rates (lambda_max, 2 / lambda_max, the
    rate used) are geometric means, as on the rest of the page, so 2 / lambda_max of the row is
    2 over its lambda_max. Steps to the target are averaged as they are compared: a seed that
    missed it (or diverged) counts as budget + 1."""
    out = []
    for key, g in runs.groupby("run", sort=False):
        ok = g["diverged_at"].isna()
        reached = g["steps_to_target"].notna() & ok
        out.append(dict(
            run=key, label=LABELS[key], seeds=len(g), lambda_max=geometric_mean(g["lambda_max"]),
            stable_lr=geometric_mean(g["stable_lr"]), lr=geometric_mean(g["lr"]),
            reached=int(reached.sum()), steps_to_target=float(np.mean(_steps_samples(g, budget))),
            tail_loss=float(g.loc[ok, "tail_loss"].mean()) if ok.any() else np.nan,
            tail_loss_sd=float(g.loc[ok, "tail_loss"].std(ddof=1)) if ok.sum() > 1 else 0.0,
            final_val_metric=float(g.loc[ok, "final_val_metric"].mean()) if ok.any() else np.nan,
            diverged=int((~ok).sum()),
        ))
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- wording
def _pace_sentence(c: Comparison, f: Findings) -> str:
    target = f.target_loss
    a, b = c.a, c.b
    if f.reached[a] == 0 and f.reached[b] == 0:
        return (f"Neither {LABELS[a]} nor {LABELS[b]} inputs brought the smoothed training loss down to the "
                f"target ({num(target)}) within {f.steps:,} steps.")
    said = comparison_sentence(c, LABELS, f"reached the target training loss ({num(target)})", "sooner",
                               "steps to the target", unit_plural="steps")
    if c.winner is not None and f.reached[c.loser] < f.n_seeds:
        # A seed that missed counts as budget + 1: the loser's mean, and the ratio, are lower bounds.
        w, l = c.winner, c.loser
        bound = (f"more than {f.steps:,} steps (no seed reached it)" if f.reached[l] == 0 else
                 f"at least {num(c.value(l))} steps on average (a miss counted as {f.steps + 1:,})")
        seeds = f" (mean of {f.n_seeds} seeds)" if f.n_seeds > 1 else ""
        said = (f"{LABELS[w]} reached the target training loss ({num(target)}) sooner: {num(c.value(w))} steps vs "
                f"{bound} for {LABELS[l]}, at least {factor(c.value(l) / c.value(w))} fewer{seeds}.")
    reached = (f" Seeds reaching it within {f.steps:,} steps: {f.reached[a]} of {f.n_seeds} ({LABELS[a]}) and "
               f"{f.reached[b]} of {f.n_seeds} ({LABELS[b]}); a miss counts as {f.steps + 1:,}."
               if min(f.reached[a], f.reached[b]) < f.n_seeds else "")
    one = " (One seed: raise the seed count to judge a difference in pace.)" if f.n_seeds == 1 and c.winner is None else ""
    return capital(said) + reached + one


def _level_sentence(c: Comparison) -> str:
    return capital(comparison_sentence(c, LABELS, "ended with", "a lower training loss",
                                       "training loss over the last 20% of steps"))


def _same_rate(f: Findings, whose: str = "their") -> str:
    """How the runs' rates relate: one rate, or the same share of each run's own 2 / lambda_max."""
    if f.lr_fraction is None:
        return "at the same rate"
    return f"at the same fraction ({factor(f.lr_fraction)}) of {whose} own 2 / λmax"


def _rate_advice(f: Findings, otherwise: str) -> str:
    """Advice after a divergence: a fraction above 1 of 2 / lambda_max is named as the cause."""
    if f.lr_fraction is not None and f.lr_fraction > 1:
        return (f"Use a fraction of 2 / λmax below 1: each run's rate was {factor(f.lr_fraction)} its own "
                "2 / λmax, beyond the stable limit of plain gradient descent.")
    return otherwise


def scaling_verdict(f: Findings) -> Verdict:
    """Standardized against raw inputs, worded from the findings only."""
    mean = f" (geometric mean of {f.n_seeds} seeds)" if f.n_seeds > 1 else ""
    lam = (f"At the start λmax{mean} is {num(f.lambda_start['none'])} raw and {num(f.lambda_start['standard'])} "
           f"standardized; plain gradient descent is stable below 2 / λmax. The input columns' standard "
           f"deviations differ by up to {factor(f.scale_spread)}.")
    bad = [k for k in ("none", "standard") if k in f.diverged]
    if bad:
        said = " ".join(divergence_sentence(f.diverged[k][0][1], f"{capital(LABELS[k])} (seed {f.diverged[k][0][0]})")
                        for k in bad)
        if bad == ["none"]:
            return Verdict("problem", f"{said} Standardized inputs trained {_same_rate(f)} without diverging. {lam}",
                           _rate_advice(f, "Standardize the inputs (a scaler fitted on the training split)."))
        return Verdict("problem", f"{said} {lam}", _rate_advice(f, "Lower the learning rate."))
    text = f"{_pace_sentence(f.scaling_pace, f)} {_level_sentence(f.scaling_level)} {lam}"
    wins = {c.winner for c in (f.scaling_pace, f.scaling_level)} - {None}
    if wins == {"standard"}:
        return Verdict("warning", text, "Standardize the inputs (a scaler fitted on the training split).")
    if wins == {"none"}:
        return Verdict("info", text + " Raw inputs trained better here: their scales already suit the model.")
    if wins:
        return Verdict("info", text + " The two measures disagree, so neither scaling is clearly better here.")
    return Verdict("good", text + " Scaling made no clear difference here.")


def bn_verdict(f: Findings, metric: str) -> Verdict:
    """Batch norm on raw inputs against raw and standardized inputs without it."""
    if "bn_raw" in f.diverged:
        seed, d = f.diverged["bn_raw"][0]
        return Verdict("problem", divergence_sentence(d, f"Raw + batch norm (seed {seed})"),
                       _rate_advice(f, "Lower the learning rate."))
    if "none" in f.diverged:
        seed, d = f.diverged["none"][0]
        return Verdict("info", f"{divergence_sentence(d, f'Raw inputs without batch norm (seed {seed})')} Batch norm "
                               f"on the same raw inputs trained {_same_rate(f, 'its')} without diverging.",
                       _rate_advice(f, ""))
    val = capital(difference_sentence(f.bn_val, LABELS, "ended with", f"a higher validation {metric}",
                                      f"validation {metric}"))
    pace = _pace_sentence(f.bn_pace, f)
    text = f"{pace} {_level_sentence(f.bn_level)} {val} {_level_sentence(f.bn_vs_standard)}"
    helped = "bn_raw" in {f.bn_pace.winner, f.bn_level.winner}
    hurt = "none" in {f.bn_pace.winner, f.bn_level.winner}
    advice = ""
    if f.bn_vs_standard.winner == "standard":
        advice = ("Standardize the inputs as well: batch norm rescales each hidden unit, not each input, so "
                  "weights on small-scale inputs still learn slowly.")
    if helped and not hurt:
        return Verdict("good", text, advice)
    return Verdict("info", text, advice)

