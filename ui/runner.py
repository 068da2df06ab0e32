"""Cached runners: the only place pages reach the engine's slow work.

Same setup and config, same numbers: a rerun is served from st.cache_data. The progress bar is
created inside the cached function because Streamlit replays a cached function's elements and
refuses ones placed in a container made outside it; it is emptied before returning, so a replay
shows nothing.
"""
from __future__ import annotations

import importlib
import logging
import time
from typing import Any, Callable

import streamlit as st

from core.data import DataError, Dataset
from core.lab import DataSpec, LabSetup, load_data
from ui.verdict import escape_markdown

log = logging.getLogger("trainscope")


def upload_limit_mb() -> int:
    """The largest upload the server accepts, in MB (server.maxUploadSize)."""
    return int(st.get_option("server.maxUploadSize"))


def missing_file_message(name: str = "") -> str:
    """Why there is no data while "Upload CSV" is chosen: no file yet, or the one the URL names is gone."""
    limit = upload_limit_mb()
    if name:
        return (f"The file '{name}' named in this page's address is no longer loaded: uploaded files are "
                "not kept when the page is reloaded or the link is opened elsewhere. Upload it again in "
                f"the sidebar (CSV, up to {limit} MB) to continue with it.")
    return (f"No file is loaded yet. Upload a CSV file in the sidebar (up to {limit} MB); a larger file "
            "is refused by the uploader and not loaded.")


# Small: an entry holds a whole dataset (a 50 MB file makes ~50 MB of float32), and each hit
# unpickles a copy of it.
@st.cache_data(show_spinner="Loading data…", max_entries=4)
def _load_cached(spec: DataSpec, seed: int) -> Dataset:
    return load_data(spec, seed)


def load_dataset(spec: DataSpec, seed: int) -> Dataset:
    """Load (and cache) the dataset a DataSpec names; raises DataError with a message for the page.

    A CSV is loaded whole; its seed plays no part, so changing the lab seed does not reload it.
    """
    if spec.builtin is None and spec.csv_bytes is None:
        raise DataError(missing_file_message(spec.csv_name))
    return _load_cached(spec, seed if spec.builtin is not None else 0)


@st.cache_data(show_spinner=False, max_entries=16)
def csv_column_names(csv_bytes: bytes) -> list[str]:
    """Column names of an uploaded CSV, for the target picker."""
    from core.data import csv_columns

    return csv_columns(csv_bytes)


@st.cache_data(show_spinner=False, max_entries=64)
def _run_cached(target: str, setup: LabSetup, config: Any, label: str, needs_data: bool = True) -> Any:
    module_name, func_name = target.rsplit(".", 1)
    fn = getattr(importlib.import_module(module_name), func_name)
    data = load_dataset(setup.data, setup.seed) if needs_data else None
    bar, on_progress = progress_bar(label)
    try:
        return fn(data, setup, config, on_progress=on_progress)
    finally:
        bar.empty()


def progress_bar(label: str):
    """A progress bar and the `on_progress(fraction, message)` callback that drives it (where a
    Stop lands). Create it inside the cached function that reports to it (see the module doc)."""
    bar = st.progress(0.0, text=label)
    last = [0.0]

    def on_progress(fraction: float, message: str) -> None:
        # Each update is a message to the browser: a few per second are enough.
        now = time.perf_counter()
        if now - last[0] > 0.15 or fraction >= 1.0:
            last[0] = now
            bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"{label}: {message}")

    return bar, on_progress


def run_diagnosis(
    fn: Callable, setup: LabSetup, config: Any, label: str = "Running", needs_data: bool = True
) -> Any | None:
    """Run a core diagnosis `fn(data, setup, config, on_progress)` through the cache.

    `needs_data=False` passes data=None without loading the lab dataset, for runs on a toy
    surface that must work even while the sidebar's dataset is unusable (e.g. no file uploaded).

    Returns the result, or None after showing a plain message when the input is bad
    (DataError / ValueError) or the engine failed; never a traceback on screen.
    """
    try:
        return _run_cached(f"{fn.__module__}.{fn.__qualname__}", setup, config, label, needs_data)
    except (DataError, ValueError) as exc:
        st.error(escape_markdown(str(exc)))  # messages quote file and column names: show them literally
    except Exception as exc:  # noqa: BLE001 - the user gets a message, the log gets the trace
        log.exception("diagnosis %s failed", fn.__qualname__)
        st.error(escape_markdown(f"The diagnosis stopped on an internal error ({type(exc).__name__}: {exc}). "
                                 "Try another setting; the details are in the server log."))
    return None
