"""Loss function: softmax + MSE against cross-entropy for classification (lecture 5.1)."""
import streamlit as st

from core.charts.loss_function import class_code_map, loss_map, path_probability, training_curves
from core.diagnoses.class_codes import Config as CodesConfig
from core.diagnoses.class_codes import run as run_class_codes
from core.diagnoses.loss_function import CONFIDENT, PICTURE_LOSSES, RUN_LABELS, Config, card, run
from core.diagnoses.words import gaps_as_text, pct
from core.train import OPTIMIZERS
from ui.data_checks import show_data_checks
from ui.export import show_chart
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.url_state import bound
from ui.verdict import escape_markdown, show_verdict
from ui.inputs import number_input

PAGE = "loss_function"
DEFAULT = Config()
CLASSIFICATION_SET = "moons"


def switch_to_classification() -> None:
    """Button callback: pick a built-in classification set in the sidebar (runs before the rerun)."""
    st.session_state["lab_dataset"] = CLASSIFICATION_SET


st.title("Loss function: MSE or cross-entropy?")
st.markdown(
    "A classifier's outputs go through a **softmax** (for two classes that is the **sigmoid**) and are compared "
    "with a one-hot target. The lecture (5.1) says the loss should be **cross-entropy**, not mean squared error: "
    "with MSE on softmax outputs the loss is almost flat where the model is confidently wrong, so gradient "
    "descent has nothing to follow and training stalls there. Here the lab model trains with each loss from "
    "the same weights, seed and optimizer, full batch (one update per step)."
)
setup = current_setup()
show_data_checks(setup, key=PAGE)
st.caption(f"Lab setup: {escape_markdown(setup.describe())}")

with st.form("loss_function_form"):
    c1, c2, c3 = st.columns(3)
    optimizer = c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULT.optimizer),
                             **bound("loss_function_optimizer"),
                             help="sgd is the lecture's plain gradient descent. Adam divides each step by the "
                                  "gradient's size, which hides much of the plateau.")
    lr = number_input(c1, "Learning rate", 1e-5, 1000.0, DEFAULT.lr, format="%g", **bound("loss_function_lr"))
    steps = number_input(c2, "Steps (full-batch updates)", 1, 5000, DEFAULT.steps, 50, **bound("loss_function_steps"))
    goal = c2.slider("Accuracy goal for the verdict", 0.5, 1.0, DEFAULT.goal, 0.01, **bound("loss_function_goal"))
    wrong_start = c3.toggle(
        "Confidently wrong start", DEFAULT.wrong_start, **bound("loss_function_wrong_start"),
        help="Sets the output layer's bias so that every row's logits favour the rarest class by the margin M: "
             "every row of the other classes starts confidently wrong (half of a balanced two-class set).")
    margin = c3.slider("Logit margin M", 0.0, 20.0, DEFAULT.margin, 0.5, **bound("loss_function_margin"),
                       help="For the wrong start, and the picture's start (y1, y2) = (-M/2, M/2).")
    seeds = number_input(c2, "Seeds (initial weights)", 1, 20, DEFAULT.seeds, **bound("loss_function_seeds"),
                            help="Each loss trains from this many initial weights; claims must hold across them.")
    raw_mse = c3.toggle("Also raw outputs + MSE", DEFAULT.raw_mse, **bound("loss_function_raw_mse"),
                        help="Classification treated as regression: the outputs, without softmax, against the "
                             "one-hot target.")
    p1, p2, _ = st.columns(3)
    picture_lr = number_input(p1, "Picture: step size", 0.01, 100.0, DEFAULT.picture_lr, format="%g",
                                 **bound("loss_function_picture_lr"))
    picture_steps = number_input(p2, "Picture: steps", 1, 1000, DEFAULT.picture_steps, 10,
                                    **bound("loss_function_picture_steps"))
    st.form_submit_button("Run", key="loss_function_run")

config = Config(optimizer=optimizer, lr=float(lr), steps=int(steps), raw_mse=bool(raw_mse),
                wrong_start=bool(wrong_start), margin=float(margin), goal=float(goal),
                picture_lr=float(picture_lr), picture_steps=int(picture_steps), seeds=int(seeds))
result = run_diagnosis(run, setup, config, label="Training")


