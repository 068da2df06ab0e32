"""Read a learning-rate schedule back from a logged rate: which core.schedules family, which parameters.

`fit_schedule(steps, lr)` fits every family of `core.schedules.SCHEDULES` to the logged rate and
returns the best as a `FittedSchedule` (name, parameters, total steps, errors). Every candidate
curve is computed by core.schedules itself (the same functions `lr_at` and `to_torch` use), so
what is fitted is exactly what the LR page previews and `torch_code` prints.

How: whole-number parameters (warm-up length, step size, run length T, cycle length) start from
features of the curve (where the peak is, where the rate jumps, where straight pieces would
reach zero) and are refined by a bounded search (scipy.optimize.minimize_scalar over T, a few
neighbours for the rest); for each choice the continuous parameters (base rate, end rate, decay
factors, powers) are found by scipy.optimize.least_squares. The error is relative to the rate
itself with a floor at 1% of the peak, so the tail of a decay counts and a rate of 0 does not
divide by zero. Logs are sampled to at most MAX_FIT_POINTS points (always keeping both sides of
every jump), which bounds the work on a million-step log.

Families that fit equally well (within TIE_TOLERANCE rms) are resolved towards the simpler one
(constant before exponential before step before cosine ...): a constant rate is "constant", not
a cosine with an enormous T.

>>> import numpy as np
>>> from core.schedules import lr_at
>>> t = np.arange(0, 1000, 5)
>>> lr = [lr_at("warmup_cosine", int(s), 1000, 3e-4, warmup_steps=100, min_lr=0.0) for s in t]
>>> fit = fit_schedule(t, lr)
>>> fit.name, fit.params["warmup_steps"], fit.total_steps, round(fit.base_lr, 7)
('warmup_cosine', 100, 1000, 0.0003)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize_scalar

from core import schedules
from core.diagnoses.words import num, steps as steps_word

MAX_FIT_POINTS = 400  # sampled points the fit runs on (the error is reported on these)
ERROR_FLOOR = 0.01  # relative errors are taken against max(|lr|, this x the peak rate)
TIE_TOLERANCE = 2e-3  # families within this rms relative error of the best count as equally good
EXACT = 2e-5  # an rms relative error below this is exact (a rate printed with 6 digits): stop searching
GOOD_FIT = 0.02  # an rms relative error below this reads as "follows"
NO_FIT = 0.1  # above this no family describes the rate
# Simplest first: the order ties are broken in.
ORDER = ("constant", "exponential", "linear_decay", "step", "cosine", "polynomial", "inverse_sqrt", "noam",
         "warmup_linear", "warmup_cosine", "cyclic", "cosine_restarts", "one_cycle")
_JUMP = 1e-3  # a relative change between logged points larger than this is a jump
SNAP_TOLERANCE = 0.02  # rounding a parameter may raise the rms error by this share of the fit's own ...
SNAP_FLOOR = EXACT  # ... or by this much (an exact fit stays exact)
CODE_DIGITS = 4  # significant digits of the numbers in generated code
ZERO_START = 1e-6  # a warm-up start factor this small (the fit's floor; torch needs > 0) starts at 0
# Families whose run length T shapes the curve (the others only need T past the last step).
_T_SHAPED = {"cosine", "linear_decay", "polynomial", "warmup_linear", "warmup_cosine", "one_cycle"}
_LINEAR = ("base", "min_lr")  # solved by projection, not searched


@dataclass(frozen=True)
class FittedSchedule:
    """The schedule a logged rate follows best, with the evidence."""

    name: str  # a key of core.schedules.SCHEDULES
    base_lr: float
    total_steps: int  # T, as lr_at and to_torch take it
    params: dict = field(default_factory=dict)  # the family's parameters (core.schedules names)
    rms_error: float = float("nan")  # rms relative error over the fitted points
    max_error: float = float("nan")  # largest relative error
    n_points: int = 0
    ranking: tuple = ()  # (name, rms_error) of every family tried, best first

    @property
    def label(self) -> str:
        """The family's human name ('Warmup + cosine')."""
        return schedules.SCHEDULES[self.name].label

    @property
    def fits(self) -> bool:
        """True when the family reproduces the log (rms relative error below GOOD_FIT)."""
        return self.rms_error < GOOD_FIT

    @property
    def matched(self) -> bool:
        """False when even the closest family is off by more than NO_FIT (rms)."""
        return self.rms_error < NO_FIT

    def sentence(self) -> str:
        """One sentence for a verdict, its confidence taken from the error."""
        if self.fits:
            return f"Schedule read from the logged rate: {self.describe()}."
        if self.matched:
            return (f"Schedule read from the logged rate, roughly (rms error {100 * self.rms_error:.2g}%): "
                    f"{self.describe()}.")
        return (f"The logged rate follows none of the known schedules (the closest, {self.label.lower()}, is off by "
                f"{100 * self.rms_error:.2g}% rms).")

    def lr(self, steps) -> np.ndarray:
        """The fitted rate at `steps`, computed by core.schedules (steps below total_steps)."""
        return curve(self.name, np.asarray(steps), self.total_steps, self.base_lr, self.params)

    def describe(self) -> str:
        """'linear warmup over 500 steps from 0 to 2e-05, then cosine to 0 at step 10,000'."""
        return describe(self.name, self.base_lr, self.total_steps, self.params)

    def torch_code(self) -> str:
        """PyTorch code that builds this schedule (core.schedules.torch_code), its numbers printed
        with at most CODE_DIGITS significant digits (5e-05, not 4.989445465773396e-05)."""
        params = {k: v if isinstance(v, (int, np.integer)) else _short(float(v)) for k, v in self.params.items()}
        return schedules.torch_code(self.name, self.total_steps, _short(self.base_lr), **params)


