"""Training with schedules: a constant rate against warmup and decay schedules (lecture 3.2.4).

Every run trains the lab model from the same initial weights and batches (per seed) with
core.train; only the rate per step differs (core.schedules' torch twins). Each configuration runs
with `seeds` seeds and is compared with the constant rate on the tail training loss (the mean of
the last 20% of steps) by core.findings.compare; a schedule is called better only when
it beats the constant rate beyond the run-to-run noise, and the best only when it also beats every
other schedule (otherwise the schedules are tied, and the verdict says which).

>>> from core.data import load_builtin
>>> r = run(load_builtin("moons"), LabSetup(), Config(lr=0.02, steps=40, seeds=1, schedules=(("cosine", ()),)))
>>> [g.key for g in r.groups]
['constant', 'cosine']
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from core import schedules as sch
from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses._kits import lr as kit
from core.findings import Comparison
from core.diagnoses.words import capital, divergence_sentence, num
from core.lab import LabSetup
from core.train import TrainConfig

SchedulePick = tuple[str, tuple[tuple[str, float], ...]]  # (schedule name, (param, value) pairs)
MAX_STEPS = 5000  # widget ceiling
MAX_SCHEDULES = 6  # schedules besides the constant rate
RATE_POINTS = 500  # the rate chart gets about this many steps per run


@dataclass(frozen=True)
class Config:
    """A constant rate against schedules, all on the lab model from the same initial weights."""

    optimizer: str = "adam"  # core.train.OPTIMIZERS
    lr: float = 0.01  # base rate for every run (the page passes the range test's recommendation)
    steps: int = 200  # optimizer updates per run (20 epochs of moons at batch 32; the range check's length)
    batch_size: int | None = 32  # rows per update; None = full batch
    schedules: tuple[SchedulePick, ...] = (("warmup_cosine", ()), ("cosine", ()))  # besides constant
    seeds: int = 3  # seeds per configuration; claims need the difference to hold across them


@dataclass(frozen=True)
class ScheduleChoice:
    """kind: "schedule" (`key` beat the constant rate and every other schedule), "tied" (`key`,
    the lowest mean of the schedules that beat the constant rate, did not beat the schedules in
    `tied` beyond the noise), "constant" (no schedule beat it; `key` = "constant"), "none" (every
    run diverged)."""

    kind: str
    key: str | None
    tied: tuple[str, ...] = ()  # with kind "tied": the other schedules `key` did not clearly beat


@dataclass
class Result:
    """Seeded groups per configuration (constant first), their comparisons with constant, the choice."""

    groups: list[kit.RunGroup]
    comparisons: dict[str, Comparison]  # schedule key -> compare_groups(schedule, constant)
    choice: ScheduleChoice
    summary: pd.DataFrame  # kit.summary_table
    curves: pd.DataFrame  # run, step, loss_mean, loss_lo, loss_hi, seeds
    rates: pd.DataFrame  # run, step, lr (the rate each configuration used, from its schedule; ~RATE_POINTS steps)
    config: Config
    verdict: Verdict
    notes: list[str]
    rivals: dict[str, Comparison] = field(default_factory=dict)  # other schedule -> compare_groups(best, it)

    @property
    def best(self) -> str:
        """The configuration the verdict names ("" when every run diverged)."""
        return self.choice.key or ""


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for a config that cannot run."""
    kit.check_optimizer(config.optimizer)
    kit.check_rate(config.lr)
    kit.check_steps(config.steps, 2, "The number of steps", MAX_STEPS)
    kit.check_seeds(config.seeds)
    names = [n for n, _ in config.schedules if n != "constant"]
    unknown = [n for n in names if n not in sch.SCHEDULES]
    if unknown:
        raise ValueError(f"Unknown schedule {unknown[0]!r}; choose among {', '.join(sch.SCHEDULES)}.")
    if len(names) > MAX_SCHEDULES:
        raise ValueError(f"Compare at most {MAX_SCHEDULES} schedules at once.")
    for name, params in config.schedules:
        if name != "constant":
            sch.lr_at(name, 0, config.steps, config.lr, **dict(params))  # a schedule's own sentence if it cannot run


