"""Charts of the learning-rate x batch-size grid: they read a core.diagnoses.lr_batch_grid.Result,
never compute.

Every field is one of the result's own plain column names (batch_size, lr, value, ...); user
text (an uploaded file's name) never reaches a chart. Rates and batch sizes sit on log axes with a
tick per grid value.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.charts import PALETTE, expr_safe
from core.diagnoses.lr_batch_grid import measure_label

CELL_W, CELL_H = 78, 52  # pixels per heat-map cell: a value and a note fit at 1400 x 900
MAX_W = 620  # plot width cap: with the batch axis it stays inside a 940 px column at 1400 x 900
MIN_PLOT = 200  # plot-area height at least this (issue 17: >= 150 px)
# Streamlit stretches a single or layered view to its column: "fit-x" keeps axes and legend inside
# that width, while the height stays the plot area's own (a "fit" in y squashed plots, issue 17).
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")
GREY = "#c8c8c8"
SERIES = {
    "best": "best rate (bar: rates not clearly worse)",
    "linear": "linear rule from the smallest batch",
    "sqrt": "square-root rule from the smallest batch",
    "diverged": "first rate where a seed diverged",
}


def _tips(result, value_title: str) -> list[alt.Tooltip]:
    m = result.metric
    return [
        alt.Tooltip(field="batch_label", type="nominal", title="batch size"),
        alt.Tooltip(field="rate_label", type="nominal", title="learning rate"),
        alt.Tooltip(field="value_text", type="nominal", title=expr_safe(f"{value_title} (mean ± sd)")),
        alt.Tooltip(field="seed_values", type="nominal", title=expr_safe(f"{value_title} per seed")),
        alt.Tooltip(field="trained", type="quantitative", title="seeds trained"),
        alt.Tooltip(field="diverged", type="quantitative", title="seeds diverged"),
        alt.Tooltip(field="failed", type="quantitative", title="trials failed"),
        alt.Tooltip(field="val_metric_mean", type="quantitative", title=expr_safe(f"validation {m} (mean)"), format=".3f"),
        alt.Tooltip(field="val_loss_mean", type="quantitative", title="validation loss (mean)", format=".4g"),
        alt.Tooltip(field="train_loss_mean", type="quantitative", title="training loss (mean)", format=".4g"),
    ]


def heatmap_chart(result, which: str = "measure") -> alt.LayerChart:
    """The grid as a heat map: one cell per (batch size, rate), coloured by the mean over seeds of
    the decision measure (`which="measure"`, best cell outlined solid and rates not clearly worse
    dashed) or of the validation metric (`which="metric"`), darker = better. Cells where any seed
    diverged or failed are grey and say how many; their means (over the seeds that trained) are
    still written in them."""
    f = result.findings
    cells = result.cells
    if which == "metric":
        field, text, title = "val_metric_mean", "metric_text", f"validation {result.metric}"
        better_high = True
    else:
        field, text, title = "value", "value_text", measure_label(f.measure, result.metric)
        better_high = f.higher_is_better
    x = alt.X(field="rate_label", type="ordinal", title="learning rate (log grid)",
              sort=alt.EncodingSortField(field="lr", order="ascending"), axis=alt.Axis(labelAngle=0, grid=False))
    y = alt.Y(field="batch_label", type="ordinal", title="batch size",
              sort=alt.EncodingSortField(field="batch_size", order="descending"), axis=alt.Axis(grid=False))
    base = alt.Chart(cells).encode(x=x, y=y, tooltip=_tips(result, title))
    grey = base.mark_rect(color=GREY).properties(name="all_cells")
    # Colour only cells where every seed trained: a mean over the seeds that survived a partial
    # divergence is not comparable, and its outliers would wash out the scale.
    coloured = base.transform_filter(alt.datum.status == "ok").mark_rect().encode(
        color=alt.Color(field=field, type="quantitative", title=title,
                        # The light two thirds of the scheme: black text stays readable on every cell.
                        scale=alt.Scale(scheme=alt.SchemeParams(name="lighttealblue", extent=[0.0, 0.65]),
                                        reverse=not better_high),
                        legend=alt.Legend(title=f"{title} (darker = better)", orient="bottom", titleLimit=400,
                                          gradientLength=260)),
    ).properties(name="values")
    value = base.mark_text(fontSize=11, dy=-7, color="black").encode(text=alt.Text(field=text, type="nominal"))
    note = base.mark_text(fontSize=9, dy=9, color="#333333").encode(
        text=alt.Text(field="note" if which != "metric" else "status_note", type="nominal"))
    layers = [grey, coloured, value, note]
    if which != "metric":
        layers.append(base.transform_filter(alt.datum.best).mark_rect(
            fillOpacity=0, stroke="black", strokeWidth=3).properties(name="best"))
        layers.append(base.transform_filter(alt.datum.tied).mark_rect(
            fillOpacity=0, stroke="black", strokeWidth=1.5, strokeDash=[4, 3]).properties(name="not_clearly_worse"))
    sub = f"mean over {f.seeds} seeds per cell; grey: some seed diverged, or a trial failed"
    if which != "metric":
        sub += "; outlined: best rate (solid), not clearly worse (dashed)"
    return alt.layer(*layers).properties(
        width=min(MAX_W, CELL_W * len(result.rates)), height=max(MIN_PLOT, CELL_H * len(result.sizes)),
        autosize=FIT_X, title=alt.Title(f"{title[:1].upper()}{title[1:]} over the grid", subtitle=sub, anchor="start"),
    )


def trace_chart(result) -> alt.LayerChart:
    """The best rate per batch size on log-log axes, its range of rates not clearly worse, what
    the linear and square-root rules predict from the smallest batch's best rate, and the first
    rate where some seed diverged."""
    t = result.trace
    sizes = [int(b) for b in result.sizes]
    rates = list(result.rates)
    lo, hi = min(rates) / 1.6, max(rates) * 1.6
    x = alt.X(field="batch_size", type="quantitative", title="batch size (log scale)",
              scale=alt.Scale(type="log", domain=[min(sizes) / 1.4, max(sizes) * 1.4], nice=False),
              axis=alt.Axis(values=sizes, format=",d", labelOverlap=True))
    y_scale = alt.Scale(type="log", domain=[lo, hi], nice=False)
    colour = alt.Color(field="series", type="nominal", title=None, sort=list(SERIES.values()),
                       scale=alt.Scale(domain=list(SERIES.values()), range=[PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3]]),
                       legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=400))
    tips = [alt.Tooltip(field="batch_size", type="quantitative", title="batch size", format=",d"),
            alt.Tooltip(field="best_lr", type="quantitative", title="best rate", format=".3g"),
            alt.Tooltip(field="low", type="quantitative", title="not clearly worse from", format=".3g"),
            alt.Tooltip(field="high", type="quantitative", title="not clearly worse to", format=".3g"),
            alt.Tooltip(field="seed_best", type="nominal", title="each seed's best rate"),
            alt.Tooltip(field="first_unstable", type="quantitative", title="first rate that diverged", format=".3g")]
    best = t.dropna(subset=["best_lr"]).assign(series=SERIES["best"])
    y = lambda f, title="learning rate (log scale)": alt.Y(field=f, type="quantitative", title=title, scale=y_scale)  # noqa: E731
    band = alt.Chart(best).mark_rule(strokeWidth=3, opacity=0.6).encode(
        x=x, y=y("low"), y2=alt.Y2(field="high"), color=colour, tooltip=tips).properties(name="range")
    line = alt.Chart(best).mark_line(point=alt.OverlayMarkDef(size=70, filled=True)).encode(
        x=x, y=y("best_lr"), color=colour, tooltip=tips).properties(name="best_rate")
    rules = pd.concat([
        t[["batch_size", "linear_lr"]].rename(columns={"linear_lr": "lr"}).assign(series=SERIES["linear"]),
        t[["batch_size", "sqrt_lr"]].rename(columns={"sqrt_lr": "lr"}).assign(series=SERIES["sqrt"]),
    ], ignore_index=True).dropna(subset=["lr"])
    refs = alt.Chart(rules).mark_line(strokeDash=[6, 4], clip=True).encode(
        x=x, y=y("lr"), color=colour, detail=alt.Detail(field="series", type="nominal"),
        tooltip=[alt.Tooltip(field="series", type="nominal"),
                 alt.Tooltip(field="batch_size", type="quantitative", title="batch size", format=",d"),
                 alt.Tooltip(field="lr", type="quantitative", title="rate", format=".3g")]).properties(name="rules")
    div = t.dropna(subset=["first_unstable"]).assign(series=SERIES["diverged"])
    cross = alt.Chart(div).mark_point(shape="cross", size=110, filled=True, angle=45).encode(
        x=x, y=y("first_unstable"), color=colour, tooltip=tips).properties(name="divergence")
    s = result.findings.scaling
    sub = "the rules' lines start at the smallest batch's best rate"
    if s.kind != "unknown":
        if s.ratio_low == 0 and s.ratio_high == float("inf"):
            bounds = "not bounded by the grid"
        else:
            low = "?" if s.ratio_low == 0 else f"×{s.ratio_low:.3g}"
            high = "?" if s.ratio_high == float("inf") else f"×{s.ratio_high:.3g}"
            bounds = f"within {low} to {high}"
        sub = (f"batch ×{s.batch_ratio:.3g}: linear rule ×{s.linear:.3g}, square-root ×{s.sqrt:.3g}; "
               f"best rate ×{s.rate_ratio:.3g}, {bounds}")
    return alt.layer(refs, band, line, cross).properties(
        width=560, height=300, autosize=FIT_X,
        title=alt.Title("Best learning rate against batch size", subtitle=sub, anchor="start"),
    )
