"""Every chart is shown through `show_chart`, which adds PNG, SVG and CSV download buttons."""
from __future__ import annotations

from functools import partial
from typing import Callable, Hashable

import altair as alt
import streamlit as st

from core.export import FORMATS, MIME, chart_bytes, file_name
from ui.state import current_setup


CHART_MEMO_KEY = "_chart_memo"  # session state: chart key -> (inputs, built chart)
FROM_LAB = object()  # default of show_chart's dataset/seed: the lab dataset and seed the sidebar chose


def show_chart(
    chart: alt.TopLevelMixin | Callable[[], alt.TopLevelMixin],
    page: str,
    name: str,
    key: str | None = None,
    memo: Hashable | None = None,
    dataset: str | None | object = FROM_LAB,
    seed: int | None | object = FROM_LAB,
) -> None:
    """Draw a chart and its export buttons; file names say page, chart, dataset and seed.

    File names carry only the chart's own inputs: a chart of the lab data keeps the defaults; a
    chart that reads no dataset passes `dataset=None` or its own input's name (a toy surface:
    `dataset="monkey saddle"`), and one that draws no random numbers passes `seed=None`.

    The bytes are made only when a button is clicked (a callable `data`), so drawing a page
    never pays for rendering PNGs nobody asked for. Pass a zero-argument builder and `memo`
    (the hashable inputs the chart depends on, e.g. (setup, config, log_y)) to build a heavy chart
    once per session: Altair spends ~0.1-0.2 s constructing a many-layer chart on every rerun.
    """
    key = key or f"{page}_{name}"
    if callable(chart):
        chart = _memo_build(key, chart, memo)
    st.altair_chart(chart)
    setup = current_setup()
    dataset = setup.data.label if dataset is FROM_LAB else dataset
    seed = setup.seed if seed is FROM_LAB else seed
    with st.container(horizontal=True, gap="small"):
        for fmt in FORMATS:
            _button(chart, fmt, key, file_name(page, name, dataset, seed, fmt))


def _memo_build(key: str, build: Callable[[], alt.TopLevelMixin], memo: Hashable | None) -> alt.TopLevelMixin:
    """The chart built for these inputs earlier in this session, or a fresh one (then kept)."""
    if memo is None:
        return build()
    store = st.session_state.setdefault(CHART_MEMO_KEY, {})
    kept = store.get(key)
    if kept is not None and kept[0] == memo:
        return kept[1]
    chart = build()
    store[key] = (memo, chart)
    return chart


def _button(chart, fmt, key, name) -> None:
    st.download_button(
        fmt.upper(),
        data=partial(chart_bytes, chart, fmt),
        file_name=name,
        mime=MIME[fmt],
        key=f"export_{key}_{fmt}",
        on_click="ignore",
        icon=":material/download:",
        help=f"Download this chart as {fmt.upper()}" if fmt != "csv" else "Download this chart's data as CSV",
    )
