"""Altair chart builders shared by the pages: they read results, they never compute.

One module per diagnosis lives beside this file; the builders here are the common shapes
(curves over steps, a heat map with paths, a bar of counts) and the dataset views of the home page.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

# Colour-blind-safe categorical palette (Okabe-Ito), so racers and runs stay apart in print too.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
WIDTH = 560
HEIGHT = 300


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
    enc = dict(
        x=alt.X(f"{x}:Q", title=x_title or x, scale=alt.Scale(type="log") if log_x else alt.Undefined),
        y=alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False)),
        tooltip=[c for c in (color, x, y) if c],
    )
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color, scale=alt.Scale(range=PALETTE))
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
    # Cells overlap by 2% so anti-aliasing leaves no hairlines between them.
    data = grid.assign(_x2=grid[x] + 1.02 * dx, _y2=grid[y] + 1.02 * dy)
    return (
        alt.Chart(data, title=title)
        .mark_rect()
        .encode(
            # No grid lines: they would draw over the cells.
            x=alt.X(f"{x}:Q", title=x_title or x, scale=alt.Scale(domain=[xs[0], xs[-1] + dx], nice=False),
                    axis=alt.Axis(grid=False)),
            x2="_x2:Q",
            y=alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(domain=[ys[0], ys[-1] + dy], nice=False),
                    axis=alt.Axis(grid=False)),
            y2="_y2:Q",
            color=alt.Color(f"{value}:Q", title=value, scale=alt.Scale(scheme=scheme)),
            tooltip=[x, y, value],
        )
        .properties(width=size, height=size)
    )


def paths(frame: pd.DataFrame, x: str = "x", y: str = "y", color: str = "optimizer", order: str = "step") -> alt.LayerChart:
    """Optimizer paths as lines with a point per step, one colour per `color` value."""
    base = alt.Chart(frame).encode(
        x=f"{x}:Q",
        y=f"{y}:Q",
        order=f"{order}:Q",
        color=alt.Color(f"{color}:N", title=color, scale=alt.Scale(range=PALETTE)),
        tooltip=[color, order, x, y] + (["loss"] if "loss" in frame else []),
    )
    return base.mark_line(strokeWidth=2, clip=True) + base.mark_point(size=14, filled=True, clip=True)


def markers(points: pd.DataFrame, x: str = "x", y: str = "y", label: str = "label", shape: str = "diamond") -> alt.LayerChart:
    """Labelled markers (critical points, start, saddle) drawn over a map."""
    base = alt.Chart(points).encode(x=f"{x}:Q", y=f"{y}:Q", tooltip=[label, x, y])
    dots = base.mark_point(shape=shape, size=120, filled=True, color="white", stroke="black", strokeWidth=1)
    text = base.mark_text(align="left", dx=8, dy=-8, color="white", fontWeight="bold").encode(text=f"{label}:N")
    return dots + text


def scatter_2d(frame: pd.DataFrame, x: str, y: str, color: str, title: str = "", quantitative_color: bool = False) -> alt.Chart:
    """A scatter of two columns coloured by the target (nominal for classes, a ramp for regression)."""
    kind = "Q" if quantitative_color else "N"
    scale = alt.Scale(scheme="viridis") if quantitative_color else alt.Scale(range=PALETTE)
    return (
        alt.Chart(frame, title=title)
        .mark_circle(size=28, opacity=0.8)
        .encode(
            x=alt.X(f"{x}:Q", title=x),
            y=alt.Y(f"{y}:Q", title=y),
            color=alt.Color(f"{color}:{kind}", title=color, scale=scale),
            tooltip=list(frame.columns[:8]),
        )
        .properties(width=WIDTH, height=380)
    )


def bars(frame: pd.DataFrame, x: str, y: str, title: str = "", color: str | None = None) -> alt.Chart:
    """Vertical bars of `y` per category `x`."""
    enc = dict(x=alt.X(f"{x}:N", title=x, sort=None), y=alt.Y(f"{y}:Q", title=y), tooltip=[x, y])
    if color:
        enc["color"] = alt.Color(f"{color}:N", scale=alt.Scale(range=PALETTE))
    return alt.Chart(frame, title=title).mark_bar().encode(**enc).properties(width=WIDTH, height=240)


def histogram(values: np.ndarray, title: str = "", x_title: str = "value", bins: int = 40) -> alt.Chart:
    """A histogram of precomputed bins (counts computed with numpy so the CSV export has them)."""
    counts, edges = np.histogram(values, bins=bins)
    frame = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts})
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("bin_start:Q", title=x_title, bin="binned"),
            x2="bin_end:Q",
            y=alt.Y("count:Q", title="count"),
            tooltip=["bin_start", "bin_end", "count"],
        )
        .properties(width=WIDTH, height=240)
    )


def shaded_windows(windows: pd.DataFrame, start: str = "start", end: str = "end", label: str = "kind") -> alt.Chart:
    """Translucent bands over an x range (stall windows, warmup phases), coloured by `label`."""
    return (
        alt.Chart(windows)
        .mark_rect(opacity=0.18)
        .encode(
            x=f"{start}:Q",
            x2=f"{end}:Q",
            color=alt.Color(f"{label}:N", title=label, scale=alt.Scale(range=PALETTE[3:])),
            tooltip=[label, start, end],
        )
    )
