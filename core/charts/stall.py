"""Charts of the Gradient stall page: they read a core.diagnoses.stall Result, never compute."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.charts import PALETTE, PLOT_HEIGHT_KEPT, WIDTH, heatmap

LECTURE_SECTION = "2.2.2"

KIND_COLORS = alt.Scale(domain=["critical point", "oscillation", "small steps", "unclear"],
                        range=[PALETTE[3], PALETTE[1], PALETTE[5], "#999999"])
STEP_AXIS = dict(tickMinStep=1, format="d")  # steps are whole numbers: no 0.5 ticks on a short run
SHORT_RUN = 12  # a step axis spanning at most this many steps gets one tick per step (Vega's
# tickMinStep alone still put 5 ticks, two of them labelled "2", on a 1-3 axis)
SIGN_COLORS = alt.Scale(domain=["negative", "zero", "positive"], range=[PALETTE[3], "#999999", PALETTE[0]])
PANEL_HEIGHT = 170


def _windows(stalls: pd.DataFrame, labels: bool) -> alt.LayerChart | alt.Chart:
    """Shaded stall windows over the whole panel height, labelled S1, S2, ... on the top panel."""
    data = stalls[["stall", "start", "end", "kind", "evidence", "grad_median", "point_kind"]].assign(
        mid=(stalls["start"] + stalls["end"]) / 2)
    bands = alt.Chart(data).mark_rect(opacity=0.18).encode(
        x="start:Q", x2="end:Q",
        color=alt.Color("kind:N", title="stall", scale=KIND_COLORS),
        tooltip=["stall", "kind", alt.Tooltip("evidence:N", title="judged by"), "start", "end",
                 alt.Tooltip("grad_median:Q", format=".2e", title="median |g|"),
                 alt.Tooltip("point_kind:N", title="Hessian says")],
    )
    if not labels:
        return bands
    text = alt.Chart(data).mark_text(dy=2, baseline="top", fontWeight="bold").encode(
        x="mid:Q", y=alt.value(2), text="stall:N", color=alt.Color("kind:N", scale=KIND_COLORS, legend=None),
    )
    return bands + text


def _step_x(steps: pd.DataFrame) -> alt.X:
    """The step axis of every panel: the whole run's range, whole-number ticks."""
    lo, hi = int(steps["step"].min()), int(steps["step"].max())
    values = list(range(lo, hi + 1)) if hi - lo <= SHORT_RUN else alt.Undefined
    return alt.X("step:Q", title="step", axis=alt.Axis(labelOverlap="greedy", values=values, **STEP_AXIS),
                 scale=alt.Scale(nice=False, domain=[lo, hi]))


def _panel(steps: pd.DataFrame, y: str, title: str, log_y: bool, color: str) -> alt.Chart:
    data = steps[["step", y]].replace([np.inf, -np.inf], np.nan).dropna()
    if log_y:
        data = data[data[y] > 0]
    scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    return alt.Chart(data).mark_line(color=color, clip=True).encode(
        x=_step_x(steps),
        y=alt.Y(f"{y}:Q", title=title, scale=scale),
        tooltip=["step", alt.Tooltip(f"{y}:Q", format=".4g")],
    )


def training_chart(result, log_y: bool = False) -> alt.VConcatChart:
    """Loss, gradient norm and gradient cosine against step, stall windows shaded and labelled on
    every panel (colour = the stall's kind)."""
    steps, stalls = result.curve, result.stalls
    loss = _panel(steps, "loss", "training loss", log_y, PALETTE[0])
    grad = _panel(steps, "grad_norm", "gradient norm |g|", log_y, PALETTE[2])
    panels = [loss, grad]
    if "grad_cos" in steps and steps["grad_cos"].notna().any():
        panels.append(_panel(steps, "grad_cos", "cos(g_t, g_t−1)", False, PALETTE[4]).encode(
            y=alt.Y("grad_cos:Q", title="cos(g_t, g_t−1)", scale=alt.Scale(domain=[-1, 1]))))
    if len(stalls):
        panels = [_windows(stalls, labels=(i == 0)) + p for i, p in enumerate(panels)]
    title = "Loss, gradient norm and gradient cosine per step (shaded: stalls)"
    return alt.vconcat(*[p.properties(width=WIDTH + 120, height=PANEL_HEIGHT) for p in panels], title=title
                       ).resolve_scale(color="shared")


