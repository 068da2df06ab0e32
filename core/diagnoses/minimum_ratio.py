"""Are local minima rare? The lecture's empirical figure (section 2.2.2), reproduced.

The lecture claims that in many dimensions a point where the gradient is ~0 is almost never a
local minimum, and shows an empirical figure: many trained networks, each driven to a point of
near-zero gradient, plotted by training loss against the **minimum ratio** (the share of the
Hessian's eigenvalues that are positive; 1 at a strict local minimum).

`run` does the same on small networks and the lab data:
1. one-hidden-layer tanh networks of several widths, several initialisations each, trained
   briefly with Adam (core.train) on a small random draw of the lab data's training split;
2. each then driven to a point of near-zero gradient by minimising |g(theta)|^2 with
   scipy.optimize.least_squares (Levenberg-Marquardt on the residual g, Jacobian = the exact
   Hessian from core.curvature), as the original experiment minimised the gradient norm;
3. core.rules.critical_test on every point (a point that fails it is dropped and another
   initialisation tried), the exact spectrum (core.curvature.hessian_eigenvalues) and the
   eigenvalue signs (core.curvature.classify_point with its own gradient test off).

Squared error is used for every task: cross-entropy's softmax has directions along which the loss
never changes (adding the same amount to every class's output weights), which would force zero
eigenvalues and make a ratio of 1 impossible.

>>> from core.data import load_builtin
>>> from core.lab import LabSetup
>>> res = run(load_builtin("moons"), LabSetup(), Config(widths=(2,), seeds=2))   # doctest: +SKIP
>>> len(res.points), bool(res.points["critical"].all())                          # doctest: +SKIP
(2, True)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from scipy import stats
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from core.curvature import classify_point, gradient, hessian_eigenvalues, model_loss
from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress
from core.findings import SIGNIFICANCE
from core.diagnoses.words import num, pct
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp
from core.rules import CRITICAL_GAIN, critical_test
from core.runs import prepare_split, subsample_rows
from core.train import TrainConfig, make_loss, train

LECTURE = "2.2.2"
MAX_POINTS = 120  # widths x seeds: bounds the work (about 0.5 s a point on one core)
PROGRESS_EVERY = 0.25  # seconds between progress calls inside one point's minimisation


@dataclass(frozen=True)
class Config:
    """The experiment's size. Frozen and hashable: it keys the cache."""

    widths: tuple[int, ...] = (2, 4, 8)  # hidden units of the one-hidden-layer tanh networks
    seeds: int = 10  # initialisations per width (points asked for = widths x seeds)
    rows: int = 200  # training rows, a random draw of the lab training split (keeps each Hessian cheap)
    train_steps: int = 150  # full-batch Adam steps before driving the gradient to ~0
    lr: float = 0.05  # Adam's learning rate for those steps
    max_evals: int = 20  # least-squares evaluations of g (and its Jacobian, the Hessian) per point
    max_inputs: int = 8  # wider data is projected on its first principal components (keeps nets small)
    max_params: int = 300  # widths whose network has more parameters are left out
    retries: float = 1.0  # extra initialisations per width, as a share of seeds, for points that fail the test


@dataclass(frozen=True)
class Result:
    """The scatter's points and what they show. `points` has one row per accepted point."""

    points: pd.DataFrame  # POINT_COLUMNS
    asked: int  # points asked for (widths kept x seeds)
    rejected: int  # initialisations whose end point failed critical_test (not plotted)
    widths: tuple[int, ...]  # the widths kept
    n_inputs: int  # input features of the networks (after any projection)
    rows: int
    spearman_rho: float  # rank correlation of minimum ratio with loss (NaN with < 3 points)
    spearman_p: float
    median_trained_grad: float  # median |g| where Adam stopped
    median_grad: float  # median |g| after minimising |g|^2
    params: tuple  # each point's flat parameters (float64 numpy), in the order of `points`
    verdict: Verdict
    seconds: float
    notes: list[str] = field(default_factory=list)


