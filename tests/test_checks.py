"""Tests for core.checks: leaks found on files made here, honest data left alone, class balance."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.checks import (
    IMBALANCE_SHARE, LEAK_BALANCED_ACCURACY, LEAK_R2, balance_check, data_checks, leak_checks,
    single_column_scores,
)
from core.data import Dataset, load_builtin, load_csv


def to_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def titanic_like(n=600, seed=0) -> pd.DataFrame:
    """survived with `alive`, the same fact as text, beside honest features that only correlate."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n, p=[0.65, 0.35])
    age = rng.uniform(1, 70, n).round(0)
    fare = rng.lognormal(3, 1, n).round(2)
    p = np.where(sex == "female", 0.74, 0.19)
    survived = (rng.uniform(size=n) < p).astype(int)
    return pd.DataFrame({"sex": sex, "age": age, "fare": fare, "alive": np.where(survived, "yes", "no"),
                         "survived": survived})


def taxis_like(n=3000, seed=0) -> pd.DataFrame:
    """fare with `total` = fare + tip + tolls + surcharge beside honest columns (seaborn's taxis in
    miniature: its first 125 rows give `total` alone a held-out R^2 of 0.971 for `fare`)."""
    rng = np.random.default_rng(seed)
    distance = rng.lognormal(0.6, 0.8, n).round(2)
    minutes = distance * rng.uniform(3, 9, n) + rng.exponential(4, n)
    fare = np.round(2.5 + 1.6 * distance + 0.4 * minutes, 1)
    card = rng.uniform(size=n) < 0.7  # cash rides record no tip
    tip = np.round(np.where(card, fare * rng.uniform(0.18, 0.25, n), 0.0), 2)
    tolls = np.where(rng.uniform(size=n) < 0.05, 5.76, 0.0)
    total = np.round(fare + tip + tolls + rng.choice([3.3, 0.8, 4.3], n, p=[0.85, 0.1, 0.05]), 2)
    return pd.DataFrame({"passengers": rng.integers(1, 6, n), "distance": distance, "tip": tip,
                         "tolls": tolls, "total": total, "fare": fare})


def test_a_copy_of_the_target_as_text_is_flagged_and_leaving_it_out_clears_it():
    raw = to_bytes(titanic_like())
    data = load_csv(raw, target="survived")
    checks = leak_checks(data)
    assert [c.column for c in checks] == ["alive"]  # sex, age and fare only correlate
    leak = checks[0]
    assert leak.kind == "leak" and leak.droppable and leak.measure == "balanced accuracy"
    assert leak.value == 1.0 and leak.threshold == LEAK_BALANCED_ACCURACY  # a copy is never wrong
    assert "'alive'" in leak.text and "'survived'" in leak.text and "1.000" in leak.text
    scores = single_column_scores(data).set_index("column")["score"]
    # sex alone: the better guess per sex is right for 74% of women and 81% of men, so its balanced
    # accuracy is near (0.74 + 0.81) / 2 = 0.775, far below the bound.
    assert scores["sex"] == pytest.approx(0.775, abs=0.06)
    clean = load_csv(raw, target="survived", drop_columns=("alive",))
    assert leak_checks(clean) == [] and "alive=yes" not in clean.feature_names


def test_a_numeric_near_duplicate_is_flagged_with_the_r2_its_noise_allows():
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.normal(20, 5, n)
    df = pd.DataFrame({"honest": y + rng.normal(0, 6, n), "fahrenheit": y * 1.8 + 32 + rng.normal(0, 0.9, n),
                       "noise": rng.normal(size=n), "celsius": y})
    data = load_csv(to_bytes(df))
    checks = leak_checks(data)
    assert [c.column for c in checks] == ["fahrenheit"]
    # fahrenheit = 1.8 y + 32 + e with sd(e) = 0.9 = 1.8 * 0.5: a line explains 1 - 0.5^2 / 5^2 = 0.99.
    assert checks[0].measure == "R²" and checks[0].value == pytest.approx(0.99, abs=0.003)
    honest = single_column_scores(data).set_index("column")["score"]["honest"]
    assert honest == pytest.approx(25 / (25 + 36), abs=0.05)  # var(y) / var(y + e): far from the bound


def test_a_total_that_contains_the_target_is_flagged_but_its_parts_are_not():
    data = load_csv(to_bytes(taxis_like()), target="fare")
    scores = single_column_scores(data).set_index("column")["score"]
    assert scores["total"] >= LEAK_R2
    assert [c.column for c in leak_checks(data)] == ["total"]
    # distance drives the fare too, but the ride's minutes add what it cannot know: honest, not flagged.
    assert 0.85 < scores["distance"] < LEAK_R2
    assert scores["tip"] < LEAK_R2 and scores["passengers"] < 0.05


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "diabetes", "moons", "scaled_regression"])
def test_honest_builtin_data_raises_no_leak(name):
    assert leak_checks(load_builtin(name)) == []


def test_class_imbalance_notice_with_its_numbers():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1000, 3))
    y = np.r_[np.zeros(950, int), np.ones(50, int)]
    data = Dataset(X, y, "classification", ("a", "b", "c"), "fraud", ("no", "yes"))
    check = balance_check(data)
    assert check is not None and check.kind == "imbalance" and not check.droppable
    assert check.value == pytest.approx(0.05) and check.threshold == IMBALANCE_SHARE * 0.5
    assert "'yes' has 50 of the 1,000 rows (5.0%" in check.text
    assert "Always answering 'no' already scores 95.0% accuracy" in check.text
    assert data_checks(data) == (check,)
    # 30% of two classes is more than half an even share (25%): no notice; neither for regression.
    y2 = np.r_[np.zeros(700, int), np.ones(300, int)]
    assert balance_check(Dataset(X, y2, "classification", ("a", "b", "c"), "t", ("n", "y"))) is None
    assert balance_check(load_builtin("diabetes")) is None
    # Three classes: an even share is 33%, so a class with 15% (under 16.7%) is flagged.
    y3 = np.r_[np.zeros(450, int), np.ones(400, int), np.full(150, 2)]
    three = balance_check(Dataset(X, y3, "classification", ("a", "b", "c"), "t", ("p", "q", "r")))
    assert three is not None and three.value == pytest.approx(0.15)


def test_leak_test_uses_a_bounded_sample_and_reports_progress():
    rng = np.random.default_rng(3)
    n = 50_000
    y = rng.integers(0, 2, n)
    X = np.c_[rng.normal(size=n), y + rng.normal(0, 0.01, n)]
    seen = []
    scores = single_column_scores(Dataset(X, y, "classification", ("noise", "copy"), "t", ("a", "b")),
                                  max_rows=2000, on_progress=lambda f, m: seen.append(f))
    assert scores["column"].tolist() == ["noise", "copy"] and scores["score"].iloc[1] == 1.0
    assert scores["score"].iloc[0] == pytest.approx(0.5, abs=0.05)  # noise: a coin's balanced accuracy
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == 3
