"""Charts of the learning-rate page: they read results of core.diagnoses.lr_*, never train or compute.

Every builder returns one Altair chart whose data (all layers) is what the CSV export writes.
Columns here are the results' own plain names; encodings name them with explicit fields.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.charts import HEIGHT, PALETTE, PLOT_HEIGHT_KEPT, WIDTH, curves, heatmap, markers

_MARK_COLORS = {"valley": "#D55E00", "steepest": "#009E73", "stop (fastai rule)": "#555555"}
# Streamlit fits a chart's whole height (title and axes included) into its `height`: 360 leaves a
# plot area of ~240 px at 1400 x 900 (the shared 300 left ~170).
TALL = 360
# One number format per log axis: d3's "~g" prints 0.000001 but 1e-7 on the same axis, so an axis
# that reaches below 0.001 (or past 10,000) prints every label as 1e-7, 2e-6, ...
EXP_AXIS = alt.Axis(format=".1~e")
PLAIN_AXIS = alt.Axis(format=".3~g")


def _axis_for(values, log: bool = True) -> alt.Axis:
    """EXP_AXIS when a positive value lies outside [0.001, 10,000] (a linear axis: when the largest
    does; its ticks are multiples of the largest), else PLAIN_AXIS."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return PLAIN_AXIS
    low = v.min() if log else v.max()
    return PLAIN_AXIS if low >= 1e-3 and v.max() <= 1e4 else EXP_AXIS


def _finite(frame: pd.DataFrame, columns, positive: bool = False) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    for column in [columns] if isinstance(columns, str) else columns:
        values = frame[column].astype(float).to_numpy()
        keep &= np.isfinite(values)
        if positive:
            keep &= values > 0
    return frame[keep]


def _color(field: str, title: str, domain: list[str]) -> alt.Color:
    """A nominal colour over a known list of values: every value gets a legend entry, in order."""
    return alt.Color(field=field, type="nominal", title=title, sort=domain,
                     scale=alt.Scale(domain=domain, range=(PALETTE * 2)[: len(domain)]),
                     legend=alt.Legend(orient="right", symbolLimit=0, labelLimit=260))


# ---------------------------------------------------------------------------- schedule preview


def schedule_chart(result, log_y: bool = False) -> alt.LayerChart:
    """Rate against step, one line per schedule, with dots at the steps the table lists."""
    domain = list(dict.fromkeys(result.frame["schedule"]))
    lines = curves(result.frame, "step", "lr", color="schedule", title="Learning rate per step",
                   log_y=log_y, y_title="learning rate")
    axis = EXP_AXIS if log_y else alt.Axis(format="~g")
    lines = lines.encode(y=alt.Y(field="lr", type="quantitative", title="learning rate", axis=axis,
                                 scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False)))
    points = _finite(result.points, "lr", positive=log_y)
    dots = alt.Chart(points).mark_point(filled=True, size=50).encode(
        x=alt.X(field="step", type="quantitative"), y=alt.Y(field="lr", type="quantitative", axis=axis),
        color=_color("schedule", "schedule", domain),
        tooltip=[alt.Tooltip(field="schedule", type="nominal"), alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="lr", type="quantitative", format=".4g")])
    return alt.layer(lines, dots)


# ---------------------------------------------------------------------------- seeded loss curves


