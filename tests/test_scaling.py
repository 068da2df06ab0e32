"""Feature scaling and batch norm: exact quadratic figures against numpy / torch / core.curvature,
the issue's "done when" numbers, and AppTest runs of the page."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split
from streamlit.testing.v1 import AppTest

from core.curvature import hessian_eigenvalues
from core.data import DataError, load_builtin
from core.diagnoses.scaling import (
    BatchConfig, LabConfig, SurfaceConfig, batch_stat_error, excess_after, gd_path, pick_columns,
    quadratic_loss, run_batches, run_lab, run_surface, steps_to_excess,
)
from core.lab import LabSetup
from core.train import split_data

SETUP = LabSetup()


@pytest.fixture(scope="module")
def scaled():
    return load_builtin("scaled_regression", seed=0)


@pytest.fixture(scope="module")
def surface(scaled):
    return run_surface(scaled, SETUP, SurfaceConfig())


def _problem(data):
    """The surface's regression rebuilt independently: raw and standardized designs, target."""
    X = data.X.astype(np.float64)
    y = data.y.astype(np.float64)
    y = (y - y.mean()) / y.std()
    Z = (X - X.mean(0)) / X.std(0)
    return np.column_stack([X, np.ones(len(X))]), np.column_stack([Z, np.ones(len(Z))]), y


# ----------------------------------------------------------------------------- error surface
def test_condition_numbers_are_exact_and_agree_with_core_curvature(scaled, surface):
    A_raw, A_std, y = _problem(scaled)
    for A, panel in ((A_raw, surface.raw), (A_std, surface.standardized)):
        ref = np.linalg.eigvalsh(2 * A.T @ A / len(A))
        np.testing.assert_allclose(panel.eigenvalues, ref, rtol=1e-9)
        # The same loss through torch autograd and core.curvature's exact Hessian.
        At, yt = torch.as_tensor(A), torch.as_tensor(y)
        eig = hessian_eigenvalues(lambda t: torch.mean((At @ t - yt) ** 2), torch.zeros(3, dtype=torch.float64))
        np.testing.assert_allclose(eig, ref, rtol=1e-6, atol=1e-9 * ref[-1])
        assert panel.condition == pytest.approx(ref[-1] / ref[0], rel=1e-9)
        assert panel.stable_lr == pytest.approx(2 / ref[-1], rel=1e-12)
    # Done when: the raw condition number is at least 100x the standardized one.
    assert surface.raw.condition >= 100 * surface.standardized.condition
    assert surface.standardized.condition < 1.01  # two independent uniform columns: almost round


def test_standardized_reaches_the_target_at_least_5x_sooner(scaled, surface):
    A_raw, A_std, y = _problem(scaled)
    best = np.mean((A_std @ np.linalg.lstsq(A_std, y, rcond=None)[0] - y) ** 2)
    assert surface.best_loss == pytest.approx(best, rel=1e-9)
    assert surface.target_loss == pytest.approx(best + 0.01 * (np.mean(y**2) - best), rel=1e-12)

    def explicit_gd(A, lr, limit):
        """Plain numpy gradient descent: the step count at which the loss first hits the target."""
        theta = np.zeros(3)
        for k in range(limit + 1):
            if np.mean((A @ theta - y) ** 2) <= surface.target_loss:
                return k
            theta = theta - lr * 2 * A.T @ (A @ theta - y) / len(A)
        return None

    std_steps = explicit_gd(A_std, surface.standardized.lr, 10_000)
    assert std_steps == surface.standardized.steps_to_target and 3 <= std_steps <= 50
    # Raw gradient descent at its own best stable rate has not got there after 100x as many steps.
    assert explicit_gd(A_raw, surface.raw.lr, 100 * std_steps) is None
    # Done when: >= 5x fewer steps (the exact raw count is about a billion).
    assert surface.raw.steps_to_target >= 5 * surface.standardized.steps_to_target
    assert surface.speedup == pytest.approx(surface.raw.steps_to_target / std_steps)
    assert "condition number" in surface.verdict.text and surface.verdict.kind == "warning"


