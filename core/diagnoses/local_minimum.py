"""Momentum rolls through a local minimum (lecture 2.2.1, the ball rolling downhill).

On the tilted double well (core.surfaces "double_well") gradient descent from the right stops in
the first, shallow dip: its gradient there is zero. Momentum keeps the speed it gathered on the
way down and carries over the small ridge into the deeper minimum; Adam, at its own rate, too.
Each racer is a real torch.optim optimizer run by core.surfaces.descend.

>>> res = run(None, None, Config())
>>> res.findings.settled["sgd"], res.findings.settled["momentum"]
('local', 'global')
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.diagnoses import Progress, Verdict, no_progress
from core.diagnoses.words import num, steps as steps_text
from core.surfaces import SURFACES, WELL_BARRIER_X, WELL_GLOBAL_X, WELL_LOCAL_X, descend, grid

SURFACE = "double_well"
RACERS = {"sgd": "Gradient descent", "momentum": "Momentum", "adam": "Adam"}
MINIMA = {"local": WELL_LOCAL_X, "global": WELL_GLOBAL_X}
SETTLE_RADIUS = 0.1  # a racer within this distance of a minimum (and staying) has settled in it


@dataclass(frozen=True)
class Config:
    """The race on the double well. Defaults show the lecture's picture."""

    start_x: float = 2.0  # start on the right slope, above the shallow dip
    start_y: float = 0.5
    steps: int = 300  # updates per racer
    lr: float = 0.01  # gradient descent's and momentum's rate
    momentum: float = 0.9  # SGD's beta: how much of the last update carries on
    adam_lr: float = 0.2  # Adam's rate (its steps are about this long in each coordinate)


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence when the race cannot run."""
    if not 1 <= config.steps <= 5000:
        raise ValueError("Give each racer between 1 and 5,000 steps.")
    for value, name in ((config.lr, "The learning rate"), (config.adam_lr, "Adam's learning rate")):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number.")
    if not 0 <= config.momentum < 1:
        raise ValueError("Momentum beta must be at least 0 and below 1.")
    (x0, x1), (y0, y1) = SURFACES[SURFACE].bounds
    if not (x0 <= config.start_x <= x1 and y0 <= config.start_y <= y1):
        raise ValueError(f"Start inside the plotted square: x in [{x0}, {x1}], y in [{y0}, {y1}].")


@dataclass(frozen=True)
class Findings:
    """Where each racer ended: "local", "global" or "moving"; and when it settled there."""

    settled: dict  # racer key -> "local" | "global" | "moving" | "diverged"
    settle_step: dict  # racer key -> first step from which it stayed in its minimum (or None)
    diverged_at: dict  # racer key -> step or None
    passed_barrier: dict  # racer key -> True when it crossed the ridge at x = WELL_BARRIER_X


@dataclass(eq=False)
class Result:
    """The race: paths, a table, the surface grid and marks, findings and the verdict."""

    config: Config
    frame: pd.DataFrame  # racer, label, step, x, y, loss
    table: pd.DataFrame  # racer, label, lr, final_x, final_loss, settled_in, settle_step, diverged_at
    grid: pd.DataFrame
    marks: pd.DataFrame  # x, y, label
    findings: Findings
    verdict: Verdict


def settled_where(x: np.ndarray, y: np.ndarray) -> tuple[str, int | None]:
    """Which minimum a path ends in, and the first step from which it stays within SETTLE_RADIUS."""
    for key, mx in MINIMA.items():
        near = np.hypot(x - mx, y) <= SETTLE_RADIUS
        if near[-1]:
            away = np.flatnonzero(~near)
            return key, int(away[-1] + 1) if len(away) else 0
    return "moving", None


def run(data=None, setup=None, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Race gradient descent, momentum and Adam from the same start on the double well."""
    validate(config)
    on_progress = on_progress or no_progress
    surface = SURFACES[SURFACE]
    frames, rows = [], []
    settled, settle_step, diverged, passed = {}, {}, {}, {}
    for i, (key, label) in enumerate(RACERS.items()):
        on_progress(i / len(RACERS), label)
        lr = config.adam_lr if key == "adam" else config.lr
        kw = {"momentum": config.momentum} if key == "momentum" else {}
        d = descend(surface.fn, (config.start_x, config.start_y), key, config.steps, lr, **kw)
        f = d.frame[["step", "x", "y", "loss"]].assign(racer=key, label=label)
        frames.append(f)
        where, when = settled_where(f["x"].to_numpy(), f["y"].to_numpy())
        if d.diverged_at is not None:
            where, when = "diverged", None
        settled[key], settle_step[key], diverged[key] = where, when, d.diverged_at
        passed[key] = bool((f["x"] < WELL_BARRIER_X).any())
        rows.append(dict(racer=key, label=label, lr=lr, final_x=float(f["x"].iloc[-1]),
                         final_loss=float(f["loss"].iloc[-1]), settled_in=where, settle_step=when,
                         diverged_at=d.diverged_at))
    on_progress(1.0, "done")
    table = pd.DataFrame(rows)
    for col in ("settle_step", "diverged_at"):
        table[col] = table[col].astype("Int64")
    findings = Findings(settled, settle_step, diverged, passed)
    marks = pd.DataFrame([(c.x, c.y, c.note.split(",")[0]) for c in surface.critical_points]
                         + [(config.start_x, config.start_y, "start")], columns=["x", "y", "label"])
    return Result(config, pd.concat(frames, ignore_index=True), table, grid(surface, n=60, clip_quantile=0.9),
                  marks, findings, make_verdict(findings, config, table))


def make_verdict(f: Findings, config: Config, table: pd.DataFrame) -> Verdict:
    """Words for the findings: who stopped in the shallow dip, who rolled on, with the steps."""
    loss = table.set_index("racer")["final_loss"]

    def where(key: str) -> str:
        s = f.settled[key]
        if s == "diverged":
            return f"diverged at step {f.diverged_at[key]}"
        if s == "moving":
            return f"was still moving after {steps_text(config.steps)} (loss {num(loss[key])})"
        dip = "the shallow local minimum" if s == "local" else "the deeper global minimum"
        return f"settled in {dip} (x = {MINIMA[s]:.3f}, loss {num(loss[key])}) by step {f.settle_step[key]}"

    text = (f"From x = {config.start_x:g}: gradient descent (lr {config.lr:g}) {where('sgd')}; momentum "
            f"(lr {config.lr:g}, beta {config.momentum:g}) {where('momentum')}; Adam (lr {config.adam_lr:g}) "
            f"{where('adam')}.")
    gd, mom = f.settled["sgd"], f.settled["momentum"]
    if gd == "local" and mom == "global":
        return Verdict("info", text + " The gradient is zero at the bottom of the dip, so gradient descent "
                       "stops there; momentum carried the speed it gathered on the way down over the ridge.",
                       "Momentum (beta around 0.9) is the cheap way past small dips and plateaus.")
    if gd == mom and gd in ("local", "global"):
        return Verdict("info", text + " Here momentum made no difference to where the run ended.",
                       "Change the start, the rate or beta to see the ball roll on.")
    return Verdict("warning" if "diverged" in (gd, mom) else "info", text,
                   "Lower the rate if a racer diverged; raise beta to give momentum more carry.")