def run(data: Dataset, setup: LabSetup, config: Config, on_progress: Progress | None = None) -> Result:
    """Train the lab model with a constant rate and with each schedule, `seeds` times each."""
    on_progress = on_progress or no_progress
    validate(config)
    split, notes = kit.lab_split(data, setup)
    batch = kit.batch_rows(config.batch_size, split)
    runs = [("constant", None, ())] + [(n, n, tuple(p)) for n, p in config.schedules if n != "constant"]
    kit.check_budget(len(runs) * config.seeds * config.steps, batch or len(split.X_train), split, setup,
                     len(runs) * config.seeds, "Training with schedules")
    groups, rates = [], []
    for i, (key, name, params) in enumerate(runs):
        progress = sub_progress(on_progress, i / len(runs), (i + 1) / len(runs))
        cfg = TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=config.steps, batch_size=batch,
                          schedule=name, schedule_params=params)
        groups.append(kit.train_group(split, setup, cfg, key, config.seeds, progress))
        shown = list(range(0, config.steps, max(1, config.steps // RATE_POINTS))) + [config.steps - 1]
        shown = sorted(set(shown))
        lrs = [config.lr] * len(shown) if name is None else [
            sch.lr_at(name, k, config.steps, config.lr, **dict(params)) for k in shown]
        rates.append(pd.DataFrame({"run": key, "step": shown, "lr": lrs}))
    constant = groups[0]
    comparisons = {g.key: kit.compare_groups(g, constant) for g in groups[1:]}
    by_key = {g.key: g for g in groups}
    best = lowest_winner(groups, comparisons)
    rivals = {g.key: kit.compare_groups(by_key[best], g) for g in groups[1:] if best and g.key != best}
    choice = choose(groups, comparisons, rivals)
    result = Result(groups, comparisons, choice, kit.summary_table(groups), kit.curves_frame(groups),
                    pd.concat(rates, ignore_index=True), config, Verdict("info", ""), notes, rivals)
    result.verdict = verdict(result)
    return result


def lowest_winner(groups: list[kit.RunGroup], comparisons: dict[str, Comparison]) -> str | None:
    """The schedule with the lowest mean among those that beat the constant rate (None if none did)."""
    winners = [g for g in groups[1:] if comparisons[g.key].winner == g.key]
    return min(winners, key=lambda g: g.mean).key if winners else None


def choose(groups: list[kit.RunGroup], comparisons: dict[str, Comparison],
           rivals: dict[str, Comparison] | None = None) -> ScheduleChoice:
    """The schedule with the lowest mean among those that beat the constant rate, when it also beat
    every other schedule (`rivals`: other -> compare_groups(it, other)); "tied" when it did not;
    else constant (if it did not diverge); "none" if all diverged."""
    best = lowest_winner(groups, comparisons)
    if best is not None:
        tied = tuple(k for k, comp in (rivals or {}).items() if comp.winner != best)
        return ScheduleChoice("tied", best, tied) if tied else ScheduleChoice("schedule", best)
    if groups[0].stable:
        return ScheduleChoice("constant", "constant")
    stable = [g for g in groups if g.stable]
    if stable:  # constant diverged, and a stable schedule beat it: it is among the winners above
        return ScheduleChoice("schedule", min(stable, key=lambda g: g.mean).key)
    return ScheduleChoice("none", None)


def labels(result: Result) -> dict[str, str]:
    """Display names of the configurations ("the constant rate", "cosine", ...)."""
    out = {"constant": "the constant rate"}
    for g in result.groups[1:]:
        out[g.key] = sch.SCHEDULES[g.key].label if g.key in sch.SCHEDULES else g.key
    return out


def verdict(result: Result) -> Verdict:
    """The training tab's verdict, from the groups, comparisons and choice only."""
    c = result.config
    names = labels(result)
    head = f"With {c.optimizer} at lr {num(c.lr)} over {c.steps:,} steps" + (f", {c.seeds} seeds each" if c.seeds > 1 else ", one seed")
    diverged = []
    for g in result.groups:
        if not g.stable:
            where = f" (in {g.n_diverged} of {len(g.seeds)} seeds)" if len(g.seeds) > 1 else ""
            diverged.append(divergence_sentence(g.first_divergence, capital(names[g.key])).rstrip(".") + where + ".")
    if result.choice.kind == "none":
        return Verdict("problem", f"{head}, every run diverged. " + " ".join(diverged),
                       "Lower the base rate (the range test suggests one).")
    groups = {g.key: g for g in result.groups}
    sentences = []
    for key, comp in result.comparisons.items():
        if groups[key].stable and result.groups[0].stable:
            sentences.append(kit.comparison_text(comp, names))
    for key, comp in result.rivals.items():
        if groups[key].stable:
            sentences.append(kit.comparison_text(comp, names))
    one_seed = c.seeds == 1
    claims = any(comp.winner is not None for comp in [*result.comparisons.values(), *result.rivals.values()])
    if result.choice.kind == "schedule":
        best = names[result.choice.key]
        beat = "the constant rate and every other schedule" if result.rivals else "the constant rate"
        end = f"{capital(best)} is the schedule to use at this rate: it beat {beat}" + \
            (" in this one run." if one_seed else ".")
        kind = "info" if one_seed else "good"
    elif result.choice.kind == "tied":
        others = _and([names[k] for k in result.choice.tied])
        end = (f"No single schedule is best: {names[result.choice.key]} trained better than the constant rate, "
               f"but not clearly better than {others}.")
        kind = "info"
    else:
        end = "No schedule trained clearly better than the constant rate at this rate and length."
        kind = "info"
    if one_seed and claims:
        end += " " + kit.ONE_SEED_CAVEAT
    text = f"{head}. " + " ".join(sentences + diverged + [end])
    if diverged:
        return Verdict("warning", text, "A warmup or a lower base rate avoids the blow-up.")
    return Verdict(kind, text)



def _and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