def test_closed_form_path_matches_torch_sgd(scaled, surface):
    """The drawn path and loss curve equal torch.optim.SGD on the same linear model."""
    _, A_std, y = _problem(scaled)
    for A, panel in ((A_std, surface.standardized), (_problem(scaled)[0], surface.raw)):
        theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([theta], lr=panel.lr)
        At, yt = torch.as_tensor(A), torch.as_tensor(y)
        got = {}
        for k in range(31):
            got[k] = (theta.detach().numpy().copy(), float(torch.mean((At @ theta.detach() - yt) ** 2)))
            opt.zero_grad()
            torch.mean((At @ theta - yt) ** 2).backward()
            opt.step()
        path = panel.path.set_index("step")
        for k in (0, 1, 2, 10, 30):
            np.testing.assert_allclose(path.loc[k, ["w1", "w2", "b"]].to_numpy(float), got[k][0],
                                       rtol=1e-6, atol=1e-9)
            assert path.loc[k, "loss"] == pytest.approx(got[k][1], rel=1e-7)
        curve = panel.curve.set_index("step")
        early = [k for k in curve.index if k <= 30]
        assert len(early) >= 10
        for k in early:
            assert curve.loc[k, "loss"] == pytest.approx(got[k][1], rel=1e-7)


def test_steps_to_excess_is_exact_on_a_diagonal_quadratic():
    H = np.diag([2.0, 0.02])
    lr = 0.9 * 2 / 2.0
    theta0 = np.array([1.0, 1.0])
    # excess_k = 0.5 * (2 * 0.9^(2k)... ) with factors |1 - lr*lambda|: 0.8 and 0.982
    r = np.abs(1 - lr * np.diag(H))
    excess = lambda k: 0.5 * (2.0 * r[0] ** (2 * k) + 0.02 * r[1] ** (2 * k))  # noqa: E731
    np.testing.assert_allclose(excess_after(H, np.zeros(2), theta0, lr, [0, 1, 7, 100]),
                               [excess(k) for k in (0, 1, 7, 100)], rtol=1e-12)
    target = 1e-4
    k = steps_to_excess(H, np.zeros(2), theta0, lr, target)
    assert excess(k) <= target < excess(k - 1)
    np.testing.assert_allclose(gd_path(H, np.zeros(2), theta0, lr, [3])[0], theta0 * (1 - lr * np.diag(H)) ** 3)
    assert steps_to_excess(H, np.zeros(2), theta0, 1.01 * 2 / 2.0, target) is None  # unstable: never


def test_rate_above_two_over_lambda_max_diverges_with_its_step(scaled):
    res = run_surface(scaled, SETUP, SurfaceConfig(lr_fraction=1.05))
    A_raw, _, y = _problem(scaled)
    assert res.raw.diverged_at is not None and res.raw.steps_to_target is None
    # Independent check of the step: the loss first passes 1e6 x the start there.
    k = res.raw.diverged_at
    start = np.mean(y**2)
    thetas = gd_path(res.raw.hessian, res.raw.optimum, np.zeros(3), res.raw.lr, [k - 1, k])
    losses = quadratic_loss(A_raw, y, thetas)
    assert losses[0] <= 1e6 * start < losses[1]
    assert res.verdict.kind == "problem" and f"step {k}" in res.verdict.text


def test_lab_columns_and_a_classification_target():
    data = load_builtin("breast_cancer")
    std = data.X.std(axis=0)
    assert pick_columns(data) == (data.feature_names[np.argmax(std)], data.feature_names[np.argmin(std)])
    res = run_surface(data, SETUP, SurfaceConfig(source="lab"))
    assert res.raw.condition > 1e4 * res.standardized.condition
    assert any("class index" in n for n in res.notes)
    with pytest.raises(ValueError, match="two different columns"):
        run_surface(data, SETUP, SurfaceConfig(source="lab", x1="mean area", x2="mean area"))
    digits = load_builtin("digits")  # pixel_0_0 is blank in every image
    with pytest.raises(DataError, match="same value in every row"):
        run_surface(digits, SETUP, SurfaceConfig(source="lab", x1="pixel_0_0", x2="pixel_0_1"))


