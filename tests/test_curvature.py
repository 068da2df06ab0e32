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
    Stopped,
    classify_point,
    curvature_device,
    gradient,
    hessian_eigenvalues,
    hessian_extremes,
    hessian_matrix,
    hutchinson_trace,
    hvp,
    model_loss,
)
from core.stop import Stopped as SharedStopped

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
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
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
    hessian_extremes(f, theta)  # float32 products through the same f
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


# --------------------------------------------------------------------------- Lanczos path (issue 16 goal 2)
def test_default_lanczos_meets_5e_4_against_the_exact_spectrum(iris_problem):
    f, theta, H, ref = iris_problem
    ext = hessian_extremes(f, theta, method="lanczos")
    assert ext.method == "lanczos"
    for lam, exact, est, vec in ((ext.eig_min, ref[0], ext.err_min, ext.vec_min),
                                 (ext.eig_max, ref[-1], ext.err_max, ext.vec_max)):
        assert abs(lam - exact) <= 5e-4 * abs(exact)
        assert 0 <= est <= 1e-4 * abs(lam)  # the estimate it stopped on (default rtol)
        assert abs(lam - exact) <= est + 1e-12 * abs(ref).max()  # and it was not an understatement
        assert np.linalg.norm(vec) == pytest.approx(1.0, rel=1e-12)
        assert abs(vec @ H @ vec - exact) <= 5e-4 * abs(exact)  # the vector carries the value
    assert ext.n_hvp < theta.numel() / 4
    again = hessian_extremes(f, theta, method="lanczos")  # seeded start vector
    assert (again.eig_min, again.eig_max, again.n_hvp) == (ext.eig_min, ext.eig_max, ext.n_hvp)


def test_auto_is_lanczos_above_the_exact_size_and_keeps_tol_callers_on_arpack(iris_problem):
    f, theta, H, ref = iris_problem
    assert hessian_extremes(f, theta).method == "lanczos"
    assert hessian_extremes(f, theta, tol=1e-3).method == "iterative"  # callers that passed tol
    small = hessian_extremes(quadratic(np.diag(np.arange(1.0, 11.0))), torch.zeros(10, dtype=F64))
    assert small.method == "exact" and tuple(small) == (1.0, 10.0)


def _spy(f, seen):
    """f, recording the dtype of every point it is evaluated at; claims any dtype like model_loss."""
    def g(t):
        seen.append(t.dtype)
        return f(t)
    g.any_dtype = True
    return g


def test_lanczos_runs_in_float32_and_checks_in_float64(iris_problem):
    f, theta, H, ref = iris_problem
    seen = []
    ext = hessian_extremes(_spy(f, seen), theta)
    # one float32 gradient graph for the products, one float64 graph for the check
    assert seen == [torch.float32, torch.float64]
    np.testing.assert_allclose(tuple(ext), (ref[0], ref[-1]), rtol=5e-4)
    # a loss without the any_dtype mark runs all in theta's dtype
    seen.clear()
    plain = lambda t: _spy(f, seen)(t)  # noqa: E731
    hessian_extremes(plain, theta)
    assert set(seen) == {torch.float64}


def test_lanczos_finishes_in_float64_when_float32_is_not_good_enough():
    # In float32 this loss has an extra rank-one term: the float32 Ritz vectors are off, the
    # float64 check must reject them and finish the job in float64.
    n = 120
    eigs = np.concatenate([[-0.5], np.linspace(0.1, 1.0, n - 2), [4.0]])
    A = torch.as_tensor(random_symmetric(n, eigs, seed=3), dtype=F64)
    u = torch.as_tensor(np.random.default_rng(4).standard_normal(n), dtype=F64)

    def f(t):
        base = 0.5 * t @ A.to(t.dtype) @ t
        return base + (0.2 * (t @ u.to(t.dtype)) ** 2 if t.dtype == torch.float32 else 0.0)

    f.any_dtype = True
    ext = hessian_extremes(f, torch.zeros(n, dtype=F64))
    np.testing.assert_allclose(tuple(ext), (-0.5, 4.0), rtol=1e-4)
    # the float32 answer alone is far off: the float64 Hessian of the float32 loss says so
    wrong = np.linalg.eigvalsh(A.numpy() + 0.4 * np.outer(u.numpy(), u.numpy()))
    assert abs(wrong[-1] - 4.0) > 1.0


