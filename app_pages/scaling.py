"""Feature scaling and batch normalization (lecture 5.2): raw against standardized inputs, and
batch norm inside the model."""
import streamlit as st

from core.charts.scaling import (
    bn_curves, bn_modes_chart, bn_params_chart, lab_curvature, lab_curves, surface_curves, surface_map, sweep_chart,
)
from core.data import DataError
from core.diagnoses import batch_norm, bn_curvature, scaling_lab, scaling_surface
from core.diagnoses._kits.scaling import MAX_SEEDS, MAX_STEPS, MAX_TRAIN_ROWS
from core.diagnoses.words import num
from ui.data_checks import show_data_checks
from ui.export import show_chart
from ui.runner import load_dataset, run_diagnosis
from ui.state import current_setup
from ui.url_state import bound
from ui.verdict import escape_markdown, show_verdict
from ui.inputs import number_input

PAGE = "scaling"
SOURCES = {"builtin": "Built-in scaled regression", "lab": "Two columns of the lab dataset"}
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "momentum": "SGD + momentum"}
LR_MODES = {"one": "one rate for every run", "fraction": "each run at a fraction of its 2 / λmax"}
INPUTS = {"none": "raw", "standard": "standardized"}
LAB, CURV, BN = scaling_lab.Config(), bn_curvature.Config(), batch_norm.Config()


def show_notes(notes) -> None:
    """Notes and divergence sentences, shown literally (they may quote file or column names)."""
    for note in notes:
        st.info(escape_markdown(note), icon=":material/info:")


st.title("Feature scaling and batch normalization")
st.caption("Lecture 5.2: changing the inputs")
setup = current_setup()
show_data_checks(setup, key=PAGE)
st.markdown(
    "When one input ranges over thousands and another over fractions, the loss changes fast along "
    "one weight and slowly along the other: the error surface is a long narrow valley, and no "
    "single learning rate suits both directions. Standardizing the inputs makes the surface round; "
    "batch normalization does the same inside the network, from each batch's statistics."
)

# ----------------------------------------------------------------------------- 1. error surface
st.header("1. The error surface, raw vs standardized")
st.markdown("A linear regression y = w1·x1 + w2·x2 + b, fitted by plain gradient descent from w = 0, b = 0.")
source = st.radio("Data", list(SOURCES), format_func=SOURCES.get, horizontal=True, **bound("scaling_source", list(SOURCES), SOURCES.get))
x1 = x2 = None
surface_ok = True
if source == "lab":
    try:
        lab_data = load_dataset(setup.data, setup.seed)
        columns = list(lab_data.feature_names)
        first, second = scaling_surface.pick_columns(lab_data)
    except DataError as exc:
        st.error(escape_markdown(str(exc)))
        surface_ok = False
    else:
        left, right = st.columns(2)
        x1 = left.selectbox("x1", columns, index=columns.index(first), **bound("scaling_x1"),
                            help="Preselected: the columns whose spreads differ most.")
        x2 = right.selectbox("x2", columns, index=columns.index(second), **bound("scaling_x2"))
left, right = st.columns(2)
fraction = left.slider("Learning rate, as a fraction of 2 / λmax", 0.1, 1.2, 0.9, 0.05, **bound("scaling_fraction"),
                       help="Gradient descent on a quadratic is stable below 2 / λmax; above 1 it diverges.")
target = right.select_slider("Target: share of the reducible loss left", [0.1, 0.01, 0.001, 0.0001], 0.01,
                             **bound("scaling_target"), help="Target loss = L* + this share of (L0 − L*).")
surface = None
if surface_ok:
    surface_config = scaling_surface.Config(source, x1, x2, fraction, target)
    surface = run_diagnosis(scaling_surface.run, setup, surface_config, "Error surface", needs_data=source == "lab")