def show_training(result) -> None:
    """Verdict, the start, one metric per loss, the summary table and the curves."""
    show_verdict(result.verdict)
    for note in result.notes:
        st.caption(escape_markdown(note))
    for message in result.messages:
        st.error(message, icon=":material/error:")
    if result.wrong_class is not None:
        st.caption(f"Confidently wrong start: every row's logits favour '{result.wrong_class}' by {config.margin:g}; "
                   f"{result.wrong_share:.0%} of the {result.n_train} training rows start with a wrong class at "
                   f"{CONFIDENT:.0%} or more.")
    rows = result.summary.set_index("run")
    goal = result.goal_label()
    n_seeds = int(rows["seeds"].max())
    short = f"{result.goal:.0%}"
    lowered_note = " (lowered goal)" if result.goal_lowered else ""
    cols = st.columns(len(rows))
    for col, (key, row) in zip(cols, rows.iterrows()):
        value, delta, good = card(row, config.steps, result.goal)
        col.metric(RUN_LABELS[key], value, delta, delta_color="normal" if good else "inverse",
                   delta_arrow="auto" if good else "off",  # an up arrow on "diverged" read as progress
                   help=f"Mean final training accuracy over the seeds that did not diverge, of {int(row['seeds'])}; "
                        f"steps to the goal, {goal}, are the mean over seeds.")
    # The two things to look at first (seeds reaching the goal, start gradient norm) come first, so
    # they stay on screen at 1400 px; the goal is named in the headers because it may be lowered.
    # A column with a gap (no accuracy for a loss whose seeds all diverged, no step for a goal
    # never held) is shown as text with "–" there: Streamlit draws a missing number as "None".
    shown = gaps_as_text(result.summary, {
        "start_accuracy": pct, "final_accuracy": pct, "final_accuracy_sd": pct, "final_val_accuracy": pct,
        "steps_to_goal": lambda x: f"{x:.1f}", "start_grad_norm": lambda x: f"{x:.3g}"})
    st.dataframe(shown, hide_index=True, column_order=[
        "label", "reached_goal", "steps_to_goal", "start_grad_norm", "final_accuracy", "final_accuracy_sd",
        "final_val_accuracy", "diverged_seeds", "first_divergence", "start_accuracy", "steps_run"], column_config={
        "label": "Loss", "reached_goal": f"Seeds reaching {short}, of {n_seeds}{lowered_note}",
        "steps_to_goal": st.column_config.NumberColumn(f"Steps to hold {short}, mean{lowered_note}", format="%.1f"),
        **{c: st.column_config.NumberColumn(c.replace("_", " ").capitalize(), format="percent")
           for c in ("start_accuracy", "final_accuracy", "final_accuracy_sd", "final_val_accuracy")},
        "start_grad_norm": st.column_config.NumberColumn("Start gradient norm", format="%.3g"),
        "diverged_seeds": "Seeds diverged", "first_divergence": "First divergence step", "steps_run": "Steps run"})
    st.caption(f"Goal: {goal}. Steps to hold it: the first step from which the training accuracy stays at or "
               "above the goal to the end (mean over the seeds, shown only when every seed reached it). Final "
               "accuracies are over the seeds that did not diverge. Seeds vary the initial weights; a difference "
               "is claimed only when it holds across them. Start gradient norm: the size of the first full-batch "
               "gradient.")
    show_chart(lambda: training_curves(result, "accuracy"), PAGE, "accuracy", memo=(setup, config))
    left, right = st.columns(2)
    with left:
        show_chart(lambda: training_curves(result, "loss"), PAGE, "loss", memo=(setup, config))
    with right:
        show_chart(lambda: training_curves(result, "grad_norm"), PAGE, "gradient norm", memo=(setup, config))


