"""Altair chart builders shared by the pages: they read results, they never compute.

One module per diagnosis lives beside this file; the builders here are the common shapes
(curves over steps, a heat map with paths, a bar of counts) and the dataset views of the home page.

Column names can come from users (`time:s`, `Sepal.Length`, `price[$]`, `it's`), and Vega-Lite
reads `.`, `[`, `]`, `\\` and quotes in a field name as a path into nested data, while Altair reads
`:` in a shorthand string as a type. So every builder here maps each column whose name is not plain
to a safe field (`_f0`, `_f1`, ...) with `safe_frame`, encodes with explicit `field=`/`type=`
(never a shorthand string built from a name), and shows the real name as the axis, legend and
tooltip title. The frame remembers the mapping (`FIELDS_ATTR`), so exports write the real names.
"""
from __future__ import annotations

import re

import altair as alt
import numpy as np
import pandas as pd

# Colour-blind-safe categorical palette (Okabe-Ito), so racers and runs stay apart in print too.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
WIDTH = 560
HEIGHT = 300
# Streamlit's theme sizes a single view with autosize "fit": its `height` is then the whole
# chart, title, axes and legends included, and the plot shrinks as they grow (issue 17: a bar
# chart with rotated labels kept a 68 px plot). "fit-x" still fits the column's width but makes
# `height` the plot's own height.
PLOT_HEIGHT_KEPT = alt.AutoSizeParams(type="fit-x", contains="padding")

FIELDS_ATTR = "trainscope_fields"  # DataFrame.attrs key: safe field name -> the column's real name
# A name Vega-Lite and Altair both take verbatim: a letter, then letters, digits, "_" or spaces.
# Helper columns a builder adds start with "_", so they never collide with a kept name.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_ ]{0,99}")
_TYPES = {"Q": "quantitative", "N": "nominal", "O": "ordinal", "T": "temporal"}


def is_plain(name) -> bool:
    """True when `name` can be a Vega-Lite field and an Altair shorthand as it is."""
    return isinstance(name, str) and _PLAIN.fullmatch(name) is not None


def safe_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """`frame` with every non-plain column renamed to a safe field, and real name -> field.

    Plain names are kept, so page builders can add encodings on their own columns. Columns are
    renamed by position, so even duplicate names each get their own field (the lookup returns
    the first). The frame's attrs remember field -> real name for the exports (core.export).

    >>> data, fields = safe_frame(pd.DataFrame({"step": [1], "time:s": [2.0]}))
    >>> list(data.columns), fields["time:s"], data.attrs[FIELDS_ATTR]
    (['step', '_f1'], '_f1', {'_f1': 'time:s'})
    """
    real = [str(c) for c in frame.columns]
    renamed = [c if is_plain(c) else f"_f{i}" for i, c in enumerate(real)]
    fields: dict[str, str] = {}
    for name, field in zip(real, renamed):
        fields.setdefault(name, field)
    if renamed == list(frame.columns) and all(map(is_plain, real)):
        return frame, fields
    data = frame.copy(deep=False)
    data.columns = renamed
    data.attrs = {**frame.attrs, FIELDS_ATTR: {f: r for f, r in zip(renamed, real) if not is_plain(r)}}
    return data, fields


def _field(fields: dict[str, str], name: str) -> str:
    """The safe field of a column (a KeyError names the missing column)."""
    try:
        return fields[str(name)]
    except KeyError:
        raise KeyError(f"the chart's table has no column {name!r}") from None


def _tip(fields: dict[str, str], name: str, kind: str, **kw) -> alt.Tooltip:
    """A tooltip on the column `name`, titled with its real name."""
    return alt.Tooltip(field=_field(fields, name), type=_TYPES[kind], title=expr_safe(name), **kw)


def expr_safe(text) -> str:
    """A channel or tooltip title that Vega-Lite may paste into a Vega expression.

    Vega-Lite writes tooltip titles, and the titles in a mark's ARIA description, into expression
    strings; it escapes quotes there but not backslashes, so `back\\slash\\` breaks the chart and
    `\\frac` turns into a form feed. Backslashes are doubled here and line breaks (invalid inside an
    expression string) become spaces. Axis and legend titles are plain text: give them the real
    name (`axis=alt.Axis(title=name)`, `legend=alt.Legend(title=name)`), as the builders here do.
    """
    return re.sub(r"[\r\n]+", " ", str(text)).replace("\\", "\\\\")


