"""The minimum-ratio experiment (lecture 2.2.2): the scatter has the points asked for, each at a
point whose gradient is ~0 by core.rules.critical_test, and every number is recomputed here with a
hand-written network, torch autograd's Hessian and numpy's eigensolver."""
import math

import numpy as np
import pytest
import torch

from core.data import load_builtin
from core.diagnoses.minimum_ratio import Config, honesty_note, run, validate
from core.lab import LabSetup
from core.rules import CRITICAL_GAIN
from core.runs import prepare_split, subsample_rows

F64 = torch.float64


@pytest.fixture(scope="module")
def moons():
    return run(load_builtin("moons"), LabSetup(), Config(widths=(2, 4), seeds=4))


def _reference_loss(theta, X, Y, n_in, width, n_out):
    # One hidden tanh layer, nn.Linear layout (weight rows = outputs), squared error on one-hot
    # targets summed over classes and averaged over rows.
    i = 0
    W1 = theta[i: i + width * n_in].reshape(width, n_in); i += width * n_in
    b1 = theta[i: i + width]; i += width
    W2 = theta[i: i + n_out * width].reshape(n_out, width); i += n_out * width
    b2 = theta[i: i + n_out]
    out = torch.tanh(X @ W1.T + b1) @ W2.T + b2
    return ((out - Y) ** 2).sum(dim=1).mean()


def test_the_scatter_has_the_points_asked_for_each_with_a_gradient_below_the_threshold(moons):
    pts = moons.points
    assert moons.asked == 8 and len(pts) == 8 and len(moons.params) == 8
    assert sorted(pts.groupby("width").size().to_dict().items()) == [(2, 4), (4, 4)]
    split = prepare_split(load_builtin("moons"), LabSetup())
    X, y = subsample_rows(split.X_train, split.y_train, Config().rows, split.task, 0)
    X = torch.as_tensor(X, dtype=F64)
    Y = torch.nn.functional.one_hot(torch.as_tensor(y), 2).to(F64)
    for row, theta in zip(pts.itertuples(), moons.params):
        theta = torch.as_tensor(theta, dtype=F64)
        f = lambda t: _reference_loss(t, X, Y, 2, row.width, 2)  # noqa: E731
        t = theta.clone().requires_grad_(True)
        g = float(torch.autograd.grad(f(t), t)[0].norm())
        eigs = np.linalg.eigvalsh(torch.autograd.functional.hessian(f, theta).numpy())
        assert row.n_params == len(eigs) == 2 * row.width + row.width + 2 * row.width + 2
        assert row.loss == pytest.approx(float(f(theta)), rel=1e-9)
        assert row.grad_norm == pytest.approx(g, rel=1e-5, abs=1e-12)
        # below the critical threshold: |g|^2 / (2 max|lambda|) < 1e-4 x the network's start loss
        assert g * g / (2 * np.abs(eigs).max()) < CRITICAL_GAIN * row.start_loss
        tol = 1e-4 * np.abs(eigs).max() + 1e-10
        assert row.min_ratio == pytest.approx(np.mean(eigs > tol))
        assert row.neg_share == pytest.approx(np.mean(eigs < -tol))
        assert row.min_ratio + row.neg_share + row.zero_share == pytest.approx(1.0)
        expected = ("saddle point" if eigs[0] < -tol and eigs[-1] > tol else "local minimum" if eigs[0] > tol
                    else "flat (degenerate)")
        assert row.kind == expected


def test_the_gradient_was_driven_down_from_where_training_ended(moons):
    pts = moons.points
    assert (pts["grad_norm"] <= pts["trained_grad_norm"] * (1 + 1e-9)).all()
    assert (pts["grad_norm"] / pts["trained_grad_norm"]).median() < 0.5
    assert moons.median_grad == pytest.approx(pts["grad_norm"].median())


def test_the_verdict_counts_agree_with_the_points(moons):
    pts, text = moons.points, moons.verdict.text
    ones = int((pts["min_ratio"] >= 1).sum())
    assert f"{ones} of {len(pts)} points have ratio 1" in text
    assert f"{int((pts['neg_share'] > 0).sum())} have a negative eigenvalue" in text
    if moons.spearman_p < 0.05:
        assert "Points with a higher minimum ratio have" in text
        assert ("lower loss" in text) == (moons.spearman_rho < 0)
    else:
        assert "No clear relation" in text
    note = honesty_note(moons)
    assert "saddles as much as minima" in note and "not how often gradient descent stops" in note


def test_wide_data_is_projected_and_widths_too_large_are_left_out():
    res = run(load_builtin("digits"), LabSetup(), Config(widths=(2, 40), seeds=1, max_params=200, train_steps=50,
                                                           max_evals=5))
    assert res.n_inputs == 8 and res.widths == (2,)
    assert any("principal components" in n for n in res.notes) and any("left out" in n for n in res.notes)
    assert len(res.points) == 1 and res.points["n_params"].iloc[0] == 8 * 2 + 2 + 2 * 10 + 10


def test_points_that_fail_the_critical_test_are_replaced_and_counted():
    # No minimisation and no training: a freshly initialised network is nowhere near a critical
    # point, so every try fails the test and the shortfall is said, not hidden.
    res = run(load_builtin("moons"), LabSetup(), Config(widths=(4,), seeds=2, train_steps=0, max_evals=1, retries=0.5))
    assert len(res.points) < 2 and res.rejected >= 1
    assert res.rejected + len(res.points) == 2 + 1  # seeds + ceil(0.5 x seeds) tries
    assert any("passed the critical test" in n for n in res.notes)


def test_a_stop_lands_between_evaluations():
    class Stop(Exception):
        pass

    calls = []

    def on_progress(fraction, message):
        calls.append(message)
        if len(calls) > 3:
            raise Stop

    with pytest.raises(Stop):
        run(load_builtin("moons"), LabSetup(), Config(widths=(2, 4, 8), seeds=4), on_progress=on_progress)


@pytest.mark.parametrize("bad, message", [
    (dict(widths=()), "widths"), (dict(seeds=0), "at least one"), (dict(widths=(2,) * 3, seeds=50), "At most"),
    (dict(rows=5), "20 rows"), (dict(lr=math.nan), "positive"),
])
def test_impossible_configs_raise_plain_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        validate(Config(**bad))
