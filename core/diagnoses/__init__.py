"""One module per diagnosis: a frozen config dataclass in, a result dataclass out.

Every diagnosis module exposes `run(data, setup, config, on_progress=None) -> Result`, where
`data` is the loaded core.data.Dataset, `setup` the core.lab.LabSetup (model spec and seed), and
`on_progress(fraction, message)` an optional callback. Results hold numpy arrays, floats and
DataFrames (never tensors) and a `verdict`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is running)

VERDICT_KINDS = ("good", "info", "warning", "problem")


@dataclass(frozen=True)
class Verdict:
    """A plain-language answer: its kind (one of VERDICT_KINDS) and a sentence with the numbers."""

    kind: str
    text: str
    advice: str = ""  # what to try next, one sentence


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that does nothing (the default when no UI listens)."""


def sub_progress(on_progress: Progress | None, start: float, end: float) -> Progress:
    """A callback that maps a sub-task's [0, 1] onto [start, end] of the parent's progress."""
    if on_progress is None:
        return no_progress
    return lambda fraction, message: on_progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)


TICK_SECONDS = 0.2  # a Stop lands within this long (plus one unit of work) during long measures


class Ticker:
    """A `should_stop` callback (core.stop) for long measures that report no progress of their own.

    Under Streamlit a Stop lands when the page's progress callback runs; a Ticker calls
    `on_progress` at most every TICK_SECONDS, at the fraction and message last set with `at`, so
    a Hessian-vector-product loop stays stoppable. It never asks to stop by itself (returns False).

    >>> seen = []
    >>> tick = Ticker(lambda f, m: seen.append((f, m)))
    >>> tick.at(0.5, "curvature")
    >>> tick(), seen
    (False, [(0.5, 'curvature')])
    """

    def __init__(self, on_progress: Progress | None):
        self.on_progress = on_progress or no_progress
        self.fraction, self.message, self.last = 0.0, "", 0.0

    def at(self, fraction: float, message: str) -> None:
        """Report progress now and remember it for the ticks that follow."""
        self.fraction, self.message, self.last = fraction, message, time.perf_counter()
        self.on_progress(fraction, message)

    def __call__(self) -> bool:
        now = time.perf_counter()
        if now - self.last >= TICK_SECONDS:
            self.last = now
            self.on_progress(self.fraction, self.message)
        return False
