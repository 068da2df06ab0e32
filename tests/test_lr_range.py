"""LR range test (fastai's smoothing, stopping rule, valley/steep) and its seeded check.

References are independent of the code: pandas' EWMA, scipy's median filter, a literal copy of
fastai's `valley` loop, fresh core.train runs, scipy's Welch t-test.
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.ndimage import median_filter

from core.diagnoses._kits import lr as kit
from core.diagnoses import learning_rate, lr_range
from core.findings import NOISE_MULTIPLE, SIGNIFICANCE
from core.lab import LabSetup, load_data
from core.models import build_mlp
from core.train import TrainConfig, split_data, train

SETUP = LabSetup()  # moons, MLP 16-16 tanh, seed 0


@pytest.fixture(scope="module")
def moons():
    return load_data(SETUP.data, SETUP.seed)


@pytest.fixture(scope="module")
def adam_result(moons):
    return lr_range.run(moons, SETUP, lr_range.Config())


@pytest.fixture(scope="module")
def sgd_result(moons):
    return lr_range.run(moons, SETUP, lr_range.Config(optimizer="sgd"))


def _fastai_valley(lrs, losses):
    """fastai.callback.schedule.valley's loop, copied as fastai writes it."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max(0, max_start + int(sections) + int(sections / 2))


def _tail_of_fresh_run(data, lr, seed, optimizer="adam", steps=200, batch=32):
    """Reference: a fresh core.train run; mean of the last 20% of its per-step losses."""
    split = split_data(data, "standard", 0.2, SETUP.seed)
    model = build_mlp(SETUP.model, split.n_features, split.n_outputs, seed=seed)
    h = train(model, split, TrainConfig(optimizer=optimizer, lr=lr, max_steps=steps, batch_size=batch, seed=seed))
    if h.diverged_at is not None:
        return math.nan
    loss = h.steps["loss"].to_numpy()
    return float(loss[-math.ceil(0.2 * len(loss)):].mean())


# ----------------------------------------------------------------------------- smoothing, stop, suggestions


