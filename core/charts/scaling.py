"""Charts of the feature-scaling page (lecture 5.2): they read the results of
core.diagnoses.scaling_surface, scaling_lab, bn_curvature and batch_norm, and never compute.

Picking rows and columns of a result's frames is all they do. Runs are coloured by their display
label, in the order of the result's summary; feature names (user data) appear only as titles,
passed through core.charts.expr_safe where Vega-Lite may paste them into an expression.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.charts import HEIGHT, PALETTE, WIDTH, expr_safe
from core.diagnoses.scaling_surface import condition_text


def _title(text: str, subtitle: str = "") -> alt.TitleParams:
    # Anchored left with room above: long titles of layered charts were clipped at the top.
    return alt.TitleParams(text, subtitle=subtitle or alt.Undefined, anchor="start", offset=8)


def _colors(labels: list[str]) -> alt.Scale:
    return alt.Scale(domain=labels, range=PALETTE[: len(labels)])


# Streamlit fits a view's title, axes and legend into `height` ("fit"), which squashed plots and
# clipped titles at the top (issue 17): only the width is fitted here, so the plot area keeps its
# height and the title and axes are added around it.
# "fit-x" keeps the picture within the page's width, legend included.
PAD = alt.AutoSizeParams(type="fit-x", contains="padding")


def _label_color(order: list[str], title: str) -> alt.Color:
    """Colour by the run's display label, in `order`. Lines and their bands share this channel
    and its legend (legend=None on either layer removed it from both), drawn at full opacity
    so the bands' transparency does not fade it."""
    return alt.Color("label:N", title=title, sort=order, scale=_colors(order),
                     legend=alt.Legend(symbolOpacity=1, labelLimit=320))