if surface is not None:
    memo = (setup, surface_config)
    show_verdict(surface.verdict)
    show_notes(surface.notes)
    cols = st.columns(4)
    for col, panel in zip(cols[:2], (surface.raw, surface.standardized)):
        col.metric(f"Condition number, {panel.key}", scaling_surface.condition_text(panel.condition),
                   help="λmax / λmin of the exact Hessian 2 AᵀA / n over (w1, w2, b).")
    for col, panel in zip(cols[2:], (surface.raw, surface.standardized)):
        steps = "diverged" if panel.divergence else "never" if panel.steps_to_target is None else num(
            panel.steps_to_target)
        col.metric(f"Steps to target, {panel.key}", steps,
                   help=f"At rate {num(panel.lr)} (2 / λmax = {num(panel.stable_lr)}); counted exactly "
                        "from the eigenvalues.")
    maps = st.columns(2)
    for col, panel in zip(maps, (surface.raw, surface.standardized)):
        with col:
            show_chart(lambda p=panel: surface_map(p, surface.x1, surface.x2), PAGE, f"surface {panel.key}",
                       memo=memo, dataset="scaled_regression" if source == "builtin" else setup.data.label)
    st.caption(
        f"Loss over (w1, w2) with b at its best for each pair; both axes of a map span the same width, "
        f"as gradient descent sees them. The raw valley is {scaling_surface.aspect_text(surface.raw.valley_aspect)} "
        f"times longer than wide (standardized: {scaling_surface.aspect_text(surface.standardized.valley_aspect)}). The path shows the first steps "
        "one by one, then log-spaced steps up to the target (hover for the step)."
    )
    show_chart(lambda: surface_curves(surface), PAGE, "surface loss curves", memo=memo,
               dataset="scaled_regression" if source == "builtin" else setup.data.label)
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
try:  # the sections below train on the lab dataset: say once, plainly, when there is none
    load_dataset(setup.data, setup.seed)
except DataError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
st.markdown(f"The sidebar's model ({escape_markdown(setup.describe())}) trained on the same split with each "
            "scikit-learn scaler, fitted on the training split only; each seed starts every run from the same "
            "weights and batches.")
with st.form("scaling_lab_form"):
    c1, c2, c3, c4 = st.columns(4)
    optimizer = c1.selectbox("Optimizer", list(OPTIMIZERS), format_func=OPTIMIZERS.get, **bound("scaling_optimizer", list(OPTIMIZERS), OPTIMIZERS.get))
    seeds = number_input(c1, "Seeds", 1, MAX_SEEDS, LAB.seeds, **bound("scaling_seeds"),
                            help="Initial weights and batch order per run. A difference is claimed only when it holds "
                                 "across seeds (Welch's t-test); more seeds take longer.")
    mode = c2.radio("Learning rate", list(LR_MODES), format_func=LR_MODES.get, **bound("scaling_lr_mode", list(LR_MODES), LR_MODES.get))
    lr = number_input(c3, "Rate (one for every run)", 1e-5, 1000.0, LAB.lr, format="%.4g", **bound("scaling_lr"))
    lr_fraction = number_input(c3, "Fraction of 2 / λmax", 0.05, 2.0, LAB.lr_fraction, 0.05,
                                  **bound("scaling_lr_fraction"))
    steps = number_input(c4, "Steps", 10, MAX_STEPS, LAB.steps, 10, **bound("scaling_steps"))
    batch = number_input(c4, "Batch size (0 = full batch)", 0, 10_000, LAB.batch_size, **bound("scaling_batch"))
    left, right = st.columns(2)
    share = left.slider("Target loss, as a share of the loss of a constant prediction", 0.05, 0.9,
                        LAB.target_fraction, 0.05, **bound("scaling_share"))
    rows = number_input(right, "Training-rows cap", 10, MAX_TRAIN_ROWS, LAB.max_train_rows, 500,
                              **bound("scaling_rows"),
                              help="Runs train on at most this many rows of the training split (a random sample).")
    st.form_submit_button("Train", type="primary", key="scaling_lab_train")
lab_config = scaling_lab.Config(optimizer, lr if mode == "one" else None, lr_fraction, int(steps), int(batch) or None,
                                share, int(seeds), int(rows))
