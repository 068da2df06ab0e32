"""The learning-rate page's answer (the headline agrees with its own check) and the page itself.

Per-experiment tests live beside this file: test_lr_range.py, test_lr_schedules.py (with the
preview), test_lr_surfaces.py, test_lr_burst.py, test_lr_optimizers.py.
"""
import math

import pytest
from streamlit.testing.v1 import AppTest

from core.diagnoses import learning_rate, lr_range, lr_schedules
from core.diagnoses.words import num
from core.lab import DataSpec, LabSetup, load_data

APP = "../app.py"
PAGE = "app_pages/learning_rate.py"

# (dataset, range-test optimizer, lab seed): several datasets, optimizers and seeds
CASES = [("moons", "sgd", 0), ("moons", "adam", 0), ("moons", "momentum", 1), ("circles", "sgd", 0),
         ("circles", "adam", 1), ("xor", "rmsprop", 0), ("spirals", "adagrad", 0), ("blobs", "sgd", 2)]


def _answer(dataset, optimizer, seed):
    setup = LabSetup(data=DataSpec(builtin=dataset), seed=seed)
    data = load_data(setup.data, seed)
    return learning_rate.run(data, setup, learning_rate.Config(range_test=lr_range.Config(optimizer=optimizer)))


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "-".join(map(str, c)))
def answer(request):
    return _answer(*request.param)


def test_headline_never_recommends_a_rate_its_own_check_beat(answer):
    """Issue 12: the green headline said 'Use sgd at lr 0.0581' while the check right below said ten
    times it trained better. Over several datasets, optimizers and seeds: the headline's rate is the
    check's choice, no comparison of the check beat it, and it never diverged when another did not."""
    rt, tr, v = answer.range_test, answer.schedules, answer.verdict
    groups = {g.key: g for g in rt.groups}
    chosen = rt.choice.key
    if rt.recommended_lr is None:
        assert v.kind == "problem" and "No rate to recommend" in v.text
        return
    assert f"Use {rt.optimizer} at lr {num(rt.recommended_lr)} " in v.text
    for comp in rt.comparisons.values():
        assert comp.loser != chosen, comp  # the check never beat the recommended rate
        if comp.winner is not None:  # and every claim of the check points the way its numbers do
            assert groups[comp.winner].mean < groups[comp.loser].mean
    if any(g.stable for g in rt.groups):
        assert groups[chosen].stable
    beat_valley = [c.winner for c in rt.comparisons.values() if "1x" in (c.a, c.b) and c.winner not in (None, "1x")]
    if beat_valley:  # if 10x (or 0.1x) trained better, the headline says so and uses it
        assert chosen in beat_valley and ("ten times" in v.text or "a tenth of" in v.text)
        assert "trained clearly better in the check" in v.text
    else:
        assert chosen == "1x" and "the range test's valley" in v.text
    # the schedule part: trained at the chosen rate, named only when it beat the constant rate
    assert tr.config.lr == rt.recommended_lr and tr.config.optimizer == rt.optimizer
    if tr.choice.kind == "schedule":
        assert tr.comparisons[tr.choice.key].winner == tr.choice.key
        assert f"with the {lr_schedules.labels(tr)[tr.choice.key]} schedule" in v.text
    elif tr.choice.kind == "constant":
        assert "with a constant rate: no schedule trained clearly better" in v.text


def test_headline_without_a_valley_or_without_a_check():
    none = learning_rate.recommend(None, None)
    assert none.kind == "problem"
    moons = load_data(LabSetup().data, 0)
    rt = lr_range.run(moons, LabSetup(), lr_range.Config(check_steps=0))
    v = learning_rate.recommend(rt, None)
    assert rt.choice.kind == "unchecked" and f"lr {num(rt.valley_lr)}" in v.text and "not checked" in v.text


def test_headline_when_the_schedules_ran_at_another_rate():
    setup = LabSetup()
    moons = load_data(setup.data, 0)
    rt = lr_range.run(moons, setup, lr_range.Config(num_steps=100, check_steps=50, seeds=1))
    tr = lr_schedules.run(moons, setup, lr_schedules.Config(lr=0.5, steps=40, seeds=1, schedules=()))
    v = learning_rate.recommend(rt, tr)
    assert f"Use adam at lr {num(rt.recommended_lr)}" in v.text and "At the rate you chose on the schedules tab, 0.5" in v.text