def band_chart(curves_frame: pd.DataFrame, summary: pd.DataFrame, title: str,
               labels: dict[str, str] | None = None) -> alt.LayerChart:
    """Smoothed training loss per step of each run: the mean over seeds (line) and the min-max
    band across seeds (shaded), log scale; a dashed rule where a run first diverged.

    `curves_frame`: run, step, loss_mean, loss_lo, loss_hi, seeds; `summary`: run, first_diverged_at;
    `labels`: run key -> the name the legend shows (the key itself by default).
    """
    labels = labels or {}
    runs = [labels.get(k, k) for k in summary["run"]]
    data = _finite(curves_frame, ["loss_mean", "loss_lo", "loss_hi"], positive=True)
    data = data.assign(run=data["run"].map(lambda k: labels.get(k, k)))
    x = alt.X(field="step", type="quantitative", title="step")
    y_scale = alt.Scale(type="log", nice=False)
    color = _color("run", "run", runs)
    band = alt.Chart(data).mark_area(opacity=0.18, clip=True).encode(
        x=x, y=alt.Y(field="loss_lo", type="quantitative", scale=y_scale, title="training loss (smoothed)",
                     axis=_axis_for(data[["loss_lo", "loss_hi"]].to_numpy().ravel())),
        y2=alt.Y2(field="loss_hi"), color=color)
    line = alt.Chart(data).mark_line(clip=True).encode(
        x=x, y=alt.Y(field="loss_mean", type="quantitative", scale=y_scale), color=color,
        tooltip=[alt.Tooltip(field="run", type="nominal"), alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="loss_mean", type="quantitative", format=".4g", title="mean"),
                 alt.Tooltip(field="loss_lo", type="quantitative", format=".4g", title="lowest seed"),
                 alt.Tooltip(field="loss_hi", type="quantitative", format=".4g", title="highest seed"),
                 alt.Tooltip(field="seeds", type="quantitative")])
    rows = summary[summary["first_diverged_at"].notna()][["run", "first_diverged_at"]]
    rows = pd.DataFrame({"run": [labels.get(k, k) for k in rows["run"]], "step": rows["first_diverged_at"].astype(int)})
    rules = alt.Chart(rows).mark_rule(strokeDash=[4, 3], color="#D55E00").encode(
        x=alt.X(field="step", type="quantitative"),
        tooltip=[alt.Tooltip(field="run", type="nominal"), alt.Tooltip(field="step", type="quantitative",
                                                                      title="diverged at step")])
    return alt.layer(band, line, rules, title=alt.TitleParams(title, anchor="start")).properties(
        width=WIDTH, height=TALL)


def training_rate_chart(result, labels: dict[str, str] | None = None) -> alt.Chart:
    """The rate each configuration used at every step (from its schedule)."""
    labels = labels or {}
    runs = [labels.get(k, k) for k in result.summary["run"]]
    data = _finite(result.rates, "lr", positive=True)
    data = data.assign(run=data["run"].map(lambda k: labels.get(k, k)))
    return alt.Chart(data, title=alt.TitleParams("Learning rate used", anchor="start")).mark_line(clip=True).encode(
        x=alt.X(field="step", type="quantitative"), y=alt.Y(field="lr", type="quantitative", title="learning rate",
                                                            axis=_axis_for(data["lr"], log=False)),
        color=_color("run", "run", runs),
        tooltip=[alt.Tooltip(field="run", type="nominal"), alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="lr", type="quantitative", format=".4g")],
    ).properties(width=WIDTH, height=TALL)


# ---------------------------------------------------------------------------- range test