lab = run_diagnosis(scaling_lab.run, setup, lab_config, "Training with each scaler")
if lab is not None:
    memo = (setup, lab_config)
    show_verdict(lab.verdict)
    show_notes(lab.notes + lab.messages)
    show_chart(lambda: lab_curves(lab, ["none", "standard", "minmax", "robust"], "Training loss with each input scaling"),
               PAGE, "scaler curves", memo=memo)
    table = lab.summary.drop(columns=["run"]).rename(columns={
        "label": "inputs", "lambda_max": "λmax at start (geometric mean)", "stable_lr": "2 / λmax (geometric mean)",
        "lr": "rate used (geometric mean)",
        "reached": "seeds reaching the target", "steps_to_target": "steps to target (mean; a miss = steps + 1)",
        "tail_loss": "training loss, last 20% (mean)", "tail_loss_sd": "… its spread (sd)",
        "final_val_metric": f"final validation {lab.metric} (mean)", "diverged": "seeds diverged"})
    st.dataframe(table, hide_index=True)
    show_chart(lambda: lab_curvature(lab), PAGE, "lambda max", memo=memo)
    st.caption("λmax is the largest Hessian eigenvalue of the whole training loss at the start (batch norm in "
               "training mode); plain gradient descent is stable only below 2 / λmax. λmax, 2 / λmax and the rate "
               "are geometric means over seeds (as in section 4), so 2 / λmax is 2 over the λmax beside it. The curves are the training "
               "loss of the batches each run saw, smoothed over 5% of the steps.")
    with st.expander("What each scaler fitted (training split only)"):
        st.dataframe(lab.scaler_stats, hide_index=True)
        st.caption("Scaled input = (input − center) / scale. Validation rows never enter these numbers.")

    # ------------------------------------------------------------------------- 3. batch norm on raw inputs
    st.header("3. Batch norm on raw inputs")
    show_verdict(lab.bn_verdict)
    show_chart(lambda: lab_curves(lab, ["none", "standard", "bn_raw"], "Batch norm on raw inputs"),
               PAGE, "batch norm curves", memo=memo)
    st.markdown(
        "Batch norm standardizes each hidden unit's input over the batch, so raw inputs no longer push "
        "the first layer into saturation and every later layer sees unit-scale signals. It does not "
        "rescale the inputs themselves: inside one unit a feature in the thousands still drowns one in "
        "fractions. Same training settings as section 2."
    )

# ----------------------------------------------------------------------------- 4. batch norm's curvature
st.header("4. Batch norm's curvature")
st.markdown(
    "λmax at the start is far larger with batch norm, which reads as the opposite of a smoother surface. "
    "It is not a fair yardstick for batch norm: batch norm divides each unit by its batch's standard "
    "deviation, so the loss does not change when the weights feeding a batch-norm layer are multiplied by "
    "c > 0, and the curvature along them scales as 1/c². At the small initial weights it is large, and each "
    "step that overshoots lengthens those weights (the gradient is orthogonal to them, up to batch norm's small ε), which lowers it. "
    "The measure the lecture's *easier to train* is about is the largest learning rate plain gradient descent "
    "survives: this sweep finds it for the lab model with and without batch norm, and compares it with each "
    "model's own 2 / λmax."
)
with st.form("scaling_curv_form"):
    c1, c2, c3, c4 = st.columns(4)
    c_inputs = c1.selectbox("Inputs", list(INPUTS), format_func=INPUTS.get, **bound("scaling_c_inputs", list(INPUTS), INPUTS.get))
    c_seeds = number_input(c1, "Seeds", 1, MAX_SEEDS, CURV.seeds, **bound("scaling_c_seeds"))
    c_low = number_input(c2, "Smallest rate", 1e-5, 100.0, CURV.low, format="%g", **bound("scaling_c_low"))
    c_high = number_input(c2, "Largest rate", 1e-4, 1000.0, CURV.high, format="%g", **bound("scaling_c_high"))
    c_rates = number_input(c3, "Rates", 2, bn_curvature.MAX_RATES, CURV.n_rates, **bound("scaling_c_rates"),
                              help="Evenly spaced on a log scale; then the edge where training starts to diverge is "
                                   "narrowed by halving the gap (on a log scale) twice.")
    c_steps = number_input(c3, "Steps per rate", 1, bn_curvature.MAX_SWEEP_STEPS, CURV.steps,
                              **bound("scaling_c_steps"))
    c_rows = number_input(c4, "Training rows (full batch)", 10, bn_curvature.MAX_SWEEP_ROWS, CURV.max_train_rows, 100,
                             **bound("scaling_c_rows"))
    st.form_submit_button("Sweep", type="primary", key="scaling_curv_sweep")
curv_config = bn_curvature.Config(c_inputs, float(c_low), float(c_high), int(c_rates), CURV.refine, int(c_steps),
                                  int(c_seeds), int(c_rows))
curv = run_diagnosis(bn_curvature.run, setup, curv_config, "Sweeping learning rates")
if curv is not None:
    show_verdict(curv.verdict)
    show_notes(curv.notes)
    show_chart(lambda: sweep_chart(curv), PAGE, "rate sweep", memo=(setup, curv_config))
    st.dataframe(curv.summary.drop(columns=["model"]).rename(columns={
        "label": "model", "lambda_start": "λmax at start (geometric mean)", "stable_lr": "2 / λmax (geometric mean)",
        "max_rate": "largest stable rate (geometric mean)", "multiple": "… in units of 2 / λmax (geometric mean)",
        "lambda_end": "λmax after training at it (geometric mean)",
        "norm_start": "hidden weights' norm at start", "norm_end": "… after training", "best_loss": "lowest loss"}),
        hide_index=True)
    st.caption(f"Geometric means over seeds for curvatures and rates (compared on a log scale), plain means for the "
               f"norms and losses. Full-batch gradient "
               f"descent on {curv.n_train:,} training rows; a rate counts as stable when training did not diverge "
               "(the loss stayed below 10x its start and finite) over all its steps.")

