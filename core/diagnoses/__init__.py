"""One module per diagnosis: a frozen config dataclass in, a result dataclass out.

Every diagnosis module exposes `run(data, setup, config, on_progress=None) -> Result`, where
`data` is the loaded core.data.Dataset, `setup` the core.lab.LabSetup (model spec and seed), and
`on_progress(fraction, message)` an optional callback. Results hold numpy arrays, floats and
DataFrames (never tensors) and a `verdict`.
"""
from __future__ import annotations

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
