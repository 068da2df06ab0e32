"""Data checks: what a user should know about a dataset before training on it.

Two checks, each a typed fact (`DataCheck`) with the number behind it and one plain sentence:

- "leak": one file column alone predicts the target (nearly) perfectly on held-out rows. Such a
  column is usually the target in disguise: a copy as text (titanic's `alive` for `survived`), a
  sum that contains it (taxis' `total` for `fare`), a record made after the fact. The test fits a
  scikit-learn model on that column only (its one-hot or date features together) and scores its
  cross-validated predictions: balanced accuracy for classes, R^2 for numbers.
- "imbalance": the rarest class holds under half of an even share of the rows.

>>> from core.data import load_builtin
>>> [c.kind for c in data_checks(load_builtin("iris"))]
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from core.data import Dataset, subsample

LEAK_ROWS = 4000  # rows the single-column test looks at (a seeded, stratified sample)
LEAK_FOLDS = 3
# A column is flagged when its own held-out score reaches these. Classes: 0.99 balanced accuracy
# means the column names the class for 99 rows in 100 of every class, which honest single
# measurements do not (iris' petal width alone scores 0.953). Numbers: 0.95 R^2; 0.98 would miss
# the case that prompted this check, seaborn taxis' `total` for `fare` (fare + tip + tolls +
# surcharges: held-out R^2 0.971 on the file's first 125 rows), and an honest lone column that
# explains 95% of the target's variance is rare (diabetes' best scores 0.33). A flag only warns;
# nothing is left out until the user clicks.
LEAK_BALANCED_ACCURACY = 0.99
LEAK_R2 = 0.95
IMBALANCE_SHARE = 0.5  # imbalanced: the rarest class has under this fraction of an even share


@dataclass(frozen=True)
class DataCheck:
    """One finding about the data: which check, which column, the measured value and its bound."""

    kind: str  # "leak" or "imbalance"
    column: str  # the file column concerned ("" for a finding about the target as a whole)
    measure: str  # "balanced accuracy", "R²" or "rarest class share"
    value: float  # the measured value
    threshold: float  # the bound the rule compares it with
    text: str  # one plain sentence; it quotes file names, so show it as literal text

    @property
    def droppable(self) -> bool:
        """True when leaving `column` out of the features is the remedy."""
        return self.kind == "leak" and bool(self.column)


def _groups(data: Dataset) -> dict[str, list[int]]:
    """Feature indices per file column, in file order."""
    groups: dict[str, list[int]] = {}
    for i, source in enumerate(data.sources):
        groups.setdefault(source, []).append(i)
    return groups


def single_column_scores(data: Dataset, seed: int = 0, max_rows: int = LEAK_ROWS,
                         on_progress: Callable[[float, str], None] | None = None) -> pd.DataFrame:
    """How well each file column alone predicts the target on held-out rows.

    Classification: an unpruned decision tree on the column's features, scored by the balanced
    accuracy of its `LEAK_FOLDS`-fold cross-validated predictions (balanced, so always naming the
    common class scores 1 / number of classes, not its share). Regression: the better of a
    decision tree and a straight line, scored by R^2. At most `max_rows` rows are used.
    Returns a DataFrame with columns column, measure, score (one row per file column).
    """
    sample, _ = subsample(data, max_rows, seed)
    X, y = sample.X, sample.y
    if data.task == "classification":
        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
        folds = min(LEAK_FOLDS, smallest)
        cv = (StratifiedKFold(folds, shuffle=True, random_state=seed) if folds >= 2
              else KFold(LEAK_FOLDS, shuffle=True, random_state=seed))
        models = [DecisionTreeClassifier(random_state=seed)]
        measure, score_fn = "balanced accuracy", balanced_accuracy_score
    else:
        cv = KFold(LEAK_FOLDS, shuffle=True, random_state=seed)
        models = [DecisionTreeRegressor(random_state=seed), LinearRegression()]
        measure, score_fn = "R²", r2_score
    groups = _groups(sample)
    rows = []
    for k, (column, idx) in enumerate(groups.items()):
        if on_progress is not None:
            on_progress(k / len(groups), f"column {k + 1} of {len(groups)}")
        Xc = X[:, idx].astype(np.float64)
        scores = [score_fn(y, cross_val_predict(model, Xc, y, cv=cv)) for model in models]
        rows.append((column, measure, float(max(scores))))
    if on_progress is not None:
        on_progress(1.0, "done")
    return pd.DataFrame(rows, columns=["column", "measure", "score"])


def leak_checks(data: Dataset, seed: int = 0, max_rows: int = LEAK_ROWS,
                on_progress: Callable[[float, str], None] | None = None) -> list[DataCheck]:
    """A "leak" DataCheck for every column whose own held-out score reaches the bound, best first.

    >>> import numpy as np
    >>> from core.data import Dataset
    >>> y = np.arange(200) % 2
    >>> X = np.c_[np.random.default_rng(0).normal(size=200), y * 3.0]
    >>> [c.column for c in leak_checks(Dataset(X, y, "classification", ("noise", "copy"), "t", ("a", "b")))]
    ['copy']
    """
    if data.n_features == 0 or data.n_rows < 2 * LEAK_FOLDS:
        return []
    threshold = LEAK_BALANCED_ACCURACY if data.task == "classification" else LEAK_R2
    scores = single_column_scores(data, seed, max_rows, on_progress)
    flagged = scores[scores["score"] >= threshold].sort_values("score", ascending=False, kind="stable")
    checks = []
    for column, measure, score in flagged.itertuples(index=False):
        text = (f"The column '{column}' alone predicts the target '{data.target_name}' with {measure} "
                f"{score:.3f} on held-out rows. A single column this close to the answer is usually the "
                "target in disguise (a copy, a total that contains it, a record made afterwards); a "
                "model trained with it learns nothing useful. Leave it out unless it is known before "
                "the target is.")
        checks.append(DataCheck("leak", column, measure, score, threshold, text))
    return checks


def balance_check(data: Dataset) -> DataCheck | None:
    """An "imbalance" DataCheck when the rarest class has under half an even share of the rows.

    >>> from core.data import load_builtin
    >>> balance_check(load_builtin("moons")) is None
    True
    """
    if data.task != "classification" or data.n_rows == 0:
        return None
    counts = np.bincount(data.y, minlength=data.n_classes)
    shares = counts / counts.sum()
    even = 1.0 / data.n_classes
    rare, common = int(np.argmin(counts)), int(np.argmax(counts))
    if shares[rare] >= IMBALANCE_SHARE * even:
        return None
    text = (f"The classes are imbalanced: '{data.class_names[rare]}' has {counts[rare]:,} of the "
            f"{data.n_rows:,} rows ({shares[rare]:.1%}; an even split would give {even:.1%}). "
            f"Always answering '{data.class_names[common]}' already scores {shares[common]:.1%} "
            "accuracy: judge a model against that, and look at how it does on the rare class.")
    return DataCheck("imbalance", "", "rarest class share", float(shares[rare]), IMBALANCE_SHARE * even, text)


def data_checks(data: Dataset, seed: int = 0,
                on_progress: Callable[[float, str], None] | None = None) -> tuple[DataCheck, ...]:
    """Every check on `data`: leaks first (best first), then class imbalance."""
    checks = leak_checks(data, seed, on_progress=on_progress)
    balance = balance_check(data)
    return tuple(checks + ([balance] if balance is not None else []))
