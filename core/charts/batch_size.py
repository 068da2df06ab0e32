"""Charts of the batch-size page: they read a core.diagnoses.batch_size.Result, never compute.

Every chart over batch sizes has a log batch-size axis with a tick per swept size, and where the
gradient noise scale B_simple was measured (and falls near the sweep) a dashed rule marks it.
"""
from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from core.charts import HEIGHT, PALETTE

PANEL = 270  # width of one panel when two sit side by side
SMALL = 180  # width of one panel when three sit side by side


def _sizes(result) -> list[int]:
    return [int(b) for b in result.sweep["batch_size"]]


def _noise_marked(result) -> bool:
    # Mark B_simple only near the sweep: a rule far outside would squash the swept sizes.
    b, sizes = result.b_simple, _sizes(result)
    return math.isfinite(b) and b > 0 and min(sizes) / 10 <= b <= max(sizes) * 10


def _x(result, title: str = "batch size (log scale)") -> alt.X:
    sizes = _sizes(result)
    lo, hi = min(sizes), max(sizes)
    if _noise_marked(result):
        lo, hi = min(lo, result.b_simple), max(hi, result.b_simple)
    return alt.X(
        "batch_size:Q", title=title,
        scale=alt.Scale(type="log", domain=[lo / 1.3, hi * 1.3], nice=False),
        axis=alt.Axis(values=sizes, format="d"),
    )


def _noise_rule(result, name: str) -> alt.LayerChart | None:
    if not _noise_marked(result):
        return None
    frame = pd.DataFrame({"batch_size": [result.b_simple], "label": [f"B_simple ≈ {result.b_simple:.3g}"]})
    base = alt.Chart(frame).encode(x="batch_size:Q", tooltip=["label", "batch_size"])
    # Vega needs unique mark names; the name also labels this layer's rows in the CSV export.
    rule = base.mark_rule(strokeDash=[6, 4], color="#555555").properties(name=f"{name}_noise_scale")
    text = base.mark_text(align="left", baseline="top", dx=4, dy=4, color="#555555").encode(
        text="label:N", y=alt.value(0)
    )
    return rule + text


def _lines(frame: pd.DataFrame, result, y: str, y_title: str, color: str | None, width: int,
           title: str, name: str, log_y: bool = False, zero_rule: bool = False,
           noise_rule: bool = True) -> alt.LayerChart:
    """Lines with points of `y` over the log batch-size axis, plus the B_simple rule."""
    # NaN (a failed run) is left out by Vega-Lite itself; a log axis also needs positive values.
    data = frame[np.isfinite(frame[y].astype(float)) & (frame[y] > 0)] if log_y else frame
    enc = dict(
        x=_x(result),
        y=alt.Y(f"{y}:Q", title=y_title,
                scale=alt.Scale(type="log") if log_y else alt.Scale(zero=False)),
        tooltip=[c for c in ("label", color, y) if c and c in data],
    )
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None, scale=alt.Scale(range=PALETTE),
                                 legend=alt.Legend(orient="bottom"))
    base = alt.Chart(data).encode(**enc)
    layers = [base.mark_line().properties(name=name), base.mark_point(filled=True, size=50)]
    if zero_rule:
        layers.append(alt.Chart(pd.DataFrame({y: [0.0]})).mark_rule(color="#999999").encode(y=f"{y}:Q")
                      .properties(name=f"{name}_zero"))
    rule = _noise_rule(result, name) if noise_rule else None
    if rule is not None:
        layers.append(rule)
    return alt.layer(*layers, title=title).properties(width=width, height=HEIGHT - 40)