def curve(name: str, steps: np.ndarray, total_steps: int, base_lr: float, params: dict) -> np.ndarray:
    """core.schedules' rate at each step (validated once, then its per-step formula)."""
    T, p = schedules._resolve(name, total_steps, [base_lr], params)  # noqa: SLF001 - see module doc
    lr_of = schedules._lr  # noqa: SLF001 - the exact function lr_at evaluates
    return np.fromiter((lr_of(name, int(t), T, float(base_lr), p) for t in steps), float, len(steps))


# --------------------------------------------------------------------------- the fit
def fit_schedule(steps, lr) -> FittedSchedule | None:
    """The core.schedules family (and parameters) closest to a logged learning rate, or None.

    `steps` are whole, increasing step numbers (the rate logged at step t is the one update t
    used, as lr_at(t)); `lr` the logged rates. None when fewer than 3 finite positive-peak points.
    """
    t = np.asarray(steps, dtype=np.int64)
    y = np.asarray(lr, dtype=float)
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 3 or np.max(y) <= 0 or np.min(y) < 0 or t[0] < 0:
        return None
    t, y = _sample(t, y)
    peak = float(np.max(y))
    fitter = _Fitter(t, y / peak)
    results = []
    for name in fitter.families():
        try:
            found = getattr(fitter, name)()
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            found = None
        if found is not None:
            results.append((name, *found))
            if found[0] < EXACT:  # the simplest exact family: later (more complex) ones cannot win
                break
    if not results:
        return None
    best = min(r[1] for r in results)
    ranking = tuple(sorted(((n, float(e)) for n, e, _, _ in results), key=lambda x: x[1]))
    name, err, T, params = next(r for r in results if r[1] <= best + TIE_TOLERANCE)  # ORDER: simplest first
    T, params = fitter.snap(name, T, params, err, peak)
    base = params.pop("base") * peak
    params = {k: (v * peak if k == "min_lr" else v) for k, v in params.items()}
    rel = _relative(curve(name, t, T, base, params), y, peak)
    rms = float(np.sqrt(np.mean(rel ** 2)))
    ranking = tuple(sorted(((n, rms if n == name else e) for n, e in ranking), key=lambda x: x[1]))
    return FittedSchedule(name, float(base), int(T), params, rms, float(np.max(np.abs(rel))), len(t), ranking)


def _round_sig(v: float, digits: int) -> float:
    """`v` rounded to `digits` significant digits (0 stays 0)."""
    return float(f"{v:.{digits}g}") if v else 0.0


def _short(v: float) -> float:
    """`v` with at most CODE_DIGITS significant digits; a factor just under 1 (a decay gamma of
    0.99977) keeps CODE_DIGITS digits of its distance from 1, which is what sets the curve."""
    if 0.5 < v < 1:
        return 1.0 - _round_sig(1.0 - v, CODE_DIGITS)
    return _round_sig(v, CODE_DIGITS)


