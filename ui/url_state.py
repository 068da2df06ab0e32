"""Widgets that live in the URL, so a view can be reloaded, bookmarked and shared.

How a page binds a widget: give it a page-prefixed key and spread `bound(key)` into the call::

    lr = st.slider("Learning rate", 0.001, 1.0, 0.1, **bound("stall_lr"))

Streamlit 1.67's own binding (``bind="query-params"``) then keeps the value in the address as
``?stall_lr=0.3`` while it differs from the default, restores it when the page is reloaded or
the link is opened in another browser, and ignores (and removes) a value the widget cannot take.
It works for selectbox, radio, multiselect, slider, select_slider, number_input, text_input,
text_area, checkbox, toggle, segmented_control, pills, date_input and time_input; not for
file_uploader, buttons or data_editor. Change a bound value from code only through
``st.session_state[key]`` (Streamlit refuses ``st.query_params`` for bound keys).

An uploaded file cannot travel in an address; its name does (`remember_upload`), so that after a
reload the pages can say which file is gone instead of quietly showing other data.
"""
from __future__ import annotations

from typing import Callable, Iterable

import streamlit as st
from streamlit.errors import StreamlitAPIException

URL_BINDING = "query-params"
FILE_PARAM = "lab_file"  # the uploaded CSV's name, so a reload can say which file is missing


def bound(key: str, options: Iterable | None = None, format_func: Callable | None = None, many: bool = False) -> dict:
    """Keyword arguments that give a widget `key` and bind its value to the URL parameter `key`.

    For a radio, selectbox or multiselect that shows labels (`format_func`), pass its `options`
    and `format_func` too. Streamlit writes and reads the *label* (``?stall_source=Stall+scenario
    +%28built-in%29``) and silently drops anything else, so a link naming the option itself
    (``?stall_source=scenario``) opened the page with the default; with them, the option's own
    value is taken as well. `many=True` for a multiselect (``?lr_pv_names=cosine&lr_pv_names=step``).

    >>> bound("stall_lr")
    {'key': 'stall_lr', 'bind': 'query-params'}
    """
    if options is not None and format_func is not None:
        _accept_option_values(key, list(options), format_func, many)
    return {"key": key, "bind": URL_BINDING}


_UNWRITTEN = "_url_values_unwritten"  # keys chosen from an option's value in the URL, not yet written back


def _accept_option_values(key: str, options: list, format_func: Callable, many: bool) -> None:
    """When the URL names options of widget `key` by value instead of label, choose them through
    session state before the widget is drawn (Streamlit drops the unknown label from the URL and
    keeps this choice; a valid label in the URL is left to Streamlit's own binding)."""
    unwritten = st.session_state.setdefault(_UNWRITTEN, set())
    if key in unwritten:
        # Streamlit dropped the value from the address; set on a rerun, it writes the label back.
        unwritten.discard(key)
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
        return
    values = st.query_params.get_all(key)
    labels = {str(format_func(option)) for option in options}
    if not values or all(value in labels for value in values):
        return
    by_value = {str(option): option for option in options}
    by_label = {str(format_func(option)): option for option in options}
    chosen = [by_label.get(value, by_value.get(value)) for value in values]
    if None in chosen:
        return  # not an option at all: Streamlit drops it and the widget keeps its default
    written = [str(format_func(option)) for option in chosen]
    try:
        # Before the widget is bound (a fresh load), the address can take the labels themselves;
        # rerun so the binding seeds from them and a link copied at once keeps the choice.
        st.query_params[key] = written if many else written[-1]
    except StreamlitAPIException:  # bound already: choose through session state, written on the next change
        st.session_state[key] = chosen if many else chosen[-1]
        unwritten.add(key)
        return
    st.rerun()


def remember_upload(name: str) -> None:
    """Put the uploaded file's name in the URL (only when it changed: each write updates the address)."""
    if st.query_params.get(FILE_PARAM) != name:
        st.query_params[FILE_PARAM] = name


def forget_upload() -> None:
    """Take the uploaded file's name out of the URL (a built-in dataset is in use)."""
    if FILE_PARAM in st.query_params:
        del st.query_params[FILE_PARAM]


def upload_in_url() -> str:
    """The uploaded file's name the URL carries ("" when none)."""
    return str(st.query_params.get(FILE_PARAM, ""))