def time_chart(result) -> alt.LayerChart:
    """Wall time per epoch and per update (ms, log axes) against the batch size."""
    sweep = result.sweep
    frame = pd.concat([
        pd.DataFrame({"batch_size": sweep["batch_size"], "label": sweep["label"], "measure": "per epoch",
                      "milliseconds": 1000 * sweep["seconds_per_epoch"]}),
        pd.DataFrame({"batch_size": sweep["batch_size"], "label": sweep["label"], "measure": "per update",
                      "milliseconds": 1000 * sweep["seconds_per_update"]}),
    ], ignore_index=True)
    return _lines(frame, result, "milliseconds", "wall time (ms, log scale)", "measure", 2 * PANEL + 60,
                  "Time per epoch and per update", "times", log_y=True)


def quality_chart(result) -> alt.HConcatChart:
    """Left: final training and validation metric; right: the generalization gap (train - val)."""
    sweep = result.sweep
    metric = pd.concat([
        pd.DataFrame({"batch_size": sweep["batch_size"], "label": sweep["label"], "split": "training",
                      "value": sweep["train_metric"]}),
        pd.DataFrame({"batch_size": sweep["batch_size"], "label": sweep["label"], "split": "validation",
                      "value": sweep["val_metric"]}),
    ], ignore_index=True)
    left = _lines(metric, result, "value", result.metric, "split", PANEL, f"Final {result.metric}", "metric")
    right = _lines(sweep[["batch_size", "label", "gap"]], result, "gap", f"train - validation {result.metric}",
                   None, PANEL, "Generalization gap", "gap", zero_rule=True)
    return alt.hconcat(left, right)


def sharpness_chart(result) -> alt.HConcatChart:
    """lambda_max, epsilon-sharpness and Hessian trace at each size's final weights."""
    frame = result.sweep[["batch_size", "label", "lambda_max", "eps_sharpness", "hessian_trace"]]
    panels = [
        ("lambda_max", "largest Hessian eigenvalue", "lambda_max"),
        ("eps_sharpness", "epsilon-sharpness (%)", "Keskar's epsilon-sharpness"),
        ("hessian_trace", "Hessian trace (Hutchinson)", "Hessian trace"),
    ]
    return alt.hconcat(*[
        _lines(frame, result, col, y_title, None, SMALL, title, col,
               noise_rule=False)
        for col, y_title, title in panels
    ])


def interpolation_chart(result) -> alt.TopLevelMixin:
    """Loss and metric along the line from the smallest-batch solution (alpha 0) to the largest (1)."""
    frame = result.interpolation
    labels = dict(zip(result.sweep["batch_size"], result.sweep["label"]))
    ends = pd.DataFrame({
        "alpha": [0.0, 1.0],
        "label": [f"batch {labels.get(result.interp_from, result.interp_from)}",
                  f"batch {labels.get(result.interp_to, result.interp_to)}"],
    })
    lo, hi = (float(frame["alpha"].min()), float(frame["alpha"].max())) if len(frame) else (-0.5, 1.5)

    def panel(y: str, y_title: str, title: str) -> alt.LayerChart:
        base = alt.Chart(frame).encode(
            x=alt.X("alpha:Q", title="alpha (0 = smallest batch, 1 = largest)",
                    scale=alt.Scale(domain=[lo, hi], nice=False)),
            y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color("split:N", title=None, scale=alt.Scale(range=PALETTE), legend=alt.Legend(orient="bottom")),
            tooltip=["alpha", "split", y],
        )
        marks = alt.Chart(ends).encode(x="alpha:Q", tooltip=["label", "alpha"])
        rules = marks.mark_rule(strokeDash=[4, 3], color="#777777").properties(name=f"{y}_solutions")
        labels = marks.mark_text(align="left", baseline="top", dx=3, dy=3, color="#555555").encode(
            text="label:N", y=alt.value(0)
        )
        return alt.layer(base.mark_line().properties(name=f"{y}_interpolation"), rules, labels, title=title).properties(width=PANEL, height=HEIGHT - 40)

    return alt.hconcat(
        panel("loss", "loss", "Loss along the line between the two solutions"),
        panel("metric", result.metric, f"{result.metric} along the line"),
    )