# ----------------------------------------------------------------------------- the page


def _page():
    at = AppTest.from_file(APP, default_timeout=300).run()
    return at.switch_page(PAGE).run()


def _open(at, tab):
    at.session_state["learning_rate_tab"] = tab  # what a click on the tab does
    return at.run()


def _texts(at):
    return "\n".join(str(e.value) for kind in ("success", "info", "warning", "error") for e in getattr(at, kind))


def _plain(text: str) -> str:
    """Verdict boxes escape Markdown (ui.verdict): read them back as plain text."""
    return text.replace("\\", "")


def test_page_default_run_and_every_tab():
    at = _page()
    assert not at.exception, at.exception
    assert not at.error
    text = _plain(_texts(at))
    assert "Use adam at lr" in text and "Range test (adam)" in text  # the answer, on arrival
    assert len(at.get("vega_lite_chart")) == 2  # range test and its check: only the open tab draws
    at = _open(at, "Preview schedules")
    assert not at.exception and len(at.get("vega_lite_chart")) == 1
    assert len(at.code) == 4  # "copy as PyTorch code" for the four default schedules
    at = _open(at, "Train with schedules")
    assert not at.exception and len(at.get("vega_lite_chart")) == 2
    assert "3 seeds each" in _plain(_texts(at))
    at = _open(at, "Adaptive optimizers")
    assert not at.exception and len(at.get("vega_lite_chart")) == 7
    text = _plain(_texts(at))
    assert "not the lecture's burst" in text  # torch's RMSprop: its first step is a start-up effect
    assert "burst 3 times: on x at steps 714, 1,929 and 3,501" in text  # the lecture's rule
    assert "vanish with decay" in text
    assert any("torch.optim.Adam(params, lr=0.01" in m.value for m in at.markdown)  # the 3.2.5 table
    assert any("frac{\\eta_t}{\\sigma_t}" in m.value for m in at.get("latex"))
    assert "Use adam at lr" in text  # the answer stays whichever tab is open


def test_page_issue_12_sgd_headline_and_a_rate_of_100():
    at = _page()
    at.selectbox(key="learning_rate_rt_opt").set_value("sgd").run()
    assert not at.exception, at.exception
    headline = _plain(at.success[0].value)
    assert headline.startswith("Use sgd at lr 0.581 (ten times the range test's valley 0.0581")
    at = _open(at, "Train with schedules")
    at.checkbox(key="learning_rate_tr_valley").set_value(False).run()
    at.number_input(key="learning_rate_tr_lr").set_value(100.0).run()
    assert not at.exception, at.exception
    text = _plain(_texts(at))
    assert "The constant rate diverged at step" in text and "past 10x its starting level" in text
    assert "At the rate you chose on the schedules tab, 100 (sgd), every run diverged" in text


def test_page_seeds_preview_variants_and_an_over_budget_request():
    at = _page()
    at.number_input(key="learning_rate_seeds").set_value(1).run()
    assert not at.exception and "mean of" not in _plain(_texts(at))
    at = _open(at, "Preview schedules")
    at.multiselect(key="learning_rate_pv_names").set_value(["noam", "cyclic"])
    at.toggle(key="learning_rate_pv_log").set_value(False).run()
    assert not at.exception, at.exception
    assert len(at.code) == 2
    at.text_input(key="learning_rate_pv_at").set_value("0, 5000").run()
    assert not at.exception and any("outside the run" in e.value for e in at.error)
    at = _open(at, "Find a rate (range test)")
    at.number_input(key="learning_rate_seeds").set_value(10)
    at.number_input(key="learning_rate_rt_steps").set_value(2000)
    at.number_input(key="learning_rate_rt_check").set_value(2000).run()
    assert not at.exception, at.exception
    errors = [_plain(e.value) for e in at.error]
    assert len(errors) == 1 and "on a 2-core laptop" in errors[0]  # refused with a sentence, not run
    assert not at.success  # and no answer claims anything about a test that did not run


