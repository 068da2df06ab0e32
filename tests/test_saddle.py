"""Saddle escape race: numbers against numpy reference loops and closed forms, plus the page."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from core.charts.saddle import distance_curves, escape_bars, loss_curves, race_map
from core.curvature import classify_point
from core.data import load_builtin
from core.diagnoses.saddle import (
    RACERS,
    Config,
    best_constant,
    escape_step,
    network_saddle,
    push,
    run,
    validate,
)
from core.lab import LabSetup
from core.models import ModelSpec, build_mlp
from core.train import split_data

MOONS = load_builtin("moons")


def _lap(result, racer, start):
    f = result.frame
    return f[(f["racer"] == racer) & (f["start"] == start)].reset_index(drop=True)


def _row(result, racer, start):
    t = result.table
    return t[(t["racer"] == racer) & (t["start"] == start)].iloc[0]


@pytest.fixture(scope="module")
def lecture():
    return run(MOONS, LabSetup(), Config())


@pytest.fixture(scope="module")
def network():
    # 120 steps keep the test quick; the exact-start facts do not need more.
    return run(MOONS, LabSetup(), Config(surface="network", steps=120))


# ----------------------------------------------------------------------------- lecture surface
def _lecture_grad(w):
    # L = (1 - w1 w2)^2, written independently of core.surfaces
    r = 1.0 - w[0] * w[1]
    return np.array([-2.0 * r * w[1], -2.0 * r * w[0]])


def _lecture_loss(w):
    return (1.0 - w[0] * w[1]) ** 2


def _numpy_race(kind, start, lr, beta, steps, delta, radius):
    """Reference GD / heavy-ball / Nesterov (torch.optim.SGD's formulas) -> (losses, escape step)."""
    w, v = np.array(start, dtype=np.float64), np.zeros(2)
    losses = [_lecture_loss(w)]
    for k in range(steps):
        g = _lecture_grad(w)
        if kind == "gd":
            w = w - lr * g
        else:
            v = g if k == 0 else beta * v + g  # torch: the first buffer is the gradient itself
            w = w - lr * (g + beta * v if kind == "nesterov" else v)
        losses.append(_lecture_loss(w))
    losses = np.array(losses)
    escaped = np.nonzero(losses < 1.0 - delta)[0]
    return losses, (int(escaped[0]) if len(escaped) else None)


def test_exact_saddle_gd_and_momentum_stay_at_loss_one(lecture):
    cfg = lecture.config
    for racer in ("gd", "momentum", "nesterov", "adam"):
        lap = _lap(lecture, racer, "exact")
        assert len(lap) == cfg.steps + 1
        np.testing.assert_array_equal(lap["loss"], 1.0)  # zero gradient: not one bit of movement
        np.testing.assert_array_equal(lap["distance"], 0.0)
        assert not _row(lecture, racer, "exact")["escaped"]
    assert "gradient descent, momentum, Nesterov and Adam did not move at all" in lecture.honesty


def test_curvature_step_lowers_the_loss_after_one_step(lecture):
    lap = _lap(lecture, "curvature", "exact")
    # One step of length 0.5 * |lambda_min| = 1 along (1, 1)/sqrt(2): w1 w2 = 1/2, L = (1 - 1/2)^2.
    assert lap.at[0, "loss"] == 1.0
    assert lap.at[1, "loss"] == pytest.approx(0.25, abs=1e-12)
    assert abs(lap.at[1, "x"]) == pytest.approx(np.sqrt(0.5), abs=1e-12)
    row = _row(lecture, "curvature", "exact")
    assert row["steps_to_escape"] == 1 and row["hessian_evals"] == 1
    assert row["eig_min"] == pytest.approx(-2.0, abs=1e-12)


def test_noise_escapes_the_exact_saddle(lecture):
    row = _row(lecture, "noise", "exact")
    assert row["escaped"] and row["final_loss"] < 0.05


def test_pushed_start_momentum_beats_gd_matching_numpy(lecture):
    cfg = lecture.config
    start = np.array([0.0, 0.0]) + push(2, cfg.epsilon, seed=0)
    steps = {}
    for racer in ("gd", "momentum", "nesterov"):
        ref_losses, ref_step = _numpy_race(racer, start, cfg.lr, cfg.momentum, cfg.steps, cfg.delta, cfg.radius)
        lap = _lap(lecture, racer, "pushed")
        np.testing.assert_allclose(lap["loss"], ref_losses, rtol=1e-9, atol=1e-12)
        steps[racer] = _row(lecture, racer, "pushed")["steps_to_escape"]
        assert steps[racer] == ref_step
    assert steps["momentum"] < steps["gd"]
    assert lecture.verdict.kind == "info" and f"{steps['gd']} steps" in lecture.verdict.text


def test_push_and_escape_rule():
    p = push(7, 0.01, seed=3)
    assert np.linalg.norm(p) == pytest.approx(0.01, rel=1e-12)
    np.testing.assert_array_equal(p, push(7, 0.01, seed=3))
    frame = pd.DataFrame({"step": [0, 1, 2, 3], "loss": [1.0, 1.01, 0.96, 0.9], "distance": [0, 0.5, 2.0, 3.0]})
    assert escape_step(frame, 1.0, 0.05, 1.0) == (2, "distance")
    assert escape_step(frame, 1.0, 0.05, None) == (3, "loss")
    assert escape_step(frame, 1.0, 0.5, None) == (None, "")


def test_monkey_saddle_defeats_the_curvature_step():
    res = run(MOONS, LabSetup(), Config(surface="monkey", steps=60))
    row = _row(res, "curvature", "exact")
    assert row["eig_min"] == 0.0 and not row["escaped"]  # zero Hessian: no direction to follow
    assert "no clearly negative eigenvalue" in res.honesty


@pytest.mark.parametrize("bad", [dict(steps=0), dict(lr=-1.0), dict(epsilon=0.0), dict(momentum=1.0),
                                 dict(noise_sigma=-0.1), dict(surface="bowl")])
def test_impossible_configs_raise(bad):
    with pytest.raises(ValueError):
        validate(Config(**bad))


def test_learning_rate_100_reports_divergence_with_its_step():
    cfg = Config(lr=100.0, steps=20)
    res = run(MOONS, LabSetup(), cfg)
    # Reference: plain GD from the pushed start in numpy; the first iterate that is not finite,
    # has a coordinate past 1e6, or a loss past start + 9 x max(|start|, 1) (core.rules on surfaces).
    w = push(2, cfg.epsilon, seed=0)
    start_loss = _lecture_loss(w)
    ref = None
    for k in range(cfg.steps + 1):
        loss = _lecture_loss(w)
        if (not np.all(np.isfinite(w)) or np.abs(w).max() > 1e6 or not np.isfinite(loss)
                or loss > start_loss + 9 * max(abs(start_loss), 1.0)):
            ref = k
            break
        w = w - cfg.lr * _lecture_grad(w)
    assert ref is not None
    assert _row(res, "gd", "pushed")["diverged_at"] == ref
    assert res.verdict.kind == "problem"
    assert f"gradient descent at step {ref}" in res.verdict.text and "diverged" in res.verdict.text


# ----------------------------------------------------------------------------- your network
def _closed_form_extremes(data, setup, task_loss="ce"):
    """lambda_min and lambda_max of the saddle from the closed form: the Hessian couples output
    weight W2[k, j] and last hidden weight W1[j, i] by C[k, i] = mean_n dL_n/dout_k * h_ni, giving
    eigenvalues ±sigma(C); the output bias adds the block of the loss's Hessian in the output."""
    spec = ModelSpec(hidden=setup.model.hidden or (16,), activation="tanh")
    split = split_data(data, "standard", 0.2, setup.seed)
    model = build_mlp(spec, split.n_features, split.n_outputs, seed=setup.seed)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    h = split.X_train.astype(np.float64)
    for layer in linears[:-2]:  # layers that keep their initial weights
        h = np.tanh(h @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy())
    b = best_constant(split.y_train, split.task, split.n_outputs)
    if split.task == "classification":
        p = np.exp(b) / np.exp(b).sum()
        g = p[None, :] - np.eye(split.n_outputs)[split.y_train]  # dCE/dout per row
        out_block = np.diag(p) - np.outer(p, p)
    else:
        g = 2.0 * (b[0] - split.y_train.astype(np.float64))[:, None]  # dMSE/dout per row
        out_block = np.array([[2.0]])
    C = g.T @ h / len(h)
    s = np.linalg.svd(C, compute_uv=False).max()
    return -s, max(s, np.linalg.eigvalsh(out_block).max())


@pytest.mark.parametrize("name", ["moons", "diabetes"])
def test_network_saddle_check_matches_closed_form(name):
    data = load_builtin(name)
    setup = LabSetup()
    net = network_saddle(data, setup)
    chk = classify_point(net.f, net.theta)
    lo, hi = _closed_form_extremes(data, setup)
    assert chk.kind == "saddle point"
    assert chk.grad_norm < 1e-10
    assert chk.eig_min == pytest.approx(lo, rel=1e-6)
    assert chk.eig_max == pytest.approx(hi, rel=1e-6)
    assert chk.eig_min < 0 < chk.eig_max


def test_network_gd_stays_while_noise_and_curvature_escape(network):
    L = network.saddle_loss
    assert network.check.kind == "saddle point"
    for racer in ("gd", "momentum"):
        lap = _lap(network, racer, "exact")
        assert np.max(np.abs(lap["loss"] - L)) < 1e-12
    curv = _lap(network, "curvature", "exact")
    assert curv.at[1, "loss"] < L - 1e-6  # the curvature step itself lowers the loss
    for racer in ("noise", "curvature"):
        row = _row(network, racer, "exact")
        assert row["escaped"] and row["final_loss"] < L - network.config.delta
    assert _row(network, "curvature", "exact")["hvps"] > 0
    assert set(network.table["racer"]) == set(RACERS)


def test_all_zero_deep_network_is_degenerate_not_strict():
    net = network_saddle(MOONS, LabSetup(model=ModelSpec(hidden=(8, 8))), all_zero=True)
    chk = classify_point(net.f, net.theta)
    # With h = tanh(0) = 0 feeding the last hidden layer, C = 0: no negative curvature at all.
    assert chk.kind == "flat (degenerate)"
    assert abs(chk.eig_min) < 1e-10 and chk.eig_max == pytest.approx(0.5, rel=1e-6)  # p(1-p)*2, p = 1/2
    assert any("third order" in n for n in net.notes)


def test_relu_batchnorm_linear_lab_models_are_explained():
    net = network_saddle(MOONS, LabSetup(model=ModelSpec(hidden=(), activation="relu", batch_norm=True)))
    text = " ".join(net.notes)
    assert "tanh" in text and "Batch norm" in text and "no hidden layer" in text
    assert net.spec == ModelSpec(hidden=(16,), activation="tanh", batch_norm=False)
    assert classify_point(net.f, net.theta).kind == "saddle point"


def test_charts_carry_the_race(lecture):
    for start in ("exact", "pushed"):
        specs = [c.to_dict() for c in (race_map(lecture, start), loss_curves(lecture, start),
                                       distance_curves(lecture, start), escape_bars(lecture, start))]
        assert all("layer" in s or "mark" in s for s in specs)
    spec = race_map(lecture, "pushed").to_dict()
    assert len(spec["layer"]) == 2  # heat map, then the race drawn over it
    assert len(spec["layer"][1]["layer"]) == 5  # lines, points, minima, saddle, pushed start
    assert len(race_map(lecture, "exact").to_dict()["layer"][1]["layer"]) == 4  # start = saddle


# ----------------------------------------------------------------------------- the page
def _page():
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("app_pages/saddle.py").run()
    return at


def _texts(at):
    return " ".join(str(e.value) for e in list(at.info) + list(at.error) + list(at.warning) + list(at.success))


def test_page_default_run():
    at = _page()
    assert not at.exception
    charts = at.get("vega_lite_chart")
    assert len(charts) == 4 + 2  # the race (map, loss, distance, escape) and the double well (map, loss)
    assert "did not move at all" in _texts(at) and "Pushed 0.01" in _texts(at)
    table = at.dataframe[0].value
    assert len(table) == 6 and table["escaped"].all()
    at.radio(key="saddle_view").set_value("exact").run()
    assert not at.exception
    assert at.dataframe[0].value["escaped"].sum() == 2  # noise and the curvature step


def _race_network(at):
    # One rerun: the shorter budget and the ground change together (two runs would double the time).
    at.number_input(key="saddle_steps").set_value(60)
    at.selectbox(key="saddle_surface").set_value("network")
    at.button(key="saddle_race").click().run()


def test_page_network_mode():
    at = _page()
    _race_network(at)
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 3 + 2  # no surface map for a network; the double well
    assert "saddle point" in [m.value for m in at.metric]


def test_page_uploaded_regression_csv_in_network_mode():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    y = x[:, 0] - 2 * x[:, 1] + 0.1 * rng.normal(size=80)
    csv = pd.DataFrame(np.column_stack([x, y]), columns=["a", "b", "c", "target"]).to_csv(index=False).encode()
    at = _page()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("reg.csv", csv, "text/csv")).run()
    _race_network(at)
    assert not at.exception and not at.error
    assert "saddle point" in [m.value for m in at.metric]
    assert len(at.get("vega_lite_chart")) == 3 + 2


