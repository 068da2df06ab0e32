"""Batch-size diagnosis: sharpness measures against exact references, the noise-scale estimator
against per-example gradients, the interpolation's end points, and the page (AppTest)."""
import itertools

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn
from torch.func import functional_call, grad, vmap

from core.curvature import hessian_matrix, model_loss
from core.data import load_builtin
from core.diagnoses.batch_size import (
    FULL,
    Config,
    batch_gradient_fn,
    best_trade,
    epsilon_sharpness,
    gradient_noise_scale,
    load_state,
    make_verdict,
    parse_batch_sizes,
    resolve_sizes,
    run,
    unbiased_noise_estimates,
)
from core.lab import LabSetup, build_model
from core.models import ModelSpec
from core.train import make_loss, split_data

APP = "../app.py"
PAGE = "app_pages/batch_size.py"
SMALL = Config(batch_sizes=(8, 32, FULL), epochs=15, trace_probes=10, noise_batches=8)


@pytest.fixture(scope="module")
def moons_run():
    """A small sweep on 150 moons rows with an 8-unit MLP (42 parameters)."""
    data = load_builtin("moons", seed=0, n_samples=150)
    setup = LabSetup(model=ModelSpec(hidden=(8,)), seed=0)
    return data, setup, run(data, setup, SMALL)


def _trained(data, setup, result, b):
    split = split_data(data, "standard", SMALL.val_fraction, setup.seed)
    model = load_state(build_model(setup, split.n_features, split.n_outputs), result.states[b]).eval()
    return model, split, make_loss("auto", split.task, split.n_classes)


# --------------------------------------------------------------------------- sharpness
def test_lambda_max_of_trained_models_matches_exact_eigvalsh(moons_run):
    data, setup, result = moons_run
    assert list(result.sweep["status"]) == ["ok"] * 3
    for row in result.sweep.itertuples():
        model, split, loss_fn = _trained(data, setup, result, row.batch_size)
        f, theta = model_loss(model, loss_fn, split.X_train, split.y_train)
        exact = np.linalg.eigvalsh(hessian_matrix(f, theta))[-1]
        np.testing.assert_allclose(row.lambda_max, exact, rtol=1e-4)


def _box_max(A, x0, bound):
    """max of 0.5 x^T A x over the box x0 +- bound: a convex function peaks at a vertex."""
    return max(0.5 * (x0 + np.array(s) * bound) @ A @ (x0 + np.array(s) * bound)
               for s in itertools.product([-1.0, 1.0], repeat=len(x0)))


@pytest.mark.parametrize("seed", range(5))
def test_eps_sharpness_of_quadratic_at_zero_is_the_vertex_maximum(seed):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((3, 3))
    A = M @ M.T + 0.1 * np.eye(3)
    At = torch.tensor(A)
    eps = 1e-3
    top = np.linalg.eigh(A)[1][:, -1]
    s = epsilon_sharpness(lambda x: 0.5 * x @ At @ x, torch.zeros(3, dtype=torch.float64), eps=eps,
                          directions=(top,), n_random=4, seed=0)
    # f(0) = 0, so the measure is 100 * max f over the cube |x_i| <= eps.
    np.testing.assert_allclose(s.value, 100 * _box_max(A, np.zeros(3), eps * np.ones(3)), rtol=1e-6)
    assert np.all(np.abs(s.delta) <= eps * (1 + 1e-12))


def test_eps_sharpness_scales_the_box_with_the_weights_and_divides_by_one_plus_loss():
    rng = np.random.default_rng(7)
    M = rng.standard_normal((3, 3))
    A = M @ M.T
    At = torch.tensor(A)
    x0 = np.array([0.5, -2.0, 1.0])
    eps = 0.05
    bound = eps * (np.abs(x0) + 1)
    f0 = 0.5 * x0 @ A @ x0
    s = epsilon_sharpness(lambda x: 0.5 * x @ At @ x, torch.tensor(x0), eps=eps,
                          directions=(np.linalg.eigh(A)[1][:, -1],), n_random=4, seed=0)
    np.testing.assert_allclose(s.value, 100 * (_box_max(A, x0, bound) - f0) / (1 + f0), rtol=1e-6)
    np.testing.assert_allclose(s.loss, f0, rtol=1e-12)


