"""Training logs in (core.runlog), read back (core.schedule_fit), diagnosed (core.diagnoses.run_log)
and written (core.probe), on logs made by real training with answers known by construction.

Every scenario of core.runlog_examples is trained once (a small model, a plain torch loop, logged
by core.probe to a TensorBoard event file) and then written in every format the page reads; each
format must give the same known answers.
"""
import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
import torch

from core.data import DataError
from core.diagnoses.run_log import (
    CRITICAL, OSCILLATION, PLATEAU, Config, compare_runs, final_loss_words, find_spikes, overlay_frame, run, thin_indices,
)
from core.probe import GRAD_TAG, LAMBDA_MAX_TAG, LAMBDA_MIN_TAG, LOSS_TAG, LR_TAG, RATIO_PREFIX, Probe
from core.runlog import MissingLoss, load_log, load_logs
from core.runlog_examples import (
    BLOWUP_STEP, NAN_STEP, SPIKE_STEPS, all_formats, plain_csv, run_scenario, tensorboard_csvs, wandb_panel_csv,
)
from core.schedule_fit import fit_schedule

FORMATS = ["tensorboard", "trainer_state", "lightning_csv", "tensorboard_csv", "wandb_csv", "csv"]


@pytest.fixture(scope="module")
def scenarios():
    torch.set_num_threads(1)
    out = {}
    for name in ("divergence", "blowup", "saddle", "oscillation", "warmup_cosine", "spikes", "overfit"):
        sc = run_scenario(name)
        log = load_log(sc.events, f"events.out.tfevents.{name}")
        files = {"tensorboard": [(f"events.out.tfevents.{name}", sc.events)], **all_formats(log.steps, run=name)}
        out[name] = (sc, files)
    return out


def _load(files):
    logs, problems = load_logs(files)
    assert not problems, problems
    assert len(logs) == 1
    return logs[0]


def _each_format(scenarios, name):
    sc, files = scenarios[name]
    for fmt in FORMATS:
        log = _load(files[fmt])
        assert log.format == fmt
        yield fmt, sc, log, run(log)


# --------------------------------------------------------------------------- scenarios, every format
def test_every_format_reads_the_same_series(scenarios):
    _, files = scenarios["overfit"]
    ref = _load(files["tensorboard"]).steps
    for fmt in FORMATS:
        steps = _load(files[fmt]).steps
        for col in ("loss", "grad_norm", "lr", "eval_loss"):
            a = ref[["step", col]].dropna()
            b = steps[["step", col]].dropna()
            assert a["step"].tolist() == b["step"].tolist(), (fmt, col)
            np.testing.assert_allclose(b[col], a[col], rtol=1e-7, err_msg=f"{fmt} {col}")


def test_divergence_at_the_nan_step_in_every_format(scenarios):
    for fmt, sc, log, res in _each_format(scenarios, "divergence"):
        assert res.diverged_at == NAN_STEP == sc.truth["diverged_at"], fmt
        assert res.divergence.non_finite
        assert res.verdict.kind == "problem"
        assert f"diverged at step {NAN_STEP}" in res.verdict.text
        assert res.divergence_lr == pytest.approx(0.01)
        # nothing after the divergence is diagnosed: no stall or spike reaches past it
        assert (res.stalls["end"] < NAN_STEP).all() and (res.spikes["step"] < NAN_STEP).all()


def test_finite_blowup_matches_a_brute_force_reading_of_the_rule(scenarios):
    for fmt, sc, log, res in _each_format(scenarios, "blowup"):
        losses = log.steps["loss"].to_numpy()
        limit = 10 * losses[0]
        expected = next(i for i in range(len(losses))
                        if not math.isfinite(losses[i]) or statistics.median(losses[max(0, i - 2): i + 1]) > limit)
        assert res.diverged_at == int(log.steps["step"].iloc[expected]), fmt
        assert res.diverged_at > BLOWUP_STEP  # the rate jumped at 250: the blow-up follows it
        assert res.divergence_lr == pytest.approx(30.0)


