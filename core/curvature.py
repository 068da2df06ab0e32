"""Curvature of a loss: Hessian-vector products, extreme eigenvalues, exact Hessian, trace,
and the classification of a point as minimum, maximum, saddle, flat or not critical.

Everything works on a pair ``(f, theta)``: ``f`` maps a flat 1-D parameter tensor to a scalar
loss tensor and ``theta`` is the point to look at. ``model_loss`` builds such a pair from an
``nn.Module`` and data without touching the module. Results are floats, numpy arrays and frozen
dataclasses, never tensors.

>>> import torch
>>> f = lambda t: (1 - t[0] * t[1]) ** 2          # the lecture's loss, a saddle at the origin
>>> classify_point(f, torch.zeros(2, dtype=torch.float64)).kind
'saddle point'
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import nn
from torch.func import functional_call, grad, jvp

Loss = Callable[[torch.Tensor], torch.Tensor]

# Above this many parameters the dense Hessian (n^2 floats, n HVPs, an O(n^3) eigensolve)
# is too slow for an interactive page; use hessian_extremes / hutchinson_trace instead.
EXACT_MAX_PARAMS = 3000

# hessian_extremes(method="auto") builds the exact Hessian below this size: Lanczos took 50-90
# HVPs on the MLPs measured (ARPACK's Krylov space alone is ncv = 20), so up to here the n HVPs
# of the exact Hessian cost about the same, and its answer is exact.
AUTO_EXACT_BELOW = 100

# Default HVP implementation, chosen by measurement (1 torch thread, float64, tanh MLPs on all
# 1,797 sklearn digits, best time of one HVP; bench/curvature.py prints these figures):
#                                 torch.func jvp(grad)  double backward  double, graph reused
#   64-32-10,      2,410 params        10.5 ms             5.4 ms             2.9 ms
#   64-256-32-10, 25,194 params        65.2 ms            49.2 ms            28.5 ms
# (on the box loaded by other jobs: 13.2 / 8.7 / 2.5 ms and 118 / 89 / 41 ms, same order).
# torch.func also pays a one-time ~1.3 s CPU per process on its first jvp (torch scripts its
# forward-AD decompositions). Double backward wins, and reusing its gradient graph across the
# many HVPs of one eigsh / Hutchinson / Hessian run (see _hvp_operator) roughly halves it again.
HVP_METHODS = ("double", "func")
DEFAULT_HVP = "double"


# --------------------------------------------------------------------------- (f, theta) pairs
def model_loss(model: nn.Module, loss_fn: Callable, X, y, dtype: torch.dtype | None = torch.float64):
    """Turn a model and data into ``(f, theta)`` with ``f(theta) = loss_fn(model(X), y)``.

    ``theta`` is a detached flat copy of the parameters (in ``model.named_parameters()`` order).
    The model is never changed: not its mode (``f`` runs in whatever train/eval mode it is in),
    nor its weights, ``.grad`` fields or buffers; every call of ``f`` gets fresh copies of the
    buffers, so BatchNorm in training mode updates only those copies. With the default
    ``dtype=torch.float64`` parameters, buffers and floating X / y are converted so curvature
    figures are accurate; integer labels stay integer. ``dtype=None`` keeps the model's dtype.
    ``loss_fn`` must reduce to a scalar. Dropout in training mode would make ``f`` random: put
    such a model in eval mode first if a deterministic loss is wanted (the caller's choice).

    >>> model = nn.Linear(3, 1)
    >>> f, theta = model_loss(model, nn.MSELoss(), np.ones((5, 3)), np.zeros((5, 1)))
    >>> theta.shape, theta.dtype
    (torch.Size([4]), torch.float64)
    """
    named = [(name, p.detach()) for name, p in model.named_parameters()]
    if not named:
        raise ValueError("The model has no parameters.")
    names = [name for name, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    dtype = dtype or named[0][1].dtype

    def cast(t) -> torch.Tensor:
        # Own copies: later changes to the caller's arrays must not change f.
        t = t.detach() if isinstance(t, torch.Tensor) else torch.as_tensor(np.array(t))
        return (t.to(dtype) if t.is_floating_point() else t).clone()

    theta = torch.cat([p.reshape(-1).to(dtype) for _, p in named]).clone()
    buffers = {name: cast(b) for name, b in model.named_buffers()}
    X, y = cast(X), cast(y)

    def f(t: torch.Tensor) -> torch.Tensor:
        params = {n: chunk.view(s) for n, chunk, s in zip(names, t.split(sizes), shapes)}
        bufs = {n: b.clone() for n, b in buffers.items()}  # BN in train mode writes into these
        return loss_fn(functional_call(model, (params, bufs), (X,)), y)

    return f, theta


def _as_theta(theta) -> torch.Tensor:
    theta = torch.as_tensor(theta).detach()
    if theta.ndim != 1 or not theta.is_floating_point():
        raise ValueError("theta must be a 1-D floating-point tensor.")
    return theta


def gradient(f: Loss, theta: torch.Tensor) -> torch.Tensor:
    """Gradient of ``f`` at ``theta`` (a detached tensor shaped like ``theta``).

    >>> gradient(lambda t: (t ** 2).sum(), torch.tensor([1.0, -2.0]))
    tensor([ 2., -4.])
    """
    theta = _as_theta(theta).requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(f(theta), theta)[0].detach()


# --------------------------------------------------------------------------- Hessian-vector products
def _hvp_func(f: Loss, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # Forward-over-reverse: one forward-mode pass through the gradient computation.
    return jvp(grad(f), (theta,), (v,))[1]


def _hvp_double(f: Loss, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # Reverse-over-reverse: differentiate <grad f, v> once more.
    theta = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        g = torch.autograd.grad(f(theta), theta, create_graph=True)[0]
        if not g.requires_grad:  # f is linear in theta: the gradient is constant, H = 0
            return torch.zeros_like(theta)
        return torch.autograd.grad(g, theta, v)[0]


def hvp(f: Loss, theta: torch.Tensor, v: torch.Tensor, method: str = DEFAULT_HVP) -> torch.Tensor:
    """Hessian of ``f`` at ``theta`` times ``v``, without forming the Hessian.

    ``method="double"`` (default, faster here) differentiates the gradient again with
    ``torch.autograd.grad(create_graph=True)``; ``method="func"`` is ``torch.func.jvp`` of
    ``torch.func.grad`` (forward-over-reverse). Both agree to rounding.

    >>> f = lambda t: t[0] ** 2 * t[1]
    >>> hvp(f, torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]))   # H = [[2*t1, 2*t0], [2*t0, 0]]
    tensor([4., 2.])
    """
    theta = _as_theta(theta)
    v = torch.as_tensor(v, dtype=theta.dtype)
    if method == "double":
        return _hvp_double(f, theta, v).detach()
    if method == "func":
        return _hvp_func(f, theta, v).detach()
    raise ValueError(f"Unknown HVP method {method!r}; choose one of {HVP_METHODS}.")


class _hvp_operator:
    """``v -> H v`` at a fixed ``theta`` for many ``v``, counting the products.

    The double-backward variant builds the gradient graph once and reuses it for every product
    (``retain_graph=True``): each HVP is then one backward pass instead of forward + backward +
    backward. Accepts and returns float64 numpy arrays, as scipy wants them.
    """

    def __init__(self, f: Loss, theta: torch.Tensor, method: str = DEFAULT_HVP):
        if method not in HVP_METHODS:
            raise ValueError(f"Unknown HVP method {method!r}; choose one of {HVP_METHODS}.")
        self.f, self.method, self.count = f, method, 0
        self.theta = _as_theta(theta)
        self.n = self.theta.numel()
        if method == "double":
            self._theta = self.theta.clone().requires_grad_(True)
            with torch.enable_grad():
                self._g = torch.autograd.grad(f(self._theta), self._theta, create_graph=True)[0]

    def tensor(self, v: torch.Tensor) -> torch.Tensor:
        self.count += 1
        if self.method == "func":
            return _hvp_func(self.f, self.theta, v).detach()
        if not self._g.requires_grad:  # f is linear in theta: the gradient is constant, H = 0
            return torch.zeros_like(self.theta)
        with torch.enable_grad():
            return torch.autograd.grad(self._g, self._theta, v, retain_graph=True)[0]

    def __call__(self, v: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(-1)).to(self.theta.dtype)
        return self.tensor(v).to(torch.float64).numpy()

    def linear_operator(self) -> LinearOperator:
        return LinearOperator((self.n, self.n), matvec=self, dtype=np.float64)


# --------------------------------------------------------------------------- exact Hessian
def hessian_matrix(f: Loss, theta: torch.Tensor, hvp_method: str = DEFAULT_HVP) -> np.ndarray:
    """The exact Hessian of ``f`` at ``theta`` as a symmetric float64 numpy array.

    Built column by column from ``n`` HVPs (one backward pass each, graph reused), which needs
    no more memory than one HVP. Refuses more than ``EXACT_MAX_PARAMS`` parameters.

    >>> hessian_matrix(lambda t: (1 - t[0] * t[1]) ** 2, torch.zeros(2, dtype=torch.float64))
    array([[ 0., -2.],
           [-2.,  0.]])
    """
    op = _hvp_operator(f, theta, hvp_method)
    if op.n > EXACT_MAX_PARAMS:
        raise ValueError(
            f"The exact Hessian of {op.n:,} parameters is too large (limit {EXACT_MAX_PARAMS:,}); "
            "use hessian_extremes or hutchinson_trace."
        )
    eye = torch.eye(op.n, dtype=op.theta.dtype)
    H = torch.stack([op.tensor(eye[i]) for i in range(op.n)]).to(torch.float64).numpy()
    return (H + H.T) / 2  # symmetric in exact arithmetic; remove rounding asymmetry for eigvalsh


def hessian_eigenvalues(f: Loss, theta: torch.Tensor) -> np.ndarray:
    """All Hessian eigenvalues at ``theta``, sorted ascending (exact; n <= EXACT_MAX_PARAMS).

    >>> hessian_eigenvalues(lambda t: (1 - t[0] * t[1]) ** 2, torch.zeros(2, dtype=torch.float64))
    array([-2.,  2.])
    """
    return np.linalg.eigvalsh(hessian_matrix(f, theta))


# --------------------------------------------------------------------------- extreme eigenvalues
# eq=False on results that hold arrays: the generated __eq__ would compare arrays elementwise
# and fail, and instances are compared by identity anyway.
@dataclass(frozen=True, eq=False)
class Extremes:
    """Smallest and largest Hessian eigenvalue with their unit eigenvectors and the cost.

    Unpacks as ``eig_min, eig_max = hessian_extremes(f, theta)``.
    """

    eig_min: float
    eig_max: float
    n_hvp: int  # Hessian-vector products spent (the exact method counts n, one per column)
    vec_min: np.ndarray  # unit eigenvector of eig_min
    vec_max: np.ndarray  # unit eigenvector of eig_max
    seconds: float  # wall-clock time of the computation
    method: str  # "exact" or "iterative"

    def __iter__(self):
        return iter((self.eig_min, self.eig_max))


def hessian_extremes(
    f: Loss,
    theta: torch.Tensor,
    tol: float = 1e-6,
    maxiter: int | None = None,
    v0_seed: int = 0,
    method: str = "auto",
    hvp_method: str = DEFAULT_HVP,
) -> Extremes:
    """Smallest and largest Hessian eigenvalue at ``theta``, with the HVPs spent.

    ``method="iterative"`` runs ARPACK's Lanczos (``scipy.sparse.linalg.eigsh``) on a
    LinearOperator of HVPs, asking for both ends of the spectrum in one Krylov space
    (``which="BE"``, k=2), which took fewer HVPs than separate "SA" and "LA" runs. ``tol`` is
    ARPACK's relative accuracy of each eigenvalue; the start vector is a seeded Gaussian, so the
    same call gives the same numbers. ``method="exact"`` uses the full Hessian;
    ``"auto"`` does so below ``AUTO_EXACT_BELOW`` parameters (where it is cheaper) and is
    iterative above. If ARPACK does not converge within ``maxiter`` restarts, problems up to
    ``EXACT_MAX_PARAMS`` fall back to the exact Hessian, larger ones raise RuntimeError.

    >>> d = torch.arange(1.0, 201.0, dtype=torch.float64)
    >>> ext = hessian_extremes(lambda t: (d * t * t).sum(), torch.zeros(200, dtype=torch.float64))
    >>> round(ext.eig_min, 6), round(ext.eig_max, 6), ext.method
    (2.0, 400.0, 'iterative')
    """
    start = time.perf_counter()
    op = _hvp_operator(f, theta, hvp_method)
    n = op.n
    if method not in ("auto", "exact", "iterative"):
        raise ValueError(f"Unknown method {method!r}; choose 'auto', 'exact' or 'iterative'.")
    # eigsh needs k=2 < n; with n <= 2 there is nothing to iterate on.
    use_exact = method == "exact" or n <= 2 or (method == "auto" and n < AUTO_EXACT_BELOW)
    if not use_exact:
        v0 = np.random.default_rng(v0_seed).standard_normal(n)
        try:
            vals, vecs = eigsh(op.linear_operator(), k=2, which="BE", tol=tol, maxiter=maxiter, v0=v0)
        except ArpackNoConvergence:
            if n > EXACT_MAX_PARAMS:
                raise RuntimeError(
                    f"Lanczos did not reach tolerance {tol:g} within maxiter={maxiter} restarts "
                    f"({op.count} HVPs); raise maxiter or tol."
                ) from None
            use_exact = True
        else:
            order = np.argsort(vals)
            vals, vecs = vals[order], vecs[:, order]
            return Extremes(
                float(vals[0]), float(vals[1]), op.count, _unit(vecs[:, 0]), _unit(vecs[:, 1]),
                time.perf_counter() - start, "iterative",
            )
    if n > EXACT_MAX_PARAMS:
        raise ValueError(f"method='exact' needs at most {EXACT_MAX_PARAMS:,} parameters, got {n:,}.")
    eye = torch.eye(n, dtype=op.theta.dtype)
    H = torch.stack([op.tensor(eye[i]) for i in range(n)]).to(torch.float64).numpy()
    vals, vecs = np.linalg.eigh((H + H.T) / 2)
    return Extremes(
        float(vals[0]), float(vals[-1]), op.count, _unit(vecs[:, 0]), _unit(vecs[:, -1]),
        time.perf_counter() - start, "exact",
    )


def _unit(v: np.ndarray) -> np.ndarray:
    # Eigenvectors have no sign; fix one (largest component positive) so results are repeatable.
    v = np.asarray(v, dtype=np.float64)
    v = v / np.linalg.norm(v)
    return -v if v[np.argmax(np.abs(v))] < 0 else v


# --------------------------------------------------------------------------- trace
@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate of the Hessian trace."""

    trace: float  # mean of z^T H z over the probes
    std_error: float  # standard error of that mean (sample std / sqrt(n_samples))
    n_samples: int  # Rademacher probes used
    n_hvp: int  # Hessian-vector products spent (one per probe)


