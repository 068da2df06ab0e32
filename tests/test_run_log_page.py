"""AppTest of the 'Your training run' page: the example, uploads in several formats, bad files,
re-mapping a column, and names that must stay literal."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from core.runlog import load_log
from core.runlog_examples import EXAMPLES, SPIKE_STEPS, plain_csv, run_scenario, trainer_state
from tests.conftest import plain

APP = "../app.py"
PAGE = "app_pages/run_log.py"


@pytest.fixture(scope="module")
def logs():
    spikes = run_scenario("spikes")
    steps = load_log(spikes.events, "events.out.tfevents.spikes").steps
    return {"events": spikes.events, "trainer_state": trainer_state(steps), "csv": plain_csv(steps), "steps": steps}


def _page():
    at = AppTest.from_file(APP, default_timeout=180).run()
    return at.switch_page(PAGE).run()


def _upload(at, files):
    at.file_uploader(key="runlog_files").set_value(files).run()
    return at


def _texts(at) -> str:
    parts = [e.value for kind in ("success", "info", "warning", "error", "text", "markdown", "caption", "subheader")
             for e in at.get(kind)]
    return plain("\n".join(str(p) for p in parts))


def _charts(at):
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def test_example_shows_a_verdict_charts_and_the_schedule():
    at = _page()
    assert not at.exception
    assert at.title[0].value == "Your training run"
    text = _texts(at)
    assert "linear warmup over 200 steps from 3e-05 to 0.003, then cosine to 0 at step 2,000" in text
    assert len(_charts(at)) >= 1
    assert not at.error


def test_uploaded_trainer_state_finds_the_spikes(logs):
    at = _upload(_page(), ("trainer_state.json", logs["trainer_state"], "application/json"))
    assert not at.exception and not at.error
    text = _texts(at)
    steps = ", ".join(f"{s:,}" for s in SPIKE_STEPS)
    assert f"3 loss spikes (at steps {steps})" in text
    assert "Hugging Face trainer_state.json" in text
    spikes = next(df.value for df in at.dataframe if "ratio" in df.value.columns)
    assert spikes["step"].tolist() == list(SPIKE_STEPS)
    assert at.metric[4].value == "3"  # the Spikes metric agrees with the table and the verdict
    spec = _charts(at)[0]
    assert "vconcat" in spec  # loss, gradient norm and learning rate panels


def test_two_runs_are_compared_side_by_side(logs):
    at = _upload(_page(), [("events.out.tfevents.1.host", logs["events"], "application/octet-stream"),
                           ("run_b.csv", logs["csv"], "text/csv")])
    assert not at.exception and not at.error
    text = _texts(at)
    assert "2 runs side by side" in text
    table = next(df.value for df in at.dataframe if "loss_at_horizon" in df.value.columns)
    assert table["run"].tolist() == ["events.out.tfevents.1.host", "run_b.csv"]
    assert table["spikes"].tolist() == [3, 3]
    # the same log in two formats: the same loss at the same step, so no winner may be claimed
    assert "No clear difference" in text
    assert len(_charts(at)) >= 3  # the overlays and the picked run's chart
    at.selectbox(key="runlog_pick").set_value(1).run()
    assert not at.exception and "run_b.csv · CSV" in _texts(at)


def test_bad_files_get_messages_and_the_good_one_still_shows(logs):
    at = _upload(_page(), [("events.out.tfevents.bad", b"\x00\x01 not an event file" * 10, "application/octet-stream"),
                           ("trainer_state.json", b'{"log_history": [{"step": 1', "application/json"),
                           ("empty.csv", b"step,loss\n", "text/csv"),
                           ("ok.csv", logs["csv"], "text/csv")])
    assert not at.exception
    errors = plain(" ".join(e.value for e in at.error))
    assert "not a TensorBoard event file" in errors
    assert "not valid JSON" in errors and "cut short" in errors
    assert "no rows" in errors
    assert "3 loss spikes" in _texts(at)


def test_missing_loss_column_can_be_picked_and_names_stay_literal(logs):
    steps = logs["steps"]
    odd = "**objective** <b>x</b> [link](http://e.com) $y$"
    body = f"step,{odd},lr\n" + "\n".join(f"{s},{l:.6g},{r:.6g}" for s, l, r in zip(steps["step"], steps["loss"], steps["lr"]))
    at = _upload(_page(), ("my_*run*.csv", body.encode(), "text/csv"))
    assert not at.exception
    assert "No training-loss series" in plain(" ".join(e.value for e in at.error))
    key = next(s.key for s in at.selectbox if s.key and s.key.startswith("runlog_map_") and s.key.endswith("_loss"))
    at.selectbox(key=key).set_value(odd).run()
    assert not at.exception and not at.error
    assert "3 loss spikes" in _texts(at)
    assert any(odd in t.value for t in at.text)  # read notes name the column literally (st.text)
    for spec in _charts(at):  # the user's names never become a field or a shorthand
        assert odd not in json.dumps(spec.get("encoding", {})) and "objective" not in json.dumps(
            [layer.get("encoding", {}) for layer in spec.get("layer", [])])


def test_settings_and_example_are_bound_to_the_url():
    """Issue 17: the page's settings live in the address (ui.url_state.bound)."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["runlog_example"] = EXAMPLES["saddle"]  # Streamlit binds a selectbox by its label
    at.query_params["runlog_window"] = "300"
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.selectbox(key="runlog_example").value == "saddle"
    assert at.number_input(key="runlog_window").value == 300
    text = _texts(at)
    assert "stall window 300 steps" in text
    assert "Stalled at steps 0–" in text and "with the gradient ~0" in text


