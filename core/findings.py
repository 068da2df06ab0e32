"""Findings: the typed facts a verdict is worded from.

A diagnosis decides first and words second. Deciding produces findings: which run is better, by
which measure, on which split, by how much, and whether the difference exceeds the run-to-run
noise. Runs and measures are named by stable keys ("cross_entropy", "val_metric"), never by the
labels a page displays. `core.diagnoses.words` turns findings into sentences, so a sentence can
never say "faster" when the numbers say slower.

>>> c = compare("steps_to_target", "standardized", [11.0], "raw", [8.0], higher_is_better=False, noise=0.0)
>>> c.winner, c.ratio
('raw', 1.375)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

SIGNIFICANCE = 0.05  # a difference across seeds counts when Welch's t-test gives p below this
NOISE_MULTIPLE = 2.0  # a single-run difference counts when it exceeds this many noise units


@dataclass(frozen=True)
class Comparison:
    """Run `a` against run `b` on one measure, decided against the noise.

    `winner` is the key of the better run, or None when the difference is within the noise.
    Values are means over seeds (or the single run's value); `spread_*` their standard deviation
    across seeds (0 for one seed); `noise` the yardstick a single-run difference was held to.
    """

    measure: str  # stable key of the measure, e.g. "val_metric", "steps_to_target"
    split: str  # "train", "validation" or "" when the measure has none
    a: str  # stable key of one run
    b: str  # stable key of the other run
    a_value: float
    b_value: float
    higher_is_better: bool
    n_a: int  # samples (seeds) behind a_value
    n_b: int
    spread_a: float
    spread_b: float
    noise: float  # what the difference was compared with (single runs), NaN for a t-test
    p_value: float  # Welch's t-test across seeds; NaN for single runs
    winner: str | None

    @property
    def loser(self) -> str | None:
        """Key of the worse run, or None when there is no clear difference."""
        if self.winner is None:
            return None
        return self.b if self.winner == self.a else self.a

    @property
    def difference(self) -> float:
        """a_value - b_value."""
        return self.a_value - self.b_value

    @property
    def ratio(self) -> float:
        """a_value / b_value (NaN when b_value is 0 or either is not finite)."""
        if not (math.isfinite(self.a_value) and math.isfinite(self.b_value)) or self.b_value == 0:
            return float("nan")
        return self.a_value / self.b_value

    def value(self, key: str) -> float:
        """The value of run `key` (a or b)."""
        return self.a_value if key == self.a else self.b_value


def compare(measure: str, a: str, a_samples: Sequence[float], b: str, b_samples: Sequence[float],
            higher_is_better: bool, noise: float | None = None, split: str = "",
            min_relative: float = 0.0) -> Comparison:
    """Decide which of two runs is better on one measure, only beyond the noise.

    With two or more finite samples on each side (seeds), the difference of means must pass
    Welch's t-test (scipy) at SIGNIFICANCE. With a single sample on a side, the difference must
    exceed NOISE_MULTIPLE x `noise` (the caller's estimate of run-to-run noise, e.g. the spread of
    the loss over the last part of the run; 0 for deterministic runs). `min_relative` also asks the
    difference to be at least that share of the larger value (a 0.1% gain is no finding).
    A missing side (no finite sample, e.g. never reached the target) loses to a present one.
    """
    sa = np.asarray([x for x in a_samples if x is not None], dtype=float)
    sb = np.asarray([x for x in b_samples if x is not None], dtype=float)
    fa, fb = sa[np.isfinite(sa)], sb[np.isfinite(sb)]
    mean_a = float(fa.mean()) if len(fa) else float("nan")
    mean_b = float(fb.mean()) if len(fb) else float("nan")
    spread_a = float(fa.std(ddof=1)) if len(fa) > 1 else 0.0
    spread_b = float(fb.std(ddof=1)) if len(fb) > 1 else 0.0
    p = float("nan")
    used_noise = float("nan")
    winner: str | None = None
    if len(fa) and not len(fb):
        winner = a
    elif len(fb) and not len(fa):
        winner = b
    elif len(fa) and len(fb):
        diff = mean_a - mean_b
        big_enough = abs(diff) > min_relative * max(abs(mean_a), abs(mean_b))
        if len(fa) >= 2 and len(fb) >= 2:
            if spread_a == 0 and spread_b == 0:
                clear = diff != 0
            else:
                with warnings.catch_warnings():  # near-identical samples: scipy warns, p is still usable
                    warnings.simplefilter("ignore", RuntimeWarning)
                    p = float(stats.ttest_ind(fa, fb, equal_var=False).pvalue)
                clear = p < SIGNIFICANCE
        else:
            used_noise = float(noise) if noise is not None else max(spread_a, spread_b)
            clear = abs(diff) > NOISE_MULTIPLE * used_noise if used_noise > 0 else diff != 0
            if noise is None and used_noise == 0:  # one run each and no noise estimate: no claim
                clear = False
        if clear and big_enough:
            winner = a if (diff > 0) == higher_is_better else b
    return Comparison(measure=measure, split=split, a=a, b=b, a_value=mean_a, b_value=mean_b,
                      higher_is_better=higher_is_better, n_a=len(fa), n_b=len(fb), spread_a=spread_a,
                      spread_b=spread_b, noise=used_noise, p_value=p, winner=winner)


def tail_mean(values: Sequence[float], share: float = 0.2) -> float:
    """Mean of the last `share` of a curve's finite values: a run's level, not its last noisy point."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan")
    k = max(1, int(math.ceil(len(v) * share)))
    return float(v[-k:].mean())


def tail_noise(values: Sequence[float], share: float = 0.2) -> float:
    """Standard error of tail_mean: the spread of the last `share` of a curve over sqrt(count),
    after removing a linear trend (a falling curve is not noise)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    k = max(1, int(math.ceil(len(v) * share)))
    tail = v[-k:]
    if len(tail) < 3:
        return 0.0
    x = np.arange(len(tail), dtype=float)
    resid = tail - np.polyval(np.polyfit(x, tail, 1), x)
    return float(resid.std(ddof=2) / math.sqrt(len(tail)))