def hutchinson_trace(
    f: Loss,
    theta: torch.Tensor,
    tol: float = 1e-3,
    min_samples: int = 30,
    max_samples: int = 1000,
    seed: int = 0,
    hvp_method: str = DEFAULT_HVP,
) -> TraceEstimate:
    """Estimate ``trace(H)`` at ``theta`` as the mean of ``z^T H z`` over Rademacher probes ``z``.

    Stops once ``std_error <= tol * |mean|``, but never before ``min_samples`` probes: a few
    probes can agree by luck, and a standard error from fewer than ~30 samples is itself
    unreliable. Stops at ``max_samples`` regardless. Probes come from a seeded generator.

    >>> est = hutchinson_trace(lambda t: (t ** 2).sum(), torch.zeros(5))   # H = 2 I, trace 10
    >>> est.trace, est.n_samples
    (10.0, 30)
    """
    if not 2 <= min_samples <= max_samples:
        raise ValueError("Need 2 <= min_samples <= max_samples.")
    op = _hvp_operator(f, theta, hvp_method)
    gen = torch.Generator().manual_seed(seed)
    k, mean, m2 = 0, 0.0, 0.0  # Welford's running mean and sum of squared deviations
    while True:
        z = torch.randint(0, 2, (op.n,), generator=gen).to(op.theta.dtype) * 2 - 1
        sample = float(z @ op.tensor(z))
        k += 1
        delta = sample - mean
        mean += delta / k
        m2 += delta * (sample - mean)
        std_error = float(np.sqrt(m2 / (k - 1) / k)) if k > 1 else float("inf")
        if k >= max_samples or (k >= min_samples and std_error <= tol * abs(mean)):
            return TraceEstimate(mean, std_error, k, op.count)