# ----------------------------------------------------------------------------- 5. batch norm inside the model
st.header("5. Inside batch norm: γ, β and the test-time statistics")
with st.form("scaling_bn_form"):
    c1, c2, c3, c4 = st.columns(4)
    tiny = number_input(c1, "Tiny batch", 2, 64, BN.tiny_batch, **bound("scaling_tiny"))
    normal = number_input(c1, "Normal batch", 4, 1024, BN.normal_batch, **bound("scaling_normal"))
    b_optimizer = c2.selectbox("Optimizer", list(OPTIMIZERS), format_func=OPTIMIZERS.get,
                               index=list(OPTIMIZERS).index(BN.optimizer), **bound("scaling_b_optimizer"))
    b_lr = number_input(c2, "Learning rate", 1e-5, 1000.0, BN.lr, format="%.4g", **bound("scaling_b_lr"))
    b_steps = number_input(c3, "Steps", 10, MAX_STEPS, BN.steps, 10, **bound("scaling_b_steps"))
    b_seeds = number_input(c3, "Seeds", 1, MAX_SEEDS, BN.seeds, **bound("scaling_b_seeds"))
    b_after = c4.checkbox("Also batch norm after the activation", BN.placement, **bound("scaling_b_after"),
                          help="Trains the same model with each batch-norm layer moved after its activation.")
    st.form_submit_button("Train", type="primary", key="scaling_bn_train")
bn_config = batch_norm.Config(int(tiny), int(normal), b_optimizer, float(b_lr), int(b_steps), int(b_seeds),
                              bool(b_after))
bn = run_diagnosis(batch_norm.run, setup, bn_config, "Batch norm inside the model")
if bn is not None:
    memo = (setup, bn_config)
    show_notes(bn.notes)
    show_verdict(bn.rule_verdict)
    left, right = st.columns([2, 3])
    left.dataframe(bn.layers, hide_index=True)
    with right:
        show_chart(lambda: bn_params_chart(bn), PAGE, "gamma and beta", memo=memo)
    st.markdown(
        "In training mode each batch-norm unit computes ẑ = (z − μ_B) / √(σ²_B + ε) from its batch's mean μ_B and "
        "variance σ²_B, then outputs γ·ẑ + β: γ and β are learned, so the network can undo the normalization "
        "where that helps. At test time there is no batch: torch keeps running averages, updated once per "
        f"training batch as running = (1 − m)·running + m·batch statistic (m = {num(bn.check.momentum)}), and uses "
        "them instead. The numbers above were recomputed here from the batch statistics of every training step."
    )
    with st.expander("γ, β and the running statistics of every unit"):
        st.dataframe(bn.params.rename(columns={"rule_mean": "running mean by the rule", "rule_var": "running var by "
                                               "the rule", "running_mean": "running mean (torch)",
                                               "running_var": "running var (torch)"}), hide_index=True)

    st.subheader("Batch norm needs a big enough batch")
    show_verdict(bn.verdict)
    show_chart(lambda: bn_modes_chart(bn), PAGE, "batch norm modes", memo=memo)
    show_chart(lambda: bn_curves(bn), PAGE, "batch norm training curves", memo=memo)
    left, right = st.columns([3, 2])
    left.dataframe(bn.summary.drop(columns=["run"]).rename(columns={
        "label": "run", "train_mode_loss": "training-mode loss, last 20% (mean)",
        "eval_train_loss": "evaluation-mode training loss (mean)", "eval_train_loss_sd": "… its spread (sd)",
        "final_val_metric": f"final validation {bn.metric} (mean)", "diverged": "seeds diverged"}), hide_index=True)
    right.dataframe(bn.batch_stats.rename(columns={
        "mean_error": "batch mean off by (σ)", "std_error": "batch std off by (share)",
        "expected_mean_error": "sampling theory (σ)"}), hide_index=True)
    st.markdown(
        "The lecture warns that the batch must be large enough for its statistics to mean anything: with 2 rows "
        "every normalized unit is just ±1, the batch mean strays by about 1/√2 of a standard deviation, and the "
        "network learns on a signal that evaluation, with its running averages, never reproduces. Inputs are "
        "standardized here, so only the batch statistics differ."
    )