def _round_floats(v: float, zero: bool = False) -> list[float]:
    """Rounder versions of `v`, roundest first: 0 (when `zero`), then 1, 2, ... significant digits
    (of 1 - v too, for a factor just under 1)."""
    out = [0.0] if zero else []
    for d in range(1, 7):
        out.append(_round_sig(v, d))
        if 0.5 < v < 1:
            out.append(1.0 - _round_sig(1.0 - v, d))
    return list(dict.fromkeys(x for x in out if x != v)) + [v]


def _round_ints(v: int, low: int) -> list[int]:
    """Rounder whole numbers near `v` (at least `low`), roundest first: 2,001 -> 2,000 then 2,001."""
    out = [int(round(v / 10 ** k) * 10 ** k) for k in range(len(str(abs(int(v)))) - 1, 0, -1)]
    return [x for x in dict.fromkeys(out + [int(v)]) if x >= low]


def _relative(model: np.ndarray, y: np.ndarray, peak: float) -> np.ndarray:
    return (model - y) / np.maximum(np.abs(y), ERROR_FLOOR * peak)


def _sample(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ~MAX_FIT_POINTS points: evenly spaced, plus both sides of every jump (up to a cap)."""
    n = len(t)
    if n <= MAX_FIT_POINTS:
        return t, y
    keep = np.zeros(n, bool)
    keep[np.linspace(0, n - 1, MAX_FIT_POINTS // 2).astype(int)] = True
    rel = np.abs(np.diff(y)) / np.maximum(np.abs(y[:-1]), 1e-300)
    jumps = np.flatnonzero(rel > 10 * _JUMP)
    if len(jumps) > MAX_FIT_POINTS // 4:  # a cyclic or noisy rate: keep the biggest changes only
        jumps = jumps[np.argsort(rel[jumps])[-MAX_FIT_POINTS // 4:]]
    keep[jumps] = keep[jumps + 1] = True
    keep[int(np.argmax(y))] = True
    return t[keep], y[keep]


class _Fitter:
    """Fits each family to (t, y), y scaled so its peak is 1; each returns (rms, T, params) or None.

    Params use core.schedules names plus "base"; "min_lr" is in units of the peak too. Every
    family's rate is proportional to base, and min_lr (where there is one) enters linearly, so for
    given shape parameters (T, warm-up, gamma, ...) base and min_lr come from a weighted linear
    least-squares solve on one or two curves ("variable projection"); only the shape parameters
    are searched.
    """

    def __init__(self, t: np.ndarray, y: np.ndarray):
        self.t, self.y = t, y
        self.T0 = max(2, int(t[-1]) + 1)  # T must exceed every logged step (lr_at's domain)
        self.w = 1.0 / np.maximum(np.abs(y), ERROR_FLOOR)
        i = int(np.argmax(y))
        self.i_peak, self.t_peak = i, int(t[i])
        ratio = y[1:] / np.maximum(y[:-1], 1e-300)
        self.up = np.flatnonzero(ratio > 1 + _JUMP)  # index i: y[i+1] jumped up from y[i]
        self.down = np.flatnonzero(ratio < 1 - _JUMP)
        self.flat = float(np.min(y)) > 1 - _JUMP
        self.rises = i > 0 and y[0] < 1 - _JUMP

    def families(self) -> list[str]:
        """The families worth fitting, from the curve's shape (a decay cannot fit a warm-up)."""
        if self.flat:
            return ["constant"]
        names = ["constant"]
        # More than one top (up, down, up again, or down, jump up, down): a cycle, not a warm-up.
        periodic = len(self.up) and len(self.down) and (self.up[-1] > self.down[0] if self.rises
                                                         else self.up[0] > self.down[0])
        if periodic:
            names += ["cyclic", "cosine_restarts"]
        elif self.rises:
            names += ["inverse_sqrt", "noam", "warmup_linear", "warmup_cosine", "one_cycle"]
        else:
            names += ["exponential", "linear_decay", "step", "cosine", "polynomial"]
        return [n for n in ORDER if n in names]

    # ------------------------------------------------------------------ rounding
    def snap(self, name: str, T: int, params: dict, err: float, peak: float) -> tuple[int, dict]:
        """The fitted parameters rounded to round values (whole steps on round numbers, rates and
        factors with few significant digits, 0 for a start or floor within rounding of 0) wherever
        that keeps the rms error within SNAP_TOLERANCE of the fit's own: a search stops at 2,001
        or 4.989e-5 when 2,000 and 5e-5 fit as well (or exactly, once T may equal the last step).

        Order: whole-number shape parameters (T first), then real shape parameters, each time with
        base and min_lr solved again; then base and min_lr themselves (in the log's units). Returns
        (T, params) in the fitter's units (rates divided by `peak`)."""
        limit = max(err * (1 + SNAP_TOLERANCE), err + SNAP_FLOOR)
        with_min = "min_lr" in params
        shape = {k: v for k, v in params.items() if k not in _LINEAR}

        def solve(T, shape):
            try:
                return self._project(name, T, shape, with_min)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                return np.inf, {}

        best = dict(params)
        whole = (["T"] if name in _T_SHAPED else []) + [k for k in shape if k in schedules._INT_PARAMS  # noqa: SLF001
                                                       and k != "d_model"]
        for key in whole:
            value = T if key == "T" else shape[key]
            low = max(2, int(self.t[-1])) if key == "T" else 1
            for cand in _round_ints(int(value), low):
                T2, shape2 = (cand, shape) if key == "T" else (T, {**shape, key: cand})
                e, p = solve(T2, shape2)
                if e <= limit:
                    T, shape, best = T2, shape2, p
                    break
        for key in [k for k in shape if k not in schedules._INT_PARAMS]:  # noqa: SLF001
            if key == "warmup_start_factor":
                cands = [ZERO_START] + _round_floats(shape[key])
            else:
                cands = _round_floats(shape[key])
            for cand in cands:
                e, p = solve(T, {**shape, key: cand})
                if e <= limit:
                    shape, best = {**shape, key: cand}, p
                    break
        for key in [k for k in _LINEAR if k in best]:
            for cand in _round_floats(best[key] * peak, zero=key == "min_lr"):
                trial = {**best, key: cand / peak}
                if self._error(name, T, trial) <= limit:
                    best = trial
                    break
        return T, best

    def _error(self, name: str, T: int, params: dict) -> float:
        """rms relative error of the family with these parameters (base, min_lr in peak units)."""
        p = {k: v for k, v in params.items() if k != "base"}
        try:
            model = curve(name, self.t, T, params["base"], p)
        except ValueError:
            return np.inf
        return float(np.sqrt(np.mean(((model - self.y) * self.w) ** 2)))

    # ------------------------------------------------------------------ tools
    def _project(self, name: str, T: int, shape: dict, with_min: bool) -> tuple[float, dict]:
        """Best base (and min_lr) for fixed shape parameters: (rms, params), rms = inf if invalid."""
        err, params, _ = self._project_resid(name, T, shape, with_min)
        return err, params

    def _project_resid(self, name: str, T: int, shape: dict, with_min: bool):
        """_project, plus the weighted residuals (for least_squares over shape parameters)."""
        bad = (np.inf, {}, np.full(len(self.t), 1e3))
        try:
            e0 = curve(name, self.t, T, 1.0, {**shape, **({"min_lr": 0.0} if with_min else {})})
            d = curve(name, self.t, T, 1.0, {**shape, "min_lr": 1.0}) - e0 if with_min else None
        except ValueError:
            return bad
        w, y = self.w, self.y
        if d is None or not np.any(d):
            den = float(np.sum((w * e0) ** 2))
            base, lo = (float(np.sum(w * w * e0 * y)) / den if den > 0 else 0.0), 0.0
        else:
            A = np.column_stack([w * e0, w * d])
            (base, lo), *_ = np.linalg.lstsq(A, w * y, rcond=None)
            if not 0.0 <= lo <= base:  # core.schedules needs 0 <= min_lr <= base
                lo = float(min(max(lo, 0.0), max(base, 0.0)))
                den = float(np.sum((w * e0) ** 2))
                base = float(np.sum(w * w * e0 * (y - lo * d))) / den if den > 0 else 0.0
                lo = min(lo, base)
        if not base > 0:
            return bad
        params = {"base": float(base), **shape}
        model = base * e0 + (lo * d if d is not None else 0.0)
        if with_min:
            params["min_lr"] = float(lo)
        resid = (model - y) * w
        return float(np.sqrt(np.mean(resid ** 2))), params, resid

    def _search(self, objective, lo: float, hi: float, start: float | None = None):
        """Minimise a 1-D objective on [lo, hi] (bounded Brent), returning (value, x)."""
        if hi <= lo:
            return objective(lo), lo
        res = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5, "maxiter": 30})
        x = float(res.x)
        if start is not None and objective(start) <= res.fun:
            x = start
        return float(objective(x)), x

    def _over_T(self, solve_at, guesses=()) -> tuple:
        """Best (rms, T, params) over whole T >= T0: guesses first, then a bounded search on log T."""
        cache: dict[int, tuple] = {}

        def at(T) -> tuple:
            T = max(self.T0, int(round(T)))
            if T not in cache:
                cache[T] = solve_at(T)
            return cache[T]

        for g in [self.T0, *[g for g in guesses if g and math.isfinite(g)]]:
            at(g)
        T = min(cache, key=lambda k: cache[k][0])
        if cache[T][0] > EXACT:
            hi = math.log(max(self.T0 * 20, T * 4))
            self._search(lambda u: at(math.exp(u))[0], math.log(self.T0), hi)
            T = min(cache, key=lambda k: cache[k][0])
            for d in (-1, 1):
                at(T + d)
            T = min(cache, key=lambda k: cache[k][0])
        return cache[T][0], T, cache[T][1]

    def _climb(self, solve_at, start: int, low: int = 1, high: int | None = None, max_moves: int = 6) -> tuple:
        """Whole-number hill climb from `start` (a warm-up length, a step size): (rms, value, result)."""
        high = high if high is not None else self.T0
        cache: dict[int, tuple] = {}

        def at(v: int):
            if v not in cache:
                cache[v] = solve_at(v) if low <= v <= high else (np.inf,)
            return cache[v][0]

        v = min(max(start, low), high)
        at(v)
        for _ in range(max_moves):
            nxt = min((v - 1, v + 1), key=at)
            if at(nxt) >= at(v):
                break
            v = nxt
        return cache[v][0], v, cache[v]

    def _cosine_T_guess(self, W: int = 0) -> float | None:
        """T of a cosine to 0 through the decaying points after W: y = (1 + cos(pi (t-W)/(T-W))) / 2."""
        m = (self.t > max(W, self.t_peak)) & (self.y < 0.98) & (self.y > 0.02)
        if not m.any():
            return None
        angle = np.arccos(np.clip(2 * self.y[m] - 1, -1, 1))
        return float(np.median(W + (self.t[m] - W) * np.pi / angle))

    def _line_zero(self) -> float | None:
        """Where a straight line through the decaying points would reach 0."""
        m = self.t >= self.t_peak
        if m.sum() < 2:
            return None
        slope, icpt = np.polyfit(self.t[m].astype(float), self.y[m], 1)
        return float(-icpt / slope) if slope < 0 else None

    def _warmup_guess(self) -> int:
        """Warm-up length: where a line through the rising points reaches the peak."""
        m = self.t <= self.t_peak
        if m.sum() >= 2:
            slope, icpt = np.polyfit(self.t[m].astype(float), self.y[m], 1)
            if slope > 0:
                return int(round(min(self.t_peak + 1, max(1.0, (1.0 - icpt) / slope))))
        return max(1, self.t_peak)

    # ------------------------------------------------------------------ families
    def constant(self):
        err, p = self._project("constant", self.T0, {}, False)
        return err, self.T0, p

    def exponential(self):
        pos = self.y > 0
        slope = np.polyfit(self.t[pos].astype(float), np.log(self.y[pos]), 1)[0] if pos.sum() >= 2 else 0.0
        g0 = float(np.clip(np.exp(slope), 1e-6, 1.0))
        best = {}

        def obj(u):  # u = log(1 - gamma), so gammas near 1 are searched finely
            g = 1.0 - math.exp(u)
            err, p = self._project("exponential", self.T0, {"gamma": g}, False)
            best[err] = p
            return err

        start = math.log(max(1e-12, 1.0 - g0))
        err, _ = self._search(obj, math.log(1e-9), math.log(1.0 - 1e-6), start)
        return err, self.T0, best[min(best)]

    def step(self):
        if not len(self.down):
            return None
        at = self.t[self.down + 1]  # first logged step with each new rate
        gamma = float(np.median(self.y[self.down + 1] / self.y[self.down]))
        sizes = {int(at[0]), int(self.t[self.down[0]]) + 1}
        if len(at) > 1:
            sizes.add(int(round(np.median(np.diff(at)))))
        best = None
        for s in sorted(x for x in sizes if x >= 1):
            found = {}

            def obj(g, s=s):
                err, p = self._project("step", self.T0, {"step_size": s, "gamma": float(g)}, False)
                found[err] = p
                return err

            err, _ = self._search(obj, max(1e-6, gamma * 0.5), min(1.0, gamma * 1.5 + 1e-9), gamma)
            if best is None or err < best[0]:
                best = (err, self.T0, found[min(found)])
        return best

    def cosine(self):
        return self._over_T(lambda T: self._project("cosine", T, {}, True),
                            (self._cosine_T_guess(), self._line_zero()))

    def linear_decay(self):
        return self._over_T(lambda T: self._project("linear_decay", T, {}, False), (self._line_zero(),))

    def polynomial(self):
        def at(T):
            found = {}

            def obj(u):
                err, p = self._project("polynomial", T, {"power": math.exp(u)}, False)
                found[err] = p
                return err

            err, _ = self._search(obj, math.log(0.1), math.log(10.0), 0.0)
            return err, found[min(found)]

        return self._over_T(at, (self._line_zero(),))

    def _warmup_family(self, name: str, with_min: bool, shape_at):
        W0 = self._warmup_guess()

        def at_W(W):
            def at(T):
                if W >= T:
                    return np.inf, {}
                return shape_at(T, W)
            guess = self._cosine_T_guess(W) if name == "warmup_cosine" else self._line_zero()
            return self._over_T(at, (guess,))

        err, W, found = self._climb(at_W, W0, 1, self.T0 - 1)
        return found if math.isfinite(err) else None

    def warmup_cosine(self):
        # The warm-up is base * (f0 + (1 - f0) t / W): linear in base and base * f0, so f0 comes from
        # the projection on three curves rather than from a search.
        def shape_at(T, W):
            try:
                e1 = curve("warmup_cosine", self.t, T, 1.0, {"warmup_steps": W, "warmup_start_factor": 1.0, "min_lr": 0.0})
                e2 = curve("warmup_cosine", self.t, T, 1.0, {"warmup_steps": W, "warmup_start_factor": 0.5, "min_lr": 0.0})
                e3 = curve("warmup_cosine", self.t, T, 1.0, {"warmup_steps": W, "warmup_start_factor": 1.0, "min_lr": 1.0})
            except ValueError:
                return np.inf, {}
            B = 2 * (e1 - e2)  # the warm-up's (1 - t/W) part
            A, C = e1 - B, e3 - e1  # ramp-then-cosine part, and the min_lr part
            coef, *_ = np.linalg.lstsq(np.column_stack([A, B, C]) * self.w[:, None], self.y * self.w, rcond=None)
            base = float(coef[0])
            if not base > 0:
                return np.inf, {}
            f0 = float(min(1.0, max(1e-6, coef[1] / base)))
            return self._project("warmup_cosine", T, {"warmup_steps": W, "warmup_start_factor": f0}, True)
        return self._warmup_family("warmup_cosine", True, shape_at)

    def warmup_linear(self):
        return self._warmup_family("warmup_linear", False, lambda T, W: self._project(
            "warmup_linear", T, {"warmup_steps": W}, False))

    def _peaked(self, name, extra: dict):
        """Families peaking at s = warmup (s = t + 1): noam and inverse_sqrt."""
        if self.i_peak == len(self.t) - 1:
            return None
        err, W, found = self._climb(lambda W: self._project(name, self.T0, {"warmup_steps": W, **extra}, False),
                                    self.t_peak + 1, 1, self.T0)
        return (err, self.T0, found[1]) if math.isfinite(err) else None

    def noam(self):
        # d_model only scales the rate, like base: it stays at the usual 512 and base absorbs it.
        return self._peaked("noam", {"d_model": 512})

    def inverse_sqrt(self):
        return self._peaked("inverse_sqrt", {})

    def cyclic(self):
        first_top = int(self.t[self.down[0]])  # the first logged top of a triangle
        err, su, found = self._climb(lambda su: self._project("cyclic", self.T0, {"step_size_up": su}, True),
                                     max(1, first_top), 1, self.T0)
        return (err, self.T0, found[1]) if math.isfinite(err) else None

    def cosine_restarts(self):
        restarts = self.t[self.up + 1]
        mults = {1}
        if len(restarts) > 1:
            mults.add(max(1, int(round((restarts[1] - restarts[0]) / restarts[0]))))
        best = None
        for mult in sorted(mults):
            err, T_0, found = self._climb(lambda T_0, m=mult: self._project(
                "cosine_restarts", self.T0, {"T_0": T_0, "T_mult": m}, True), int(restarts[0]), 1, self.T0)
            if math.isfinite(err) and (best is None or err < best[0]):
                best = (err, self.T0, found[1])
        return best

    def one_cycle(self):
        y0 = max(float(self.y[0]), 1e-4)

        def at(T):
            x0 = [min(0.99, max((self.t_peak + 1.0) / T, 1.01 / T)), math.log(min(1e4, max(1.0, 1.0 / y0))),
                  math.log(max(1.0, 1.0 / max(float(self.y[-1]) * max(1.0, 1.0 / y0), 1e-9)))]
            found = {}

            def res(x):
                err, p, r = self._project_resid("one_cycle", T, {"pct_start": float(x[0]), "div_factor": math.exp(x[1]),
                                                                 "final_div_factor": math.exp(x[2])}, False)
                found[err] = p
                return r

            lo, hi = [1.01 / T, 0.0, math.log(1e-3)], [0.99, math.log(1e5), math.log(1e7)]
            x0 = np.clip(x0, np.nextafter(lo, 1), np.nextafter(hi, -1))
            least_squares(res, x0, bounds=(lo, hi), x_scale="jac", max_nfev=60)
            err = min(found)
            return err, found[err]

        return self._over_T(at, ())