def test_page_learning_rate_100_shows_divergence():
    at = _page()
    at.number_input(key="saddle_lr").set_value(100.0)
    at.button(key="saddle_race").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "diverged" in errors and "at step" in errors
    spec = json.loads(at.get("vega_lite_chart")[1].proto.spec)  # the loss chart still draws
    assert spec


def test_page_surface_race_runs_while_no_csv_is_uploaded_yet():
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.switch_page("app_pages/saddle.py").run()
    assert not at.exception and not at.error  # the lecture surface needs no dataset
    assert len(at.get("vega_lite_chart")) >= 3


# ----------------------------------------------------------------------------- issue 12: no escape by blowing up
def test_lr_1000_a_diverged_racer_never_escaped_first():
    # Before: "Adam escaped first in 1 step" and the exact-saddle box credited noise with escaping
    # at step 1, while those runs diverged at step 2.
    res = run(MOONS, LabSetup(), Config(lr=1000.0, steps=50))
    table = res.table
    diverged = table[table["diverged_at"].notna()]
    assert len(diverged) > 0
    assert not diverged["escaped"].any()
    noise = _row(res, "noise", "exact")
    if pd.notna(noise["diverged_at"]):
        assert "Gradient noise (sigma" in res.honesty and f"diverged at step {int(noise['diverged_at'])}" in res.honesty
        assert "escaped at step" not in res.honesty.split("Gradient noise")[1].split(".")[0]
    assert res.verdict.kind == "problem"


