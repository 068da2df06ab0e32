"""The "Lab setup" sidebar shared by every page: dataset, model and seed -> a LabSetup."""
from __future__ import annotations

import streamlit as st

from core.data import BUILTIN_DATASETS, BUILTIN_DESCRIPTIONS, BUILTIN_PARAMS, DataError
from core.lab import DataSpec, LabSetup
from core.models import ACTIVATIONS, ModelSpec, parse_hidden
from ui.runner import csv_column_names
from ui.state import SETUP_KEY

UPLOAD = "Upload CSV"
CSV_KEY = "lab_csv"  # (file name, bytes) of the last upload, kept across pages and reruns
TASKS = {"infer from the target": None, "classification": "classification", "regression": "regression"}


def lab_sidebar() -> LabSetup:
    """Draw the sidebar and return the LabSetup it describes (also stored in session state)."""
    with st.sidebar:
        st.header("Lab setup")
        data = _data_controls()
        model = _model_controls()
        seed = int(st.number_input("Seed", 0, 2**31 - 1, 0, step=1, key="lab_seed",
                                   help="Same seed, same data split, weights and batches: same numbers."))
    setup = LabSetup(data=data, model=model, seed=seed)
    st.session_state[SETUP_KEY] = setup
    return setup


def _data_controls() -> DataSpec:
    choice = st.selectbox(
        "Dataset", (*BUILTIN_DATASETS, UPLOAD), key="lab_dataset",
        format_func=lambda n: n if n == UPLOAD else n.replace("_", " "),
        help="A built-in dataset, or your own CSV file.",
    )
    if choice != UPLOAD:
        st.caption(BUILTIN_DESCRIPTIONS.get(choice, ""))
        params = {}
        for name, default in BUILTIN_PARAMS.get(choice, {}).items():
            params[name] = _param_input(choice, name, default)
        return DataSpec(builtin=choice, params=tuple(sorted(params.items())))

    upload = st.file_uploader("CSV file", type=["csv", "tsv", "txt"], key="upload",
                              help="Comma, semicolon or tab separated; the first row holds the column names.")
    if upload is not None:
        st.session_state[CSV_KEY] = (upload.name, upload.getvalue())
    name, blob = st.session_state.get(CSV_KEY, ("", None))
    if blob is None:
        st.info("Upload a CSV file to use your own data.")
        return DataSpec(builtin=None)
    target = None
    try:
        columns = csv_column_names(blob)
    except DataError as exc:
        st.error(str(exc))
        columns = []
    if columns:
        target = st.selectbox("Target column", columns, index=len(columns) - 1, key="lab_target",
                              help="The column to predict; every other column is a feature.")
    task = st.selectbox("Task", list(TASKS), key="lab_task",
                        help="Inferred: a text target or one with at most 20 distinct whole numbers is "
                             "classification, anything else regression.")
    return DataSpec(builtin=None, csv_bytes=blob, csv_name=name, target=target, task=TASKS[task])


def _param_input(dataset: str, name: str, default: float) -> float:
    label = name.replace("_", " ")
    key = f"lab_param_{dataset}_{name}"
    if isinstance(default, int) and not isinstance(default, bool):
        return int(st.number_input(label, min_value=10 if name == "n_samples" else 1,
                                   max_value=100_000, value=default, step=50 if name == "n_samples" else 1, key=key))
    return float(st.number_input(label, min_value=0.0, max_value=10.0, value=float(default), step=0.05,
                                 format="%.2f", key=key))


def _model_controls() -> ModelSpec:
    st.subheader("Model")
    text = st.text_input("Hidden layers", "16, 16", key="lab_hidden",
                         help="Units per hidden layer, e.g. '32, 16'. Empty for a linear model.")
    try:
        hidden = parse_hidden(text)
    except ValueError as exc:
        st.error(f"{exc} Using 16, 16.")
        hidden = (16, 16)
    activation = st.selectbox("Activation", tuple(ACTIVATIONS), index=1, key="lab_activation")
    batch_norm = st.toggle("Batch norm", False, key="lab_batch_norm",
                           help="BatchNorm1d after each hidden layer (running statistics at evaluation).")
    return ModelSpec(hidden=hidden, activation=activation, batch_norm=batch_norm)
