"""Shared plumbing of the learning-rate page's experiments (lr_range, lr_schedules, lr_optimizers).

Not a diagnosis (no `run`): the split every run shares, input checks, the work budget, seeded
groups of runs through core.runs.run_model, their comparison through
core.findings.compare, and the mean-and-spread curves the charts draw.

A run's level is its *tail training loss*: the mean of the last 20% of its per-step losses
(core.runs.TAIL_SHARE), never its last noisy point. Two groups of runs are compared on it with
Welch's t-test across seeds, or, with one seed, against both runs' own tail noise.

>>> g = RunGroup("a", 0.1, (0,), (0.30,), (0.01,), (0.5,), (None,), pd.DataFrame())
>>> h = RunGroup("b", 0.1, (0,), (0.20,), (0.01,), (0.4,), (None,), pd.DataFrame())
>>> compare_groups(g, h).winner
'b'
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from core.data import Dataset
from core.diagnoses import Progress, no_progress, sub_progress
from core.diagnoses.words import capital, factor, gaps_as_text, num, pct
from core.findings import Comparison, compare
from core.lab import LabSetup
from core.rules import Divergence, smooth
from core.runs import prepare_split, run_model, seeds_for, subsample_rows
from core.train import OPTIMIZERS, Split, TrainConfig

MAX_TRAIN_ROWS = 20_000  # runs draw batches from at most this many training rows (a rate does not need more)
MAX_VAL_ROWS = 10_000  # and are evaluated on at most this many validation rows
MAX_SEEDS = 10  # the seeds control's ceiling
BUDGET_SECONDS = 30.0  # one experiment's estimated time on a 2-core laptop; more is refused with a sentence
# Time model of one update, measured with core.train on this project's 2-core machine (1 torch
# thread): 0.25 ms (SGD) to 0.6 ms (RMSprop, Adagrad) of fixed cost per update (Python, optimizer,
# records), taken at the slow end, plus ~1.2 ns per row x parameter (forward and backward of an
# MLP from 642 to 14k parameters, 32 to 43k rows per update).
STEP_SECONDS = 6e-4
ROW_PARAM_SECONDS = 1.2e-9
EVAL_EVERY = 10**9  # core.train evaluates the whole splits only after the last epoch (run_model does start/end)
CURVE_POINTS = 250  # a seeded curve is thinned to about this many steps for the charts


def lab_split(data: Dataset | None, setup: LabSetup) -> tuple[Split, list[str]]:
    """The split every run of the page shares (the lab seed's), capped at MAX_TRAIN_ROWS training
    and MAX_VAL_ROWS validation rows, with a note when it was capped."""
    if data is None:
        raise ValueError("This part needs a dataset: pick one in the sidebar.")
    split = prepare_split(data, setup, max_train_rows=MAX_TRAIN_ROWS)
    n_train_full = data.n_rows - math.ceil(data.n_rows * 0.2)
    notes = []
    if len(split.X_val) > MAX_VAL_ROWS:
        X, y = subsample_rows(split.X_val, split.y_val, MAX_VAL_ROWS, split.task, setup.seed)
        split = replace(split, X_val=X, y_val=y)
    if n_train_full > len(split.X_train):
        notes.append(f"Runs on this page draw their batches from {len(split.X_train):,} of the "
                     f"{n_train_full:,} training rows (a random, stratified sample) and are evaluated on "
                     f"{len(split.X_val):,} validation rows: that keeps every run within its time budget, "
                     "and a learning rate does not depend on having more rows of the same data.")
    return split, notes


def batch_rows(batch_size: int | None, split: Split) -> int | None:
    """The batch size clamped to the training split (a tiny CSV may have fewer rows than 32)."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError("The batch size must be a whole number of at least 1 (or full batch).")
    return min(batch_size, len(split.X_train))


def check_optimizer(name: str) -> None:
    """ValueError with a sentence unless `name` is one of core.train.OPTIMIZERS."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


def check_rate(lr: float, what: str = "The learning rate") -> None:
    """ValueError with a sentence unless `lr` is a positive finite number."""
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"{what} must be a positive number, got {lr!r}.")


def check_steps(steps: int, least: int, what: str, most: int) -> None:
    """ValueError with a sentence unless `least <= steps <= most` (whole numbers)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not least <= steps <= most:
        raise ValueError(f"{what} must be a whole number from {least:,} to {most:,}, got {steps!r}.")


def check_seeds(n_seeds: int) -> None:
    """ValueError with a sentence unless 1 <= n_seeds <= MAX_SEEDS."""
    check_steps(n_seeds, 1, "The number of seeds", MAX_SEEDS)


def n_params(split: Split, setup: LabSetup) -> int:
    """Parameters of the lab model for this split (for the budget), without building it."""
    sizes = (split.n_features, *setup.model.hidden, split.n_outputs)
    weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if setup.model.batch_norm:
        weights += 2 * sum(setup.model.hidden)
    return weights


def estimate_seconds(updates: int, rows_per_update: int, params: int, eval_rows: int = 0, runs: int = 0) -> float:
    """Estimated wall time of `updates` optimizer steps of `rows_per_update` rows on a model of
    `params` parameters, plus 3 whole-split evaluations of `eval_rows` rows per run."""
    train = updates * (STEP_SECONDS + rows_per_update * params * ROW_PARAM_SECONDS)
    # 3 forward passes per run (start, last epoch, end), each about a third of a training step
    return train + runs * eval_rows * params * ROW_PARAM_SECONDS


def check_budget(updates: int, rows_per_update: int, split: Split, setup: LabSetup, runs: int, what: str) -> float:
    """Refuse (ValueError with a sentence) an experiment estimated past BUDGET_SECONDS; return the estimate."""
    params = n_params(split, setup)
    seconds = estimate_seconds(updates, rows_per_update, params, len(split.X_train) + len(split.X_val), runs)
    if seconds > BUDGET_SECONDS:
        raise ValueError(
            f"{what} would train {updates:,} updates of {rows_per_update:,} rows on a model of {params:,} "
            f"parameters, about {seconds:.0f} s on a 2-core laptop (the limit is {BUDGET_SECONDS:.0f} s). "
            "Lower the steps, the seeds, or the batch size.")
    return seconds


@dataclass(frozen=True)
class RunGroup:
    """One run configuration trained with several seeds: the numbers, never the models.

    Per seed: the tail training loss (NaN when the run diverged), its own tail noise, the final
    validation loss and the Divergence (core.rules) or None. `curve`: step, loss_mean, loss_lo,
    loss_hi, seeds (smoothed per-step loss across seeds: mean, min and max).
    """

    key: str  # stable key of the configuration ("1x", "cosine", "adam")
    lr: float
    seeds: tuple[int, ...]
    tail: tuple[float, ...]
    noise: tuple[float, ...]
    val: tuple[float, ...]
    divergences: tuple[Divergence | None, ...]
    curve: pd.DataFrame
    start: tuple[float, ...] = ()  # per seed: the training split's loss before the first update

    @property
    def n_diverged(self) -> int:
        """Seeds whose run diverged."""
        return sum(d is not None for d in self.divergences)

    @property
    def stable(self) -> bool:
        """No seed diverged."""
        return self.n_diverged == 0

    @property
    def first_divergence(self) -> Divergence | None:
        """The divergence of the first seed that diverged (the one the page words)."""
        return next((d for d in self.divergences if d is not None), None)

    @property
    def mean(self) -> float:
        """Mean tail training loss over seeds that did not diverge (NaN if all did)."""
        finite = [t for t in self.tail if math.isfinite(t)]
        return float(np.mean(finite)) if finite else float("nan")

    @property
    def spread(self) -> float:
        """Standard deviation of the tail loss across seeds (0 for one seed)."""
        finite = [t for t in self.tail if math.isfinite(t)]
        return float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0

    @property
    def start_mean(self) -> float:
        """Mean over seeds of the training split's loss before the first update."""
        return float(np.mean(self.start)) if self.start else float("nan")

    @property
    def val_mean(self) -> float:
        """Mean final validation loss over seeds that did not diverge."""
        finite = [v for v, d in zip(self.val, self.divergences) if d is None and math.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    def row(self) -> dict:
        """One table row with stable keys."""
        d = self.first_divergence
        return dict(run=self.key, lr=self.lr, seeds=len(self.seeds), tail_train_loss=self.mean,
                    tail_spread=self.spread, final_val_loss=self.val_mean, diverged_seeds=self.n_diverged,
                    first_diverged_at=None if d is None else d.step)


def train_group(split: Split, setup: LabSetup, config: TrainConfig, key: str, n_seeds: int,
                on_progress: Progress | None = None, label: str | None = None) -> RunGroup:
    """Train `config` once per seed (seeds_for: the lab seed, +1, ...) from that seed's initial
    weights and batch order on the shared split; keep the numbers and a mean-and-spread curve."""
    on_progress = on_progress or no_progress
    seeds = tuple(seeds_for(setup, n_seeds))
    tails, noises, vals, divs, curves, starts = [], [], [], [], [], []
    for i, seed in enumerate(seeds):
        progress = sub_progress(on_progress, i / len(seeds), (i + 1) / len(seeds))
        rec = run_model(split, setup, replace(config, seed=seed, eval_every=EVAL_EVERY), key=key,
                        on_progress=progress, message=f"{label or key}, seed {seed}")
        div = rec.divergence
        tails.append(float("nan") if div is not None else rec.tail_loss)
        noises.append(rec.tail_noise)
        vals.append(rec.end.val_loss)
        starts.append(rec.start.train_loss)
        divs.append(div)
        losses = rec.history.steps["loss"].to_numpy(dtype=float)
        if div is not None:
            losses = losses[:-1]  # the divergent step's loss is not part of the curve's level
        curves.append(losses)
    return RunGroup(key, config.lr, seeds, tuple(tails), tuple(noises), tuple(vals), tuple(divs),
                    band(curves, config.max_steps or 1), tuple(starts))


def band(curves: Sequence[np.ndarray], total_steps: int) -> pd.DataFrame:
    """Mean, min and max across seeds of trailing-mean-smoothed per-step losses (core.rules.smooth
    over 1/25 of the run), thinned to about CURVE_POINTS steps; a seed that stopped early (it
    diverged) leaves the band where it stopped."""
    width = max(1, total_steps // 25)
    longest = max((len(c) for c in curves), default=0)
    if not longest:
        return pd.DataFrame({"step": pd.Series(dtype=int), "loss_mean": [], "loss_lo": [], "loss_hi": [],
                             "seeds": pd.Series(dtype=int)})
    stack = np.full((len(curves), longest), np.nan)
    for i, c in enumerate(curves):
        if len(c):
            stack[i, : len(c)] = smooth(c, width)
    keep = np.unique(np.r_[np.arange(0, longest, max(1, longest // CURVE_POINTS)), longest - 1])
    part = stack[:, keep]
    present = np.isfinite(part).sum(axis=0)
    with np.errstate(all="ignore"):
        mean = np.where(present > 0, np.nansum(part, axis=0) / np.maximum(present, 1), np.nan)
        lo = np.where(present > 0, np.nanmin(np.where(np.isfinite(part), part, np.inf), axis=0), np.nan)
        hi = np.where(present > 0, np.nanmax(np.where(np.isfinite(part), part, -np.inf), axis=0), np.nan)
    frame = pd.DataFrame({"step": keep.astype(int), "loss_mean": mean, "loss_lo": lo, "loss_hi": hi,
                          "seeds": present.astype(int)})
    return frame[frame["seeds"] > 0].reset_index(drop=True)


def compare_groups(a: RunGroup, b: RunGroup) -> Comparison:
    """Which group trained to the lower tail training loss, beyond the noise.

    A group with a diverged seed brings no samples, so a stable group wins against it
    (findings.compare: a missing side loses) and two unstable groups tie. With several seeds:
    Welch's t-test; with one: the difference against NOISE_MULTIPLE x both runs' tail noise.
    """
    a_samples = list(a.tail) if a.stable else []
    b_samples = list(b.tail) if b.stable else []
    noise = None
    if len(a.seeds) == 1 or len(b.seeds) == 1:
        noise = math.sqrt(float(np.nansum(np.square(a.noise[:1]))) + float(np.nansum(np.square(b.noise[:1]))))
    return compare("tail_train_loss", a.key, a_samples, b.key, b_samples, higher_is_better=False,
                   noise=noise, split="train")


def curves_frame(groups: Sequence[RunGroup]) -> pd.DataFrame:
    """Every group's mean-and-spread curve in one long table (run, step, loss_mean, loss_lo,
    loss_hi, seeds), in the groups' order."""
    frames = [g.curve.assign(run=g.key) for g in groups]
    if not frames:
        return pd.DataFrame(columns=["run", "step", "loss_mean", "loss_lo", "loss_hi", "seeds"])
    out = pd.concat(frames, ignore_index=True)
    return out[["run", "step", "loss_mean", "loss_lo", "loss_hi", "seeds"]]


def summary_table(groups: Sequence[RunGroup]) -> pd.DataFrame:
    """One row per group (RunGroup.row), with integer columns kept integer."""
    frame = pd.DataFrame([g.row() for g in groups])
    if len(frame):
        frame["first_diverged_at"] = frame["first_diverged_at"].astype("Int64")
    return frame


def trained(group: RunGroup) -> bool:
    """Did the group train at all: in every seed, the tail training loss below that seed's start
    (the whole training split's loss before the first update) beyond the run's own tail noise
    (findings.compare, single-run path). Per seed, because the start differs from seed to seed
    more than a slow but real fall; a claim must hold across the seeds. A group with a diverged
    seed did not train."""
    if not group.stable or len(group.start) != len(group.tail):
        return False
    return all(compare("train_loss", "start", [s], group.key, [t], higher_is_better=False, noise=n,
                       split="train").winner == group.key
               for s, t, n in zip(group.start, group.tail, group.noise))


# ---------------------------------------------------------------------------- wording shared by the tabs

ONE_SEED_CAVEAT = ("With one seed the page cannot tell a real difference from the seed's luck: use 3 or more "
                   "seeds.")


def lead(winner_value: float, loser_value: float) -> str:
    """How much lower a loss is than another, with enough digits to agree with "better":
    '4.3% lower' below a factor of 2, '12x lower' past it."""
    if not (math.isfinite(winner_value) and math.isfinite(loser_value)) or loser_value <= 0 or winner_value < 0:
        return f"{num(abs(loser_value - winner_value))} lower"
    if winner_value == 0 or loser_value / winner_value >= 2:
        return f"{factor(loser_value / winner_value) if winner_value else '∞x'} lower"
    return f"{pct(1 - winner_value / loser_value)} lower"


def comparison_text(c: Comparison, labels: dict[str, str], measure_label: str = "tail training loss") -> str:
    """One sentence for a comparison of two groups on a loss (lower is better), its direction from
    `c.winner`. With several seeds a difference is beyond the run-to-run noise (Welch); with one
    seed only beyond the run's own step-to-step noise, and the sentence says "in this one run"."""
    one = c.n_a <= 1 and c.n_b <= 1
    a, b = labels[c.a], labels[c.b]
    if c.winner is None:
        if one:
            return (f"No clear difference in {measure_label} between {a} ({num(c.a_value)}) and {b} "
                    f"({num(c.b_value)}) in this one run: within its own step-to-step noise.")
        return (f"No clear difference in {measure_label} between {a} ({num(c.a_value)}) and {b} "
                f"({num(c.b_value)}) (mean of {max(c.n_a, c.n_b)} seeds): within the run-to-run noise.")
    w, l = c.winner, c.loser
    wv, lv = c.value(w), c.value(l)
    if not math.isfinite(lv):
        versus = f"{num(wv)}, while {labels[l]} diverged"
    else:
        versus = f"{num(wv)} vs {num(lv)} for {labels[l]} ({lead(wv, lv)})"
    if one:
        return f"In this one run, {labels[w]} trained to a lower {measure_label}: {versus}."
    return f"{capital(labels[w])} trained better: {versus} (mean of {max(c.n_a, c.n_b)} seeds)."


# ---------------------------------------------------------------------------- tables for display

COLUMN_LABELS = {
    "run": "run", "label": "run", "schedule": "schedule", "optimizer": "optimizer", "lr": "learning rate",
    "factor": "x valley", "seeds": "seeds", "tail_train_loss": "tail training loss", "tail_spread":
    "spread across seeds", "final_val_loss": "final validation loss", "diverged_seeds": "seeds diverged",
    "first_diverged_at": "first diverged at step", "final_loss": "final loss",
    "steps_to_near_min": "steps to near the minimum", "first_step_per_lr": "first step / lr",
    "largest_step_per_lr": "largest step / lr", "largest_step_at": "largest step at step",
    "largest_late_step": "largest late step", "bursts": "bursts", "first_burst_at": "first burst at step",
    "diverged_at": "diverged at step", "largest_step": "largest step", "peak": "peak rate",
    "peak at step": "peak at step", "final": "final rate",
}


def display_table(frame: pd.DataFrame, run_labels: dict[str, str] | None = None, key: str = "run",
                  drop: Sequence[str] = ()) -> pd.DataFrame:
    """A copy of a result table for display: run keys replaced by their labels, columns by
    COLUMN_LABELS, and a column with gaps turned into text cells ('–' for a gap, words.num for a
    number; Streamlit draws a grey "None" otherwise). Columns without gaps stay numeric.

    >>> t = pd.DataFrame({"run": ["constant"], "first_diverged_at": pd.array([None], dtype="Int64")})
    >>> display_table(t, {"constant": "constant rate"}).to_dict("records")
    [{'run': 'constant rate', 'first diverged at step': '–'}]
    >>> display_table(pd.DataFrame({"seeds": [1], "tail_spread": [0.0]})).to_dict("records")
    [{'seeds': 1, 'spread across seeds': '–'}]
    """
    out = frame.drop(columns=[c for c in drop if c in frame.columns]).copy()
    if run_labels and key in out.columns:
        out[key] = [run_labels.get(k, k) for k in out[key]]
    if "tail_spread" in out.columns and "seeds" in out.columns:
        # One seed has no spread across seeds: a gap, not a spread of 0.
        out["tail_spread"] = out["tail_spread"].astype(float).where(out["seeds"] > 1)
    numeric = out.select_dtypes("number").columns
    out[numeric] = gaps_as_text(out[numeric])
    return out.rename(columns={c: COLUMN_LABELS.get(c, c) for c in out.columns})
