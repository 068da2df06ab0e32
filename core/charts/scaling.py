"""Charts of the feature-scaling page: they read core.diagnoses.scaling results, never compute."""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.charts import HEIGHT, PALETTE, WIDTH, curves
from core.diagnoses.scaling import num


def surface_map(panel, x1: str, x2: str, size: int = 330) -> alt.LayerChart:
    """The loss over (w1, w2) (b at its best for each pair) as a log-coloured heat map, with the
    gradient-descent path, its start and the optimum. Both axes span the same width."""
    grid = panel.grid
    w1 = sorted(grid["w1"].unique())
    w2 = sorted(grid["w2"].unique())
    half1 = (w1[1] - w1[0]) / 2 if len(w1) > 1 else 0.5
    half2 = (w2[1] - w2[0]) / 2 if len(w2) > 1 else 0.5
    x_scale = alt.Scale(domain=[w1[0] - half1, w1[-1] + half1], nice=False, zero=False)
    y_scale = alt.Scale(domain=[w2[0] - half2, w2[-1] + half2], nice=False, zero=False)
    cells = (
        alt.Chart(grid.assign(w1_lo=grid["w1"] - half1, w1_hi=grid["w1"] + half1,
                              w2_lo=grid["w2"] - half2, w2_hi=grid["w2"] + half2),
                  title=f"{panel.name.capitalize()} inputs (condition number {num(panel.condition)})")
        .mark_rect()
        .encode(
            x=alt.X("w1_lo:Q", title=f"w1 (weight of {x1})", scale=x_scale),
            x2="w1_hi:Q",
            y=alt.Y("w2_lo:Q", title=f"w2 (weight of {x2})", scale=y_scale),
            y2="w2_hi:Q",
            color=alt.Color("loss:Q", title="loss (log)", scale=alt.Scale(type="log", scheme="viridis")),
            tooltip=["w1", "w2", alt.Tooltip("loss:Q", format=".4g")],
        )
    )
    path = panel.path
    base = alt.Chart(path).encode(
        x=alt.X("w1:Q", scale=x_scale), y=alt.Y("w2:Q", scale=y_scale), order="step:Q",
        tooltip=["step", alt.Tooltip("w1:Q", format=".4g"), alt.Tooltip("w2:Q", format=".4g"),
                 alt.Tooltip("b:Q", format=".4g"), alt.Tooltip("loss:Q", format=".4g")],
    )
    line = base.mark_line(color=PALETTE[1], strokeWidth=2, clip=True)
    dots = base.mark_point(color=PALETTE[1], filled=True, size=22, clip=True)
    ends = pd.DataFrame({"w1": [0.0, panel.optimum[0]], "w2": [0.0, panel.optimum[1]],
                         "label": ["start", "optimum"]})
    marks = alt.Chart(ends).encode(x=alt.X("w1:Q", scale=x_scale), y=alt.Y("w2:Q", scale=y_scale),
                                   tooltip=["label", "w1", "w2"])
    points = marks.mark_point(shape="diamond", size=110, filled=True, color="white", stroke="black", clip=True)
    labels = marks.mark_text(align="left", dx=8, dy=-8, color="white", fontWeight="bold").encode(text="label:N")
    return (cells + line + dots + points + labels).properties(width=size, height=size)


def surface_curves(result) -> alt.LayerChart:
    """Loss above the optimum against the step (log-log) for raw and standardized inputs, with
    the target as a dashed line."""
    frame = pd.concat([result.raw.curve, result.standardized.curve], ignore_index=True)
    lines = curves(frame, "step", "excess", color="inputs", log_x=True, log_y=True,
                   title="Gradient descent at each one's largest stable rate",
                   x_title="step (log)", y_title="loss above the optimum, L - L* (log)")
    target = pd.DataFrame({"target": [result.target_loss - result.best_loss],
                           "label": ["target"]})
    rule = alt.Chart(target).mark_rule(strokeDash=[6, 4], color="black").encode(
        y="target:Q", tooltip=[alt.Tooltip("target:Q", title="target L - L*", format=".3g")])
    return lines + rule


def lab_curves(lab, runs, title: str) -> alt.LayerChart:
    """Training loss (evaluation mode, whole training split) against the step for some runs,
    with the target loss as a dashed line."""
    frame = lab.evals[lab.evals["run"].isin(runs) & (lab.evals["train_loss"] > 0)]
    lines = (
        alt.Chart(frame, title=title)
        .mark_line(clip=True)
        .encode(
            x=alt.X("step:Q"),
            y=alt.Y("train_loss:Q", scale=alt.Scale(type="log"), title="training loss (log)"),
            color=alt.Color("run:N", sort=list(runs), scale=alt.Scale(range=PALETTE)),
            tooltip=["run", "step", alt.Tooltip("train_loss:Q", format=".4g"),
                     alt.Tooltip("val_metric:Q", title=f"validation {lab.metric}", format=".3f")],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    target = pd.DataFrame({"target": [lab.target_loss]})
    rule = alt.Chart(target).mark_rule(strokeDash=[6, 4], color="black").encode(
        y="target:Q", tooltip=[alt.Tooltip("target:Q", title="target loss", format=".3g")])
    return lines + rule


def lab_curvature(lab) -> alt.Chart:
    """lambda_max at the start per run (log scale); the tooltip adds the stable rate 2/lambda_max."""
    return (
        alt.Chart(lab.runs[["run", "lambda_max", "stable_lr", "lr"]], title="Sharpness at the start")
        .mark_bar()
        .encode(
            x=alt.X("run:N", sort=None, title=None),
            y=alt.Y("lambda_max:Q", scale=alt.Scale(type="log"), title="lambda_max (log)"),
            color=alt.Color("run:N", sort=list(lab.runs["run"]), scale=alt.Scale(range=PALETTE), legend=None),
            tooltip=["run", alt.Tooltip("lambda_max:Q", format=".4g"),
                     alt.Tooltip("stable_lr:Q", title="2 / lambda_max", format=".4g"),
                     alt.Tooltip("lr:Q", title="rate used", format=".4g")],
        )
        .properties(width=WIDTH, height=220)
    )


def batch_curves(batches) -> alt.Chart:
    """Training-mode loss (each batch's statistics, smoothed; dashed) and evaluation-mode loss
    (running averages; solid) per run."""
    frame = batches.curves
    return (
        alt.Chart(frame, title="Batch norm: what training sees vs what evaluation sees")
        .mark_line(clip=True)
        .encode(
            x=alt.X("step:Q"),
            y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="training loss (log)"),
            color=alt.Color("run:N", sort=list(dict.fromkeys(frame["run"])), scale=alt.Scale(range=PALETTE)),
            strokeDash=alt.StrokeDash("mode:N", legend=alt.Legend(orient="bottom", direction="vertical",
                                                                  labelLimit=400)),
            tooltip=["run", "mode", "step", alt.Tooltip("loss:Q", format=".4g")],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
