"""core.schedules: every pure schedule against its torch twin, plus closed-form spot checks."""
import dataclasses
import re
import math

import numpy as np
import pandas as pd
import pytest
import torch

from core.schedules import SCHEDULES, ScheduleInfo, default_params, lr_at, schedule_frame, to_torch, torch_code

T = 1000  # steps per run: the agreement is required at every one of them
BASE = 0.1

# Every schedule with its defaults, plus one non-default setting each (odd sizes on purpose).
CASES = [(name, {}) for name in SCHEDULES] + [
    ("step", {"step_size": 7, "gamma": 0.9}),
    ("exponential", {"gamma": 0.995}),
    ("cosine", {"min_lr": 0.01}),
    ("warmup_cosine", {"warmup_steps": 37, "warmup_start_factor": 0.3, "min_lr": 0.001}),
    ("warmup_cosine", {"warmup_steps": 0}),  # no warm-up: plain CosineAnnealingLR
    ("warmup_cosine", {"warmup_steps": T - 1}),  # one step of cosine left: still SequentialLR
    ("warmup_cosine", {"warmup_steps": T}),  # warm-up fills the run: LinearLR alone
    ("warmup_linear", {"warmup_steps": T}),
    ("warmup_linear", {"warmup_steps": 250}),
    ("polynomial", {"power": 0.5}),
    ("noam", {"d_model": 64, "warmup_steps": 30}),
    ("inverse_sqrt", {"warmup_steps": 1}),
    ("one_cycle", {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0}),
    ("one_cycle", {"pct_start": 0.333}),  # fractional peak step, as torch allows
    ("cyclic", {"min_lr": 0.003, "step_size_up": 7}),
    ("cosine_restarts", {"T_0": 50, "T_mult": 2, "min_lr": 0.001}),
]
CASE_IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in p.items()) or 'defaults'}" for n, p in CASES]


def torch_lrs(scheduler, optimizer, n):
    """get_last_lr() of group 0 before any update and after each of n - 1 updates."""
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(n - 1):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return np.array(lrs)


def sgd(lr, momentum=0.0):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=momentum)