def range_test_chart(result) -> alt.LayerChart:
    """Raw and smoothed loss against the rate (log x), the suggestions and the stop point marked.

    The y axis spans the smoothed curve (raw batch losses can spike far above it and are clipped).
    """
    rec = result.record
    finite = rec["smoothed"][np.isfinite(rec["smoothed"])]
    top = float(finite.max()) * 1.15 if len(finite) else 1.0
    y_scale = alt.Scale(domain=[0, top], nice=False)
    x = alt.X(field="lr", type="quantitative", title="learning rate (log)", scale=alt.Scale(type="log"),
              axis=EXP_AXIS)
    raw = alt.Chart(_finite(rec, "loss"), title=alt.TitleParams(f"LR range test ({result.optimizer})",
                                                                anchor="start")).mark_line(
        opacity=0.3, color="#888888", clip=True).encode(
        x=x, y=alt.Y(field="loss", type="quantitative", title="loss (grey: batch, blue: smoothed)", scale=y_scale),
        tooltip=[alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="lr", type="quantitative", format=".3g"),
                 alt.Tooltip(field="loss", type="quantitative", format=".4g")])
    smooth = alt.Chart(rec).mark_line(color=PALETTE[0], strokeWidth=2.5, clip=True).encode(
        x=x, y=alt.Y(field="smoothed", type="quantitative", scale=y_scale),
        tooltip=[alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="lr", type="quantitative", format=".3g"),
                 alt.Tooltip(field="smoothed", type="quantitative", format=".4g"),
                 alt.Tooltip(field="in_window", type="nominal")])
    picks = [(label, step) for label, step in (("valley", result.valley_step), ("steepest", result.steep_step),
                                                ("stop (fastai rule)", result.stop_step))
             if step is not None and step < len(rec)]
    marks = pd.DataFrame({
        "suggestion": [label for label, _ in picks],
        "step": [int(step) for _, step in picks],
        "lr": [float(rec["lr"].iloc[step]) for _, step in picks],
        "smoothed": [float(rec["smoothed"].iloc[step]) for _, step in picks],
    })
    marks["text"] = [f"{label}: {lr:.3g}" for label, lr in zip(marks["suggestion"], marks["lr"])]
    color = alt.Color(field="suggestion", type="nominal", title="mark",
                      scale=alt.Scale(domain=list(_MARK_COLORS), range=list(_MARK_COLORS.values())))
    base = alt.Chart(marks).encode(x=x, color=color, tooltip=[
        alt.Tooltip(field="suggestion", type="nominal"), alt.Tooltip(field="step", type="quantitative"),
        alt.Tooltip(field="lr", type="quantitative", format=".3g")])
    rules = base.mark_rule(strokeDash=[4, 3])
    dots = base.mark_point(filled=True, size=140, shape="diamond", opacity=1).encode(
        y=alt.Y(field="smoothed", type="quantitative", scale=y_scale))

    # valley and steepest often sit close together: one label above its point, the other below;
    # the stop sits at the right edge, so its label goes to the left of it
    def label(name, align, dx, dy):
        return base.transform_filter(alt.datum.suggestion == name).mark_text(
            align=align, dx=dx, dy=dy, fontWeight="bold").encode(
            y=alt.Y(field="smoothed", type="quantitative", scale=y_scale), text=alt.Text(field="text", type="nominal"))

    texts = [label("valley", "left", 6, -14), label("steepest", "right", -6, 16),
             label("stop (fastai rule)", "right", -8, -10)]
    return alt.layer(raw, smooth, rules, dots, *texts).properties(width=WIDTH, height=TALL)


def range_check_chart(result) -> alt.LayerChart:
    """Training at a tenth, once and ten times the valley: mean and spread over seeds."""
    seeds = result.config.seeds
    spread = f", mean and min-max of {seeds} seeds" if seeds > 1 else ""
    return band_chart(result.check_curves, result.check, f"Check: training at 0.1x, 1x and 10x the valley{spread}")


# ---------------------------------------------------------------------------- surfaces


def surface_map(result) -> alt.LayerChart:
    """The surface (log of loss above its minimum) with every run's path and the minimum.

    Both legends sit below the map, the runs' in two columns, so every run is listed at any width.
    """
    x_name, y_name = result.axis_names
    keys = list(dict.fromkeys(result.paths["run"]))
    labels = [result.labels[k] for k in keys]
    heat = heatmap(result.grid, value="log_loss", title="Paths over the surface (shade: log10 loss above min)",
                   x_title=x_name, y_title=y_name, scheme="greys", size=380)
    data = _finite(result.paths[["run", "step", "x", "y", "loss"]], "loss")
    data = data.assign(label=data["run"].map(result.labels))
    path = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=12), clip=True).encode(
        x=alt.X(field="x", type="quantitative"), y=alt.Y(field="y", type="quantitative"),
        order=alt.Order(field="step", type="quantitative"),
        color=alt.Color(field="label", type="nominal", title="run", sort=labels,
                        scale=alt.Scale(domain=labels, range=(PALETTE * 2)[: len(labels)]),
                        legend=alt.Legend(orient="bottom", columns=2, symbolLimit=0, labelLimit=260)),
        tooltip=[alt.Tooltip(field="label", type="nominal", title="run"),
                 alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="x", type="quantitative", format=".3f"),
                 alt.Tooltip(field="y", type="quantitative", format=".3f"),
                 alt.Tooltip(field="loss", type="quantitative", format=".4g")])
    (x0, y0) = result.minimum
    start = result.paths[result.paths["step"] == 0].iloc[:1]
    marks = pd.DataFrame({"x": [x0, float(start["x"].iloc[0])], "y": [y0, float(start["y"].iloc[0])],
                          "label": ["minimum", "start"]})
    # The map keeps its own height: fitted into it, the legends below left a 124 px plot (issue 17).
    return alt.layer(heat, path, markers(marks)).resolve_scale(color="independent").properties(
        autosize=PLOT_HEIGHT_KEPT).configure_legend(gradientLength=200)