def test_network_at_lr_1000_reports_divergence_not_an_escape():
    # Before: "gradient descent escaped first in 1 step" beside "12 of 12 runs ended above the
    # saddle's loss (worst 1.145e+04)", with no divergence step.
    res = run(MOONS, LabSetup(), Config(surface="network", lr=1000.0, steps=30))
    gd = _row(res, "gd", "pushed")
    assert pd.notna(gd["diverged_at"]) and not gd["escaped"]
    assert "gradient descent escaped first" not in res.verdict.text
    assert f"gradient descent at step {int(gd['diverged_at'])}" in res.verdict.text


@pytest.mark.parametrize("surface", ["lecture", "saddle", "monkey"])
@pytest.mark.parametrize("lr", [0.01, 0.3, 3.0, 300.0])
def test_escaped_first_agrees_with_the_table(surface, lr):
    from core.diagnoses.saddle import FIRST_ORDER, NAMES, find

    cfg = Config(surface=surface, lr=lr, steps=120)
    res = run(MOONS, LabSetup(seed=1), cfg)
    f = find(res.table, cfg, res.saddle_loss)
    pushed = res.table[res.table["start"] == "pushed"].set_index("racer")
    escaped = pushed[pushed["escaped"] & pushed["diverged_at"].isna()]
    det = escaped.loc[[r for r in FIRST_ORDER if r in escaped.index]]
    if not len(det):
        assert "escaped first" not in res.verdict.text and "tied for first" not in res.verdict.text
        return
    best = det["steps_to_escape"].min()
    assert set(f.first) == set(det.index[det["steps_to_escape"] == best])
    for r in f.first:
        assert pd.isna(pushed.at[r, "diverged_at"])
        assert NAMES[r] in res.verdict.text.split("first")[0]