# ----------------------------------------------------------------------------- lab model
def test_scalers_are_fitted_on_the_training_split_only():
    data = load_builtin("moons", seed=0, n_samples=200)
    _, val_idx = train_test_split(np.arange(data.n_rows), test_size=0.2, random_state=0, stratify=data.y)
    assert np.array_equal(split_data(data, "none", 0.2, 0).X_val, data.X[val_idx])  # the same rows
    X = data.X.copy()
    X[val_idx] = X[val_idx] * 1000 + 5  # wild validation rows
    moved = dataclasses.replace(data, X=X)
    cfg = LabConfig(steps=5)
    a, b = run_lab(data, SETUP, cfg), run_lab(moved, SETUP, cfg)
    np.testing.assert_allclose(b.scaler_stats[["center", "scale"]].to_numpy(),
                               a.scaler_stats[["center", "scale"]].to_numpy(), rtol=1e-12)
    # ... while the validation rows did change what the runs report.
    assert not np.allclose(a.runs["final_val_metric"], b.runs["final_val_metric"])
    # The statistics are the training rows' own (sklearn's StandardScaler is the reference).
    train_rows = np.setdiff1d(np.arange(data.n_rows), val_idx)
    std = a.scaler_stats[a.scaler_stats["scaler"] == "standard"]
    np.testing.assert_allclose(std["center"], data.X[train_rows].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std["scale"], data.X[train_rows].std(axis=0), rtol=1e-5)


def test_batch_norm_brings_raw_inputs_close_to_standardized_ones():
    """Done when: with batch norm, raw inputs train close to standardized ones.

    breast_cancer mixes features in the thousands with ones in thousandths. Measured gap (Adam,
    0.01, 150 steps, batch 32): validation accuracy 0.939 with batch norm on raw inputs against 0.974
    standardized (gap -0.035); raw inputs without batch norm stay at 0.632 (gap -0.342).
    """
    res = run_lab(load_builtin("breast_cancer"), SETUP, LabConfig())
    r = res.runs.set_index("run")
    gap_bn = r.loc["raw + batch norm", "final_val_metric"] - r.loc["standard", "final_val_metric"]
    gap_raw = r.loc["raw", "final_val_metric"] - r.loc["standard", "final_val_metric"]
    assert abs(gap_bn) <= 0.05
    assert gap_raw <= -0.2
    assert r.loc["raw + batch norm", "final_train_loss"] < 0.5 * r.loc["raw", "final_train_loss"]
    # Raw inputs are sharper at the start, so plain GD would need a far smaller rate.
    assert r.loc["raw", "lambda_max"] > 10 * r.loc["standard", "lambda_max"]
    np.testing.assert_allclose(r["stable_lr"], 2 / r["lambda_max"], rtol=1e-12)
    assert res.verdict.kind == "warning" and res.bn_verdict.kind == "good"


def test_lab_divergence_is_reported_with_its_step_and_regression_works():
    res = run_lab(load_builtin("moons"), SETUP, LabConfig(optimizer="sgd", lr=100.0, steps=30))
    assert res.runs["diverged_at"].notna().any()
    assert res.verdict.kind == "problem" and "diverged at step" in res.verdict.text
    reg = run_lab(load_builtin("diabetes"), SETUP, LabConfig(steps=10, lr=None))
    assert reg.metric == "R^2" and reg.baseline_loss == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(reg.runs["lr"], 0.5 * reg.runs["stable_lr"], rtol=1e-12)


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(steps=0), dict(batch_size=1), dict(batch_size=10_000),
                                 dict(optimizer="lbfgs"), dict(target_fraction=1.5)])
def test_impossible_lab_configs_are_refused(bad):
    with pytest.raises(ValueError):
        run_lab(load_builtin("moons", n_samples=100), SETUP, LabConfig(**bad))


# ----------------------------------------------------------------------------- batch size
def test_batch_statistics_stray_as_sampling_theory_says():
    z = np.random.default_rng(0).normal(3.0, 2.0, size=(2000, 4))
    for batch in (2, 32):
        mean_err, std_err = batch_stat_error(z, batch, n_batches=4000, seed=1)
        assert mean_err == pytest.approx(math.sqrt((1 / batch) * (2000 - batch) / 1999), rel=0.05)
    assert batch_stat_error(z, 2, 4000, 1)[1] > 3 * batch_stat_error(z, 32, 4000, 1)[1]