def test_saddle_plateau_is_a_critical_point_stall_from_the_start(scenarios):
    for fmt, sc, log, res in _each_format(scenarios, "saddle"):
        first = res.stalls.iloc[0]
        assert first["start"] == sc.truth["stall_from"] and first["end"] >= 400, fmt
        assert first["kind"] == CRITICAL
        # independent check: the gradient inside the stall is tiny next to the run's largest gradients
        g = log.steps["grad_norm"].to_numpy()
        inside = g[(log.steps["step"] >= first["start"]) & (log.steps["step"] <= first["end"])]
        assert np.median(inside) < 0.05 * np.percentile(g, 99)
        assert f"Stalled at steps 0–{int(first['end']):,}" in res.verdict.text
        assert "The run left it" in res.verdict.text  # the loss fell afterwards (0.99 -> 0.02)


def test_saddle_without_gradient_norm_is_a_plateau_and_says_what_to_log(scenarios):
    _, files = scenarios["saddle"]
    steps = _load(files["tensorboard"]).steps.drop(columns=["grad_norm"])
    res = run(load_log(plain_csv(steps), "no_grad.csv"))
    assert len(res.stalls) and set(res.stalls["kind"]) == {PLATEAU}
    assert "cannot be told apart" in res.verdict.text
    assert "Log the gradient norm" in res.verdict.advice


def test_oscillation_is_a_stall_with_a_gradient_that_is_not_small(scenarios):
    for fmt, sc, log, res in _each_format(scenarios, "oscillation"):
        longest = res.stalls.loc[res.stalls["steps"].idxmax()]
        assert longest["kind"] == OSCILLATION, fmt
        assert longest["end"] - longest["start"] >= 1000
        # the gradient stays at the size of lambda_max x the displacement: far from zero
        g = log.steps["grad_norm"].to_numpy()
        assert np.median(g[500:]) > 0.5 * g.max()
        assert res.verdict.kind == "warning" and "not small" in res.verdict.text


def test_warmup_cosine_schedule_read_back_in_every_format(scenarios):
    for fmt, sc, log, res in _each_format(scenarios, "warmup_cosine"):
        t = sc.truth
        fit = res.schedule
        assert fit.name == t["schedule"], fmt
        assert fit.total_steps == t["total_steps"]
        assert fit.params["warmup_steps"] == t["params"]["warmup_steps"]
        assert fit.base_lr == pytest.approx(t["base_lr"], rel=1e-5)
        assert fit.params["warmup_start_factor"] == pytest.approx(0.01, rel=1e-3)
        assert fit.params["min_lr"] == 0.0
        assert fit.rms_error < 1e-5
        assert "linear warmup over 200 steps from 3e-05 to 0.003, then cosine to 0 at step 2,000" in res.verdict.text
        assert res.diverged_at is None and not len(res.spikes), fmt  # no false alarm on a healthy run


def test_isolated_spikes_found_at_their_steps_with_their_rate(scenarios):
    for fmt, sc, log, res in _each_format(scenarios, "spikes"):
        assert res.spikes["step"].tolist() == list(SPIKE_STEPS), fmt
        assert res.diverged_at is None  # one bad batch is a spike, not a divergence
        np.testing.assert_allclose(res.spikes["lr"], 0.01)
        g = log.steps["grad_norm"].to_numpy()
        assert res.clip == pytest.approx(np.quantile(g, 0.9), rel=1e-6)
        assert abs((g > res.clip).mean() - 0.1) < 0.01  # ~10% of the logged norms lie above it
        assert res.verdict.kind == "warning"
        assert "at steps 500, 900, 1,300" in res.verdict.text
        assert f"max_grad_norm={res.clip:.3g}" in res.verdict.advice


def test_overfitting_found_where_the_evaluation_loss_bottoms_out(scenarios):
    for fmt, sc, log, res in _each_format(scenarios, "overfit"):
        ev = log.steps[["step", "eval_loss"]].dropna()
        best = int(ev["step"].iloc[int(np.argmin(ev["eval_loss"]))])
        gap = res.gap
        assert gap.best_step == best, fmt
        assert gap.end_eval > gap.best_eval * 1.5 and gap.overfitting
        assert gap.train_at_end < gap.train_at_best
        # brute force: from opens_at on, eval > 1.1 x smoothed train at every evaluation, not just before
        rel = res.evals["gap"].to_numpy()
        i = res.evals["step"].tolist().index(gap.opens_at)
        assert (rel[i:] > 0.1).all() and (i == 0 or rel[i - 1] <= 0.1)
        assert res.verdict.text.startswith(f"Overfitting: the evaluation loss was lowest at step {best:,}")


# --------------------------------------------------------------------------- schedules from torch
def _torch_lrs(make, T, base=0.1):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = make(opt)
    out = []
    for _ in range(T):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


