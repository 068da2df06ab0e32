"""Charts of the saddle escape race: they read a core.diagnoses.saddle.Result, never compute.

Each builder takes the result and which start to show ("exact" or "pushed"); picking rows of
the result's frames is all they do.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.charts import HEIGHT, PALETTE, PLOT_HEIGHT_KEPT, WIDTH, heatmap, markers

RACER_ORDER = ["Gradient descent", "GD + gradient noise", "Curvature step, then GD", "Momentum", "Nesterov", "Adam"]
# Step axes count whole updates. tickMinStep alone still lets Vega put ticks at 0.5 on a 2-step
# axis (its tick count is span/step + 1), so fractional ticks lose their label, tick and grid line.
_FRACTION = "datum.value % 1 != 0"


def _step_axis() -> alt.Axis:
    return alt.Axis(format="d", tickMinStep=1, labelExpr=f"{_FRACTION} ? '' : datum.label",
                    tickOpacity={"condition": {"test": _FRACTION, "value": 0}, "value": 1},
                    gridOpacity={"condition": {"test": _FRACTION, "value": 0}, "value": 1})


_RACER_COLOR = alt.Color("label:N", title="racer", sort=RACER_ORDER,
                         scale=alt.Scale(domain=RACER_ORDER, range=PALETTE[: len(RACER_ORDER)]))


def _laps(result, start: str) -> pd.DataFrame:
    return result.frame[result.frame["start"] == start]


def race_map(result, start: str, axis_names: tuple[str, str] = ("x", "y"), size: int = 460) -> alt.LayerChart:
    """Trajectories over the surface's heat map: one colour per racer, a point per step, the
    saddle, the pushed start and the minima marked. Zoomed to the surface's plot bounds."""
    grid = result.grid
    base = heatmap(grid, value="loss", title=f"{result.surface_label}: paths from {_start_words(start)}",
                   x_title=axis_names[0], y_title=axis_names[1], scheme="viridis", size=size)
    frame = _laps(result, start)
    frame = frame[frame["x"].between(grid["x"].min(), grid["x"].max())
                  & frame["y"].between(grid["y"].min(), grid["y"].max())]
    # The racers' legend goes under the map: beside the loss colour bar it ran past the chart's
    # bottom and lost its last racer (issue 17).
    color = _RACER_COLOR.copy()
    color.legend = alt.Legend(orient="bottom", columns=3, labelLimit=260)
    path = alt.Chart(frame).encode(
        x="x:Q", y="y:Q", order="step:Q", color=color, detail="label:N",
        tooltip=["label", "step", alt.Tooltip("x:Q", format=".4f"), alt.Tooltip("y:Q", format=".4f"),
                 alt.Tooltip("loss:Q", format=".4f")],
    )
    lines = path.mark_line(strokeWidth=2, opacity=0.9, clip=True)
    dots = path.mark_point(size=16, filled=True, clip=True)
    marks = result.marks
    saddle = markers(marks[marks["label"] == "saddle"])
    start_mark = (alt.Chart(marks[marks["label"] == "pushed start"]).mark_point(shape="cross", size=90, color="red",
                                                                                  strokeWidth=2)
                  .encode(x="x:Q", y="y:Q", tooltip=["label", "x", "y"]))
    minima = (alt.Chart(marks[marks["label"] == "minimum"]).mark_point(shape="circle", size=70, color="white",
                                                                        strokeWidth=2)
              .encode(x="x:Q", y="y:Q", tooltip=["label", "x", "y"]))
    over = [lines, dots, minima, saddle] + ([start_mark] if start == "pushed" else [])
    # The heat map's colour is the loss, the paths' colour the racer: two independent scales.
    return alt.layer(base, alt.layer(*over)).resolve_scale(color="independent")


def loss_curves(result, start: str) -> alt.LayerChart:
    """Loss against step per racer, with the escape line L(saddle) - delta dashed."""
    frame = _laps(result, start)
    frame = frame[frame["loss"].notna() & frame["loss"].abs().lt(float("inf"))]
    lines = (
        alt.Chart(frame, title=f"Loss per step, from {_start_words(start)}")
        .mark_line(clip=True)
        .encode(x=alt.X("step:Q", title="step", axis=_step_axis()), y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
                color=_RACER_COLOR, tooltip=["label", "step", alt.Tooltip("loss:Q", format=".5f")])
    )
    level = pd.DataFrame({"loss": [result.saddle_loss - result.config.delta], "what": ["escape: L(saddle) - delta"]})
    rule = alt.Chart(level).mark_rule(strokeDash=[5, 4], color="gray").encode(y="loss:Q", tooltip=["what", "loss"])
    return alt.layer(lines, rule).properties(width=WIDTH, height=HEIGHT)