def surface_loss_chart(result, min_loss: float) -> alt.Chart:
    """Loss above the minimum against the step, per run, log scale."""
    keys = list(dict.fromkeys(result.paths["run"]))
    labels = [result.labels[k] for k in keys]
    data = result.paths[["run", "step", "loss"]].assign(loss_above_min=result.paths["loss"] - min_loss)
    data = _finite(data, "loss_above_min", positive=True)
    data = data.assign(label=data["run"].map(result.labels))
    return alt.Chart(data, title=alt.TitleParams("Loss above the minimum", anchor="start")).mark_line(clip=True).encode(
        x=alt.X(field="step", type="quantitative"),
        y=alt.Y(field="loss_above_min", type="quantitative", title="loss - min", scale=alt.Scale(type="log"),
                axis=EXP_AXIS),
        color=_color("label", "run", labels),
        tooltip=[alt.Tooltip(field="label", type="nominal", title="run"), alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="loss_above_min", type="quantitative", format=".3g")],
    ).properties(width=WIDTH, height=TALL)


def per_coordinate_chart(result, kind: str = "eff_lr") -> alt.FacetChart:
    """Per-parameter effective learning rate |Δw|/|g| (kind "eff_lr") or step length in units of
    the base rate |Δw|/lr (kind "step"), one panel per coordinate, log scale."""
    x_name, y_name = result.axis_names
    keys = list(dict.fromkeys(result.paths["run"]))
    labels = [result.labels[k] for k in keys]
    rates = result.summary.set_index("run")["lr"]
    frames = []
    for axis, name in (("x", x_name), ("y", y_name)):
        col = f"eff_lr_{axis}" if kind == "eff_lr" else f"step_{axis}"
        f = result.paths[["run", "step", col]].rename(columns={col: "value"}).assign(coordinate=name)
        if kind != "eff_lr":
            f["value"] = f["value"] / f["run"].map(rates)  # units for display, read from the result's own rates
        frames.append(f)
    data = _finite(pd.concat(frames, ignore_index=True), "value", positive=True)
    data = data.assign(label=data["run"].map(result.labels))
    title = ("Effective learning rate per parameter, |Δw| / |g|" if kind == "eff_lr"
             else "Step per parameter in units of the base rate, |Δw| / lr")
    return alt.Chart(data).mark_line(clip=True).encode(
        x=alt.X(field="step", type="quantitative"),
        y=alt.Y(field="value", type="quantitative", title="|Δw| / |g|" if kind == "eff_lr" else "|Δw| / lr",
                scale=alt.Scale(type="log"), axis=EXP_AXIS),
        color=_color("label", "run", labels),
        tooltip=[alt.Tooltip(field="label", type="nominal", title="run"),
                 alt.Tooltip(field="coordinate", type="nominal"), alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="value", type="quantitative", format=".3g")],
    ).properties(width=WIDTH // 2 - 20, height=HEIGHT - 40).facet(
        column=alt.Column(field="coordinate", type="nominal", title=None), title=title)


# ---------------------------------------------------------------------------- the lecture's burst