def _hf_cosine(W, T):  # transformers.get_cosine_schedule_with_warmup, written out
    return lambda s: s / max(1, W) if s < W else max(0.0, 0.5 * (1 + math.cos(math.pi * (s - W) / max(1, T - W))))


TORCH_SCHEDULES = [
    ("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=300, gamma=0.3), 1200,
     {"step_size": 300, "gamma": 0.3}),
    ("exponential", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.995), 1000, {"gamma": 0.995}),
    ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=1000, eta_min=1e-3), 1000,
     {"min_lr": 1e-3}),
    ("warmup_cosine", lambda o: torch.optim.lr_scheduler.LambdaLR(o, _hf_cosine(500, 10000)), 10000,
     {"warmup_steps": 500}),
    ("one_cycle", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=2000), 2000,
     {"pct_start": 0.3, "div_factor": 25.0}),
    ("cyclic", lambda o: torch.optim.lr_scheduler.CyclicLR(o, 0.01, 0.1, step_size_up=150, cycle_momentum=False), 1000,
     {"step_size_up": 150, "min_lr": 0.01}),
    ("cosine_restarts", lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=100, T_mult=2), 1500,
     {"T_0": 100, "T_mult": 2}),
    ("polynomial", lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=1000, power=2.0), 1000,
     {"power": 2.0}),
    ("constant", lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0, total_iters=0), 500, {}),
]


@pytest.mark.parametrize("name, make, T, params", TORCH_SCHEDULES, ids=[c[0] for c in TORCH_SCHEDULES])
def test_schedule_read_back_from_torch_schedulers(name, make, T, params):
    lrs = _torch_lrs(make, T)
    every = 10  # Hugging Face logs every logging_steps, from step 10
    steps = np.arange(every, T, every)
    logged = lrs[steps].astype(np.float32).astype(float)  # TensorBoard keeps float32
    fit = fit_schedule(steps, logged)
    assert fit.name == name
    for key, value in params.items():
        # where the one cycle peaks is known to within the logging interval (10 of T steps)
        tol = every / T if key == "pct_start" else 1e-6
        assert fit.params[key] == pytest.approx(value, rel=2e-3, abs=tol), key
    assert fit.base_lr == pytest.approx(0.1, rel=1e-3)
    assert fit.rms_error < 1e-4
    np.testing.assert_allclose(fit.lr(steps), logged, rtol=1e-3, atol=1e-6)  # the fit redraws the log


def test_schedule_fit_says_when_nothing_fits():
    steps = np.arange(1000)
    lr = np.where(steps < 500, 0.1, 3.0)  # a rate that jumps up: no core.schedules family does that
    fit = fit_schedule(steps, lr)
    assert not fit.matched
    assert "none of the known schedules" in fit.sentence()


# --------------------------------------------------------------------------- bad input
BAD = [
    ("trainer_state.json", b'{"log_history": [{"step": 1, "loss": 2.0}', "not valid JSON"),
    ("config.json", b'{"model_type": "bert", "hidden_size": 768}', "not a Hugging Face trainer_state.json"),
    ("metrics.csv", b"step,accuracy,epoch\n0,0.5,0\n1,0.6,0\n", "No training-loss series"),
    ("events.out.tfevents.123.host", b"\x00\x13garbage that is no event file" * 20, "not a TensorBoard event file"),
    ("log.csv", b"", "is empty"),
    ("log.csv", b"step,loss\n", "no rows"),
    ("notes.txt", b"my loss went down then up\n", "not a log"),
    ("log.csv", b"step,loss\n0.5,1\n1.5,2\n", "fractions"),
    ("trainer_state.json", b'{"log_history": []}', "empty log_history"),
]


@pytest.mark.parametrize("name, blob, message", BAD, ids=[b[2] for b in BAD])
def test_bad_input_gives_a_plain_message(name, blob, message):
    with pytest.raises(DataError) as info:
        load_log(blob, name)
    assert message in str(info.value)
    assert name in str(info.value) or message == "is empty" and name in str(info.value)
    logs, problems = load_logs([(name, blob), ("ok.csv", b"step,loss\n0,1\n1,0.5\n")])  # others still load
    assert len(logs) == 1 and problems[0][0] == name and message in problems[0][1]


def test_too_big_a_file_is_refused_with_its_size(monkeypatch):
    monkeypatch.setattr("core.runlog.MAX_BYTES", 1000)
    with pytest.raises(DataError, match="logs up to 0 MB"):
        load_log(b"step,loss\n" + b"1,2\n" * 500, "big.csv")


