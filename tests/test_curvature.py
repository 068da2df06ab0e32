"""core.curvature against closed forms, torch.autograd.functional.hessian and numpy eigvalsh."""
import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler
from torch import nn

from core.curvature import (
    EXACT_MAX_PARAMS,
    Extremes,
    classify_point,
    gradient,
    hessian_eigenvalues,
    hessian_extremes,
    hessian_matrix,
    hutchinson_trace,
    hvp,
    model_loss,
)

F64 = torch.float64


def lecture_loss(t):
    """L(w1, w2) = (1 - w1 w2)^2: a saddle at the origin, a valley of minima on w1 w2 = 1."""
    return (1 - t[0] * t[1]) ** 2


def lecture_hessian(w1, w2):
    # d2L/dw1^2 = 2 w2^2, d2L/dw2^2 = 2 w1^2, d2L/dw1dw2 = 4 w1 w2 - 2
    return np.array([[2 * w2**2, 4 * w1 * w2 - 2], [4 * w1 * w2 - 2, 2 * w1**2]])


def quadratic(A):
    A = torch.as_tensor(A, dtype=F64)
    return lambda t: 0.5 * t @ A @ t


def random_symmetric(n, eigenvalues, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q @ np.diag(eigenvalues) @ q.T


def tanh_mlp(sizes, seed=0, batch_norm=False):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if batch_norm else []) + [nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


@pytest.fixture(scope="module")
def iris():
    data = load_iris()
    return StandardScaler().fit_transform(data.data), data.target


@pytest.fixture(scope="module")
def iris_problem(iris):
    """4-16-16-3 tanh MLP (403 parameters) and its reference Hessian from torch.autograd."""
    X, y = iris
    f, theta = model_loss(tanh_mlp([4, 16, 16, 3]), nn.CrossEntropyLoss(), X, y)
    H = torch.autograd.functional.hessian(f, theta, vectorize=True).numpy()
    return f, theta, H, np.linalg.eigvalsh(H)


# --------------------------------------------------------------------------- lecture loss
def test_lecture_saddle_at_origin():
    theta = torch.zeros(2, dtype=F64)
    np.testing.assert_allclose(gradient(lecture_loss, theta).numpy(), [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(hessian_matrix(lecture_loss, theta), lecture_hessian(0, 0), atol=1e-15)
    np.testing.assert_allclose(hessian_eigenvalues(lecture_loss, theta), [-2.0, 2.0], atol=1e-12)

    p = classify_point(lecture_loss, theta)
    assert p.kind == "saddle point"
    assert p.grad_norm == 0.0
    np.testing.assert_allclose([p.eig_min, p.eig_max], [-2.0, 2.0], atol=1e-12)
    d = p.escape_direction
    assert d is not None
    # Eigenvectors have no sign: compare up to +-.
    assert np.allclose(d, [2**-0.5, 2**-0.5], atol=1e-6) or np.allclose(d, [-(2**-0.5), -(2**-0.5)], atol=1e-6)
    # Moving along it lowers the loss (second order: L = 1 - eps^2 + eps^4/4 along (1,1)/sqrt2).
    step = 0.1 * torch.as_tensor(d)
    assert lecture_loss(theta + step) < lecture_loss(theta) and lecture_loss(theta - step) < lecture_loss(theta)
    assert "Saddle point" in p.sentence and "-2" in p.sentence


def test_lecture_not_critical_at_1_0():
    theta = torch.tensor([1.0, 0.0], dtype=F64)
    # dL/dw1 = -2 (1 - w1 w2) w2 = 0, dL/dw2 = -2 (1 - w1 w2) w1 = -2
    np.testing.assert_allclose(gradient(lecture_loss, theta).numpy(), [0.0, -2.0], atol=1e-15)
    p = classify_point(lecture_loss, theta)
    assert p.kind == "not critical"
    assert p.grad_norm == pytest.approx(2.0, rel=1e-12)
    assert p.escape_direction is None
    # Eigenvalues are still reported: H = [[0, -2], [-2, 2]] has eigenvalues 1 -+ sqrt(5).
    np.testing.assert_allclose([p.eig_min, p.eig_max], np.linalg.eigvalsh(lecture_hessian(1, 0)), rtol=1e-12)
    np.testing.assert_allclose([p.eig_min, p.eig_max], [1 - 5**0.5, 1 + 5**0.5], rtol=1e-12)
    # An explicit, looser gradient tolerance makes it critical, and then it is a saddle.
    assert classify_point(lecture_loss, theta, grad_tol=3.0).kind == "saddle point"


def test_lecture_valley_is_flat():
    theta = torch.tensor([1.0, 1.0], dtype=F64)
    np.testing.assert_allclose(hessian_matrix(lecture_loss, theta), lecture_hessian(1, 1), atol=1e-15)
    p = classify_point(lecture_loss, theta)
    assert p.kind == "flat (degenerate)"
    assert p.grad_norm == 0.0
    np.testing.assert_allclose([p.eig_min, p.eig_max], [0.0, 4.0], atol=1e-12)
    assert p.escape_direction is None  # nothing curves down


# --------------------------------------------------------------------------- definite and degenerate quadratics
@pytest.mark.parametrize("n", [5, 150])  # 5: exact path, 150: Lanczos path of method="auto"
def test_definite_quadratics(n):
    eigs = np.linspace(0.5, 3.0, n)
    A = random_symmetric(n, eigs)
    theta = torch.zeros(n, dtype=F64)
    p = classify_point(quadratic(A), theta)
    assert p.kind == "local minimum" and p.escape_direction is None
    np.testing.assert_allclose([p.eig_min, p.eig_max], [0.5, 3.0], rtol=1e-8)
    q = classify_point(quadratic(-A), theta)
    assert q.kind == "local maximum" and q.escape_direction is None
    np.testing.assert_allclose([q.eig_min, q.eig_max], [-3.0, -0.5], rtol=1e-8)


def test_zero_eigenvalues_do_not_hide_a_saddle():
    # -1 and +2 with zeros around them is still a saddle.
    f = quadratic(np.diag([-1.0, 0.0, 0.0, 2.0]))
    p = classify_point(f, torch.zeros(4, dtype=F64))
    assert p.kind == "saddle point"
    assert np.allclose(np.abs(p.escape_direction), [1, 0, 0, 0], atol=1e-9)


def test_degenerate_combinations_are_flat():
    zero = torch.zeros(3, dtype=F64)
    up = classify_point(quadratic(np.diag([0.0, 1.0, 3.0])), zero)
    assert up.kind == "flat (degenerate)" and up.escape_direction is None
    down = classify_point(quadratic(np.diag([-3.0, -1.0, 0.0])), zero)
    assert down.kind == "flat (degenerate)"
    # It curves down clearly along e1, so that direction is offered as a way out.
    assert np.allclose(np.abs(down.escape_direction), [1, 0, 0], atol=1e-9)
    # An eigenvalue that is zero relative to the Hessian's scale (1e-9 vs 2) counts as zero.
    tiny = classify_point(quadratic(np.diag([-1e-9, 2.0, 1.0])), zero)
    assert tiny.kind == "flat (degenerate)"
    assert tiny.tolerance == pytest.approx(1e-4 * 2.0 + 1e-10, rel=1e-9)
    assert classify_point(quadratic(np.zeros((3, 3))), zero).kind == "flat (degenerate)"


# --------------------------------------------------------------------------- Hessian-vector products
# torch's first forward-mode AD call scripts its decompositions with the deprecated torch.jit.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("method", ["double", "func"])
def test_hvp_matches_exact_hessian(method, iris):
    X, y = iris
    f, theta = model_loss(tanh_mlp([4, 5, 3], seed=1), nn.CrossEntropyLoss(), X[:40], y[:40])
    H = torch.autograd.functional.hessian(f, theta)
    v = torch.randn(theta.numel(), dtype=F64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(hvp(f, theta, v, method=method).numpy(), (H @ v).numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hessian_matrix(f, theta, hvp_method=method), H.numpy(), rtol=1e-10, atol=1e-14)


def test_hvp_rejects_unknown_method():
    with pytest.raises(ValueError):
        hvp(lecture_loss, torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64), method="finite differences")


# --------------------------------------------------------------------------- iris MLP spectrum
def test_exact_eigenvalues_match_autograd(iris_problem):
    f, theta, H, ref = iris_problem
    ours = hessian_eigenvalues(f, theta)
    assert np.all(np.diff(ours) >= 0)
    # atol: eigenvalues that are zero up to rounding (~1e-16) cannot match relatively.
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-12 * np.abs(ref).max())


def test_extremes_match_exact_spectrum(iris_problem):
    f, theta, H, ref = iris_problem
    ext = hessian_extremes(f, theta, method="iterative")
    assert ext.method == "iterative" and theta.numel() == 403
    scale = np.abs(ref).max()
    assert abs(ext.eig_min - ref[0]) <= 1e-4 * scale
    assert abs(ext.eig_max - ref[-1]) <= 1e-4 * scale
    assert ref[0] < 0 < ref[-1]  # a non-trivial case: both signs present
    for lam, vec in ((ext.eig_min, ext.vec_min), (ext.eig_max, ext.vec_max)):
        assert np.linalg.norm(vec) == pytest.approx(1.0, rel=1e-12)
        assert np.linalg.norm(H @ vec - lam * vec) <= 1e-4 * scale
    # Lanczos should need far fewer products than the n columns of the exact Hessian.
    assert 0 < ext.n_hvp < theta.numel() / 2
    lo, hi = ext  # unpacks as a pair
    assert (lo, hi) == (ext.eig_min, ext.eig_max)
    # Seeded start vector: the same call gives the same numbers.
    again = hessian_extremes(f, theta, method="iterative")
    assert (again.eig_min, again.eig_max, again.n_hvp) == (ext.eig_min, ext.eig_max, ext.n_hvp)


def test_extremes_exact_method_and_small_fallback():
    eigs = np.linspace(-1.5, 2.5, 40)
    ext = hessian_extremes(quadratic(random_symmetric(40, eigs)), torch.zeros(40, dtype=F64), method="exact")
    assert isinstance(ext, Extremes) and ext.method == "exact" and ext.n_hvp == 40
    np.testing.assert_allclose([ext.eig_min, ext.eig_max], [-1.5, 2.5], rtol=1e-12)
    # Two parameters: eigsh cannot run (k=2 needs n > 2), so even "iterative" goes exact.
    small = hessian_extremes(lecture_loss, torch.zeros(2, dtype=F64), method="iterative")
    assert small.method == "exact"
    np.testing.assert_allclose(tuple(small), (-2.0, 2.0), atol=1e-12)


@pytest.mark.parametrize("n", [3, 4])
def test_extremes_iterative_on_tiny_problems(n):
    eigs = np.linspace(-1.0, 2.0, n)
    ext = hessian_extremes(quadratic(random_symmetric(n, eigs)), torch.zeros(n, dtype=F64), method="iterative")
    assert ext.method == "iterative"
    np.testing.assert_allclose(tuple(ext), (-1.0, 2.0), rtol=1e-8)


def test_linear_loss_has_zero_hessian():
    f = lambda t: 3.0 * t.sum()  # noqa: E731
    theta = torch.ones(3, dtype=F64)
    np.testing.assert_array_equal(hessian_matrix(f, theta), np.zeros((3, 3)))
    assert hvp(f, theta, torch.ones(3, dtype=F64)).tolist() == [0.0, 0.0, 0.0]
    p = classify_point(f, theta)
    assert p.kind == "not critical" and p.grad_norm == pytest.approx(3.0 * 3**0.5, rel=1e-12)
    assert (p.eig_min, p.eig_max) == (0.0, 0.0)


def test_exact_hessian_refuses_large_problems():
    theta = torch.zeros(EXACT_MAX_PARAMS + 1, dtype=F64)
    with pytest.raises(ValueError):
        hessian_matrix(lambda t: (t**2).sum(), theta)


# --------------------------------------------------------------------------- model_loss purity
def test_model_loss_leaves_model_untouched(iris):
    X, y = iris
    model = tanh_mlp([4, 8, 3], seed=2, batch_norm=True).train()
    Xt = torch.tensor(X, dtype=torch.float32)
    nn.functional.cross_entropy(model(Xt), torch.tensor(y)).backward()  # fill .grad, move stats once
    before = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]

    f, theta = model_loss(model, nn.CrossEntropyLoss(), X, y)  # numpy in
    assert theta.dtype == F64 and not theta.requires_grad
    np.testing.assert_array_equal(theta.numpy(), nn.utils.parameters_to_vector(model.parameters()).detach().double().numpy())
    # f is the model's own training-mode loss, computed in float64 on a copy.
    reference = copy.deepcopy(model).double()
    expected = nn.functional.cross_entropy(reference(torch.tensor(X, dtype=F64)), torch.tensor(y))
    assert f(theta).item() == pytest.approx(expected.item(), rel=1e-12)

    gradient(f, theta)
    for method in ("double", "func"):
        hvp(f, theta, torch.ones_like(theta), method=method)
    hessian_extremes(f, theta, method="iterative")
    classify_point(f, theta)

    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    for name, value in before.items():  # weights, running_mean/var, num_batches_tracked
        assert torch.equal(after[name], value), name
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)
    assert theta.numpy().tolist() == nn.utils.parameters_to_vector(model.parameters()).detach().double().numpy().tolist()