def test_smoothing_is_pandas_adjusted_ewm_after_a_nearest_median_filter():
    raw = np.random.default_rng(0).lognormal(size=150)
    plain = pd.Series(raw).ewm(alpha=1 - lr_range.BETA, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(lr_range.smooth_losses(raw, despike=False), plain, rtol=1e-12)
    filtered = median_filter(raw, size=3, mode="nearest")
    ref = pd.Series(filtered).ewm(alpha=1 - lr_range.BETA, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(lr_range.smooth_losses(raw), ref, rtol=1e-12)


def test_stopping_rule_is_four_times_the_running_best():
    s = np.array([1.0, 0.5, 0.4, 1.2, 1.61, 1.59, 3.0])
    assert lr_range.stop_index(s) == 4  # 1.61 > 4 * 0.4; 1.2 is not
    assert lr_range.stop_index(s, factor=2.0) == 3
    assert lr_range.stop_index(np.linspace(2, 1, 20)) is None


def test_valley_matches_fastais_loop_on_random_records():
    rng = np.random.default_rng(1)
    for t in range(200):
        n = int(rng.integers(3, 70))
        x = np.cumsum(rng.normal(size=n)) if t % 2 else rng.integers(0, 5, size=n).astype(float)
        assert lr_range.valley(np.arange(n), x) == _fastai_valley(np.arange(n), list(x)), (t, x)


def test_steepest_is_the_most_negative_slope_against_log_lr():
    lrs = np.array([1e-4, 1e-3, 1e-2, 2e-2, 1e-1])
    losses = np.array([1.0, 0.9, 0.5, 0.3, 0.2])
    slopes = np.diff(losses) / np.diff(np.log(lrs))  # -0.043, -0.174, -0.289, -0.062
    assert lr_range.steepest(lrs, losses) == int(np.argmin(slopes)) == 2


def test_record_is_the_exponential_ramp_and_is_trimmed_like_fastai(adam_result):
    cfg = lr_range.Config()
    rec = adam_result.record
    k = rec["step"].to_numpy()
    assert rec["step"].dtype.kind == "i"  # integer steps in exports
    ramp = cfg.start_lr * (cfg.end_lr / cfg.start_lr) ** (k / (cfg.num_steps - 1))
    np.testing.assert_allclose(rec["lr"], ramp, rtol=1e-9)
    stop = adam_result.stop_step
    assert stop is not None and len(rec) == stop + 1  # recorded through the point that stopped it
    assert rec["smoothed"].iloc[stop] > lr_range.STOP_FACTOR * rec["smoothed"].iloc[:stop].min()
    window = rec.index[rec["in_window"]]
    assert window[0] == cfg.num_steps // 10 and window[-1] == stop - 5  # fastai's [num_it//10:-5]
    assert adam_result.valley_step in window and adam_result.steep_step in window


@pytest.mark.parametrize("at, factor", [(15, 100.0), (30, 100.0), (60, 30.0), (150, 30.0)])
def test_one_spike_barely_moves_the_median_smoothed_test(adam_result, at, factor):
    rec = adam_result.record
    spiked = rec["loss"].to_numpy().copy()
    spiked[at] *= factor  # one bad batch
    after = lr_range.analyze_range(rec["lr"], spiked, 200)
    assert after.stop == adam_result.stop_step and after.steep == adam_result.steep_step
    assert abs(after.valley - adam_result.valley_step) <= 1  # one step of the ramp = 6% in rate


def test_the_same_spike_stops_fastais_plain_average(adam_result):
    rec = adam_result.record
    spiked = rec["loss"].to_numpy().copy()
    spiked[30] *= 100.0
    assert lr_range.analyze_range(rec["lr"], spiked, 200, despike=False).stop == 30


def test_a_nan_ends_the_record_before_it():
    lrs = np.logspace(-4, 1, 60)
    raw = np.r_[np.linspace(1.0, 0.5, 40), np.full(20, np.nan)]
    a = lr_range.analyze_range(lrs, raw, 60)
    assert a.end == 40 and a.stop is None and len(a.smoothed) == 40
    assert a.valley is not None and a.valley < 35


def test_the_stopping_rule_is_not_called_a_divergence(adam_result):
    # the record ended by fastai's rule, before core.rules saw any divergence in the test's run
    d = adam_result.divergence
    assert adam_result.stop_step is not None and (d is None or d.step > adam_result.stop_step)
    assert "stopping rule" in adam_result.verdict.text and "diverged" not in adam_result.verdict.text


# ----------------------------------------------------------------------------- the check


def test_check_groups_match_fresh_core_train_runs(moons, adam_result):
    v = adam_result.valley_lr
    for g in adam_result.groups:
        assert g.seeds == (0, 1, 2)
        for i in (0, 2):
            ref = _tail_of_fresh_run(moons, g.lr, seed=g.seeds[i])
            assert g.tail[i] == pytest.approx(ref, rel=1e-6), (g.key, i)
    assert [g.lr for g in adam_result.groups] == pytest.approx([0.1 * v, v, 10 * v], rel=1e-12)


def test_check_comparisons_follow_welchs_test(adam_result, sgd_result):
    for result in (adam_result, sgd_result):
        groups = {g.key: g for g in result.groups}
        assert set(result.comparisons) == {("0.1x", "1x"), ("0.1x", "10x"), ("1x", "10x")}
        for (a, b), comp in result.comparisons.items():
            ta, tb = np.array(groups[a].tail), np.array(groups[b].tail)
            p = stats.ttest_ind(ta, tb, equal_var=False).pvalue
            if p < SIGNIFICANCE:
                assert comp.winner == (a if ta.mean() < tb.mean() else b)
            else:
                assert comp.winner is None


def test_issue_12_sgd_headline_follows_the_check(sgd_result):
    """moons, range-test optimizer sgd: the old page recommended the valley 0.0581 while its own check
    said ten times it trained better. Now the check decides, across 3 seeds."""
    r = sgd_result
    assert r.valley_lr == pytest.approx(0.0581, rel=0.01)
    groups = {g.key: g for g in r.groups}
    assert groups["10x"].mean < groups["1x"].mean  # 10x trained better (tail of its curve, 3 seeds)
    assert r.comparisons[("1x", "10x")].winner == "10x"
    assert r.choice.kind == "higher" and r.recommended_lr == pytest.approx(10 * r.valley_lr, rel=1e-12)
    assert "ten times it, lr 0.581, trained clearly better" in r.verdict.text
    assert r.verdict.kind == "warning"


def test_single_seed_uses_the_runs_own_tail_noise(moons):
    r = lr_range.run(moons, SETUP, lr_range.Config(optimizer="sgd", seeds=1))
    groups = {g.key: g for g in r.groups}
    for (a, b), comp in r.comparisons.items():
        noise = math.sqrt(groups[a].noise[0] ** 2 + groups[b].noise[0] ** 2)
        diff = groups[a].tail[0] - groups[b].tail[0]
        if abs(diff) > NOISE_MULTIPLE * noise:
            assert comp.winner == (a if diff < 0 else b)
        else:
            assert comp.winner is None
    assert "mean of" not in r.verdict.text  # one seed: no "mean of n seeds"
    assert "run-to-run" not in r.verdict.text  # one seed has no run-to-run noise


def test_choice_rule_on_constructed_groups():
    def group(key, tails, diverged=False):
        div = kit.Divergence(5, 0.7, 9.0) if diverged else None
        return kit.RunGroup(key, {"0.1x": 0.1, "1x": 1.0, "10x": 10.0}[key], tuple(range(len(tails))), tuple(tails),
                            (0.01,) * len(tails), tuple(tails), (div,) + (None,) * (len(tails) - 1), pd.DataFrame())

    def choose(g):
        comps = {(a, b): kit.compare_groups(g[a], g[b]) for a, b in (("0.1x", "1x"), ("0.1x", "10x"), ("1x", "10x"))}
        return lr_range.choose_rate(g, comps, 1.0)

    tight = lambda m: [m - 0.01, m, m + 0.01]  # noqa: E731
    g = {"0.1x": group("0.1x", tight(0.5)), "1x": group("1x", tight(0.3)), "10x": group("10x", tight(0.6))}
    assert choose(g).kind == "confirmed" and choose(g).lr == 1.0
    g["10x"] = group("10x", [0.1, 0.5, 0.31])  # lower mean, but within the noise: the valley stays
    assert choose(g).kind == "no_clear_difference" and choose(g).lr == 1.0
    g["10x"] = group("10x", tight(0.1))
    assert choose(g).kind == "higher" and choose(g).lr == 10.0
    g["10x"] = group("10x", tight(0.1), diverged=True)  # best mean of its good seeds, but one seed diverged
    assert choose(g).lr == 1.0
    g["1x"] = group("1x", tight(0.3), diverged=True)
    assert choose(g).kind == "lower" and choose(g).lr == 0.1
    g["0.1x"] = group("0.1x", tight(0.5), diverged=True)
    assert choose(g).kind == "no_stable_rate" and choose(g).lr is None


def test_budget_and_validation_refuse_with_sentences(moons):
    with pytest.raises(ValueError, match="larger than the start"):
        lr_range.run(moons, SETUP, lr_range.Config(start_lr=1.0, end_lr=0.1))
    with pytest.raises(ValueError, match="from 10 to"):
        lr_range.run(moons, SETUP, lr_range.Config(num_steps=3))
    with pytest.raises(ValueError, match="seeds"):
        lr_range.run(moons, SETUP, lr_range.Config(seeds=0))
    # the largest widget values: 2,000 + 3 x 10 x 2,000 updates is past the budget on any model
    with pytest.raises(ValueError, match=r"about \d+ s on a 2-core laptop"):
        lr_range.run(moons, SETUP, lr_range.Config(num_steps=2000, check_steps=2000, seeds=10))


def test_progress_is_reported_through_every_phase(moons):
    calls = []
    lr_range.run(moons, SETUP, lr_range.Config(num_steps=40, check_steps=30, seeds=2),
                 on_progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert len(calls) >= 40 + 3 * 2 * 30  # every update reports (a Stop lands there)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any("check at 10x, seed 1" in m for _, m in calls)


def test_regression_data_range_tests():
    from core.lab import DataSpec

    setup = LabSetup(data=DataSpec(builtin="diabetes"))
    r = lr_range.run(load_data(setup.data, 0), setup, lr_range.Config(num_steps=60, check_steps=30, seeds=2))
    assert r.valley_lr is not None and len(r.check) == 3
    assert r.recommended_lr in [g.lr for g in r.groups] and np.isfinite(r.check["tail_train_loss"]).any()


# ----------------------------------------------------------------------------- review findings (round 2)


def test_a_flat_range_with_nothing_trained_recommends_nothing(moons):
    """Review finding 1: rates 1e-8..1e-5 on moons (Adam): the smoothed loss is flat and the check
    ends where it started, yet the headline said "Use adam at lr 1.22e-07 (the range test's valley)"."""
    r = lr_range.run(moons, SETUP, lr_range.Config(start_lr=1e-8, end_lr=1e-5, check_steps=100, seeds=2))
    raw = r.record["loss"].to_numpy()
    # independent evidence that nothing trained: the batch losses around the valley are the start's,
    # and every checked run ends within 0.05 of where it began
    around = raw[max(0, r.valley_step - 10): r.valley_step + 11]
    assert abs(around.mean() - r.start_loss) < 2 * around.std() / math.sqrt(len(around)) + 0.02
    assert all(abs(g.mean - g.start_mean) < 0.05 for g in r.groups)
    assert r.valley_lr is not None and r.choice.kind == "never_fell" and r.recommended_lr is None
    assert r.verdict.kind == "problem" and "The loss never fell" in r.verdict.text
    assert "higher range" in r.verdict.advice
    head = learning_rate.recommend(r, None)
    assert head.kind == "problem" and "Use adam" not in head.text
    assert head.text.startswith("No rate to recommend: no rate in this range trained")


def test_a_range_whose_loss_only_rose_recommends_nothing_and_says_unchecked(moons):
    """Review finding 2: rates 1..1000 with no check: "Use adam at lr 2.74 (... not checked by
    training)" although the smoothed loss at that valley (~1.5) is above the start (0.65)."""
    r = lr_range.run(moons, SETUP, lr_range.Config(start_lr=1.0, end_lr=1000.0, check_steps=0))
    assert r.valley_lr is not None  # fastai's rule still finds a "valley" in the noise of a blow-up
    at_valley = float(r.record["smoothed"].iloc[r.valley_step])
    assert at_valley > r.start_loss  # the loss there is above where it started: it never fell
    assert r.fell.winner == "start" and r.choice.kind == "never_fell" and r.recommended_lr is None
    assert "rose above its start" in r.verdict.text and "lower range" in r.verdict.advice
    head = learning_rate.recommend(r, None)
    assert head.kind == "problem" and "Use adam" not in head.text and "2.74" not in head.text


def test_a_rate_that_did_not_train_is_never_chosen():
    """kit.trained per seed: a group whose tail is its start in some seed is no candidate."""
    def group(key, tails, starts):
        return kit.RunGroup(key, {"0.1x": 0.1, "1x": 1.0, "10x": 10.0}[key], tuple(range(len(tails))), tuple(tails),
                            (0.005,) * len(tails), tuple(tails), (None,) * len(tails), pd.DataFrame(), tuple(starts))

    still = {k: group(k, [0.70, 0.71, 0.69], [0.70, 0.71, 0.69]) for k in ("0.1x", "1x", "10x")}
    comps = {(a, b): kit.compare_groups(still[a], still[b]) for a, b in (("0.1x", "1x"), ("0.1x", "10x"), ("1x", "10x"))}
    trained = {k: kit.trained(g) for k, g in still.items()}
    assert not any(trained.values())
    assert lr_range.choose_rate(still, comps, 1.0, True, trained).kind == "nothing_trained"
    still["10x"] = group("10x", [0.30, 0.32, 0.31], [0.70, 0.71, 0.69])  # only ten times the valley trained
    comps = {(a, b): kit.compare_groups(still[a], still[b]) for a, b in (("0.1x", "1x"), ("0.1x", "10x"), ("1x", "10x"))}
    trained = {k: kit.trained(g) for k, g in still.items()}
    choice = lr_range.choose_rate(still, comps, 1.0, True, trained)
    assert trained == {"0.1x": False, "1x": False, "10x": True} and choice.key == "10x" and choice.lr == 10.0


def test_one_seed_check_never_speaks_of_run_to_run_noise(moons):
    r = lr_range.run(moons, SETUP, lr_range.Config(num_steps=100, check_steps=60, seeds=1))
    assert "run-to-run" not in r.verdict.text
    if any(c.winner for c in r.comparisons.values()):
        assert "In this one run" in r.verdict.text and kit.ONE_SEED_CAVEAT in r.verdict.text
