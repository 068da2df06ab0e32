"""Curvature of a loss: Hessian-vector products, extreme eigenvalues, exact Hessian, trace,
and the classification of a point as minimum, maximum, saddle, flat or not critical.

Everything works on a pair ``(f, theta)``: ``f`` maps a flat 1-D parameter tensor to a scalar
loss tensor and ``theta`` is the point to look at. ``model_loss`` builds such a pair from an
``nn.Module`` and data without touching the module. Results are floats, numpy arrays (on the
CPU) and frozen dataclasses, never tensors.

Devices: every product runs on ``theta``'s device (CPU, CUDA, ...); numpy vectors coming from
scipy are moved there and the results come back to the CPU. Apple's MPS has no float64, so
``model_loss`` puts a float64 problem of an MPS model on the CPU and says so in ``f.note``,
which every result carries in its ``note`` field.

Stopping: the long calls take ``should_stop`` (a callable returning True to stop), checked
before every Hessian-vector product; they then raise ``core.stop.Stopped``.

>>> import torch
>>> f = lambda t: (1 - t[0] * t[1]) ** 2          # the lecture's loss, a saddle at the origin
>>> classify_point(f, torch.zeros(2, dtype=torch.float64)).kind
'saddle point'
"""
from __future__ import annotations

import math

import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import nn
from torch.func import functional_call, grad, jvp

from core.stop import ShouldStop, Stopped, check_stop

__all__ = [
    "AUTO_EXACT_BELOW", "DEFAULT_HVP", "DEFAULT_RTOL", "EXACT_MAX_PARAMS", "HVP_METHODS", "KINDS",
    "CriticalPoint", "Extremes", "Stopped", "TraceEstimate", "classify_point", "curvature_device",
    "gradient", "hessian_eigenvalues", "hessian_extremes", "hessian_matrix", "hutchinson_trace",
    "hvp", "model_loss",
]

Loss = Callable[[torch.Tensor], torch.Tensor]

# Above this many parameters the dense Hessian (n^2 floats, n HVPs, an O(n^3) eigensolve)
# is too slow for an interactive page; use hessian_extremes / hutchinson_trace instead.
EXACT_MAX_PARAMS = 3000

# hessian_extremes(method="auto") builds the exact Hessian below this size: Lanczos took 50-90
# HVPs on the MLPs measured, so up to here the n HVPs of the exact Hessian cost about the same,
# and its answer is exact.
AUTO_EXACT_BELOW = 100

# Default relative accuracy of hessian_extremes' Lanczos path (method="lanczos"), per end.
# Measured against exact spectra (bench/curvature.py --sweep: six small MLPs, three start
# vectors each) the worst errors were 1.5e-7 to 1e-5 with rtol = 1e-4 and up to 1.2e-4 with
# 5e-4 (2.3e-4 on a 4,482-parameter moons MLP while tuning); on the bench's 26k-parameter
# digits MLP 1.2e-5 in 73 products against 69 for 5e-4. So 1e-4 meets issue 16's 5e-4 target
# with a margin, for ~5% more products.
DEFAULT_RTOL = 1e-4

# Ends smaller in magnitude than this fraction of the spectral radius count as located once
# their error is below it: "relative" accuracy means nothing for an eigenvalue that is 0.
ZERO_FLOOR = 1e-10

# Lanczos stops only when each end's Ritz value moved by less than its target over this many
# products (besides the residual estimate): on a quadratic whose three lowest eigenvalues lie
# within 1% of each other, the residual estimate alone stopped at step 20 with the smallest
# Ritz value resting at 0.8% from the smallest eigenvalue (tests/test_curvature.py).
STILL_STEPS = 5

# Ends are located to at most this many rounding errors (of the products' dtype) times the
# spectral radius: float32 Ritz values do not settle below that.
NOISE_FACTOR = 2

# Lanczos keeps every basis vector (full reorthogonalization): at most this many of them.
LANCZOS_MAXITER = 300

