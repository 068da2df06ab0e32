"""Learning-rate x batch-size grid (issue 18 item 3): findings on synthetic grids with known answers
(linear, square-root, neither; critical batch under both budgets; divergence boundary), verdict words
checked against an independent t-test; a real grid on moons giving the same numbers inline and
through joblib; a stopped grid keeps its finished trials; a failing trial is an error row; the page."""
import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from streamlit.testing.v1 import AppTest

import core.diagnoses.lr_batch_grid as grid_mod
import core.sweep as sweep
from core.data import load_builtin
from core.diagnoses.lr_batch_grid import (
    FULL, Config, best_rates, boundary, cell_frame, decide_critical, decide_scaling, errors_table,
    estimated_seconds, make_verdict, plan, run,
)
from core.lab import DataSpec, LabSetup
from core.models import ModelSpec
from core.train import make_loss, split_data
from tests.conftest import plain

APP = "../app.py"
PAGE = "app_pages/lr_batch_grid.py"
MOONS = LabSetup(data=DataSpec("moons", params=(("n_samples", 200),)), model=ModelSpec(hidden=(8,)))
SMALL = Config(lr_min=0.1, lr_max=10.0, n_rates=3, batch_sizes=(16, FULL), seeds=2, updates=60, backend="inline")


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    """Each test gets its own empty trial cache (the module's is shared by the whole process)."""
    monkeypatch.setattr(grid_mod, "CACHE", sweep.TrialCache(max_entries=256))


# --------------------------------------------------------------------------- synthetic grids
def synthetic(best: dict[int, float], rates, seeds=3, noise=0.002, level: dict[int, float] | None = None,
              diverged: dict[tuple[int, float], int] | None = None) -> pd.DataFrame:
    """A trials table whose validation loss per (batch, rate) is a parabola in log2(rate) with its
    minimum at best[batch] (value level[batch]), plus small seeded noise: the answers are known."""
    rng = np.random.default_rng(0)
    rows = []
    for b, r_best in best.items():
        for lr in rates:
            for s in range(seeds):
                loss = (level or {}).get(b, 0.2) + 0.1 * math.log2(lr / r_best) ** 2 + noise * rng.normal()
                div = s < (diverged or {}).get((b, lr), 0)
                rows.append(dict(batch_size=b, lr=lr, seed=s, status="diverged" if div else "ok",
                                 val_metric=np.nan if div else 1 - loss, val_loss=np.nan if div else loss,
                                 train_loss=np.nan if div else loss, diverged_at=5 if div else None, updates=100,
                                 seconds=0.1, cached=False, error=""))
    frame = pd.DataFrame(rows, columns=grid_mod.TRIAL_COLUMNS)
    frame["diverged_at"] = frame["diverged_at"].astype("Int64")
    return frame


RATES = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)  # Config(lr_min=0.01, lr_max=0.32, n_rates=6): a factor 2 apart
CFG = Config(lr_min=0.01, lr_max=0.32, n_rates=6, seeds=3)


def decide(frame, config=CFG, n_train=1000):
    cells = cell_frame(frame, config, n_train)
    best, missing = best_rates(cells, frame, config)
    return cells, best, missing


def test_rates_are_the_log_grid():
    assert CFG.rates == RATES
    assert CFG.step == pytest.approx(2.0)
    np.testing.assert_allclose(np.diff(np.log(Config().rates)), np.log(10) / 2, rtol=0.01)


def test_best_rates_doubling_with_the_batch_follow_the_linear_rule():
    frame = synthetic({8: 0.02, 16: 0.04, 32: 0.08, 64: 0.16}, RATES)
    cells, best, _ = decide(frame)
    assert [x.rate for x in best] == [0.02, 0.04, 0.08, 0.16]
    # Brute force: the argmin of the per-cell mean validation loss.
    means = frame.groupby(["batch_size", "lr"])["val_loss"].mean().unstack()
    assert list(means.idxmin(axis=1)) == [0.02, 0.04, 0.08, 0.16]
    assert all(x.low == x.high == x.rate for x in best)  # neighbours 0.1 worse at noise 0.002: clearly worse
    assert [x.seed_best for x in best] == [(r,) * 3 for r in (0.02, 0.04, 0.08, 0.16)]
    s = decide_scaling(best, CFG.step)
    assert (s.kind, s.small, s.large, s.rate_ratio) == ("linear", 8, 64, 8.0)
    assert s.ratio_low <= 8 <= s.ratio_high and not s.ratio_low <= math.sqrt(8) <= s.ratio_high
    assert cells["best"].sum() == 4