def test_eps_sharpness_never_exceeds_the_box_maximum_in_higher_dimensions():
    # A local search: in 6-D it may stop at a lower vertex, but never above the true maximum.
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        M = rng.standard_normal((6, 6))
        A = M @ M.T
        s = epsilon_sharpness(lambda x, At=torch.tensor(A): 0.5 * x @ At @ x, torch.zeros(6, dtype=torch.float64),
                              eps=1e-2, n_random=2, seed=seed)
        best = 100 * _box_max(A, np.zeros(6), 1e-2 * np.ones(6))
        assert 0 < s.value <= best * (1 + 1e-9)


# --------------------------------------------------------------------------- noise scale
def _logistic_problem(n=60):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    y = (X[:, 0] + 0.7 * torch.randn(n, generator=gen, dtype=torch.float64) > 0).long()
    model = nn.Linear(3, 2).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p, x, t):
        return nn.functional.cross_entropy(functional_call(model, p, (x[None],)), t[None])

    per = vmap(grad(one), in_dims=(None, 0, 0))(params, X, y)
    G = torch.cat([per[k].reshape(n, -1) for k, _ in model.named_parameters()], dim=1).numpy()
    mean = G.mean(axis=0)
    exact_g2 = float(mean @ mean)
    exact_trace = float(((G - mean) ** 2).sum(axis=1).mean())  # tr of the per-example covariance
    return model, X.numpy(), y.numpy(), G, exact_g2, exact_trace


def test_unbiased_estimates_recover_exact_values_from_exact_expectations():
    _, _, _, _, g2, trace = _logistic_problem()
    # Batches drawn with replacement: E|G_B|^2 = |G|^2 + tr(Sigma) / B exactly.
    est_g2, est_trace = unbiased_noise_estimates(g2 + trace / 4, g2 + trace / 40, 4, 40)
    np.testing.assert_allclose([est_g2, est_trace], [g2, trace], rtol=1e-10)


def test_batch_gradient_is_the_mean_of_per_example_gradients():
    model, X, y, G, _, _ = _logistic_problem()
    idx = np.array([3, 3, 17, 41, 0])  # repeated rows count twice, as in sampling with replacement
    got = batch_gradient_fn(model, nn.functional.cross_entropy, X, y)(idx)
    np.testing.assert_allclose(got, G[idx].mean(axis=0), atol=1e-12)


def test_noise_scale_estimate_matches_per_example_computation():
    model, X, y, _, g2, trace = _logistic_problem()
    est = gradient_noise_scale(batch_gradient_fn(model, nn.functional.cross_entropy, X, y), len(X), 2, 30,
                               n_batches=2000, seed=0)
    # Monte Carlo: about 3.5% standard error on B_simple at 2,000 batch pairs (measured over seeds).
    np.testing.assert_allclose(est.grad_sq, g2, rtol=0.1)
    np.testing.assert_allclose(est.trace_sigma, trace, rtol=0.1)
    np.testing.assert_allclose(est.b_simple, trace / g2, rtol=0.12)


# --------------------------------------------------------------------------- interpolation and sweep
def test_interpolation_passes_through_both_solutions(moons_run):
    data, setup, result = moons_run
    assert (result.interp_from, result.interp_to) == (8, result.n_train)
    ends = {}
    for b in (result.interp_from, result.interp_to):
        model, split, _ = _trained(data, setup, result, b)
        with torch.no_grad():  # float64 reference, independent of the diagnosis' evaluate()
            for name, X, y in (("train", split.X_train, split.y_train), ("validation", split.X_val, split.y_val)):
                out = model.double()(torch.as_tensor(X, dtype=torch.float64))
                ends[b, name] = float(nn.functional.cross_entropy(out, torch.as_tensor(y)))
    frame = result.interpolation.set_index(["alpha", "split"])["loss"]
    for name in ("train", "validation"):
        np.testing.assert_allclose(frame[0.0, name], ends[result.interp_from, name], atol=1e-5)
        np.testing.assert_allclose(frame[1.0, name], ends[result.interp_to, name], atol=1e-5)
    sweep = result.sweep.set_index("batch_size")
    np.testing.assert_allclose(frame[0.0, "train"], sweep.loc[8, "train_loss"], atol=1e-5)
    np.testing.assert_allclose(frame[1.0, "validation"], sweep.loc[result.n_train, "val_loss"], atol=1e-5)
    assert frame.index.get_level_values("alpha").min() == -0.5 and frame.index.get_level_values("alpha").max() == 1.5


