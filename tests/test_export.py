import csv
import io

import numpy as np
import pandas as pd
import pytest

from core import charts
from core.export import FORMULA_STARTS, chart_bytes, chart_data, chart_to_html, file_name, neutralise, table_to_csv


@pytest.fixture(scope="module")
def layered():
    a = pd.DataFrame({"step": range(5), "loss": [1.0, 0.5, 0.25, 0.2, 0.1], "run": "a"})
    windows = pd.DataFrame({"start": [1], "end": [3], "kind": ["stall"]})
    return charts.shaded_windows(windows) + charts.curves(a, "step", "loss", color="run")


def _cells(raw: bytes) -> list[list[str]]:
    """The CSV as a spreadsheet reads it: rows of text cells, header first."""
    return list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))


def test_png_is_a_real_image_of_sensible_size(layered):
    png = chart_bytes(layered, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    # Scale factor 2 on a 560-px-wide chart: well over 1000 px wide, and not a blank stub.
    assert width > 1000 and height > 400 and len(png) > 5000


def test_svg_and_offline_html(layered):
    svg = chart_bytes(layered, "svg").decode()
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg
    html = chart_to_html(layered).decode()
    assert "cdn.jsdelivr" not in html and "vega" in html


def test_csv_holds_every_layer_without_internal_columns(layered):
    rows = _cells(chart_bytes(layered, "csv"))
    header, body = rows[0], rows[1:]
    assert set(header) == {"start", "end", "kind", "step", "loss", "run"} and len(body) == 6
    # No bookkeeping column: which layer a row came from shows in which columns it fills.
    assert "layer" not in header
    single = charts.bars(pd.DataFrame({"class": ["a", "b"], "count": [3, 4]}), "class", "count")
    assert chart_data(single).to_dict("list") == {"class": ["a", "b"], "count": [3, 4]}


def test_integer_columns_stay_integers_across_layers(layered):
    rows = _cells(chart_bytes(layered, "csv"))
    col = {name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])}
    # Stacking layers pads `step` with blanks; pandas alone would turn it into 0.0, 1.0, ...
    assert [v for v in col["step"] if v] == ["0", "1", "2", "3", "4"]
    assert [v for v in col["start"] if v] == ["1"] and [v for v in col["end"] if v] == ["3"]
    assert [v for v in col["loss"] if v] == ["1.0", "0.5", "0.25", "0.2", "0.1"]
    # A float column of whole numbers (a batch size that went through numpy) is written as integers.
    sizes = pd.DataFrame({"batch_size": np.array([8.0, 64.0, 512.0]), "seconds": [0.5, 0.25, 0.125]})
    assert _cells(table_to_csv(sizes))[1:] == [["8", "0.5"], ["64", "0.25"], ["512", "0.125"]]


def test_heatmap_csv_has_its_grid_but_not_the_cell_ends():
    grid = pd.DataFrame({"x": [0.0, 1.0, 0.0, 1.0], "y": [0.0, 0.0, 1.0, 1.0], "loss": [1.5, 2.5, 3.5, 4.5]})
    frame = chart_data(charts.heatmap(grid))
    assert list(frame.columns) == ["x", "y", "loss"] and frame["loss"].tolist() == [1.5, 2.5, 3.5, 4.5]


def test_curves_drop_non_finite_and_non_positive_on_log_axis():
    frame = pd.DataFrame({"step": range(4), "loss": [1.0, np.nan, 0.0, np.inf]})
    assert chart_data(charts.curves(frame, "step", "loss")).to_dict("list") == {"step": [0, 2], "loss": [1.0, 0.0]}
    assert len(chart_data(charts.curves(frame, "step", "loss", log_y=True))) == 1


HOSTILE_CELLS = ["=1+1", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3", "=cmd|' /C calc'!A0", "\t=1", "\r=1",
                 "＝1+1", "-", "+", "@", "-inf"]


def test_formula_cells_and_headers_are_neutralised():
    frame = pd.DataFrame({"=cmd|' /C calc'!A0": HOSTILE_CELLS, "@head": range(len(HOSTILE_CELLS)),
                          "plain": ["a", "b=c", "x-1", "", "ok", "1", "2", "3", "4", "5", "6", "7"]})
    rows = _cells(table_to_csv(frame))
    assert rows[0] == ["'=cmd|' /C calc'!A0", "'@head", "plain"]
    # The cells come back as the original text behind one quote, which spreadsheets show as text.
    assert [r[0] for r in rows[1:]] == ["'" + c for c in HOSTILE_CELLS]
    assert [r[2] for r in rows[1:]] == ["a", "b=c", "x-1", "", "ok", "1", "2", "3", "4", "5", "6", "7"]
    for row in rows:
        for cell in row:
            # Every cell left starting with a formula character is a plain number.
            assert not cell.startswith(FORMULA_STARTS) or float(cell) == float(cell)


def test_plain_negative_numbers_round_trip():
    frame = pd.DataFrame({"value": [-1.5, -2e-9, 3.0, -7.25], "as text": ["-1.5", "+2", "-3e-4", "-.5"],
                          "count": [-3, 0, 2, -1]})
    back = pd.read_csv(io.BytesIO(table_to_csv(frame)))
    assert back["value"].tolist() == [-1.5, -2e-9, 3.0, -7.25]
    assert back["count"].tolist() == [-3, 0, 2, -1]
    assert back["as text"].tolist() == [-1.5, 2.0, -3e-4, -0.5]
    assert neutralise(-4) == -4 and neutralise("-4") == "-4" and neutralise("-x") == "'-x"


def test_hostile_column_in_a_chart_csv_is_neutralised():
    frame = pd.DataFrame({"=cmd|' /C calc'!A0": [1.0, 2.0], "y": [3.0, 4.0], "label": ["=1+1", "ok"]})
    rows = _cells(chart_bytes(charts.scatter_2d(frame, "=cmd|' /C calc'!A0", "y", "label"), "csv"))
    assert rows == [["'=cmd|' /C calc'!A0", "y", "label"], ["1", "3", "'=1+1"], ["2", "4", "ok"]]


def test_file_names_say_the_charts_own_inputs():
    assert file_name("stall", "loss curve", "Sales Data.CSV", 12, "svg") == "trainscope_stall_loss-curve_sales-data_seed12.svg"
    assert file_name("home", "scatter", "moons", 0, "png") == "trainscope_home_scatter_moons_seed0.png"
    # A chart that reads no dataset (a toy surface) or draws no random numbers says so by omission.
    assert file_name("saddle", "paths", "monkey saddle", None, "png") == "trainscope_saddle_paths_monkey-saddle.png"
    assert file_name("learning_rate", "schedules", None, None, "csv") == "trainscope_learning-rate_schedules.csv"


def test_file_names_from_hostile_dataset_names_are_safe():
    for hostile in ["../../etc/passwd", "a:b\\c", "x" * 300 + ".csv", "🤖.csv", "CON", "   ", "数据 集.csv"]:
        name = file_name("home", "scatter", hostile, 1, "png")
        stem = name[: -len(".png")]
        assert name.endswith("_seed1.png") and len(name) < 220
        assert "/" not in name and "\\" not in name and ":" not in name and ".." not in stem
    assert file_name("home", "scatter", "数据 集.csv", 1, "png") == "trainscope_home_scatter_数据-集_seed1.png"


def test_unknown_format_is_refused(layered):
    with pytest.raises(ValueError):
        chart_bytes(layered, "gif")