CSV = ("a,b,c,label\n" + "".join(
    f"{math.sin(i):.3f},{math.cos(i * 0.7):.3f},{(i % 7) / 7:.3f},{int(math.sin(i) + math.cos(i * 0.7) > 0)}\n"
    for i in range(120))).encode()


@pytest.mark.parametrize("upload_first", [True, False])
def test_page_with_an_uploaded_csv(upload_first):
    at = AppTest.from_file(APP, default_timeout=300).run()
    if not upload_first:
        at.switch_page(PAGE).run()
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value(("mine.csv", CSV, "text/csv")).run()
    if upload_first:
        at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert not at.error
    assert "Range test (adam)" in _plain(_texts(at))


def test_doctests_of_the_pages_modules():
    import doctest

    from core.charts import learning_rate as charts_module
    from core.diagnoses import lr_burst, lr_optimizers, lr_preview, lr_surfaces
    from core.diagnoses._kits import lr as _lr_kit

    for module in (learning_rate, lr_range, lr_schedules, lr_preview, lr_surfaces, lr_burst, lr_optimizers, _lr_kit,
                   charts_module):
        assert doctest.testmod(module).failed == 0, module.__name__


# ----------------------------------------------------------------------------- review findings (round 2)


def test_headline_never_recommends_a_rate_whose_schedule_runs_all_diverged():
    """Review finding 2: "Use adam at lr 2.74 (...), but every schedule run at that rate diverged"."""
    from dataclasses import replace

    setup = LabSetup()
    moons = load_data(setup.data, 0)
    rt = lr_range.run(moons, setup, lr_range.Config(num_steps=60, check_steps=0))
    rt = replace(rt, choice=lr_range.RateChoice("unchecked", "1x", 1.0, 100.0))  # as if the test had said 100
    tr = lr_schedules.run(moons, setup, lr_schedules.Config(lr=100.0, steps=30, seeds=1))
    assert all(not g.stable for g in tr.groups)  # core.rules: every run at 100 diverged
    v = learning_rate.recommend(rt, tr)
    assert v.kind == "problem" and v.text.startswith("No rate to recommend") and "Use adam" not in v.text


def test_page_labels_an_unchecked_rate_and_shows_display_tables():
    """Review findings 2 and 5: "Recommended (after the check)" with no check; raw column names,
    raw keys and grey None cells in the tables."""
    at = _page()
    at.number_input(key="learning_rate_rt_check").set_value(0).run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "Recommended (not checked)" in labels and "Recommended (after the check)" not in labels
    at.number_input(key="learning_rate_rt_check").set_value(200).run()
    at = _open(at, "Train with schedules")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    raw = {"first_diverged_at", "tail_train_loss", "steps_to_near_min", "final_val_loss"}
    assert not raw & set(table.columns) and "tail training loss" in table.columns
    assert "warmup_cosine" not in set(table["run"]) and "Warmup + cosine" in set(table["run"])
    assert set(table["first diverged at step"]) == {"–"}  # nothing diverged: a dash, not None
    assert str(table["tail training loss"].dtype) == "float64"  # no gaps: numbers stay numbers
    at = _open(at, "Adaptive optimizers")
    assert not at.exception, at.exception
    for frame in at.dataframe:
        assert not raw & set(frame.value.columns) and not frame.value.isna().any().any()


def test_log_axes_use_one_number_format():
    """Review finding 5: a log axis printed 0.000001 beside 1e-7 (d3's "~g")."""
    import json

    from core.charts import learning_rate as charts
    from core.diagnoses import lr_preview

    moons = load_data(LabSetup().data, 0)
    rt = lr_range.run(moons, LabSetup(), lr_range.Config(start_lr=1e-8, end_lr=1e-5, num_steps=60, check_steps=0))
    spec = json.dumps(charts.range_test_chart(rt).to_dict())
    assert '"format": ".1~e"' in spec and '"~g"' not in spec
    pv = lr_preview.run(None, LabSetup(), lr_preview.Config())
    assert '"format": ".1~e"' in json.dumps(charts.schedule_chart(pv, log_y=True).to_dict())
