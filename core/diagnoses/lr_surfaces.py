"""Adaptive optimizers on a 2-D toy surface (lecture 3.2.1-3.2.3): torch.optim's SGD, Adagrad,
RMSprop and Adam race from the same start, plus a warmup and a cosine-decay twin of one of them.

Every step is torch's own (core.surfaces.run_optimizer). Per run: the largest step in units of
the rate, the first step, how soon the run got near the minimum, and the bursts by the one burst
test (core.diagnoses.lr_burst.find_bursts): a torch optimizer's large step is called a burst
only when that test passes for the run. RMSprop's first step is 10x the rate because torch starts
its squared-gradient average at 0 without bias correction (1 / sqrt(1 - alpha)): a start-up
effect, which the test does not count (it follows no quiet stretch).

Optimizers are named as in core.train ("sgd", ...); core.surfaces calls plain descent "gd".

>>> r = run(None, None, Config(steps=60))
>>> list(r.summary["run"])
['sgd', 'adagrad', 'rmsprop', 'adam', 'rmsprop_warmup', 'rmsprop_cosine']
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core import schedules as sch
from core import surfaces as srf
from core.diagnoses import Progress, Verdict, no_progress
from core.diagnoses.lr_burst import BURST_JUMP, BURST_QUIET, BURST_RATE, Burst, find_bursts
from core.diagnoses.words import num
from core.rules import find_divergence

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")  # core.train names
SURFACE_NAMES = {"sgd": "gd", "adagrad": "adagrad", "rmsprop": "rmsprop", "adam": "adam"}  # -> core.surfaces
LABELS = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam"}
MAX_STEPS = 2000  # widget ceiling (six runs of 2,000 steps take ~3 s)
# Rates that make each optimizer show its character on each surface within a few hundred steps
# (measured: SGD at 1.5 on the bowl zigzags along x but crawls along y; RMSprop at 0.03 on the
# plateau reaches the cliff at step ~28).
SURFACE_RATES: dict[str, dict[str, float]] = {
    "elongated": {"sgd": 1.5, "adagrad": 1.0, "rmsprop": 0.1, "adam": 0.3},
    "rosenbrock": {"sgd": 1.5e-3, "adagrad": 0.5, "rmsprop": 0.03, "adam": 0.3},  # Adagrad at 1.0 diverged at step 1
    "flat_then_steep": {"sgd": 0.2, "adagrad": 0.3, "rmsprop": 0.03, "adam": 0.1},
}
NEAR_SHARE = 1e-3  # "near the minimum": within this share of the start's height above it
PROGRESS_EVERY = 200  # updates between progress calls (the Stop button lands there)


def surface_rates(surface: str) -> dict[str, float]:
    """Default rate per optimizer for one of SURFACE_RATES' surfaces (a fresh dict)."""
    if surface not in SURFACE_RATES:
        raise ValueError(f"Choose one of the surfaces {', '.join(SURFACE_RATES)}, not {surface!r}.")
    return dict(SURFACE_RATES[surface])


@dataclass(frozen=True)
class Config:
    """Optimizers racing on a 2-D surface, plus scheduled twins of one of them."""

    surface: str = "flat_then_steep"  # a key of SURFACE_RATES
    steps: int = 150  # updates per optimizer
    rates: tuple[tuple[str, float], ...] = ()  # (optimizer, lr); missing ones take SURFACE_RATES
    demo_optimizer: str = "rmsprop"  # whose scheduled twins show what warmup and decay change ("" = none)
    warmup_fraction: float = 0.1  # share of the steps spent warming up from 1% of the rate


@dataclass
class Result:
    """Trajectories (one long table), the surface grid, bursts and per-run numbers."""

    paths: pd.DataFrame  # run, optimizer, step, x, y, loss, lr, step_x, step_y, eff_lr_x, eff_lr_y
    grid: pd.DataFrame  # x, y, loss, log_loss
    summary: pd.DataFrame  # run, label, optimizer, lr, final_loss, steps_to_near_min, first_step_per_lr, ...
    bursts: list[Burst]
    labels: dict[str, str]  # run key -> display label
    surface: str
    axis_names: tuple[str, str]
    minimum: tuple[float, float]
    config: Config
    verdict: Verdict