@pytest.mark.filterwarnings("error")  # the twins must run without torch warnings
@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_torch_twin_matches_lr_at_at_every_step(name, params):
    opt = sgd(BASE)
    scheduler = to_torch(opt, name, T, **params)
    got = torch_lrs(scheduler, opt, T)
    want = np.array([lr_at(name, t, T, BASE, **params) for t in range(T)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    opt.step()
    scheduler.step()  # core.train steps the scheduler once more after the last update
    assert math.isfinite(scheduler.get_last_lr()[0]) and scheduler.get_last_lr()[0] >= 0


@pytest.mark.parametrize("total", [2, 3, 5, 11])
def test_defaults_work_on_tiny_runs(total):
    for name in SCHEDULES:
        opt = sgd(BASE)
        got = torch_lrs(to_torch(opt, name, total), opt, total)
        want = [lr_at(name, t, total, BASE) for t in range(total)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=name)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_torch_code_round_trips(name, params):
    code = torch_code(name, T, BASE, **params)
    assert "scheduler = torch.optim.lr_scheduler." in code
    opt = sgd(BASE)
    namespace = {"optimizer": opt}
    exec(code, namespace)
    got = torch_lrs(namespace["scheduler"], opt, T)
    want = np.array([lr_at(name, t, T, BASE, **params) for t in range(T)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_step_decay_hand_values():
    kw = dict(step_size=100, gamma=0.5)
    assert lr_at("step", 99, T, 0.1, **kw) == pytest.approx(0.1, rel=1e-15)
    assert lr_at("step", 100, T, 0.1, **kw) == pytest.approx(0.05, rel=1e-15)
    assert lr_at("step", 999, T, 0.1, **kw) == pytest.approx(0.0001953125, rel=1e-15)  # 0.1 / 2**9


def test_noam_peaks_at_end_of_warmup():
    kw = dict(d_model=512, warmup_steps=4000)
    lrs = np.array([lr_at("noam", t, 10_000, 1.0, **kw) for t in range(10_000)])
    assert lrs.argmax() == 3999  # s = t + 1 = warmup
    assert float(f"{lrs.max():.5e}") == 6.98771e-4
    assert lrs.max() == pytest.approx((512 * 4000) ** -0.5, rel=1e-14)


def test_warmup_cosine_against_independent_formula():
    # Hugging Face's get_cosine_schedule_with_warmup decay: progress (t - W) / (T - W)
    W, f0, lo = 100, 0.01, 0.002
    t = np.arange(T)
    warm = BASE * (f0 + (1 - f0) * t / W)
    decay = lo + 0.5 * (BASE - lo) * (1 + np.cos(np.pi * (t - W) / (T - W)))
    want = np.where(t < W, warm, decay)
    kw = dict(warmup_steps=W, warmup_start_factor=f0, min_lr=lo)
    got = np.array([lr_at("warmup_cosine", s, T, BASE, **kw) for s in t])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert got[0] == pytest.approx(BASE * f0, rel=1e-15)
    assert got[W] == pytest.approx(BASE, rel=1e-15)
    assert got.argmax() == W
    # min_lr is the rate after the last update (t = T), as the torch twin shows
    opt = sgd(BASE)
    assert torch_lrs(to_torch(opt, "warmup_cosine", T, **kw), opt, T + 1)[-1] == pytest.approx(lo, rel=1e-12)


def _torch_as_users_write_it(name, total, params):
    """The scheduler a user writes for "<name> over `total` steps", straight from torch's docs."""
    opt = sgd(BASE)
    if name == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=params.get("min_lr", 0.0))
    elif name == "linear_decay":
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=total)
    else:
        sched = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=total, power=params.get("power", 2.0))
    return torch_lrs(sched, opt, total + 1)


@pytest.mark.parametrize("total", [3, 7, 1000])
@pytest.mark.parametrize("name,params", [("cosine", {}), ("cosine", {"min_lr": 0.01}), ("linear_decay", {}),
                                         ("polynomial", {}), ("polynomial", {"power": 0.5})])
def test_decays_equal_torch_schedulers_over_the_same_steps(name, params, total):
    # "cosine over 1,000 steps" is CosineAnnealingLR(T_max=1000), LinearLR(..., total_iters=1000)
    # and PolynomialLR(total_iters=1000): the same rate at every step, and the end value (min_lr
    # or 0) after the last update
    ref = _torch_as_users_write_it(name, total, params)
    ours = [lr_at(name, t, total, BASE, **params) for t in range(total)]
    np.testing.assert_allclose(ours, ref[:-1], rtol=1e-12, atol=1e-18)
    assert ref[-1] == pytest.approx(params.get("min_lr", 0.0), abs=1e-15)
    # the twin, stepped once more as core.train does, lands on the same end value
    opt = sgd(BASE)
    np.testing.assert_allclose(torch_lrs(to_torch(opt, name, total, **params), opt, total + 1), ref,
                               rtol=1e-12, atol=1e-18)


def test_cosine_over_1000_steps_is_cosine_annealing_t_max_1000():
    # the case that used to differ: T_max = 999 put 0.3% between preview and torch at t = 645
    opt = sgd(BASE)
    ref = torch_lrs(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000), opt, 646)[645]
    assert lr_at("cosine", 645, 1000, BASE) == pytest.approx(ref, rel=1e-12)
    assert lr_at("cosine", 500, 1000, BASE) == pytest.approx(BASE / 2, rel=1e-12)  # halfway down at T/2
    assert "CosineAnnealingLR(optimizer, T_max=1000, eta_min=0.0)" in torch_code("cosine", 1000, BASE)
    assert "PolynomialLR(optimizer, total_iters=1000, power=2.0)" in torch_code("polynomial", 1000, BASE)


