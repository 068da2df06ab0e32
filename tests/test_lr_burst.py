"""The lecture's Adagrad (a written-out toy) against its formula, its bursts and their cure, and
torch's Adagrad beside it; the one burst test on runs known by construction."""
import math

import numpy as np
import pytest
import torch
import vl_convert as vlc

from core.charts import learning_rate as charts
from core.diagnoses import lr_burst
from core.surfaces import SURFACES

ELONGATED = SURFACES["elongated"]  # 0.5 (x^2 + 0.01 y^2), start (1.5, 10)


@pytest.fixture(scope="module")
def default():
    return lr_burst.run(None, None, lr_burst.Config())


def test_lecture_rule_follows_its_formula_step_by_step():
    for decay in (False, True):
        out = lr_burst.lecture_adagrad(ELONGATED.gradient, ELONGATED.start, 300, 0.3, decay=decay)
        pts, g = out["points"], out["grads"]
        # the gradient of 0.5 (x^2 + 0.01 y^2), by hand
        np.testing.assert_allclose(g, pts[:-1] * np.array([1.0, 0.01]), rtol=1e-12)
        t = np.arange(1, 301)[:, None]
        sigma = np.sqrt(np.cumsum(g**2, axis=0) / t)  # root mean square of the gradients so far
        eta = 0.3 / np.sqrt(t) if decay else np.full_like(t, 0.3, dtype=float)
        np.testing.assert_allclose(pts[1:], pts[:-1] - eta / sigma * g, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(out["sigma"], sigma, rtol=1e-12)


def test_a_coordinate_with_only_zero_gradients_does_not_move():
    out = lr_burst.lecture_adagrad(lambda p: np.array([p[0], 0.0]), (1.0, 5.0), 20, 0.1)
    assert np.all(out["points"][:, 1] == 5.0) and np.all(np.isfinite(out["points"]))


def test_issue_15_bursts_exist_with_the_lecture_rule_and_vanish_with_decay(default):
    """Measured in issue 15 on the elongated surface at lr 0.3: bursts near steps 714, 1928 and 3500,
    x thrown from ~0 to 2.74 by a step of 5.46; dividing the rate by sqrt(t+1) removes them."""
    lecture = [b for b in default.bursts if b.run == "lecture"]
    assert [b.coordinate for b in lecture] == ["x", "x", "x"]
    assert [b.step for b in lecture] == [714, 1929, 3501]
    assert lecture[0].size == pytest.approx(5.46, abs=0.005) and lecture[0].reach == pytest.approx(2.74, abs=0.005)
    assert all(b.quiet < b.size / lr_burst.BURST_JUMP for b in lecture)
    assert not [b for b in default.bursts if b.run != "lecture"]  # the decayed rule and torch: none
    s = default.summary.set_index("run")
    assert s.loc["lecture_decay", "largest_step_per_lr"] <= 1 + 1e-12
    assert default.verdict.kind == "good"
    assert "the bursts exist with the lecture's rule and vanish with decay" in default.verdict.text
    assert "burst 3 times: on x at steps 714, 1,929 and 3,501" in default.verdict.text


def test_torch_adagrad_is_the_lecture_rule_with_the_decay_built_in(default):
    # an independent path: torch.optim.Adagrad driven here, against the decayed lecture rule
    p = torch.tensor(ELONGATED.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adagrad([p], lr=0.3)
    for _ in range(500):
        opt.zero_grad()
        ELONGATED.fn(p).backward()
        opt.step()
    decayed = lr_burst.lecture_adagrad(ELONGATED.gradient, ELONGATED.start, 500, 0.3, decay=True)["points"][-1]
    np.testing.assert_allclose(p.detach().numpy(), decayed, rtol=1e-6, atol=1e-9)
    assert default.torch_vs_decay < 1e-6


def test_burst_test_on_constructed_moves():
    quiet = np.full((80, 2), 1e-3)
    moves = quiet.copy()
    moves[60, 0] = 0.5  # 500x the quiet median, 5x the rate 0.1: a burst on x
    moves[70, 0] = 0.3  # within the episode
    moves[65, 1] = 0.15  # 150x quiet but only 1.5x the rate: not a burst
    moves[10, 0] = 5.0  # big, but no 50 quiet steps before it: not a burst
    pts = np.zeros((81, 2))
    pts[61, 0] = -3.0
    found = lr_burst.find_bursts(moves, pts, 0.1, "r")
    assert [(b.coordinate, b.step, b.end, b.size, b.reach) for b in found] == [("x", 60, 70, 0.5, 3.0)]


def test_rmsprops_first_big_step_is_not_a_burst():
    """torch's RMSprop takes a first step of 10x the rate (its average starts at 0): no quiet
    stretch before it, so the burst test does not pass."""
    surface = SURFACES["flat_then_steep"]
    p = torch.tensor(surface.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.RMSprop([p], lr=0.03)
    pts = [p.detach().numpy().copy()]
    for _ in range(150):
        opt.zero_grad()
        surface.fn(p).backward()
        opt.step()
        pts.append(p.detach().numpy().copy())
    pts = np.array(pts)
    moves = np.abs(np.diff(pts, axis=0))
    assert moves[0].max() / 0.03 == pytest.approx(10.0, rel=1e-4)
    assert lr_burst.find_bursts(moves, pts, 0.03) == []


def test_no_burst_is_claimed_when_the_run_is_short():
    r = lr_burst.run(None, None, lr_burst.Config(steps=500))
    assert r.bursts == [] and r.verdict.kind == "info" and "No burst" in r.verdict.text


def test_config_is_validated_with_sentences():
    with pytest.raises(ValueError, match="Unknown surface"):
        lr_burst.run(None, None, lr_burst.Config(surface="nope"))
    with pytest.raises(ValueError, match="Run from 51"):
        lr_burst.run(None, None, lr_burst.Config(steps=20_000))
    with pytest.raises(ValueError, match="positive"):
        lr_burst.run(None, None, lr_burst.Config(lr=-1.0))


def test_progress_lands_often(default):
    calls = []
    lr_burst.run(None, None, lr_burst.Config(steps=1000), on_progress=lambda f, m: calls.append(f))
    assert len(calls) >= 3 * 1000 // lr_burst.PROGRESS_EVERY and calls[-1] == 1.0


def test_charts_list_every_run_and_mark_the_bursts(default):
    svg = vlc.vegalite_to_svg(charts.burst_path_chart(default).to_dict())
    for label in lr_burst.RUN_LABELS.values():
        assert label in svg
    spec = charts.burst_path_chart(default).to_dict()
    marked = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rule"][0]
    steps = [row["step"] for row in spec["datasets"][marked["data"]["name"]]]
    assert steps == [714, 1929, 3501]
    step_spec = charts.burst_step_chart(default).to_dict()
    assert step_spec["layer"][0]["encoding"]["y"]["scale"]["domain"][0] == pytest.approx(0.3e-12)
    assert math.isfinite(step_spec["layer"][0]["encoding"]["y"]["scale"]["domain"][1])