def test_sweep_counts_updates_and_times(moons_run):
    _, _, result = moons_run
    sweep = result.sweep.set_index("batch_size")
    n = result.n_train
    assert n == 120
    np.testing.assert_array_equal(sweep["updates_per_epoch"], [15, 4, 1])  # ceil(120 / b)
    np.testing.assert_array_equal(sweep["updates"], [15 * 15, 15 * 4, 15])
    np.testing.assert_allclose(sweep["seconds_per_epoch"], sweep["seconds_per_update"] * sweep["updates_per_epoch"])
    np.testing.assert_allclose(sweep["gap"], sweep["train_metric"] - sweep["val_metric"])
    assert np.all(sweep["hessian_trace"] > 0) and np.all(sweep["eps_sharpness"] > 0)
    assert len(result.noise) == SMALL.noise_points and result.noise_batches == (8, n)


def test_same_updates_budget_gives_every_size_the_same_steps():
    data = load_builtin("moons", seed=0, n_samples=100)
    res = run(data, LabSetup(model=ModelSpec(hidden=(4,))), Config(batch_sizes=(10, FULL), same_updates=True,
                                                                   updates=25, trace_probes=4, noise_batches=2))
    np.testing.assert_array_equal(res.sweep["updates"], [25, 25])
    np.testing.assert_array_equal(res.sweep["epochs"], [4, 25])  # 8 updates per epoch at batch 10


def test_batch_norm_model_is_measured_in_eval_mode_and_interpolates_exactly():
    data = load_builtin("moons", seed=0, n_samples=100)
    setup = LabSetup(model=ModelSpec(hidden=(6,), batch_norm=True))
    res = run(data, setup, Config(batch_sizes=(10, FULL), epochs=4, trace_probes=4, noise_batches=2))
    assert list(res.sweep["status"]) == ["ok", "ok"]
    # alpha 0 and 1 load the two trained models, running statistics included.
    frame = res.interpolation.set_index(["alpha", "split"])["loss"]
    sweep = res.sweep.set_index("batch_size")
    np.testing.assert_allclose(frame[0.0, "train"], sweep.loc[10, "train_loss"], rtol=1e-6)
    np.testing.assert_allclose(frame[1.0, "validation"], sweep.loc[80, "val_loss"], rtol=1e-6)
    with pytest.raises(ValueError, match="at least two rows"):
        run(data, setup, Config(batch_sizes=(79, FULL), epochs=1))  # 80 = 79 + 1


def test_regression_dataset_runs_with_r2():
    data = load_builtin("diabetes")
    res = run(data, LabSetup(model=ModelSpec(hidden=(4,))), Config(batch_sizes=(32, FULL), epochs=3,
                                                                   trace_probes=4, noise_batches=2))
    assert res.metric == "R^2"
    assert np.isfinite(res.sweep[["val_metric", "lambda_max", "eps_sharpness"]].to_numpy()).all()


def test_divergence_is_reported_with_its_step():
    data = load_builtin("diabetes")
    res = run(data, LabSetup(model=ModelSpec(hidden=(4,))), Config(batch_sizes=(8, FULL), epochs=3,
                                                                   optimizer="sgd", lr=100.0))
    status = res.sweep.set_index("batch_size")["status"]
    assert status.loc[8].startswith("diverged at step ")
    assert res.verdict.kind == "problem" and "diverged at step" in res.verdict.text
    assert res.interpolation.empty and res.notes


