"""Chart and table export: PNG, SVG, HTML and CSV bytes, and the file names they are saved under.

Rendering goes through vl-convert (Altair's offline engine), so export needs no browser and no
network. The first render in a process takes about half a second, the next ones ~40 ms.
"""
from __future__ import annotations

import io
import re

import altair as alt
import pandas as pd

FORMATS = ("png", "svg", "csv")
MIME = {"png": "image/png", "svg": "image/svg+xml", "csv": "text/csv", "html": "text/html"}


def chart_to_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    """Render a chart to PNG bytes (scale 2 for crisp slides)."""
    buf = io.BytesIO()
    chart.save(buf, format="png", scale_factor=scale)
    return buf.getvalue()


def chart_to_svg(chart: alt.TopLevelMixin) -> bytes:
    """Render a chart to SVG bytes."""
    buf = io.StringIO()
    chart.save(buf, format="svg")
    return buf.getvalue().encode("utf-8")


def chart_to_html(chart: alt.TopLevelMixin) -> bytes:
    """A standalone HTML page with vega inlined, so it opens offline."""
    buf = io.StringIO()
    chart.save(buf, format="html", inline=True)
    return buf.getvalue().encode("utf-8")


def chart_data(chart: alt.TopLevelMixin) -> pd.DataFrame:
    """The data a chart draws, as one table.

    Layered, concatenated and faceted charts may carry one DataFrame per layer; they are stacked
    with a `layer` column saying which layer each row came from (an index, or the layer's name).
    """
    frames = []
    for i, part in enumerate(_parts(chart)):
        data = getattr(part, "data", alt.Undefined)
        if isinstance(data, pd.DataFrame) and not any(data is f for _, f in frames):
            frames.append((getattr(part, "name", alt.Undefined), data))
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0][1].copy()
    return pd.concat(
        [f.assign(layer=name if isinstance(name, str) else str(i)) for i, (name, f) in enumerate(frames)],
        ignore_index=True,
    )


def _parts(chart) -> list:
    """The chart itself and every nested layer / concat / facet member, depth first."""
    out = [chart]
    for attr in ("layer", "hconcat", "vconcat", "concat"):
        for sub in getattr(chart, attr, None) or []:
            if not isinstance(sub, type(alt.Undefined)):
                out.extend(_parts(sub))
    spec = getattr(chart, "spec", alt.Undefined)
    if spec is not alt.Undefined and spec is not None and not isinstance(spec, dict):
        out.extend(_parts(spec))
    return out


def table_to_csv(frame: pd.DataFrame) -> bytes:
    """CSV bytes (UTF-8, no index) of a table."""
    return frame.to_csv(index=False).encode("utf-8")


def chart_bytes(chart: alt.TopLevelMixin, fmt: str) -> bytes:
    """Bytes of a chart in one of FORMATS (csv = the chart's data)."""
    if fmt == "png":
        return chart_to_png(chart)
    if fmt == "svg":
        return chart_to_svg(chart)
    if fmt == "html":
        return chart_to_html(chart)
    if fmt == "csv":
        return table_to_csv(chart_data(chart))
    raise ValueError(f"Unknown export format {fmt!r}.")


def file_name(page: str, chart: str, dataset: str, seed: int, ext: str) -> str:
    """A file name that says page, chart, dataset and seed.

    >>> file_name("stall", "loss curve", "my data.csv", 3, "png")
    'trainscope_stall_loss-curve_my-data_seed3.png'
    """
    stem = re.sub(r"\.csv$", "", dataset, flags=re.IGNORECASE)
    parts = [_slug(p) for p in ("trainscope", page, chart, stem)]
    return "_".join(parts) + f"_seed{seed}.{ext}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"