def test_a_stop_lands_during_the_network_race():
    # issue 19: Stop ends all work, curvature included. Under Streamlit a Stop is raised from the
    # progress callback; here the callback raises after a few calls, as Streamlit's would.
    from core.stop import Stopped

    calls = []

    def on_progress(fraction, message):
        calls.append(message)
        if len(calls) > 3:
            raise Stopped("stop")

    with pytest.raises(Stopped):
        run(MOONS, LabSetup(), Config(surface="network", steps=400), on_progress=on_progress)
    assert len(calls) == 4  # nothing reported after the stop: the work ended there


# ----------------------------------------------------------------------------- review findings (browser review)
def _extra_clauses(text):
    """The verdict's clauses about gradient noise and the curvature step, by racer key."""
    part = text.split("With help beyond the gradient, ")[1].split(". ")[0]
    from core.diagnoses.saddle import NAMES

    return {r: next(c for c in part.split("; ") if c.startswith(NAMES[r])) for r in ("noise", "curvature")}


@pytest.mark.parametrize("surface", ["lecture", "saddle", "monkey"])
@pytest.mark.parametrize("lr", [0.1, 0.3, 1.0])
def test_first_names_its_group_and_every_faster_racer(surface, lr):
    # Before: "Nesterov and Adam tied for first, each escaping in 15 steps" while gradient noise
    # (9) and the curvature step (1) escaped sooner on the same page.
    from core.diagnoses.saddle import FIRST_ORDER

    res = run(MOONS, LabSetup(), Config(surface=surface, lr=lr, steps=120))
    pushed = res.table[res.table["start"] == "pushed"].set_index("racer")
    fo = pushed.loc[list(FIRST_ORDER)]
    fo = fo[fo["escaped"]]
    text = res.verdict.text
    if not len(fo):
        assert "first" not in text
        return
    best = int(fo["steps_to_escape"].min())
    assert "of the four racers that follow the exact gradient alone" in text.split("first")[0]
    clauses = _extra_clauses(text)
    for r, clause in clauses.items():
        row = pushed.loc[r]
        if not row["escaped"]:
            assert not clause.endswith(("sooner", "as fast", "later"))
            continue
        n = int(row["steps_to_escape"])
        assert f"escaped in {n} step" in clause
        assert clause.endswith("sooner" if n < best else "as fast" if n == best else "later")