def test_batch_sizes_are_parsed_and_checked_against_the_split():
    assert parse_batch_sizes("8, 32 full") == (8, 32, FULL)
    assert parse_batch_sizes("auto") == () and resolve_sizes(Config(), 320) == [8, 32, 128, 320]
    with pytest.raises(ValueError, match="whole numbers"):
        parse_batch_sizes("8, big")
    with pytest.raises(ValueError, match="larger than the training split"):
        resolve_sizes(Config(batch_sizes=(8, 500)), 320)
    with pytest.raises(ValueError, match="two different"):
        resolve_sizes(Config(batch_sizes=(320, FULL)), 320)
    assert resolve_sizes(Config(batch_sizes=(128, 8, FULL)), 320) == [8, 128, 320]
    with pytest.raises(ValueError, match="epoch"):
        run(load_builtin("moons"), LabSetup(), Config(epochs=0))


def test_best_trade_is_the_fastest_within_tolerance_of_the_best_metric():
    import pandas as pd

    sweep = pd.DataFrame({"batch_size": [8, 32, 128, 320], "val_metric": [0.97, 0.965, 0.90, 0.99],
                          "train_seconds": [4.0, 1.0, 0.3, 0.5], "status": ["ok", "ok", "ok", "diverged at step 3"]})
    assert best_trade(sweep, 0.01) == 32  # 320 failed; 128 is fast but 0.07 worse
    assert best_trade(sweep, 0.1) == 128
    full = sweep.assign(label=sweep["batch_size"].astype(str), seconds_per_epoch=0.01, updates=100, gap=0.01,
                        train_loss=0.1, lambda_max=[1.0, 2.0, 3.0, np.nan], eps_sharpness=0.1)
    verdict = make_verdict(full, "accuracy", 40.0, Config(metric_tolerance=0.01))
    assert verdict.kind == "warning"  # one run failed
    assert "Batch 32 is the best trade" in verdict.text and "4.0x faster than batch 8" in verdict.text
    assert "lambda_max 3 vs 1" in verdict.text and "batch 320: diverged at step 3" in verdict.text


# --------------------------------------------------------------------------- page
def _page(at):
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _app():
    return AppTest.from_file(APP, default_timeout=180)


def test_page_default_sweep_shows_verdict_and_charts():
    at = _page(_app().run())
    assert "best trade" in at.success[0].value
    assert len(at.get("vega_lite_chart")) == 4
    assert at.dataframe[0].value["batch size"].tolist() == ["8", "32", "128", "320 (full)"]


def test_page_rejects_a_batch_larger_than_the_split_with_a_message():
    at = _page(_app().run())
    at.text_input(key="batch_size_sizes").set_value("8, 5000")
    at.button[0].click().run()
    assert not at.exception
    assert "larger than the training split" in at.error[0].value


def _csv() -> bytes:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=80)
    return ("a,b,c,target\n" + "".join(f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{t:.4f}\n" for r, t in zip(X, y))).encode()


def _upload(at):
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("lin.csv", _csv(), "text/csv")).run()
    return at


def test_page_with_uploaded_regression_csv():
    at = _page(_upload(_app().run()))  # the automatic spread fits the 64 training rows: 8, 32, full
    assert at.dataframe[0].value["batch size"].tolist() == ["8", "32", "64 (full)"]
    assert "R^2" in at.success[0].value
    assert len(at.get("vega_lite_chart")) == 4


def test_page_upload_after_switching_to_the_page():
    at = _upload(_page(_app().run()))
    assert not at.exception
    assert at.dataframe[0].value["batch size"].tolist() == ["8", "32", "64 (full)"]
    assert len(at.get("vega_lite_chart")) == 4


def test_page_same_updates_variant():
    at = _page(_app().run())
    at.text_input(key="batch_size_sizes").set_value("16, full")
    at.radio(key="batch_size_budget").set_value("same updates")
    at.number_input(key="batch_size_updates").set_value(50)
    at.button[0].click().run()
    assert not at.exception
    assert at.dataframe[0].value["updates"].tolist() == [50, 50]
    assert len(at.get("vega_lite_chart")) == 4


def test_page_learning_rate_100_reports_divergence_step():
    at = _page(_app().run())  # moons with Adam: the loss explodes but stays finite
    at.number_input(key="batch_size_lr").set_value(100.0)
    at.number_input(key="batch_size_epochs").set_value(3)
    at.button[0].click().run()
    assert not at.exception
    assert "diverged at step" in at.error[0].value
