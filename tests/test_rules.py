"""core.rules: the gradient level (the yardstick of "the gradient collapsed") and the stall rule,
on records whose answers are known by construction. Shared by the Gradient stall page and the
training-run page: tests/test_stall.py, tests/test_scenarios.py and tests/test_runlog.py run
the same rules on whole runs."""
import doctest

import numpy as np
import pytest

import core.rules as rules
from core.rules import gradient_collapsed, gradient_level, smooth, stall_spans


def test_doctests():
    assert doctest.testmod(rules).failed == 0


def _decaying_grad(n: int, seed: int) -> np.ndarray:
    """|g| of a healthy run, as in the reviewer's trainer_state_gn40.json: 1.5 exp(-s/800) + 0.3
    with noise, logged every 10 steps (1.8 at the start, 0.35 at the end)."""
    s = np.arange(10, 10 * n + 1, 10)
    return 1.5 * np.exp(-s / 800) + 0.3 + np.random.default_rng(seed).normal(0, 0.05, n)


# --------------------------------------------------------------------------- gradient level
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("width", [1, 2, 5])
def test_one_gradient_spike_cannot_set_the_level(seed, width):
    """Review finding: one |g| of 40 made the level 20.5 (blocks of 2 records) and a stall with
    median |g| 0.705 was called a critical point (3.4% of the level)."""
    g = _decaying_grad(200, seed)
    spiked = g.copy()
    spiked[59] = 40.0
    level = gradient_level(spiked, width)
    # the level is a typical |g| of this run: no larger than its largest spike-free records
    assert level <= np.max(g)
    assert level == pytest.approx(gradient_level(g, width), rel=0.05)  # the spike changes next to nothing
    assert not gradient_collapsed(0.705, level)  # the reviewer's stall: |g| is 40% of the level, not ~0


def test_a_few_adjacent_spike_records_cannot_set_the_level():
    g = _decaying_grad(300, 3)
    for k in (2, 3, 4):
        spiked = g.copy()
        spiked[100:100 + k] = [25.0, 40.0, 30.0, 35.0][:k]
        assert gradient_level(spiked, 2) <= np.max(g)


def test_records_inside_a_loss_blow_up_do_not_set_the_level():
    """Review finding: in a warmup + cosine run diverging after step 2000 the level was ~40, set
    by the exploding gradients, and a stall with |g| ~1 (normal all run) read as a critical point."""
    rng = np.random.default_rng(0)
    healthy = 400
    loss = np.r_[np.linspace(3.8, 0.8, healthy) + rng.normal(0, 0.02, healthy), 0.8 * 2.0 ** (np.arange(46) / 8)]
    grad = np.r_[1.0 + rng.normal(0, 0.05, healthy), 1.1 * 2.0 ** (np.arange(46) / 8)]
    assert loss[-1] / loss[healthy - 1] > 40  # the blow-up, under the 10x-the-start divergence limit
    for width in (4, 10, 45):  # the run-log page's smoothing width, the rule's floor, a stall window
        level = gradient_level(grad, width, loss=loss)
        assert level <= np.max(grad[:healthy]), width  # the healthy part sets it
        assert level >= np.median(grad[:healthy]), width
        assert not gradient_collapsed(1.0, level)
    # without the loss the rule cannot tell a blow-up; a stretch of 45 records is then set by it
    assert gradient_level(grad, 45) > 2.0


def test_a_run_stuck_on_a_saddle_from_step_0_gets_its_level_from_the_escape():
    rng = np.random.default_rng(1)
    plateau = np.abs(rng.normal(1e-3, 2e-4, 600))
    escape = 1.0 + rng.normal(0, 0.05, 40)  # the escape: 40 records of a normal gradient
    after = 0.05 * np.exp(-np.arange(400) / 100) + 1e-3
    grad = np.r_[plateau, escape, after]
    loss = np.r_[np.full(600, 0.99), np.linspace(0.99, 0.1, 40), np.full(400, 0.05)]
    level = gradient_level(grad, 15, loss=loss)
    assert np.min(escape) <= level <= np.max(escape)
    assert gradient_collapsed(float(np.median(plateau)), level)  # the plateau is a critical point


def test_a_noisy_mini_batch_loss_is_not_a_blow_up():
    # per-step mini-batch losses with 30% noise around a falling level: every record is healthy,
    # so the level is the same with and without the loss
    rng = np.random.default_rng(4)
    n = 2000
    loss = np.linspace(2.0, 0.5, n) * np.exp(rng.normal(0, 0.3, n))
    grad = np.linspace(2.0, 0.5, n) * np.exp(rng.normal(0, 0.3, n))
    assert gradient_level(grad, 10, loss=loss) == pytest.approx(gradient_level(grad, 10), rel=0.02)


# --------------------------------------------------------------------------- stalls
def test_a_loss_that_rises_many_fold_is_not_a_stall():
    """Review finding: 'the loss stalled at steps 1,475-2,230' over a blow-up from 0.865 to 33.6."""
    window, eps = 45, 0.01
    flat = np.full(200, 0.8)
    blowup = 0.8 * 2.0 ** (np.arange(1, 47) / 8)  # doubles every 8 records
    loss = np.r_[np.linspace(3.0, 0.8, 200), flat, blowup]
    spans = stall_spans(smooth(loss, 4), window, eps, raw=loss)
    assert spans, "the flat stretch is still a stall"
    for a, b in spans:
        assert loss[a:b + 1].max() < 2 * 0.8, (a, b)  # no span reaches into the blow-up
    a, b = spans[-1]
    assert a <= 200 + 10 and b >= 395  # the flat stretch itself is covered


@pytest.mark.parametrize("amplitude", [0.005, 0.02])
def test_a_level_or_gently_wobbling_loss_is_still_a_stall(amplitude):
    t = np.arange(600)
    loss = np.r_[np.linspace(2, 1, 100), 1 + amplitude * np.sin(t[100:] / 15)]
    spans = stall_spans(smooth(loss, 5), 50, 0.01, raw=loss)
    assert len(spans) == 1 and spans[0][0] <= 150 and spans[0][1] == 599


def test_a_noisy_flat_mini_batch_loss_is_still_a_stall():
    # 20% mini-batch noise: smoothed over a tenth of a window, windows often "rise" by 10% by noise
    rng = np.random.default_rng(5)
    loss = np.exp(rng.normal(0, 0.2, 1500))
    spans = stall_spans(smooth(loss, 10), 100, 0.01, raw=loss)
    covered = sum(b - a + 1 for a, b in spans)
    assert covered >= 0.9 * len(loss)


def test_a_slow_creep_up_within_the_tolerance_counts_as_not_falling():
    # +3% per window (3x rel_eps): not falling, not a blow-up
    loss = 1.0 * (1.03 ** (np.arange(500) / 50))
    assert stall_spans(loss, 50, 0.01) == [(0, 499)]