def test_a_score_measure_picks_the_highest_mean():
    frame = synthetic({8: 0.02, 64: 0.16}, RATES)  # val_metric = 1 - loss: the same best cells
    config = Config(lr_min=0.01, lr_max=0.32, n_rates=6, seeds=3, measure="val_metric")
    _, best, _ = decide(frame, config)
    means = frame.groupby(["batch_size", "lr"])["val_metric"].mean().unstack()
    assert [x.rate for x in best] == list(means.idxmax(axis=1)) == [0.02, 0.16]
    assert decide_scaling(best, config.step).kind == "linear"


def test_square_root_scaling_and_neither():
    sq = decide_scaling(decide(synthetic({4: 0.02, 16: 0.04, 64: 0.08}, RATES))[1], CFG.step)
    assert (sq.kind, sq.batch_ratio, sq.rate_ratio) == ("sqrt", 16.0, 4.0)
    flat = decide_scaling(decide(synthetic({4: 0.04, 16: 0.04, 64: 0.04}, RATES))[1], CFG.step)
    assert flat.kind == "neither" and flat.rate_ratio == 1.0


def test_noisy_seeds_make_the_grid_say_it_cannot_tell():
    frame = synthetic({8: 0.02, 16: 0.04, 32: 0.08, 64: 0.16}, RATES, noise=0.3)
    cells, best, _ = decide(frame)
    assert any(x.low < x.high for x in best)  # with noise 3x the parabola's step, neighbours tie
    s = decide_scaling(best, CFG.step)
    assert s.kind == "both"
    verdict = make_verdict(_findings(frame)).text
    assert "cannot tell the rules apart" in verdict and "fits the linear" not in verdict


def test_a_best_range_at_the_grids_edge_is_open():
    _, best, _ = decide(synthetic({8: 0.01, 64: 0.32}, RATES))
    assert best[0].open_low and not best[0].open_high
    assert best[1].open_high and not best[1].open_low
    s = decide_scaling(best, CFG.step)
    assert s.ratio_low > 0 and s.ratio_high == math.inf


def test_divergence_boundary_and_unstable_cells_are_never_best():
    # Batch 8: rates >= 0.16 diverge in every seed; batch 64: one seed diverges at 0.32, and its
    # best (0.32 by the parabola) is therefore not eligible.
    div = {(8, 0.16): 3, (8, 0.32): 3, (64, 0.32): 1, (64, 0.08): 0}
    frame = synthetic({8: 0.02, 64: 0.32}, RATES, diverged=div)
    cells, best, _ = decide(frame)
    b8, b64 = boundary(frame, 8), boundary(frame, 64)
    assert (b8.last_stable, b8.first_unstable, b8.all_diverged) == (0.08, 0.16, 0.16)
    assert (b64.last_stable, b64.first_unstable, b64.all_diverged) == (0.16, 0.32, None)
    assert best[1].rate == 0.16 and best[1].at_edge and not best[1].open_high
    status = cells.set_index(["batch_size", "lr"])["status"]
    assert status[(64, 0.32)] == "unstable" and status[(8, 0.16)] == "diverged" and status[(8, 0.08)] == "ok"
    text = make_verdict(_findings(frame)).text
    assert "from rate 0.16 in every seed for batch 8" in text
    assert "from rate 0.32 in some seeds (never in all) for batch 64" in text


def test_all_diverged_batch_has_no_best():
    frame = synthetic({8: 0.02, 16: 0.04, 64: 0.16}, RATES, diverged={(16, r): 3 for r in RATES})
    _, best, missing = decide(frame)
    assert [x.batch_size for x in best] == [8, 64] and missing == (16,)