def burst_path_chart(result) -> alt.LayerChart:
    """The first coordinate of each run against the step: the lecture's rule jumps across the
    valley at each burst; the bursts' first steps are marked."""
    x_name = result.axis_names[0]
    keys = list(result.summary["run"])
    labels = list(result.summary["label"])
    names = dict(zip(keys, labels))
    data = result.paths[["run", "step", "x"]].assign(label=result.paths["run"].map(names))
    dash = alt.StrokeDash(field="label", type="nominal", title="run", sort=labels, legend=None,
                          scale=alt.Scale(domain=labels, range=[[1, 0], [1, 0], [6, 4]][: len(labels)]))
    line = alt.Chart(data).mark_line(clip=True, strokeWidth=1.5).encode(
        x=alt.X(field="step", type="quantitative"), y=alt.Y(field="x", type="quantitative", title=x_name),
        color=_color("label", "run", labels), strokeDash=dash,
        tooltip=[alt.Tooltip(field="label", type="nominal", title="run"), alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="x", type="quantitative", format=".4g", title=x_name)])
    bursts = pd.DataFrame([{"run": b.run, "label": names[b.run], "coordinate": b.coordinate, "step": b.step,
                            "largest_step": b.size} for b in result.bursts if b.coordinate == x_name],
                          columns=["run", "label", "coordinate", "step", "largest_step"])
    rules = alt.Chart(bursts).mark_rule(strokeDash=[4, 3], color="#D55E00").encode(
        x=alt.X(field="step", type="quantitative"),
        tooltip=[alt.Tooltip(field="label", type="nominal", title="run"),
                 alt.Tooltip(field="step", type="quantitative", title="burst at step"),
                 alt.Tooltip(field="largest_step", type="quantitative", format=".3g")])
    return alt.layer(rules, line, title=alt.TitleParams(
        f"{x_name} against the step (dashed: bursts by the burst test)", anchor="start")).properties(
        width=WIDTH, height=TALL)


def burst_step_chart(result) -> alt.LayerChart:
    """|Δx| of every update, log scale, with the rate itself as a reference line."""
    x_name = result.axis_names[0]
    keys = list(result.summary["run"])
    labels = list(result.summary["label"])
    names = dict(zip(keys, labels))
    data = _finite(result.paths[["run", "step", "move_x"]], "move_x", positive=True)
    data = data.assign(label=data["run"].map(names))
    # steps that shrink to 1e-100 between bursts would squash the plot: the axis starts 12 decades
    # below the rate (lower values are clipped at the bottom edge)
    top = float(data["move_x"].max()) * 2 if len(data) else 1.0
    scale = alt.Scale(type="log", domain=[float(result.config.lr) * 1e-12, top], nice=False)
    dash = alt.StrokeDash(field="label", type="nominal", title="run", sort=labels, legend=None,
                          scale=alt.Scale(domain=labels, range=[[1, 0], [1, 0], [6, 4]][: len(labels)]))
    line = alt.Chart(data).mark_line(clip=True, strokeWidth=1.5).encode(
        x=alt.X(field="step", type="quantitative"),
        y=alt.Y(field="move_x", type="quantitative", title=f"|Δ{x_name}| per update", scale=scale, axis=EXP_AXIS),
        color=_color("label", "run", labels), strokeDash=dash,
        tooltip=[alt.Tooltip(field="label", type="nominal", title="run"), alt.Tooltip(field="step", type="quantitative"),
                 alt.Tooltip(field="move_x", type="quantitative", format=".3g", title=f"|Δ{x_name}|")])
    rate = pd.DataFrame({"rate": [float(result.config.lr)], "text": [f"the rate ({result.config.lr:g})"]})
    rule = alt.Chart(rate).mark_rule(color="#555555", strokeDash=[2, 2]).encode(
        y=alt.Y(field="rate", type="quantitative"))
    text = alt.Chart(rate).mark_text(align="left", dx=4, dy=-6, color="#555555").encode(
        x=alt.value(4), y=alt.Y(field="rate", type="quantitative"), text=alt.Text(field="text", type="nominal"))
    return alt.layer(line, rule, text, title=alt.TitleParams(
        f"Step size along {x_name} (torch's Adagrad dashed: it runs over the decayed lecture rule)",
        anchor="start")).properties(
        width=WIDTH, height=TALL)