def _pos(channel, field: str, title, kind: str = "quantitative", axis: dict | None = None, **kw):
    """An x or y channel on a safe field: the axis shows `title` as it is."""
    return channel(field=field, type=kind, title=expr_safe(title), axis=alt.Axis(title=str(title), **(axis or {})), **kw)


def _colour(field: str, title, kind: str = "nominal", **kw) -> alt.Color:
    """A colour channel on a safe field: the legend shows `title` as it is."""
    return alt.Color(field=field, type=kind, title=expr_safe(title), legend=alt.Legend(title=str(title)), **kw)


def _kind(frame: pd.DataFrame, name: str) -> str:
    """Q for numbers, N for anything else (tooltips over columns the caller did not type)."""
    # By position: column labels may be numbers, and a duplicated name encodes its first column.
    column = frame.iloc[:, [str(c) for c in frame.columns].index(str(name))]
    return "Q" if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column) else "N"


def curves(
    frame: pd.DataFrame,
    x: str,
    y: str,
    color: str | None = None,
    title: str = "",
    log_y: bool = False,
    x_title: str | None = None,
    y_title: str | None = None,
    log_x: bool = False,
) -> alt.Chart:
    """Lines of `y` against `x`, one per value of `color`, with a hover tooltip.

    Non-positive values are dropped from a log axis (a log scale cannot show them); NaN and inf
    are always dropped so a diverged run still draws the part before it diverged.
    """
    data = frame[np.isfinite(frame[y].astype(float))]
    if log_y:
        data = data[data[y] > 0]
    if log_x:
        data = data[data[x] > 0]
    data, f = safe_frame(data)
    enc = dict(
        x=_pos(alt.X, _field(f, x), x_title or x, scale=alt.Scale(type="log") if log_x else alt.Undefined),
        y=_pos(alt.Y, _field(f, y), y_title or y, scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False)),
        tooltip=([_tip(f, color, "N")] if color else []) + [_tip(f, x, "Q"), _tip(f, y, "Q")],
    )
    if color:
        enc["color"] = _colour(_field(f, color), color, scale=alt.Scale(range=PALETTE))
    return alt.Chart(data, title=title).mark_line(clip=True).encode(**enc).properties(width=WIDTH, height=HEIGHT)


def heatmap(
    grid: pd.DataFrame,
    x: str = "x",
    y: str = "y",
    value: str = "loss",
    title: str = "",
    x_title: str | None = None,
    y_title: str | None = None,
    scheme: str = "viridis",
    size: int = 360,
) -> alt.Chart:
    """A heat map of a regular grid (columns x, y, value), brighter = larger, as in the lecture."""
    xs = np.sort(grid[x].unique())
    ys = np.sort(grid[y].unique())
    dx = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
    dy = float(ys[1] - ys[0]) if len(ys) > 1 else 1.0
    data, f = safe_frame(grid)
    # Cells overlap by 2% so anti-aliasing leaves no hairlines between them. The helper columns
    # start with "_": exports leave them out (core.export).
    data = data.assign(_x2=grid[x].to_numpy() + 1.02 * dx, _y2=grid[y].to_numpy() + 1.02 * dy)
    fx, fy, fv = _field(f, x), _field(f, y), _field(f, value)
    return (
        alt.Chart(data, title=title)
        .mark_rect()
        .encode(
            # No grid lines: they would draw over the cells.
            x=_pos(alt.X, fx, x_title or x, scale=alt.Scale(domain=[xs[0], xs[-1] + dx], nice=False),
                   axis={"grid": False}),
            x2=alt.X2(field="_x2"),
            y=_pos(alt.Y, fy, y_title or y, scale=alt.Scale(domain=[ys[0], ys[-1] + dy], nice=False),
                   axis={"grid": False}),
            y2=alt.Y2(field="_y2"),
            color=_colour(fv, value, kind="quantitative", scale=alt.Scale(scheme=scheme)),
            tooltip=[_tip(f, x, "Q"), _tip(f, y, "Q"), _tip(f, value, "Q")],
        )
        .properties(width=size, height=size)
    )


def paths(frame: pd.DataFrame, x: str = "x", y: str = "y", color: str = "optimizer", order: str = "step") -> alt.LayerChart:
    """Optimizer paths as lines with a point per step, one colour per `color` value."""
    data, f = safe_frame(frame)
    base = alt.Chart(data).encode(
        x=_pos(alt.X, _field(f, x), x),
        y=_pos(alt.Y, _field(f, y), y),
        order=alt.Order(field=_field(f, order), type="quantitative"),
        color=_colour(_field(f, color), color, scale=alt.Scale(range=PALETTE)),
        tooltip=[_tip(f, color, "N"), _tip(f, order, "Q"), _tip(f, x, "Q"), _tip(f, y, "Q")]
        + ([_tip(f, "loss", "Q")] if "loss" in frame else []),
    )
    return base.mark_line(strokeWidth=2, clip=True) + base.mark_point(size=14, filled=True, clip=True)


