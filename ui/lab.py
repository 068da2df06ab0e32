"""The "Lab setup" sidebar shared by every page: dataset, model and seed -> a LabSetup.

Every widget here is bound to the URL (ui.url_state.bound), so reloading a page or opening its
link elsewhere restores the setup. An uploaded file cannot travel in the URL: its name does, and
when the file is gone the pages say so (ui.runner.missing_file_message) instead of switching data.
"""
from __future__ import annotations

import re

import streamlit as st

from core.data import BUILTIN_DATASETS, BUILTIN_DESCRIPTIONS, BUILTIN_PARAMS, DataError
from core.lab import DataSpec, LabSetup
from core.models import ACTIVATIONS, ModelSpec, parse_hidden
from core.train import AUTO_CUDA_MIN_WORK, available_devices
from ui.runner import csv_column_names, upload_limit_mb
from ui.state import SETUP_KEY
from ui.url_state import bound, forget_upload, remember_upload, upload_in_url
from ui.verdict import escape_markdown
from ui.inputs import number_input

UPLOAD = "Upload CSV"
CSV_KEY = "lab_csv"  # (file name, bytes) of the last upload, kept across pages and reruns
DROP_KEY = "lab_drop"  # the "Leave out columns" multiselect
TASKS = {"infer from the target": None, "classification": "classification", "regression": "regression"}
DEFAULT_HIDDEN = (16, 16)
_NEGATIVE = re.compile(r"(?:^|[,;\s])-\s*\d")  # "-8" after a separator or at the start: not "32-8"


def lab_sidebar() -> LabSetup:
    """Draw the sidebar and return the LabSetup it describes (also stored in session state)."""
    with st.sidebar:
        st.header("Lab setup")
        data = _data_controls()
        model = _model_controls()
        seed = int(number_input(st, "Seed", 0, 2**31 - 1, 0, step=1, **bound("lab_seed"),
                                   help="Same seed, same data split, weights and batches: same numbers."))
        device = _device_control()
    setup = LabSetup(data=data, model=model, seed=seed, device=device)
    st.session_state[SETUP_KEY] = setup
    return setup


DEVICE_WORDS = {"auto": "auto (fastest for the model)", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}


def _device_control() -> str:
    """The device choice (only what this machine has) and a line saying what runs where."""
    choices = available_devices()
    device = st.selectbox("Device", choices, format_func=DEVICE_WORDS.get,
                          **bound("lab_device", choices, DEVICE_WORDS.get),
                          help="auto trains on a GPU only when the model and batch are large enough to gain "
                               "from it: the small models here train as fast on one CPU thread.")
    if device == "auto":
        accel = [d for d in choices if d in ("cuda", "mps")]
        where = (f"Runs on the CPU for small models and on {DEVICE_WORDS[accel[0]]} from "
                 f"{AUTO_CUDA_MIN_WORK:.0e} parameter-rows per update." if accel else
                 "Runs on the CPU: torch sees no GPU on this machine.")
    else:
        where = f"Every run trains on the {DEVICE_WORDS[device]}."
    if "mps" in (device, *([d for d in choices if d == "mps"] if device == "auto" else [])):
        where += " Curvature runs in float64 on the CPU (MPS has no float64)."
    st.caption(where)
    return device


def leave_out(column: str) -> None:
    """Add `column` to the sidebar's "Leave out columns" (a button callback: runs before the sidebar)."""
    chosen = list(st.session_state.get(DROP_KEY, []))
    if column not in chosen:
        st.session_state[DROP_KEY] = chosen + [column]