def runs_for(config: Config) -> list[tuple[str, str, float, str | None, dict]]:
    """(key, optimizer, lr, schedule, schedule params) for each run of a race; ValueError if bad."""
    rates = {**surface_rates(config.surface), **dict(config.rates)}
    unknown = sorted(set(rates) - set(OPTIMIZERS))
    if unknown:
        raise ValueError(f"Unknown optimizer {unknown[0]!r}; choose among {', '.join(OPTIMIZERS)}.")
    for name, lr in rates.items():
        if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
            raise ValueError(f"The rate of {name} must be a positive number, got {lr!r}.")
    if isinstance(config.steps, bool) or not isinstance(config.steps, int) or not 10 <= config.steps <= MAX_STEPS:
        raise ValueError(f"Run from 10 to {MAX_STEPS:,} steps on a surface, got {config.steps!r}.")
    if not 0 < config.warmup_fraction < 1:
        raise ValueError("The warmup share must lie between 0 and 1.")
    runs = [(o, o, rates[o], None, {}) for o in OPTIMIZERS]
    demo = config.demo_optimizer
    if demo:
        if demo not in rates:
            raise ValueError(f"Unknown optimizer {demo!r}; choose among {', '.join(OPTIMIZERS)}.")
        warm = max(1, round(config.warmup_fraction * config.steps))
        # warmup only: warmup_cosine whose cosine ends at the rate itself, i.e. stays flat after
        runs.append((f"{demo}_warmup", demo, rates[demo], "warmup_cosine", {"warmup_steps": warm, "min_lr": rates[demo]}))
        runs.append((f"{demo}_cosine", demo, rates[demo], "cosine", {}))
    return runs


def run_labels(config: Config) -> dict[str, str]:
    """Display labels of a race's runs."""
    out = dict(LABELS)
    if config.demo_optimizer:
        out[f"{config.demo_optimizer}_warmup"] = f"{LABELS[config.demo_optimizer]} + warmup"
        out[f"{config.demo_optimizer}_cosine"] = f"{LABELS[config.demo_optimizer]} + cosine decay"
    return out


def _row(key: str, label: str, optimizer: str, lr: float, traj: srf.Trajectory, surface: srf.Surface,
         bursts: list[Burst]) -> dict:
    f = traj.frame
    moved = f[["step_x", "step_y"]].max(axis=1).to_numpy()[:-1]  # largest coordinate step of each update
    moved = moved[np.isfinite(moved)]
    start = float(f["loss"].iloc[0])
    near = traj.first_below(surface.min_loss + NEAR_SHARE * max(start - surface.min_loss, 1e-12))
    # the one divergence rule, with the toy surface's own scale (its height above the minimum);
    # core.surfaces already stops a run whose loss or parameters stop being finite numbers
    div = find_divergence(f[["step", "loss"]], scale=start - surface.min_loss)
    diverged = traj.diverged_at if div is None else min(div.step, traj.diverged_at or div.step)
    late = moved[int(0.75 * len(moved)):] if len(moved) else moved
    return dict(run=key, label=label, optimizer=optimizer, lr=lr, final_loss=float(f["loss"].iloc[-1]),
                steps_to_near_min=near,
                first_step_per_lr=float(moved[0] / lr) if len(moved) else float("nan"),
                largest_step_per_lr=float(moved.max() / lr) if len(moved) else float("nan"),
                largest_step_at=int(np.argmax(moved)) if len(moved) else None,
                largest_late_step=float(late.max()) if len(late) else float("nan"),
                bursts=len(bursts), first_burst_at=bursts[0].step if bursts else None,
                diverged_at=diverged)


class _Ticker:
    """Progress from inside core.surfaces.run_optimizer, which steps its `lr_scheduler` after every
    update and has no progress callback: this stands in for the scheduler (or wraps the real one)
    and reports every PROGRESS_EVERY updates, so a Stop lands within a fraction of a second."""

    def __init__(self, report):
        self.report, self.inner, self.count = report, None, 0

    def wrap(self, scheduler):
        self.inner = scheduler
        return self

    def step(self) -> None:
        if self.inner is not None:
            self.inner.step()
        self.count += 1
        if self.count % PROGRESS_EVERY == 0:
            self.report(self.count)


