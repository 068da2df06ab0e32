"""Chart and table export: PNG, SVG, HTML and CSV bytes, and the file names they are saved under.

Rendering goes through vl-convert (Altair's offline engine), so export needs no browser and no
network. The first render in a process takes about half a second, the next ones ~40 ms.

CSV is written for people who open it in a spreadsheet: columns carry their real names (charts
draw user columns under safe field names, see core.charts.safe_frame), helper columns are left out,
integer columns stay integers, and a text cell or header that a spreadsheet would run as a formula
(`=`, `+`, `-`, `@`, tab, carriage return) is prefixed with `'` (OWASP's advice on CSV injection).
"""
from __future__ import annotations

import io
import json
import re

import altair as alt
import numpy as np
import pandas as pd

from core.charts import FIELDS_ATTR

FORMATS = ("png", "svg", "csv")
MIME = {"png": "image/png", "svg": "image/svg+xml", "csv": "text/csv", "html": "text/html"}

# Characters that make Excel, LibreOffice or Google Sheets read a cell as a formula (also their
# full-width forms, which Excel accepts in East Asian locales).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_EXACT_INT = 2**53  # floats beyond this are not exact integers


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


class _ScriptSafeJSON(json.JSONEncoder):
    """JSON that can sit inside a <script> element: <, > and & inside strings become \\u escapes.

    A column named `</script><script>...` would otherwise close the page's script and run its own.
    JSON's own punctuation never holds these characters, so only string contents change, and a
    JSON parser reads back the same values.
    """

    def iterencode(self, o, _one_shot=False):
        for chunk in super().iterencode(o, _one_shot):
            yield chunk.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The exported page's "..." menu keeps its PNG/SVG saves but not "Open in Vega Editor", which
# would send the chart and its data to a public web site.
_EMBED_OPTIONS = {"actions": {"export": True, "source": False, "compiled": False, "editor": False}}


def chart_to_html(chart: alt.TopLevelMixin) -> bytes:
    """A standalone HTML page with vega inlined, so it opens offline; names cannot inject script."""
    buf = io.StringIO()
    chart.save(buf, format="html", inline=True, json_kwds={"cls": _ScriptSafeJSON}, embed_options=_EMBED_OPTIONS)
    return buf.getvalue().encode("utf-8")


def chart_data(chart: alt.TopLevelMixin) -> pd.DataFrame:
    """The data a chart draws, as one table with the columns' real names.

    Layered, concatenated and faceted charts may carry one DataFrame per layer; they are stacked
    (a column a layer lacks is empty there). Helper columns (names starting with "_", such as a
    heat map's cell ends) are left out; integer columns stay integers.

    >>> from core.charts import bars
    >>> chart_data(bars(pd.DataFrame({"price[$]": ["a"], "n": [3]}), "price[$]", "n")).to_dict("list")
    {'price[$]': ['a'], 'n': [3]}
    """
    frames = []
    for part in _parts(chart):
        data = getattr(part, "data", alt.Undefined)
        if isinstance(data, pd.DataFrame) and not any(data is f for f in frames):
            frames.append(data)
    readable = [_readable(f) for f in frames]
    if not readable:
        return pd.DataFrame()
    if len(readable) == 1:
        return _integers(readable[0])
    integer = set()
    for f in readable:
        integer |= {c for c in f.columns if _integral(f[c])}
    for f in readable:
        integer -= {c for c in f.columns if not _integral(f[c])}
    out = pd.concat(readable, ignore_index=True)
    for c in integer:
        out[c] = out[c].astype("Int64")
    return out


def _readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A chart's frame with its real column names and without helper columns."""
    fields = frame.attrs.get(FIELDS_ATTR, {})
    keep = [i for i, c in enumerate(frame.columns) if c in fields or not str(c).startswith("_")]
    out = frame.iloc[:, keep].copy()
    out.columns = [fields.get(c, c) for c in out.columns]
    out.attrs = {}
    return out


def _integral(column: pd.Series) -> bool:
    """Integer dtype, or floats that are all whole numbers (a NaN-padded step column)."""
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return False
    if pd.api.types.is_integer_dtype(column):
        return True
    values = column.to_numpy(dtype=float, na_value=np.nan)
    values = values[~np.isnan(values)]
    return len(values) > 0 and bool(np.all(np.isfinite(values)) and np.all(np.abs(values) < _EXACT_INT)
                                    and np.all(values == np.round(values)))


def _integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-number float columns as nullable integers, so the CSV says 3, not 3.0."""
    out = frame.copy()
    for i, c in enumerate(out.columns):
        column = out.iloc[:, i]
        if _integral(column) and not pd.api.types.is_integer_dtype(column):
            out.isetitem(i, column.astype("Int64"))
    return out


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


def neutralise(cell):
    """A text cell a spreadsheet would run as a formula, made inert with a leading `'`.

    Plain numbers written as text ("-3.5", "+2", "1e-3") are left as they are.

    >>> neutralise("=1+1"), neutralise("@SUM(A1)"), neutralise("-3.5"), neutralise(-2), neutralise("ok")
    ("'=1+1", "'@SUM(A1)", '-3.5', -2, 'ok')
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def table_to_csv(frame: pd.DataFrame) -> bytes:
    """CSV bytes (UTF-8, no index) of a table, safe to open in a spreadsheet.

    Text cells and headers that start a formula are neutralised (`neutralise`); number columns
    are written as numbers, whole numbers without a decimal point.
    """
    out = _integers(frame)
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            out.isetitem(i, column.astype(object).map(neutralise))
    out.columns = [neutralise(str(c)) for c in out.columns]
    # CRLF rows (RFC 4180) also make the writer quote a field holding a lone carriage return,
    # which would otherwise split the row in a spreadsheet.
    return out.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


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


def file_name(page: str, chart: str, dataset: str | None, seed: int | None, ext: str) -> str:
    """A file name made of the chart's own inputs: page, chart, dataset and seed.

    Pass dataset=None for a chart that does not read a dataset (a toy surface, a schedule) and
    seed=None for one that draws no random numbers; they are then left out of the name.

    >>> file_name("stall", "loss curve", "my data.csv", 3, "png")
    'trainscope_stall_loss-curve_my-data_seed3.png'
    >>> file_name("saddle", "paths", None, None, "svg")
    'trainscope_saddle_paths.svg'
    """
    parts = ["trainscope", page, chart]
    if dataset is not None:
        parts.append(re.sub(r"\.csv$", "", dataset, flags=re.IGNORECASE))
    stem = "_".join(_slug(p) for p in parts)
    return stem + (f"_seed{seed}" if seed is not None else "") + f".{ext}"


def _slug(text: str) -> str:
    """Letters and digits (any script) joined by "-", at most 60 characters."""
    slug = re.sub(r"[\W_]+", "-", str(text)).strip("-").lower()[:60].strip("-")
    return slug or "x"