# What limits the default's speed (issue 16 asked for both ends to 5e-4 within 2x the time of a
# PyHessian-style top-1 power iteration; bench/curvature.py measures it in one run). On its
# 26k-parameter digits MLP lambda_min is -0.0029, 1% of a 0.32-wide spectrum and 2.8e-4 below
# the next eigenvalue: the smallest Ritz value of the Krylov space (the least Rayleigh quotient
# any single-vector method can reach with that many products from that start) gets within 5e-4
# of it only after 60 products (54 and 76 from two other seeds), against the power iteration's
# 15 for lambda_max alone, so no stopping rule beats ~3.5x there; the default spends 71 float32
# and 2 float64 products (4-5.6x on the loaded box). Tried and dropped: block Lanczos needs
# fewer passes but more products (block 2: 48 passes, 96 products; block 8: 25 and 200), and on
# one CPU thread one batched call of 8 HVPs (autograd's is_grads_batched) cost 1.2x eight single
# calls (vmap of jvp(grad) more), so a block product costs its products; LOBPCG was far slower;
# starts from a half- or quarter-data Hessian's Ritz vectors still needed 62-67 full products
# after the subsample's (its lambda_min, about -0.007, belongs to another matrix); |theta|-scaled,
# Rademacher or gradient-mixed starts took 51-69 (two seeds), no better than the seeds' spread.
# The products themselves are at their floor: autograd's reused-graph HVP does exactly the
# matrix products of Pearlmutter's R-operator (440 MFLOP on that model, counted by
# torch.utils.flop_counter) at ~75% of the best matrix-product rate the CPU reaches on those
# shapes, so even 60 perfect products would take 2.7x the power iteration. A two-stage route
# (Lanczos on the ~100-300 rows that carry curvature at a well-fit cross-entropy point, then
# all rows from its Ritz vectors) has an oracle-stopped floor of 1.8-2.1x, but with a stopping
# rule that certifies its error and the float64 check it took 3.1-4.4x (bench/curvature.py
# --study): not adopted, as it trades the abstraction of f for 1.4x on one kind of point.
# Only where a batched block product costs about one product (a launch-bound GPU; not measured,
# bench/gpu.py part 4 measures it) could block 8 approach the target: 25 passes against 15.

# Default HVP implementation, chosen by measurement (1 torch thread, float64, tanh MLPs on all
# 1,797 sklearn digits, best time of one HVP; bench/curvature.py prints these figures):
#                                 torch.func jvp(grad)  double backward  double, graph reused
#   64-32-10,      2,410 params        10.5 ms             5.4 ms             2.9 ms
#   64-256-32-10, 25,194 params        65.2 ms            49.2 ms            28.5 ms
# (on the box loaded by other jobs: 13.2 / 8.7 / 2.5 ms and 118 / 89 / 41 ms, same order).
# torch.func also pays a one-time ~1.3 s CPU per process on its first jvp (torch scripts its
# forward-AD decompositions). Double backward wins, and reusing its gradient graph across the
# many HVPs of one eigsh / Hutchinson / Hessian run (see _hvp_operator) roughly halves it again.
# bench/curvature.py now times the 64-128-128-10 model (26,122 params): torch.func 60 ms, double
# backward 65 ms, reused graph 34 ms in float64 and 10.6 ms in float32 (loaded box; 12.7 and
# 5.7 ms for the reused graph when quieter), hence float32 products in hessian_extremes.
HVP_METHODS = ("double", "func")
DEFAULT_HVP = "double"


# --------------------------------------------------------------------------- devices
def curvature_device(device, dtype: torch.dtype = torch.float64) -> tuple[torch.device, str]:
    """Where curvature in ``dtype`` can run for a model on ``device``, and a note if elsewhere.

    Apple's MPS backend has no float64: a float64 computation for an MPS model runs on the CPU,
    and the note says so (results carry it). Every other device is kept.

    >>> curvature_device("mps")
    (device(type='cpu'), 'float64 is not available on mps; curvature ran in float64 on the CPU.')
    >>> curvature_device("cpu")
    (device(type='cpu'), '')
    """
    device = torch.device(device)
    if device.type == "mps" and dtype == torch.float64:
        return torch.device("cpu"), "float64 is not available on mps; curvature ran in float64 on the CPU."
    return device, ""


def _note(f) -> str:
    return getattr(f, "note", "") or ""


