"""Gradient stall: detection on constructed records, the issue-12 defects, scenarios whose answers are
known by construction, properties over seeds and configs, classification against torch's exact
Hessian and scikit-learn, the lecture's toy network against its closed form, and AppTests."""
import doctest
import json
import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression
from streamlit.testing.v1 import AppTest

import core.diagnoses.stall as stall_module
from core.curvature import KINDS
from core.data import Dataset, load_builtin
from core.diagnoses.words import num
from core.diagnoses.stall import (
    CRITICAL, NOT_CLASSIFIED, NOT_CRITICAL, NOT_CRITICAL_KINDS, OSCILLATION, SCENARIO, SMALL_STEPS, STALL_KINDS,
    UNCLEAR, VALLEY_MINIMUM, Config, Findings, check_work, detect_stalls, display_points, display_stalls,
    escape_profile, make_verdict, run, spectrum_histogram, thin, toy_map, toy_point, validate,
)
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp
from core.rules import CRITICAL_GAIN, critical_test
from core.runs import prepare_split
from core.train import TrainConfig, split_data, train

APP = "../app.py"
F64 = torch.float64


def test_doctests():
    assert doctest.testmod(stall_module).failed == 0


# --------------------------------------------------------------------------- detection from a record
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


def test_detect_stalls_finds_the_plateau_and_the_bounce_by_the_log_rules():
    # Closed form with window 100, eps 1%, a 10-step trailing mean (lag 4.5 steps): the plateau's
    # first flat step is where the smoothed loss 100 steps back is below 0.5 / 0.99 (about step
    # 303, span start 203); its last is where the fall into step 500+ reaches 1% (about 509).
    steps = _constructed_run()
    stalls = detect_stalls(steps, window=100, rel_eps=0.01)
    assert list(stalls["kind"]) == [CRITICAL, OSCILLATION]
    assert set(stalls["evidence"]) == {"log"}
    first, second = stalls.iloc[0], stalls.iloc[1]
    assert 198 <= first["start"] <= 208 and 505 <= first["end"] <= 512
    assert first["grad_median"] == pytest.approx(1e-5) and first["grad_early"] == pytest.approx(1.0)
    assert 698 <= second["start"] <= 708 and second["end"] == 999
    assert second["cos_mean"] == pytest.approx(-1.0, abs=1e-12)
    assert list(steps.columns) == ["step", "loss", "grad_norm", "grad_cos"]  # the input is not changed


def test_detect_stalls_reads_a_log_recorded_every_tenth_step_and_without_gradients():
    steps = _constructed_run().iloc[::10].reset_index(drop=True)
    stalls = detect_stalls(steps, window=100, rel_eps=0.01)
    assert len(stalls) == 2 and 190 <= stalls["start"].iloc[0] <= 210 and 500 <= stalls["end"].iloc[0] <= 520
    loss_only = detect_stalls(steps[["step", "loss"]], window=100, rel_eps=0.01)
    assert len(loss_only) == 2 and set(loss_only["kind"]) == {"plateau"}  # no |g|: the kinds cannot be told


def test_a_slowly_falling_noisy_loss_is_never_a_stall():
    # Issue 12 in miniature: a mini-batch loss falling 62% over 1,000 steps under heavy noise. The
    # old detector merged every noisy flat window into one stall "22-975 ... the loss is flat".
    rng = np.random.default_rng(0)
    t = np.arange(1000)
    loss = 0.1929 * np.exp(-t * np.log(0.1929 / 0.0723) / 1000) * (1 + 0.4 * rng.standard_normal(1000))
    steps = pd.DataFrame({"step": t, "loss": np.abs(loss), "grad_norm": 1.0})
    assert detect_stalls(steps, window=100, rel_eps=0.01).empty


def test_no_two_stalls_share_a_step_and_none_fell_more_than_allowed():
    rng = np.random.default_rng(1)
    for seed in range(5):
        t = np.arange(2000)
        loss = np.r_[np.linspace(1, 0.5, 500), np.full(700, 0.5), np.linspace(0.5, 0.2, 300), np.full(500, 0.2)]
        loss = loss * (1 + 0.002 * rng.standard_normal(2000))
        stalls = detect_stalls(pd.DataFrame({"step": t, "loss": loss}), window=100, rel_eps=0.01)
        assert len(stalls) == 2
        assert (stalls["start"].iloc[1:].to_numpy() > stalls["end"].iloc[:-1].to_numpy()).all()
        assert (stalls["rel_drop"] <= 0.01 * np.maximum(1, stalls["steps"] / 100)).all()


def test_thin_keeps_first_and_last_rows():
    frame = pd.DataFrame({"a": range(10_001)})
    out = thin(frame, 4000)
    assert len(out) <= 4001 and out["a"].iloc[0] == 0 and out["a"].iloc[-1] == 10_000
    assert len(thin(frame.head(10), 4000)) == 10


# --------------------------------------------------------------------------- curvature helpers
def test_escape_profile_on_a_quadratic_saddle_is_exact():
    A = torch.tensor([[-1.0, 0.0], [0.0, 2.0]], dtype=F64)
    f = lambda t: 0.5 * t @ A @ t  # noqa: E731
    prof = escape_profile(f, torch.zeros(2, dtype=F64), np.array([1.0, 0.0]), -1.0, n=11)
    np.testing.assert_allclose(prof["loss"], -0.5 * prof["t"] ** 2, atol=1e-14)
    np.testing.assert_allclose(prof["quadratic"], prof["loss"], atol=1e-14)


