"""The one place that turns findings into sentences, and numbers into words.

Pages and diagnoses word numbers through these helpers so "2.3x faster", "62%" and
"steps 22-975" read the same everywhere, and every comparison sentence takes its direction from
a `Comparison` (never from the order the caller happened to pass the runs in).

>>> from core.findings import compare
>>> c = compare("steps_to_target", "std", [8.0], "raw", [11.0], higher_is_better=False, noise=0.0)
>>> comparison_sentence(c, {"std": "standardized", "raw": "raw"}, "reached the target loss",
...                     "sooner", "steps", unit_plural="steps")
'standardized reached the target loss sooner: 8 steps vs 11 steps for raw (1.38x fewer).'
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from core.findings import Comparison
from core.rules import BLOWUP_FACTOR, Divergence


def num(x: float, digits: int = 3) -> str:
    """A number with `digits` significant digits; integers with thousands separators.

    >>> num(0.000123456), num(1234567.0), num(float("nan"))
    ('0.000123', '1,234,567', 'n/a')
    """
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def pct(share: float, digits: int = 2) -> str:
    """A share as a percentage with `digits` significant digits: 0.0012 -> '0.12%'.

    >>> pct(0.0012), pct(0.999), pct(0.25), pct(12.5)
    ('0.12%', '100%', '25%', '1250%')
    """
    if share is None or not math.isfinite(share):
        return "n/a"
    value = 100 * share
    if abs(value) >= 1:  # fixed decimals: 99.9% must not read "1e+02%"
        whole = len(str(int(abs(value))))
        return f"{value:.{max(0, digits - whole)}f}%"
    return f"{value:.{digits}g}%"


def factor(ratio: float) -> str:
    """A ratio as a factor, two significant digits without exponents: '2.3x', '15x', '150x',
    '1,200x', '93,000,000x' (an exponent only past 1e12); three below 2, so 1.04 does not read '1x'.

    >>> factor(1.04), factor(2.345), factor(153.7), factor(1234.0), factor(9.3e7), factor(float("inf"))
    ('1.04x', '2.3x', '150x', '1,200x', '93,000,000x', '∞x')
    """
    if not math.isfinite(ratio):
        return "∞x" if ratio > 0 else "n/a"
    if abs(ratio) < 2:
        return f"{ratio:.3g}x"
    if abs(ratio) < 10 or abs(ratio) >= 1e12:
        return f"{ratio:.2g}x"
    digits = len(str(int(abs(ratio)))) - 2  # keep two significant digits
    return f"{round(ratio, -digits):,.0f}x"


def times(a: float, b: float) -> str:
    """How many times larger the larger of a and b is: '2.3x', '150x'."""
    lo, hi = sorted((abs(a), abs(b)))
    if lo == 0:
        return "∞x"
    return factor(hi / lo)


def steps(n: int | None, none: str = "never") -> str:
    """'1 step', '12 steps', or `none`."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return none
    n = int(n)
    return f"{n:,} step{'s' if n != 1 else ''}"


def step_range(start: int, end: int) -> str:
    """'steps 22–975'."""
    return f"steps {int(start):,}–{int(end):,}"


def capital(text: str) -> str:
    """The sentence with its first letter upper-cased (user names inside are left alone)."""
    return text[:1].upper() + text[1:] if text else text


def divergence_sentence(d: Divergence, what: str = "Training") -> str:
    """The one sentence for a divergence, on every page."""
    if d.non_finite:
        return f"{what} diverged at step {d.step:,}: the loss or gradient stopped being a number (NaN or infinite)."
    return (f"{what} diverged at step {d.step:,}: the loss reached {num(d.loss)}, past {BLOWUP_FACTOR:g}x "
            f"its starting level ({num(d.start_loss)}).")


