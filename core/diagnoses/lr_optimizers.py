"""Adaptive optimizers on the lab model, and the lecture's summary of them (3.2.5).

The lecture sums up every optimizer of section 3 as one update,

    theta_{t+1} = theta_t - (eta_t / sigma_t) * m_t,

where m_t is what the gradient history says to move along (momentum), sigma_t how large the
gradients have been (per parameter), and eta_t the rate the schedule gives at step t.
`update_table` lists m_t, sigma_t and eta_t for SGD, momentum, Adagrad, RMSProp and Adam as torch
computes them, with the torch call that builds each (tests/test_lr_optimizers.py steps each torch
optimizer against the row's formulas). `run` trains the lab model with each optimizer at its own
rate, `seeds` times, and compares them on the tail training loss (findings.compare).

>>> update_table().set_index("optimizer").loc["adagrad", "torch"]
'torch.optim.Adagrad(params, lr=0.05, eps=1e-10)'
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses._kits import lr as kit
from core.findings import Comparison
from core.diagnoses.words import capital, divergence_sentence, num
from core.lab import LabSetup
from core.train import TrainConfig

MAX_STEPS = 5000  # widget ceiling
DEFAULT_RATES = (("sgd", 0.1), ("momentum", 0.05), ("adagrad", 0.05), ("rmsprop", 0.005), ("adam", 0.01))
MOMENTUM = 0.9  # core.train's momentum for "momentum" (TrainConfig.momentum)

# The lecture's summary update, as torch computes each optimizer (t counts updates from 0, g_t is
# the gradient at step t, products and powers are per parameter).
SUMMARY_FORMULA = r"\theta_{t+1} = \theta_t - \frac{\eta_t}{\sigma_t}\, m_t"
_ROWS = (
    # key, name, m_t, sigma_t, eta_t, torch call (format: {lr}), the lecture's version
    ("sgd", "SGD", r"g_t", r"1", r"\eta_t",
     "torch.optim.SGD(params, lr={lr})",
     "The same."),
    ("momentum", "SGD with momentum", r"m_t = \beta\, m_{t-1} + g_t,\ m_{-1} = 0", r"1", r"\eta_t",
     "torch.optim.SGD(params, lr={lr}, momentum=0.9)",
     r"The lecture's movement $m_t = \lambda m_{t-1} - \eta g_t$ is the same walk with the rate taken out "
     r"($\lambda = \beta$ = 0.9)."),
    ("adagrad", "Adagrad", r"g_t", r"\sqrt{\textstyle\sum_{i=0}^{t} g_i^2} + \epsilon", r"\eta_t",
     "torch.optim.Adagrad(params, lr={lr}, eps=1e-10)",
     r"The lecture's $\sigma_t$ is the root *mean* square, $\sqrt{\sum_i g_i^2 / (t+1)}$: torch's sum is the "
     r"lecture's rule with $\eta_t = \eta/\sqrt{t+1}$ built in, so torch's Adagrad cannot burst."),
    ("rmsprop", "RMSProp", r"g_t",
     r"\sqrt{v_t} + \epsilon,\ v_t = \alpha v_{t-1} + (1-\alpha)\, g_t^2,\ v_{-1} = 0", r"\eta_t",
     "torch.optim.RMSprop(params, lr={lr}, alpha=0.99, eps=1e-08)",
     r"The lecture starts at $\sigma_0 = |g_0|$; torch starts $v$ at 0, so its first step is "
     r"$1/\sqrt{1-\alpha}$ = 10x the rate."),
    ("adam", "Adam", r"\frac{\beta_1 m_{t-1} + (1-\beta_1)\, g_t}{1-\beta_1^{t+1}}",
     r"\sqrt{\frac{v_t}{1-\beta_2^{t+1}}} + \epsilon,\ v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2",
     r"\eta_t",
     "torch.optim.Adam(params, lr={lr}, betas=(0.9, 0.999), eps=1e-08)",
     r"RMSProp's $\sigma_t$ plus momentum, both bias-corrected (the running averages $m$ and $v$ start at 0)."),
)
ETA_NOTE = "η_t = lr, or lr times the schedule's factor at step t (torch.optim.lr_scheduler)."


def update_table(rates: dict[str, float] | None = None) -> pd.DataFrame:
    """The lecture's summary as data: one row per optimizer with m_t, sigma_t, eta_t (LaTeX), the
    torch call at `rates` (the lab runs' rates by default) and how the lecture's version differs."""
    chosen = {**dict(DEFAULT_RATES), **(rates or {})}
    return pd.DataFrame([
        dict(optimizer=key, name=name, m_t=m, sigma_t=s, eta_t=e, torch=call.format(lr=f"{chosen[key]:g}"),
             lr=chosen[key], lecture=note)
        for key, name, m, s, e, call, note in _ROWS])


@dataclass(frozen=True)
class Config:
    """Several optimizers on the lab model, each at its own rate."""

    steps: int = 200  # updates per run
    batch_size: int | None = 32  # rows per update; None = full batch
    rates: tuple[tuple[str, float], ...] = DEFAULT_RATES  # (core.train optimizer, lr)
    seeds: int = 3  # seeds per optimizer; claims need the difference to hold across them


@dataclass
class Result:
    """Seeded groups per optimizer, the best one's comparisons with each other, and the table."""

    groups: list[kit.RunGroup]
    best: str  # the optimizer with the lowest mean tail loss among those that never diverged ("" if none)
    comparisons: dict[str, Comparison]  # other optimizer -> compare_groups(best, other)
    summary: pd.DataFrame  # kit.summary_table
    curves: pd.DataFrame  # run, step, loss_mean, loss_lo, loss_hi, seeds
    table: pd.DataFrame  # update_table at this run's rates
    config: Config
    verdict: Verdict
    notes: list[str]


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for a config that cannot run."""
    if not config.rates:
        raise ValueError("Pick at least one optimizer.")
    names = [n for n, _ in config.rates]
    if len(set(names)) != len(names):
        raise ValueError("Each optimizer can appear once.")
    for name, lr in config.rates:
        kit.check_optimizer(name)
        kit.check_rate(lr, f"The rate of {name}")
    kit.check_steps(config.steps, 1, "The number of steps", MAX_STEPS)
    kit.check_seeds(config.seeds)


def run(data: Dataset, setup: LabSetup, config: Config, on_progress: Progress | None = None) -> Result:
    """Train the lab model with each optimizer of `config.rates` (core.runs.run_model), `seeds` times."""
    on_progress = on_progress or no_progress
    validate(config)
    split, notes = kit.lab_split(data, setup)
    batch = kit.batch_rows(config.batch_size, split)
    n = len(config.rates)
    kit.check_budget(n * config.seeds * config.steps, batch or len(split.X_train), split, setup, n * config.seeds,
                     "Training every optimizer")
    groups = []
    for i, (name, lr) in enumerate(config.rates):
        cfg = TrainConfig(optimizer=name, lr=lr, max_steps=config.steps, batch_size=batch, momentum=MOMENTUM)
        groups.append(kit.train_group(split, setup, cfg, name, config.seeds, sub_progress(on_progress, i / n, (i + 1) / n)))
    stable = [g for g in groups if g.stable]
    best = min(stable, key=lambda g: g.mean).key if stable else ""
    by_key = {g.key: g for g in groups}
    comparisons = {g.key: kit.compare_groups(by_key[best], g) for g in groups if best and g.key != best}
    table = update_table(dict(config.rates))
    result = Result(groups, best, comparisons, kit.summary_table(groups), kit.curves_frame(groups),
                    table, config, Verdict("info", ""), notes)
    result.verdict = verdict(result)
    return result


def verdict(result: Result) -> Verdict:
    """Worded from the groups and comparisons only: "best" only past the noise."""
    c = result.config
    diverged = []
    for g in result.groups:
        if not g.stable:
            where = f" (in {g.n_diverged} of {len(g.seeds)} seeds)" if len(g.seeds) > 1 else ""
            what = f"{g.key} at lr {num(g.lr)}"
            diverged.append(divergence_sentence(g.first_divergence, capital(what)).rstrip(".") + where + ".")
    if not result.best:
        return Verdict("problem", "Every optimizer diverged. " + " ".join(diverged), "Lower the rates.")
    names = {g.key: f"{g.key} (lr {num(g.lr)})" for g in result.groups}
    one_seed = c.seeds == 1
    head = f"Each optimizer trained {c.steps:,} steps, " + ("one seed." if one_seed else f"{c.seeds} seeds each.")
    sentences = [kit.comparison_text(comp, names)
                 for key, comp in result.comparisons.items() if {g.key: g for g in result.groups}[key].stable]
    beaten = [k for k, comp in result.comparisons.items() if comp.winner == result.best]
    others = [k for k in result.comparisons]
    noise = "its own step-to-step noise" if one_seed else "the run-to-run noise"
    if others and len(beaten) == len(others):
        end = f"{capital(result.best)} trained best of all" + (
            f" in this one run (beyond {noise}). {kit.ONE_SEED_CAVEAT}" if one_seed else f", beyond {noise}.")
        kind = "info" if one_seed else "good"
    elif others:
        end = (f"{capital(result.best)} has the lowest tail loss, but not clearly below every other optimizer: "
               f"the difference is within {noise} for some.")
        if one_seed and beaten:
            end += " " + kit.ONE_SEED_CAVEAT
        kind = "info"
    else:
        end = f"Only {result.best} ran."  # nothing to compare with
        kind = "info"
    text = " ".join([head, *sentences, *diverged, end])
    return Verdict("warning" if diverged else kind, text, "Lower the rate of the runs that diverged." if diverged else "")