# --------------------------------------------------------------------------- 1. error surface
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
    x_title, y_title = f"w1 (weight of {x1})", f"w2 (weight of {x2})"
    cells = (
        alt.Chart(grid.assign(w1_lo=grid["w1"] - half1, w1_hi=grid["w1"] + half1,
                              w2_lo=grid["w2"] - half2, w2_hi=grid["w2"] + half2),
                  title=_title(panel.label.capitalize(), f"condition number {condition_text(panel.condition)}"))
        .mark_rect()
        .encode(
            x=alt.X("w1_lo:Q", title=expr_safe(x_title), axis=alt.Axis(title=x_title), scale=x_scale),
            x2="w1_hi:Q",
            y=alt.Y("w2_lo:Q", title=expr_safe(y_title), axis=alt.Axis(title=y_title), scale=y_scale),
            y2="w2_hi:Q",
            color=alt.Color("loss:Q", title="loss (log)", scale=alt.Scale(type="log", scheme="viridis")),
            tooltip=[alt.Tooltip("w1:Q", format=".4g"), alt.Tooltip("w2:Q", format=".4g"),
                     alt.Tooltip("loss:Q", format=".4g")],
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
    return (cells + line + dots + points + labels).properties(width=size, height=size, autosize=PAD)


def surface_curves(result) -> alt.LayerChart:
    """Loss above the optimum against the step (log-log) for raw and standardized inputs, with
    the target as a dashed line."""
    frame = pd.concat([result.raw.curve, result.standardized.curve], ignore_index=True)
    frame = frame[frame["excess"] > 0]
    order = [result.raw.label, result.standardized.label]
    lines = alt.Chart(frame).mark_line(clip=True).encode(
        x=alt.X("step:Q", title="step (log)", scale=alt.Scale(type="log")),
        y=alt.Y("excess:Q", title="loss above the optimum, L − L* (log)", scale=alt.Scale(type="log")),
        color=alt.Color("inputs:N", title="inputs", sort=order, scale=_colors(order)),
        tooltip=["inputs", "step", alt.Tooltip("loss:Q", format=".4g"), alt.Tooltip("excess:Q", format=".3g")],
    )
    target = pd.DataFrame({"target": [result.target_loss - result.best_loss]})
    rule = alt.Chart(target).mark_rule(strokeDash=[6, 4], color="black").encode(
        y="target:Q", tooltip=[alt.Tooltip("target:Q", title="target L − L*", format=".3g")])
    return alt.layer(lines, rule).properties(
        width=WIDTH, height=HEIGHT, autosize=PAD,
        title=_title("Gradient descent at each one's largest stable rate",
                     f"{result.raw.lr / result.raw.stable_lr:g} × 2/λmax; dashed: the target"))


# --------------------------------------------------------------------------- 2. lab model
def _band_and_lines(frame: pd.DataFrame, color, y_title: str) -> tuple[alt.Chart, alt.Chart]:
    """The seeds' band (lowest to highest) and the mean line of a per-step loss, on a log scale."""
    base = alt.Chart(frame)
    x = alt.X("step:Q", title="step (optimizer update)")
    y_scale = alt.Scale(type="log")
    lines = base.mark_line(clip=True).encode(
        x=x, y=alt.Y("mean:Q", title=y_title, scale=y_scale), color=color,
        tooltip=["label", "step", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("low:Q", format=".4g"),
                 alt.Tooltip("high:Q", format=".4g")])
    band = base.mark_area(opacity=0.15, clip=True).encode(x=x, y=alt.Y("low:Q", scale=y_scale), y2="high:Q",
                                                          color=color)
    return band, lines


def lab_curves(lab, runs: list[str], title: str) -> alt.LayerChart:
    """Smoothed training loss against the step for some runs (stable keys): the mean over seeds
    with a band from the lowest to the highest seed, and the target loss as a dashed line."""
    order = [lab.summary.set_index("run").at[k, "label"] for k in runs]
    frame = lab.bands[lab.bands["run"].isin(runs) & (lab.bands["mean"] > 0) & (lab.bands["low"] > 0)]
    color = _label_color(order, "inputs")
    seeds = len(lab.seeds)
    band, lines = _band_and_lines(frame, color, "training loss, smoothed (log)")
    rule = alt.Chart(pd.DataFrame({"target": [lab.target_loss]})).mark_rule(strokeDash=[6, 4], color="black").encode(
        y="target:Q", tooltip=[alt.Tooltip("target:Q", title="target loss", format=".3g")])
    layers = ([band] if seeds > 1 else []) + [lines, rule]
    sub = (f"mean of {seeds} seeds, band: lowest to highest; " if seeds > 1 else "") + "dashed: the target loss"
    return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, autosize=PAD, title=_title(title, sub))


def lab_curvature(lab) -> alt.LayerChart:
    """lambda_max at the start per run on a log scale: one grey dot per seed and the geometric mean
    (the result's summary) as a coloured tick (points, not bars: a bar on a log scale has no zero to start from)."""
    order = list(lab.summary["label"])
    x = alt.X("label:N", sort=order, title=None, axis=alt.Axis(labelAngle=0))
    y_scale = alt.Scale(type="log")
    seeds = alt.Chart(lab.runs[["label", "seed", "lambda_max", "stable_lr"]]).mark_point(
        color="gray", opacity=0.7, size=40).encode(
        x=x, y=alt.Y("lambda_max:Q", title="λmax at the start (log)", scale=y_scale),
        tooltip=["label", "seed", alt.Tooltip("lambda_max:Q", title="λmax", format=".4g"),
                 alt.Tooltip("stable_lr:Q", title="2 / λmax", format=".4g")])
    means = alt.Chart(lab.summary[["label", "lambda_max", "stable_lr"]]).mark_tick(
        thickness=3, size=36).encode(
        x=x, y=alt.Y("lambda_max:Q", scale=y_scale),
        color=alt.Color("label:N", sort=order, scale=_colors(order), legend=None),
        tooltip=["label", alt.Tooltip("lambda_max:Q", title="λmax (geometric mean)", format=".4g"),
                 alt.Tooltip("stable_lr:Q", title="2 / λmax (geometric mean)", format=".4g")])
    return alt.layer(seeds, means).properties(
        width=WIDTH, height=240, autosize=PAD,
        title=_title("Sharpness at the start",
                     "λmax of the whole training loss; dots: seeds, ticks: their geometric mean"))


# --------------------------------------------------------------------------- 3. batch norm's curvature
def sweep_chart(curv) -> alt.LayerChart:
    """Loss reached by plain gradient descent at each rate, with and without batch norm (mean over
    seeds with a band), the rates that diverged as crosses along the top, and each model's
    2/lambda_max at the start as a dashed vertical line."""
    order = list(curv.summary["label"])
    color = _label_color(order, "model")
    x_scale = alt.Scale(type="log")
    y_scale = alt.Scale(type="log")
    x = alt.X("lr:Q", title="learning rate of plain gradient descent (log)", scale=x_scale)
    base = alt.Chart(curv.bands[curv.bands["mean"] > 0])
    lines = base.mark_line(point=True, clip=True).encode(
        x=x, y=alt.Y("mean:Q", title="training loss over the last 20% of steps (log)", scale=y_scale), color=color,
        tooltip=["label", alt.Tooltip("lr:Q", format=".3g"), alt.Tooltip("mean:Q", format=".4g"),
                 alt.Tooltip("low:Q", format=".4g"), alt.Tooltip("high:Q", format=".4g"), "n"])
    band = base.mark_area(opacity=0.15, clip=True).encode(x=x, y=alt.Y("low:Q", scale=y_scale), y2="high:Q",
                                                          color=color)
    top = float(curv.bands["high"].max()) * 1.4 if len(curv.bands) else 1.0
    bad = curv.sweep[curv.sweep["status"] == "diverged"].assign(top=top)
    crosses = alt.Chart(bad).mark_point(shape="cross", size=90, filled=True, clip=True).encode(
        x=x, y=alt.Y("top:Q", scale=y_scale), color=color,
        tooltip=["label", "seed", alt.Tooltip("lr:Q", format=".3g"), alt.Tooltip("diverged_at:Q", title="diverged at step")])
    bounds = alt.Chart(curv.summary[["label", "stable_lr"]]).mark_rule(strokeDash=[6, 4]).encode(
        x=alt.X("stable_lr:Q", scale=x_scale), color=color,
        tooltip=["label", alt.Tooltip("stable_lr:Q", title="2 / λmax at the start (geometric mean)", format=".3g")])
    return alt.layer(band, lines, crosses, bounds).properties(
        width=WIDTH, height=HEIGHT, autosize=PAD,
        title=_title("Plain gradient descent at each rate",
                     "dashed: each model's 2/λmax at the start; crosses: rates that diverged"))


# --------------------------------------------------------------------------- 4. batch norm inside
def bn_params_chart(bn) -> alt.Chart:
    """The learned gamma and beta of every batch-norm unit after training (lab seed, normal batch)."""
    frame = bn.params.melt(id_vars=["layer", "unit"], value_vars=["gamma", "beta"], var_name="parameter")
    frame["unit_label"] = frame["layer"].astype(str) + "." + frame["unit"].astype(str)
    order = list(dict.fromkeys(frame["unit_label"]))
    return (
        alt.Chart(frame)
        .mark_point(filled=True, size=50)
        .encode(
            x=alt.X("unit_label:N", sort=order, title="batch-norm layer . unit", axis=alt.Axis(labelAngle=-90)),
            y=alt.Y("value:Q", title="value after training"),
            color=alt.Color("parameter:N", sort=["gamma", "beta"], scale=_colors(["gamma", "beta"])),
            shape=alt.Shape("parameter:N", sort=["gamma", "beta"], scale=alt.Scale(domain=["gamma", "beta"])),
            tooltip=["layer", "unit", "parameter", alt.Tooltip("value:Q", format=".4g")],
        )
        .properties(width=WIDTH, height=220, autosize=PAD,
                    title=_title("Learned scale (gamma) and shift (beta)", "they start at 1 and 0"))
    )


def bn_curves(bn) -> alt.LayerChart:
    """Smoothed training-mode loss of each batch-norm run against the step (mean over seeds, band)."""
    order = list(bn.summary["label"])
    color = _label_color(order, "run")
    frame = bn.bands[(bn.bands["mean"] > 0) & (bn.bands["low"] > 0)]
    band, lines = _band_and_lines(frame, color, "training-mode loss, smoothed (log)")
    return alt.layer(band, lines).properties(
        width=WIDTH, height=HEIGHT, autosize=PAD,
        title=_title("What training sees: each batch's own statistics", "mean over seeds, band: lowest to highest"))


def bn_modes_chart(bn) -> alt.LayerChart:
    """Per run: the training-mode loss (last 20% of steps) beside the evaluation-mode loss on the
    training rows at the end (running averages); dots are seeds, ticks their mean."""
    order = list(bn.summary["label"])
    modes = ["training", "evaluation"]
    x = alt.X("label:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelLimit=200))
    offset = alt.XOffset("mode:N", sort=modes)
    color = alt.Color("mode:N", title="mode", sort=modes, scale=_colors(modes))
    y = alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=True))
    dots = alt.Chart(bn.modes).mark_point(opacity=0.6, size=36).encode(
        x=x, xOffset=offset, y=y, color=color,
        tooltip=["label", "mode", "seed", alt.Tooltip("loss:Q", format=".4g")])
    mean = bn.summary.rename(columns={"train_mode_loss": "training", "eval_train_loss": "evaluation"}).melt(
        id_vars=["label"], value_vars=modes, var_name="mode", value_name="loss")
    means = alt.Chart(mean).mark_tick(thickness=3, size=22).encode(
        x=x, xOffset=offset, y=alt.Y("loss:Q"), color=color,
        tooltip=["label", "mode", alt.Tooltip("loss:Q", title="mean loss", format=".4g")])
    return alt.layer(dots, means).properties(
        width=WIDTH, height=240, autosize=PAD,
        title=_title("Training mode (batch statistics) vs evaluation mode (running averages)",
                     "dots: seeds, bars: their mean"))
