"""Benchmark: extreme Hessian eigenvalues of a trained ~25k-parameter MLP on sklearn digits.

Compares core.curvature.hessian_extremes (Lanczos via scipy eigsh, both ends in one run) with
textbook power iteration (for lambda_max, then shifted power iteration for lambda_min), both
against a converged eigsh reference (tol=0). Also times one HVP with each implementation.

Run: python bench/curvature.py [--threads N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.linalg import eigsh
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.curvature import _hvp_double, _hvp_func, _hvp_operator, hessian_extremes, model_loss  # noqa: E402

SEED = 0
HIDDEN = (256, 32)  # 64 -> 256 -> 32 -> 10: 25,194 parameters
TRAIN_STEPS = 300  # full-batch Adam steps, enough to leave the random-init spectrum
TARGET_REL_ERR = 5e-4


def digits_mlp(hidden):
    digits = load_digits()
    X = StandardScaler().fit_transform(digits.data).astype(np.float32)
    torch.manual_seed(SEED)
    layers, width = [], X.shape[1]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 10)), X, digits.target


def build_problem():
    model, X, y = digits_mlp(HIDDEN)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(TRAIN_STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        opt.step()
    f, theta = model_loss(model, nn.CrossEntropyLoss(), X, y)  # float64
    return f, theta, loss.item()


def power_iteration(matvec, n, shift=0.0, iters=100, rtol=1e-3, seed=SEED):
    """Textbook power iteration on (H - shift I): Rayleigh quotient, stop on relative change."""
    v = np.random.default_rng(seed).standard_normal(n)
    v /= np.linalg.norm(v)
    lam_prev, count = None, 0
    for _ in range(iters):
        w = matvec(v) - shift * v
        count += 1
        lam = float(v @ w)
        v = w / np.linalg.norm(w)
        if lam_prev is not None and abs(lam - lam_prev) <= rtol * abs(lam):
            break
        lam_prev = lam
    return lam + shift, count


def time_hvp(fn, reps=5):
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Measured on the shared 2-core box (other jobs running): the whole bench took 34 s with one
    # thread and 184 s with two; two threads fight over tiny matmuls.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    f, theta, train_loss = build_problem()
    n = theta.numel()
    print(f"MLP 64-{'-'.join(map(str, HIDDEN))}-10 tanh on digits: {n:,} parameters, "
          f"loss {train_loss:.4f} after {TRAIN_STEPS} Adam steps, {args.threads} thread(s)")

    # Which HVP implementation to default to: time one product at ~2k and ~25k parameters.
    print(f"\none HVP, best of 5 {'params':>8}{'torch.func':>12}{'double bw':>11}{'graph reused':>14}")
    small, Xs, ys = digits_mlp((32,))
    for g, th in (model_loss(small, nn.CrossEntropyLoss(), Xs, ys), (f, theta)):
        v = torch.randn(th.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        op_cached = _hvp_operator(g, th, "double")
        times = [time_hvp(lambda: _hvp_func(g, th, v)), time_hvp(lambda: _hvp_double(g, th, v)),
                 time_hvp(lambda: op_cached.tensor(v))]
        print(f"{'':<18}{th.numel():>8,}" + "".join(f"{t * 1e3:>{w}.1f} ms" for t, w in zip(times, (9, 8, 11))))

    # Reference: eigsh run to machine precision.
    t0 = time.perf_counter()
    op = _hvp_operator(f, theta)
    v0 = np.random.default_rng(SEED).standard_normal(n)
    ref_vals = eigsh(op.linear_operator(), k=2, which="BE", tol=0, v0=v0, return_eigenvectors=False)
    ref_min, ref_max = float(np.min(ref_vals)), float(np.max(ref_vals))
    ref_row = ("reference eigsh tol=0", ref_min, ref_max, op.count, time.perf_counter() - t0)

    ext = hessian_extremes(f, theta, method="iterative")
    ours = ("hessian_extremes (BE)", ext.eig_min, ext.eig_max, ext.n_hvp, ext.seconds)

    # The same accuracy asked of two one-sided runs, to justify which="BE".
    t0 = time.perf_counter()
    op = _hvp_operator(f, theta)
    la = eigsh(op.linear_operator(), k=1, which="LA", tol=1e-6, v0=v0, return_eigenvectors=False)
    sa = eigsh(op.linear_operator(), k=1, which="SA", tol=1e-6, v0=v0, return_eigenvectors=False)
    two = ("eigsh LA + SA", float(sa[0]), float(la[0]), op.count, time.perf_counter() - t0)

    t0 = time.perf_counter()
    op = _hvp_operator(f, theta)
    p_max, c1 = power_iteration(op, n)
    p_min, c2 = power_iteration(op, n, shift=p_max)
    power = ("power iteration", p_min, p_max, c1 + c2, time.perf_counter() - t0)

    print(f"\n{'method':<24}{'eig_min':>14}{'eig_max':>12}{'rel err min':>13}{'rel err max':>13}"
          f"{'HVPs':>7}{'seconds':>9}")
    for name, lo, hi, hvps, sec in (ref_row, ours, two, power):
        err_lo, err_hi = abs(lo - ref_min) / abs(ref_min), abs(hi - ref_max) / abs(ref_max)
        print(f"{name:<24}{lo:>14.6e}{hi:>12.6f}{err_lo:>13.1e}{err_hi:>13.1e}{hvps:>7}{sec:>9.2f}")

    err = max(abs(ext.eig_min - ref_min) / abs(ref_min), abs(ext.eig_max - ref_max) / abs(ref_max))
    print(f"\ntime ratio hessian_extremes / power iteration: {ours[4] / power[4]:.2f} "
          f"(HVPs {ours[3]} vs {power[3]})")
    print(f"hessian_extremes worst relative error {err:.1e} "
          f"({'meets' if err <= TARGET_REL_ERR else 'MISSES'} the {TARGET_REL_ERR:g} target)")
    print(f"total bench time {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