def test_tiny_batches_hurt_batch_norm():
    res = run_batches(load_builtin("moons"), SETUP, BatchConfig())
    r = res.runs.set_index("run")
    tiny, normal = r.loc["batch norm, batch 2"], r.loc["batch norm, batch 32"]
    assert tiny["eval_train_loss"] > 2 * normal["eval_train_loss"]
    # Training mode (batch of 2's own statistics) and evaluation mode (running averages) disagree far
    # more with the tiny batch.
    assert abs(tiny["train_mode_loss"] - tiny["eval_train_loss"]) > abs(
        normal["train_mode_loss"] - normal["eval_train_loss"])
    s = res.batch_stats.set_index("batch_size")
    np.testing.assert_allclose(s["mean_error"], s["expected_mean_error"], rtol=0.1)
    assert res.verdict.kind == "warning"


def test_a_last_batch_of_one_row_is_avoided():
    data = load_builtin("moons", n_samples=99)  # 79 training rows: batches of 2 leave one row over
    res = run_batches(data, SETUP, BatchConfig(steps=45, normal_batch=8))
    assert res.runs["diverged_at"].isna().all()
    assert any("single row" in n for n in res.notes)
    with pytest.raises(ValueError, match="smaller"):
        run_batches(data, SETUP, BatchConfig(tiny_batch=8, normal_batch=8))


# ----------------------------------------------------------------------------- page
APP = "../app.py"
CSV = ("size_m2,ratio,colour,label\n" + "".join(
    f"{800 + (i * 37) % 900},{((i * 13) % 50) / 1000:.3f},{'red' if i % 3 else 'blue'},"
    f"{'big' if (800 + (i * 37) % 900) / 1700 + ((i * 13) % 50) / 50 > 1.0 else 'small'}\n"
    for i in range(80))).encode()


def _page():
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app_pages/scaling.py").run()
    return at


def _texts(at):
    return " ".join(str(e.value) for kind in ("success", "warning", "info", "error") for e in getattr(at, kind))


def test_page_default_run_and_lab_columns():
    at = _page()
    assert not at.exception
    assert not at.error
    assert len(at.get("vega_lite_chart")) == 7
    assert "cut the condition number" in _texts(at)
    at.radio(key="scaling_source").set_value("lab").run()  # moons: x1 and x2
    assert not at.exception and not at.error
    assert at.selectbox(key="scaling_x1").value in ("x1", "x2")


def test_page_batch_norm_comparison_and_divergence():
    at = _page()
    at.number_input(key="scaling_tiny").set_value(4)
    at.number_input(key="scaling_b_steps").set_value(40)
    at.button(key="scaling_batch_train").click().run()
    assert not at.exception
    assert "batches of 4" in _texts(at)
    at.selectbox(key="scaling_optimizer").set_value("sgd")
    at.number_input(key="scaling_lr").set_value(100.0)
    at.number_input(key="scaling_steps").set_value(30)
    at.button(key="scaling_lab_train").click().run()
    assert not at.exception
    assert "diverged at step" in _texts(at)


@pytest.mark.parametrize("upload_first", [True, False])
def test_page_with_an_uploaded_csv(upload_first):
    at = AppTest.from_file(APP, default_timeout=180).run()
    if not upload_first:
        at.switch_page("app_pages/scaling.py").run()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("shop.csv", CSV, "text/csv")).run()
    if upload_first:
        at.switch_page("app_pages/scaling.py").run()
    assert not at.exception and not at.error
    at.radio(key="scaling_source").set_value("lab").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="scaling_x1").value == "size_m2"
    assert "class index" in _texts(at)


def test_page_without_an_uploaded_file_explains_and_keeps_the_builtin_surface():
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.switch_page("app_pages/scaling.py").run()
    assert not at.exception
    assert any("No file was uploaded" in e.value for e in at.error)
    assert "cut the condition number" in _texts(at)  # section 1 runs on the built-in set
