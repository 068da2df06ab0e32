"""The data checks box every page that trains shows under its title.

    from ui.data_checks import show_data_checks
    show_data_checks(setup, key=PAGE)

A column that alone predicts the target gets a warning and a button that leaves it out (the
sidebar's "Leave out columns" list, which lives in the URL); an imbalanced target gets a notice.
Nothing shows for clean data or when the data cannot be loaded (the page reports that itself).
"""
from __future__ import annotations

import streamlit as st

from core.checks import DataCheck, data_checks
from core.data import DataError
from core.lab import DataSpec, LabSetup
from ui.lab import leave_out
from ui.runner import load_dataset, progress_bar
from ui.verdict import escape_markdown

CHECK_SEED = 0  # the leak test's sample does not follow the lab seed: a flag must not flicker


@st.cache_data(show_spinner=False, max_entries=16)
def checks_for(spec: DataSpec, seed: int) -> tuple[DataCheck, ...]:
    """The data checks for the lab data (cached); raises DataError when the data cannot be loaded."""
    data = load_dataset(spec, seed)
    bar, on_progress = progress_bar("Checking the data")
    try:
        return data_checks(data, seed=CHECK_SEED, on_progress=on_progress)
    finally:
        bar.empty()


def show_data_checks(setup: LabSetup, key: str) -> tuple[DataCheck, ...]:
    """Show the lab data's checks; `key` is the page's widget-key prefix. Returns the checks shown."""
    try:
        checks = checks_for(setup.data, setup.seed if setup.data.builtin is not None else 0)
    except DataError:
        return ()
    for i, check in enumerate(checks):
        if check.kind == "leak":
            st.warning(escape_markdown(check.text), icon=":material/warning:")
            if check.droppable and setup.data.builtin is None:
                st.button(f"Leave out {escape_markdown(check.column)}", key=f"{key}_leave_out_{i}",
                          on_click=leave_out, args=(check.column,), icon=":material/remove_circle:",
                          help="Adds the column to the sidebar's 'Leave out columns' list; "
                               "remove it there to bring it back.")
        else:
            st.info(escape_markdown(check.text), icon=":material/balance:")
    return checks
