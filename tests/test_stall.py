"""Gradient stall: detection on constructed curves, classification against torch's exact Hessian,
the lecture's toy network against its closed form, and AppTests of the page."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.data import load_builtin
from core.diagnoses.stall import (
    CRITICAL, OSCILLATION, SCENARIO, Config, detect_stalls, escape_profile, run, smooth, spectrum_histogram,
    stall_windows, thin, toy_map, toy_point, validate, window_drop,
)
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp
from core.train import TrainConfig, split_data, train

APP = "../app.py"
F64 = torch.float64


# --------------------------------------------------------------------------- detection
def test_smooth_is_a_trailing_mean():
    x = np.random.default_rng(0).normal(size=50)
    ref = np.array([x[max(0, i - 4): i + 1].mean() for i in range(50)])
    np.testing.assert_allclose(smooth(x, 5), ref, rtol=1e-12)


def test_window_drop_is_the_relative_fall_over_the_window():
    loss = np.array([4.0, 3.0, 2.0, 2.0, 3.0])
    drop = window_drop(loss, 2)
    assert np.isnan(drop[:2]).all()
    np.testing.assert_allclose(drop[2:], [(4 - 2) / 4, (3 - 2) / 3, (2 - 3) / 2], rtol=1e-12)


def test_stall_windows_merge_overlapping_windows():
    flat = np.zeros(20, dtype=bool)
    flat[[5, 6, 7, 15]] = True
    assert stall_windows(flat, 3) == [(2, 7), (12, 15)]
    flat[10] = True  # window [7, 10] touches the first span: merged
    assert stall_windows(flat, 3) == [(2, 10), (12, 15)]


def _constructed_run() -> pd.DataFrame:
    """A linear fall to 0.5 (steps 0-199), a plateau with |g| = 1e-5 (200-499), a fall to 0.3
    (500-699), then a bouncing loss with |g| = 1 and cos = -1 (700-999)."""
    t = np.arange(1000)
    loss = np.where(t < 200, 1 - 0.5 * t / 200, 0.5)
    loss = np.where(t >= 500, 0.5 - 0.2 * (t - 500) / 200, loss)
    loss = np.where(t >= 700, 0.3 + 1e-4 * (-1.0) ** t, loss)
    grad = np.where((t >= 200) & (t < 500), 1e-5, 1.0)
    cos = np.where(t >= 700, -1.0, 1.0)
    return pd.DataFrame({"step": t, "loss": loss, "grad_norm": grad, "grad_cos": cos})


def test_detect_stalls_finds_the_plateau_and_the_bounce():
    # Closed form with window 100, eps 1%, a 10-step trailing mean (lag 4.5 steps): the plateau's
    # first flat step is where the smoothed loss 100 steps back is below 0.5 / 0.99 (about step
    # 303, window start 203); its last is where the fall into step 500+ reaches 1% (about 509).
    steps = _constructed_run()
    stalls = detect_stalls(steps, window=100, rel_eps=0.01, grad_threshold=0.05)
    assert list(stalls["kind"]) == [CRITICAL, OSCILLATION]
    first, second = stalls.iloc[0], stalls.iloc[1]
    assert 198 <= first["start"] <= 208 and 505 <= first["end"] <= 512
    assert first["grad_median"] == pytest.approx(1e-5)
    assert 698 <= second["start"] <= 708 and second["end"] == 999
    assert second["cos_mean"] == pytest.approx(-1.0, abs=1e-12)
    assert second["grad_median"] == pytest.approx(1.0)
    assert {"smooth_loss", "window_drop", "flat"} <= set(steps.columns)


def test_thin_keeps_first_and_last_rows():
    frame = pd.DataFrame({"a": range(10_001)})
    out = thin(frame, 4000)
    assert len(out) <= 4001 and out["a"].iloc[0] == 0 and out["a"].iloc[-1] == 10_000
    assert thin(frame.head(10), 4000) is not None and len(thin(frame.head(10), 4000)) == 10


# --------------------------------------------------------------------------- curvature helpers
def test_escape_profile_on_a_quadratic_saddle_is_exact():
    A = torch.tensor([[-1.0, 0.0], [0.0, 2.0]], dtype=F64)
    f = lambda t: 0.5 * t @ A @ t  # noqa: E731
    prof = escape_profile(f, torch.zeros(2, dtype=F64), np.array([1.0, 0.0]), -1.0, n=11)
    np.testing.assert_allclose(prof["loss"], -0.5 * prof["t"] ** 2, atol=1e-14)
    np.testing.assert_allclose(prof["quadratic"], prof["loss"], atol=1e-14)
    assert prof["t"].iloc[-1] == pytest.approx(-prof["t"].iloc[0])


def test_spectrum_histogram_counts_and_signs():
    eigs = np.array([-2.0, -1.0, -1e-3, 0.0, 0.0, 1e-9, 3.0, 4.0, 1e-2])
    h = spectrum_histogram(eigs, tolerance=1e-6, bins_per_side=5)
    assert h["count"].sum() == len(eigs)
    by_sign = h.groupby("sign")["count"].sum()
    assert by_sign.to_dict() == {"negative": 3, "positive": 3, "zero": 3}
    assert (h["bin_start"] < h["bin_end"]).all() and (np.diff(h["bin_start"]) > 0).all()
    # Every eigenvalue lies in a bin of its own sign.
    for e in eigs:
        inside = h[(h["bin_start"] <= e) & (e <= h["bin_end"])]
        sign = "zero" if abs(e) <= 1e-6 else ("negative" if e < 0 else "positive")
        assert sign in set(inside["sign"])


# --------------------------------------------------------------------------- the stall scenario
@pytest.fixture(scope="module")
def scenario():
    return run(load_builtin("moons"), LabSetup(), Config(scenario=True))


def test_scenario_finds_a_saddle_then_a_minimum_or_flat_point(scenario):
    points = scenario.points
    saddles = scenario.stalls[(scenario.stalls["kind"] == CRITICAL) & (scenario.stalls["point_kind"] == "saddle point")]
    assert len(saddles) >= 1
    assert (saddles["eig_min"] < 0).all()
    first_saddle = points[points["kind"] == "saddle point"].iloc[0]
    later = points[points["step"] > first_saddle["step"]]
    assert later["kind"].isin(["local minimum", "flat (degenerate)"]).any()
    assert points.iloc[-1]["point"].startswith("end")
    assert scenario.verdict.kind == "warning" and "saddle point" in scenario.verdict.text
    assert "Saddle escape" in scenario.verdict.advice


def _reference_scenario_loss(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The scenario's 2 -> 1 -> 1 -> 1 tanh chain written out by hand (nn.Sequential parameter order).
    w1, b1, w2, b2, w3, b3 = theta[0:2], theta[2], theta[3], theta[4], theta[5], theta[6]
    h = torch.tanh(X @ w1 + b1)
    h = torch.tanh(w2 * h + b2)
    return ((w3 * h + b3 - y) ** 2).mean()


def test_scenario_numbers_match_torch_exact_hessian(scenario):
    # Re-train the scenario independently and recompute every classified point with
    # torch.autograd.functional.hessian + numpy eigvalsh on a hand-written loss.
    sc = SCENARIO
    assert sc.hidden == (1, 1)
    split = split_data(load_builtin(sc.dataset, seed=sc.seed), "standard", 0.2, sc.seed)
    model = build_mlp(ModelSpec(hidden=sc.hidden, activation=sc.activation, init_scale=sc.init_scale), 2, 1, sc.seed)
    hist = train(model, split, TrainConfig(optimizer=sc.optimizer, lr=sc.lr, max_steps=sc.steps,
                                           schedule=sc.schedule, seed=sc.seed, snapshot_every=Config().window // 2))
    X, y = torch.as_tensor(split.X_train, dtype=F64), torch.as_tensor(split.y_train, dtype=F64)
    for row in scenario.points.itertuples():
        theta = hist.final_params if row.point.startswith("end") else hist.snapshots[row.step]
        theta = torch.as_tensor(theta, dtype=F64)
        H = torch.autograd.functional.hessian(lambda t: _reference_scenario_loss(t, X, y), theta).numpy()
        eigs = np.linalg.eigvalsh(H)
        t = theta.clone().requires_grad_(True)
        g = torch.autograd.grad(_reference_scenario_loss(t, X, y), t)[0]
        assert row.loss == pytest.approx(float(_reference_scenario_loss(theta, X, y)), rel=1e-10)
        assert row.grad_norm == pytest.approx(float(g.norm()), rel=1e-8, abs=1e-12)
        assert row.eig_min == pytest.approx(eigs[0], rel=1e-8, abs=1e-10)
        assert row.eig_max == pytest.approx(eigs[-1], rel=1e-8)
        spectrum = scenario.spectra[scenario.spectra["point"] == row.point]["eigenvalue"].to_numpy()
        np.testing.assert_allclose(spectrum, eigs, rtol=1e-7, atol=1e-10)
        assert row.neg_share == pytest.approx(np.mean(eigs < -row.tolerance))
        assert row.min_ratio == pytest.approx(np.mean(eigs > row.tolerance))


def test_scenario_escape_direction_lowers_the_loss(scenario):
    saddle = scenario.points[scenario.points["kind"] == "saddle point"].iloc[0]
    prof = scenario.escape[scenario.escape["point"] == saddle["point"]]
    at_zero = prof.iloc[len(prof) // 2]
    assert at_zero["t"] == pytest.approx(0.0, abs=1e-12)
    assert at_zero["loss"] == pytest.approx(saddle["loss"], rel=1e-10)
    assert prof["loss"].min() < saddle["loss"] * 0.98  # visibly lower along u
    # Near t = 0 the quadratic model L0 + g.u t + lambda_min t^2 / 2 fits the real loss.
    near = prof.iloc[len(prof) // 2 - 1: len(prof) // 2 + 2]
    np.testing.assert_allclose(near["loss"], near["quadratic"], rtol=2e-3)


# --------------------------------------------------------------------------- lab runs
@pytest.fixture(scope="module")
def default_run():
    return run(load_builtin("moons"), LabSetup(), Config())


def test_default_run_finds_an_oscillation_with_gradients_pointing_back(default_run):
    osc = default_run.stalls[default_run.stalls["kind"] == OSCILLATION]
    assert len(osc) >= 1 and osc["cos_mean"].min() < -0.5
    assert (osc["grad_median"] > default_run.grad_threshold).all()
    assert default_run.verdict.kind in ("warning", "info", "good")
    assert default_run.grad_threshold == pytest.approx(max(1e-4, 0.05 * default_run.steps["grad_norm"].max()))


def test_lanczos_extremes_agree_with_the_exact_spectrum(default_run):
    # 354 parameters: classify_point uses Lanczos (eigsh), the spectrum the dense Hessian.
    end = default_run.points.iloc[-1]
    spectrum = default_run.spectra[default_run.spectra["point"] == end["point"]]["eigenvalue"]
    assert len(spectrum) == default_run.n_params == 354
    assert end["eig_min"] == pytest.approx(spectrum.min(), rel=1e-4, abs=1e-8)
    assert end["eig_max"] == pytest.approx(spectrum.max(), rel=1e-4)


def test_learning_rate_far_too_large_reports_divergence_with_its_step():
    res = run(load_builtin("diabetes"), LabSetup(), Config(lr=100.0, steps=300, window=50))
    assert res.diverged_at is not None and res.verdict.kind == "problem"
    assert f"step {res.diverged_at}" in res.verdict.text
    assert res.points.empty or not res.points["point"].str.startswith("end").any()


def test_learning_rate_far_too_large_on_tanh_classification_does_not_crash():
    # tanh saturates instead of overflowing: no NaN, but the loss ends above where it began.
    res = run(load_builtin("moons"), LabSetup(), Config(lr=100.0, steps=300, window=50))
    assert res.diverged_at is None
    assert res.verdict.kind == "problem" or (res.stalls["kind"] == OSCILLATION).any()


def test_regression_and_minibatch_runs_work():
    res = run(load_builtin("diabetes"), LabSetup(), Config(lr=0.05, steps=300, window=50, batch_size=32))
    assert res.task == "regression" and len(res.points) >= 1
    assert any("Mini-batches" in n for n in res.notes)


@pytest.mark.parametrize("bad, message", [
    (dict(steps=1), "two steps"), (dict(lr=-1.0), "positive"), (dict(window=1000, steps=1000), "shorter"),
    (dict(rel_eps=0.0), "between 0 and 1"), (dict(window=10, steps=5000), "1/200"),
])
def test_impossible_configs_raise_plain_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        validate(Config(**bad))


def test_batch_larger_than_the_data_is_refused():
    with pytest.raises(ValueError, match="larger than the training split"):
        run(load_builtin("iris"), LabSetup(), Config(batch_size=1000, steps=100, window=20))


# --------------------------------------------------------------------------- the lecture's example
def lecture_hessian(w1, w2):
    return np.array([[2 * w2**2, 4 * w1 * w2 - 2], [4 * w1 * w2 - 2, 2 * w1**2]])


def test_toy_origin_matches_the_lecture():
    p = toy_point(0.0, 0.0)
    np.testing.assert_allclose(p.gradient, [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(p.hessian, [[0.0, -2.0], [-2.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(p.eigenvalues, [-2.0, 2.0], atol=1e-12)
    s = np.sqrt(0.5)
    u = p.escape_direction
    assert np.allclose(u, [s, s], atol=1e-12) or np.allclose(u, [-s, -s], atol=1e-12)
    np.testing.assert_allclose(np.abs(p.eigenvectors[:, 0]), [s, s], atol=1e-12)
    assert p.kind == "saddle point" and p.loss == 1.0
    assert len(p.arrow) == 2 and set(p.arrow["what"]) == {"escape direction"}


@pytest.mark.parametrize("w1, w2", [(0.3, -0.7), (1.5, 0.2), (-1.0, -1.0), (2.0, 0.5)])
def test_toy_point_matches_the_closed_form(w1, w2):
    p = toy_point(w1, w2)
    r = 1 - w1 * w2
    np.testing.assert_allclose(p.gradient, [-2 * w2 * r, -2 * w1 * r], atol=1e-12)
    np.testing.assert_allclose(p.hessian, lecture_hessian(w1, w2), atol=1e-12)
    np.testing.assert_allclose(p.eigenvalues, np.linalg.eigvalsh(lecture_hessian(w1, w2)), atol=1e-12)
    H = lecture_hessian(w1, w2)
    for j in range(2):  # each column is a unit eigenvector
        np.testing.assert_allclose(H @ p.eigenvectors[:, j], p.eigenvalues[j] * p.eigenvectors[:, j], atol=1e-12)
    expected = "flat (degenerate)" if abs(r) < 1e-12 else "not critical"  # the valley: eigenvalues 0 and 2(w1²+w2²)
    assert p.kind == expected
    if expected == "not critical":  # the arrow points down the gradient
        d = p.arrow[["x2", "y2"]].to_numpy()[0] - [w1, w2]
        np.testing.assert_allclose(d / np.linalg.norm(d), -p.gradient / np.linalg.norm(p.gradient), atol=1e-12)


def test_toy_map_marks_the_saddle_and_the_valley():
    cells, marks, valley = toy_map()
    assert len(cells) == 61 * 61
    origin = marks[(marks["x"] == 0) & (marks["y"] == 0)]
    assert origin["kind"].tolist() == ["saddle point"]
    rest = marks.drop(origin.index)
    np.testing.assert_allclose(rest["x"] * rest["y"], 1.0, atol=1e-12)
    assert set(rest["kind"]) == {"flat (degenerate)"}
    np.testing.assert_allclose(valley["x"] * valley["y"], 1.0, atol=1e-12)
    assert valley[["x", "y"]].abs().max().max() <= 2.0 + 1e-12


# --------------------------------------------------------------------------- the page
def _page():
    at = AppTest.from_file(APP, default_timeout=180).run()
    return at.switch_page("app_pages/stall.py").run()


def _texts(at, kind):
    return [e.value for e in getattr(at, kind)]


def _verdicts(at):
    return _texts(at, "success") + _texts(at, "warning") + _texts(at, "info") + _texts(at, "error")


def test_page_default_run_shows_verdict_and_charts():
    at = _page()
    assert not at.exception
    assert not at.error
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3  # training curves, spectrum, lecture surface
    assert any("Stalled at steps" in v or "No stall" in v for v in _verdicts(at))
    spec = json.loads(charts[0].proto.spec)
    assert "vconcat" in spec
    # The toy section: the origin is a saddle.
    assert any(v.startswith("Saddle point") for v in _texts(at, "warning"))
    at.number_input(key="stall_w1").set_value(1.0).run()
    at.number_input(key="stall_w2").set_value(1.0).run()
    assert not at.exception and any(v.startswith("Flat (degenerate)") for v in _texts(at, "info"))


def test_page_stall_scenario_calls_the_plateau_a_saddle():
    at = _page()
    at.radio(key="stall_source").set_value("scenario").run()
    assert not at.exception
    assert any("a saddle point (λ_min = -" in v for v in _texts(at, "warning"))
    assert len(at.get("vega_lite_chart")) >= 4  # + the escape plot


def test_page_with_uploaded_regression_csv():
    # Upload after opening the page (the diabetes test below picks its data before).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = x @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=120)
    csv = pd.DataFrame(np.column_stack([x, y]), columns=["a", "b", "c", "target"]).to_csv(index=False).encode()
    at = _page()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("data.csv", csv, "text/csv")).run()
    assert not at.exception and not at.error
    assert len(at.get("vega_lite_chart")) >= 3
    params = {m.label: m.value for m in at.metric}["Parameters"]
    assert params == "353"  # 3 inputs -> 16 -> 16 -> 1 output: 64 + 272 + 17
    assert _verdicts(at)


def test_page_learning_rate_100_shows_divergence_with_its_step():
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.sidebar.selectbox(key="lab_dataset").set_value("diabetes").run()
    at.switch_page("app_pages/stall.py").run()
    at.number_input(key="stall_lr").set_value(100.0).run()
    assert not at.exception
    errors = _texts(at, "error")
    assert any("diverged at step" in e for e in errors)
