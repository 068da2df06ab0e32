"""Number inputs that say when a value was not usable, instead of keeping an old result on screen.

Streamlit's own `number_input(min_value=..., max_value=...)` answers an out-of-range entry with only
a red border and keeps the previous value, so the page goes on showing the previous result as if it
were current (issue 17: a seed of 99999999999, a learning rate of 1e-9). `number_input` here takes
the same arguments, lets any number through the widget, then clamps it to the range and says so
next to it: what the page shows is always what ran.
"""
from __future__ import annotations

import math

import streamlit as st

from ui.verdict import escape_markdown


def clamp(value, min_value=None, max_value=None):
    """`value` held to [min_value, max_value] (either may be None), and whether it had to be.

    >>> clamp(1e-9, 1e-5, 1.0), clamp(5, 0, 10), clamp(float("nan"), 0.0, 1.0)
    ((1e-05, True), (5, False), (0.0, True))
    """
    if isinstance(value, float) and math.isnan(value):
        return (min_value if min_value is not None else 0.0), True
    if min_value is not None and value < min_value:
        return min_value, True
    if max_value is not None and value > max_value:
        return max_value, True
    return value, False


def number_input(container, label, min_value=None, max_value=None, value="min", step=None, format=None, **kw):
    """`container.number_input` with the same arguments, whose range is enforced visibly: a value
    outside [min_value, max_value] is replaced by the nearest bound and a caption under the widget
    says it was not applied as typed."""
    if isinstance(value, str) and value == "min":
        value = min_value if min_value is not None else 0
    if isinstance(value, int) and not isinstance(value, bool) and any(
            isinstance(b, float) for b in (min_value, max_value, step) if b is not None):
        value = float(value)
    typed = container.number_input(label, value=value, step=step, format=format, **kw)
    if typed is None:
        return typed
    used, changed = clamp(typed, min_value, max_value)
    if changed:
        kind = int if isinstance(value, int) and not isinstance(value, bool) else float
        used = kind(used)
        span = (f"outside {_text(min_value)} to {_text(max_value)}" if min_value is not None and max_value is not None
                else "out of range")
        container.warning(escape_markdown(f"{label}: {_text(typed)} is {span}, so it was not used as typed; this run "
                                          f"uses {_text(used)}."), icon=":material/warning:")
    return used


def _text(v) -> str:
    """A number as typed: whole numbers in full (a seed of 99999999999), others with %g."""
    if isinstance(v, int):
        return str(v)
    if float(v).is_integer() and 1 <= abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}"