@pytest.mark.parametrize("levels, budget, answer", [
    ({8: 0.30, 16: 0.20, 32: 0.15, 64: 0.15}, "updates", ("between", 16, 32)),
    ({8: 0.15, 16: 0.15, 32: 0.15, 64: 0.15}, "updates", ("below", None, 8)),
    ({8: 0.40, 16: 0.30, 32: 0.20, 64: 0.10}, "updates", ("above", 32, None)),
    ({8: 0.15, 16: 0.15, 32: 0.25, 64: 0.40}, "epochs", ("between", 16, 32)),
    ({8: 0.15, 16: 0.15, 32: 0.15, 64: 0.15}, "epochs", ("above", 64, None)),
])
def test_critical_batch_size_with_known_answers(levels, budget, answer):
    frame = synthetic({b: 0.04 for b in levels}, RATES, level=levels)
    config = Config(lr_min=0.01, lr_max=0.32, n_rates=6, seeds=3, budget=budget)
    _, best, _ = decide(frame, config)
    c = decide_critical(best, config)
    assert (c.kind, c.low, c.high) == answer


@pytest.mark.parametrize("seed", range(6))
def test_property_every_critical_claim_agrees_with_an_independent_t_test(seed):
    """Random levels and noise: the batch named as falling behind really is beaten by a larger one
    at p < 0.05 (scipy, independently), and the one named as not beaten is beaten by none."""
    rng = np.random.default_rng(seed)
    sizes = (8, 16, 32, 64)
    levels = dict(zip(sizes, np.sort(rng.uniform(0.1, 0.3, 4))[::-1]))
    frame = synthetic({b: 0.04 for b in sizes}, RATES, level=levels, noise=float(rng.uniform(0.005, 0.05)))
    _, best, _ = decide(frame)
    c = decide_critical(best, CFG)
    samples = {x.batch_size: x.samples for x in best}

    def beats(big, small):
        t = stats.ttest_ind(samples[big], samples[small], equal_var=False)
        return t.pvalue < 0.05 and np.mean(samples[big]) < np.mean(samples[small])

    if c.low is not None and c.kind == "between":
        assert any(beats(b, c.low) for b in sizes if b > c.low)
    if c.high is not None:
        assert not any(beats(b, c.high) for b in sizes if b > c.high)
    text = make_verdict(_findings(frame)).text
    if c.kind == "between" and c.doubt is None:
        assert f"between about {c.low} and {c.high} rows" in text


@pytest.mark.parametrize("full, doubt", [([0.095, 0.141], True), ([0.258, 0.262], False)])
def test_a_wide_gap_two_seeds_cannot_carry_is_not_read_as_no_difference(full, doubt):
    """Review: 'no larger batch reached a clearly better validation loss than batch 8: a larger
    batch does not help here' beside 0.118 +- 0.033 (full batch) vs 0.265 +- 0.015 (batch 8) over
    2 seeds. A gap wider than the seeds' spread that Welch's test cannot carry means "cannot tell";
    a gap inside the spread keeps the estimate."""
    from core.findings import compare

    small = [0.255, 0.276]
    p = stats.ttest_ind(full, small, equal_var=False).pvalue
    assert p > 0.05  # scipy, independently: no significant difference either way
    comp = compare("val_loss", "8", small, "320", full, higher_is_better=False)
    crit = grid_mod.Critical("below", None, 8, "updates", (comp,))
    frame = synthetic({8: 0.04, 320: 0.04}, RATES)
    f = dataclasses.replace(_findings(frame, n_train=320), critical=crit)
    text = grid_mod.critical_sentence(f)
    assert ("cannot tell" in text) == doubt and ("at most about 8 rows" in text) == (not doubt)
    if doubt:
        assert f"{np.mean(full):.3g} vs {np.mean(small):.3g} for batch 8" in text
        assert "lies within that span" not in grid_mod.make_verdict(f).text


def _findings(frame, config=CFG, n_train=1000):
    cells, best, missing = decide(frame, config, n_train)
    bounds = tuple(boundary(frame, b) for b in sorted(set(frame["batch_size"])))
    return grid_mod.Findings(
        measure=config.measure, metric="accuracy", higher_is_better=config.higher_is_better, budget=config.budget,
        updates=config.updates, epochs=0, n_train=n_train, seeds=config.seeds, optimizer=config.optimizer,
        rates=config.rates, step=config.step, best=best, no_best=missing, boundaries=bounds,
        scaling=decide_scaling(best, config.step), critical=decide_critical(best, config), noise=None,
        n_failed=0, failed_example="")


