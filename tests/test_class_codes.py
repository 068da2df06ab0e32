"""Classes as numbers (lecture 5.1, issue 15 item 7): the middle-class artifact, checked on data
whose answer is known by construction."""
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score
from streamlit.testing.v1 import AppTest

from core.diagnoses.class_codes import CLASSES, Config, make_data, run
from tests.conftest import plain


def test_data_is_what_it_says():
    as_number, as_classes = make_data(Config(), seed=0)
    assert np.array_equal(as_number.X, as_classes.X) and np.array_equal(as_number.y, as_classes.y.astype(np.float32))
    counts = np.bincount(as_classes.y)
    assert counts.tolist() == [200, 200, 200]
    means = [as_classes.X[as_classes.y == k].mean(axis=0)[0] for k in range(3)]
    assert means[0] < means[2] < means[1]  # A and C overlap on the left, B far right


def test_the_artifact_exists_even_for_a_linear_model():
    # Independent reference: scikit-learn's least squares on the index vs multinomial logistic regression.
    as_number, as_classes = make_data(Config(), seed=0)
    X, y = as_classes.X, as_classes.y
    reg = np.clip(np.rint(LinearRegression().fit(X, y).predict(X)), 0, 2).astype(int)
    clf = LogisticRegression(max_iter=1000).fit(X, y).predict(X)
    outer = y != 1
    assert np.mean(reg[outer] == 1) > 0.3 > 0.05 > np.mean(clf[outer] == 1)


def test_regression_calls_a_and_c_rows_b_and_the_classifier_does_not():
    res = run(None, None, Config(seeds=3, steps=200))
    per = res.per_seed
    mse = per[per["run"] == "index_mse"]["middle_share"]
    hot = per[per["run"] == "one_hot"]["middle_share"]
    assert (mse > 0.3).all() and (hot < 0.1).all()  # holds for every seed, not only on average
    assert res.findings.middle.winner == "one_hot" and res.findings.middle.p_value < 0.05
    assert "called" in res.verdict.text and "which is B" in res.verdict.text
    # The shares come from the predictions table (lab seed) as a user could recount them.
    p = res.predictions[res.predictions["run"] == "index_mse"]
    outer = p["true"] != "B"
    first = per[(per["run"] == "index_mse")].iloc[0]
    assert np.mean(p.loc[outer, "predicted"] == "B") == pytest.approx(first["middle_share"])
    assert accuracy_score(p["true"], p["predicted"]) == pytest.approx(first["val_accuracy"])


def test_well_separated_classes_show_no_artifact():
    res = run(None, None, Config(overlap=8.0, seeds=2, steps=200))
    assert res.findings.middle.winner is None or res.summary.set_index("run").at["index_mse", "middle_share"] < 0.1
    assert set(res.predictions["predicted"]) <= set(CLASSES)


@pytest.mark.parametrize("bad", [dict(rows_per_class=5), dict(steps=0), dict(lr=-1.0), dict(seeds=0)])
def test_bad_configs_raise(bad):
    with pytest.raises(ValueError):
        run(None, None, Config(**bad))


def test_loss_page_runs_the_demonstration_on_request():
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("app_pages/loss_function.py").run()
    n = len(at.get("vega_lite_chart"))
    at.toggle(key="loss_function_codes").set_value(True).run()
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == n + 1
    assert any("which is B" in plain(box.value) for box in at.info)