def test_spectrum_histogram_counts_and_signs():
    eigs = np.array([-2.0, -1.0, -1e-3, 0.0, 0.0, 1e-9, 3.0, 4.0, 1e-2])
    h = spectrum_histogram(eigs, tolerance=1e-6, bins_per_side=5)
    assert h["count"].sum() == len(eigs)
    assert h.groupby("sign")["count"].sum().to_dict() == {"negative": 3, "positive": 3, "zero": 3}
    for e in eigs:
        inside = h[(h["bin_start"] <= e) & (e <= h["bin_end"])]
        sign = "zero" if abs(e) <= 1e-6 else ("negative" if e < 0 else "positive")
        assert sign in set(inside["sign"])


# --------------------------------------------------------------------------- scenarios known by construction
@pytest.fixture(scope="module")
def scenario():
    return run(load_builtin("moons"), LabSetup(), Config(scenario=True))


@pytest.fixture(scope="module")
def default_run():
    return run(load_builtin("moons"), LabSetup(), Config())


def test_small_init_deep_narrow_net_stalls_at_a_saddle(scenario):
    first = scenario.stalls.iloc[0]
    assert first["kind"] == CRITICAL and first["evidence"] == "curvature" and first["point_kind"] == "saddle point"
    assert first["start"] == 0 and first["eig_min"] < 0 < first["eig_max"]
    point = scenario.points.set_index("point").loc["S1"]
    assert point["critical"] and point["gain_share"] < CRITICAL_GAIN
    assert scenario.verdict.kind == "warning" and "a saddle point" in scenario.verdict.text
    assert "Saddle escape" in scenario.verdict.advice