def _symlog_ticks(lo: float, hi: float, tol: float) -> list[float]:
    """Powers of ten from the zero band out to the data's extent, both signs, and 0."""
    top = max(abs(lo), abs(hi), tol)
    powers = [10.0**k for k in range(int(np.floor(np.log10(tol))) + 1, int(np.ceil(np.log10(top))) + 1)]
    return [-p for p in reversed(powers) if -p >= lo * 1.0001] + [0.0] + [p for p in powers if p <= hi * 1.0001]


def spectrum_chart(result, point: str) -> alt.Chart:
    """Histogram of the exact Hessian eigenvalues at one classified point on a symlog axis
    (log-spaced bins each side of the zero band), bars coloured by sign."""
    data = result.histogram[result.histogram["point"] == point]
    row = result.points.set_index("label").loc[point]
    tol = float(row["tolerance"]) or 1e-12
    title = (f"Hessian eigenvalues at {point}: {row['neg_share']:.1%} negative, "
             f"minimum ratio {row['min_ratio']:.1%} positive")
    ticks = _symlog_ticks(float(data["bin_start"].min()), float(data["bin_end"].max()), tol)
    return alt.Chart(data, title=title).mark_bar(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("bin_start:Q", title="eigenvalue (symmetric log scale; grey = zero within tolerance)",
                scale=alt.Scale(type="symlog", constant=tol, nice=False),
                axis=alt.Axis(values=ticks, format="~g", labelOverlap="greedy")),
        x2="bin_end:Q",
        y=alt.Y("count:Q", title="count"),
        y2=alt.datum(0),
        color=alt.Color("sign:N", title="sign", scale=SIGN_COLORS),
        tooltip=["sign", alt.Tooltip("bin_start:Q", format=".3g"), alt.Tooltip("bin_end:Q", format=".3g"), "count"],
    ).properties(width=WIDTH, height=200, autosize=PLOT_HEIGHT_KEPT)  # fitted into 240 px, the plot kept 121


def escape_chart(result) -> alt.Chart:
    """L(theta + t u) along the escape direction u at each saddle, with the quadratic model dashed."""
    data = result.escape.melt(id_vars=["point", "t"], value_vars=["loss", "quadratic"], var_name="curve",
                              value_name="value")
    data["curve"] = data["curve"].map({"loss": "loss along u", "quadratic": "quadratic model"})
    return alt.Chart(data, title="Loss along the escape direction u: L(θ + t·u)").mark_line(clip=True).encode(
        x=alt.X("t:Q", title="t (distance along u)"),
        y=alt.Y("value:Q", title="training loss", scale=alt.Scale(zero=False)),
        color=alt.Color("point:N", title="point", scale=alt.Scale(range=PALETTE)),
        strokeDash=alt.StrokeDash("curve:N", title="curve", scale=alt.Scale(
            domain=["loss along u", "quadratic model"], range=[[1, 0], [5, 4]])),
        tooltip=["point", "curve", alt.Tooltip("t:Q", format=".3f"), alt.Tooltip("value:Q", format=".5g")],
    ).properties(width=WIDTH, height=220, autosize=PLOT_HEIGHT_KEPT)


