"""Momentum rolls past a local minimum (lecture 2.2.1), checked against an independent numpy run."""
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.diagnoses.local_minimum import Config, run, settled_where
from core.rules import critical_test
from core.surfaces import SURFACES, WELL_BARRIER_X, WELL_LOCAL_X


def _grad(p):
    x, y = p
    return np.array([4 * x**3 - 4 * x + 0.5, 2 * y])


def _heavy_ball(start, lr, beta, steps):
    """torch.optim.SGD's momentum written out: v = beta v + g (v = g at the first step), p -= lr v."""
    p, v = np.array(start, float), None
    path = [p.copy()]
    for _ in range(steps):
        g = _grad(p)
        v = g if v is None else beta * v + g
        p = p - lr * v
        path.append(p.copy())
    return np.array(path)


def test_paths_match_the_update_rules():
    res = run(None, None, Config())
    for racer, beta in (("sgd", 0.0), ("momentum", 0.9)):
        path = res.frame[res.frame["racer"] == racer][["x", "y"]].to_numpy()
        np.testing.assert_allclose(path, _heavy_ball((2.0, 0.5), 0.01, beta, 300), rtol=1e-10, atol=1e-12)


def test_gradient_descent_stops_in_the_dip_and_momentum_does_not():
    res = run(None, None, Config())
    gd = res.frame[res.frame["racer"] == "sgd"]
    end = gd[["x", "y"]].to_numpy()[-1]
    assert abs(end[0] - WELL_LOCAL_X) < 1e-3 and (gd["x"] > WELL_BARRIER_X).all()  # never crossed the ridge
    h = SURFACES["double_well"].hessian(end)
    eig = np.linalg.eigvalsh(h)
    test = critical_test(float(np.linalg.norm(_grad(end))), eig[0], eig[-1], loss_scale=float(gd["loss"].iloc[0]))
    assert test.critical and eig[0] > 0  # a true local minimum: gradient ~0, curvature positive
    assert res.findings.settled == {"sgd": "local", "momentum": "global", "adam": "global"}
    assert res.findings.passed_barrier["momentum"] and not res.findings.passed_barrier["sgd"]
    assert "gradient descent (lr 0.01) settled in the shallow local minimum" in res.verdict.text
    assert "momentum (lr 0.01, beta 0.9) settled in the deeper global minimum" in res.verdict.text


def test_without_momentum_the_ball_stops_too():
    res = run(None, None, Config(momentum=0.0))
    assert res.findings.settled["momentum"] == "local"
    assert "made no difference" in res.verdict.text


def test_settled_where_needs_the_path_to_stay():
    x = np.array([2.0, 0.93, 0.5, 0.93])
    assert settled_where(x, np.zeros(4)) == ("local", 3)
    assert settled_where(np.array([0.5]), np.zeros(1)) == ("moving", None)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(lr=0.0), dict(momentum=1.0), dict(start_x=9.0)])
def test_bad_configs_raise(bad):
    with pytest.raises(ValueError):
        run(None, None, Config(**bad))


def test_saddle_page_shows_the_rolling_ball():
    at = AppTest.from_file("../app.py", default_timeout=90).run()
    at.switch_page("app_pages/saddle.py").run()
    assert not at.exception
    headers = [h.value for h in at.subheader]
    assert any("local minimum" in h for h in headers)
    texts = " ".join(str(a.value) for a in at.info) + " ".join(str(a.value) for a in at.warning)
    assert "settled in the shallow local minimum" in texts
