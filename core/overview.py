"""The home page's view of a dataset: summary numbers, per-feature scale and a 2-D projection."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from core.data import Dataset

SAME_SPREAD = 1.5  # standard deviations within this ratio: one scale, nothing for the scaling page to show
MAX_SCATTER_POINTS = 5000  # a browser draws more points slowly and shows nothing new


@dataclass(frozen=True)
class Projection:
    """Points in 2-D with their target; `method` says how they were made."""

    frame: pd.DataFrame  # columns x_name, y_name, target (+ row index)
    x_name: str
    y_name: str
    method: str  # "features" or "PCA"
    explained: tuple[float, ...]  # PCA explained variance ratio of the two axes (empty otherwise)
    n_rows: int = 0  # rows in the data set (the frame holds at most MAX_SCATTER_POINTS of them)

    @property
    def sample_note(self) -> str:
        """What the plot shows when it is a sample of the rows ("" when it shows them all)."""
        if self.n_rows <= len(self.frame):
            return ""
        return (f"A seeded random sample of {len(self.frame):,} of the {self.n_rows:,} rows is plotted (a browser "
                "draws more points slowly and shows nothing new); the PCA is fitted on that sample too. The "
                "summary and the checks on this page use every row.")


def summary(data: Dataset) -> pd.DataFrame:
    """A two-column table: what, value (rows, features, task, classes or target range)."""
    rows = [("rows", f"{data.n_rows:,}"), ("features", str(data.n_features)), ("task", data.task)]
    if data.task == "classification":
        rows.append(("classes", str(data.n_classes)))
    else:
        rows.append(("target range", f"{float(np.min(data.y)):.4g} to {float(np.max(data.y)):.4g}"))
    return pd.DataFrame(rows, columns=["what", "value"])


def feature_table(data: Dataset) -> pd.DataFrame:
    """One row per feature: feature, min, max, mean, std (population), missing share.

    Statistics are over the rows kept (float64 sums, so a million float32 rows stay exact enough);
    `missing` is the share of the file's rows where the feature's column was empty (those rows
    were dropped when loading).

    >>> from core.data import load_builtin
    >>> feature_table(load_builtin("scaled_regression"))["std"].round(0).tolist()
    [1179.0, 0.0]
    """
    X = data.X
    missing = data.missing_share or (0.0,) * data.n_features
    return pd.DataFrame({
        "feature": list(data.feature_names),
        "min": X.min(axis=0).astype(np.float64),
        "max": X.max(axis=0).astype(np.float64),
        "mean": X.mean(axis=0, dtype=np.float64),
        "std": X.std(axis=0, dtype=np.float64),
        "missing": np.asarray(missing, dtype=np.float64),
    })


def scale_spread(table: pd.DataFrame) -> str | None:
    """A sentence on how far the features' standard deviations lie apart, from `feature_table`.

    None with fewer than two features of non-zero spread. States numbers only; the Feature
    scaling page (lecture 5.2) shows what a wide spread does to training.
    """
    spread = table[table["std"] > 0]
    if len(spread) < 2:
        return None
    lo, hi = spread.loc[spread["std"].idxmin()], spread.loc[spread["std"].idxmax()]
    ratio = hi["std"] / lo["std"]
    if ratio < SAME_SPREAD:
        return (f"The features share about one scale: standard deviations from {_num(lo['std'])} to "
                f"{_num(hi['std'])}.")
    return (f"Standard deviations range from {_num(lo['std'])} ('{lo['feature']}') to {_num(hi['std'])} "
            f"('{hi['feature']}'), a ratio of {_num(ratio)} to 1. The Feature scaling page (lecture 5.2) "
            "shows what a wide spread does to training.")


def _num(v: float) -> str:
    """Three significant digits, with thousands separators instead of exponents below a million.

    >>> _num(1179.35), _num(0.111825), _num(10546.2), _num(2.5e7)
    ('1,180', '0.112', '10,500', '2.5e+07')
    """
    if v == 0 or not 1e-3 <= abs(v) < 1e6:
        return f"{v:.3g}"
    digits = 2 - math.floor(math.log10(abs(v)))
    return f"{round(v, digits):,.{max(digits, 0)}f}"


def project_2d(data: Dataset, seed: int = 0) -> Projection:
    """The two features themselves when there are two, else PCA on standardized features.

    More than MAX_SCATTER_POINTS rows are subsampled (seeded) before plotting.
    """
    n = data.n_rows
    rows = np.arange(n)
    if n > MAX_SCATTER_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(n, MAX_SCATTER_POINTS, replace=False))
    X = data.X[rows]
    target = data.y[rows]
    target = np.asarray(data.class_names, dtype=object)[target] if data.task == "classification" else target
    if data.n_features == 1:
        names, pts, method, explained = (data.feature_names[0], "row"), np.c_[X[:, 0], rows], "features", ()
    elif data.n_features == 2:
        names, pts, method, explained = tuple(data.feature_names), X, "features", ()
    else:
        scaled = StandardScaler().fit_transform(X)
        pca = PCA(n_components=2, random_state=seed).fit(scaled)
        pts, method = pca.transform(scaled), "PCA"
        explained = tuple(float(v) for v in pca.explained_variance_ratio_)
        names = (f"PC1 ({explained[0]:.0%})", f"PC2 ({explained[1]:.0%})")
    frame = pd.DataFrame({names[0]: pts[:, 0], names[1]: pts[:, 1], data.target_name or "target": target})
    return Projection(frame=frame, x_name=names[0], y_name=names[1], method=method, explained=explained,
                      n_rows=n)
