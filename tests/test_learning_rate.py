"""Learning-rate lab: range test (fastai's smoothing, stop rule, valley/steep), schedule preview,
training with schedules, adaptive optimizers on surfaces and on the lab model, and the page."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import median_filter
from streamlit.testing.v1 import AppTest

from core.diagnoses import learning_rate as lab
from core.lab import DataSpec, LabSetup, build_model, load_data
from core.schedules import lr_at
from core.surfaces import SURFACES
from core.train import TrainConfig, split_data, train

APP = "../app.py"
PAGE = "app_pages/learning_rate.py"
SETUP = LabSetup()  # moons, MLP 16-16 tanh, seed 0


@pytest.fixture(scope="module")
def moons():
    return load_data(SETUP.data, SETUP.seed)


@pytest.fixture(scope="module")
def range_result(moons):
    return lab.run_range_test(moons, SETUP, lab.RangeTestConfig())


def _final_loss(data, lr, steps=200, optimizer="adam", batch=32, setup=SETUP):
    """Reference: a fresh core.train.train run, full-training-split loss at the end (inf if NaN)."""
    split = split_data(data, "standard", 0.2, setup.seed)
    model = build_model(setup, split.n_features, split.n_outputs)
    h = train(model, split, TrainConfig(optimizer=optimizer, lr=lr, max_steps=steps, batch_size=batch, seed=setup.seed))
    return math.inf if h.diverged_at is not None else float(h.epochs["train_loss"].iloc[-1])


# ----------------------------------------------------------------------------- smoothing, stop, suggestions


def test_smoothing_is_pandas_adjusted_ewm_after_a_nearest_median_filter():
    raw = np.random.default_rng(0).lognormal(size=150)
    # pandas' adjusted EWMA with alpha = 1 - beta is exactly the debiased average avg_k / (1 - beta^(k+1))
    plain = pd.Series(raw).ewm(alpha=1 - lab.BETA, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(lab.smooth_losses(raw, despike=False), plain, rtol=1e-12)
    filtered = median_filter(raw, size=3, mode="nearest")
    ref = pd.Series(filtered).ewm(alpha=1 - lab.BETA, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(lab.smooth_losses(raw), ref, rtol=1e-12)


def test_stop_rule_is_four_times_the_running_best():
    s = np.array([1.0, 0.5, 0.4, 1.2, 1.61, 1.59, 3.0])
    assert lab.stop_index(s) == 4  # 1.61 > 4 * 0.4; 1.2 is not
    assert lab.stop_index(s, factor=2.0) == 3
    assert lab.stop_index(np.linspace(2, 1, 20)) is None


def test_valley_follows_fastai_on_a_non_contiguous_valley():
    # longest strictly decreasing subsequence 5, 4, 3, 2, 1 ends at index 6 with length 5, so
    # max_start = 6 - 5 = 1, L = 5, idx = 1 + int(5/3) + int(5/6) = 2
    losses = np.array([5, 6, 4, 3, 7, 2, 1, 8], dtype=float)
    assert lab.valley(np.arange(1, 9), losses) == 2
    # a clean U: falls over 0..20, rises after; lds = 21 at index 20, max_start = -1, L = 21
    u = (np.arange(40) - 20.0) ** 2
    assert lab.valley(np.arange(40), u) == -1 + 7 + 3


def test_steepest_is_the_most_negative_slope_against_log_lr():
    lrs = np.array([1e-4, 1e-3, 1e-2, 2e-2, 1e-1])
    losses = np.array([1.0, 0.9, 0.5, 0.3, 0.2])
    slopes = np.diff(losses) / np.diff(np.log(lrs))  # -0.043, -0.174, -0.289, -0.062
    assert lab.steepest(lrs, losses) == int(np.argmin(slopes)) == 2


def test_range_record_is_the_exponential_ramp_and_is_trimmed_like_fastai(range_result):
    cfg = lab.RangeTestConfig()
    rec = range_result.record
    k = rec["step"].to_numpy()
    ramp = cfg.start_lr * (cfg.end_lr / cfg.start_lr) ** (k / (cfg.num_steps - 1))
    np.testing.assert_allclose(rec["lr"], ramp, rtol=1e-9)
    stop = range_result.stop_step
    assert stop is not None and len(rec) == stop + 1  # recorded through the point that stopped it
    assert rec["smoothed"].iloc[stop] > lab.STOP_FACTOR * rec["smoothed"].iloc[:stop].min()
    window = rec.index[rec["in_window"]]
    assert window[0] == cfg.num_steps // 10 and window[-1] == stop - 5  # fastai's [num_it//10:-5]
    assert range_result.valley_step in window and range_result.steep_step in window


@pytest.mark.parametrize("at, factor", [(15, 100.0), (30, 100.0), (60, 30.0), (150, 30.0)])
def test_one_spike_barely_moves_the_median_smoothed_test(range_result, at, factor):
    rec = range_result.record
    raw = rec["loss"].to_numpy()
    spiked = raw.copy()
    spiked[at] *= factor  # one bad batch
    after = lab.analyze_range(rec["lr"], spiked, 200)
    assert after.stop == range_result.stop_step and after.steep == range_result.steep_step
    assert abs(after.valley - range_result.valley_step) <= 1  # one step of the ramp = 6% in rate


def test_the_same_spike_stops_fastais_plain_average(range_result):
    rec = range_result.record
    spiked = rec["loss"].to_numpy().copy()
    spiked[30] *= 100.0
    plain = lab.analyze_range(rec["lr"], spiked, 200, despike=False)
    assert plain.stop == 30  # the debiased average still weighs step 30 by ~1/30: 100x passes 4x best


def test_a_nan_ends_the_record_before_it():
    lrs = np.logspace(-4, 1, 60)
    raw = np.r_[np.linspace(1.0, 0.5, 40), np.full(20, np.nan)]
    a = lab.analyze_range(lrs, raw, 60)
    assert a.end == 40 and a.stop is None and len(a.smoothed) == 40
    assert a.valley is not None and a.valley < 35


# ----------------------------------------------------------------------------- Done when: the range test is useful


def test_suggested_rate_beats_a_tenth_and_ten_times_does_worse(moons, range_result):
    lr = range_result.valley_lr
    assert lr is not None
    lo, mid, hi = (_final_loss(moons, lr * f) for f in (0.1, 1.0, 10.0))
    assert mid < lo
    assert hi > mid  # worse (inf if it diverged)
    # the page's own check ran the same three trainings
    check = range_result.check.set_index("factor")["final train loss"]
    np.testing.assert_allclose(check[[0.1, 1.0, 10.0]], [lo, mid, hi], rtol=1e-6)
    assert range_result.verdict.kind == "good"


# ----------------------------------------------------------------------------- preview


def test_preview_numbers_match_lr_at_and_its_code_builds_the_same_scheduler():
    cfg = lab.PreviewConfig(schedules=(("warmup_cosine", (("warmup_steps", 30),)), ("cyclic", ())),
                            total_steps=300, base_lr=0.05, at_steps=(0, 29, 30, 299, 500))
    r = lab.run_preview(None, SETUP, cfg)
    row = r.table.set_index("schedule").loc["warmup_cosine"]
    for k in (0, 29, 30, 299):
        assert row[f"step {k}"] == pytest.approx(lr_at("warmup_cosine", k, 300, 0.05, warmup_steps=30), rel=1e-12)
    assert "step 500" not in r.table  # past the run: dropped
    assert set(r.points["step"]) == {0, 29, 30, 299}
    for name in ("warmup_cosine", "cyclic"):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
        scope = {"optimizer": opt}
        exec(r.code[name], scope)  # "copy as PyTorch code" really builds the schedule
        got = []
        for _ in range(300):
            got.append(scope["scheduler"].get_last_lr()[0])
            opt.step()
            scope["scheduler"].step()
        want = r.frame[r.frame["schedule"] == name]["lr"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_preview_rejects_bad_input():
    with pytest.raises(ValueError, match="outside the run"):
        lab.parse_steps("0, 1000", 1000)
    with pytest.raises(ValueError, match="whole numbers"):
        lab.parse_steps("ten", 1000)
    with pytest.raises(ValueError, match="at least one schedule"):
        lab.run_preview(None, SETUP, lab.PreviewConfig(schedules=()))
    with pytest.raises(ValueError, match="warmup_steps"):
        lab.run_preview(None, SETUP, lab.PreviewConfig(schedules=(("warmup_cosine", (("warmup_steps", 5000),)),)))


# ----------------------------------------------------------------------------- training with schedules


def test_training_runs_match_core_train_and_use_the_schedule(moons):
    cfg = lab.TrainingConfig(lr=0.02, steps=60, schedules=(("cosine", ()),))
    r = lab.run_training(moons, SETUP, cfg)
    assert list(r.summary["run"]) == ["constant", "cosine"]
    ref = _final_loss(moons, 0.02, steps=60)
    assert r.summary.set_index("run").loc["constant", "final train loss"] == pytest.approx(ref, rel=1e-6)
    used = r.rates[r.rates["run"] == "cosine"]["lr"].to_numpy()
    np.testing.assert_allclose(used, [lr_at("cosine", k, 60, 0.02) for k in range(60)], rtol=1e-12, atol=1e-18)
    assert r.best in ("constant", "cosine") and r.verdict.kind == "good"


def test_a_rate_of_100_is_reported_as_divergence_with_its_step(moons):
    r = lab.run_training(moons, SETUP, lab.TrainingConfig(lr=100.0, steps=30, schedules=()))
    row = r.summary.iloc[0]
    losses = r.rates["loss"].to_numpy()
    # reference: first step whose debiased 0.98-average of the (median-of-3) loss passes 4x its best
    ref = pd.Series(median_filter(losses, 3, mode="nearest")).ewm(alpha=0.02, adjust=True).mean()
    expected = int(np.flatnonzero(ref > 4 * ref.cummin())[0])
    assert row["diverged at"] == expected
    assert f"diverged at step {expected}" in row["message"]
    assert r.verdict.kind == "problem" and f"step {expected}" in r.verdict.text


def test_regression_data_trains_and_range_tests(moons):
    setup = LabSetup(data=DataSpec(builtin="diabetes"))
    data = load_data(setup.data, 0)
    r = lab.run_range_test(data, setup, lab.RangeTestConfig(num_steps=60, check_steps=0))
    assert r.valley_lr is not None and len(r.check) == 0
    t = lab.run_training(data, setup, lab.TrainingConfig(lr=r.valley_lr, steps=30, schedules=(("step", ()),)))
    assert "final val R^2" in t.summary and np.isfinite(t.summary["final train loss"]).all()


def test_configs_are_validated_with_sentences(moons):
    with pytest.raises(ValueError, match="positive"):
        lab.run_training(moons, SETUP, lab.TrainingConfig(lr=-1.0))
    with pytest.raises(ValueError, match="larger than the start"):
        lab.run_range_test(moons, SETUP, lab.RangeTestConfig(start_lr=1.0, end_lr=0.1))
    with pytest.raises(ValueError, match="at least 10 steps"):
        lab.run_range_test(moons, SETUP, lab.RangeTestConfig(num_steps=3))
    with pytest.raises(ValueError, match="Unknown optimizer"):
        lab.run_adaptive(moons, SETUP, lab.AdaptiveConfig(rates=(("lbfgs", 0.1),)))
    with pytest.raises(ValueError, match="batch size"):
        lab.run_training(moons, SETUP, lab.TrainingConfig(batch_size=0))


# ----------------------------------------------------------------------------- adaptive optimizers


def _rmsprop_reference(lr, steps, start, alpha=0.99, eps=1e-8):
    """RMSprop written out in numpy on flat_then_steep (closed-form gradient): the steps it takes."""
    w = np.array(start, dtype=float)
    v = np.zeros(2)
    moves = []
    for _ in range(steps):
        d = (w[0] - 1.0) / 0.5
        g = np.array([2 * d / 0.5 / (1 + d**2) ** 2, w[1]])
        v = alpha * v + (1 - alpha) * g**2
        step = lr * g / (np.sqrt(v) + eps)
        w = w - step
        moves.append(np.abs(step))
    return np.array(moves)


def test_surface_race_shows_rmsprop_burst_and_adagrad_bound():
    cfg = lab.SurfaceConfig()  # flat_then_steep, RMSprop tamed by warmup and cosine decay
    r = lab.run_surfaces(None, SETUP, cfg)
    s = r.summary.set_index("run")
    lr = s.loc["RMSprop", "lr"]
    moves = _rmsprop_reference(lr, cfg.steps, SURFACES["flat_then_steep"].start)
    ratio = moves.max(axis=1) / lr
    # torch's RMSprop starts its average at 0 with no bias correction: the first step is 10x the rate
    assert s.loc["RMSprop", "first step / lr"] == pytest.approx(ratio[0], rel=1e-6)
    assert ratio[0] == pytest.approx(10.0, rel=1e-4)
    k = int(np.argmax(ratio[1:])) + 1
    assert s.loc["RMSprop", "at step"] == k
    assert s.loc["RMSprop", "largest later step / lr"] == pytest.approx(ratio[k], rel=1e-6)
    paths = r.paths[r.paths["run"] == "RMSprop"]
    assert ratio[k] > 5 and paths["x"].iloc[k] > -1  # the burst comes at the cliff, after the plateau
    # warmup from 1% of the rate: the first step is 10 x 0.01 = 0.1 of the rate
    assert s.loc["RMSprop + warmup", "first step / lr"] == pytest.approx(0.1, rel=1e-4)
    # torch's Adagrad divides by the root of the summed squares: never more than the rate per coordinate
    assert s.loc["Adagrad", "largest later step / lr"] <= 1.0 + 1e-12
    assert r.grid.shape == (50 * 50, 4) and r.verdict.kind == "info"


def test_adaptive_lab_runs_match_core_train(moons):
    cfg = lab.AdaptiveConfig(steps=40, rates=(("sgd", 0.1), ("adam", 0.01)))
    r = lab.run_adaptive(moons, SETUP, cfg)
    got = r.summary.set_index("run")["final train loss"]
    for opt, lr in cfg.rates:
        assert got[opt] == pytest.approx(_final_loss(moons, lr, steps=40, optimizer=opt), rel=1e-6)


def test_recommendation_names_a_rate_and_a_schedule(moons, range_result):
    training = lab.run_training(moons, SETUP, lab.TrainingConfig(lr=range_result.valley_lr, steps=40))
    v = lab.recommend(range_result, training)
    assert v.kind == "good"
    assert f"{range_result.valley_lr:.3g}" in v.text and training.best in v.text and "40 steps" in v.text


# ----------------------------------------------------------------------------- the page


def _page():
    at = AppTest.from_file(APP, default_timeout=300).run()
    return at.switch_page(PAGE).run()


def _open(at, tab):
    at.session_state["learning_rate_tab"] = tab  # what a click on the tab does
    return at.run()


def _texts(at):
    return "\n".join(str(e.value) for kind in ("success", "info", "warning", "error") for e in getattr(at, kind))


def test_page_default_run_and_every_tab():
    at = _page()
    assert not at.exception, at.exception
    assert not at.error
    text = _texts(at)
    assert "Use adam at lr" in text and "Range test (adam)" in text  # the answer, on arrival
    assert len(at.get("vega_lite_chart")) == 2  # range test and its check: only the open tab draws
    at = _open(at, "Preview schedules")
    assert not at.exception and len(at.get("vega_lite_chart")) == 1
    assert len(at.code) == 4  # "copy as PyTorch code" for the four default schedules
    at = _open(at, "Train with schedules")
    assert not at.exception and len(at.get("vega_lite_chart")) == 2
    assert "reached the lowest training loss" in _texts(at)
    at = _open(at, "Adaptive optimizers")
    assert not at.exception and len(at.get("vega_lite_chart")) == 5
    assert "RMSprop at a constant rate: first step 10x the rate" in _texts(at)
    assert "has the lowest training loss" in _texts(at)  # the four optimizers on the lab model
    assert "Use adam at lr" in _texts(at)  # the answer stays whichever tab is open


def test_page_variants_and_a_rate_of_100():
    at = _page()
    at = _open(at, "Preview schedules")
    at.multiselect(key="learning_rate_pv_names").set_value(["noam", "cyclic"])
    at.toggle(key="learning_rate_pv_log").set_value(False).run()
    assert not at.exception, at.exception
    assert len(at.code) == 2
    at.text_input(key="learning_rate_pv_at").set_value("0, 5000").run()
    assert not at.exception and any("outside the run" in e.value for e in at.error)
    at = _open(at, "Adaptive optimizers")
    at.selectbox(key="learning_rate_sf_surface").set_value("rosenbrock").run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 5
    at = _open(at, "Train with schedules")
    at.checkbox(key="learning_rate_tr_valley").set_value(False).run()
    at.number_input(key="learning_rate_tr_lr").set_value(100.0).run()
    assert not at.exception, at.exception
    warnings = "\n".join(w.value for w in at.warning)
    assert "diverged at step" in warnings and "constant" in warnings
    at = _open(at, "Find a rate (range test)")
    at.selectbox(key="learning_rate_rt_opt").set_value("sgd").run()
    assert not at.exception and "Range test (sgd)" in _texts(at)


CSV = ("a,b,c,label\n" + "".join(
    f"{math.sin(i):.3f},{math.cos(i * 0.7):.3f},{(i % 7) / 7:.3f},{int(math.sin(i) + math.cos(i * 0.7) > 0)}\n"
    for i in range(120))).encode()


@pytest.mark.parametrize("upload_first", [True, False])
def test_page_with_an_uploaded_csv(upload_first):
    at = AppTest.from_file(APP, default_timeout=300).run()
    if not upload_first:
        at.switch_page(PAGE).run()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("mine.csv", CSV, "text/csv")).run()
    if upload_first:
        at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert not at.error
    assert "Range test (adam)" in _texts(at)