def test_warmup_linear_and_inverse_sqrt_shapes():
    # Hugging Face's get_linear_schedule_with_warmup: t / W, then (T - t) / (T - W)
    bert = np.array([lr_at("warmup_linear", t, T, BASE, warmup_steps=100) for t in range(T)])
    t = np.arange(T)
    want = BASE * np.where(t < 100, t / 100, (T - t) / (T - 100))
    np.testing.assert_allclose(bert, want, rtol=1e-12, atol=1e-18)
    assert bert[0] == 0 and bert[-1] == pytest.approx(BASE / (T - 100), rel=1e-12) and bert.argmax() == 100
    inv = np.array([lr_at("inverse_sqrt", s, T, BASE, warmup_steps=100) for s in t])
    np.testing.assert_allclose(inv, BASE * np.minimum((t + 1) / 100, np.sqrt(100 / (t + 1))), rtol=1e-14)


def test_one_cycle_start_and_peak():
    lrs = np.array([lr_at("one_cycle", t, T, BASE) for t in range(T)])  # div_factor 25 by default
    assert lrs.max() == pytest.approx(BASE, rel=1e-14)
    assert lrs[0] == pytest.approx(BASE / 25, rel=1e-14)
    assert lrs[-1] == pytest.approx(BASE / 25 / 1e4, rel=1e-12)
    assert lrs.argmax() == round(0.3 * T) - 1  # torch ends the rise at pct_start * total - 1


def test_cyclic_against_clr_paper_formula():
    # Smith (2017): cycle = floor(1 + t / 2s), x = |t / s - 2 cycle + 1|, lr = lo + (hi - lo) max(0, 1 - x)
    s, lo = 40, 0.01
    t = np.arange(T)
    cycle = np.floor(1 + t / (2 * s))
    want = lo + (BASE - lo) * np.maximum(0, 1 - np.abs(t / s - 2 * cycle + 1))
    got = [lr_at("cyclic", k, T, BASE, min_lr=lo, step_size_up=s) for k in t]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_cosine_restarts_restart_where_cycles_end():
    kw = dict(T_0=50, T_mult=2, min_lr=0.0)
    restarts = [0, 50, 150, 350, 750]  # cycle lengths 50, 100, 200, 400
    for t in restarts:
        assert lr_at("cosine_restarts", t, T, BASE, **kw) == BASE
    # halfway through the 100-step cycle the cosine is at its middle
    assert lr_at("cosine_restarts", 100, T, BASE, **kw) == pytest.approx(BASE / 2, rel=1e-14)


def test_integer_params_may_arrive_as_floats():
    # core.train passes schedule params as floats; whole numbers must still work
    opt = sgd(BASE)
    scheduler = to_torch(opt, "cosine_restarts", 200, T_0=40.0, T_mult=2.0)
    got = torch_lrs(scheduler, opt, 200)
    want = [lr_at("cosine_restarts", t, 200, BASE, T_0=40, T_mult=2) for t in range(200)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.filterwarnings("error")
def test_cycling_schedulers_leave_momentum_alone_and_accept_any_optimizer():
    opt = sgd(BASE, momentum=0.9)
    scheduler = to_torch(opt, "one_cycle", 100)
    torch_lrs(scheduler, opt, 50)
    assert opt.param_groups[0]["momentum"] == 0.9
    adagrad = torch.optim.Adagrad([torch.zeros(1, requires_grad=True)], lr=BASE)  # no momentum at all
    got = torch_lrs(to_torch(adagrad, "cyclic", 100, min_lr=0.01, step_size_up=10), adagrad, 100)
    np.testing.assert_allclose(got, [lr_at("cyclic", t, 100, BASE, min_lr=0.01, step_size_up=10)
                                     for t in range(100)], rtol=1e-12)


@pytest.mark.parametrize("name", ["noam", "one_cycle", "warmup_cosine"])
def test_each_param_group_scales_its_own_lr(name):
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.03}])
    scheduler = to_torch(opt, name, 300)
    rows = [scheduler.get_last_lr()]
    for _ in range(299):
        opt.step()
        scheduler.step()
        rows.append(scheduler.get_last_lr())
    rows = np.array(rows)
    for col, base in enumerate([0.1, 0.03]):
        np.testing.assert_allclose(rows[:, col], [lr_at(name, t, 300, base) for t in range(300)], rtol=1e-12)


