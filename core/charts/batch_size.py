"""Charts of the batch-size page: they read a core.diagnoses.batch_size.Result, never compute.

Every chart over batch sizes has a log batch-size axis with a tick per swept size. Charts of
quantities measured over seeds show each seed as a small grey point and the mean with a bar of
one standard deviation each side (the sweep's `_mean` / `_sd` columns).
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.charts import HEIGHT, PALETTE, PLOT_HEIGHT_KEPT

PLOT = HEIGHT - 60  # plot-area height of every panel (>= 150 px, with room for titles and legends)
PANEL = 330  # width of one panel when two sit side by side
SMALL = 230  # width of one panel when three sit side by side
GREY = "#9a9a9a"


def _x(sizes: list[int], title: str = "batch size (log scale)") -> alt.X:
    lo, hi = min(sizes), max(sizes)
    return alt.X(
        field="batch_size", type="quantitative", title=title,
        scale=alt.Scale(type="log", domain=[lo / 1.4, hi * 1.4], nice=False),
        axis=alt.Axis(values=sizes, format=",d", labelOverlap=True),
    )


def _positive(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    # A log axis cannot show zero, negative or missing values; Vega-Lite would drop them anyway.
    v = frame[col].astype(float)
    return frame[np.isfinite(v) & (v > 0)]


def time_chart(result) -> alt.HConcatChart:
    """Left: time per update against the batch size, rows in parallel on the device (every sample
    and the median) and rows one after another (no parallelism), with a rule where the per-update
    time starts to rise. Right: time per epoch (per-update median x updates per epoch)."""
    t = result.timing
    frame = t.frame.assign(series="rows in parallel (this device)")
    serial = t.frame[["batch_size", "sequential_ms"]].rename(columns={"sequential_ms": "ms"}).assign(
        series="rows one after another (no parallelism)")
    sizes = [int(b) for b in t.frame["batch_size"]]
    x = _x(sizes)
    y = alt.Y(field="ms", type="quantitative", title="ms per update (log scale)", scale=alt.Scale(type="log"))
    colour = alt.Color(field="series", type="nominal", title=None, scale=alt.Scale(range=PALETTE[:2]),
                       legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=400))
    samples = alt.Chart(_positive(t.samples, "ms")).mark_point(size=14, color=GREY, opacity=0.6).encode(
        x=x, y=y, tooltip=[alt.Tooltip(field="batch_size", type="quantitative", title="batch size"),
                           alt.Tooltip(field="ms", type="quantitative", title="sample (ms)", format=".4g")])
    both = pd.concat([frame[["batch_size", "ms", "series"]], serial], ignore_index=True)
    lines = alt.Chart(_positive(both, "ms")).encode(
        x=x, y=y, color=colour,
        tooltip=[alt.Tooltip(field="series", type="nominal"),
                 alt.Tooltip(field="batch_size", type="quantitative", title="batch size"),
                 alt.Tooltip(field="ms", type="quantitative", title="ms per update", format=".4g")])
    layers = [samples.properties(name="timing_samples"), lines.mark_line().properties(name="per_update"),
              lines.mark_point(filled=True, size=40)]
    if t.limit is not None:
        mark = pd.DataFrame({"batch_size": [t.limit], "label": [f"starts to rise: batch {t.limit:,}"]})
        base = alt.Chart(mark).encode(x=alt.X(field="batch_size", type="quantitative"))
        layers.append(base.mark_rule(strokeDash=[6, 4], color="#555555").properties(name="parallel_limit"))
        layers.append(base.mark_text(align="right", baseline="top", dx=-4, dy=4, color="#555555").encode(
            text=alt.Text(field="label", type="nominal"), y=alt.value(0)))
    left = alt.layer(*layers).properties(
        width=PANEL, height=PLOT, title=alt.Title("Time per update", subtitle=f"on {t.device}"))

    epoch = _positive(t.frame, "epoch_ms")
    e_y = alt.Y(field="epoch_ms", type="quantitative", title="ms per epoch (log scale)", scale=alt.Scale(type="log"))
    e_base = alt.Chart(epoch).encode(
        x=x, y=e_y, tooltip=[alt.Tooltip(field="batch_size", type="quantitative", title="batch size"),
                             alt.Tooltip(field="updates_per_epoch", type="quantitative", title="updates per epoch"),
                             alt.Tooltip(field="epoch_ms", type="quantitative", title="ms per epoch", format=".4g")])
    right = alt.layer(e_base.mark_line(color=PALETTE[0]).properties(name="per_epoch"),
                      e_base.mark_point(filled=True, size=40, color=PALETTE[0])).properties(
        width=PANEL, height=PLOT,
        title=alt.Title("Time per epoch", subtitle=f"{t.n_rows:,} rows: time per update × ⌈rows / batch⌉"))
    return alt.hconcat(left, right).resolve_scale(color="independent")


def _seed_panel(result, measure: str, title: str, y_title: str, width: int, only_ok: str | None = None,
                log: bool = False) -> alt.LayerChart:
    """Each seed's value (grey points) and the mean +- one sd (blue) over the swept sizes."""
    sizes = [int(b) for b in result.sweep["batch_size"]]
    runs = result.runs
    if only_ok:
        runs = runs[runs[only_ok].astype(bool)]
    runs = runs[["batch_size", "seed", measure]]
    agg = result.sweep[["batch_size", f"{measure}_mean", f"{measure}_sd"]].rename(
        columns={f"{measure}_mean": "mean", f"{measure}_sd": "sd"})
    if log:
        runs, agg = _positive(runs, measure), _positive(agg, "mean")
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    x = _x(sizes)
    seeds = alt.Chart(runs).mark_point(size=22, color=GREY, opacity=0.8).encode(
        x=x, y=alt.Y(field=measure, type="quantitative", title=y_title, scale=scale),
        tooltip=[alt.Tooltip(field="batch_size", type="quantitative", title="batch size"),
                 alt.Tooltip(field="seed", type="quantitative"),
                 alt.Tooltip(field=measure, type="quantitative", format=".4g")])
    mean = alt.Chart(agg).encode(
        x=x, y=alt.Y(field="mean", type="quantitative", title=y_title, scale=scale),
        tooltip=[alt.Tooltip(field="batch_size", type="quantitative", title="batch size"),
                 alt.Tooltip(field="mean", type="quantitative", format=".4g"),
                 alt.Tooltip(field="sd", type="quantitative", title="sd over seeds", format=".3g")])
    bars = alt.Chart(agg.dropna(subset=["sd"])).mark_errorbar(color=PALETTE[0], ticks=True).encode(
        x=x, y=alt.Y(field="mean", type="quantitative", title=y_title, scale=scale),
        yError=alt.YError(field="sd"))
    return alt.layer(seeds.properties(name=f"{measure}_seeds"), mean.mark_line(color=PALETTE[0]).properties(name=f"{measure}_mean"),
                     mean.mark_point(filled=True, size=45, color=PALETTE[0]), bars).properties(
        width=width, height=PLOT, title=title)


