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

import streamlit as st

URL_BINDING = "query-params"
FILE_PARAM = "lab_file"  # the uploaded CSV's name, so a reload can say which file is missing


def bound(key: str) -> dict:
    """Keyword arguments that give a widget `key` and bind its value to the URL parameter `key`.

    >>> bound("stall_lr")
    {'key': 'stall_lr', 'bind': 'query-params'}
    """
    return {"key": key, "bind": URL_BINDING}


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
