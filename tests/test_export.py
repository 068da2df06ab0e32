import io

import altair as alt
import numpy as np
import pandas as pd
import pytest

from core import charts
from core.export import chart_bytes, chart_data, chart_to_html, file_name


@pytest.fixture(scope="module")
def layered():
    a = pd.DataFrame({"step": range(5), "loss": [1.0, 0.5, 0.25, 0.2, 0.1], "run": "a"})
    windows = pd.DataFrame({"start": [1], "end": [3], "kind": ["stall"]})
    return charts.shaded_windows(windows) + charts.curves(a, "step", "loss", color="run")


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


def test_csv_holds_every_layer_data(layered):
    frame = chart_data(layered)
    assert set(frame["layer"]) == {"0", "1"}
    csv = pd.read_csv(io.BytesIO(chart_bytes(layered, "csv")))
    assert len(csv) == 6 and {"start", "end", "step", "loss", "run"} <= set(csv.columns)
    single = charts.bars(pd.DataFrame({"class": ["a", "b"], "count": [3, 4]}), "class", "count")
    assert chart_data(single).to_dict("list") == {"class": ["a", "b"], "count": [3, 4]}


def test_curves_drop_non_finite_and_non_positive_on_log_axis():
    frame = pd.DataFrame({"step": range(4), "loss": [1.0, np.nan, 0.0, np.inf]})
    assert chart_data(charts.curves(frame, "step", "loss")).to_dict("list") == {"step": [0, 2], "loss": [1.0, 0.0]}
    assert len(chart_data(charts.curves(frame, "step", "loss", log_y=True))) == 1


def test_file_names_say_page_chart_dataset_and_seed():
    assert file_name("stall", "loss curve", "Sales Data.CSV", 12, "svg") == "trainscope_stall_loss-curve_sales-data_seed12.svg"
    assert file_name("home", "scatter", "moons", 0, "png") == "trainscope_home_scatter_moons_seed0.png"


def test_unknown_format_is_refused(layered):
    with pytest.raises(ValueError):
        chart_bytes(layered, "gif")
