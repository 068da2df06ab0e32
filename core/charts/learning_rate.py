"""Charts of the learning-rate lab: they read results of core.diagnoses.learning_rate, never train.

Every builder returns one Altair chart whose data (all layers) is what the CSV export writes.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.charts import HEIGHT, PALETTE, WIDTH, curves, heatmap, markers

_SUGGESTION_COLORS = {"valley": "#D55E00", "steepest": "#009E73", "stop (4x best)": "#555555"}


def _finite(frame: pd.DataFrame, column: str, positive: bool = False) -> pd.DataFrame:
    keep = np.isfinite(frame[column].astype(float))
    if positive:
        keep &= frame[column] > 0
    return frame[keep]


def _color(field: str, title: str | None = None, domain=None) -> alt.Color:
    scale = alt.Scale(range=PALETTE) if domain is None else alt.Scale(domain=domain, range=PALETTE[: len(domain)])
    return alt.Color(f"{field}:N", title=title or field, scale=scale, sort=domain)


# ---------------------------------------------------------------------------- 1. schedule preview


def schedule_chart(result, log_y: bool = False) -> alt.LayerChart:
    """Rate against step, one line per schedule, with dots at the steps the table lists."""
    lines = curves(result.frame, "step", "lr", color="schedule", title="Learning rate per step",
                   log_y=log_y, y_title="learning rate")
    points = _finite(result.points, "lr", positive=log_y)
    dots = alt.Chart(points).mark_point(filled=True, size=50).encode(
        x="step:Q", y="lr:Q", color=alt.Color("schedule:N", scale=alt.Scale(range=PALETTE)),
        tooltip=["schedule", "step", alt.Tooltip("lr:Q", format=".4g")])
    return alt.layer(lines, dots)


# ---------------------------------------------------------------------------- 2. training runs


def _divergence_marks(summary: pd.DataFrame) -> alt.LayerChart:
    """A dashed rule at each run's divergence step and one line of text naming them all."""
    rows = summary[summary["diverged at"].notna()][["run", "diverged at"]].rename(columns={"diverged at": "step"})
    rows = rows.assign(step=rows["step"].astype(float))
    label = "diverged: " + ", ".join(f"{r} at step {int(k)}" for r, k in zip(rows["run"], rows["step"]))
    text_row = pd.DataFrame({"step": [rows["step"].min() if len(rows) else 0.0], "label": [label if len(rows) else ""]})
    rules = alt.Chart(rows).mark_rule(strokeDash=[4, 3], color="#D55E00").encode(x="step:Q", tooltip=["run", "step"])
    text = alt.Chart(text_row).mark_text(align="left", dx=4, color="#D55E00", fontWeight="bold").encode(
        x="step:Q", y=alt.value(12), text="label:N")
    return rules + text


def loss_curves_chart(curves_frame: pd.DataFrame, summary: pd.DataFrame, y: str = "train_loss",
                      title: str = "Training loss (whole training split)") -> alt.LayerChart:
    """Per-epoch loss of each run against the step, log scale, divergences marked.

    `curves_frame` has run, step and `y`; `summary` has run and "diverged at" (as the results'
    summary tables).
    """
    runs = list(summary["run"])
    data = _finite(curves_frame, y, positive=True)
    lines = alt.Chart(data, title=title).mark_line(point=True, clip=True).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y(f"{y}:Q", title=y.replace("_", " "), scale=alt.Scale(type="log")),
        color=_color("run", domain=runs),
        tooltip=["run", "step", alt.Tooltip(f"{y}:Q", format=".4g")],
    ).properties(width=WIDTH, height=HEIGHT)
    return alt.layer(lines, _divergence_marks(summary))


def training_loss_chart(result, y: str = "train_loss") -> alt.LayerChart:
    """Loss curves of a TrainingResult or AdaptiveResult."""
    title = "Training loss (whole training split)" if y == "train_loss" else "Validation loss"
    return loss_curves_chart(result.curves, result.summary, y, title)