# --------------------------------------------------------------------------- review finding 5 (wording, colours, legend)
def test_a_short_log_says_no_smoothing_rather_than_over_1_points():
    body = "step,loss\n" + "\n".join(f"{s},{1 / (1 + s):.6g}" for s in range(40))
    at = _upload(_page(), ("short.csv", body.encode(), "text/csv"))
    assert not at.exception and not at.error
    text = _texts(at)
    assert "no smoothing" in text and "over 1 points" not in text


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))


def _hue_gap(a: str, b: str) -> float:
    import colorsys

    ha, hb = (colorsys.rgb_to_hsv(*_rgb(c))[0] * 360 for c in (a, b))
    return min(abs(ha - hb), 360 - abs(ha - hb))


def test_chart_colours_match_the_caption_and_the_learning_rate_legend_is_not_clipped():
    """Review finding 5: orange spike markers under a caption saying 'Red triangles'; a peach
    'critical point' band next to an orange 'oscillation' one; 'fitted: Warmup + linear d...'."""
    from core.charts.run_log import training_chart
    from core.diagnoses.run_log import run

    from tests.test_runlog import _gn40_entries, _hf_state

    res = run(load_log(_hf_state(_gn40_entries()), "trainer_state.json"))  # a spike, a stall, a fitted schedule
    assert len(res.spikes) and len(res.stalls) and res.schedule is not None
    spec = training_chart(res, True).to_dict()
    layers = spec["vconcat"][0]["layer"]
    triangles = next(layer for layer in layers if layer["mark"].get("shape") == "triangle-up")
    r, g, b = _rgb(triangles["mark"]["color"])
    assert r > 0.7 and g < 0.25 * r and b < 0.25 * r  # red, as the page's caption says
    source = open(PAGE, encoding="utf-8").read()
    assert "Red triangles: spikes" in source
    bands = next(layer for layer in layers if layer["mark"]["type"] == "rect")["encoding"]["color"]["scale"]
    colours = dict(zip(bands["domain"], bands["range"]))
    assert _hue_gap(colours["critical point"], colours["oscillation"]) > 30  # not two oranges
    assert "red: gradient ~0, yellow: gradient not small" in source  # the caption names them
    lr = spec["vconcat"][2]["encoding"]["color"]
    label = lr["scale"]["domain"][1]
    assert label == "fitted: " + res.schedule.label
    assert lr["legend"]["labelLimit"] >= 7 * len(label)  # ~7 px a character at Vega's 10 px labels


def test_a_diverged_upload_shows_the_loss_before_the_blow_up():
    """Review finding (cos_div): the 'Final loss' card showed 5.559, the mean of the climb itself."""
    from tests.test_runlog import _hf_state, _settled_then_nan_entries
    entries = _settled_then_nan_entries()
    at = _upload(_page(), ("trainer_state_cos_div.json", _hf_state(entries), "application/json"))
    assert not at.exception
    card = next(m for m in at.metric if m.label in ("Final loss", "Loss before the blow-up"))
    assert card.label == "Loss before the blow-up"
    settled = sorted(e["loss"] for e in entries if 1500 <= e["step"] < 1800)
    assert float(card.value) == pytest.approx(settled[len(settled) // 2], rel=0.03)
    assert "left out" in card.help
