"""The learning-rate page's answer (lecture section 3): which rate, and which schedule.

The page's experiments are one module each, every one with `run(data, setup, config,
on_progress=None) -> Result`:

- core.diagnoses.lr_range: the LR range test and its check at 0.1x, 1x and 10x the valley;
- core.diagnoses.lr_schedules: a constant rate against schedules;
- core.diagnoses.lr_preview: schedules as pure functions of the step (no training);
- core.diagnoses.lr_surfaces: torch's adaptive optimizers on a 2-D toy surface;
- core.diagnoses.lr_burst: the lecture's Adagrad burst and its cure;
- core.diagnoses.lr_optimizers: the optimizers on the lab model, and the lecture's summary table.

This module turns the first two into the page's one-sentence answer (`recommend`); `run` does
both in one call (for scripts and benchmarks; the page calls the two through its cache, so a
change on one tab does not rerun the other). The answer takes its rate from the range test's
*check* (lr_range.choose_rate): it never recommends a rate its own check beat.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from core.data import Dataset
from core.diagnoses import Progress, Verdict, sub_progress
from core.diagnoses import lr_range, lr_schedules
from core.diagnoses.words import num
from core.lab import LabSetup


@dataclass(frozen=True)
class Config:
    """The range test, then the schedules trained at the rate its check supports."""

    range_test: lr_range.Config = field(default_factory=lr_range.Config)
    schedules: lr_schedules.Config = field(default_factory=lr_schedules.Config)  # its lr and optimizer are replaced


@dataclass
class Result:
    """Both experiments and the page's answer."""

    range_test: lr_range.Result
    schedules: lr_schedules.Result | None  # None when the range test supports no rate
    verdict: Verdict


def run(data: Dataset, setup: LabSetup, config: Config, on_progress: Progress | None = None) -> Result:
    """Range test and check, then the schedules at the chosen rate with the same optimizer."""
    rt = lr_range.run(data, setup, config.range_test, sub_progress(on_progress, 0.0, 0.5))
    tr = None
    if rt.recommended_lr is not None:
        cfg = replace(config.schedules, optimizer=config.range_test.optimizer, lr=rt.recommended_lr)
        tr = lr_schedules.run(data, setup, cfg, sub_progress(on_progress, 0.5, 1.0))
    return Result(rt, tr, recommend(rt, tr))


def rate_phrase(rt: lr_range.Result) -> str:
    """Where the recommended rate comes from, from the RateChoice only."""
    choice = rt.choice
    v = num(rt.valley_lr)
    if choice.kind == "confirmed":
        return "the range test's valley; its check confirmed it against a tenth and ten times it"
    if choice.kind == "no_clear_difference":
        return "the range test's valley; nothing in its check trained clearly better"
    if choice.kind == "unchecked":
        return "the range test's valley, not checked by training"
    groups = {g.key: g for g in rt.groups}
    best, valley = groups[choice.key], groups["1x"]
    word = "ten times" if choice.kind == "higher" else "a tenth of"
    if valley.stable:
        versus = f"tail training loss {num(best.mean)} vs {num(valley.mean)} at the valley"
    else:
        versus = "training at the valley diverged"
    if len(best.seeds) > 1:
        return f"{word} the range test's valley {v}, which trained clearly better in the check: {versus}, " \
               f"mean of {len(best.seeds)} seeds"
    return f"{word} the range test's valley {v}, which trained better in the check's one run: {versus}; " \
           "one seed cannot tell that from luck"


def recommend(rt: lr_range.Result | None, tr: lr_schedules.Result | None) -> Verdict:
    """The page's answer: a rate (from the range test's check) and a schedule (from the schedule
    comparison, named only when it beat the constant rate and every other schedule beyond the
    noise). No rate when the range test's loss never fell, no checked rate trained, or every
    schedule run at the chosen rate diverged."""
    if rt is None or rt.recommended_lr is None:
        kind = "no_valley" if rt is None else rt.choice.kind
        reason = {
            "no_valley": "the range test found no valley",
            "never_fell": "no rate in this range trained (the range test's loss never fell below its start "
                          "beyond the noise)",
            "nothing_trained": "no rate in this range trained (no checked rate lowered the training loss "
                               "beyond the noise)",
        }.get(kind, "every rate in the range test's check diverged in some seed")
        advice = lr_range.widen_advice(rt) if kind in ("never_fell", "nothing_trained") else \
            "Lower the range test's start rate, or its end rate."
        return Verdict("problem", f"No rate to recommend: {reason}.", advice)
    lr = rt.recommended_lr
    text = f"Use {rt.optimizer} at lr {num(lr)} ({rate_phrase(rt)})"
    if tr is None:
        return Verdict("info", text + ".")
    same = tr.config.optimizer == rt.optimizer and math.isclose(tr.config.lr, lr, rel_tol=1e-9)
    names = lr_schedules.labels(tr)
    one_seed = tr.config.seeds == 1
    luck = "; with one seed that may be the seed's luck" if one_seed else ""
    if same:
        if tr.choice.kind in ("schedule", "tied"):
            key = tr.choice.key
            comp = tr.comparisons.get(key)
            groups = {g.key: g for g in tr.groups}
            versus = (f"tail training loss {num(groups[key].mean)} vs {num(groups['constant'].mean)} at a constant rate"
                      if groups["constant"].stable else "the constant rate diverged")
            extra = f", mean of {comp.n_a} seeds" if comp is not None and comp.n_a > 1 else ""
            if tr.choice.kind == "tied":
                others = " or ".join(names[k] for k in tr.choice.tied)
                return Verdict("good" if not one_seed else "info", text + f", with a schedule: {names[key]} trained "
                               f"better than a constant rate over {tr.config.steps:,} steps ({versus}{extra}), but "
                               f"not clearly better than {others}{luck}.")
            return Verdict("good" if not one_seed else "info", text + f", with the {names[key]} schedule: it "
                           f"trained better than a constant rate{' and every other schedule' if tr.rivals else ''} "
                           f"over {tr.config.steps:,} steps ({versus}{extra}){luck}.")
        if tr.choice.kind == "constant":
            return Verdict("good", text + f", with a constant rate: no schedule trained clearly better over "
                           f"{tr.config.steps:,} steps.")
        return Verdict("problem", f"No rate to recommend: at lr {num(lr)} ({rate_phrase(rt)}) every schedule run "
                       f"diverged on the schedules tab.", "Lower the rate or add a warmup.")
    if tr.choice.kind == "schedule":
        other = f"the {names[tr.choice.key]} schedule trained better than a constant rate"
    elif tr.choice.kind == "tied":
        other = (f"the {names[tr.choice.key]} schedule trained better than a constant rate, but not clearly better "
                 f"than {' or '.join(names[k] for k in tr.choice.tied)}")
    elif tr.choice.kind == "constant":
        other = "no schedule trained clearly better than a constant rate"
    else:
        other = "every run diverged"
    return Verdict("info", text + f". At the rate you chose on the schedules tab, {num(tr.config.lr)} "
                   f"({tr.config.optimizer}), {other}.")