def quality_chart(result) -> alt.HConcatChart:
    """Left: training loss at the end of each run; middle: validation metric; right: the
    generalization gap (train - validation metric). Seeds in grey, mean +- sd in blue."""
    metric = result.metric
    return alt.hconcat(
        _seed_panel(result, "train_loss", "Training loss at the end", "training loss", SMALL),
        _seed_panel(result, "val_metric", f"Validation {metric}", f"validation {metric}", SMALL),
        _seed_panel(result, "gap", "Generalization gap", f"train − validation {metric}", SMALL),
    )


def sharpness_chart(result) -> alt.HConcatChart:
    """lambda_max, epsilon-sharpness and the Hessian trace at each run's settled point (only the
    seeds whose settled point passed the critical-point rule)."""
    return alt.hconcat(
        _seed_panel(result, "lambda_max", "lambda_max", "largest Hessian eigenvalue", SMALL, only_ok="critical"),
        _seed_panel(result, "eps_sharpness", "Epsilon-sharpness", "epsilon-sharpness (%)", SMALL, only_ok="critical"),
        _seed_panel(result, "hessian_trace", "Hessian trace", "trace (Hutchinson)", SMALL, only_ok="critical"),
    )


def curves_chart(result) -> alt.Chart:
    """Training loss (full pass) along each run against the updates taken, one line per seed,
    coloured by batch size."""
    frame = result.curves.merge(
        pd.DataFrame({"batch_size": result.sweep["batch_size"],
                      "batch": [f"batch {result.label(int(b))}" for b in result.sweep["batch_size"]]}),
        on="batch_size")
    order = [f"batch {result.label(int(b))}" for b in result.sweep["batch_size"]]
    return alt.Chart(_positive(frame, "train_loss")).mark_line(point=alt.OverlayMarkDef(size=12), opacity=0.8).encode(
        x=alt.X(field="step", type="quantitative", title="updates"),
        y=alt.Y(field="train_loss", type="quantitative", title="training loss (log scale)", scale=alt.Scale(type="log")),
        color=alt.Color(field="batch", type="nominal", title=None, sort=order, scale=alt.Scale(range=PALETTE),
                        legend=alt.Legend(orient="bottom", columns=4, labelLimit=300)),
        detail=alt.Detail(field="seed", type="nominal"),
        tooltip=[alt.Tooltip(field="batch", type="nominal"), alt.Tooltip(field="seed", type="quantitative"),
                 alt.Tooltip(field="step", type="quantitative", title="updates"),
                 alt.Tooltip(field="train_loss", type="quantitative", format=".4g")],
    ).properties(
        width=2 * PANEL, height=PLOT, title="Training loss along the runs (one line per seed)", name="curves",
        # Streamlit fits a single view's title, axes and legend into `height` ("fit"), which squashed
        # the plot to a sliver (issue 17); "fit-x" keeps the plot area at PLOT pixels and the width
        # within the column ("pad" let Streamlit's column width plus the axis overflow the column).
        autosize=PLOT_HEIGHT_KEPT,
    )