# --------------------------------------------------------------------------- words
def describe(name: str, base: float, T: int, p: dict) -> str:
    """The schedule in one phrase, with its numbers (as the fit found them)."""
    lr = num(base)
    if name == "constant":
        return f"constant at {lr}"
    if name == "step":
        return f"{lr}, multiplied by {num(p['gamma'])} every {steps_word(p['step_size'])}"
    if name == "exponential":
        return f"{lr}, multiplied by {p['gamma']:.6g} after every step"
    if name == "cosine":
        return f"cosine from {lr} to {num(p.get('min_lr', 0.0))} at step {T:,}"
    if name == "linear_decay":
        return f"linear decay from {lr} to 0 at step {T:,}"
    if name == "polynomial":
        return f"polynomial decay (power {num(p['power'])}) from {lr} to 0 at step {T:,}"
    if name == "warmup_cosine":
        start = 0.0 if p["warmup_start_factor"] <= ZERO_START else base * p["warmup_start_factor"]
        return (f"linear warmup over {steps_word(p['warmup_steps'])} from {num(start)} to {lr}, then cosine to "
                f"{num(p.get('min_lr', 0.0))} at step {T:,}")
    if name == "warmup_linear":
        return f"linear warmup over {steps_word(p['warmup_steps'])} from 0 to {lr}, then linear decay to 0 at step {T:,}"
    if name == "noam":
        peak = base * p["d_model"] ** -0.5 * p["warmup_steps"] ** -0.5
        return (f"Noam: warmup over {steps_word(p['warmup_steps'])} to a peak of {num(peak)}, then 1/√step decay "
                f"(base {lr} with d_model {p['d_model']})")
    if name == "inverse_sqrt":
        return f"linear warmup over {steps_word(p['warmup_steps'])} to {lr}, then 1/√step decay"
    if name == "one_cycle":
        start = base / p["div_factor"]
        return (f"one cycle: up from {num(start)} to {lr} by step {round(p['pct_start'] * T) - 1:,}, then down to "
                f"{num(start / p['final_div_factor'])} at step {T - 1:,}")
    if name == "cyclic":
        return (f"triangular cycles between {num(p.get('min_lr', 0.0))} and {lr}, "
                f"{steps_word(p['step_size_up'])} up and as many down")
    if name == "cosine_restarts":
        grow = f", each cycle {p['T_mult']}x longer" if p.get("T_mult", 1) > 1 else ""
        return (f"cosine from {lr} to {num(p.get('min_lr', 0.0))}, restarting after "
                f"{steps_word(p['T_0'])}{grow}")
    return f"{name} from {lr}"