# --------------------------------------------------------------------------- real grids
def _same_numbers(a: pd.DataFrame, b: pd.DataFrame):
    cols = ["batch_size", "lr", "seed", "status", "val_metric", "val_loss", "train_loss", "diverged_at", "updates"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_moons_grid_inline_and_joblib_give_identical_numbers(monkeypatch):
    data = load_builtin("moons", n_samples=200)
    inline = run(data, MOONS, SMALL)
    monkeypatch.setattr(grid_mod, "CACHE", sweep.TrialCache(max_entries=256))  # train everything again
    pooled = run(data, MOONS, Config(**{**SMALL.__dict__, "backend": "joblib"}))
    assert (inline.backend, pooled.backend) == ("inline", "joblib")
    assert inline.trained == pooled.trained == 12
    _same_numbers(inline.trials, pooled.trials)
    pd.testing.assert_frame_equal(inline.noise, pooled.noise)
    assert inline.verdict == pooled.verdict
    # Each cell's status counts its trials' divergences (core.rules inside core.train): rate 10
    # diverges in some seed of each batch, and such a cell is never the best.
    div = inline.trials.assign(d=inline.trials["status"] == "diverged").groupby(["batch_size", "lr"])["d"].sum()
    cells = inline.cells.set_index(["batch_size", "lr"])
    assert (cells["diverged"] == div).all()
    assert set(cells.loc[cells.index.get_level_values("lr") == 10.0, "status"]) <= {"unstable", "diverged"}
    assert all(x.rate < 10.0 for x in inline.findings.best)
    # The best cell per batch is the argmin of the per-cell mean over seeds (pandas, independently).
    ok = inline.trials[inline.trials["status"] == "ok"]
    means = ok.groupby(["batch_size", "lr"])["val_loss"].mean().unstack()
    stable = inline.cells.pivot(index="batch_size", columns="lr", values="status") == "ok"
    assert [x.rate for x in inline.findings.best] == list(means.where(stable).idxmin(axis=1))
    # A trial trained again through core.runs (for the noise scale) gives the sweep's numbers.
    trial = next(t for t in plan(data, MOONS, SMALL).trials if t.train.lr == 0.1 and t.seed == 1)
    rec = grid_mod.retrain(data, MOONS, trial)
    row = inline.trials[(inline.trials["lr"] == 0.1) & (inline.trials["seed"] == 1)
                        & (inline.trials["batch_size"] == (trial.train.batch_size or inline.n_train))]
    assert rec.end.val_loss == pytest.approx(float(row["val_loss"].iloc[0]), rel=1e-6)
    # The divergence example is core.train's own finding for that trial.
    ex = inline.findings.boundaries[0].example
    first = inline.trials.query("batch_size == 16 and lr == 10.0 and status == 'diverged'").iloc[0]
    assert ex is not None and ex.step == int(first["diverged_at"])


def test_b_simple_at_the_start_matches_the_exact_noise_scale():
    """The start value is the batch-size page's estimator on the freshly built model; compare it
    with tr(Sigma) / |G|^2 from every per-example gradient (brute force)."""
    data = load_builtin("moons", n_samples=200)
    res = run(data, MOONS, SMALL)
    est = float(res.noise.loc[res.noise["seed"] == 0, "b_simple_start"].iloc[0])
    split = split_data(data, "standard", 0.2, seed=0)
    from core.models import build_mlp

    model = build_mlp(MOONS.model, 2, 2, seed=0).double()
    loss_fn = make_loss("auto", "classification", 2)
    X, y = torch.as_tensor(split.X_train, dtype=torch.float64), torch.as_tensor(split.y_train)
    grads = []
    for i in range(len(X)):
        model.zero_grad()
        loss_fn(model(X[i:i + 1]), y[i:i + 1]).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone())
    g = torch.stack(grads)
    exact = float(((g - g.mean(0)) ** 2).sum(1).mean() / (g.mean(0) ** 2).sum())
    assert 0.5 * exact < est < 2 * exact, (est, exact)  # 16 batch pairs: an estimate, not the value