def distance_curves(result, start: str) -> alt.Chart:
    """Distance from the saddle per step on a log axis: a straight climb is exponential escape
    (gradient descent grows the push by (1 + lr * |lambda_min|) per step). Zero distances (a
    racer that never moved) cannot be drawn on a log axis and are left out."""
    frame = _laps(result, start)
    frame = frame[frame["distance"] > 0]
    return (
        alt.Chart(frame, title=f"Distance from the saddle, from {_start_words(start)} (log scale)")
        .mark_line(clip=True)
        .encode(x=alt.X("step:Q", title="step", axis=_step_axis()),
                y=alt.Y("distance:Q", title="distance from the saddle", scale=alt.Scale(type="log")),
                color=_RACER_COLOR, tooltip=["label", "step", alt.Tooltip("distance:Q", format=".3g")])
        .properties(width=WIDTH, height=HEIGHT)
    )


def escape_bars(result, start: str) -> alt.LayerChart:
    """Steps to escape per racer: a bar for each racer that escaped, and a written "never escaped"
    or "diverged at step N" where a racer has no bar (a blank row read like 0 steps). When no
    racer escaped the title says so and the axis spans the step budget."""
    rows = result.table[result.table["start"] == start]
    budget = result.config.steps
    table = pd.DataFrame({
        "label": rows["label"].to_numpy(),
        "steps_to_escape": rows["steps_to_escape"].astype("float").to_numpy(),
        "note": ["" if e else f"diverged at step {int(d)}" if pd.notna(d) else f"never escaped in {budget} steps"
                 for e, d in zip(rows["escaped"], rows["diverged_at"])],
    })
    anyone = bool(rows["escaped"].any())
    title = (f"Steps to escape, from {_start_words(start)}" if anyone
             else f"No racer escaped from {_start_words(start)} within {budget} steps")
    # With no bar at all Vega-Lite had no domain and drew one "0.000000" tick: span the budget.
    scale = alt.Scale(domainMin=0) if anyone else alt.Scale(domain=[0, budget])
    y = alt.Y("label:N", title=None, sort=RACER_ORDER, axis=alt.Axis(labelLimit=220))
    base = alt.Chart(table, title=title)
    bars = base.mark_bar().encode(
        y=y, x=alt.X("steps_to_escape:Q", title="steps to escape", scale=scale, axis=_step_axis()),
        color=_RACER_COLOR, tooltip=["label", alt.Tooltip("steps_to_escape:Q", format="d")])
    notes = (base.transform_filter("datum.note != ''")
             .mark_text(align="left", baseline="middle", dx=4, color="#555555", fontStyle="italic")
             .encode(y=y, x=alt.datum(0), text="note:N", tooltip=["label", "note"]))
    # A 180 px chart fitted by Streamlit kept a 61 px plot: every other racer's name was hidden.
    return alt.layer(bars, notes).properties(width=WIDTH, height=200, autosize=PLOT_HEIGHT_KEPT)


def _start_words(start: str) -> str:
    return "exactly the saddle" if start == "exact" else "the pushed start"


WELL_ORDER = ["Gradient descent", "Momentum", "Adam"]
_WELL_COLOR = alt.Color("label:N", title="racer", sort=WELL_ORDER,
                        scale=alt.Scale(domain=WELL_ORDER, range=[PALETTE[0], PALETTE[3], PALETTE[5]]))


def well_map(result, size: int = 420) -> alt.LayerChart:
    """The double well's heat map with each racer's path (a core.diagnoses.local_minimum.Result)
    and the two minima, the ridge and the start marked."""
    base = heatmap(result.grid, value="loss", title="Lecture 2.2.1: rolling past a local minimum",
                   scheme="viridis", size=size)
    path = alt.Chart(result.frame).encode(
        x="x:Q", y="y:Q", order="step:Q", color=_WELL_COLOR, detail="label:N",
        tooltip=["label", "step", alt.Tooltip("x:Q", format=".3f"), alt.Tooltip("loss:Q", format=".4f")])
    marks = (alt.Chart(result.marks).mark_point(shape="diamond", size=90, color="white", strokeWidth=2)
             .encode(x="x:Q", y="y:Q", tooltip=["label", alt.Tooltip("x:Q", format=".3f")]))
    over = alt.layer(path.mark_line(strokeWidth=2, clip=True), path.mark_point(size=14, filled=True, clip=True),
                     marks)
    return alt.layer(base, over).resolve_scale(color="independent")


def well_loss(result) -> alt.Chart:
    """Loss per step of each racer on the double well."""
    return (
        alt.Chart(result.frame, title="Loss per step on the double well")
        .mark_line()
        .encode(x=alt.X("step:Q", title="step", axis=_step_axis()), y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
                color=_WELL_COLOR, tooltip=["label", "step", alt.Tooltip("loss:Q", format=".4f")])
        .properties(width=WIDTH, height=HEIGHT)
    )