def interpolation_chart(result) -> alt.HConcatChart:
    """Loss and metric along the line from the smallest-batch solution (alpha 0) to the largest (1)."""
    frame = result.interpolation
    ends = pd.DataFrame({
        "alpha": [0.0, 1.0],
        "label": [f"batch {result.label(result.interp_from)}", f"batch {result.label(result.interp_to)}"],
    })
    lo, hi = (float(frame["alpha"].min()), float(frame["alpha"].max())) if len(frame) else (-0.5, 1.5)

    def panel(y: str, y_title: str, title: str) -> alt.LayerChart:
        base = alt.Chart(frame).encode(
            x=alt.X(field="alpha", type="quantitative", title="alpha (0 = smallest batch, 1 = largest)",
                    scale=alt.Scale(domain=[lo, hi], nice=False)),
            y=alt.Y(field=y, type="quantitative", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color(field="split", type="nominal", title=None, scale=alt.Scale(range=PALETTE),
                            legend=alt.Legend(orient="bottom")),
            tooltip=[alt.Tooltip(field="alpha", type="quantitative"), alt.Tooltip(field="split", type="nominal"),
                     alt.Tooltip(field=y, type="quantitative", format=".4g")],
        )
        marks = alt.Chart(ends).encode(x=alt.X(field="alpha", type="quantitative"),
                                       tooltip=[alt.Tooltip(field="label", type="nominal")])
        rules = marks.mark_rule(strokeDash=[4, 3], color="#777777").properties(name=f"{y}_solutions")
        text = marks.mark_text(align="left", baseline="top", dx=3, dy=3, color="#555555").encode(
            text=alt.Text(field="label", type="nominal"), y=alt.value(0))
        return alt.layer(base.mark_line().properties(name=f"{y}_interpolation"), rules, text).properties(
            width=PANEL, height=PLOT, title=title)

    return alt.hconcat(
        panel("loss", "loss", "Loss between the two solutions"),
        panel("metric", result.metric, f"{result.metric} between the two solutions"),
    )