def test_default_race_says_noise_and_curvature_were_sooner():
    res = run(MOONS, LabSetup(), Config())
    text = res.verdict.text
    assert "of the four racers that follow the exact gradient alone, Nesterov and Adam tied for first" in text
    clauses = _extra_clauses(text)
    assert clauses["noise"].endswith("escaped in 9 steps, sooner")
    assert clauses["curvature"].endswith("escaped in 1 step, sooner")
    # the numbers in the words are the table's
    pushed = res.table[res.table["start"] == "pushed"].set_index("racer")
    assert pushed.at["noise", "steps_to_escape"] == 9 and pushed.at["curvature", "steps_to_escape"] == 1
    assert pushed.at["nesterov", "steps_to_escape"] == pushed.at["adam", "steps_to_escape"] == 15


def test_beta_zero_races_without_nesterov_and_says_why():
    # Before: torch's "Nesterov momentum requires a momentum and zero dampening" and no race.
    with pytest.raises(ValueError):  # the reason Nesterov sits out: torch refuses it at beta 0
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.0, nesterov=True)
    cfg = Config(momentum=0.0)
    res = run(MOONS, LabSetup(), cfg)
    assert "nesterov" not in set(res.table["racer"]) and len(res.table) == 2 * (len(RACERS) - 1)
    # momentum with beta 0 is plain gradient descent: the numpy reference
    ref, ref_step = _numpy_race("gd", push(2, cfg.epsilon, seed=0), cfg.lr, 0.0, cfg.steps, cfg.delta, cfg.radius)
    np.testing.assert_allclose(_lap(res, "momentum", "pushed")["loss"], ref, rtol=1e-9, atol=1e-12)
    assert _row(res, "momentum", "pushed")["steps_to_escape"] == ref_step
    assert "Nesterov sat this race out: with momentum beta 0" in res.verdict.text
    assert "of the three racers that follow the exact gradient alone" in res.verdict.text
    assert "Nesterov" not in res.honesty


def test_page_beta_zero_runs_the_rest_of_the_race():
    at = _page()
    at.slider(key="saddle_beta").set_value(0.0)
    at.button(key="saddle_race").click().run()
    assert not at.exception and not at.error
    assert len(at.get("vega_lite_chart")) == 4 + 2
    assert "Nesterov sat this race out" in _texts(at)
    assert "Nesterov" not in set(at.dataframe[0].value["label"])