def toy_chart(cells: pd.DataFrame, marks: pd.DataFrame, valley: pd.DataFrame, point) -> alt.LayerChart:
    """The lecture's error surface (log scale: brighter = larger), its critical points, the valley
    w1*w2 = 1, the chosen (w1, w2) and the arrow (escape direction or negative gradient)."""
    base = heatmap(cells, value="log_loss", title="L(w1, w2) = (1 − w1·w2)², log10 scale",
                   x_title="w1", y_title="w2", size=380)
    line = alt.Chart(valley).mark_line(color="white", strokeDash=[3, 3]).encode(
        x="x:Q", y="y:Q", detail="branch:N", order="x:Q")
    crit = alt.Chart(marks).mark_point(shape="diamond", size=110, filled=True, color="white", stroke="black").encode(
        x="x:Q", y="y:Q", tooltip=["label", "kind", "x", "y"])
    crit_text = alt.Chart(marks).mark_text(align="left", dx=7, dy=-7, color="white", fontWeight="bold").encode(
        x="x:Q", y="y:Q", text="label:N")
    here = pd.DataFrame({"x": [point.w[0]], "y": [point.w[1]], "kind": [point.kind], "loss": [point.loss]})
    dot = alt.Chart(here).mark_point(size=160, filled=True, color=PALETTE[1], stroke="black").encode(
        x="x:Q", y="y:Q", tooltip=["x", "y", "kind", "loss"])
    layers = [base, line, crit, crit_text, dot]
    if len(point.arrow):
        shaft = alt.Chart(point.arrow).mark_rule(color=PALETTE[1], strokeWidth=3).encode(
            x="x:Q", y="y:Q", x2="x2:Q", y2="y2:Q", tooltip=["what"])
        head = alt.Chart(point.arrow).mark_point(shape="triangle", size=160, filled=True, color=PALETTE[1]).encode(
            x="x2:Q", y="y2:Q", angle=alt.Angle("angle:Q", scale=None), tooltip=["what"])
        layers += [shaft, head]
    return alt.layer(*layers)


MIN_RATIO_KINDS = alt.Scale(domain=["local minimum", "saddle point", "flat (degenerate)", "local maximum"],
                            range=[PALETTE[0], PALETTE[3], "#999999", PALETTE[4]])


def minimum_ratio_chart(result) -> alt.LayerChart:
    """The lecture's figure (2.2.2): training loss against minimum ratio (share of positive Hessian
    eigenvalues) at every critical point found, shape = width, colour = what the Hessian says;
    a dashed rule at ratio 1 (a strict local minimum)."""
    pts = result.points.assign(width_label=result.points["width"].map(lambda w: f"{w} hidden units"))
    n = len(pts)
    title = alt.Title(f"Minimum ratio vs training loss at {n} critical points (lecture {LECTURE_SECTION})",
                      subtitle="minimum ratio = share of positive Hessian eigenvalues; 1 = a strict local minimum")
    dots = alt.Chart(pts).mark_point(
        size=70, filled=True, opacity=0.8).encode(
        x=alt.X("min_ratio:Q", title="minimum ratio (positive eigenvalues / all)", scale=alt.Scale(domain=[0, 1.02], nice=False)),
        y=alt.Y("loss:Q", title="training loss at the critical point", scale=alt.Scale(zero=False)),
        color=alt.Color("kind:N", title="Hessian says", scale=MIN_RATIO_KINDS),
        shape=alt.Shape("width_label:N", title="width"),
        tooltip=["width", "seed", "n_params", alt.Tooltip("loss:Q", format=".4g"),
                 alt.Tooltip("grad_norm:Q", format=".2e", title="|g|"),
                 alt.Tooltip("min_ratio:Q", format=".3f", title="minimum ratio"),
                 alt.Tooltip("neg_share:Q", format=".3f", title="negative share"),
                 alt.Tooltip("zero_share:Q", format=".3f", title="zero share"), "kind"],
    )
    rule = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(strokeDash=[4, 4], color="black").encode(x="x:Q")
    return alt.layer(rule, dots, title=title).properties(width=WIDTH, height=320)
