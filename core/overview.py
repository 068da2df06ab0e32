"""The home page's view of a dataset: summary numbers and a 2-D projection."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from core.data import Dataset

MAX_SCATTER_POINTS = 5000  # a browser draws more points slowly and shows nothing new


@dataclass(frozen=True)
class Projection:
    """Points in 2-D with their target; `method` says how they were made."""

    frame: pd.DataFrame  # columns x_name, y_name, target (+ row index)
    x_name: str
    y_name: str
    method: str  # "features" or "PCA"
    explained: tuple[float, ...]  # PCA explained variance ratio of the two axes (empty otherwise)


def summary(data: Dataset) -> pd.DataFrame:
    """A two-column table: what, value (rows, features, task, classes or target range)."""
    rows = [("rows", f"{data.n_rows:,}"), ("features", str(data.n_features)), ("task", data.task)]
    if data.task == "classification":
        rows.append(("classes", str(data.n_classes)))
    else:
        rows.append(("target range", f"{float(np.min(data.y)):.4g} to {float(np.max(data.y)):.4g}"))
    return pd.DataFrame(rows, columns=["what", "value"])


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
    return Projection(frame=frame, x_name=names[0], y_name=names[1], method=method, explained=explained)