# --------------------------------------------------------------------------- classification
KINDS = ("local minimum", "local maximum", "saddle point", "flat (degenerate)", "not critical")


@dataclass(frozen=True, eq=False)
class CriticalPoint:
    """What kind of point ``theta`` is, with the numbers behind the verdict."""

    kind: str  # one of KINDS
    loss: float  # f(theta)
    grad_norm: float  # Euclidean norm of the gradient
    grad_tol: float  # gradient norms at or below this count as zero
    eig_min: float  # smallest Hessian eigenvalue
    eig_max: float  # largest Hessian eigenvalue
    tolerance: float  # eigenvalues within +-tolerance count as zero
    escape_direction: np.ndarray | None  # unit eigenvector of eig_min when it is clearly negative
    n_hvp: int  # Hessian-vector products spent
    sentence: str  # the verdict in plain language, with its numbers


def classify_point(
    f: Loss,
    theta: torch.Tensor,
    grad_tol: float | None = None,
    eig_rtol: float = 1e-4,
    eig_atol: float = 1e-10,
    method: str = "auto",
    tol: float = 1e-6,
    v0_seed: int = 0,
) -> CriticalPoint:
    """Classify ``theta`` from the gradient norm and the extreme Hessian eigenvalues.

    Tolerances follow the problem's scale:
    - gradient: ``grad_tol`` defaults to ``1e-3 * (1 + |f(theta)|)`` (a loss-relative zero with an
      absolute floor for losses near 0); pages may pass their own.
    - eigenvalues: ``tolerance = eig_rtol * max(|eig_min|, |eig_max|) + eig_atol``, so an
      eigenvalue that is zero up to rounding counts as zero, not as a tiny curvature.

    Rules, in order: gradient norm above ``grad_tol`` -> "not critical" (the eigenvalues are still
    reported); a clearly negative and a clearly positive eigenvalue -> "saddle point" (even if
    others are zero); all eigenvalues clearly positive -> "local minimum"; all clearly negative ->
    "local maximum"; otherwise some eigenvalue is zero within tolerance with no sign conflict ->
    "flat (degenerate)", where second-order information cannot decide. ``escape_direction`` is
    the unit eigenvector of ``eig_min`` when the point is critical and ``eig_min`` is clearly
    negative but not a maximum (a saddle, or a flat point curving down): moving along it lowers
    the loss.

    >>> p = classify_point(lambda t: (1 - t[0] * t[1]) ** 2, torch.zeros(2, dtype=torch.float64))
    >>> p.kind, p.eig_min, p.eig_max
    ('saddle point', -2.0, 2.0)
    """
    theta = _as_theta(theta)
    x = theta.clone().requires_grad_(True)
    with torch.enable_grad():
        value = f(x)
        g = torch.autograd.grad(value, x)[0]
    loss, grad_norm = float(value.detach()), float(torch.linalg.vector_norm(g))
    if grad_tol is None:
        grad_tol = 1e-3 * (1.0 + abs(loss))
    ext = hessian_extremes(f, theta, tol=tol, v0_seed=v0_seed, method=method)
    lo, hi = ext.eig_min, ext.eig_max
    etol = eig_rtol * max(abs(lo), abs(hi)) + eig_atol

    curv = f"the Hessian's eigenvalues run from {lo:.4g} to {hi:.4g} (zero within ±{etol:.2g})"
    escape = None
    if grad_norm > grad_tol:
        kind = "not critical"
        sentence = (
            f"Not a critical point: the gradient norm {grad_norm:.4g} is above the tolerance "
            f"{grad_tol:.2g}, so plain gradient descent still moves; {curv}."
        )
    elif lo < -etol and hi > etol:
        kind, escape = "saddle point", ext.vec_min
        sentence = (
            f"Saddle point: the gradient is zero (norm {grad_norm:.2g}) and {curv}. The loss curves "
            f"up along some directions and down along others, most steeply down with curvature "
            f"{lo:.4g} along the escape direction."
        )
    elif lo > etol:
        kind = "local minimum"
        sentence = (
            f"Local minimum: the gradient is zero (norm {grad_norm:.2g}) and every eigenvalue is "
            f"positive; {curv}. The loss rises in every direction."
        )
    elif hi < -etol:
        kind = "local maximum"
        sentence = (
            f"Local maximum: the gradient is zero (norm {grad_norm:.2g}) and every eigenvalue is "
            f"negative; {curv}. The loss falls in every direction."
        )
    else:
        kind = "flat (degenerate)"
        if lo < -etol:
            escape = ext.vec_min
        sentence = (
            f"Flat (degenerate) point: the gradient is zero (norm {grad_norm:.2g}) and {curv}; "
            "a zero eigenvalue means the loss does not curve along some direction, so the "
            "Hessian cannot tell a minimum, a maximum or a saddle apart (a valley of minima "
            "looks like this)."
        )
    return CriticalPoint(
        kind, loss, grad_norm, float(grad_tol), lo, hi, float(etol), escape, ext.n_hvp, sentence
    )