def test_model_loss_eval_mode_and_dtype(iris):
    X, y = iris
    model = tanh_mlp([4, 8, 3], seed=3, batch_norm=True).eval()
    f, theta = model_loss(model, nn.CrossEntropyLoss(), torch.tensor(X, dtype=torch.float32), torch.tensor(y), dtype=None)
    assert theta.dtype == torch.float32 and not model.training
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(torch.tensor(X, dtype=torch.float32)), torch.tensor(y))
    assert f(theta).item() == pytest.approx(expected.item(), rel=1e-6)
    assert not model.training


# --------------------------------------------------------------------------- Hutchinson trace
def test_hutchinson_matches_exact_trace(iris):
    X, y = iris
    model = tanh_mlp([4, 6, 3], seed=4)
    # A little training: at random init the off-diagonal Hessian mass is ~1.7x the trace, which
    # would need ~10^4 probes for 5%; after 100 Adam steps it is ~0.7x (several hundred probes).
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(Xt), yt).backward()
        opt.step()
    f, theta = model_loss(model, nn.CrossEntropyLoss(), X, y)
    exact = float(np.trace(torch.autograd.functional.hessian(f, theta).numpy()))
    est = hutchinson_trace(f, theta, tol=0.025, max_samples=20000)
    assert est.n_samples >= 30 and est.n_hvp == est.n_samples
    assert est.std_error <= 0.025 * abs(est.trace)  # it stopped by its rule, not by the cap
    assert abs(est.trace - exact) <= 3 * est.std_error
    assert abs(est.trace - exact) <= 0.05 * abs(exact)


def test_hutchinson_does_not_stop_on_lucky_agreement():
    # Diagonal Hessian: every Rademacher probe gives exactly the trace, so the standard error is
    # 0 from the second sample on; the rule must still take min_samples.
    d = torch.tensor([1.0, 2.0, 3.0, -0.5], dtype=F64)
    f = lambda t: 0.5 * (d * t * t).sum()  # noqa: E731
    theta = torch.zeros(4, dtype=F64)
    est = hutchinson_trace(f, theta)
    assert est.n_samples == 30 and est.std_error == 0.0
    assert est.trace == pytest.approx(float(d.sum()), rel=1e-14)
    assert hutchinson_trace(f, theta, min_samples=50, max_samples=80).n_samples == 50


def test_hutchinson_stops_at_max_samples():
    A = random_symmetric(6, [1.0, -2.0, 3.0, 0.5, 4.0, -1.0], seed=1)
    est = hutchinson_trace(quadratic(A), torch.zeros(6, dtype=F64), tol=0.0, max_samples=40)
    assert est.n_samples == 40 and est.std_error > 0
