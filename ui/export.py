"""Every chart is shown through `show_chart`, which adds PNG, SVG and CSV download buttons."""
from __future__ import annotations

from functools import partial

import altair as alt
import streamlit as st

from core.export import FORMATS, MIME, chart_bytes, file_name
from ui.state import current_setup


def show_chart(chart: alt.TopLevelMixin, page: str, name: str, key: str | None = None) -> None:
    """Draw a chart and its export buttons; file names say page, chart, dataset and seed.

    The bytes are made only when a button is clicked (a callable `data`), so drawing a page
    never pays for rendering PNGs nobody asked for.
    """
    st.altair_chart(chart)
    setup = current_setup()
    key = key or f"{page}_{name}"
    with st.container(horizontal=True, gap="small"):
        for fmt in FORMATS:
            _button(chart, fmt, page, name, key, setup)


def _button(chart, fmt, page, name, key, setup) -> None:
    st.download_button(
        fmt.upper(),
        data=partial(chart_bytes, chart, fmt),
        file_name=file_name(page, name, setup.data.label, setup.seed, fmt),
        mime=MIME[fmt],
        key=f"export_{key}_{fmt}",
        on_click="ignore",
        icon=":material/download:",
        help=f"Download this chart as {fmt.upper()}" if fmt != "csv" else "Download this chart's data as CSV",
    )