def test_exact_saddle_box_words_every_first_order_racer_by_the_escape_rule():
    # Before (uploaded breast cancer CSV): "gradient descent, momentum and Nesterov never moved",
    # and Adam, which moved 2.5e-6 with the loss unchanged, was dropped without a word.
    from core.diagnoses.saddle import FIRST_ORDER, NAMES
    from core.diagnoses.words import num
    from core.rules import escape_index

    res = run(load_builtin("breast_cancer"), LabSetup(), Config(surface="network"))
    first = res.honesty.split(". ")[0]
    for r in FIRST_ORDER:
        lap = _lap(res, r, "exact")
        assert escape_index(lap["loss"], lap["distance"], res.saddle_loss, res.config.delta, None) == (None, "")
        assert NAMES[r] in first
        assert f"{NAMES[r]}{' moved' if r == 'gd' else ''} {num(lap['distance'].iloc[-1])}" in first
    adam = _lap(res, "adam", "exact")
    assert adam["distance"].iloc[-1] > 1e-6  # the racer the old 'never moved' cut-off left out
    worst = max(abs(_lap(res, r, "exact")["loss"].iloc[-1] - res.saddle_loss) for r in FIRST_ORDER)
    assert worst < 1e-9 and f"at most {num(worst)}" in first
    assert "None of them escaped" in res.honesty and "never moved" not in res.honesty


def test_no_first_order_escape_reads_as_a_sentence():
    # Before: "Pushed 0.01 off the saddle no first-order racer escaped within 50 steps (...)".
    res = run(MOONS, LabSetup(), Config(lr=1e-4, steps=50))
    assert not res.table[res.table["racer"].isin(["gd", "momentum", "nesterov", "adam"])]["escaped"].any()
    assert res.verdict.text.startswith(
        "Pushed 0.01 off the saddle, none of the four racers that follow the exact gradient alone escaped "
        "within 50 steps.")


def _svg_texts(chart):
    import re

    import vl_convert as vlc

    return re.findall(r"<text[^>]*>([^<]*)</text>", vlc.vegalite_to_svg(chart.to_json()))


def test_escape_chart_says_no_racer_escaped_and_marks_racers_without_a_bar():
    res = run(MOONS, LabSetup(), Config(lr=10.0, steps=200))
    pushed = res.table[res.table["start"] == "pushed"]
    assert not pushed["escaped"].any() and pushed["diverged_at"].notna().all()
    texts = _svg_texts(escape_bars(res, "pushed"))
    assert "No racer escaped from the pushed start within 200 steps" in texts
    assert "0.000000" not in texts and "200" in texts  # the axis spans the budget
    for d in pushed["diverged_at"]:
        assert f"diverged at step {d}" in texts
    default = run(MOONS, LabSetup(), Config())
    texts = _svg_texts(escape_bars(default, "exact"))
    assert texts.count("never escaped in 200 steps") == 4  # gd, momentum, Nesterov, Adam: zero gradient


def test_step_axes_have_whole_numbers_only():
    # Before: a 2-step run drew step ticks 0.5 and 1.5.
    import re

    res = run(MOONS, LabSetup(), Config(lr=10.0))
    texts = _svg_texts(loss_curves(res, "pushed"))  # loss in the thousands: every number label is a whole one
    numbers = [t for t in texts if re.fullmatch(r"[-\d.,]+", t)]
    assert "step" in texts and "1" in numbers and "2" in numbers
    assert all(re.fullmatch(r"[\d,]+", t) for t in numbers), numbers
    texts = _svg_texts(distance_curves(res, "pushed"))
    assert "1" in texts and not any(t in ("0.5", "1.5", ".5") for t in texts)
    from core.charts.saddle import well_loss
    from core.diagnoses.local_minimum import Config as WellConfig, run as run_well

    texts = _svg_texts(well_loss(run_well(None, None, WellConfig(steps=3))))
    assert not any(t in ("0.5", "1.5", "2.5") for t in texts)


def test_page_tables_show_never_and_dash_not_none():
    at = _page()
    race = at.dataframe[0].value
    assert race["steps_to_escape"].dtype.kind in "iu" or str(race["steps_to_escape"].dtype) == "Int64"  # no gap
    assert set(race["diverged_at"]) == {"–"}
    well = at.dataframe[1].value
    assert set(well["diverged_at"]) == {"–"} and well["settle_step"].notna().all()
    at.radio(key="saddle_view").set_value("exact").run()
    race = at.dataframe[0].value
    steps = dict(zip(race["label"], race["steps_to_escape"]))
    assert steps["Gradient descent"] == "never" and steps["Curvature step, then GD"] == "1"
    assert not race.isna().any().any()
