"""Charts of the loss-function page: they read a core.diagnoses.loss_function.Result, never compute.

Picking rows and columns of the result's frames is all they do.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.charts import HEIGHT, PALETTE, PLOT_HEIGHT_KEPT, WIDTH, heatmap, markers

RUN_ORDER = ["cross-entropy", "softmax + MSE", "raw outputs + MSE"]
_RUN_COLOR = alt.Color("run:N", title="loss", sort=RUN_ORDER, scale=alt.Scale(domain=RUN_ORDER, range=PALETTE[:3]))
_TITLES = {
    "accuracy": ("Training accuracy", "training accuracy"),
    "loss": ("Training loss (each on its own scale)", "loss (log scale)"),
    "grad_norm": ("Gradient norm", "gradient norm (log scale)"),
}


def _run_color(labels) -> alt.Color:
    """One colour per loss actually shown: the legend lists only the runs that were trained."""
    shown = [label for label in RUN_ORDER if label in set(labels)]
    colors = [PALETTE[RUN_ORDER.index(label)] for label in shown]
    return alt.Color("label:N", title="loss", sort=shown, scale=alt.Scale(domain=shown, range=colors))


def training_curves(result, column: str) -> alt.Chart | alt.LayerChart:
    """The mean over seeds of `column` ("accuracy", "loss" or "grad_norm") per loss against the
    step, with a band from the lowest to the highest seed.

    Loss and gradient norm use a log axis (the runs differ by orders of magnitude); accuracy gets
    a dashed rule at the verdict's goal. NaN/inf and non-positive values on a log axis are left
    out, so a diverged run still draws the part before it diverged.
    """
    title, y_title = _TITLES[column]
    log = column != "accuracy"
    frame = result.bands[result.bands["measure"] == column][["label", "step", "mean", "low", "high"]]
    frame = frame[frame["mean"].notna() & (frame["mean"].abs() != float("inf"))]
    if log:
        frame = frame[(frame["mean"] > 0) & (frame["low"] > 0)]
    scale = alt.Scale(type="log") if log else alt.Scale(domain=[0, 1])
    color = _run_color(frame["label"])
    seeds = int(result.summary["seeds"].max()) if len(result.summary) else 1
    # The seeds go in a subtitle: on one line with the title they ran past a half-width chart's edge.
    subtitle = [f"mean of {seeds} seeds, band: min to max"] if seeds > 1 else []
    if column == "accuracy":  # the goal may have been lowered: say which one the dashed line is
        subtitle.append(f"dashed: goal {result.goal_label()}")
    base = alt.Chart(frame, title=alt.Title(title, subtitle=subtitle) if subtitle else title)
    x = alt.X("step:Q", title="step (full-batch update)")
    lines = base.mark_line(clip=True).encode(
        x=x, y=alt.Y("mean:Q", title=y_title, scale=scale), color=color,
        tooltip=["label", "step", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("low:Q", format=".4g"),
                 alt.Tooltip("high:Q", format=".4g")])
    band = base.mark_area(opacity=0.18, clip=True).encode(x=x, y=alt.Y("low:Q", scale=scale), y2="high:Q",
                                                          color=color)
    layers = [band, lines] if seeds > 1 else [lines]
    if column == "accuracy":
        goal = pd.DataFrame({"goal": [result.goal]})  # the goal used (see the subtitle)
        layers.append(alt.Chart(goal).mark_rule(strokeDash=[6, 4], color="gray").encode(y="goal:Q", tooltip=["goal"]))
    return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT)


def loss_map(result, loss_function: str, size: int = 340) -> alt.LayerChart:
    """The two-logit picture for one loss: its heat map over (y1, y2), the gradient-descent path
    (a point per step) and the confidently wrong start."""
    grid = result.grid[result.grid["loss function"] == loss_function].drop(columns="loss function")
    lo, hi = float(grid["y1"].min()), float(grid["y1"].max())
    path = result.paths[result.paths["loss function"] == loss_function]
    path = path[path["y1"].between(lo, hi) & path["y2"].between(lo, hi)]
    base = heatmap(grid, x="y1", y="y2", value="loss", title=f"{loss_function}, target class 1",
                   x_title="y1 (logit of the right class)", y_title="y2 (logit of the wrong class)", size=size)
    enc = alt.Chart(path).encode(
        x="y1:Q", y="y2:Q", order="step:Q",
        tooltip=["step", alt.Tooltip("y1:Q", format=".3f"), alt.Tooltip("y2:Q", format=".3f"),
                 alt.Tooltip("loss:Q", format=".4g"), alt.Tooltip("grad_norm:Q", format=".2g")],
    )
    line = enc.mark_line(color="#D55E00", strokeWidth=2, clip=True)
    dots = enc.mark_point(color="#D55E00", size=18, filled=True, clip=True)
    first = path[path["step"] == 0]
    start = markers(pd.DataFrame({"y1": first["y1"], "y2": first["y2"], "label": "start"}), x="y1", y="y2")
    return alt.layer(base, start, line, dots)  # the path on top: the MSE path barely leaves the start


def path_probability(result) -> alt.Chart:
    """Probability of the right class along each picture path, against the step."""
    frame = result.paths[["loss function", "step", "p_correct", "grad_norm"]]
    return (
        alt.Chart(frame, title=alt.TitleParams("Probability of the right class along each path", anchor="start"))
        .mark_line(point=alt.OverlayMarkDef(size=14))
        .encode(
            x=alt.X("step:Q", title="gradient-descent step on the picture"),
            y=alt.Y("p_correct:Q", title="softmax probability of class 1", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("loss function:N", title="loss", sort=RUN_ORDER,
                            scale=alt.Scale(domain=RUN_ORDER[:2], range=PALETTE[:2])),
            tooltip=["loss function", "step", alt.Tooltip("p_correct:Q", format=".4g"),
                     alt.Tooltip("grad_norm:Q", format=".2g")],
        )
        # Fitted into 240 px the plot kept 95 px and the long y title pushed the title off the top.
        .properties(width=WIDTH, height=200, autosize=PLOT_HEIGHT_KEPT)
    )


CLASS_COLORS = alt.Scale(domain=["A", "B", "C"], range=[PALETTE[0], PALETTE[1], PALETTE[2]])


def class_code_map(result) -> alt.Chart:
    """Validation rows of the classes-as-numbers demo (core.diagnoses.class_codes), coloured by
    the predicted class, one panel per coding; the shape is the true class."""
    return (
        alt.Chart(result.predictions)
        .mark_point(filled=True, size=40, opacity=0.8)
        .encode(x=alt.X("x1:Q"), y=alt.Y("x2:Q"),
                color=alt.Color("predicted:N", title="predicted class", scale=CLASS_COLORS),
                shape=alt.Shape("true:N", title="true class", sort=["A", "B", "C"]),
                tooltip=["label", "true", "predicted", alt.Tooltip("raw_output:Q", format=".2f")])
        .properties(width=320, height=260)
        .facet(column=alt.Column("label:N", title=None, sort=list(result.summary["label"])))
        .properties(title="Lecture 5.1: classes coded as numbers (validation rows, colour = predicted class)")
    )