def test_missing_loss_lists_the_series_and_a_mapping_fixes_it():
    blob = b"step,my_objective,learning_rate\n0,2.0,0.1\n1,1.5,0.1\n"
    with pytest.raises(MissingLoss) as info:
        load_log(blob, "x.csv")
    assert info.value.columns == ("my_objective", "learning_rate")
    log = load_log(blob, "x.csv", mapping={"loss": "my_objective"})
    assert log.steps["loss"].tolist() == [2.0, 1.5] and log.mapping["lr"] == "learning_rate"
    with pytest.raises(DataError, match="no series 'nope'"):
        load_log(blob, "x.csv", mapping={"loss": "nope"})


@pytest.mark.parametrize("names, expected", [
    (["train/loss", "train/grad_norm", "train/learning_rate", "eval/loss"],
     {"loss": "train/loss", "grad_norm": "train/grad_norm", "lr": "train/learning_rate", "eval_loss": "eval/loss"}),
    (["train_loss_step", "train_loss_epoch", "val_loss", "lr-AdamW", "grad_2.0_norm_total"],
     {"loss": "train_loss_step", "eval_loss": "val_loss", "lr": "lr-AdamW", "grad_norm": "grad_2.0_norm_total"}),
    (["Loss/train", "Loss/validation", "lr"], {"loss": "Loss/train", "eval_loss": "Loss/validation", "lr": "lr"}),
    (["nll_loss", "val_nll_loss"], {"loss": "nll_loss", "eval_loss": "val_nll_loss"}),
])
def test_column_names_are_recognised(names, expected):
    header = ",".join(["step"] + names).encode()
    log = load_log(header + b"\n" + b"".join(b"%d," % i + b",".join([b"1.0"] * len(names)) + b"\n" for i in range(3)))
    assert log.mapping == expected


def test_not_logged_is_not_nan_evaluation_rows_and_sparse_loss_do_not_diverge():
    # the rate every step, the loss every 10 steps, an evaluation every 50: blanks are "not logged"
    rows = ["step,loss,lr,eval_loss"]
    for s in range(0, 500):
        loss = f"{2.0 / (1 + s / 50):.6f}" if s % 10 == 0 else ""
        ev = f"{2.2 / (1 + s / 60):.6f}" if s % 50 == 5 else ""
        rows.append(f"{s},{loss},0.001,{ev}")
    res = run(load_log("\n".join(rows).encode(), "sparse.csv"))
    assert res.diverged_at is None and res.n_points == 50
    # and a logged NaN is one: the same log with "nan" at step 300
    rows[301] = "300,nan,0.001,"
    assert run(load_log("\n".join(rows).encode(), "sparse.csv")).diverged_at == 300


def test_trainer_state_summary_row_left_out_and_nan_kept():
    state = {"log_history": [{"step": s, "loss": 1 / s, "learning_rate": 1e-3, "grad_norm": 1.0} for s in range(10, 200, 10)]
             + [{"step": 200, "loss": float("nan"), "learning_rate": 1e-3, "grad_norm": float("nan")},
                {"step": 200, "train_loss": 0.5, "train_runtime": 3.0}], "max_steps": 200}
    log = load_log(json.dumps(state).encode(), "trainer_state.json")
    assert "train_loss" not in log.steps and "train_runtime" not in log.steps
    assert log.meta["max_steps"] == 200
    assert run(log).diverged_at == 200


def test_wandb_panel_export_gives_one_log_per_run_and_tb_exports_join(scenarios):
    _, files = scenarios["spikes"]
    a = _load(files["tensorboard"]).steps
    b = a.assign(loss=a["loss"] * 2)
    logs, problems = load_logs([("panel.csv", wandb_panel_csv({"run-a": a, "run b": b}))])
    assert not problems and [log.name for log in logs] == ["run-a", "run b"]
    np.testing.assert_allclose(logs[1].steps["loss"], b["loss"], rtol=1e-8)
    exports = list(tensorboard_csvs(a, run="exp1").items())
    logs, _ = load_logs(exports)
    assert len(logs) == 1 and {"loss", "grad_norm", "lr"} <= set(logs[0].steps.columns)