def _reference_scenario_loss(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The scenario's 2 -> 1 -> 1 -> 1 tanh chain written out by hand (nn.Sequential parameter order).
    w1, b1, w2, b2, w3, b3 = theta[0:2], theta[2], theta[3], theta[4], theta[5], theta[6]
    h = torch.tanh(X @ w1 + b1)
    h = torch.tanh(w2 * h + b2)
    return ((w3 * h + b3 - y) ** 2).mean()


def test_scenario_numbers_match_torch_exact_hessian(scenario):
    # Re-train the scenario independently and recompute every judged point with
    # torch.autograd.functional.hessian + numpy eigvalsh on a hand-written loss.
    sc = SCENARIO
    split = split_data(load_builtin(sc.dataset, seed=sc.seed), "standard", 0.2, sc.seed)
    model = build_mlp(ModelSpec(hidden=sc.hidden, activation=sc.activation, init_scale=sc.init_scale), 2, 1, sc.seed)
    start = float(_reference_scenario_loss(torch.as_tensor(np.concatenate(
        [p.detach().double().reshape(-1).numpy() for p in model.parameters()])), *map(
        lambda a: torch.as_tensor(a, dtype=F64), (split.X_train, split.y_train))))
    hist = train(model, split, TrainConfig(optimizer=sc.optimizer, lr=sc.lr, max_steps=sc.steps,
                                           schedule=sc.schedule, seed=sc.seed, snapshot_every=Config().window // 2))
    X, y = torch.as_tensor(split.X_train, dtype=F64), torch.as_tensor(split.y_train, dtype=F64)
    assert scenario.start_loss == pytest.approx(start, rel=1e-5)
    for row in scenario.points.itertuples():
        theta = torch.as_tensor(hist.final_params if row.point == "end" else hist.snapshots[row.step], dtype=F64)
        H = torch.autograd.functional.hessian(lambda t: _reference_scenario_loss(t, X, y), theta).numpy()
        eigs = np.linalg.eigvalsh(H)
        t = theta.clone().requires_grad_(True)
        g = float(torch.autograd.grad(_reference_scenario_loss(t, X, y), t)[0].norm())
        assert row.loss == pytest.approx(float(_reference_scenario_loss(theta, X, y)), rel=1e-6)
        assert row.grad_norm == pytest.approx(g, rel=1e-5, abs=1e-9)
        assert row.eig_min == pytest.approx(eigs[0], rel=1e-3, abs=1e-6)
        assert row.eig_max == pytest.approx(eigs[-1], rel=1e-3)
        spectrum = scenario.spectra[scenario.spectra["point"] == row.label]["eigenvalue"].to_numpy()
        np.testing.assert_allclose(spectrum, eigs, rtol=1e-5, atol=1e-8)
        assert row.min_ratio == pytest.approx(np.mean(eigs > row.tolerance))
        # critical or not: |g|^2 / (2 max|lambda|) against 1e-4 x the start loss, from the reference numbers
        gain = g * g / (2 * max(abs(eigs[0]), abs(eigs[-1])))
        assert row.critical == (gain < CRITICAL_GAIN * start)


def test_scenario_escape_direction_lowers_the_loss(scenario):
    saddle = scenario.points[scenario.points["kind"] == "saddle point"].iloc[0]
    prof = scenario.escape[scenario.escape["point"] == saddle["label"]]
    at_zero = prof.iloc[len(prof) // 2]
    assert at_zero["t"] == pytest.approx(0.0, abs=1e-12)
    assert at_zero["loss"] == pytest.approx(saddle["loss"], rel=1e-10)
    assert prof["loss"].min() < saddle["loss"] * 0.98


def test_learning_rate_moderately_too_high_bounces_with_cosine_near_minus_one(default_run):
    # Full-batch SGD at lr 0.5 on moons sits at the edge of stability: the loss stops falling while
    # successive gradients point back and forth, and the gradient is not ~0 by the critical test.
    osc = default_run.stalls[default_run.stalls["kind"] == OSCILLATION]
    assert len(osc) >= 1 and (osc["cos_mean"] < -0.9).all() and (osc["evidence"] == "curvature").all()
    assert (osc["gain_share"] > CRITICAL_GAIN).all()
    assert default_run.verdict.kind == "warning" and "bouncing across a valley" in default_run.verdict.text
    assert "not a critical point" in default_run.verdict.text


def test_learning_rate_far_too_high_reports_divergence_with_its_step():
    res = run(load_builtin("diabetes"), LabSetup(), Config(lr=100.0, steps=300, window=50))
    assert res.diverged_at is not None and res.verdict.kind == "problem"
    assert f"diverged at step {res.diverged_at}" in res.verdict.text
    assert not (res.points["point"] == "end").any()


def test_converged_linear_regression_ends_at_a_minimum_with_a_tiny_gradient():
    # A linear model with squared error is a convex quadratic: full-batch GD converges to the one
    # minimum, whose loss scikit-learn's LinearRegression gives independently.
    setup = LabSetup(model=ModelSpec(hidden=()))
    data = load_builtin("diabetes")
    res = run(data, setup, Config(lr=0.1, steps=3000, window=200))
    split = prepare_split(data, setup)
    ref = LinearRegression().fit(split.X_train, split.y_train)
    mse = float(np.mean((ref.predict(split.X_train) - split.y_train) ** 2))
    end = res.points.set_index("point").loc["end"]
    assert end["loss"] == pytest.approx(mse, rel=1e-3)
    assert end["critical"] and end["kind"] == "local minimum" and end["gain_share"] < CRITICAL_GAIN
    assert res.verdict.text.startswith("Converged.") and res.verdict.kind == "good"


def test_the_point_kind_agrees_with_classify_point_when_critical_and_says_not_critical_otherwise(default_run):
    for row in default_run.points.itertuples():
        assert row.kind in KINDS
        assert (row.kind == NOT_CRITICAL) == (not row.critical)
        assert row.hessian_kind != NOT_CRITICAL
        if row.critical:
            assert row.kind == row.hessian_kind
    # and the test itself is core.rules.critical_test on the reported numbers
    for row in default_run.points.itertuples():
        assert critical_test(row.grad_norm, row.eig_min, row.eig_max, default_run.start_loss).critical == row.critical


# --------------------------------------------------------------------------- issue 12 on a real run
def _noisy_regression(n=6000, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    y = (np.sin(X[:, 0]) * 2 + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.3 * rng.normal(size=n)).astype(np.float32)
    return Dataset(X=X, y=y, task="regression", feature_names=tuple(f"f{i}" for i in range(8)), target_name="price",
                   name="synthetic")


def test_minibatch_regression_with_a_slowly_falling_noisy_loss_reports_no_stall():
    # The diamonds defect: SGD on batches of 32 lowers the loss by ~45% in 1,000 steps under heavy
    # batch noise; the old page said "Stalled at steps 33-999 ... the loss is flat".
    res = run(_noisy_regression(), LabSetup(), Config(lr=0.01, batch_size=32, max_train_rows=6000))
    loss = res.steps["loss"].to_numpy()
    assert loss[-100:].mean() < 0.7 * loss[:100].mean()  # it really fell
    assert res.stalls.empty
    assert res.verdict.text.startswith("No stall") and "flat" not in res.verdict.text


@pytest.mark.parametrize("name, setup, config", [
    ("moons", LabSetup(), Config(optimizer="adam", lr=0.01, steps=600)),
    ("iris", LabSetup(seed=1), Config(steps=600)),
    ("circles", LabSetup(seed=2), Config(lr=2.0, steps=600, window=60)),
    ("moons", LabSetup(seed=3, model=ModelSpec(hidden=(8, 8, 8), init_scale=0.1)), Config(steps=800)),
    ("diabetes", LabSetup(seed=4), Config(lr=0.05, batch_size=32, steps=600)),
    ("wine", LabSetup(seed=5), Config(optimizer="momentum", lr=0.3, steps=600, max_classified=0)),
])
def test_verdict_agrees_with_its_tables(name, setup, config):
    res = run(load_builtin(name), setup, config)
    text, stalls, points = res.verdict.text, res.stalls, res.points
    assert text.startswith("No stall") == stalls.empty or res.diverged_at is not None
    if len(stalls):
        assert "No stall" not in text
        assert (stalls["rel_drop"] <= config.rel_eps * np.maximum(1, stalls["steps"] / config.window)).all()
        assert set(stalls["kind"]) <= set(STALL_KINDS)
        judged = stalls["evidence"] == "curvature"
        not_critical = stalls.loc[judged, "point_kind"] == NOT_CRITICAL
        assert stalls.loc[judged & not_critical, "kind"].isin(NOT_CRITICAL_KINDS).all()
        assert (stalls.loc[judged & ~not_critical, "kind"] == CRITICAL).all()
        # the kinds agree with the cosines in the table: aligned = small steps, anti-aligned = oscillation
        assert (stalls.loc[stalls["kind"] == SMALL_STEPS, "cos_mean"] >= 0.9).all()
        assert (stalls.loc[stalls["kind"] == OSCILLATION, "cos_mean"].fillna(-1) < 0.9).all()
        assert (stalls.loc[~judged, "point_kind"] == NOT_CLASSIFIED).all()
    for kind in ("saddle point", "local minimum", "local maximum"):
        if f"a {kind}" in text:  # every saddle/minimum claim has critical_test passing
            assert ((points["kind"] == kind) & points["critical"]).any()
    assert (points["critical"] | (points["kind"] == NOT_CRITICAL)).all()
    if "not a critical point" in text or "not at a critical point" in text:
        assert (~points["critical"]).any()


# --------------------------------------------------------------------------- issue 17: tables and widgets
def test_unjudged_stalls_show_a_dash_and_not_classified_never_none(default_run):
    res = run(load_builtin("moons"), LabSetup(), Config(max_classified=0))
    assert len(res.stalls) and (res.stalls["point_kind"] == NOT_CLASSIFIED).all()
    shown = display_stalls(res.stalls)
    text = shown.to_csv(index=False)
    assert "None" not in text and "nan" not in text.lower() and "—" in text
    assert (shown["Hessian says"] == NOT_CLASSIFIED).all()
    assert "None" not in display_points(default_run.points).to_csv(index=False)


# --------------------------------------------------------------------------- bounds, stop, validation
def test_work_bound_refuses_the_heaviest_combinations_before_training():
    with pytest.raises(ValueError, match="too large for the page"):
        check_work(20_000, 50_000, 481)
    check_work(1000, 2000, 17_290)  # the largest model on digits' default rows passes
    digits = load_builtin("digits")
    big = LabSetup(model=ModelSpec(hidden=(64, 64, 64, 64)))
    with pytest.raises(ValueError, match="too large for the page"):
        run(digits, big, Config(steps=20_000, window=100))


def test_a_stop_during_the_curvature_phase_ends_the_run():
    class Stop(Exception):
        pass

    def on_progress(fraction, message):
        if message.startswith("curvature"):
            raise Stop

    with pytest.raises(Stop):
        run(load_builtin("moons"), LabSetup(), Config(steps=200, window=50), on_progress=on_progress)


@pytest.mark.parametrize("bad, message", [
    (dict(steps=1), "two steps"), (dict(lr=-1.0), "positive"), (dict(window=1000, steps=1000), "shorter"),
    (dict(rel_eps=0.0), "between 0 and 1"), (dict(window=10, steps=5000), "1/200"),
    (dict(max_train_rows=5), "at least 20 rows"),
])
def test_impossible_configs_raise_plain_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        validate(Config(**bad))


def test_batch_larger_than_the_data_is_refused():
    with pytest.raises(ValueError, match="larger than the training split"):
        run(load_builtin("iris"), LabSetup(), Config(batch_size=1000, steps=100, window=20))


def test_a_200k_row_upload_stays_far_under_2_gb(tmp_path):
    # Issue 19: the old page climbed to 5 GB during "curvature at end". A fresh interpreter, so
    # the peak resident memory is this run's alone (plus imports).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200_000, 10))
    frame = pd.DataFrame(np.column_stack([X, X @ rng.normal(size=10) + 0.3 * rng.normal(size=200_000)]),
                         columns=[f"x{i}" for i in range(10)] + ["price"])
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    script = textwrap.dedent(f"""
        import resource
        import core
        from core.data import load_csv
        from core.lab import LabSetup
        from core.diagnoses.stall import Config, run
        res = run(load_csv({str(path)!r}, target="price"), LabSetup(), Config())
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child of a big
        # pytest process would report the parent's size as its own peak.
        peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
        print(res.train_rows, res.curvature_rows, round(peak))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=".").stdout
    train_rows, curvature_rows, peak_mb = map(int, out.split())
    assert train_rows == Config().max_train_rows and curvature_rows == Config().curvature_rows
    assert peak_mb < 1200, f"peak memory {peak_mb} MB"


# --------------------------------------------------------------------------- the lecture's example
def lecture_hessian(w1, w2):
    return np.array([[2 * w2**2, 4 * w1 * w2 - 2], [4 * w1 * w2 - 2, 2 * w1**2]])


def test_toy_origin_matches_the_lecture():
    p = toy_point(0.0, 0.0)
    np.testing.assert_allclose(p.gradient, [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(p.hessian, [[0.0, -2.0], [-2.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(p.eigenvalues, [-2.0, 2.0], atol=1e-12)
    s = np.sqrt(0.5)
    assert np.allclose(np.abs(p.escape_direction), [s, s], atol=1e-12)
    assert p.kind == "saddle point" and p.loss == 1.0 and p.test.critical
    assert len(p.arrow) == 2 and set(p.arrow["what"]) == {"escape direction"}


@pytest.mark.parametrize("w1, w2", [(0.3, -0.7), (1.5, 0.2), (-1.0, -1.0), (2.0, 0.5), (0.001, 0.0)])
def test_toy_point_matches_the_closed_form(w1, w2):
    p = toy_point(w1, w2)
    r = 1 - w1 * w2
    g = np.array([-2 * w2 * r, -2 * w1 * r])
    np.testing.assert_allclose(p.gradient, g, atol=1e-12)
    np.testing.assert_allclose(p.hessian, lecture_hessian(w1, w2), atol=1e-12)
    eigs = np.linalg.eigvalsh(lecture_hessian(w1, w2))
    np.testing.assert_allclose(p.eigenvalues, eigs, atol=1e-12)
    # gradient ~0 when |g|^2 / (2 max|lambda|) < 1e-4 x the origin's loss (1)
    critical = g @ g / (2 * np.abs(eigs).max()) < CRITICAL_GAIN
    assert p.test.critical == critical
    if not critical:
        assert p.kind == NOT_CRITICAL and p.sentence.startswith("Not a critical point")
    elif r * r <= CRITICAL_GAIN:
        assert p.kind == "minimum (valley)"  # at the floor 0 (the valley: eigenvalues 0 and 2(w1² + w2²))
    else:
        assert p.kind == "saddle point"  # (0.001, 0): |g| = 2e-3 is ~0 on this scale, and the origin's saddle


def test_toy_map_marks_the_saddle_and_the_valley():
    cells, marks, valley = toy_map()
    assert len(cells) == 61 * 61
    origin = marks[(marks["x"] == 0) & (marks["y"] == 0)]
    assert origin["kind"].tolist() == ["saddle point"]
    rest = marks.drop(origin.index)
    np.testing.assert_allclose(rest["x"] * rest["y"], 1.0, atol=1e-12)
    assert set(rest["kind"]) == {VALLEY_MINIMUM}  # (1 - w1 w2)^2 = 0 there: the lowest a square can be


# --------------------------------------------------------------------------- the page
def _page():
    at = AppTest.from_file(APP, default_timeout=180).run()
    return at.switch_page("app_pages/stall.py").run()


def _texts(at, kind):
    return [e.value for e in getattr(at, kind)]


def _verdicts(at):
    return _texts(at, "success") + _texts(at, "warning") + _texts(at, "info") + _texts(at, "error")


def _plain(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)  # the verdict box escapes Markdown characters


def test_page_default_run_shows_verdict_tables_and_charts(monkeypatch):
    import ui.export

    names = []
    real = ui.export.file_name
    monkeypatch.setattr(ui.export, "file_name", lambda *a: names.append(real(*a)) or names[-1])
    at = _page()
    assert not at.exception and not at.error
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3  # training curves, spectrum, lecture surface
    assert "vconcat" in json.loads(charts[0].proto.spec)
    verdict = next(_plain(v) for v in _verdicts(at) if "Stalled" in _plain(v) or "No stall" in _plain(v))
    assert "bouncing across a valley" in verdict
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Stalls"] == "1" and metrics["Gradient not ~0"] == "1" and metrics["Parameters"] == "354"
    stall_table = at.dataframe[0].value
    assert "None" not in stall_table.to_csv() and stall_table["kind"].tolist() == [OSCILLATION]
    at.number_input(key="stall_w1").set_value(1.0).run()
    at.number_input(key="stall_w2").set_value(1.0).run()
    assert not at.exception and any("a minimum, one of the valley of minima" in _plain(v) for v in _texts(at, "success"))
    # review finding 4: the toy surface's files carry the surface, not the lab dataset and seed
    surface = [n for n in names if "_error-surface" in n]
    assert "trainscope_stall_error-surface_lecture-one-sample-network.csv" in surface
    assert not any("moons" in n or "seed" in n for n in surface)
    assert "trainscope_stall_training-curves_moons_seed0.png" in names  # a lab chart keeps them


def test_page_scenario_shows_its_own_settings_greyed_and_keeps_the_lab_values():
    at = _page()
    at.number_input(key="stall_lr").set_value(0.3).run()
    at.radio(key="stall_source").set_value("scenario").run()
    assert not at.exception
    lr, steps, opt = at.number_input(key="stall_sc_lr"), at.number_input(key="stall_sc_steps"), \
        at.selectbox(key="stall_sc_optimizer")
    assert (lr.value, steps.value, opt.value) == (SCENARIO.lr, SCENARIO.steps, SCENARIO.optimizer)
    assert lr.disabled and steps.disabled and opt.disabled
    assert any("a saddle point" in _plain(v) for v in _texts(at, "warning"))
    assert len(at.get("vega_lite_chart")) >= 4  # + the escape plot
    at.radio(key="stall_source").set_value("lab").run()
    assert at.number_input(key="stall_lr").value == 0.3 and not at.number_input(key="stall_lr").disabled


def test_page_with_uploaded_regression_csv_and_a_literal_file_name():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = x @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=120)
    csv = pd.DataFrame(np.column_stack([x, y]), columns=["a", "b", "c", "target"]).to_csv(index=False).encode()
    at = _page()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("**bold**_name.csv", csv, "text/csv")).run()
    assert not at.exception and not at.error
    assert len(at.get("vega_lite_chart")) >= 3
    assert {m.label: m.value for m in at.metric}["Parameters"] == "353"  # 3 -> 16 -> 16 -> 1
    assert any("**bold**_name.csv" in t.value for t in at.text)  # shown literally, not as Markdown


def test_page_learning_rate_100_shows_divergence_with_its_step():
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.sidebar.selectbox(key="lab_dataset").set_value("diabetes").run()
    at.switch_page("app_pages/stall.py").run()
    at.number_input(key="stall_lr").set_value(100.0).run()
    assert not at.exception
    assert any("diverged at step 1" in _plain(e) for e in _texts(at, "error"))


def test_page_minimum_ratio_experiment_is_opt_in():
    at = _page()
    assert len(at.get("vega_lite_chart")) == 3  # no scatter until asked
    at.number_input(key="stall_mr_seeds").set_value(2).run()
    at.multiselect(key="stall_mr_widths").set_value([2]).run()
    at.toggle(key="stall_mr_run").set_value(True).run()
    assert not at.exception and not at.error
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titles = [json.dumps(s.get("title", "")) for s in specs]
    assert any("Minimum ratio vs training loss at 2 critical points" in t for t in titles)  # the 2 asked for
    assert any("2.2.2" in c.value for c in at.caption)
    assert any("What the points show" in m.value for m in at.markdown)


# --------------------------------------------------------------------------- browser review findings
def _successive_gradient_cosines(lr: float, steps: int = 6) -> list[float]:
    """Independent reference: plain torch.optim.SGD, full batch, torch's own cross-entropy on the
    moons split; the cosine between each gradient and the one before."""
    setup = LabSetup()
    split = prepare_split(load_builtin("moons"), setup)
    model = build_mlp(setup.model, split.n_features, split.n_outputs, setup.seed)
    X, y = torch.as_tensor(split.X_train, dtype=torch.float32), torch.as_tensor(split.y_train).long()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    out, prev = [], None
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()
        if prev is not None:
            out.append(float(torch.nn.functional.cosine_similarity(g, prev, dim=0)))
        prev = g
        opt.step()
    return out


@pytest.fixture(scope="module")
def tiny_rate_run():
    return run(load_builtin("moons"), LabSetup(), Config(lr=1e-5, steps=300, window=50, max_classified=1))


def test_a_rate_far_too_small_is_small_steps_not_an_oscillation(tiny_rate_run):
    # Review finding 1: /stall?stall_lr=1e-05 called the stall "oscillation" with gradient cosine 1
    # and advised lowering the rate.
    assert min(_successive_gradient_cosines(1e-5)) > 0.999  # torch: every step goes the same way
    res = tiny_rate_run
    assert res.stalls["kind"].tolist() == [SMALL_STEPS] and res.stalls["evidence"].tolist() == ["curvature"]
    s = res.stalls.iloc[0]
    assert s["rel_drop"] > 0 and s["cos_mean"] > 0.999 and s["gain_share"] > CRITICAL_GAIN  # falling, aligned, not ~0
    text, advice = res.verdict.text, res.verdict.advice
    assert "too small" in text and "bouncing" not in text and "although a gradient step could" not in text
    assert advice.startswith("Raise the learning rate") and "Lower" not in advice
    # The advice holds: 100x the rate leaves no stall and the loss falls far further in the same steps.
    faster = run(load_builtin("moons"), LabSetup(), Config(lr=1e-3, steps=300, window=50, max_classified=0))
    assert faster.stalls.empty
    assert faster.start_loss - faster.final_loss > 20 * (res.start_loss - res.final_loss)


@pytest.mark.parametrize("cos, kind", [(0.999, SMALL_STEPS), (0.95, SMALL_STEPS), (-1.0, OSCILLATION),
                                       (0.3, UNCLEAR)])
def test_log_rules_tell_small_steps_from_a_bounce_by_the_cosine(cos, kind):
    # A loss falling 0.4% per 100 steps (a stall by the 1% rule) with a steady |g| = 0.5: the
    # gradient never collapsed, so the cosine alone decides, by construction.
    t = np.arange(1000)
    log = pd.DataFrame({"step": t, "loss": 1 - 4e-5 * t, "grad_norm": 0.5, "grad_cos": cos})
    stalls = detect_stalls(log, window=100, rel_eps=0.01)
    assert stalls["kind"].tolist() == [kind] and stalls["rel_drop"].iloc[0] > 0


def test_a_valley_point_is_a_minimum_by_its_loss_floor_and_eigenvalue_signs():
    # Review finding 2: at (1, 1) the page called w1*w2 = 1 a valley of minima and showed loss 0,
    # but its verdict said "a flat (degenerate) point, which the Hessian cannot classify".
    p = toy_point(1.0, 1.0)
    np.testing.assert_allclose(np.linalg.eigvalsh(lecture_hessian(1.0, 1.0)), [0.0, 4.0], atol=1e-12)
    w = np.linspace(0.5, 1.5, 201)
    assert ((1 - np.outer(w, w)) ** 2).min() >= p.loss == 0.0  # brute force: nothing nearby is lower
    assert p.valley_minimum and p.kind == "minimum (valley)"  # the Hessian alone cannot tell ...
    assert "a minimum, one of the valley of minima" in p.sentence  # ... the loss floor can
    assert "flat (degenerate) point" not in p.sentence and "zero along the valley" in p.sentence
    for w1, w2 in [(-0.5, -2.0), (1.25, 0.8)]:  # elsewhere on the valley too
        assert toy_point(w1, w2).valley_minimum
    for w1, w2 in [(0.0, 0.0), (0.3, -0.7), (1.05, 1.0)]:  # saddle, not critical, off the valley
        assert not toy_point(w1, w2).valley_minimum


def test_a_point_just_off_the_valley_is_no_saddle():
    # Just off the valley the Hessian is indefinite (closed form: det < 0), and the gradient passes
    # the critical test, but the loss is within the critical threshold of its floor 0: no step can
    # gain more than that, so there is no saddle to escape (it was once called "a saddle point").
    w1, w2 = 1.001, 1.0
    assert np.linalg.eigvalsh(lecture_hessian(w1, w2))[0] < -1e-3
    loss = (1 - w1 * w2) ** 2
    assert loss <= 1e-4 * (1 - 0.0) ** 2  # within CRITICAL_GAIN of the origin's loss from the floor
    p = toy_point(w1, w2)
    assert p.valley_minimum and p.kind == "minimum (valley)" and p.escape_direction is None
    assert "small negative eigenvalue" in p.sentence and "no saddle" in p.sentence
    assert "saddle point" not in p.sentence


def test_a_degenerate_point_without_a_known_floor_keeps_the_degenerate_wording():
    # f = x^4 + y^2 + 1 at the origin: gradient 0, Hessian diag(0, 2); a network's point has no
    # known lowest loss, so the Hessian's "cannot classify" stands.
    from core.diagnoses.stall import judge_point, point_sentence

    f = lambda t: t[0] ** 4 + t[1] ** 2 + 1  # noqa: E731
    p, _, _ = judge_point(f, torch.zeros(2, dtype=F64), 0.0, 1.0, 1.0, "end", "end", 0, spectrum=False)
    assert p.kind == "flat (degenerate)" and "flat (degenerate) point" in point_sentence(p)


def test_the_no_stall_verdict_says_what_its_numbers_are():
    # Review finding 3: "... (the stall rule); 0.717 -> 0.0005844." with no label.
    f = Findings(divergence=None, start_loss=0.717, final_loss=0.0005844, stalls=(), end=None, window=100,
                 rel_eps=0.01, minibatch=False, last_step=1000)
    text = make_verdict(f).text
    assert "the training loss went from 0.717 to 0.0005844 over 1,000 steps" in text and "→" not in text


def _x_tick_labels(svg: str) -> list[list[str]]:
    """The tick labels of every x axis titled 'step' in a rendered SVG."""
    out = []
    for part in svg.split("X-axis titled 'step'")[1:]:
        block = part.split('role-axis-label"', 1)[1].split("</g>", 1)[0]
        out.append(re.findall(r">([^<>]+)</text>", block))
    return out


def test_step_axes_show_whole_steps_on_a_short_run():
    # Review finding 4: at stall_lr=10 the run diverges at step 3 and the step axes read 0.5, 1.5.
    from core.charts.stall import training_chart
    from core.export import chart_bytes

    res = run(load_builtin("moons"), LabSetup(), Config(lr=10.0, steps=300, window=50))
    assert res.diverged_at is not None and len(res.curve) <= 5
    axes = _x_tick_labels(chart_bytes(training_chart(res), "svg").decode())
    assert len(axes) >= 2
    for labels in axes:
        assert labels and all(re.fullmatch(r"\d+", x) for x in labels), labels
        assert len(set(labels)) == len(labels)  # no repeated integer ticks either


def test_page_with_a_rate_far_too_small_says_small_steps_and_to_raise_it():
    # Review finding 1 on the page: /stall?stall_lr=1e-05.
    at = _page()
    at.number_input(key="stall_lr").set_value(1e-5).run()
    assert not at.exception and not at.error
    verdict = next(_plain(v) for v in _texts(at, "warning") if "Stalled" in _plain(v))
    assert "the steps are too small" in verdict and "bouncing" not in verdict
    assert "Try next: Raise the learning rate" in verdict.replace("**", "") and "Lower the" not in verdict
    assert at.dataframe[0].value["kind"].tolist() == [SMALL_STEPS]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Stalls"] == "1" and metrics["Gradient not ~0"] == "1" and metrics["At a critical point"] == "0"


def test_every_page_that_shows_stall_kinds_handles_small_steps():
    # The training-log page shares core.rules.stall_kind: a slow, aligned descent in an uploaded log
    # must not fall through to its "gradient ~0: a critical point" wording, and both pages' stall
    # shading must have a colour for every kind (Vega leaves an unlisted one uncoloured).
    from core.charts.run_log import KIND_COLORS as LOG_COLORS
    from core.charts.stall import KIND_COLORS
    from core.diagnoses.run_log import run as run_log
    from core.rules import STALL_KINDS as RULE_KINDS
    from core.runlog import load_log

    assert set(RULE_KINDS) <= set(LOG_COLORS.domain) and set(STALL_KINDS) <= set(KIND_COLORS.domain)
    assert len(set(LOG_COLORS.range)) == len(LOG_COLORS.range) and len(set(KIND_COLORS.range)) == len(KIND_COLORS.range)
    t = np.arange(1, 1001)
    log = pd.DataFrame({"step": t, "loss": 1 - 4e-5 * t, "grad_norm": 0.5, "grad_cos": 0.999, "lr": 1e-3})
    res = run_log(load_log(log.to_csv(index=False).encode(), "slow.csv"))
    assert res.stalls["kind"].tolist() == [SMALL_STEPS]
    text = res.verdict.text
    assert "too small" in text and "critical point" in text and "gradient ~0" not in text
    assert res.verdict.advice.startswith("Raise the learning rate")


def _quadratic_end(gain_share: float):
    """An end point judged on f(t) = 0.5 * |t|^2 (every eigenvalue 1) at |t| = |g| = sqrt(2 * gain):
    one safe step 1/max|lambda| = 1 gains |g|^2 / 2 = `gain_share` of a start loss of 1."""
    from core.diagnoses.stall import judge_point

    g = math.sqrt(2 * gain_share)
    theta = torch.tensor([g, 0.0], dtype=F64)
    p, _, _ = judge_point(lambda t: 0.5 * (t ** 2).sum(), theta, g, 0.5 * g * g, 1.0, "end", "end", 100,
                          spectrum=False)
    assert p.test.gain_share == pytest.approx(gain_share)  # the closed form of the safe step's gain
    return p


@pytest.mark.parametrize("gain, last_step, cos, slow", [
    (0.06, 1000, float("nan"), True),  # 12% of the run's fall (0.5), worth 120 average steps
    (0.04, 1000, float("nan"), False),  # 8% of the fall: under SLOW_SHARE
    (0.06, 50, float("nan"), False),  # 12% of the fall, but only 6 of 50 steps' average: a short run
    (0.001, 1000, 0.95, True),  # aligned successive gradients at the end
    (0.001, 1000, 0.5, False),
])
def test_no_stall_with_a_large_safe_step_or_aligned_gradients_says_the_steps_are_small(gain, last_step, cos, slow):
    # Review finding 2 (thresholds): no stall, an end that is not critical.
    f = Findings(divergence=None, start_loss=1.0, final_loss=0.5, stalls=(), end=_quadratic_end(gain), window=10,
                 rel_eps=0.01, minibatch=False, last_step=last_step, end_cos=cos)
    v = make_verdict(f)
    assert v.text.startswith("No stall")
    assert ("slowly because the steps are small" in v.text) == slow
    assert v.advice.startswith("Raise the learning rate") == slow
    assert (v.kind == "warning") == slow
    if slow and gain == 0.06:
        assert "would gain 12% of what all 1,000 steps gained (50.0% of it), as much as 120 of the run's" in v.text


def test_page_rate_3e4_no_stall_says_the_rate_is_too_small():
    # Review finding 2: /stall?stall_lr=0.0003 said "No stall ... Nothing is stuck" while 1,000 steps
    # lowered the loss 10.8% and one safe step would gain 9.4% of the start loss.
    res = run(load_builtin("moons"), LabSetup(), Config(lr=3e-4))
    assert res.stalls.empty
    end = res.points.set_index("point").loc["end"]
    fall = (res.start_loss - res.final_loss) / res.start_loss
    assert not end["critical"] and end["gain_share"] > 0.5 * fall  # the page's own tables
    last = res.steps[res.steps["step"] > res.steps["step"].max() - 100]["grad_cos"]
    assert last.mean() > 0.99
    assert min(_successive_gradient_cosines(3e-4)) > 0.999  # torch: every step goes the same way
    v = res.verdict
    assert v.kind == "warning" and "slowly because the steps are small" in v.text
    assert f"{round(100 * end['gain_share'] / fall)}% of what all 1,000 steps gained" in v.text
    assert v.advice.startswith("Raise the learning rate") and "Nothing is stuck" not in v.advice
    # the advice holds: 10x the rate lowers the loss far further in the same 1,000 steps
    faster = run(load_builtin("moons"), LabSetup(), Config(lr=3e-3, max_classified=0))
    assert faster.start_loss - faster.final_loss > 3 * (res.start_loss - res.final_loss)


def test_no_stall_with_a_bouncing_end_keeps_nothing_is_stuck():
    res = run(load_builtin("moons"), LabSetup(), Config(lr=2.0))
    assert res.stalls.empty and res.findings.end_cos < 0
    assert res.verdict.kind == "good" and res.verdict.advice.startswith("Nothing is stuck")


def test_toy_valley_sentence_parses():
    # Review finding 3: "... within 0.01% of the origin's loss of the lowest value this surface can take (0)".
    p = toy_point(1.001, 1.0)
    assert p.valley_minimum
    assert (f"the loss, {num(p.loss)}, is above the lowest value this surface can take (0) by less than 0.01% of "
            "the origin's loss") in p.sentence
    assert p.loss - 0.0 < 1e-4 * (1 - 0) ** 2  # the claim, on the lecture's closed form (w1 w2 - 1)^2
