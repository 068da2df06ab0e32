"""Schedule preview (lecture 3.2.4): learning-rate schedules as pure functions of the step.

No training: core.schedules evaluates each schedule at every step, lists its rate at chosen
steps, and writes the torch code (torch.optim.lr_scheduler) that gives the same rates.

>>> from core.lab import LabSetup
>>> r = run(None, LabSetup(), Config(schedules=(("cosine", ()),), total_steps=100))
>>> row = r.table.iloc[0]
>>> row["schedule"], float(row["step 0"]), bool(row["final"] < 1e-4)  # torch's T_max = T: not quite 0 at T - 1
('cosine', 0.1, True)
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core import schedules as sch
from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress
from core.diagnoses.words import num
from core.lab import LabSetup

SchedulePick = tuple[str, tuple[tuple[str, float], ...]]  # (schedule name, (param, value) pairs)
MAX_STEPS = 100_000  # a preview is pure math: 100k steps x a few schedules take well under a second
SHOWN_POINTS = 2000  # steps per schedule the chart draws (a 560-pixel chart shows no more)


@dataclass(frozen=True)
class Config:
    """Which schedules to draw and where to read off their numbers."""

    schedules: tuple[SchedulePick, ...] = (("constant", ()), ("step", ()), ("warmup_cosine", ()),
                                           ("one_cycle", ()))
    total_steps: int = 1000  # optimizer updates in the previewed run
    base_lr: float = 0.1  # the optimizer's lr (one_cycle and cyclic peak there)
    at_steps: tuple[int, ...] = (0, 100, 250, 500, 999)  # steps whose rates the table lists


@dataclass
class Result:
    """Whole schedules (long table), their rates at chosen steps, and PyTorch code for each."""

    frame: pd.DataFrame  # step, schedule, lr (every step up to SHOWN_POINTS, then every k-th, for the chart)
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


def run(data: Dataset | None, setup: LabSetup, config: Config, on_progress: Progress | None = None) -> Result:
    """Evaluate each schedule at every step (pure math: milliseconds, no training)."""
    on_progress = on_progress or no_progress
    if not config.schedules:
        raise ValueError("Pick at least one schedule to preview.")
    T = config.total_steps
    if isinstance(T, bool) or not isinstance(T, int) or not 2 <= T <= MAX_STEPS:
        raise ValueError(f"Preview from 2 to {MAX_STEPS:,} steps, got {T!r}.")
    if len(config.schedules) > len(sch.SCHEDULES):
        raise ValueError(f"Preview at most {len(sch.SCHEDULES)} schedules at once.")
    if not (isinstance(config.base_lr, (int, float)) and config.base_lr > 0):
        raise ValueError(f"The base rate must be a positive number, got {config.base_lr!r}.")
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
    # the chart gets every k-th step (about SHOWN_POINTS per schedule) and the listed ones; the
    # table above read every step
    k = max(1, T // SHOWN_POINTS)
    frame = frame[(frame["step"] % k == 0) | (frame["step"] == T - 1) | frame["step"].isin(at)].reset_index(drop=True)
    top = table.loc[table["peak"].idxmax()]
    verdict = Verdict(
        "info",
        f"Over {T:,} steps at base rate {num(config.base_lr)}, the highest rate is {num(top['peak'], 4)} "
        f"({top['schedule']}, step {top['peak at step']:,}); final rates range from "
        f"{num(table['final'].min())} to {num(table['final'].max())}.",
    )
    return Result(frame, points, table, code, params, verdict)