def run(data, setup, config: Config, on_progress: Progress | None = None) -> Result:
    """Run each optimizer (torch.optim, through core.surfaces) on the surface; `data` is not used."""
    on_progress = on_progress or no_progress
    runs = runs_for(config)
    labels = run_labels(config)
    surface = srf.SURFACES[config.surface]
    frames, rows, bursts = [], [], []
    for i, (key, opt, lr, name, params) in enumerate(runs):
        ticker = _Ticker(lambda k, i=i, key=key: on_progress((i + k / config.steps) / len(runs),
                                                             f"{labels[key]}: step {k:,} of {config.steps:,}"))
        scheduler = (lambda o, n=name, p=params, t=ticker: t.wrap(sch.to_torch(o, n, config.steps, **p))) if name \
            else (lambda o, t=ticker: t)
        traj = srf.run_optimizer(surface, SURFACE_NAMES[opt], surface.start, config.steps, lr, lr_scheduler=scheduler)
        f = traj.frame
        moves = f[["step_x", "step_y"]].to_numpy()[:-1]
        found = find_bursts(np.nan_to_num(moves, nan=0.0), f[["x", "y"]].to_numpy(), lr, key, surface.axis_names)
        bursts += found
        frames.append(f.assign(run=key, optimizer=opt))
        rows.append(_row(key, labels[key], opt, lr, traj, surface, found))
        on_progress((i + 1) / len(runs), labels[key])
    summary = pd.DataFrame(rows)
    for col in ("steps_to_near_min", "largest_step_at", "first_burst_at", "diverged_at"):
        summary[col] = summary[col].astype("Int64")
    minimum = next((c.x, c.y) for c in surface.critical_points if c.kind == "local minimum")
    result = Result(pd.concat(frames, ignore_index=True), srf.grid(surface, 50), summary, bursts, labels,
                    config.surface, surface.axis_names, minimum, config, Verdict("info", ""))
    result.verdict = verdict(result)
    return result


def verdict(result: Result) -> Verdict:
    """Worded from the summary and the bursts only (deterministic runs: no noise to beat)."""
    s = result.summary.set_index("run")
    names = result.labels
    parts = []
    reached = s["steps_to_near_min"].dropna()
    if len(reached):
        first = reached.min()
        leaders = [names[k] for k, v in reached.items() if v == first]
        parts.append(f"{' and '.join(leaders)} got near the minimum first (step {int(first):,})")
    slow = [names[k] for k in s.index[s["steps_to_near_min"].isna()]]
    if slow:
        parts.append(f"{', '.join(slow)} did not within {result.config.steps:,} steps")
    text = ("; ".join(parts) + ".") if parts else ""
    burst_runs = [names[k] for k, v in s["bursts"].items() if v > 0]
    test = (f"the burst test: a step over {BURST_RATE:g}x the rate after {BURST_QUIET} steps whose median "
            f"step was {BURST_JUMP:g}x smaller")
    if burst_runs:
        text += f" Bursts by {test}: {', '.join(burst_runs)}."
    else:
        text += f" No run burst by {test}."
    if "rmsprop" in s.index:
        row = s.loc["rmsprop"]
        text += (f" RMSprop's first step is {num(row['first_step_per_lr'], 2)}x the rate (torch starts its "
                 "average of squared gradients at 0), a start-up effect, not the lecture's burst")
        warm = "rmsprop_warmup"
        if warm in s.index:
            text += f"; with warmup it is {num(s.loc[warm, 'first_step_per_lr'], 2)}x"
        text += "."
    if "adagrad" in s.index:
        text += (f" torch's Adagrad's largest step is {num(s.loc['adagrad', 'largest_step_per_lr'], 2)}x the rate "
                 "(it divides by the root of the summed squares, never less than the gradient itself).")
    diverged = s["diverged_at"].dropna()
    if len(diverged):
        text += " Diverged: " + ", ".join(f"{names[r]} at step {int(k):,}" for r, k in diverged.items()) + "."
    return Verdict("warning" if len(diverged) else "info", text.strip())