def test_a_stopped_grid_keeps_finished_trials_and_a_grown_grid_trains_only_new_cells():
    data = load_builtin("moons", n_samples=200)

    class Stop(Exception):
        pass

    def stop_after_three(fraction, message):
        if message.startswith("trial 3 of"):
            raise Stop  # what Streamlit's Stop does inside the progress callback

    with pytest.raises(Stop):
        run(data, MOONS, SMALL, on_progress=stop_after_three)
    assert len(grid_mod.CACHE) == 3
    again = run(data, MOONS, SMALL)
    assert (again.cached, again.trained) == (3, 9)
    grown = run(data, MOONS, Config(**{**SMALL.__dict__, "n_rates": 5}))  # 0.1, 0.316, 1, 3.16, 10
    assert (grown.cached, grown.trained) == (12, 8)
    assert grid_mod.plan(data, MOONS, Config(**{**SMALL.__dict__, "n_rates": 5})).cached == 20
    _same_numbers(again.trials, grown.trials[grown.trials["lr"].isin(SMALL.rates)].reset_index(drop=True))


def test_same_epochs_budget_gives_larger_batches_fewer_updates():
    data = load_builtin("moons", n_samples=200)
    res = run(data, MOONS, Config(**{**SMALL.__dict__, "budget": "epochs", "epochs": 3}))
    ok = res.trials[res.trials["status"] == "ok"]
    # 160 training rows: batch 16 takes 10 updates an epoch, the full batch one.
    assert set(ok.loc[ok["batch_size"] == 16, "updates"]) == {30}
    assert set(ok.loc[ok["batch_size"] == 160, "updates"]) == {3}
    assert "With the same 3 epochs for every batch size" in res.verdict.text


def test_a_failing_trial_is_an_error_row_not_a_crash(monkeypatch):
    real_train = sweep.train

    def flaky(model, split, config, on_step=None):
        if config.lr == 1.0 and config.seed == 1 and config.batch_size == 16:
            raise RuntimeError("simulated out of memory")
        return real_train(model, split, config, on_step)

    monkeypatch.setattr(sweep, "train", flaky)
    res = run(load_builtin("moons", n_samples=200), MOONS, SMALL)
    failed = res.trials[res.trials["status"] == "failed"]
    assert len(failed) == 1 and failed["error"].iloc[0] == "RuntimeError: simulated out of memory"
    cell = res.cells.set_index(["batch_size", "lr"]).loc[(16, 1.0)]
    assert cell["status"] == "failed" and cell["trained"] == 1 and not cell["best"]
    assert errors_table(res)["error"].tolist() == ["RuntimeError: simulated out of memory"]
    assert res.verdict.kind == "warning" and "1 trial failed" in res.verdict.text
    assert len(grid_mod.CACHE) == 11  # the failure is not cached: a rerun tries it again


def test_bad_settings_are_refused_with_a_plain_message(monkeypatch):
    data = load_builtin("moons", n_samples=200)
    with pytest.raises(ValueError, match="larger than the training split"):
        plan(data, MOONS, Config(batch_sizes=(8, 5000)))
    with pytest.raises(ValueError, match="would take about"):
        plan(load_builtin("digits"), LabSetup(data=DataSpec("digits"), model=ModelSpec(hidden=(64, 64, 64, 64))),
             Config(n_rates=9, seeds=5, updates=3000, batch_sizes=(1, 16, 64, 256, 512, FULL)))
    with pytest.raises(ValueError, match="updates per trial"):
        plan(data, MOONS, Config(budget="epochs", epochs=500, batch_sizes=(1, FULL)))
    monkeypatch.setenv("TRAINSCOPE_RAY_ADDRESS", "127.0.0.1:9")  # nothing listens there
    with pytest.raises(ValueError, match="Nothing answers|Ray is not installed"):
        run(data, MOONS, Config(**{**SMALL.__dict__, "backend": "ray"}))


def test_the_heaviest_accepted_grid_is_bounded_and_the_default_is_quick():
    # The estimate behind the two-minute bound: the default on moons is well under it.
    default = estimated_seconds(Config(), (8, 32, 128, 320), 320, 354)
    assert default < 20
    assert estimated_seconds(Config(seeds=5, n_rates=9, updates=3000), (8, 32, 128, 320), 320, 354) > grid_mod.MAX_SECONDS