POINT_COLUMNS = ["width", "seed", "n_params", "start_loss", "trained_grad_norm", "loss", "grad_norm", "curvature",
                 "gain_share", "critical", "kind", "min_ratio", "neg_share", "zero_share", "n_eigenvalues"]


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence when the config cannot run."""
    if not config.widths or any(w < 1 or w > 64 for w in config.widths):
        raise ValueError("Give one or more widths between 1 and 64.")
    if config.seeds < 1:
        raise ValueError("Ask for at least one initialisation per width.")
    if len(config.widths) * config.seeds > MAX_POINTS:
        raise ValueError(f"At most {MAX_POINTS} points (widths x initialisations): each needs its own exact Hessian.")
    if config.rows < 20:
        raise ValueError("Use at least 20 rows.")
    if config.train_steps < 0 or config.max_evals < 1:
        raise ValueError("The training steps cannot be negative and the minimisation needs at least one evaluation.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train the small networks, drive each to a critical point, measure its spectrum."""
    validate(config)
    on_progress = on_progress or no_progress
    began = time.perf_counter()
    notes: list[str] = []
    split = prepare_split(data, setup)
    X, y = subsample_rows(split.X_train, split.y_train, config.rows, split.task, setup.seed)
    if X.shape[1] > config.max_inputs:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=config.max_inputs, random_state=setup.seed).fit(X)
        notes.append(f"The {X.shape[1]} features were projected on their first {config.max_inputs} principal "
                     f"components ({pct(float(pca.explained_variance_ratio_.sum()))} of the variance) to keep "
                     "every network small enough for its exact Hessian.")
        X = pca.transform(X)
        split = replace(split, X_val=np.ascontiguousarray(pca.transform(split.X_val), dtype=np.float32))
    small = replace(split, X_train=np.ascontiguousarray(X, dtype=np.float32), y_train=y)
    widths = tuple(w for w in dict.fromkeys(config.widths) if _size(w, small) <= config.max_params)
    dropped = [w for w in dict.fromkeys(config.widths) if w not in widths]
    if not widths:
        raise ValueError(f"Every width gives more than {config.max_params} parameters on this data; choose "
                         "narrower networks.")
    if dropped:
        notes.append(f"Width(s) {', '.join(map(str, dropped))} left out: more than {config.max_params} parameters.")
    asked = len(widths) * config.seeds
    tries = config.seeds + math.ceil(config.retries * config.seeds)
    loss_fn = make_loss("mse", small.task, small.n_classes)
    rows, params, rejected, done = [], [], 0, 0
    with threadpool_limits(limits=1, user_api="blas"):
        for w in widths:
            kept = 0
            for k in range(tries):
                if kept == config.seeds:
                    break
                message = f"width {w}, initialisation {k + 1} ({len(rows)} of {asked} points)"
                on_progress(done / asked, message)
                row = _one_point(small, loss_fn, w, setup.seed + k, config,
                                 lambda: on_progress(done / asked, message))
                if row["critical"]:
                    params.append(row.pop("params"))
                    rows.append(row)
                    kept += 1
                    done += 1
                else:
                    rejected += 1
    on_progress(1.0, "done")
    points = pd.DataFrame(rows, columns=POINT_COLUMNS).astype({"width": int, "seed": int, "n_params": int,
                                                               "n_eigenvalues": int})
    if len(points) < asked:
        notes.append(f"Only {len(points)} of the {asked} points asked for passed the critical test within "
                     f"{tries} initialisations per width.")
    rho, p = (stats.spearmanr(points["min_ratio"], points["loss"]) if len(points) >= 3
              and points["min_ratio"].nunique() > 1 and points["loss"].nunique() > 1 else (float("nan"), float("nan")))
    result = Result(points=points, asked=asked, rejected=rejected, widths=widths, n_inputs=small.n_features,
                    rows=len(X), spearman_rho=float(rho), spearman_p=float(p),
                    median_trained_grad=float(points["trained_grad_norm"].median()),
                    median_grad=float(points["grad_norm"].median()), params=tuple(params),
                    verdict=Verdict("info", ""),
                    seconds=time.perf_counter() - began, notes=notes)
    return replace(result, verdict=make_verdict(result))


def _size(width: int, split) -> int:
    return split.n_features * width + width + width * split.n_outputs + split.n_outputs