# --------------------------------------------------------------------------- charts keep every spike
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thinning_keeps_every_buckets_extremes(seed):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(50_000).cumsum()
    y[rng.integers(0, 50_000, 7)] += 1e3  # spikes
    keep = thin_indices(y, 1000)
    assert len(keep) <= 1002
    size = math.ceil(len(y) / 500)
    for start in range(0, len(y), size):  # brute force: each bucket's min and max survive
        part = y[start: start + size]
        assert start + int(np.argmax(part)) in keep and start + int(np.argmin(part)) in keep


def test_a_long_log_is_charted_thin_with_its_spikes():
    n = 200_000
    rng = np.random.default_rng(0)
    steps = np.arange(n)
    loss = (1 + 5 / np.sqrt(1 + steps / 100)) * np.exp(0.03 * rng.standard_normal(n))
    spikes = [20_000, 123_456, 180_000]
    loss[spikes] *= 4
    blob = "step,loss,grad_norm\n" + "\n".join(f"{s},{v:.6g},1" for s, v in zip(steps, loss))
    res = run(load_log(blob.encode(), "long.csv"))
    assert res.spikes["step"].tolist() == spikes
    sizes = res.curve.groupby("series").size()
    assert sizes.max() <= Config().max_points + 2
    drawn = res.curve[res.curve["series"] == "loss"]
    assert set(spikes) <= set(drawn["step"])  # each spike is the max of its bucket: it is drawn


# --------------------------------------------------------------------------- rules and comparisons
def test_find_spikes_ignores_a_steep_start():
    y = np.r_[np.linspace(10, 1, 30), np.ones(200)]
    assert not len(find_spikes(np.arange(len(y)), y))


def _log(loss, name):
    return load_log(("step,loss\n" + "\n".join(f"{i},{v:.9g}" for i, v in enumerate(loss))).encode(), name)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_run_comparison_words_agree_with_the_numbers(seed):
    rng = np.random.default_rng(seed)
    base = 1 + 3 / np.sqrt(1 + np.arange(2000) / 20)
    noisy = lambda: base * np.exp(0.05 * rng.standard_normal(len(base)))  # noqa: E731
    low, high, twin = run(_log(noisy(), "low")), run(_log(noisy() + 0.5, "high")), run(_log(noisy(), "twin"))
    cmp = compare_runs([high, low, twin])
    levels = cmp.table.set_index("run")["loss_at_horizon"]
    best = levels.idxmin()
    assert best in ("low", "twin")
    text = cmp.verdict.text
    assert "lower than high" in text  # 0.5 above, far beyond the noise
    other = "twin" if best == "low" else "low"
    assert f"No clear difference at step 1,999 between {best}" in text and other in text
    frame = overlay_frame([high, low], ["high", "low"])
    assert set(frame["run"]) == {"high", "low"} and len(frame) <= 4000


def test_healthy_run_is_good_and_verdict_numbers_match():
    res = run(_log(1 + 3 * np.exp(-np.arange(1000) / 300), "clean"))
    assert res.verdict.kind == "good" and not len(res.stalls) and not len(res.spikes)
    assert f"{res.start_loss:.4g} → {res.final_loss:.4g}" in res.verdict.text


def test_too_short_a_log_is_refused():
    with pytest.raises(ValueError, match="at least 10"):
        run(_log([1.0, 0.9, 0.8], "short"))


# --------------------------------------------------------------------------- the probe
def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_probe_logs_what_an_independent_loop_measures(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 4, 0.5)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    probe = Probe(model, opt, str(tmp_path), every=5, ratio_every=5)
    want = {"loss": {}, "grad": {}, "lr": {}, "ratio0": {}}
    losses = []
    for k in range(20):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        w0 = torch.cat([p.detach().reshape(-1).clone() for p in model[0].parameters()])
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        w1 = torch.cat([p.detach().reshape(-1) for p in model[0].parameters()])
        probe.log(loss)
        losses.append(loss.item())
        if k % 5 == 0:
            want["grad"][k] = float(grads.norm())
            want["lr"][k] = lr
            want["ratio0"][k] = float((w1 - w0).norm() / w0.norm())
            want["loss"][k] = float(np.mean(losses[max(0, k - 4) if k else 0: k + 1]))
    probe.close()
    got = _scalars(tmp_path)
    for k in want["grad"]:
        assert got[GRAD_TAG][k] == pytest.approx(want["grad"][k], rel=1e-6)
        assert got[LR_TAG][k] == pytest.approx(want["lr"][k], rel=1e-7)
        assert got[RATIO_PREFIX + "0"][k] == pytest.approx(want["ratio0"][k], rel=1e-5)
        assert got[LOSS_TAG][k] == pytest.approx(want["loss"][k], rel=1e-6)
    assert sorted(got[GRAD_TAG]) == [0, 5, 10, 15]
    log = load_log(next(tmp_path.glob("*tfevents*")))
    assert log.format == "tensorboard" and log.mapping == {"loss": LOSS_TAG, "grad_norm": GRAD_TAG, "lr": LR_TAG}