def training_rate_chart(result) -> alt.Chart:
    """The rate each run used at every step (read back from the optimizer)."""
    runs = list(result.summary["run"])
    data = _finite(result.rates, "lr", positive=True)
    return alt.Chart(data, title="Learning rate used").mark_line(clip=True).encode(
        x=alt.X("step:Q"), y=alt.Y("lr:Q", title="learning rate"),
        color=_color("run", domain=runs), tooltip=["run", "step", alt.Tooltip("lr:Q", format=".4g")],
    ).properties(width=WIDTH, height=HEIGHT)


# ---------------------------------------------------------------------------- 3. adaptive optimizers


def surface_map(result) -> alt.LayerChart:
    """The surface (log of loss above its minimum) with every run's path and the minimum."""
    x_name, y_name = result.axis_names
    runs = list(dict.fromkeys(result.paths["run"]))
    heat = heatmap(result.grid, value="log_loss", title="Paths over the surface (colour: log10 loss above min)",
                   x_title=x_name, y_title=y_name, scheme="greys", size=420)
    data = _finite(result.paths[["run", "step", "x", "y", "loss"]], "loss")
    path = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=12), clip=True).encode(
        x="x:Q", y="y:Q", order="step:Q", color=_color("run", domain=runs),
        tooltip=["run", "step", alt.Tooltip("x:Q", format=".3f"), alt.Tooltip("y:Q", format=".3f"),
                 alt.Tooltip("loss:Q", format=".4g")])
    (x0, y0) = result.minimum
    start = result.paths[result.paths["step"] == 0].iloc[:1]
    marks = pd.DataFrame({"x": [x0, float(start["x"].iloc[0])], "y": [y0, float(start["y"].iloc[0])],
                          "label": ["minimum", "start"]})
    return alt.layer(heat, path, markers(marks)).resolve_scale(color="independent")


def surface_loss_chart(result, min_loss: float) -> alt.Chart:
    """Loss above the minimum against the step, per run, log scale."""
    data = result.paths.assign(loss_above_min=result.paths["loss"] - min_loss)
    runs = list(dict.fromkeys(result.paths["run"]))
    data = _finite(data[["run", "step", "loss_above_min"]], "loss_above_min", positive=True)
    return alt.Chart(data, title="Loss above the minimum").mark_line(clip=True).encode(
        x="step:Q", y=alt.Y("loss_above_min:Q", title="loss - min", scale=alt.Scale(type="log")),
        color=_color("run", domain=runs), tooltip=["run", "step", alt.Tooltip("loss_above_min:Q", format=".3g")],
    ).properties(width=WIDTH, height=HEIGHT)


