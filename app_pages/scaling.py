"""Feature scaling and batch normalization (lecture 5.2): raw against standardized inputs."""
import streamlit as st

from core.charts.scaling import batch_curves, lab_curvature, lab_curves, surface_curves, surface_map
from core.data import DataError
from core.diagnoses.scaling import (
    BatchConfig, LabConfig, SurfaceConfig, num, pick_columns, run_batches, run_lab, run_surface,
)
from core.lab import DataSpec, LabSetup
from ui.export import show_chart
from ui.runner import load_dataset, run_diagnosis
from ui.state import current_setup
from ui.verdict import show_verdict

PAGE = "scaling"
SOURCES = {"builtin": "Built-in scaled regression", "lab": "Two columns of the lab dataset"}
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "momentum": "SGD + momentum"}
RUN_COLUMNS = {"lambda_max": "λmax at start", "stable_lr": "2 / λmax", "lr": "rate used",
               "steps_to_target": "steps to target", "final_train_loss": "final training loss",
               "final_val_metric": "final validation metric", "diverged_at": "diverged at step"}

st.title("Feature scaling and batch normalization")
st.caption("Lecture 5.2: changing the inputs")
st.markdown(
    "When one input ranges over thousands and another over fractions, the loss changes fast along "
    "one weight and slowly along the other: the error surface is a long narrow valley, and no "
    "single learning rate suits both directions. Standardizing the inputs makes the surface round; "
    "batch normalization does the same inside the network, from each batch's statistics."
)
setup = current_setup()

# ----------------------------------------------------------------------------- 1. error surface
st.header("1. The error surface, raw vs standardized")
st.markdown("A linear regression y = w1·x1 + w2·x2 + b, fitted by plain gradient descent from w = 0, b = 0.")
source = st.radio("Data", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="scaling_source")
x1 = x2 = None
surface_setup = setup
if source == "builtin":
    surface_setup = LabSetup(data=DataSpec(builtin="scaled_regression"), model=setup.model, seed=setup.seed)
else:
    try:
        lab_data = load_dataset(setup.data, setup.seed)
        columns = list(lab_data.feature_names)
        first, second = pick_columns(lab_data)
    except DataError as exc:
        st.error(str(exc))
        surface_setup = None
    else:
        left, right = st.columns(2)
        x1 = left.selectbox("x1", columns, index=columns.index(first), key="scaling_x1",
                            help="Preselected: the columns whose spreads differ most.")
        x2 = right.selectbox("x2", columns, index=columns.index(second), key="scaling_x2")
left, right = st.columns(2)
fraction = left.slider("Learning rate, as a fraction of 2 / λmax", 0.1, 1.2, 0.9, 0.05, key="scaling_fraction",
                       help="Gradient descent on a quadratic is stable below 2 / λmax; above 1 it diverges.")
target = right.select_slider("Target: share of the reducible loss left", [0.1, 0.01, 0.001, 0.0001], 0.01,
                             key="scaling_target", help="Target loss = L* + this share of (L0 − L*).")
surface = None
if surface_setup is not None:
    surface_config = SurfaceConfig(source, x1, x2, fraction, target)
    surface = run_diagnosis(run_surface, surface_setup, surface_config, "Error surface")
if surface is not None:
    show_verdict(surface.verdict)
    for note in surface.notes:
        st.info(note, icon=":material/info:")
    cols = st.columns(4)
    for col, panel in zip(cols[:2], (surface.raw, surface.standardized)):
        col.metric(f"Condition number, {panel.name}", num(panel.condition),
                   help="λmax / λmin of the exact Hessian 2 AᵀA / n over (w1, w2, b).")
    for col, panel in zip(cols[2:], (surface.raw, surface.standardized)):
        steps = "never" if panel.steps_to_target is None else num(float(panel.steps_to_target))
        col.metric(f"Steps to target, {panel.name}", steps,
                   help=f"At rate {num(panel.lr)} (2 / λmax = {num(panel.stable_lr)}); counted exactly "
                        "from the eigenvalues.")
    maps = st.columns(2)
    for col, panel in zip(maps, (surface.raw, surface.standardized)):
        with col:
            show_chart(lambda: surface_map(panel, surface.x1, surface.x2), PAGE, f"surface {panel.name}",
                       memo=(surface_setup, surface_config))
    st.caption(
        f"Loss over (w1, w2) with b at its best for each pair; both axes of a map span the same width, "
        f"as gradient descent sees them. The raw valley is {num(surface.raw.valley_aspect)} times longer "
        f"than wide (standardized: {num(surface.standardized.valley_aspect)}), thinner than one cell. The path "
        "shows the first steps one by one, then log-spaced steps up to the target (hover for the step)."
    )
    show_chart(lambda: surface_curves(surface), PAGE, "surface loss curves", memo=(surface_setup, surface_config))
    with st.expander("Why"):
        st.markdown(
            "The Hessian of this loss is 2·AᵀA/n (A holds x1, x2 and a column of ones), the same at "
            "every point. Gradient descent is stable only below 2/λmax, set by the steepest direction, "
            "while the flattest direction then shrinks by a factor 1 − lr·λmin per step: the number of "
            "steps grows with the condition number λmax/λmin. Standardizing each column (mean 0, "
            "standard deviation 1) makes every direction about equally steep. The target is "
            "standardized too, so losses read as a share of its variance; that does not change the Hessian."
        )

# ----------------------------------------------------------------------------- 2. lab model
st.header("2. Input scaling on the lab model")
st.markdown(f"The sidebar's model ({setup.describe()}) trained on the same split from the same weights with "
            "each scikit-learn scaler, fitted on the training split only.")
