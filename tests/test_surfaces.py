"""Tests for core.surfaces against closed forms, numpy reference loops and scipy."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import minimize

from core.surfaces import (
    OPTIMIZERS,
    SURFACES,
    EscapeRule,
    grid,
    make_optimizer,
    negative_curvature_step,
    run_optimizer,
    stack,
)

# Closed forms written independently of the torch code, in numpy.
CLOSED_FORMS = {
    "lecture": lambda x, y: (1 - x * y) ** 2,
    "saddle": lambda x, y: x**2 - y**2 + y**4 / 4,
    "monkey": lambda x, y: x**3 - 3 * x * y**2 + 0.75 * (x**2 + y**2) ** 2,
    "elongated": lambda x, y: 0.5 * (x**2 + 0.01 * y**2),
    "rosenbrock": lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
    "flat_then_steep": lambda x, y: 0.5 * y**2 - 1 / (1 + 4 * (x - 1) ** 2),
    "double_well": lambda x, y: x**4 - 2 * x**2 + 0.5 * x + y**2,
}


def test_every_surface_has_a_closed_form_here():
    assert set(SURFACES) == set(CLOSED_FORMS)
    for key, s in SURFACES.items():
        assert s.key == key
        assert len(s.axis_names) == 2 and s.description and s.formula


@pytest.mark.parametrize("key", list(CLOSED_FORMS))
def test_fn_matches_closed_form(key):
    s = SURFACES[key]
    (x0, x1), (y0, y1) = s.bounds
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(x0, x1, 25), rng.uniform(y0, y1, 25)])
    expected = CLOSED_FORMS[key](pts[:, 0], pts[:, 1])
    single = np.array([s.loss(p) for p in pts])
    batch = s.fn(torch.from_numpy(pts)).numpy()
    np.testing.assert_allclose(single, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batch, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("key", list(CLOSED_FORMS))
def test_gradient_vanishes_at_listed_critical_points(key):
    s = SURFACES[key]
    assert s.critical_points
    for c in s.critical_points:
        p = torch.tensor([c.x, c.y], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(s.fn(p), p)
        np.testing.assert_allclose(g.numpy(), 0.0, atol=1e-12)
    minima = [s.loss((c.x, c.y)) for c in s.critical_points if c.kind == "local minimum"]
    assert min(minima) == pytest.approx(s.min_loss, abs=1e-12)
    # No grid point lies below the stated global minimum.
    assert grid(s, n=60)["loss"].min() >= s.min_loss - 1e-12


def test_lecture_saddle_hessian_and_valley():
    s = SURFACES["lecture"]
    p = torch.zeros(2, dtype=torch.float64)
    H = torch.autograd.functional.hessian(s.fn, p).numpy()  # reference independent of core
    np.testing.assert_allclose(H, [[0.0, -2.0], [-2.0, 0.0]], atol=1e-12)
    assert s.loss(s.saddle) == 1.0
    assert s.continuum
    for c in s.critical_points:
        if c.kind == "local minimum":
            assert c.x * c.y == pytest.approx(1.0, abs=1e-12)


def test_monkey_minima_found_numerically_and_flat_saddle():
    s = SURFACES["monkey"]
    f = lambda p: CLOSED_FORMS["monkey"](p[0], p[1])  # noqa: E731
    rng = np.random.default_rng(0)
    found = []
    for start in rng.uniform(-1.5, 1.5, size=(20, 2)):
        r = minimize(f, start, method="BFGS", options={"gtol": 1e-10})
        if not any(np.allclose(r.x, q, atol=1e-5) for q in found):
            found.append(r.x)
    listed = np.array([(c.x, c.y) for c in s.critical_points if c.kind == "local minimum"])
    assert len(found) == len(listed) == 3
    for q in found:
        assert np.min(np.linalg.norm(listed - q, axis=1)) < 1e-5
        assert f(q) == pytest.approx(s.min_loss, abs=1e-10)
    # The origin: zero gradient and zero Hessian, yet not a minimum (L < 0 along -x).
    np.testing.assert_allclose(s.hessian((0.0, 0.0)), 0.0, atol=1e-12)
    assert s.loss((-0.01, 0.0)) < 0 < s.loss((0.01, 0.0))


def test_flat_then_steep_is_flat_then_steep():
    s = SURFACES["flat_then_steep"]
    xs = np.linspace(-5, 3, 2001)
    pts = torch.tensor(np.column_stack([xs, np.zeros_like(xs)]), requires_grad=True)
    (g,) = torch.autograd.grad(s.fn(pts).sum(), pts)
    slope = np.abs(g[:, 0].numpy())
    # closed-form derivative of -1/(1 + 4 (x-1)^2)
    np.testing.assert_allclose(g[:, 0].numpy(), 8 * (xs - 1) / (1 + 4 * (xs - 1) ** 2) ** 2, rtol=1e-12, atol=1e-15)
    assert abs(s.gradient(s.start)[0]) < 0.005
    assert slope.max() > 1.0


def test_grid_values_equal_fn():
    s = SURFACES["rosenbrock"]
    df = grid(s, n=80)
    assert list(df.columns) == ["x", "y", "loss", "log_loss"] and len(df) == 6400
    assert df["x"].min() == s.bounds[0][0] and df["y"].max() == s.bounds[1][1]
    rows = df.sample(20, random_state=0)
    expected = CLOSED_FORMS["rosenbrock"](rows["x"].to_numpy(), rows["y"].to_numpy())
    np.testing.assert_allclose(rows["loss"], expected, rtol=1e-12)
    np.testing.assert_allclose(rows["log_loss"], np.log10(expected - s.min_loss + 1e-3), rtol=1e-12)

    clipped = grid(s, n=80, clip_quantile=0.9)
    assert clipped["loss"].max() == pytest.approx(np.quantile(df["loss"], 0.9), rel=1e-12)
    np.testing.assert_array_equal(clipped["log_loss"], df["log_loss"])

    small = grid(s, n=5, bounds=((0.0, 1.0), (0.0, 2.0)))
    assert sorted(small["x"].unique()) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])


def _numpy_gd(start, lr, steps, a=1.0, b=0.01, momentum=0.0):
    p, v = np.array(start, dtype=float), np.zeros(2)
    out = [p.copy()]
    for k in range(steps):
        g = np.array([a * p[0], b * p[1]])
        v = g if k == 0 else momentum * v + g  # torch SGD: the first buffer is the gradient
        p = p - lr * (v if momentum else g)
        out.append(p.copy())
    return np.array(out)


def test_gd_and_momentum_match_numpy_loops():
    s = SURFACES["elongated"]
    t = run_optimizer(s, "gd", (1.5, 10.0), steps=50, lr=0.3)
    ref = _numpy_gd((1.5, 10.0), 0.3, 50)
    np.testing.assert_allclose(t.frame[["x", "y"]].to_numpy(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t.frame["loss"], CLOSED_FORMS["elongated"](ref[:, 0], ref[:, 1]), rtol=1e-12)
    f = t.frame.iloc[:-1]
    np.testing.assert_allclose(f[["eff_lr_x", "eff_lr_y"]], 0.3, rtol=1e-9)
    np.testing.assert_allclose(f["step_x"], np.abs(np.diff(ref[:, 0])), rtol=1e-12)
    assert list(t.frame["step"]) == list(range(51)) and t.diverged_at is None
    assert t.frame.iloc[-1][["step_x", "eff_lr_x"]].isna().all()

    m = run_optimizer(s, "momentum", (1.5, 10.0), steps=50, lr=0.3, momentum=0.8)
    ref_m = _numpy_gd((1.5, 10.0), 0.3, 50, momentum=0.8)
    np.testing.assert_allclose(m.frame[["x", "y"]].to_numpy(), ref_m, rtol=1e-12, atol=1e-12)


def test_adagrad_effective_lr_matches_accumulator():
    s = SURFACES["elongated"]
    lr, eps = 0.5, 1e-10
    t = run_optimizer(s, "adagrad", (1.5, 10.0), steps=20, lr=lr)
    p, G = np.array([1.5, 10.0]), np.zeros(2)
    for k in range(20):
        g = np.array([p[0], 0.01 * p[1]])
        G += g**2
        step = lr * g / (np.sqrt(G) + eps)
        row = t.frame.iloc[k]
        np.testing.assert_allclose([row.eff_lr_x, row.eff_lr_y], lr / (np.sqrt(G) + eps), rtol=1e-9)
        np.testing.assert_allclose([row.step_x, row.step_y], np.abs(step), rtol=1e-9)
        p = p - step


@pytest.mark.parametrize("name", ["gd", "momentum"])
def test_exact_saddle_traps_gd_and_momentum_but_not_noise(name):
    s = SURFACES["lecture"]
    t = run_optimizer(s, name, (0.0, 0.0), steps=120, lr=0.1)
    assert (t.frame["loss"] == 1.0).all() and (t.frame[["x", "y"]] == 0.0).all().all()
    assert (t.frame["grad_norm"] == 0.0).all()
    noisy = run_optimizer(s, name, (0.0, 0.0), steps=120, lr=0.1, noise_sigma=0.01, seed=3)
    assert noisy.frame.loc[1:, ["x", "y"]].abs().to_numpy().max() > 0
    assert noisy.frame["loss"].iloc[-1] < 0.5
    again = run_optimizer(s, name, (0.0, 0.0), steps=120, lr=0.1, noise_sigma=0.01, seed=3)
    pd.testing.assert_frame_equal(noisy.frame, again.frame)
    other = run_optimizer(s, name, (0.0, 0.0), steps=120, lr=0.1, noise_sigma=0.01, seed=4)
    assert not np.allclose(noisy.frame["x"], other.frame["x"])


def test_momentum_escapes_saddle_faster_than_gd():
    s = SURFACES["lecture"]
    start = 1e-3 * np.random.default_rng(0).standard_normal(2)
    gd = run_optimizer(s, "gd", start, steps=300, lr=0.05)
    mom = run_optimizer(s, "momentum", start, steps=300, lr=0.05, momentum=0.9)
    n_gd, n_mom = gd.first_below(0.5), mom.first_below(0.5)
    assert n_gd is not None and n_mom is not None
    assert n_mom < n_gd
    # Near the saddle gd grows the (1,1) component by (1 + 2 lr) per step: ~log(1000)/log(1.1) steps.
    c = abs(start.sum()) / math.sqrt(2)
    assert n_gd == pytest.approx(math.log(1 / c) / math.log(1.1), rel=0.25)


def test_adam_first_step_is_lr_in_each_coordinate():
    s = SURFACES["elongated"]
    for lr in (0.01, 0.3):
        t = run_optimizer(s, "adam", (1.5, 10.0), steps=3, lr=lr)
        np.testing.assert_allclose(t.frame.loc[0, ["step_x", "step_y"]].to_numpy(float), lr, rtol=1e-6)
    # which gd would not do: its steps are lr * |g| = lr * (1.5, 0.1)
    g = run_optimizer(s, "gd", (1.5, 10.0), steps=1, lr=0.3).frame.loc[0, ["step_x", "step_y"]]
    np.testing.assert_allclose(g.to_numpy(float), [0.45, 0.03], rtol=1e-12)


def test_divergence_is_reported_at_its_step():
    s = SURFACES["elongated"]
    lr = 1000.0
    ref = _numpy_gd((1.5, 10.0), lr, 10)
    loss = 0.5 * (ref[:, 0] ** 2 + 0.01 * ref[:, 1] ** 2)
    # The one rule (core.rules): a coordinate past 1e6, or a loss past start + 9 x max(|start|, 1).
    bad = (np.abs(ref).max(axis=1) > 1e6) | (loss > loss[0] + 9 * max(abs(loss[0]), 1.0))
    expected = int(np.argmax(bad))
    t = run_optimizer(s, "sgd", (1.5, 10.0), steps=50, lr=lr)
    assert t.diverged_at == expected == 1
    assert len(t.frame) == expected + 1 and t.frame["step"].iloc[-1] == expected
    stable = run_optimizer(s, "gd", (1.5, 10.0), steps=50, lr=1.9)  # lr < 2 / a
    assert stable.diverged_at is None


def test_lr_scheduler_drives_the_updates():
    s = SURFACES["elongated"]
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)  # noqa: E731
    t = run_optimizer(s, "gd", (1.5, 10.0), steps=20, lr=0.4, lr_scheduler=sched)
    expected = 0.4 * 0.5 ** (np.arange(21) // 5)
    np.testing.assert_allclose(t.frame["lr"], expected, rtol=1e-12)
    np.testing.assert_allclose(t.frame["eff_lr_x"].iloc[:-1], expected[:-1], rtol=1e-9)


def test_negative_curvature_step_at_lecture_saddle():
    s = SURFACES["lecture"]
    r = negative_curvature_step(s, (0.0, 0.0))
    assert r.eig_min == pytest.approx(-2.0, abs=1e-12) and r.eig_max == pytest.approx(2.0, abs=1e-12)
    assert abs(r.direction @ np.array([1.0, 1.0]) / math.sqrt(2)) == pytest.approx(1.0, abs=1e-12)
    assert r.loss_before == 1.0 and r.loss_after < r.loss_before
    # default rule: length 0.5 * |eig_min| = 1 along ±(1,1)/sqrt(2): w1*w2 = 1/2, L = 1/4
    assert r.step_size == 1.0 and r.loss_after == pytest.approx(0.25, abs=1e-12)
    np.testing.assert_allclose(np.abs(r.new_point), 1 / math.sqrt(2), rtol=1e-12)
    assert r.hessian_evals == 1 and r.has_negative_curvature


def test_negative_curvature_step_backtracks_and_stops():
    s = SURFACES["lecture"]
    # scale 1: length 2 gives L = (1 - 2)^2 = 1, not lower; one halving gives length 1.
    r = negative_curvature_step(s, (0.0, 0.0), scale=1.0)
    assert r.step_size == 1.0 and r.loss_evals == 4
    flat = negative_curvature_step(SURFACES["monkey"], (0.0, 0.0))
    assert flat.eig_min == 0.0 and not flat.has_negative_curvature
    assert flat.step_size == 0.0 and np.array_equal(flat.new_point, [0.0, 0.0])
    sad = negative_curvature_step(SURFACES["saddle"], (0.0, 0.0))
    np.testing.assert_allclose(np.abs(sad.direction), [0.0, 1.0], atol=1e-12)


def test_escape_rule_frees_gd_from_exact_saddle():
    s = SURFACES["lecture"]
    t = run_optimizer(s, "gd", (0.0, 0.0), steps=60, lr=0.1, escape=EscapeRule())
    assert bool(t.frame["curvature_step"].iloc[0]) and t.frame["curvature_step"].sum() == 1
    assert t.frame["loss"].iloc[1] == pytest.approx(0.25, abs=1e-12)
    assert t.frame["loss"].iloc[-1] < 1e-6
    # on the monkey saddle there is no negative curvature: the rule cannot help
    m = run_optimizer(SURFACES["monkey"], "gd", (0.0, 0.0), steps=10, lr=0.1, escape=EscapeRule())
    assert not m.frame["curvature_step"].any() and (m.frame["loss"] == 0.0).all()


def test_every_optimizer_runs_and_stack():
    s = SURFACES["lecture"]
    trajs = [run_optimizer(s, name, s.start, steps=30, lr=0.05) for name in OPTIMIZERS]
    for t, name in zip(trajs, OPTIMIZERS):
        assert t.optimizer == name and t.label == OPTIMIZERS[name] and len(t.frame) == 31
        assert t.frame["loss"].iloc[-1] < t.frame["loss"].iloc[0] and t.seconds > 0
    long = stack(trajs)
    assert len(long) == 31 * len(OPTIMIZERS) and {"optimizer", "label"} <= set(long.columns)


def test_make_optimizer_passes_keywords():
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer("nesterov", [p], lr=0.1, momentum=0.5)
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[0]["nesterov"]
    assert make_optimizer("adam", [p], lr=0.1, betas=(0.8, 0.9)).param_groups[0]["betas"] == (0.8, 0.9)
    assert isinstance(make_optimizer("rmsprop", [p], lr=0.1), torch.optim.RMSprop)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lion", [p], lr=0.1)