# --------------------------------------------------------------------------- charts
def test_charts_are_tall_enough_and_read_only_plain_fields():
    from core.charts.lr_batch_grid import heatmap_chart, trace_chart

    res = run(load_builtin("moons", n_samples=200), MOONS, SMALL)
    for chart in (heatmap_chart(res), heatmap_chart(res, which="metric"), trace_chart(res)):
        spec = chart.to_dict()
        assert spec["autosize"]["type"] == "fit-x" and spec["height"] >= 150 and spec.get("title")
        fields = {e.get("field") for layer in spec["layer"] for e in layer.get("encoding", {}).values()
                  if isinstance(e, dict)}
        assert all(f is None or f.replace("_", "").isalnum() for f in fields), fields
    heat = json.dumps(heatmap_chart(res).to_dict())
    assert '"best"' in heat and "seed_values" in heat  # the best cell outlined, per-seed values in tooltips
    assert res.trials["batch_size"].dtype == np.int64  # integers stay integers in exports


# --------------------------------------------------------------------------- page
def _page():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _small_form(at):
    at.number_input(key="lr_batch_grid_lr_min").set_value(0.1)
    at.number_input(key="lr_batch_grid_lr_max").set_value(10.0)
    at.slider(key="lr_batch_grid_n_rates").set_value(3)
    at.text_input(key="lr_batch_grid_sizes").set_value("16, full")
    at.number_input(key="lr_batch_grid_seeds").set_value(2)
    at.number_input(key="lr_batch_grid_updates").set_value(60)
    at.selectbox(key="lr_batch_grid_backend").set_value("inline")


def test_page_is_opt_in_then_shows_verdict_charts_and_tables():
    at = _page()
    assert not at.get("vega_lite_chart") and not at.success and not at.warning
    assert any("Nothing trains until then" in i.value for i in at.info)
    assert any("84 trials" in c.value for c in at.caption)  # the default grid, with its estimate
    _small_form(at)
    at.button(key="lr_batch_grid_run").click().run()
    assert not at.exception, at.exception
    boxes = [plain(b.value) for b in list(at.success) + list(at.info) + list(at.warning)]
    assert any("Best learning rate by mean validation loss over 2 seeds" in b for b in boxes)
    assert len(at.get("vega_lite_chart")) == 3
    table = at.dataframe[0].value
    assert list(table["batch size"]) == ["16", "320 (full)"]
    assert any(m.label == "Trained on" and m.value == "in-process" for m in at.metric)
    # A rerun (any widget) keeps the result: served from the cache, still shown.
    at.run()
    assert len(at.get("vega_lite_chart")) == 3 and not at.exception


def test_page_refuses_a_too_heavy_grid_before_training():
    at = _page()
    at.number_input(key="lr_batch_grid_seeds").set_value(5)
    at.slider(key="lr_batch_grid_n_rates").set_value(9)
    at.number_input(key="lr_batch_grid_updates").set_value(3000)
    at.button(key="lr_batch_grid_run").click().run()
    assert not at.exception
    assert "would take about" in plain(at.error[0].value)
    assert not at.get("vega_lite_chart")


def _csv() -> bytes:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=120)
    return ("a,b,c,target\n" + "".join(f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{t:.4f}\n" for r, t in zip(X, y))).encode()


def test_page_with_an_uploaded_regression_csv_shows_its_name_literally():
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("my *lin* [x](y).csv", _csv(), "text/csv")).run()
    at.switch_page(PAGE).run()
    _small_form(at)
    at.button(key="lr_batch_grid_run").click().run()
    assert not at.exception, at.exception
    boxes = [plain(b.value) for b in list(at.success) + list(at.info) + list(at.warning)]
    assert any("Best learning rate by mean validation loss" in b for b in boxes)
    assert len(at.get("vega_lite_chart")) == 3  # loss, R^2 and the best-rate trace
    caption = next(c.value for c in at.main.caption if "best by" in c.value)
    assert "\\*lin\\*" in caption and "\\[x\\]\\(y\\)" in caption