with st.form("scaling_lab_form"):
    c1, c2, c3, c4 = st.columns(4)
    optimizer = c1.selectbox("Optimizer", list(OPTIMIZERS), format_func=OPTIMIZERS.get, key="scaling_optimizer")
    mode = c2.radio("Learning rate", ["one rate for every run", "each run at a fraction of its 2 / λmax"],
                    key="scaling_lr_mode")
    lr = c3.number_input("Rate (one for every run)", 1e-5, 1000.0, 0.01, format="%.4g", key="scaling_lr")
    lr_fraction = c3.number_input("Fraction of 2 / λmax", 0.05, 2.0, 0.5, 0.05, key="scaling_lr_fraction")
    steps = c4.number_input("Steps", 10, 2000, 150, 10, key="scaling_steps")
    batch = c4.number_input("Batch size (0 = full batch)", 0, 10_000, 32, key="scaling_batch")
    share = st.slider("Target loss, as a share of the loss of a constant prediction", 0.05, 0.9, 0.3, 0.05,
                      key="scaling_share")
    st.form_submit_button("Train", type="primary", key="scaling_lab_train")
lab_config = LabConfig(optimizer, lr if mode.startswith("one") else None, lr_fraction, int(steps),
                       int(batch) or None, share)
lab = run_diagnosis(run_lab, setup, lab_config, "Training with each scaler")
if lab is not None:
    show_verdict(lab.verdict)
    for note in lab.notes:
        st.info(note, icon=":material/info:")
    show_chart(lambda: lab_curves(lab, ["raw", "standard", "min-max", "robust"],
                                  "Training loss with each input scaling"),
               PAGE, "scaler curves", memo=(setup, lab_config))
    st.dataframe(lab.runs.drop(columns=["batch_norm"]).rename(columns=RUN_COLUMNS), hide_index=True)
    show_chart(lambda: lab_curvature(lab), PAGE, "lambda max", memo=(setup, lab_config))
    st.caption("λmax is the largest Hessian eigenvalue of the whole training loss at the start; plain gradient "
               "descent is stable only below 2 / λmax. Losses are measured on the whole training split in "
               "evaluation mode.")
    with st.expander("What each scaler fitted (training split only)"):
        st.dataframe(lab.scaler_stats, hide_index=True)
        st.caption("Scaled input = (input − center) / scale. Validation rows never enter these numbers.")

# ----------------------------------------------------------------------------- 3. batch norm on raw inputs
st.header("3. Batch norm on raw inputs")
if lab is not None:
    show_verdict(lab.bn_verdict)
    show_chart(lambda: lab_curves(lab, ["raw", "standard", "raw + batch norm"], "Batch norm on raw inputs"),
               PAGE, "batch norm curves", memo=(setup, lab_config))
    st.markdown(
        "Batch norm standardizes each hidden unit's input over the batch, so raw inputs no longer push "
        "the first layer into saturation and every later layer sees unit-scale signals. It does not "
        "rescale the inputs themselves: inside one unit a feature in the thousands still drowns one in "
        "fractions, and the weights on small-scale inputs still learn slowly (the built-in scaled "
        "regression set shows it). Same training settings as section 2."
    )

# ----------------------------------------------------------------------------- 4. batch size with batch norm
st.header("4. Batch norm needs a big enough batch")
with st.form("scaling_batch_form"):
    c1, c2, c3, c4, c5 = st.columns(5)
    tiny = c1.number_input("Tiny batch", 2, 64, 2, key="scaling_tiny")
    normal = c2.number_input("Normal batch", 4, 1024, 32, key="scaling_normal")
    b_optimizer = c3.selectbox("Optimizer", list(OPTIMIZERS), format_func=OPTIMIZERS.get, key="scaling_b_optimizer")
    b_lr = c4.number_input("Learning rate", 1e-5, 1000.0, 0.01, format="%.4g", key="scaling_b_lr")
    b_steps = c5.number_input("Steps", 10, 2000, 150, 10, key="scaling_b_steps")
    st.form_submit_button("Train", type="primary", key="scaling_batch_train")
batch_config = BatchConfig(int(tiny), int(normal), b_optimizer, b_lr, int(b_steps))
batches = run_diagnosis(run_batches, setup, batch_config,
                        "Batch norm with a tiny and a normal batch")
if batches is not None:
    show_verdict(batches.verdict)
    for note in batches.notes:
        st.info(note, icon=":material/info:")
    show_chart(lambda: batch_curves(batches), PAGE, "batch norm modes", memo=(setup, batch_config))
    left, right = st.columns([3, 2])
    left.dataframe(batches.runs.rename(columns={
        "train_mode_loss": "training-mode loss (last 10%)", "eval_train_loss": "evaluation-mode training loss",
        "final_val_metric": "final validation metric", "diverged_at": "diverged at step"}), hide_index=True)
    right.dataframe(batches.batch_stats.rename(columns={
        "mean_error": "batch mean off by (σ)", "std_error": "batch std off by (share)",
        "expected_mean_error": "sampling theory (σ)"}), hide_index=True)
    st.markdown(
        "In training mode batch norm divides by the batch's own mean and standard deviation; in "
        "evaluation mode it uses running averages collected during training (PyTorch's `model.eval()`, "
        "which every evaluation here uses). The lecture warns that the batch must be large enough for "
        "those statistics to mean anything: with 2 rows every normalized unit is just ±1, the batch mean "
        "strays by about 1/√2 of a standard deviation, and the network learns on a signal that "
        "evaluation never reproduces. Inputs are standardized here, so only the batch statistics differ."
    )