def test_schedules_table_and_defaults():
    assert list(SCHEDULES)[:5] == ["constant", "step", "exponential", "cosine", "warmup_cosine"]
    for name, info in SCHEDULES.items():
        assert isinstance(info, ScheduleInfo) and info.name == name and info.label and info.description
        assert set(info.needs) <= set(info.defaults)
        assert default_params(name, 1000) == info.defaults
    assert default_params("warmup_cosine", 500)["warmup_steps"] == 50  # 10% of the run
    assert default_params("warmup_linear", 2000)["warmup_steps"] == 200
    # exponential's default decays to 1% of base_lr over the run (after the last update)
    opt = sgd(1.0)
    assert torch_lrs(to_torch(opt, "exponential", 400), opt, 401)[-1] == pytest.approx(0.01, rel=1e-12)
    # left-out params take the defaults
    assert lr_at("warmup_cosine", 50, 500, BASE) == lr_at("warmup_cosine", 50, 500, BASE, warmup_steps=50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SCHEDULES["cosine"].label = "changed"


def test_schedule_frame():
    df = schedule_frame({"cosine": {"min_lr": 0.01}, "step": {}}, 200, BASE)
    assert list(df.columns) == ["step", "schedule", "lr"] and len(df) == 400
    cos = df[df.schedule == "cosine"]
    np.testing.assert_array_equal(cos.step, np.arange(200))
    np.testing.assert_allclose(cos.lr, [lr_at("cosine", t, 200, BASE, min_lr=0.01) for t in range(200)], rtol=0)
    # the same schedule twice: its params keep the curves apart
    twice = schedule_frame([("step", {"gamma": 0.5}), ("step", {"gamma": 0.2}), "constant"], 50, BASE)
    assert twice.schedule.nunique() == 3
    assert twice.groupby("schedule").size().tolist() == [50, 50, 50]
    assert isinstance(schedule_frame([], 50, BASE), pd.DataFrame)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: lr_at("nope", 0, T, BASE), "Unknown schedule 'nope'"),
        (lambda: lr_at("cosine", 0, T, -0.1), "must be positive"),
        (lambda: lr_at("cosine", 0, T, float("nan")), "finite number"),
        (lambda: lr_at("warmup_cosine", 0, T, BASE, warmup_steps=T + 1), "warmup_steps must lie between"),
        (lambda: lr_at("noam", 0, T, BASE, warmup_steps=0), "warmup_steps must lie between 1"),
        (lambda: lr_at("step", 0, T, BASE, gamma=0.0), "gamma must be positive"),
        (lambda: lr_at("exponential", 0, T, BASE, gamma=-0.5), "gamma must be positive"),
        (lambda: lr_at("step", 0, T, BASE, step_size=0), "step_size must be at least 1"),
        (lambda: lr_at("step", 0, T, BASE, step_size=2.5), "whole number"),
        (lambda: lr_at("cosine", 0, T, BASE, gamma=0.5), "has no parameter 'gamma'"),
        (lambda: lr_at("cosine", 0, T, BASE, min_lr=0.5), "min_lr must lie between 0 and the base"),
        (lambda: lr_at("cosine", T, T, BASE), "step must lie between 0 and total_steps - 1"),
        (lambda: lr_at("cosine", 0, 1, BASE), "total_steps must be at least 2"),
        (lambda: lr_at("one_cycle", 0, T, BASE, pct_start=1.2), "pct_start must lie between 0 and 1"),
        (lambda: lr_at("warmup_cosine", 0, T, BASE, warmup_start_factor=0.0), "warmup_start_factor"),
        (lambda: to_torch(sgd(0.01), "cyclic", T, min_lr=0.05), "min_lr must lie between 0 and the base"),
        (lambda: to_torch(sgd(BASE), "bogus", T), "Unknown schedule"),
        (lambda: torch_code("cosine_restarts", T, BASE, T_mult=0), "T_mult must be at least 1"),
        (lambda: default_params("bogus", T), "Unknown schedule"),
    ],
)
def test_bad_input_raises_a_plain_sentence(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert str(err.value).endswith(".")


# --------------------------------------------------------------------------- schedule read-back (core.schedule_fit)
def _hf_logged_lrs(lambda_, peak, total, every):
    """The rate a Hugging Face Trainer logs every `every` steps (after step s: the scheduler's
    rate for update s), from a torch LambdaLR with the transformers schedule formula."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda_)
    lrs = []
    for _ in range(total + 1):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    steps = np.arange(every, total + 1, every)
    return steps, np.asarray(lrs)[steps]


def _code_lrs(code: str, peak: float, n: int) -> np.ndarray:
    """Run generated scheduler code on a real optimizer: the rate of each of n updates."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scope = {"torch": torch, "optimizer": opt}
    exec(code, scope)  # noqa: S102 - our own generated code
    out = []
    for _ in range(n):
        out.append(scope["scheduler"].get_last_lr()[0])
        opt.step()
        scope["scheduler"].step()
    return np.asarray(out)


def _digits(code: str) -> int:
    """Most significant digits of any number literal in the code."""
    nums = re.findall(r"(?<![\w.])(\d+\.?\d*(?:e-?\d+)?)", code)
    return max(len(re.sub(r"e.*", "", x).replace(".", "").strip("0")) for x in nums)


def test_fit_reads_hugging_face_linear_warmup_back_with_its_exact_round_parameters():
    """Review finding 4: 'from 0 to 4.99e-05, then linear decay to 0 at step 2,001' (rms 0.75%)
    and lr=4.989445465773396e-05 in the code, for warmup to 5e-5 over 200 steps then 0 at 2,000."""
    from core.schedule_fit import fit_schedule

    W, T, peak = 200, 2000, 5e-5
    steps, logged = _hf_logged_lrs(lambda s: s / W if s < W else max(0.0, (T - s) / (T - W)), peak, T, 10)
    fit = fit_schedule(steps, logged)
    assert (fit.name, fit.base_lr, fit.total_steps, fit.params) == ("warmup_linear", 5e-5, 2000, {"warmup_steps": 200})
    assert fit.rms_error < 1e-9
    assert fit.describe() == "linear warmup over 200 steps from 0 to 5e-05, then linear decay to 0 at step 2,000"
    code = fit.torch_code()
    assert "lr=5e-05" in code and _digits(code) <= 4
    np.testing.assert_allclose(_code_lrs(code, fit.base_lr, T)[steps[steps < T]], logged[steps < T], rtol=1e-9, atol=1e-15)


def test_fit_reads_a_warmup_from_zero_as_from_0():
    """Review finding 4: a cosine log whose warm-up starts at 0 read 'from 3e-10 to 0.0003'."""
    from core.schedule_fit import fit_schedule

    W, T, peak = 100, 3000, 3e-4
    steps, logged = _hf_logged_lrs(lambda s: s / W if s < W else 0.5 * (1 + math.cos(math.pi * (s - W) / (T - W))),
                                   peak, 2400, 5)
    fit = fit_schedule(steps, logged)
    assert fit.name == "warmup_cosine" and fit.base_lr == 3e-4 and fit.total_steps == 3000
    assert fit.params["warmup_steps"] == 100 and fit.params["min_lr"] == 0.0
    assert fit.describe() == "linear warmup over 100 steps from 0 to 0.0003, then cosine to 0 at step 3,000"
    code = fit.torch_code()
    assert _digits(code) <= 4
    # torch's LinearLR needs a start factor above 0: the code starts at 1e-6 of the peak, i.e. at 0
    np.testing.assert_allclose(_code_lrs(code, fit.base_lr, 2401)[steps], logged, rtol=1e-5, atol=1e-9)


def test_fit_keeps_parameters_that_are_not_round():
    """Snapping never makes the fit worse: a schedule with odd numbers is read back as it is."""
    from core.schedule_fit import fit_schedule

    W, T, peak = 137, 2003, 4.987e-5
    steps, logged = _hf_logged_lrs(lambda s: s / W if s < W else max(0.0, (T - s) / (T - W)), peak, 1990, 10)
    fit = fit_schedule(steps, logged)
    assert fit.name == "warmup_linear" and fit.params["warmup_steps"] == 137 and fit.total_steps == 2003
    assert fit.base_lr == pytest.approx(4.987e-5, rel=1e-9)
    assert fit.rms_error < 1e-6