def _one_point(split, loss_fn, width: int, seed: int, config: Config, tick) -> dict:
    """Train one network, minimise |g|^2 from where training ended, judge the point."""
    model = build_mlp(ModelSpec(hidden=(width,), activation="tanh"), split.n_features, split.n_outputs, seed=seed)
    f0, theta0 = model_loss(model, loss_fn, split.X_train, split.y_train)
    start_loss = float(f0(theta0))
    if config.train_steps:
        train(model, split, TrainConfig(optimizer="adam", lr=config.lr, max_steps=config.train_steps, loss="mse",
                                        eval_every=10**9, seed=seed, device="cpu"))
    f, theta = model_loss(model, loss_fn, split.X_train, split.y_train)
    last = [time.perf_counter()]

    def residual(v: np.ndarray) -> np.ndarray:
        # The gradient is least_squares' residual: minimising |g|^2. Each evaluation is a place
        # where a Stop lands (on_progress), at most every PROGRESS_EVERY seconds.
        if time.perf_counter() - last[0] > PROGRESS_EVERY:
            last[0] = time.perf_counter()
            tick()
        return gradient(f, torch.from_numpy(v)).numpy()

    # The Jacobian of g is the Hessian. torch.func.hessian builds it in one vectorised pass, 2-4x
    # faster here than core.curvature's column-by-column products for 150-300 parameters; the
    # spectrum reported below comes from core.curvature, so the minimiser's Hessian only steers.
    hess = torch.func.hessian(f)
    trained_grad = float(np.linalg.norm(residual(theta.numpy())))
    sol = least_squares(residual, theta.numpy(), jac=lambda v: hess(torch.from_numpy(v)).numpy(), method="lm",
                        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=config.max_evals)
    x = torch.from_numpy(sol.x)
    g = float(torch.linalg.vector_norm(gradient(f, x)))
    cp = classify_point(f, x, grad_tol=math.inf, method="exact")  # the eigenvalue signs; "~0" is critical_test's
    eigs = hessian_eigenvalues(f, x)
    test = critical_test(g, float(eigs[0]), float(eigs[-1]), start_loss)
    return dict(width=width, seed=seed, n_params=len(eigs), start_loss=start_loss, trained_grad_norm=trained_grad,
                loss=float(f(x)), grad_norm=g, curvature=test.curvature, gain_share=test.gain_share,
                critical=test.critical, kind=cp.kind if test.critical else "not critical",
                min_ratio=float(np.mean(eigs > cp.tolerance)), neg_share=float(np.mean(eigs < -cp.tolerance)),
                zero_share=float(np.mean(np.abs(eigs) <= cp.tolerance)), n_eigenvalues=len(eigs), params=sol.x.copy())


def make_verdict(r: Result) -> Verdict:
    """What the scatter shows, in words, from the result's numbers only."""
    pts = r.points
    if not len(pts):
        return Verdict("warning", "No point passed the critical test, so there is nothing to plot.",
                       "Allow more evaluations or more training steps.")
    n = len(pts)
    ones = int((pts["min_ratio"] >= 1.0).sum())
    with_neg = int((pts["neg_share"] > 0).sum())
    flat_only = n - ones - with_neg
    widths = ", ".join(map(str, r.widths))
    text = (f"{n} networks (widths {widths}; {n // max(1, len(r.widths))} initialisations each, {r.rows} rows) were "
            f"driven to points where the gradient is ~0 (median |g| {num(r.median_trained_grad)} after training, "
            f"{num(r.median_grad)} after minimising |g|²): every one passes the critical test (the best safe gradient "
            f"step would gain at most {pct(float(pts['gain_share'].max()))} of the start loss; the line is "
            f"{pct(CRITICAL_GAIN)}). Minimum ratio from {num(float(pts['min_ratio'].min()), 2)} to "
            f"{num(float(pts['min_ratio'].max()), 2)}: {ones} of {n} points have ratio 1 (every eigenvalue positive: "
            f"a local minimum); {with_neg} have a negative eigenvalue (saddle-like) and {flat_only} only zero-curvature "
            f"directions besides positive ones (flat).")
    if math.isfinite(r.spearman_p) and r.spearman_p < SIGNIFICANCE:
        direction = "lower" if r.spearman_rho < 0 else "higher"
        text += (f" Points with a higher minimum ratio have {direction} loss (Spearman ρ = {num(r.spearman_rho, 2)}, "
                 f"p = {num(r.spearman_p, 2)}).")
    elif math.isfinite(r.spearman_rho):
        text += (f" No clear relation between minimum ratio and loss (Spearman ρ = {num(r.spearman_rho, 2)}, "
                 f"p = {num(r.spearman_p, 2)}).")
    return Verdict("info", text,
                   "Read it with the caveat below: these are the critical points this procedure finds, not a census "
                   "of where gradient descent stops.")


def honesty_note(r: Result) -> str:
    """What the points do and do not show (for the page, under the chart)."""
    share = (r.points["min_ratio"] >= 1.0).mean() if len(r.points) else float("nan")
    return (f"What the points show: minimising |g|² is drawn to any critical point, saddles as much as minima, so "
            f"the {pct(share)} of points with ratio 1 says how often this procedure lands on a minimum of these small "
            "networks, not how often gradient descent stops at one. Zero eigenvalues (flat directions: saturated or "
            "redundant units, common in tiny networks) also keep a ratio below 1 without any negative curvature. "
            "These networks have tens of parameters; the lecture's claim is about many dimensions, where a minimum "
            "needs every one of them to curve up.")