def markers(points: pd.DataFrame, x: str = "x", y: str = "y", label: str = "label", shape: str = "diamond") -> alt.LayerChart:
    """Labelled markers (critical points, start, saddle) drawn over a map."""
    data, f = safe_frame(points)
    base = alt.Chart(data).encode(
        x=_pos(alt.X, _field(f, x), x),
        y=_pos(alt.Y, _field(f, y), y),
        tooltip=[_tip(f, label, "N"), _tip(f, x, "Q"), _tip(f, y, "Q")],
    )
    dots = base.mark_point(shape=shape, size=120, filled=True, color="white", stroke="black", strokeWidth=1)
    text = base.mark_text(align="left", dx=8, dy=-8, color="white", fontWeight="bold").encode(
        text=alt.Text(field=_field(f, label), type="nominal"))
    return dots + text


def scatter_2d(frame: pd.DataFrame, x: str, y: str, color: str, title: str = "", quantitative_color: bool = False) -> alt.Chart:
    """A scatter of two columns coloured by the target (nominal for classes, a ramp for regression).

    Any column name works, however odd (`time:s`, `Sepal.Length`, `price[$]`): the chart encodes
    safe fields and shows the real names as titles.
    """
    kind = "quantitative" if quantitative_color else "nominal"
    scale = alt.Scale(scheme="viridis") if quantitative_color else alt.Scale(range=PALETTE)
    data, f = safe_frame(frame)
    tips = []
    for name in dict.fromkeys(str(c) for c in frame.columns[:8]):
        tips.append(_tip(f, name, _kind(frame, name)))
    return (
        alt.Chart(data, title=title)
        .mark_circle(size=28, opacity=0.8)
        .encode(
            x=_pos(alt.X, _field(f, x), x),
            y=_pos(alt.Y, _field(f, y), y),
            color=_colour(_field(f, color), color, kind=kind, scale=scale),
            tooltip=tips,
        )
        .properties(width=WIDTH, height=380)
    )


def bars(frame: pd.DataFrame, x: str, y: str, title: str = "", color: str | None = None) -> alt.Chart:
    """Vertical bars of `y` per category `x`."""
    data, f = safe_frame(frame)
    enc = dict(
        x=_pos(alt.X, _field(f, x), x, kind="nominal", sort=None),
        y=_pos(alt.Y, _field(f, y), y),
        tooltip=[_tip(f, x, "N"), _tip(f, y, "Q")],
    )
    if color:
        enc["color"] = _colour(_field(f, color), color, scale=alt.Scale(range=PALETTE))
    return (alt.Chart(data, title=title).mark_bar().encode(**enc)
            .properties(width=WIDTH, height=180, autosize=PLOT_HEIGHT_KEPT))


def histogram(values: np.ndarray, title: str = "", x_title: str = "value", bins: int = 40) -> alt.Chart:
    """A histogram of precomputed bins (counts computed with numpy so the CSV export has them)."""
    counts, edges = np.histogram(values, bins=bins)
    frame = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts})
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=_pos(alt.X, "bin_start", x_title, bin="binned"),
            x2=alt.X2(field="bin_end"),
            y=alt.Y(field="count", type="quantitative", title="count"),
            tooltip=[alt.Tooltip(field=c, type="quantitative") for c in ("bin_start", "bin_end", "count")],
        )
        .properties(width=WIDTH, height=180, autosize=PLOT_HEIGHT_KEPT)
    )


def shaded_windows(windows: pd.DataFrame, start: str = "start", end: str = "end", label: str = "kind") -> alt.Chart:
    """Translucent bands over an x range (stall windows, warmup phases), coloured by `label`."""
    data, f = safe_frame(windows)
    return (
        alt.Chart(data)
        .mark_rect(opacity=0.18)
        .encode(
            x=_pos(alt.X, _field(f, start), start),
            x2=alt.X2(field=_field(f, end)),
            color=_colour(_field(f, label), label, scale=alt.Scale(range=PALETTE[3:])),
            tooltip=[_tip(f, label, "N"), _tip(f, start, "Q"), _tip(f, end, "Q")],
        )
    )