def per_coordinate_chart(result, kind: str = "eff_lr") -> alt.Chart:
    """Per-parameter effective learning rate |Δ|/|g| (kind "eff_lr") or step length in units of
    the base rate |Δ|/lr (kind "step"), one panel per coordinate, log scale."""
    x_name, y_name = result.axis_names
    runs = list(dict.fromkeys(result.paths["run"]))
    rates = result.summary.set_index("run")["lr"]
    frames = []
    for axis, name in (("x", x_name), ("y", y_name)):
        col = f"eff_lr_{axis}" if kind == "eff_lr" else f"step_{axis}"
        f = result.paths[["run", "step", col]].rename(columns={col: "value"}).assign(coordinate=name)
        if kind != "eff_lr":
            f["value"] = f["value"] / f["run"].map(rates)
        frames.append(f)
    data = _finite(pd.concat(frames, ignore_index=True), "value", positive=True)
    title = ("Effective learning rate per parameter, |Δw| / |g|" if kind == "eff_lr"
             else "Step per parameter in units of the base rate, |Δw| / lr")
    return alt.Chart(data).mark_line(clip=True).encode(
        x="step:Q", y=alt.Y("value:Q", title="|Δw| / |g|" if kind == "eff_lr" else "|Δw| / lr",
                            scale=alt.Scale(type="log")),
        color=_color("run", domain=runs), tooltip=["run", "coordinate", "step", alt.Tooltip("value:Q", format=".3g")],
    ).properties(width=WIDTH // 2 - 20, height=HEIGHT - 60).facet(column=alt.Column("coordinate:N"), title=title)


# ---------------------------------------------------------------------------- 4. range test


def range_test_chart(result) -> alt.LayerChart:
    """Raw and smoothed loss against the rate (log x), the suggestions and the stop point marked.

    The y axis spans the smoothed curve (raw batch losses can spike far above it and are clipped).
    """
    rec = result.record
    finite = rec["smoothed"][np.isfinite(rec["smoothed"])]
    top = float(finite.max()) * 1.15 if len(finite) else 1.0
    y_scale = alt.Scale(domain=[0, top], nice=False)
    raw = alt.Chart(_finite(rec, "loss"), title=f"LR range test ({result.optimizer})").mark_line(
        opacity=0.3, color="#888888", clip=True).encode(
        x=alt.X("lr:Q", title="learning rate (log)", scale=alt.Scale(type="log")),
        y=alt.Y("loss:Q", title="loss (grey: batch, blue: smoothed)", scale=y_scale),
        tooltip=["step", alt.Tooltip("lr:Q", format=".3g"), alt.Tooltip("loss:Q", format=".4g")])
    smooth = alt.Chart(rec).mark_line(color=PALETTE[0], strokeWidth=2.5, clip=True).encode(
        x="lr:Q", y=alt.Y("smoothed:Q", scale=y_scale),
        tooltip=["step", alt.Tooltip("lr:Q", format=".3g"), alt.Tooltip("smoothed:Q", format=".4g"), "in_window"])
    picks = [(label, step) for label, step in (("valley", result.valley_step), ("steepest", result.steep_step),
                                                ("stop (4x best)", result.stop_step))
             if step is not None and step < len(rec)]
    marks = pd.DataFrame({
        "suggestion": [label for label, _ in picks],
        "step": [int(step) for _, step in picks],
        "lr": [float(rec["lr"].iloc[step]) for _, step in picks],
        "smoothed": [float(rec["smoothed"].iloc[step]) for _, step in picks],
    })
    marks["text"] = [f"{label}: {lr:.3g}" for label, lr in zip(marks["suggestion"], marks["lr"])]
    color = alt.Color("suggestion:N", title="mark", scale=alt.Scale(domain=list(_SUGGESTION_COLORS),
                                                                    range=list(_SUGGESTION_COLORS.values())))
    base = alt.Chart(marks).encode(x="lr:Q", color=color,
                                   tooltip=["suggestion", "step", alt.Tooltip("lr:Q", format=".3g")])
    rules = base.mark_rule(strokeDash=[4, 3])
    dots = base.mark_point(filled=True, size=140, shape="diamond", opacity=1).encode(
        y=alt.Y("smoothed:Q", scale=y_scale))
    # valley and steepest often sit close together: one label above its point, the other below;
    # the stop sits at the right edge, so its label goes to the left of it
    def label(name, align, dx, dy):
        return base.transform_filter(alt.datum.suggestion == name).mark_text(
            align=align, dx=dx, dy=dy, fontWeight="bold").encode(y=alt.Y("smoothed:Q", scale=y_scale), text="text:N")

    texts = [label("valley", "left", 6, -14), label("steepest", "right", -6, 16),
             label("stop (4x best)", "right", -8, -10)]
    return alt.layer(raw, smooth, rules, dots, *texts).properties(width=WIDTH, height=HEIGHT)


def range_check_chart(result) -> alt.LayerChart:
    """Training loss at a tenth, once and ten times the valley rate."""
    return loss_curves_chart(result.check_curves, result.check, title="Training at 0.1x, 1x and 10x the valley rate")
