"""AppTest runs of the app shell: home page, every built-in dataset, CSV uploads good and bad."""
import pytest
from streamlit.testing.v1 import AppTest

from core.data import BUILTIN_DATASETS

APP = "../app.py"  # relative to this test file

MESSY_CSV = (
    "id,name,colour,height,weight,species\n"
    + "".join(
        f"{i},person{i},{'red' if i % 3 else 'blue'},{150 + (i * 7) % 40},{'' if i % 17 == 0 else 50 + (i * 3) % 30},"
        f"{'cat' if (i * 7) % 40 > 18 else 'dog'}\n"
        for i in range(60)
    )
).encode()


def _app():
    return AppTest.from_file(APP, default_timeout=60)


def _text(at) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.info] + [m.value for m in at.error]
    parts += [m.value for m in at.subheader] + [m.value for m in at.caption]
    return "\n".join(str(p) for p in parts)


def test_home_default_shows_summary_scatter_and_cards():
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "TrainScope"
    assert "Dataset: moons" in _text(at)
    assert len(at.get("vega_lite_chart")) >= 2  # class counts + scatter
    summary = at.dataframe[0].value
    assert summary.set_index("what").loc["rows", "value"] == "400"
    assert at.sidebar.header[0].value == "Lab setup"


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_every_builtin_dataset_loads_on_home(name):
    at = _app().run()
    at.sidebar.selectbox(key="lab_dataset").set_value(name).run()
    assert not at.exception
    assert f"Dataset: {name}" in _text(at)
    assert not at.error


def _upload(at, name: str, blob: bytes):
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value((name, blob, "text/csv")).run()
    return at


def test_messy_csv_upload_shows_its_loading_notes():
    at = _upload(_app().run(), "people.csv", MESSY_CSV)
    assert not at.exception, at.exception
    text = _text(at)
    assert "Dataset: people" in text
    assert "missing" in text.lower()  # rows with an empty weight were dropped, with a note
    assert "colour" in text  # the text feature was one-hot encoded, with a note
    assert "name" in text  # the id-like text column was dropped, with a note
    summary = at.dataframe[0].value.set_index("what")
    assert summary.loc["task", "value"] == "classification" and summary.loc["classes", "value"] == "2"
    # Choosing another target updates the summary: height has 40 distinct values -> regression.
    at.sidebar.selectbox(key="lab_target").set_value("height").run()
    assert not at.exception
    assert at.dataframe[0].value.set_index("what").loc["task", "value"] == "regression"


def test_malformed_csv_shows_a_message_and_the_app_keeps_working():
    at = _upload(_app().run(), "broken.csv", b"\x00\x01\x02\xff\xfe garbage \x00")
    assert not at.exception
    assert at.error, "a bad file must produce a visible message"
    # The app still works: switch back to a built-in dataset.
    at.sidebar.selectbox(key="lab_dataset").set_value("iris").run()
    assert not at.exception and "Dataset: iris" in _text(at)


def test_home_has_a_card_linking_to_every_diagnosis():
    from ui.pages import DIAGNOSES

    at = _app().run()
    links = at.get("page_link")
    assert len(links) == len(DIAGNOSES)
    assert {link.proto.page for link in links} == {p.path.split("/")[-1][:-3] for p in DIAGNOSES}


def test_show_chart_builds_a_memoized_chart_once_per_inputs():
    def script():
        import altair as alt
        import pandas as pd
        import streamlit as st

        from ui.export import show_chart

        st.session_state.setdefault("builds", 0)

        def build():
            st.session_state["builds"] += 1
            return alt.Chart(pd.DataFrame({"x": [1, 2]})).mark_point().encode(x="x:Q")

        show_chart(build, "test", "memo", memo=(st.session_state.get("inputs", 0),))

    at = AppTest.from_function(script, default_timeout=30).run()
    at.run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 1
    assert at.session_state["builds"] == 1  # the rerun reused the chart
    at.session_state["inputs"] = 1
    at.run()
    assert at.session_state["builds"] == 2  # new inputs, new chart


def test_sidebar_says_which_device_runs(monkeypatch):
    import torch

    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception
    device = at.sidebar.selectbox(key="lab_device")
    captions = " ".join(c.value for c in at.sidebar.caption)
    if torch.cuda.is_available():
        assert "cuda" in device.options or "CUDA GPU" in device.options
    else:
        assert "torch sees no GPU" in captions
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    at.run()
    assert any("CUDA" in o for o in at.sidebar.selectbox(key="lab_device").options)
    assert "from 2e+07 parameter-rows per update" in " ".join(c.value for c in at.sidebar.caption)


def test_an_out_of_range_number_is_clamped_and_said_not_kept_silently():
    # issue 17: seed 99999999999 and lr 1e-9 (minimum 1e-5) only got a red border while the old
    # result stayed on screen as if it were current.
    from tests.conftest import plain
    from ui.state import SETUP_KEY

    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.sidebar.number_input(key="lab_seed").set_value(99_999_999_999).run()
    assert not at.exception
    assert at.session_state[SETUP_KEY].seed == 2**31 - 1
    assert any("99999999999" in plain(w.value) and "2147483647" in plain(w.value) for w in at.sidebar.warning)
    at.switch_page("app_pages/stall.py").run()
    at.number_input(key="stall_lr").set_value(1e-9).run()
    assert not at.exception
    assert any("1e-09 is outside 1e-05" in plain(w.value) and "uses 1e-05" in plain(w.value) for w in at.warning)
