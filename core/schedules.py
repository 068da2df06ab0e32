"""Learning-rate schedules as pure functions of the step, plus their torch twins.

Convention: ``lr_at(name, t, ...)`` is the rate used by the (t+1)-th optimizer step,
t = 0 .. total_steps - 1. Its twin ``to_torch(optimizer, name, ...)`` is built from
``torch.optim.lr_scheduler``; right after construction ``get_last_lr()`` is ``lr_at(0)``, and
after k rounds of ``optimizer.step(); scheduler.step()`` it is ``lr_at(k)``.

Decays "over T steps" follow torch: cosine is ``CosineAnnealingLR(optimizer, T_max=T)``,
linear decay is ``LinearLR(optimizer, 1.0, 0.0, total_iters=T)`` (twinned by
``PolynomialLR(power=1)``, which drifts less), polynomial is ``PolynomialLR(optimizer,
total_iters=T, power=p)``, and after a warm-up of W steps the decay spans T - W steps, as in
Hugging Face's ``get_cosine_schedule_with_warmup`` and ``get_linear_schedule_with_warmup``.
The end value (min_lr, or 0) is reached at t = T, the rate after the last update, which is what
a user pasting ``T_max=1000`` next to a 1,000-step loop gets; the last update itself
(t = T - 1) runs one step short of it.

Several torch schedulers update the rate recursively (multiplying the previous rate by a
factor each step), so their ``get_last_lr()`` drifts from the closed form by about one
rounding error per step: measured below 1e-13 relative over 1,000 steps for every twin here
(the tests hold them to 1e-12). Where no built-in fits (the rate must start at exactly 0, or
the formula has no torch class) the twin is a ``LambdaLR`` evaluating the same factor as
``lr_at``, which agrees to the last bit.

>>> lr_at("warmup_cosine", 0, 1000, 0.1, warmup_steps=100)
0.001
>>> lr_at("step", 999, 1000, 0.1, step_size=100, gamma=0.5)
0.0001953125
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial

import pandas as pd
from torch.optim import Optimizer, lr_scheduler

REFERENCE_STEPS = 1000  # run length that ScheduleInfo.defaults are written for


@dataclass(frozen=True)
class ScheduleInfo:
    """What the UI needs to offer one schedule."""

    name: str  # key in SCHEDULES and the `name` argument everywhere
    label: str  # short human name
    description: str  # one sentence for a help text
    defaults: dict  # param -> default value for a REFERENCE_STEPS run (see default_params)
    needs: tuple[str, ...]  # params worth a widget, in display order (the rest keep defaults)


def _info(name, label, description, needs=(), **fixed):
    defaults = {**fixed, **_scaled_defaults(name, REFERENCE_STEPS)}
    return ScheduleInfo(name, label, description, defaults, tuple(needs))


def _scaled_defaults(name: str, total_steps: int) -> dict:
    """Defaults that depend on the run length (warm-ups are 10% of it, and so on)."""
    T = total_steps
    return {
        "step": {"step_size": max(1, T // 3)},  # three decays, as in the classic 90-epoch recipe
        "exponential": {"gamma": 0.01 ** (1 / T)},  # 1% of base_lr at t = T, like the decays above
        "warmup_cosine": {"warmup_steps": T // 10},
        "warmup_linear": {"warmup_steps": T // 10},
        "noam": {"warmup_steps": max(1, T // 10)},
        "inverse_sqrt": {"warmup_steps": max(1, T // 10)},
        "one_cycle": {"pct_start": max(0.3, 1.5 / T)},  # torch needs pct_start * T > 1 (see _resolve)
        "cyclic": {"step_size_up": max(1, T // 8)},  # four full cycles
        "cosine_restarts": {"T_0": max(1, T // 4)},  # four restarts with T_mult = 1
    }.get(name, {})


# Ordered as the UI should list them: plain decays first, then warm-ups, then cycles.
SCHEDULES: dict[str, ScheduleInfo] = {
    info.name: info
    for info in [
        _info("constant", "Constant", "The same rate at every step."),
        _info("step", "Step decay", "Multiply the rate by gamma every step_size steps.",
              ("step_size", "gamma"), gamma=0.1),
        _info("exponential", "Exponential decay", "Multiply the rate by gamma after every step.",
              ("gamma",)),
        _info("cosine", "Cosine",
              "Half a cosine from base_lr down to min_lr over the run (CosineAnnealingLR, T_max = total_steps).",
              ("min_lr",), min_lr=0.0),
        _info("warmup_cosine", "Warmup + cosine",
              "Linear warm-up to base_lr over warmup_steps, then a cosine down to min_lr.",
              ("warmup_steps", "min_lr"), warmup_start_factor=0.01, min_lr=0.0),
        _info("warmup_linear", "Warmup + linear decay (BERT)",
              "Linear warm-up from 0 to base_lr, then a straight line down to 0.",
              ("warmup_steps",)),
        _info("linear_decay", "Linear decay",
              "A straight line from base_lr down to 0 over the run (LinearLR to 0 over total_steps)."),
        _info("polynomial", "Polynomial decay", "base_lr * (1 - t / total_steps) ** power (PolynomialLR).",
              ("power",), power=2.0),
        _info("noam", "Noam (Transformer)",
              "base_lr * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5) with s = step + 1.",
              ("d_model", "warmup_steps"), d_model=512),
        _info("inverse_sqrt", "Inverse square root",
              "Linear warm-up to base_lr, then decay as 1 / sqrt(step).", ("warmup_steps",)),
        _info("one_cycle", "One cycle",
              "Cosine up from base_lr / div_factor to base_lr, then down far below the start.",
              ("pct_start", "div_factor"), div_factor=25.0, final_div_factor=1e4),
        _info("cyclic", "Cyclic (triangular)",
              "Straight lines up from min_lr to base_lr and back, step_size_up steps each way.",
              ("min_lr", "step_size_up"), min_lr=0.0),
        _info("cosine_restarts", "Cosine with warm restarts",
              "Cosine from base_lr to min_lr over T_0 steps, then restart; cycles grow by T_mult.",
              ("T_0", "T_mult", "min_lr"), T_mult=1, min_lr=0.0),
    ]
}

_INT_PARAMS = {"step_size", "warmup_steps", "d_model", "step_size_up", "T_0", "T_mult"}


def default_params(name: str, total_steps: int) -> dict:
    """Sensible parameters for `name` on a run of `total_steps` steps (a fresh dict).

    >>> default_params("warmup_cosine", 500)
    {'warmup_start_factor': 0.01, 'min_lr': 0.0, 'warmup_steps': 50}
    """
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}.")
    total_steps = _as_int("total_steps", total_steps)
    if total_steps < 2:
        raise ValueError(f"total_steps must be at least 2, got {total_steps}.")
    return {**SCHEDULES[name].defaults, **_scaled_defaults(name, total_steps)}


# ----------------------------------------------------------------------------- validation


def _as_int(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ValueError(f"{key} must be a whole number, got {value!r}.")
    return int(value)


def _as_float(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}.")
    return float(value)  # plain float, so torch_code prints 0.1 and not np.float64(0.1)


def _resolve(name: str, total_steps, base_lrs: Iterable, params: Mapping) -> tuple[int, dict]:
    """Check everything and return (total_steps, full params with defaults filled in)."""
    info = SCHEDULES.get(name)
    if info is None:
        raise ValueError(f"Unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}.")
    unknown = sorted(set(params) - set(info.defaults))
    if unknown:
        takes = ", ".join(info.defaults) or "no parameters"
        raise ValueError(f"Schedule {name!r} has no parameter {unknown[0]!r}; it takes: {takes}.")
    T = _as_int("total_steps", total_steps)
    if T < 2:
        raise ValueError(f"total_steps must be at least 2, got {T}.")
    lowest_base = math.inf
    for base_lr in base_lrs:
        if _as_float("base_lr", base_lr) <= 0:
            raise ValueError(f"The base learning rate must be positive, got {base_lr!r}.")
        lowest_base = min(lowest_base, base_lr)

    p = {**default_params(name, T), **params}
    p = {k: _as_int(k, v) if k in _INT_PARAMS else _as_float(k, v) for k, v in p.items()}
    low_warmup = 1 if name in ("noam", "inverse_sqrt") else 0  # these divide by warmup_steps
    checks = {
        "step_size": (p.get("step_size", 1) >= 1, "step_size must be at least 1"),
        "gamma": (p.get("gamma", 1) > 0, "gamma must be positive"),
        "min_lr": (0 <= p.get("min_lr", 0) <= lowest_base, "min_lr must lie between 0 and the base learning rate"),
        "warmup_steps": (low_warmup <= p.get("warmup_steps", 1) <= T,
                         f"warmup_steps must lie between {low_warmup} and total_steps ({T})"),
        "warmup_start_factor": (0 < p.get("warmup_start_factor", 1) <= 1,
                                "warmup_start_factor must be above 0 and at most 1"),
        "d_model": (p.get("d_model", 1) >= 1, "d_model must be at least 1"),
        "power": (p.get("power", 1) > 0, "power must be positive"),
        "pct_start": (0 < p.get("pct_start", 0.5) < 1 and p.get("pct_start", 1) * T > 1,
                      "pct_start must lie between 0 and 1, with pct_start * total_steps above 1 "
                      "so the rise lasts at least one step"),
        "div_factor": (p.get("div_factor", 1) >= 1, "div_factor must be at least 1"),
        "final_div_factor": (p.get("final_div_factor", 1) > 0, "final_div_factor must be positive"),
        "step_size_up": (p.get("step_size_up", 1) >= 1, "step_size_up must be at least 1"),
        "T_0": (p.get("T_0", 1) >= 1, "T_0 must be at least 1"),
        "T_mult": (p.get("T_mult", 1) >= 1, "T_mult must be at least 1"),
    }
    for key in p:
        ok, sentence = checks[key]
        if not ok:
            raise ValueError(f"{sentence} (schedule {name!r}, {key}={p[key]!r}).")
    return T, p


# ----------------------------------------------------------------------------- pure math
# Each function gives the rate at step t (0-based) of a T-step run. The LambdaLR twins call the
# same *_factor functions, so those agree with torch bit for bit.


def _warmup_linear_factor(t, *, T, warmup_steps):
    W = warmup_steps
    # 1) warm-up: straight line from 0 at t = 0 to 1 at t = W
    if t < W:
        return t / W
    # 2) decay: straight line from 1 at t = W to 0 at t = T (Hugging Face's
    #    get_linear_schedule_with_warmup); max(0, ...) and max(1, ...) cover W = T
    return max(0.0, (T - t) / max(1, T - W))


def _noam_factor(t, *, d_model, warmup_steps):
    s = t + 1  # the paper counts steps from 1
    # 1) warm-up (s < warmup): grows linearly as s * warmup^-1.5
    # 2) decay (s >= warmup): falls as s^-0.5; both meet at s = warmup
    return d_model**-0.5 * min(s**-0.5, s * warmup_steps**-1.5)


def _inverse_sqrt_factor(t, *, warmup_steps):
    s = t + 1
    # 1) warm-up: linear up to 1 at s = warmup; 2) decay: sqrt(warmup / s)
    return min(s / warmup_steps, (warmup_steps / s) ** 0.5)


def _cosine(t, span, high, low):
    """Half a cosine from `high` at t = 0 to `low` at t = span."""
    return low + (high - low) * (1 + math.cos(math.pi * t / span)) / 2


def _lr(name: str, t: int, T: int, base: float, p: dict) -> float:
    """The rate at step t, for already validated parameters."""
    if name == "constant":
        return base
    if name == "step":
        return base * p["gamma"] ** (t // p["step_size"])
    if name == "exponential":
        return base * p["gamma"] ** t
    if name == "cosine":
        return _cosine(t, T, base, p["min_lr"])
    if name == "warmup_cosine":
        W, f0 = p["warmup_steps"], p["warmup_start_factor"]
        # 1) warm-up: straight line from base * f0 at t = 0 to base at t = W
        if t < W:
            return base * (f0 + (1 - f0) * t / W)
        # 2) cosine from base at t = W to min_lr at t = T (W < T here, since t < T)
        return _cosine(t - W, T - W, base, p["min_lr"])
    if name == "warmup_linear":
        return base * _warmup_linear_factor(t, T=T, warmup_steps=p["warmup_steps"])
    if name == "linear_decay":
        return base * (1 - t / T)
    if name == "polynomial":
        return base * (1 - t / T) ** p["power"]
    if name == "noam":
        return base * _noam_factor(t, d_model=p["d_model"], warmup_steps=p["warmup_steps"])
    if name == "inverse_sqrt":
        return base * _inverse_sqrt_factor(t, warmup_steps=p["warmup_steps"])
    if name == "one_cycle":
        # OneCycleLR's two-phase cosine, written as torch writes it (float phase ends included)
        start = base / p["div_factor"]
        end = start / p["final_div_factor"]
        peak_at = float(p["pct_start"] * T) - 1  # torch's end_step of phase 1 (may be fractional)

        def anneal(high, low, pct):  # torch's _annealing_cos, same operation order
            return low + (high - low) / 2.0 * (math.cos(math.pi * pct) + 1)

        # 1) rise: cosine from base / div_factor at t = 0 to base at t = peak_at
        if t <= peak_at:
            return anneal(start, base, (t - 0.0) / (peak_at - 0.0))
        # 2) fall: cosine from base at t = peak_at to `end` at t = T - 1
        return anneal(base, end, (t - peak_at) / (T - 1 - peak_at))
    if name == "cyclic":
        # CyclicLR "triangular", with its own arithmetic (cycle counted from 1)
        size = 2.0 * p["step_size_up"]
        cycle = math.floor(1 + t / size)
        x = 1.0 + t / size - cycle  # position inside the current cycle, in [0, 1)
        # 1) first half of the cycle: up from min_lr; 2) second half: back down
        scale = x / 0.5 if x <= 0.5 else (x - 1) / (0.5 - 1)
        return p["min_lr"] + (base - p["min_lr"]) * scale
    if name == "cosine_restarts":
        # 1) find the current cycle: lengths T_0, T_0 * T_mult, T_0 * T_mult^2, ...
        length, into = p["T_0"], t
        if p["T_mult"] == 1:
            into %= length
        while into >= length:
            into -= length
            length *= p["T_mult"]
        # 2) half a cosine from base to min_lr inside it (min_lr itself is never reached)
        return _cosine(into, length, base, p["min_lr"])
    raise AssertionError(name)  # unreachable: _resolve rejects unknown names


def lr_at(name: str, step: int, total_steps: int, base_lr: float, **params) -> float:
    """Learning rate that the (step+1)-th optimizer update uses, step = 0 .. total_steps - 1.

    Parameters left out take `default_params(name, total_steps)`. Raises ValueError with a
    plain sentence for an unknown name or bad parameters.

    >>> lr_at("noam", 3999, 10000, 1.0, d_model=512, warmup_steps=4000)  # the peak
    0.0006987712429686843
    """
    T, p = _resolve(name, total_steps, [base_lr], params)
    t = _as_int("step", step)
    if not 0 <= t < T:
        raise ValueError(f"step must lie between 0 and total_steps - 1 ({T - 1}), got {t}.")
    return _lr(name, t, T, float(base_lr), p)


def schedule_frame(names_with_params, total_steps: int, base_lr: float) -> pd.DataFrame:
    """Long table (step, schedule, lr) of whole schedules, for preview charts.

    `names_with_params` is a mapping name -> params, or an iterable of names and
    (name, params) pairs; missing params take their defaults. A name listed twice gets its
    params in the `schedule` column so the curves stay apart.

    >>> df = schedule_frame({"cosine": {}, "step": {"gamma": 0.5}}, 100, 0.1)
    >>> df.shape, list(df.columns)
    ((200, 3), ['step', 'schedule', 'lr'])
    """
    items = names_with_params.items() if isinstance(names_with_params, Mapping) else names_with_params
    pairs = [(item, {}) if isinstance(item, str) else (item[0], dict(item[1] or {})) for item in items]
    counts = pd.Series([n for n, _ in pairs]).value_counts()
    frames = []
    for name, params in pairs:
        T, p = _resolve(name, total_steps, [base_lr], params)
        shown = params if counts[name] > 1 else {}
        label = name + (" (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "")
        lrs = [_lr(name, t, T, float(base_lr), p) for t in range(T)]
        frames.append(pd.DataFrame({"step": range(T), "schedule": label, "lr": lrs}))
    if not frames:
        return pd.DataFrame({"step": pd.Series(dtype=int), "schedule": pd.Series(dtype=str),
                             "lr": pd.Series(dtype=float)})
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- torch twins


@dataclass(frozen=True)
class _Lambda:
    code: str  # the factor as Python source, for torch_code
    fn: Callable[[int], float]  # the same factor, for to_torch


@dataclass(frozen=True)
class _Ref:
    var: str  # a scheduler built earlier in the same recipe


def _recipe(name: str, T: int, p: dict, max_lr) -> list[tuple[str, str, dict]]:
    """(variable, lr_scheduler class, keyword arguments) in build order; the last is the scheduler.

    `max_lr` is the optimizer's rate (a float, or one per param group) for the two schedulers
    that take it explicitly.
    """
    if name == "constant":
        return [("scheduler", "ConstantLR", {"factor": 1.0, "total_iters": 0})]  # factor 1: unchanged
    if name == "step":
        return [("scheduler", "StepLR", {"step_size": p["step_size"], "gamma": p["gamma"]})]
    if name == "exponential":
        return [("scheduler", "ExponentialLR", {"gamma": p["gamma"]})]
    if name == "cosine":
        return [("scheduler", "CosineAnnealingLR", {"T_max": T, "eta_min": p["min_lr"]})]
    if name == "warmup_cosine":
        W = p["warmup_steps"]
        warmup = ("LinearLR", {"start_factor": p["warmup_start_factor"], "end_factor": 1.0, "total_iters": W})
        decay = ("CosineAnnealingLR", {"T_max": T - W, "eta_min": p["min_lr"]})
        if W == 0:  # LinearLR cannot run over 0 steps
            return [("scheduler", *decay)]
        if W >= T:  # the warm-up fills the run: nothing left to decay
            return [("scheduler", *warmup)]
        return [("warmup", *warmup), ("decay", *decay),
                ("scheduler", "SequentialLR", {"schedulers": [_Ref("warmup"), _Ref("decay")], "milestones": [W]})]
    if name == "linear_decay":
        # PolynomialLR with power 1 rather than LinearLR(1.0, 0.0): both are recursive, but
        # LinearLR drifts 6x faster from the closed form (4e-13 vs 8e-14 relative at 10,000 steps,
        # 5e-12 vs 8e-13 at 100,000)
        return [("scheduler", "PolynomialLR", {"total_iters": T, "power": 1.0})]
    if name == "polynomial":
        return [("scheduler", "PolynomialLR", {"total_iters": T, "power": p["power"]})]
    if name == "warmup_linear":
        # LambdaLR: the warm-up starts at exactly 0, which LinearLR refuses (start_factor > 0)
        W = p["warmup_steps"]
        code = f"lambda t: t / {W} if t < {W} else max(0.0, ({T} - t) / {max(1, T - W)})"
        fn = partial(_warmup_linear_factor, T=T, warmup_steps=W)
        return [("scheduler", "LambdaLR", {"lr_lambda": _Lambda(code, fn)})]
    if name == "noam":
        d, W = p["d_model"], p["warmup_steps"]
        code = f"lambda t: {d} ** -0.5 * min((t + 1) ** -0.5, (t + 1) * {W} ** -1.5)"
        fn = partial(_noam_factor, d_model=d, warmup_steps=W)
        return [("scheduler", "LambdaLR", {"lr_lambda": _Lambda(code, fn)})]
    if name == "inverse_sqrt":
        W = p["warmup_steps"]
        code = f"lambda t: min((t + 1) / {W}, ({W} / (t + 1)) ** 0.5)"
        fn = partial(_inverse_sqrt_factor, warmup_steps=W)
        return [("scheduler", "LambdaLR", {"lr_lambda": _Lambda(code, fn)})]
    if name == "one_cycle":
        # cycle_momentum=False: a rate schedule should not rewrite the optimizer's momentum
        return [("scheduler", "OneCycleLR", {
            "max_lr": max_lr, "total_steps": T, "pct_start": p["pct_start"], "anneal_strategy": "cos",
            "div_factor": p["div_factor"], "final_div_factor": p["final_div_factor"],
            "cycle_momentum": False})]
    if name == "cyclic":
        # torch's base_lr is the bottom of the cycle; cycle_momentum=False also lets it run on
        # optimizers without momentum (plain SGD, Adagrad)
        return [("scheduler", "CyclicLR", {
            "base_lr": p["min_lr"], "max_lr": max_lr, "step_size_up": p["step_size_up"],
            "mode": "triangular", "cycle_momentum": False})]
    if name == "cosine_restarts":
        return [("scheduler", "CosineAnnealingWarmRestarts",
                 {"T_0": p["T_0"], "T_mult": p["T_mult"], "eta_min": p["min_lr"]})]
    raise AssertionError(name)


def to_torch(optimizer: Optimizer, name: str, total_steps: int, **params) -> lr_scheduler.LRScheduler:
    """A torch LR scheduler whose get_last_lr() equals lr_at(...) at every step.

    base_lr is each param group's current ``lr``: build it on a fresh optimizer (a scheduler
    attached earlier leaves ``initial_lr`` behind, which torch would take as the base instead).
    Call ``optimizer.step()`` then ``scheduler.step()`` once per update.

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> sched = to_torch(opt, "warmup_cosine", 1000, warmup_steps=100)
    >>> sched.get_last_lr() == [lr_at("warmup_cosine", 0, 1000, 0.1, warmup_steps=100)]
    True
    """
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    T, p = _resolve(name, total_steps, base_lrs, params)
    built = {}

    def value(v):
        if isinstance(v, _Lambda):
            return v.fn
        if isinstance(v, _Ref):
            return built[v.var]
        if isinstance(v, list):
            return [value(x) for x in v]
        return v

    for var, cls, kwargs in _recipe(name, T, p, base_lrs):
        built[var] = getattr(lr_scheduler, cls)(optimizer, **{k: value(v) for k, v in kwargs.items()})
    return built["scheduler"]


def torch_code(name: str, total_steps: int, base_lr: float, **params) -> str:
    """Copy-pasteable PyTorch code that builds `scheduler` reproducing this schedule.

    The code expects an `optimizer` whose lr is base_lr (the first comment line shows one).

    >>> print(torch_code("cosine", 1000, 0.1))  # doctest: +NORMALIZE_WHITESPACE
    import torch
    <BLANKLINE>
    # optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=1000, eta_min=0.0)
    <BLANKLINE>
    # each update: optimizer.step(); scheduler.step()
    """
    T, p = _resolve(name, total_steps, [base_lr], params)

    def text(v):
        if isinstance(v, _Lambda):
            return v.code
        if isinstance(v, _Ref):
            return v.var
        if isinstance(v, list):
            return "[" + ", ".join(text(x) for x in v) + "]"
        return repr(v)

    lines = ["import torch", "", f"# optimizer = torch.optim.SGD(model.parameters(), lr={float(base_lr)!r})"]
    for var, cls, kwargs in _recipe(name, T, p, float(base_lr)):
        args = ", ".join(["optimizer"] + [f"{k}={text(v)}" for k, v in kwargs.items()])
        lines.append(f"{var} = torch.optim.lr_scheduler.{cls}({args})")
    lines += ["", "# each update: optimizer.step(); scheduler.step()"]
    return "\n".join(lines) + "\n"