def comparison_sentence(c: Comparison, labels: Mapping[str, str], did: str, better_word: str,
                        measure_label: str, unit_plural: str = "", fmt=num) -> str:
    """One sentence for a comparison, its direction taken from `c.winner`.

    `did` says what both runs did ("reached the target loss"), `better_word` how the winner did it
    ("sooner", "better", "higher"); with no winner the sentence says there is no clear difference.
    """
    unit = f" {unit_plural}" if unit_plural else ""
    spread = ""
    if c.n_a > 1 or c.n_b > 1:
        spread = f" (mean of {max(c.n_a, c.n_b)} seeds)"
    if c.winner is None:
        return (f"No clear difference in {measure_label} between {labels[c.a]} ({fmt(c.a_value)}{unit}) and "
                f"{labels[c.b]} ({fmt(c.b_value)}{unit}){spread}: within the run-to-run noise.")
    w, l = c.winner, c.loser
    wv, lv = c.value(w), c.value(l)
    ratio = ""
    if math.isfinite(wv) and math.isfinite(lv) and min(abs(wv), abs(lv)) > 0:
        more = "more" if abs(wv) > abs(lv) else "fewer" if unit_plural else "lower"
        if not unit_plural:
            more = "higher" if abs(wv) > abs(lv) else "lower"
        ratio = f" ({times(wv, lv)} {more})"
    lv_text = f"{fmt(lv)}{unit}" if math.isfinite(lv) else "never"
    return f"{labels[w]} {did} {better_word}: {fmt(wv)}{unit} vs {lv_text} for {labels[l]}{ratio}{spread}."


def difference_sentence(c: Comparison, labels: Mapping[str, str], did: str, better_word: str,
                        measure_label: str, fmt=num) -> str:
    """Like comparison_sentence, for measures whose ratio means little (accuracy, R^2): the
    winner's lead is a difference ("+0.013"), not "1x higher". Direction from `c.winner`.

    >>> from core.findings import compare
    >>> c = compare("val_metric", "bn", [0.94], "raw", [0.91], higher_is_better=True, noise=0.0)
    >>> difference_sentence(c, {"bn": "batch norm", "raw": "raw"}, "ended with", "a higher accuracy", "accuracy")
    'batch norm ended with a higher accuracy: 0.94 vs 0.91 for raw (0.03 apart).'
    """
    if c.winner is None or not (math.isfinite(c.a_value) and math.isfinite(c.b_value)):
        return comparison_sentence(c, labels, did, better_word, measure_label, fmt=fmt)
    spread = f" (mean of {max(c.n_a, c.n_b)} seeds)" if c.n_a > 1 or c.n_b > 1 else ""
    w, l = c.winner, c.loser
    gap = abs(c.value(w) - c.value(l))
    return (f"{labels[w]} {did} {better_word}: {fmt(c.value(w))} vs {fmt(c.value(l))} for {labels[l]} "
            f"({fmt(gap)} apart){spread}.")


def cells(values, fmt: Callable[[float], str] = num, missing: str = "–") -> list[str]:
    """Table cells for display: ``fmt(x)`` for each value and ``missing`` for a missing one
    (Streamlit draws a grey "None" for a missing cell whatever the column's number format, so a
    column with gaps is shown as text).

    >>> cells([0.25, None, float("nan")], pct)
    ['25%', '–', '–']
    """
    out = []
    for x in values:
        gone = x is None or x is pd.NA or (isinstance(x, (float, np.floating)) and not math.isfinite(x))
        out.append(missing if gone else fmt(x))
    return out


def gaps_as_text(frame: pd.DataFrame, formats: Mapping[str, Callable] | None = None,
                 default: Callable = num) -> pd.DataFrame:
    """A copy for display where every column with a missing value becomes text through `cells`
    (its format from `formats`, else `default`); columns without a gap keep their types.

    >>> gaps_as_text(pd.DataFrame({"step": pd.array([3, None], dtype="Int64"), "n": [1, 2]})).to_dict("list")
    {'step': ['3', '–'], 'n': [1, 2]}
    """
    formats = formats or {}
    out = frame.copy()
    for col in out.columns:
        if out[col].isna().any():
            out[col] = pd.Series(cells(out[col].tolist(), formats.get(col, default)), index=out.index, dtype=object)
    return out