def show_picture(result) -> None:
    """The lecture's two-logit picture: both heat maps with their descent paths, and the race of probabilities."""
    st.subheader("The lecture's picture: two logits, one sample of class 1")
    st.markdown(
        "One sample whose right class is class 1; the network's two outputs are the logits y1 and y2. Each map "
        "shows the loss over (y1, y2), brighter = larger. Both paths are plain gradient descent from the same "
        "confidently wrong start (top left: the wrong class wins by M)."
    )
    cols = st.columns(2)
    for col, name in zip(cols, PICTURE_LOSSES):
        with col:
            show_chart(lambda: loss_map(result, RUN_LABELS[name]), PAGE, f"picture {name}", memo=(setup, config),
                       dataset="two logits", seed=None)
    show_chart(lambda: path_probability(result), PAGE, "picture probability", memo=(setup, config),
               dataset="two logits", seed=None)
    paths = result.paths
    last = paths.groupby("loss function", sort=False).tail(1).set_index("loss function")
    first = paths[paths["step"] == 0].set_index("loss function")
    ce, sm = RUN_LABELS["cross_entropy"], RUN_LABELS["softmax_mse"]
    st.caption(
        f"At the start the gradient norm is {first.loc[ce, 'grad_norm']:.2g} for cross-entropy and "
        f"{first.loc[sm, 'grad_norm']:.2g} for softmax + MSE. After {config.picture_steps} steps of size "
        f"{config.picture_lr:g} the right class has probability {last.loc[ce, 'p_correct']:.3f} under "
        f"cross-entropy and {last.loc[sm, 'p_correct']:.3g} under softmax + MSE: MSE crawls on the plateau."
    )


def show_softmax(result) -> None:
    """softmax([z, 0])[0] beside sigmoid(z)."""
    st.subheader("Softmax and sigmoid are the same thing for two classes")
    st.markdown("softmax([z, 0]) gives class 1 the probability e^z / (e^z + 1) = 1 / (1 + e^-z), the sigmoid of z. "
                "So a two-class softmax output layer and a one-output sigmoid layer are the same model.")
    left, right = st.columns([3, 1])
    left.dataframe(result.softmax_table, hide_index=True,
                   column_config={c: st.column_config.NumberColumn(format="%.10g") for c in result.softmax_table})
    right.metric("Largest difference", f"{result.softmax_max_diff:.1e}",
                 help="Floating-point rounding only (float64 resolution is about 1e-16).")


if result is not None:
    if result.trained:
        show_training(result)
    else:
        show_verdict(result.verdict)
        st.button(f"Switch to the {CLASSIFICATION_SET} dataset", key="loss_function_switch",
                  on_click=switch_to_classification, type="primary")
        st.caption("The picture and the softmax demonstration below do not depend on the data.")
    show_picture(result)
    show_softmax(result)

st.subheader("Classes as numbers (lecture 5.1)")
st.markdown("Coding class A, B, C as 0, 1, 2 and regressing that number with MSE says B lies between A and C. "
            "Here A and C share one overlapping cloud and B sits far away: where the regression cannot tell A "
            "from C it answers their average, 1, which is B. One-hot targets with cross-entropy make no such claim.")
if st.toggle("Run the demonstration (3 seeds, about 2 s)", False, **bound("loss_function_codes")):
    codes = run_diagnosis(run_class_codes, setup, CodesConfig(), label="Training both codings", needs_data=False)
    if codes is not None:
        show_verdict(codes.verdict)
        st.dataframe(codes.summary.drop(columns=["run"]), hide_index=True, column_config={
            "label": "Coding", "val_accuracy": st.column_config.NumberColumn("Validation accuracy", format="percent"),
            "middle_share": st.column_config.NumberColumn("A or C rows called B", format="percent"),
            "seeds": "Seeds"})
        show_chart(lambda: class_code_map(codes), PAGE, "classes_as_numbers", memo=CodesConfig(),
                   dataset="three classes", seed=setup.seed)
    with st.expander("Why MSE stalls and cross-entropy does not"):
        st.markdown(
            "With a softmax output p and a one-hot target, the gradient of cross-entropy with respect to the "
            "logits is p - target: when the model is confidently wrong it is about 1, the largest it gets. "
            "Softmax + MSE multiplies that by the softmax's own slope, p(1 - p), which is about e^-M at a margin "
            "M: the loss surface is a plateau exactly where the model most needs to move (the lecture: MSE "
            "\"easily gets stuck\"). Adaptive optimizers such as Adam rescale tiny gradients and partly hide it, "
            "but they cannot tell a plateau from a minimum. Raw outputs + MSE has no plateau, but treats classes "
            "as numbers to hit exactly and punishes outputs that are 'too right'."
        )
