"""AppTest runs of the home page and the Lab setup sidebar: data checks, URL state, literal names."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from ui.verdict import escape_markdown

APP = "../app.py"  # relative to this test file


def _app():
    return AppTest.from_file(APP, default_timeout=60)


def _texts(elements) -> str:
    """The elements' text as the browser shows it (Markdown escapes and word joiners removed)."""
    raw = "\n".join(str(e.value) for e in elements)
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", raw).replace("\u2060", "")


def _sources(elements) -> str:
    """The elements' Markdown source, escapes and all."""
    return "\n".join(str(e.value) for e in elements)


def _upload(at, name: str, blob: bytes):
    at.sidebar.selectbox(key="lab_dataset").set_value("Upload CSV").run()
    at.sidebar.file_uploader(key="upload").set_value((name, blob, "text/csv")).run()
    return at


def titanic_csv(n=400) -> bytes:
    rng = np.random.default_rng(0)
    sex = rng.choice(["male", "female"], n)
    survived = (rng.uniform(size=n) < np.where(sex == "female", 0.74, 0.19)).astype(int)
    df = pd.DataFrame({"sex": sex, "age": rng.uniform(1, 70, n).round(0),
                       "alive": np.where(survived, "yes", "no"), "survived": survived})
    return df.to_csv(index=False).encode()


def test_a_leaking_column_is_flagged_and_one_click_leaves_it_out():
    at = _upload(_app().run(), "titanic.csv", titanic_csv())
    assert not at.exception, at.exception
    warning = _texts(at.warning)
    assert "'alive' alone predicts the target 'survived' with balanced accuracy 1.000" in warning
    button = at.button(key="home_leave_out_0")
    assert "alive" in button.label
    button.click().run()
    assert not at.exception
    assert at.sidebar.multiselect(key="lab_drop").value == ["alive"]
    assert "alive" not in _texts(at.warning)
    table = at.dataframe[1].value  # the feature table: alive's one-hot columns are gone
    assert not table["feature"].str.startswith("alive").any()
    assert any("Left out as you asked" in str(i.value) for i in at.info)


def test_thousands_target_is_regression_and_the_feature_table_shows_missing_shares():
    rng = np.random.default_rng(1)
    price = rng.uniform(10_000, 2_000_000, 150).round(2)
    rooms = rng.integers(1, 9, 150).astype(object)
    rooms[:15] = ""  # 10% missing
    body = "".join(f'{r},{rng.normal():.3f},"{p:,.2f}"\n' for r, p in zip(rooms, price))
    at = _upload(_app().run(), "houses.csv", ("rooms,noise,price\n" + body).encode())
    assert not at.exception, at.exception
    summary = at.dataframe[0].value.set_index("what")
    assert summary.loc["task", "value"] == "regression" and summary.loc["rows", "value"] == "135"
    table = at.dataframe[1].value.set_index("feature")
    assert list(table.columns) == ["min", "max", "mean", "std", "missing"]
    assert table.loc["rooms", "missing"] == 0.1 and table.loc["noise", "missing"] == 0.0
    assert table.loc["rooms", "min"] == 1 and table.loc["rooms", "max"] == 8
    assert any("thousands separators" in str(i.value) for i in at.info)


def test_an_imbalanced_target_gets_the_notice():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(190, int), np.ones(10, int)]
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "fraud": np.where(y, "yes", "no")})
    at = _upload(_app().run(), "fraud.csv", df.to_csv(index=False).encode())
    assert not at.exception
    notice = _texts(at.info)
    assert "'yes' has 10 of the 200 rows (5.0%; an even split would give 50.0%)" in notice
    assert "Always answering 'no' already scores 95.0% accuracy" in notice


def test_url_parameters_restore_the_sidebar():
    at = _app()
    at.query_params.update({"lab_dataset": "breast cancer", "lab_seed": "7", "lab_hidden": "8, 4",
                            "lab_activation": "relu", "lab_batch_norm": "true"})
    at.run()
    assert not at.exception
    setup = at.session_state["lab_setup"]
    assert setup.data.builtin == "breast_cancer" and setup.seed == 7
    assert setup.model.hidden == (8, 4) and setup.model.activation == "relu" and setup.model.batch_norm
    assert "Dataset: breast_cancer" in _texts(at.subheader)


def test_a_url_naming_an_upload_that_is_gone_says_so_instead_of_switching_data():
    at = _app()
    at.query_params.update({"lab_dataset": "Upload CSV", "lab_file": "pets.csv", "lab_target": "species"})
    at.run()
    assert not at.exception
    error = _texts(at.error)
    assert "The file 'pets.csv' named in this page's address is no longer loaded" in error
    assert "up to 50 MB" in error
    assert not at.subheader or "Dataset" not in _texts(at.subheader)  # no other data shown instead
    assert at.session_state["lab_setup"].data.builtin is None
    # Without a file name in the URL: the plain prompt, with the size limit, shown once.
    fresh = _app()
    fresh.query_params["lab_dataset"] = "Upload CSV"
    fresh.run()
    assert "No file is loaded yet" in _texts(fresh.error) and "50 MB" in _texts(fresh.error)
    assert len(fresh.error) == 1 and not fresh.sidebar.error


def test_a_refused_file_is_reported_once_on_the_page():
    at = _upload(_app().run(), "broken.csv", b"a,b\n1,2\n")
    assert not at.exception
    assert len(at.error) == 1 and not at.sidebar.error
    assert "at least 10" in at.error[0].value


def test_hostile_file_and_column_names_are_shown_literally():
    name = "**bold** [x](https://evil.example) $x^2$ :red[r].csv"
    col = "[click](https://evil.example)"
    df = pd.DataFrame({col: [f"id{i}" for i in range(30)], "x": np.arange(30) % 7, "y": np.arange(30) % 2})
    at = _upload(_app().run(), name, df.to_csv(index=False).encode())
    assert not at.exception
    assert f"(like ids or names): '{col}'." in _texts(at.info)  # the note quotes the column's name
    assert _sources(at.subheader).count("Dataset: " + escape_markdown(name)) == 1
    assert f"Dataset: {name}" in _texts(at.subheader)  # what the reader sees: the name itself
    for source in (_sources(at.subheader), _sources(at.info), _sources(at.warning)):
        # No Markdown construct survives: every bracket, star and dollar comes escaped.
        assert not re.search(r"(?<!\\)[\[\]*$]", source), source


def test_negative_hidden_sizes_are_refused():
    at = _app().run()
    at.sidebar.text_input(key="lab_hidden").set_value("16,-8").run()
    assert not at.exception
    assert "negative" in at.sidebar.error[0].value
    assert at.session_state["lab_setup"].model.hidden == (16, 16)
    at.sidebar.text_input(key="lab_hidden").set_value("32-8").run()
    assert not at.sidebar.error and at.session_state["lab_setup"].model.hidden == (32, 8)


def test_a_sampled_scatter_says_so():
    """Review: on a 150,000-row upload the home scatter drew 5,000 rows with nothing saying so
    while the sidebar said every row is used."""
    from core.data import load_builtin
    from core.overview import MAX_SCATTER_POINTS, project_2d

    big = load_builtin("moons", n_samples=MAX_SCATTER_POINTS + 1000)
    proj = project_2d(big, seed=0)
    assert len(proj.frame) == MAX_SCATTER_POINTS < big.n_rows
    assert f"{MAX_SCATTER_POINTS:,} of the {big.n_rows:,} rows" in proj.sample_note
    assert project_2d(load_builtin("moons", n_samples=400), seed=0).sample_note == ""