# --------------------------------------------------------------------------- (f, theta) pairs
def model_loss(model: nn.Module, loss_fn: Callable, X, y, dtype: torch.dtype | None = torch.float64,
               device=None):
    """Turn a model and data into ``(f, theta)`` with ``f(theta) = loss_fn(model(X), y)``.

    ``theta`` is a detached flat copy of the parameters (in ``model.named_parameters()`` order)
    on ``device`` (default: the model's own device; see ``curvature_device`` for MPS).
    The model is never changed: not its mode (``f`` runs in whatever train/eval mode it is in),
    nor its weights, ``.grad`` fields or buffers; every call of ``f`` gets fresh copies of the
    buffers, so BatchNorm in training mode updates only those copies. With the default
    ``dtype=torch.float64`` parameters, buffers and floating X / y are converted so curvature
    figures are accurate; integer labels stay integer. ``dtype=None`` keeps the model's dtype.
    ``loss_fn`` must reduce to a scalar. Dropout in training mode would make ``f`` random: put
    such a model in eval mode first if a deterministic loss is wanted (the caller's choice).

    ``f`` computes in the dtype and on the device of the tensor it is given (data and buffers
    are cast once per dtype/device and kept), and says so with ``f.any_dtype = True``: that
    lets hessian_extremes run its many products in float32. ``f.note`` holds a note on where
    it runs ("" normally).

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
    device, note = curvature_device(named[0][1].device if device is None else device, dtype)

    def own(t) -> torch.Tensor:
        # Own copies: later changes to the caller's arrays must not change f.
        return t.detach().clone() if isinstance(t, torch.Tensor) else torch.as_tensor(np.array(t))

    theta = torch.cat([p.reshape(-1).to(device, dtype) for _, p in named]).clone()
    base = (own(X), own(y), {name: own(b) for name, b in model.named_buffers()})
    cast_cache: dict = {}

    def data_at(dev: torch.device, dt: torch.dtype):
        key = (dev, dt)
        if key not in cast_cache:
            def cast(t):
                return t.to(dev, dt) if t.is_floating_point() else t.to(dev)
            Xb, yb, bufs = base
            cast_cache[key] = (cast(Xb), cast(yb), {n: cast(b) for n, b in bufs.items()})
        return cast_cache[key]

    data_at(theta.device, theta.dtype)  # the copies f uses by default, made now

    def f(t: torch.Tensor) -> torch.Tensor:
        Xc, yc, buffers = data_at(t.device, t.dtype)
        params = {n: chunk.view(s) for n, chunk, s in zip(names, t.split(sizes), shapes)}
        bufs = {n: b.clone() for n, b in buffers.items()}  # BN in train mode writes into these
        return loss_fn(functional_call(model, (params, bufs), (Xc,)), yc)

    f.any_dtype = True
    f.note = note
    return f, theta


def _as_theta(theta) -> torch.Tensor:
    theta = torch.as_tensor(theta).detach()
    if theta.ndim != 1 or not theta.is_floating_point():
        raise ValueError("theta must be a 1-D floating-point tensor.")
    return theta


def _cpu_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def gradient(f: Loss, theta: torch.Tensor) -> torch.Tensor:
    """Gradient of ``f`` at ``theta`` (a detached tensor shaped like ``theta``, on its device).

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
    ``torch.func.grad`` (forward-over-reverse). Both agree to rounding. ``v`` (a tensor or
    array) is moved to ``theta``'s device and dtype; the result lives there too.

    >>> f = lambda t: t[0] ** 2 * t[1]
    >>> hvp(f, torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]))   # H = [[2*t1, 2*t0], [2*t0, 0]]
    tensor([4., 2.])
    """
    theta = _as_theta(theta)
    v = torch.as_tensor(v).to(theta.device, theta.dtype)
    if method == "double":
        return _hvp_double(f, theta, v).detach()
    if method == "func":
        return _hvp_func(f, theta, v).detach()
    raise ValueError(f"Unknown HVP method {method!r}; choose one of {HVP_METHODS}.")


class _hvp_operator:
    """``v -> H v`` at a fixed ``theta`` for many ``v``, counting the products.

    The double-backward variant builds the gradient graph once and reuses it for every product
    (``retain_graph=True``): each HVP is then one backward pass instead of forward + backward +
    backward. ``tensor`` takes and gives tensors on theta's device; calling the operator takes
    and gives float64 numpy arrays on the CPU, as scipy wants them. ``should_stop`` is checked
    before building the graph and before every product (raises ``Stopped``).
    """

    def __init__(self, f: Loss, theta: torch.Tensor, method: str = DEFAULT_HVP,
                 should_stop: ShouldStop | None = None):
        if method not in HVP_METHODS:
            raise ValueError(f"Unknown HVP method {method!r}; choose one of {HVP_METHODS}.")
        self.f, self.method, self.count, self.should_stop = f, method, 0, should_stop
        self.theta = _as_theta(theta)
        self.n = self.theta.numel()
        check_stop(should_stop, "Hessian-vector products")
        if method == "double":
            self._theta = self.theta.clone().requires_grad_(True)
            with torch.enable_grad():
                self._g = torch.autograd.grad(f(self._theta), self._theta, create_graph=True)[0]

    def tensor(self, v: torch.Tensor) -> torch.Tensor:
        check_stop(self.should_stop, "Hessian-vector products")
        v = v.to(self.theta.device, self.theta.dtype)
        self.count += 1
        if self.method == "func":
            return _hvp_func(self.f, self.theta, v).detach()
        if not self._g.requires_grad:  # f is linear in theta: the gradient is constant, H = 0
            return torch.zeros_like(self.theta)
        with torch.enable_grad():
            return torch.autograd.grad(self._g, self._theta, v, retain_graph=True)[0]

    def __call__(self, v: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(-1))
        return _cpu_numpy(self.tensor(v))

    def linear_operator(self) -> LinearOperator:
        return LinearOperator((self.n, self.n), matvec=self, dtype=np.float64)

    def columns(self) -> np.ndarray:
        """The dense Hessian, one product per column, as a symmetric float64 CPU array."""
        eye = torch.eye(self.n, dtype=self.theta.dtype, device=self.theta.device)
        H = _cpu_numpy(torch.stack([self.tensor(eye[i]) for i in range(self.n)]))
        return (H + H.T) / 2  # symmetric in exact arithmetic; remove rounding asymmetry for eigh


# --------------------------------------------------------------------------- exact Hessian
def hessian_matrix(f: Loss, theta: torch.Tensor, hvp_method: str = DEFAULT_HVP,
                   should_stop: ShouldStop | None = None) -> np.ndarray:
    """The exact Hessian of ``f`` at ``theta`` as a symmetric float64 numpy array (on the CPU).

    Built column by column from ``n`` HVPs (one backward pass each, graph reused) on theta's
    device, which needs no more memory than one HVP. Refuses more than ``EXACT_MAX_PARAMS``
    parameters. ``should_stop`` is checked between columns.

    >>> hessian_matrix(lambda t: (1 - t[0] * t[1]) ** 2, torch.zeros(2, dtype=torch.float64))
    array([[ 0., -2.],
           [-2.,  0.]])
    """
    n = _as_theta(theta).numel()
    if n > EXACT_MAX_PARAMS:
        raise ValueError(
            f"The exact Hessian of {n:,} parameters is too large (limit {EXACT_MAX_PARAMS:,}); "
            "use hessian_extremes or hutchinson_trace."
        )
    H = _hvp_operator(f, theta, hvp_method, should_stop).columns()
    check_stop(should_stop, "the exact Hessian")  # a request during the last column
    return H


def hessian_eigenvalues(f: Loss, theta: torch.Tensor, should_stop: ShouldStop | None = None) -> np.ndarray:
    """All Hessian eigenvalues at ``theta``, sorted ascending (exact; n <= EXACT_MAX_PARAMS).

    >>> hessian_eigenvalues(lambda t: (1 - t[0] * t[1]) ** 2, torch.zeros(2, dtype=torch.float64))
    array([-2.,  2.])
    """
    return np.linalg.eigvalsh(hessian_matrix(f, theta, should_stop=should_stop))


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
    n_hvp: int  # Hessian-vector products spent, all precisions (exact: n, one per column)
    vec_min: np.ndarray  # unit eigenvector of eig_min (float64, CPU)
    vec_max: np.ndarray  # unit eigenvector of eig_max
    seconds: float  # wall-clock time of the computation
    method: str  # "exact", "iterative" (ARPACK, float64) or "lanczos" (see hessian_extremes)
    err_min: float = 0.0  # estimated absolute error of eig_min (0 for "exact"; see hessian_extremes)
    err_max: float = 0.0  # estimated absolute error of eig_max
    device: str = "cpu"  # where the Hessian-vector products ran
    note: str = ""  # e.g. that float64 ran on the CPU for an MPS model ("" normally)

    def __iter__(self):
        return iter((self.eig_min, self.eig_max))


class _Ends(NamedTuple):
    lo: float  # smallest Ritz value
    hi: float  # largest Ritz value
    vec_lo: torch.Tensor  # its unit Ritz vector (on the device, in the products' dtype)
    vec_hi: torch.Tensor
    gap_lo: float  # distance to the next Ritz value inward (inf when there is none)
    gap_hi: float
    err_lo: float  # estimated absolute error
    err_hi: float
    converged: bool
    floored: bool = False  # an end stopped at the rounding floor of the dtype, above rtol * |end|


def _error_estimate(residual: float, gap: float) -> float:
    # |theta - lambda| <= residual always (for the nearest eigenvalue); once the Ritz value is
    # isolated, residual^2 / gap (Kato-Temple, with the next Ritz value standing in for the
    # next eigenvalue) is far sharper. The smaller of the two.
    return min(residual, residual * residual / gap) if gap > 0 else residual


def _floor(lo: float, hi: float, dtype: torch.dtype) -> float:
    # Below a few rounding errors of the products' precision nothing moves any more.
    return max(ZERO_FLOOR, NOISE_FACTOR * torch.finfo(dtype).eps) * max(abs(lo), abs(hi))


def _targets(lo: float, hi: float, rtol: float, dtype: torch.dtype = torch.float64) -> tuple[float, float]:
    floor = _floor(lo, hi, dtype)
    return max(rtol * abs(lo), floor), max(rtol * abs(hi), floor)


def _lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, rtol: float,
             maxiter: int, gaps: tuple[float, float] = (np.inf, np.inf)) -> _Ends:
    """Both ends of the spectrum by Lanczos with full reorthogonalization, from ``v0``.

    Stops when each end's estimated error (``_error_estimate``) and its movement over the last
    ``STILL_STEPS`` products are within ``rtol`` of it (or of the dtype's rounding floor, see
    ``_floor``), when the Krylov space is invariant (every Ritz value then exact), or after
    ``maxiter`` products. No restarts: the basis (maxiter vectors of n,
    in v0's dtype on its device) is kept, which for the < 100 products these problems need
    costs less than ARPACK's restarts (its ncv = 20 space took 300+ products to 1e-6 on the
    26k-parameter digits MLP, where this took ~70 to 1e-4).

    ``gaps`` caps the gaps the error estimate uses: a run restarted from Ritz vectors of an
    earlier, larger Krylov space sees fewer Ritz values, so its own gaps overstate the true ones.
    """
    n = v0.numel()
    maxiter = max(1, min(maxiter, n))
    eps = torch.finfo(v0.dtype).eps
    Q = torch.empty((min(maxiter, 32) + 1, n), dtype=v0.dtype, device=v0.device)
    Q[0] = v0 / torch.linalg.vector_norm(v0)
    alphas: list[float] = []
    betas: list[float] = []
    los: list[float] = []
    his: list[float] = []
    for j in range(maxiter):
        w = matvec(Q[j])
        alphas.append(float(w @ Q[j]))
        w = w - alphas[-1] * Q[j] - (betas[-1] * Q[j - 1] if j else 0)  # the three-term recurrence
        # Full reorthogonalization against the whole basis; a second pass only when the first
        # removed much (Kahan-Parlett: "twice is enough"), which halves its cost here.
        V = Q[: j + 1]
        before = float(torch.linalg.vector_norm(w))
        w = w - V.T @ (V @ w)
        beta = float(torch.linalg.vector_norm(w))
        if beta < 0.7 * before:
            w = w - V.T @ (V @ w)
            beta = float(torch.linalg.vector_norm(w))
        if j == 0:
            vals, S = np.array(alphas), np.ones((1, 1))
        else:
            vals, S = eigh_tridiagonal(np.array(alphas), np.array(betas))
        radius = max(abs(vals[0]), abs(vals[-1]))
        gap_lo = min(vals[1] - vals[0] if j else np.inf, gaps[0])
        gap_hi = min(vals[-1] - vals[-2] if j else np.inf, gaps[1])
        err_lo = _error_estimate(beta * abs(S[-1, 0]), gap_lo)
        err_hi = _error_estimate(beta * abs(S[-1, -1]), gap_hi)
        want_lo, want_hi = _targets(vals[0], vals[-1], rtol, v0.dtype)
        los.append(vals[0])
        his.append(vals[-1])
        # A Ritz value can rest near the second eigenvalue of a cluster with a small residual
        # before the Krylov space finds the first: also ask that it stopped moving.
        still = j >= STILL_STEPS and abs(los[-1] - los[-1 - STILL_STEPS]) <= want_lo \
            and abs(his[-1] - his[-1 - STILL_STEPS]) <= want_hi
        invariant = beta <= 100 * eps * radius  # the Krylov space holds every eigenvalue v0 sees
        converged = invariant or (still and err_lo <= want_lo and err_hi <= want_hi)
        if converged or j + 1 == maxiter:
            break
        if j + 1 == len(Q) - 1:  # grow the basis storage by doubling
            Q = torch.cat([Q, torch.empty((min(len(Q), maxiter + 1 - len(Q)), n), dtype=Q.dtype, device=Q.device)])
        betas.append(beta)
        Q[j + 1] = w / beta
    m = len(alphas)
    coef = torch.as_tensor(S[:, [0, -1]], dtype=Q.dtype, device=Q.device)
    Y = Q[:m].T @ coef
    if invariant:
        err_lo = err_hi = 0.0
    floored = _floor(vals[0], vals[-1], v0.dtype) > rtol * min(abs(vals[0]), abs(vals[-1]))
    return _Ends(float(vals[0]), float(vals[-1]), Y[:, 0], Y[:, 1], float(gap_lo), float(gap_hi),
                 float(err_lo), float(err_hi), bool(converged), bool(floored and not invariant))


def _refine(op64: _hvp_operator, ends: _Ends, rtol: float) -> _Ends | None:
    """Float64 Rayleigh quotients of low-precision Ritz vectors, if they meet ``rtol``.

    Two float64 products: each Ritz vector's Rayleigh quotient (error ~ residual^2 / gap, and an
    upper bound on eig_min / lower bound on eig_max) and its true float64 residual. None when an
    end misses its target (the caller then continues in float64).
    """
    out = []
    for y, gap in ((ends.vec_lo, ends.gap_lo), (ends.vec_hi, ends.gap_hi)):
        y = y.to(op64.theta.device, torch.float64)
        y = y / torch.linalg.vector_norm(y)
        hy = op64.tensor(y)
        rho = float(y @ hy)
        residual = float(torch.linalg.vector_norm(hy - rho * y))
        out.append((rho, y, gap, residual))
    (lo, y_lo, gap_lo, r_lo), (hi, y_hi, gap_hi, r_hi) = out
    err_lo, err_hi = _error_estimate(r_lo, gap_lo), _error_estimate(r_hi, gap_hi)
    want_lo, want_hi = _targets(lo, hi, rtol, torch.float64)
    if err_lo > want_lo or err_hi > want_hi:
        return None
    return _Ends(lo, hi, y_lo, y_hi, gap_lo, gap_hi, err_lo, err_hi, True)


def hessian_extremes(
    f: Loss,
    theta: torch.Tensor,
    tol: float | None = None,
    maxiter: int | None = None,
    v0_seed: int = 0,
    method: str = "auto",
    hvp_method: str = DEFAULT_HVP,
    rtol: float = DEFAULT_RTOL,
    should_stop: ShouldStop | None = None,
) -> Extremes:
    """Smallest and largest Hessian eigenvalue at ``theta``, with the HVPs spent.

    Methods:
    - ``"lanczos"`` (the default above ``AUTO_EXACT_BELOW`` parameters): Lanczos with full
      reorthogonalization on HVPs, both ends in one Krylov space, until each end's estimated
      error is at most ``rtol`` times it. When ``f`` computes in any dtype (``f.any_dtype``, as
      ``model_loss``'s does) the products run in float32 (2-3x faster on one CPU thread), then
      two float64 products refine both ends to float64 Rayleigh quotients and check them with
      their float64 residuals; an end that misses ``rtol`` (or that float32 could not resolve)
      is finished by float64 Lanczos from those vectors.
      ``err_min`` / ``err_max`` are the estimates (``min(r, r^2 / gap)``, r the float64 residual).
    - ``"iterative"``: ARPACK's Lanczos (``scipy.sparse.linalg.eigsh``, ``which="BE"``, k=2) on
      float64 HVPs, to ARPACK's ``tol`` (default 1e-6, relative to each eigenvalue).
    - ``"exact"``: the full Hessian (n HVPs) and ``numpy.linalg.eigh``.
    - ``"auto"``: exact below ``AUTO_EXACT_BELOW`` parameters; above, "iterative" when ``tol``
      is given (as before ``rtol`` existed), otherwise "lanczos".
    The start vector is a seeded Gaussian, so the same call gives the same numbers. If an
    iterative method does not converge within ``maxiter`` products (lanczos) or restarts
    (ARPACK), problems up to ``EXACT_MAX_PARAMS`` fall back to the exact Hessian and larger ones
    raise RuntimeError. ``should_stop`` is checked before every HVP (raises ``Stopped``).
    A float32 ``theta`` with an ``f`` that cannot compute in float64 gets float32 accuracy
    (a few rounding errors times the spectral radius) where that is coarser than ``rtol``.
    Products run on theta's device; vectors come back as float64 numpy arrays.

    >>> d = torch.arange(1.0, 201.0, dtype=torch.float64)
    >>> ext = hessian_extremes(lambda t: (d * t * t).sum(), torch.zeros(200, dtype=torch.float64))
    >>> round(ext.eig_min, 3), round(ext.eig_max, 3), ext.method   # to rtol = 1e-4 or better
    (2.0, 400.0, 'lanczos')
    """
    start = time.perf_counter()
    theta = _as_theta(theta)
    n = theta.numel()
    if method not in ("auto", "exact", "iterative", "lanczos"):
        raise ValueError(f"Unknown method {method!r}; choose 'auto', 'exact', 'iterative' or 'lanczos'.")
    if not rtol > 0:
        raise ValueError(f"rtol must be positive, got {rtol!r}.")
    if method == "auto":
        method = "exact" if n < AUTO_EXACT_BELOW else "iterative" if tol is not None else "lanczos"
    # eigsh needs k=2 < n; with n <= 2 there is nothing to iterate on.
    if n <= 2:
        method = "exact"
    v0 = np.random.default_rng(v0_seed).standard_normal(n)
    info = dict(device=str(theta.device), note=_note(f))

    def done(lo, hi, count, vec_lo, vec_hi, how, err_lo=0.0, err_hi=0.0) -> Extremes:
        return Extremes(float(lo), float(hi), count, _unit(vec_lo), _unit(vec_hi),
                        time.perf_counter() - start, how, float(err_lo), float(err_hi), **info)

    count = 0
    if method == "lanczos":
        # f that computes in any dtype: the many products in float32, a float64 check after
        # (on the CPU where the device has no float64). Otherwise everything in theta's dtype.
        any_dtype = getattr(f, "any_dtype", False)
        low = torch.float32 if any_dtype else theta.dtype
        theta64 = None
        if low != torch.float64 and (any_dtype or theta.dtype == torch.float64):
            dev64, note64 = curvature_device(theta.device)
            theta64 = theta.to(dev64, torch.float64)
        cap = LANCZOS_MAXITER if maxiter is None else maxiter
        op = _hvp_operator(f, theta.to(low), hvp_method, should_stop)
        ends = _lanczos(op.tensor, torch.as_tensor(v0, dtype=low, device=theta.device), rtol, cap)
        count = op.count
        if theta64 is not None:
            del op  # free the float32 graph before building the float64 one
            op = _hvp_operator(f, theta64, hvp_method, should_stop)
            # An end that float32 could only locate to its rounding floor was not checked at
            # rtol (its Ritz value may still be resting in a cluster): finish that in float64.
            refined = None if ends.floored else _refine(op, ends, rtol)
            if refined is None:  # finish in float64, starting from both Ritz vectors
                refined = _lanczos(op.tensor, _refine_start(ends, theta64), rtol, cap, (ends.gap_lo, ends.gap_hi))
            ends = refined
            count += op.count
            info["note"] = " ".join(filter(None, [info["note"], note64]))
        if ends.converged:
            return done(ends.lo, ends.hi, count, ends.vec_lo, ends.vec_hi, "lanczos", ends.err_lo, ends.err_hi)
        if n > EXACT_MAX_PARAMS:
            raise RuntimeError(
                f"Lanczos did not reach rtol {rtol:g} within {cap} products per precision "
                f"({count} HVPs); raise maxiter or rtol."
            )
    elif method == "iterative":
        tol = 1e-6 if tol is None else tol
        op = _hvp_operator(f, theta, hvp_method, should_stop)
        try:
            vals, vecs = eigsh(op.linear_operator(), k=2, which="BE", tol=tol, maxiter=maxiter, v0=v0)
        except ArpackNoConvergence:
            if n > EXACT_MAX_PARAMS:
                raise RuntimeError(
                    f"Lanczos did not reach tolerance {tol:g} within maxiter={maxiter} restarts "
                    f"({op.count} HVPs); raise maxiter or tol."
                ) from None
            count = op.count
        else:
            order = np.argsort(vals)
            vals, vecs = vals[order], vecs[:, order]
            # ARPACK stops once each residual is below tol * |eigenvalue|: that bounds the error.
            return done(vals[0], vals[1], op.count, vecs[:, 0], vecs[:, 1], "iterative",
                        tol * abs(vals[0]), tol * abs(vals[1]))
    # The exact Hessian: asked for, tiny, or an iterative method that did not converge.
    if n > EXACT_MAX_PARAMS:
        raise ValueError(f"method='exact' needs at most {EXACT_MAX_PARAMS:,} parameters, got {n:,}.")
    op = _hvp_operator(f, theta, hvp_method, should_stop)
    H = op.columns()
    check_stop(should_stop, "the exact Hessian")  # the eigensolve itself cannot be interrupted
    vals, vecs = np.linalg.eigh(H)
    return done(vals[0], vals[-1], count + op.count, vecs[:, 0], vecs[:, -1], "exact")


def _refine_start(ends: _Ends, theta64: torch.Tensor) -> torch.Tensor:
    # Both Ritz vectors at once: the new Krylov space starts rich in both ends.
    lo = ends.vec_lo.to(theta64.device, torch.float64)
    hi = ends.vec_hi.to(theta64.device, torch.float64)
    return lo / torch.linalg.vector_norm(lo) + hi / torch.linalg.vector_norm(hi)


def _unit(v) -> np.ndarray:
    # Eigenvectors have no sign; fix one (largest component positive) so results are repeatable.
    v = _cpu_numpy(v) if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float64)
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
    device: str = "cpu"  # where the products ran
    note: str = ""  # e.g. that float64 ran on the CPU for an MPS model


def hutchinson_trace(
    f: Loss,
    theta: torch.Tensor,
    tol: float = 1e-3,
    min_samples: int = 30,
    max_samples: int = 1000,
    seed: int = 0,
    hvp_method: str = DEFAULT_HVP,
    should_stop: ShouldStop | None = None,
) -> TraceEstimate:
    """Estimate ``trace(H)`` at ``theta`` as the mean of ``z^T H z`` over Rademacher probes ``z``.

    Stops once ``std_error <= tol * |mean|``, but never before ``min_samples`` probes: a few
    probes can agree by luck, and a standard error from fewer than ~30 samples is itself
    unreliable. Stops at ``max_samples`` regardless. Probes come from a seeded CPU generator
    (the same probes on every device). ``should_stop`` is checked before every probe.

    >>> est = hutchinson_trace(lambda t: (t ** 2).sum(), torch.zeros(5))   # H = 2 I, trace 10
    >>> est.trace, est.n_samples
    (10.0, 30)
    """
    if not 2 <= min_samples <= max_samples:
        raise ValueError("Need 2 <= min_samples <= max_samples.")
    op = _hvp_operator(f, theta, hvp_method, should_stop)
    gen = torch.Generator().manual_seed(seed)
    k, mean, m2 = 0, 0.0, 0.0  # Welford's running mean and sum of squared deviations
    while True:
        z = (torch.randint(0, 2, (op.n,), generator=gen) * 2 - 1).to(op.theta.device, op.theta.dtype)
        sample = float(z @ op.tensor(z))
        k += 1
        delta = sample - mean
        mean += delta / k
        m2 += delta * (sample - mean)
        std_error = float(np.sqrt(m2 / (k - 1) / k)) if k > 1 else float("inf")
        if k >= max_samples or (k >= min_samples and std_error <= tol * abs(mean)):
            return TraceEstimate(mean, std_error, k, op.count, str(op.theta.device), _note(f))


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
    device: str = "cpu"  # where the products ran
    note: str = ""  # e.g. that float64 ran on the CPU for an MPS model


def _rule_grad_threshold(test) -> float:
    """The gradient norm at which core.rules.critical_test would switch, for the message."""
    from core.rules import CRITICAL_GAIN

    if not (test.curvature > 1e-12):
        return 1e-12
    return math.sqrt(2.0 * test.curvature * CRITICAL_GAIN * test.loss_scale)


def classify_point(
    f: Loss,
    theta: torch.Tensor,
    grad_tol: float | None = None,
    eig_rtol: float = 1e-4,
    eig_atol: float = 1e-10,
    method: str = "auto",
    tol: float = 1e-6,
    v0_seed: int = 0,
    rtol: float | None = None,
    should_stop: ShouldStop | None = None,
    loss_scale: float | None = None,
) -> CriticalPoint:
    """Classify ``theta`` from the gradient norm and the extreme Hessian eigenvalues.

    Tolerances follow the problem's scale:
    - gradient: by default the app's one rule, ``core.rules.critical_test``: the point is critical
      when one gradient step at the largest stable rate would gain less than CRITICAL_GAIN of
      ``loss_scale`` (pass the loss the run started from; without it ``1 + |f(theta)|``, which
      keeps an absolute floor near a zero-loss minimum). An explicit ``grad_tol`` replaces the
      rule with a plain threshold on the gradient norm (``inf`` switches the test off).
    - eigenvalues: ``tolerance = eig_rtol * max(|eig_min|, |eig_max|) + eig_atol``, so an
      eigenvalue that is zero up to rounding counts as zero, not as a tiny curvature.

    The extremes come from ``hessian_extremes`` with ARPACK's ``tol`` (precise, the default), or
    with its faster Lanczos path when ``rtol`` is given. ``should_stop`` is passed on.

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
    check_stop(should_stop, "the critical-point check")
    x = theta.clone().requires_grad_(True)
    with torch.enable_grad():
        value = f(x)
        g = torch.autograd.grad(value, x)[0]
    loss, grad_norm = float(value.detach()), float(torch.linalg.vector_norm(g))
    if rtol is None:
        ext = hessian_extremes(f, theta, tol=tol, v0_seed=v0_seed, method=method, should_stop=should_stop)
    else:
        ext = hessian_extremes(f, theta, rtol=rtol, v0_seed=v0_seed, method=method, should_stop=should_stop)
    lo, hi = ext.eig_min, ext.eig_max
    etol = eig_rtol * max(abs(lo), abs(hi)) + eig_atol
    if grad_tol is None:
        from core.rules import critical_test

        test = critical_test(grad_norm, lo, hi, loss_scale if loss_scale is not None else 1.0 + abs(loss))
        critical = test.critical
        grad_tol = _rule_grad_threshold(test)  # the |g| at which the rule switches, for the sentence
    else:
        critical = grad_norm <= grad_tol

    curv = f"the Hessian's eigenvalues run from {lo:.4g} to {hi:.4g} (zero within ±{etol:.2g})"
    escape = None
    if not critical:
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
        kind, loss, grad_norm, float(grad_tol), lo, hi, float(etol), escape, ext.n_hvp, sentence,
        ext.device, ext.note,
    )
