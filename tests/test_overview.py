"""Tests for core.overview: the per-feature table against pandas, and the scale sentence."""
import numpy as np
import pandas as pd
import pytest

from core.data import load_builtin, load_csv
from core.overview import feature_table, scale_spread, summary


def test_feature_table_matches_pandas_and_reports_missing_shares():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"big": rng.normal(5000, 800, 200), "small": rng.normal(0, 0.01, 200),
                       "colour": rng.choice(["red", "blue"], 200), "t": rng.integers(0, 2, 200)})
    df.loc[:19, "small"] = np.nan  # 20 of 200 rows: 10% missing, dropped when loading
    data = load_csv(df.to_csv(index=False).encode())
    table = feature_table(data).set_index("feature")
    kept = df.dropna()
    ref = kept[["big", "small"]].astype(np.float32).astype(np.float64)
    for col in ("big", "small"):
        assert table.loc[col, "min"] == ref[col].min() and table.loc[col, "max"] == ref[col].max()
        assert table.loc[col, "mean"] == pytest.approx(ref[col].mean(), rel=1e-9)
        assert table.loc[col, "std"] == pytest.approx(ref[col].std(ddof=0), rel=1e-9)
    assert table.loc["small", "missing"] == pytest.approx(0.10)
    assert table.loc["big", "missing"] == 0.0 and table.loc["colour=red", "missing"] == 0.0
    assert table.loc["colour=red", "mean"] == pytest.approx((kept["colour"] == "red").mean())
    sentence = scale_spread(feature_table(data))
    ratio = ref["big"].std(ddof=0) / ref["small"].std(ddof=0)
    assert sentence.startswith("Standard deviations range from 0.0") and "('small')" in sentence
    assert f"a ratio of {float(f'{ratio:.3g}'):,.0f} to 1." in sentence


def test_builtin_tables_and_summary():
    iris = feature_table(load_builtin("iris"))
    assert list(iris.columns) == ["feature", "min", "max", "mean", "std", "missing"]
    assert iris["missing"].eq(0).all() and iris["min"].iloc[0] == pytest.approx(4.3)
    assert scale_spread(iris.iloc[:1]) is None
    # Review C: "a ratio of 1.00 to 1 ... shows what a wide spread does" on features of one scale.
    alike = pd.DataFrame({"feature": ["a", "b"], "std": [1.0, 1.2]})
    assert "share about one scale" in scale_spread(alike) and "ratio" not in scale_spread(alike)
    assert summary(load_builtin("iris")).set_index("what").loc["rows", "value"] == "150"
