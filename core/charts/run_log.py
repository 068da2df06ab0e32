"""Charts of the 'Your training run' page: they read core.diagnoses.run_log results, never compute.

Every field name here is the project's own (step, value, series, run, kind); run and series
names a user chose travel only as data values (legend labels, tooltips), never as fields.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.charts import PALETTE, WIDTH

PANEL_HEIGHT = 170
# Streamlit fits a single view's title, axes and legend into `height` ("fit"), which squashes the
# plot; fitting only the width keeps the plot area at `height` (as core/charts/scaling.py does).
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
# Stall shading: hues far apart so the pale bands stay distinguishable (red vs yellow, not two
# oranges), named so in the page's caption; spikes and the divergence line are the same red.
RED = "#D62728"
KIND_COLORS = alt.Scale(domain=["critical point", "oscillation", "small steps", "unclear", "plateau"],
                        range=[RED, "#F0C000", "#17BECF", "#8E44AD", "#999999"])
BAND_OPACITY = 0.22
LOSS_SERIES_COLORS = {"loss": "#9DB9D3", "smoothed loss": PALETTE[0], "eval_loss": PALETTE[1]}  # red is for alarms
SERIES_TITLES = {"loss": "logged loss", "smoothed loss": "smoothed loss", "eval_loss": "evaluation loss",
                 "grad_norm": "gradient norm", "lr": "learning rate"}


# ",d": whole steps with thousands separators (1,500; 1,000,000). A bare "," lets Vega pick a
# precision from the tick spacing and print 1.5e+3.
_AXIS = alt.Axis(labelOverlap="greedy", format=",d")


def _x(title: str = "step") -> alt.X:
    return alt.X(field="step", type="quantitative", title=title, scale=alt.Scale(nice=False), axis=_AXIS)


def _y(title: str, log_y: bool) -> alt.Y:
    return alt.Y(field="value", type="quantitative", title=title,
                 scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False))


def _positive(frame: pd.DataFrame, log_y: bool) -> pd.DataFrame:
    return frame[frame["value"] > 0] if log_y else frame


def _bands(result) -> alt.Chart | None:
    """Shaded stall spans."""
    if not len(result.stalls):
        return None
    data = result.stalls[["stall", "start", "end", "kind", "grad_median"]]
    return alt.Chart(data).mark_rect(opacity=BAND_OPACITY).encode(
        x=alt.X(field="start", type="quantitative", title="step", axis=_AXIS), x2=alt.X2(field="end"),
        color=alt.Color(field="kind", type="nominal", title="stall", scale=KIND_COLORS),
        tooltip=[alt.Tooltip(field="stall", type="nominal"), alt.Tooltip(field="kind", type="nominal"),
                 alt.Tooltip(field="start", type="quantitative", format=","),
                 alt.Tooltip(field="end", type="quantitative", format=","),
                 alt.Tooltip(field="grad_median", type="quantitative", title="median |g|", format=".3g")])


def _divergence_rule(result) -> alt.Chart | None:
    if result.divergence is None:
        return None
    data = pd.DataFrame({"step": [result.divergence.step], "what": ["diverged here"]})
    return alt.Chart(data).mark_rule(color=RED, strokeWidth=2).encode(
        x=alt.X(field="step", type="quantitative", title="step", axis=_AXIS),
        tooltip=[alt.Tooltip(field="what", type="nominal"), alt.Tooltip(field="step", type="quantitative", format=",")])


def _layer(*charts):
    """Layers with their own colour scales (stall kinds and loss series must not share one)."""
    charts = [c for c in charts if c is not None]
    return alt.layer(*charts).resolve_scale(color="independent") if len(charts) > 1 else charts[0]


def loss_panel(result, log_y: bool = False) -> alt.LayerChart | alt.Chart:
    """Logged loss (light), smoothed loss (the stall detector's), evaluation loss, stall bands,
    spikes (red points, with the rate at that step) and the divergence step."""
    data = _positive(result.curve[result.curve["series"].isin(["loss", "smoothed loss", "eval_loss"])], log_y)
    present = [s for s in LOSS_SERIES_COLORS if s in set(data["series"])]
    lines = alt.Chart(data).mark_line(clip=True, strokeWidth=1.2).encode(
        x=_x(), y=_y("loss", log_y),
        color=alt.Color(field="series", type="nominal", title="series",
                        scale=alt.Scale(domain=present, range=[LOSS_SERIES_COLORS[s] for s in present])),
        detail=alt.Detail(field="series", type="nominal"),
        tooltip=[alt.Tooltip(field="series", type="nominal"), alt.Tooltip(field="step", type="quantitative", format=","),
                 alt.Tooltip(field="value", type="quantitative", format=".4g")])
    spikes = None
    if len(result.spikes):
        sp = _positive(result.spikes.rename(columns={"loss": "value"})[["step", "value", "ratio", "lr"]], log_y)
        spikes = alt.Chart(sp).mark_point(color=RED, size=70, filled=True, shape="triangle-up").encode(
            x=_x(), y=_y("loss", log_y),
            tooltip=[alt.Tooltip(field="step", type="quantitative", format=","),
                     alt.Tooltip(field="value", type="quantitative", title="loss", format=".4g"),
                     alt.Tooltip(field="ratio", type="quantitative", title="x smoothed loss", format=".3g"),
                     alt.Tooltip(field="lr", type="quantitative", title="learning rate", format=".3g")])
    return _layer(_bands(result), lines, spikes, _divergence_rule(result))


def grad_panel(result, log_y: bool = False) -> alt.LayerChart | alt.Chart | None:
    """Gradient norm with the suggested clipping threshold and the stall bands."""
    data = _positive(result.curve[result.curve["series"] == "grad_norm"], log_y)
    if not len(data):
        return None
    line = alt.Chart(data).mark_line(clip=True, color=PALETTE[2], strokeWidth=1.2).encode(
        x=_x(), y=_y("gradient norm |g|", log_y),
        tooltip=[alt.Tooltip(field="step", type="quantitative", format=","),
                 alt.Tooltip(field="value", type="quantitative", title="|g|", format=".4g")])
    clip = None
    if result.clip is not None:
        clip = alt.Chart(pd.DataFrame({"value": [result.clip], "what": ["suggested clipping threshold"]})).mark_rule(
            strokeDash=[5, 4], color="black").encode(
            y=alt.Y(field="value", type="quantitative"),
            tooltip=[alt.Tooltip(field="what", type="nominal"), alt.Tooltip(field="value", type="quantitative", format=".3g")])
    return _layer(_bands(result), line, clip, _divergence_rule(result))


def lr_panel(result) -> alt.LayerChart | alt.Chart | None:
    """Logged learning rate and the schedule fitted to it (dashed), on a linear axis: a schedule
    that decays to 0 reads better there than on a log axis."""
    logged = result.curve[result.curve["series"] == "lr"]
    if not len(logged):
        return None
    name = "fitted: " + result.schedule.label if result.schedule is not None else "fitted"
    fitted = result.fitted.rename(columns={"lr": "value"}).assign(series=name)
    data = pd.concat([logged.assign(series="logged"), fitted], ignore_index=True)
    return alt.Chart(data).mark_line(clip=True).encode(
        x=_x(), y=alt.Y(field="value", type="quantitative", title="learning rate", axis=alt.Axis(format="~g")),
        # Below the panel, where the family's full name has room (a right-hand legend clipped
        # "fitted: Warmup + linear d..." at 1400 x 900).
        color=alt.Color(field="series", type="nominal", title="learning rate",
                        scale=alt.Scale(domain=["logged", name], range=[PALETTE[4], "black"]),
                        legend=alt.Legend(orient="bottom", direction="horizontal", labelLimit=400)),
        strokeDash=alt.StrokeDash(field="series", type="nominal", legend=None,
                                  scale=alt.Scale(domain=["logged", name], range=[[1, 0], [5, 4]])),
        strokeWidth=alt.StrokeWidth(field="series", type="nominal", legend=None,
                                    scale=alt.Scale(domain=["logged", name], range=[3.5, 1.2])),
        tooltip=[alt.Tooltip(field="series", type="nominal"), alt.Tooltip(field="step", type="quantitative", format=","),
                 alt.Tooltip(field="value", type="quantitative", format=".4g")])


def training_chart(result, log_y: bool = False) -> alt.VConcatChart:
    """Loss, gradient norm and learning rate of one run, stacked on one step axis."""
    panels = [p for p in (loss_panel(result, log_y), grad_panel(result, log_y), lr_panel(result)) if p is not None]
    title = "Loss, gradient norm and learning rate (shaded: stalls; triangles: spikes; dashed: fitted schedule)"
    return alt.vconcat(*[p.properties(width=WIDTH + 160, height=PANEL_HEIGHT) for p in panels],
                       title=title).resolve_scale(color="independent", x="shared")


def gap_chart(result) -> alt.LayerChart:
    """Training loss (smoothed, at the evaluation steps) vs evaluation loss, with the best
    evaluation step and the step from which the gap stays open."""
    ev = result.evals
    data = pd.concat([pd.DataFrame({"step": ev["step"], "series": "training loss (smoothed)", "value": ev["train"]}),
                      pd.DataFrame({"step": ev["step"], "series": "evaluation loss", "value": ev["eval"]})],
                     ignore_index=True)
    lines = alt.Chart(data).mark_line(point=True, clip=True).encode(
        x=_x(), y=_y("loss", False),
        color=alt.Color(field="series", type="nominal", title="series", scale=alt.Scale(range=[PALETTE[3], PALETTE[0]])),
        tooltip=[alt.Tooltip(field="series", type="nominal"), alt.Tooltip(field="step", type="quantitative", format=","),
                 alt.Tooltip(field="value", type="quantitative", format=".4g")])
    marks = []
    g = result.gap
    if g is not None:
        rules = [("lowest evaluation loss", g.best_step)]
        if g.opens_at is not None:
            rules.append(("gap stays open from here", g.opens_at))
        marks.append(alt.Chart(pd.DataFrame(rules, columns=["what", "step"])).mark_rule(strokeDash=[4, 4]).encode(
            x=alt.X(field="step", type="quantitative"),
            color=alt.Color(field="what", type="nominal", title="marks", scale=alt.Scale(range=["#555555", PALETTE[1]])),
            tooltip=[alt.Tooltip(field="what", type="nominal"), alt.Tooltip(field="step", type="quantitative", format=",")]))
    return alt.layer(lines, *marks, title="Training vs evaluation loss").resolve_scale(color="independent").properties(
        width=WIDTH + 160, height=260, autosize=FIT_X)


def overlay_chart(frame: pd.DataFrame, title: str, y_title: str, log_y: bool = False) -> alt.Chart:
    """Several runs on one axis: `frame` has step, run (the user's names, as data), value."""
    data = _positive(frame, log_y)
    return alt.Chart(data, title=title).mark_line(clip=True, strokeWidth=1.4).encode(
        x=_x(), y=_y(y_title, log_y),
        color=alt.Color(field="run", type="nominal", title="run", scale=alt.Scale(range=PALETTE)),
        tooltip=[alt.Tooltip(field="run", type="nominal"), alt.Tooltip(field="step", type="quantitative", format=","),
                 alt.Tooltip(field="value", type="quantitative", format=".4g")],
    ).properties(width=WIDTH + 160, height=280, autosize=FIT_X)


def extras_chart(frame: pd.DataFrame, log_y: bool = False) -> alt.Chart:
    """Other logged series (update ratios, curvature, ...): `frame` has step, series, value."""
    data = _positive(frame, log_y)
    return alt.Chart(data, title="Other logged series").mark_line(clip=True, strokeWidth=1.2).encode(
        x=_x(), y=_y("value", log_y),
        color=alt.Color(field="series", type="nominal", title="series", scale=alt.Scale(range=PALETTE)),
        tooltip=[alt.Tooltip(field="series", type="nominal"), alt.Tooltip(field="step", type="quantitative", format=","),
                 alt.Tooltip(field="value", type="quantitative", format=".4g")],
    ).properties(width=WIDTH + 160, height=260, autosize=FIT_X)