@pytest.mark.parametrize("spectrum", ["clustered", "zero_end"])
def test_lanczos_on_hard_quadratics(spectrum):
    n = 300
    if spectrum == "clustered":  # the lowest three within 1% of each other, a long tail above
        eigs = np.concatenate([[-0.0100, -0.0099, -0.0098], np.linspace(0.0, 0.05, n - 13), np.geomspace(0.1, 3.0, 10)])
    else:  # the smallest eigenvalue is exactly 0 (twice): relative accuracy is meaningless there
        eigs = np.concatenate([[0.0, 0.0], np.linspace(0.5, 2.0, n - 2)])
    A = random_symmetric(n, eigs, seed=5)
    ext = hessian_extremes(quadratic(A), torch.zeros(n, dtype=F64), method="lanczos")
    ref = np.linalg.eigvalsh(A)
    assert abs(ext.eig_max - ref[-1]) <= 5e-4 * abs(ref[-1])
    if spectrum == "clustered":
        assert abs(ext.eig_min - ref[0]) <= 5e-4 * abs(ref[0])
    else:
        assert abs(ext.eig_min) <= 1e-9 * ref[-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_lanczos_tiny_end_below_float32_rounding(seed):
    # lambda_min is 2e-4 of the spectral radius and 2% from the next eigenvalue: 1e-4 of it is
    # below float32's rounding of the largest, so float32 alone cannot tell the two apart (with
    # seed 1 its Ritz value sits on the second one); the float64 finish must.
    n = 400
    eigs = np.concatenate([[-1.0e-3, -0.98e-3], np.linspace(-0.9e-3, 0.01, n - 12), np.geomspace(0.05, 5.0, 10)])
    A = torch.as_tensor(random_symmetric(n, eigs, seed=6), dtype=F64)

    def f(t):
        return 0.5 * t @ A.to(t.dtype) @ t

    f.any_dtype = True
    ext = hessian_extremes(f, torch.zeros(n, dtype=F64), v0_seed=seed)
    np.testing.assert_allclose(tuple(ext), (-1.0e-3, 5.0), rtol=5e-4)


def test_rtol_must_be_positive():
    with pytest.raises(ValueError, match="rtol"):
        hessian_extremes(lecture_loss, torch.zeros(2, dtype=F64), rtol=0.0)
    with pytest.raises(ValueError, match="method"):
        hessian_extremes(lecture_loss, torch.zeros(2, dtype=F64), method="power")


def test_model_loss_f_computes_in_the_dtype_it_is_given(iris):
    X, y = iris
    model = tanh_mlp([4, 8, 3], seed=5)
    f, theta = model_loss(model, nn.CrossEntropyLoss(), X, y)
    assert f.any_dtype and f.note == ""
    with torch.no_grad():
        expected32 = nn.functional.cross_entropy(model(torch.tensor(X, dtype=torch.float32)), torch.tensor(y))
    value32 = f(theta.float())
    assert value32.dtype == torch.float32 and value32.item() == pytest.approx(expected32.item(), rel=1e-6)
    assert f(theta).dtype == F64


# --------------------------------------------------------------------------- devices (issue 13)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(scope="module")
def trained_iris_model(iris):
    X, y = iris
    model = tanh_mlp([4, 16, 16, 3], seed=6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(50):
        opt.zero_grad()
        nn.functional.cross_entropy(model(Xt), yt).backward()
        opt.step()
    f, theta = model_loss(model, nn.CrossEntropyLoss(), X, y)
    H = torch.autograd.functional.hessian(f, theta).numpy()  # CPU float64 reference
    return model, H


@pytest.mark.parametrize("device", DEVICES)
def test_every_curvature_path_runs_on_the_models_device(device, iris, trained_iris_model):
    X, y = iris
    cpu_model, H = trained_iris_model
    ref = np.linalg.eigvalsh(H)
    model = copy.deepcopy(cpu_model).to(device)
    f, theta = model_loss(model, nn.CrossEntropyLoss(), X, y)  # numpy data in, moved to the device
    assert theta.device.type == device and theta.dtype == F64

    np.testing.assert_allclose(hessian_matrix(f, theta), H, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hessian_eigenvalues(f, theta), ref, rtol=1e-6, atol=1e-10)
    precise = hessian_extremes(f, theta, method="iterative", tol=1e-10)
    np.testing.assert_allclose(tuple(precise), (ref[0], ref[-1]), rtol=1e-6)
    fast = hessian_extremes(f, theta)  # float32 Lanczos + float64 check, on the device
    np.testing.assert_allclose(tuple(fast), (ref[0], ref[-1]), rtol=5e-4)
    for ext in (precise, fast):
        assert ext.device.startswith(device) and ext.note == ""
        assert isinstance(ext.vec_min, np.ndarray) and ext.vec_min.dtype == np.float64
    # the same probes on every device: the same trace up to rounding
    est = hutchinson_trace(f, theta, min_samples=30, max_samples=30)
    cpu_f, cpu_theta = model_loss(cpu_model, nn.CrossEntropyLoss(), X, y)
    assert est.trace == pytest.approx(hutchinson_trace(cpu_f, cpu_theta, min_samples=30, max_samples=30).trace, rel=1e-9)
    p = classify_point(f, theta, grad_tol=1.0)
    assert p.kind == "saddle point" and p.device.startswith(device)
    np.testing.assert_allclose([p.eig_min, p.eig_max], [ref[0], ref[-1]], rtol=1e-6)
    assert isinstance(p.escape_direction, np.ndarray)
    v = np.random.default_rng(0).standard_normal(theta.numel())
    np.testing.assert_allclose(hvp(f, theta, v).cpu().numpy(), H @ v, rtol=1e-9, atol=1e-12)
    assert next(model.parameters()).device.type == device  # the model stayed where it was


def test_mps_runs_float64_on_the_cpu_and_says_so(iris):
    # MPS has no float64: model_loss puts the problem on the CPU and every result carries the note.
    dev, note = curvature_device("mps")
    assert dev == torch.device("cpu") and "float64" in note and "CPU" in note
    assert curvature_device("mps", torch.float32) == (torch.device("mps"), "")
    assert curvature_device("cuda") == (torch.device("cuda"), "")
    X, y = iris
    f, theta = model_loss(tanh_mlp([4, 8, 3], seed=7), nn.CrossEntropyLoss(), X, y, device="mps")
    assert theta.device.type == "cpu" and f.note == note
    assert hessian_extremes(f, theta).note == note
    assert hutchinson_trace(f, theta, max_samples=30).note == note
    assert classify_point(f, theta).note == note


# --------------------------------------------------------------------------- stopping (issue 19 item 3)
class StopAfter:
    """should_stop that says yes on its k-th call, counting every call."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self):
        self.calls += 1
        return self.calls >= self.k


@pytest.mark.parametrize("call", [
    lambda f, t, s: hessian_extremes(f, t, should_stop=s),                       # Lanczos, float32 + float64
    lambda f, t, s: hessian_extremes(f, t, method="iterative", should_stop=s),   # ARPACK
    lambda f, t, s: hessian_extremes(f, t, method="exact", should_stop=s),
    lambda f, t, s: hessian_matrix(f, t, should_stop=s),
    lambda f, t, s: hessian_eigenvalues(f, t, should_stop=s),
    lambda f, t, s: hutchinson_trace(f, t, should_stop=s),
    lambda f, t, s: classify_point(f, t, should_stop=s),
], ids=["lanczos", "arpack", "exact", "matrix", "eigenvalues", "hutchinson", "classify"])
def test_stop_is_checked_between_products(call, iris_problem):
    f, theta, H, ref = iris_problem
    for k in (1, 7):
        stop = StopAfter(k)
        with pytest.raises(Stopped):
            call(f, theta, stop)
        assert stop.calls == k  # no product started after the flag went up
    # never set: runs to the end, asking before every product
    stop = StopAfter(10**9)
    call(f, theta, stop)
    assert stop.calls > 10


def test_stopped_is_the_shared_exception():
    assert Stopped is SharedStopped and issubclass(Stopped, Exception)


def test_classify_point_uses_the_one_critical_point_rule():
    # One rule per concept: classify_point's "not critical" is core.rules.critical_test's verdict.
    from core.rules import critical_test

    def f(t):  # a tilted saddle: gradient (2x + a, -2y)
        return t[0] ** 2 - t[1] ** 2 + 0.01 * t[0]

    for x in (-0.005, -0.00499, -0.004, 0.0, 0.01):
        theta = torch.tensor([x, 0.0], dtype=torch.float64)
        for scale in (0.1, 1.0, 10.0):
            p = classify_point(f, theta, loss_scale=scale)
            g = float(np.hypot(2 * x + 0.01, 0.0))
            expected = critical_test(g, -2.0, 2.0, scale).critical
            assert (p.kind != "not critical") == expected, (x, scale, p.kind)
            if expected:
                assert p.kind == "saddle point"