def test_probe_curvature_matches_the_exact_hessian(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Linear(2, 1).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    X, y = torch.randn(50, 2, dtype=torch.float64), torch.randn(50, 1, dtype=torch.float64)
    loss_fn = torch.nn.MSELoss()
    probe = Probe(model, opt, str(tmp_path), every=1, curvature_every=3, held_batch=(X, y), loss_fn=loss_fn)
    for _ in range(7):
        loss = loss_fn(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        probe.log(loss)
    probe.close()
    A = torch.cat([X, torch.ones(50, 1, dtype=torch.float64)], 1).numpy()
    eig = np.linalg.eigvalsh(2 / 50 * A.T @ A)  # a linear model's MSE Hessian: 2/n A^T A, at every point
    got = _scalars(tmp_path)
    assert sorted(got[LAMBDA_MIN_TAG]) == [0, 3, 6]
    for k in (0, 3, 6):
        assert got[LAMBDA_MIN_TAG][k] == pytest.approx(eig[0], rel=1e-5)
        assert got[LAMBDA_MAX_TAG][k] == pytest.approx(eig[-1], rel=1e-5)


def test_probe_curvature_classifies_a_logged_stall():
    # a saddle plateau logged with lambda_min < 0: the verdict names the saddle from the log alone
    n = 600
    steps = np.arange(n)
    loss = np.where(steps < 400, 1.0 - 1e-6 * steps, 0.05 + 0.95 * np.exp(-(steps - 400) / 20))
    grad = np.where(steps < 400, 1e-4, 0.5)
    lines = ["step,loss,grad_norm,curvature/lambda_min,curvature/lambda_max"]
    lines += [f"{s},{l:.9g},{g:.6g},{-0.3 if s < 400 else 0.1},{2.0}" for s, l, g in zip(steps, loss, grad)]
    res = run(load_log("\n".join(lines).encode(), "curv.csv"))
    first = res.stalls.iloc[0]
    assert first["kind"] == CRITICAL and first["eig_min"] == pytest.approx(-0.3)
    assert "a saddle point" in res.verdict.text


def test_stall_spans_are_the_gradient_stall_pages(scenarios):
    """The same detector as the Gradient stall page (core.diagnoses.stall.detect_stalls): the same
    spans on logs without spikes; only the kind is judged against the run's gradient level."""
    from core.diagnoses.stall import detect_stalls

    for name in ("saddle", "oscillation", "warmup_cosine"):
        log = _load(scenarios[name][1]["tensorboard"])
        res = run(log)
        page = detect_stalls(log.steps, window=res.window)
        assert page[["start", "end"]].values.tolist() == res.stalls[["start", "end"]].values.tolist(), name


def test_doctests_of_the_training_log_modules():
    import doctest

    import core.diagnoses.run_log
    import core.probe
    import core.runlog
    import core.schedule_fit

    for module in (core.runlog, core.probe, core.schedule_fit, core.diagnoses.run_log):
        assert doctest.testmod(module).failed == 0, module.__name__


# --------------------------------------------------------------------------- review findings (rules, duplicates, Lightning)
def _hf_state(entries) -> bytes:
    return json.dumps({"global_step": int(entries[-1]["step"]), "logging_steps": 10, "log_history": entries}).encode()


def _gn40_entries(evals: bool = True) -> list[dict]:
    """The reviewer's trainer_state_gn40.json: linear warmup to 5e-5 over 200 steps, linear decay to
    0 at step 2,000, a loss plateau at steps 900-1,300, |g| = 1.5 exp(-s/800) + 0.3 (0.3-1.9) and
    one record with loss 6 and |g| 40 at step 600; evaluation every 250 steps."""
    rng = np.random.default_rng(0)
    out = []
    for s in range(10, 2001, 10):
        lr = 5e-5 * s / 200 if s <= 200 else 5e-5 * (2000 - s) / 1800
        flat = 2.5 * math.exp(-3) + 0.6
        base = 2.5 * math.exp(-s / 300) + 0.6 if s < 900 else (
            flat if s <= 1300 else flat - 0.15 * (1 - math.exp(-(s - 1300) / 200)))
        loss, gn = base + rng.normal(0, 0.02), 1.5 * math.exp(-s / 800) + 0.3 + rng.normal(0, 0.05)
        if s == 600:
            loss, gn = 6.0, 40.0
        out.append({"epoch": s / 500, "grad_norm": round(gn, 4), "learning_rate": lr, "loss": round(loss, 4), "step": s})
        if evals and s % 250 == 0:
            out.append({"epoch": s / 500, "eval_loss": round(base + 0.05, 4), "eval_runtime": 3.2, "step": s})
    return out


def test_one_gradient_spike_does_not_make_a_stall_a_critical_point():
    """Review finding 1: one |g| of 40 set the level to 20.5 and the 890-1,300 stall (median |g|
    0.705) read as a critical point at 3.43% of the level."""
    log = load_log(_hf_state(_gn40_entries()), "trainer_state_gn40.json")
    res = run(log)
    g = log.steps["grad_norm"].to_numpy()
    normal = g[np.isfinite(g) & (g < 5)]
    assert res.grad_level <= normal.max()  # set by the run's normal gradients, not by the spike
    stall = res.stalls.iloc[0]
    assert 850 <= stall["start"] <= 950 and stall["end"] >= 1250
    assert stall["grad_median"] == pytest.approx(np.median(g[(log.steps["step"] >= stall["start"])
                                                            & (log.steps["step"] <= stall["end"]) & np.isfinite(g)]))
    assert stall["kind"] == OSCILLATION and stall["grad_ratio"] > 0.2
    assert "critical point" not in res.verdict.text


def _warmup_cosine_blow_up(seed: int, last: int, level: float, decay: float, climb_from: int, doubling: int,
                           nan_at: int | None = None) -> list[dict]:
    """A Hugging Face log of the reviewers' shape: warmup (from 0) over 100 steps to 3e-4, cosine to 0
    at step 3,000, logged every 5 steps; the loss falls (time constant `decay`) to `level` (+-2%) and,
    from `climb_from`, doubles every `doubling` steps, the gradient norm ~1 all run and growing with
    the loss there; a NaN loss at `nan_at`."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(5, last + 1, 5):
        lr = 3e-4 * s / 100 if s < 100 else 3e-4 * 0.5 * (1 + math.cos(math.pi * (s - 100) / 2900))
        grow = 2.0 ** (max(0, s - climb_from) / doubling)
        loss = (level + 3.0 * math.exp(-s / decay)) * (1 + rng.normal(0, 0.02)) * grow
        out.append({"epoch": s / 1000, "grad_norm": (1.0 + rng.normal(0, 0.05)) * grow, "learning_rate": lr,
                    "loss": float("nan") if s == nan_at else loss, "step": s})
    return out


def _cos_div_entries() -> list[dict]:
    """The reviewer's trainer_state_cos_div.json: slowly to ~0.8, a blow-up after step 2,000."""
    return _warmup_cosine_blow_up(1, 2400, 0.75, 450, 2000, 40)


def test_a_blow_up_is_not_a_stall_and_the_divergence_verdict_agrees_with_the_stall_table():
    """Review finding 2: 'Before that, the loss stalled at steps 1,475-2,230' over a rise from
    0.865 to 33.6 (relative fall -37.8), labelled a critical point against a level of ~40."""
    log = load_log(_hf_state(_cos_div_entries()), "trainer_state_cos_div.json")
    res = run(log)
    assert res.divergence is not None and res.divergence.step > 2000
    steps, loss = log.steps["step"].to_numpy(), log.steps["loss"].to_numpy()
    lowest = loss[steps < res.divergence.step].min()
    for _, s in res.stalls.iterrows():
        inside = loss[(steps >= s["start"]) & (steps <= s["end"])]
        assert inside.max() < 2 * lowest, (s["start"], s["end"])  # no stall reaches into the blow-up
        assert s["kind"] != CRITICAL  # |g| ~1 all run: never ~0
    assert res.grad_level <= log.steps["grad_norm"].to_numpy()[steps < 2000].max()
    text = res.verdict.text
    if len(res.stalls):
        listed = ", ".join(f"steps {a:,}–{b:,}" for a, b in zip(res.stalls["start"], res.stalls["end"]))
        assert f"Before that, the loss stalled at {listed}." in text
    else:
        assert "stalled" not in text


def test_train_and_eval_rows_of_one_step_are_not_logged_twice():
    """Review finding 3: every trainer_state.json with eval entries read as '8 steps were logged
    more than once (a resumed run?)'."""
    entries = _gn40_entries()
    log = load_log(_hf_state(entries), "trainer_state.json")
    assert sum(e.get("eval_loss") is not None for e in entries) == 8  # 8 steps with a train and an eval row
    assert not any("more than once" in n for n in log.notes), log.notes
    # a resumed run that logs steps 1,000-1,100 again: those 11 steps (counted by hand) are logged twice
    again = [dict(e, loss=e["loss"] + 0.01) for e in entries if "loss" in e and 1000 <= e["step"] <= 1100]
    resumed = load_log(_hf_state(entries + again), "trainer_state.json")
    assert "11 steps were logged more than once (a resumed run?): the last value is used." in resumed.notes


def test_lightning_metrics_csv_is_recognised_by_its_shape():
    """Review finding 3: CSVLogger's metrics.csv (step, epoch, train_loss, val_loss with blank cells)
    read as a plain CSV with 5 steps 'logged more than once'."""
    rows = ["epoch,step,train_loss,val_loss,val_acc"]
    for ep in range(5):
        for k in range(20):
            rows.append(f"{ep},{ep * 100 + k * 5 + 4},{1.2 * math.exp(-(ep * 100 + k * 5 + 4) / 150) + 0.2:.5f},,")
        rows.append(f"{ep},{ep * 100 + 99},,{0.5 + 0.02 * ep * ep:.5f},{0.7 + 0.04 * ep:.4f}")
    log = load_log("\n".join(rows).encode(), "metrics.csv")
    assert log.format == "lightning_csv"
    assert not any("more than once" in n for n in log.notes), log.notes
    assert int(log.logged("eval_loss").sum()) == 5 and int(log.logged("loss").sum()) == 100
    # a plain CSV of the same shape without an epoch column stays a plain CSV
    plain = load_log("\n".join(r.split(",", 1)[1] for r in rows).encode(), "log.csv")
    assert plain.format == "csv"


def _settled_then_nan_entries() -> list[dict]:
    """Settled at 0.83 by step ~1,500, climbing from step 1,800 (0.83 -> ~38 by step 2,230), then a NaN
    at step 2,240."""
    return _warmup_cosine_blow_up(7, 2240, 0.83, 200, 1800, 80, nan_at=2240)


def test_a_diverged_runs_final_loss_is_the_level_before_the_blow_up():
    """Review finding (cos_div): 'Final loss' 5.559 was the mean of the last 20% of the losses before
    the divergence, i.e. of the climb itself; the run had settled at ~0.83."""
    entries = _settled_then_nan_entries()
    log = load_log(_hf_state(entries), "trainer_state_cos_div.json")
    res = run(log)
    assert res.divergence is not None
    step = np.array([e["step"] for e in entries])
    loss = np.array([e["loss"] for e in entries])
    # the level it settled at, read off the raw numbers: the median loss of steps 1,500-1,800
    settled = statistics.median(loss[(step >= 1500) & (step < 1800)].tolist())
    assert settled == pytest.approx(0.83, rel=0.02)
    assert res.final_loss == pytest.approx(settled, rel=0.03)
    # the old number, the last 20% of every finite loss before the divergence, is the climb
    before = loss[(step < res.divergence.step) & np.isfinite(loss)]
    assert before[-math.ceil(0.2 * len(before)):].mean() > 2 * settled
    # the steps it averages over end before the climb has doubled the loss
    assert res.final_to < 1800 + 80 and res.final_from >= 1000
    label, tip = final_loss_words(res)
    assert label == "Loss before the blow-up"
    assert f"divergence at step {res.divergence.step:,}" in tip and f"{res.final_from:,}" in tip


def test_a_run_that_did_not_diverge_keeps_the_mean_of_its_last_fifth():
    entries = [e for e in _settled_then_nan_entries() if e["step"] < 1800]
    res = run(load_log(_hf_state(entries), "trainer_state.json"))
    loss = np.array([e["loss"] for e in entries])
    assert res.divergence is None
    assert res.final_loss == pytest.approx(loss[-math.ceil(0.2 * len(loss)):].mean(), rel=1e-12)
    assert final_loss_words(res)[0] == "Final loss"