def _data_controls() -> DataSpec:
    datasets = (*BUILTIN_DATASETS, UPLOAD)
    shown = lambda n: n if n == UPLOAD else n.replace("_", " ")  # noqa: E731
    choice = st.selectbox("Dataset", datasets, format_func=shown, **bound("lab_dataset", datasets, shown),
                          help="A built-in dataset, or your own CSV file.")
    if choice != UPLOAD:
        forget_upload()
        st.caption(BUILTIN_DESCRIPTIONS.get(choice, ""))
        params = {}
        for name, default in BUILTIN_PARAMS.get(choice, {}).items():
            params[name] = _param_input(choice, name, default)
        return DataSpec(builtin=choice, params=tuple(sorted(params.items())))

    limit = upload_limit_mb()
    upload = st.file_uploader("CSV file", type=["csv", "tsv", "txt"], key="upload",
                              help="Comma, semicolon or tab separated; the first row holds the column names.")
    st.caption(f"Up to {limit} MB. Every row is used.")
    if upload is not None:
        st.session_state[CSV_KEY] = (upload.name, upload.getvalue())
    name, blob = st.session_state.get(CSV_KEY, ("", None))
    if blob is None:
        # The page says why there is no data (no file yet, or the one the URL names is gone); the
        # target, task and left-out columns stay in the URL until the file is back.
        return DataSpec(builtin=None, csv_name=upload_in_url())
    remember_upload(name)
    try:
        columns = csv_column_names(blob)
    except DataError:
        columns = []  # the page shows why the file cannot be read: once, not here as well
    if not columns:
        return DataSpec(builtin=None, csv_bytes=blob, csv_name=name)
    target = st.selectbox("Target column", columns, index=len(columns) - 1, **bound("lab_target"),
                          help="The column to predict; every other column is a feature.")
    task = st.selectbox("Task", list(TASKS), **bound("lab_task"),
                        help="Inferred: a text target or one with at most 20 distinct whole numbers is "
                             "classification, anything else regression.")
    others = [c for c in columns if c != target]
    if DROP_KEY in st.session_state:  # a new target or file may have taken some choices away
        valid = [c for c in st.session_state[DROP_KEY] if c in others]
        if valid != list(st.session_state[DROP_KEY]):
            st.session_state[DROP_KEY] = valid
    left_out = st.multiselect("Leave out columns", others, **bound(DROP_KEY),
                              help="Columns not used as features, e.g. one that gives the target away.")
    return DataSpec(builtin=None, csv_bytes=blob, csv_name=name, target=target, task=TASKS[task],
                    drop_columns=tuple(c for c in others if c in left_out))


def _param_input(dataset: str, name: str, default: float) -> float:
    label = name.replace("_", " ")
    key = f"lab_param_{dataset}_{name}"
    if isinstance(default, int) and not isinstance(default, bool):
        return int(number_input(st, label, min_value=10 if name == "n_samples" else 1,
                                   max_value=100_000, value=default, step=50 if name == "n_samples" else 1,
                                   **bound(key)))
    return float(number_input(st, label, min_value=0.0, max_value=10.0, value=float(default), step=0.05,
                                 format="%.2f", **bound(key)))


def hidden_sizes(text: str) -> tuple[int, ...]:
    """Hidden layer sizes from the sidebar's text; ValueError with a sentence when refused.

    A minus sign before a number is refused ("16,-8" is not 16-8); "32-8" still means 32, 8.

    >>> hidden_sizes("32-8")
    (32, 8)
    """
    if _NEGATIVE.search(text):
        raise ValueError(f"Hidden layer sizes must be positive whole numbers; {text!r} has a negative one.")
    return parse_hidden(text)


def _model_controls() -> ModelSpec:
    st.subheader("Model")
    text = st.text_input("Hidden layers", "16, 16", **bound("lab_hidden"),
                         help="Units per hidden layer, e.g. '32, 16'. Empty for a linear model.")
    try:
        hidden = hidden_sizes(text)
    except ValueError as exc:
        st.error(f"{escape_markdown(str(exc))} Using {', '.join(map(str, DEFAULT_HIDDEN))}.")
        hidden = DEFAULT_HIDDEN
    activation = st.selectbox("Activation", tuple(ACTIVATIONS), index=1, **bound("lab_activation"))
    batch_norm = st.toggle("Batch norm", False, **bound("lab_batch_norm"),
                           help="BatchNorm1d after each hidden layer (running statistics at evaluation).")
    return ModelSpec(hidden=hidden, activation=activation, batch_norm=batch_norm)

