"""Batch size: time per epoch and per update, accuracy, and the sharpness of the minimum reached."""
import streamlit as st

from core.charts.batch_size import interpolation_chart, quality_chart, sharpness_chart, time_chart
from core.diagnoses.batch_size import Config, parse_batch_sizes, run
from core.train import OPTIMIZERS
from ui.export import show_chart
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.verdict import show_verdict

PAGE = "batch_size"
DEFAULT = Config()

st.title("Batch size")
st.markdown(
    "A large batch takes few, steady updates per epoch and computes each one in parallel; a small "
    "batch takes many noisy ones. That noise is not only a cost: it shakes the model out of narrow "
    "valleys, so small batches tend to settle in **flat minima** that generalize better than the "
    "**sharp** ones large batches find (lecture section 4; Keskar et al. 2017). This page trains "
    "the same model from the same starting weights with each batch size and measures all of it."
)
setup = current_setup()

with st.form("batch_size_form"):
    left, middle, right = st.columns(3)
    sizes_text = left.text_input(
        "Batch sizes", "auto", key="batch_size_sizes",
        help="Rows per update, separated by commas, e.g. '8, 32, 128, full'; 'full' is the whole "
             "training split; 'auto' is 8, 32 and 128 (those smaller than the split) and full.",
    )
    budget = middle.radio(
        "Budget", ("same epochs", "same updates"), key="batch_size_budget", horizontal=True,
        help="Same epochs: every size sees the data equally often (large batches take fewer steps). "
             "Same updates: every size takes the same number of steps.",
    )
    epochs = middle.number_input("Epochs", 1, 500, DEFAULT.epochs, key="batch_size_epochs")
    updates = middle.number_input("Updates (same-updates budget)", 1, 50_000, DEFAULT.updates,
                                  key="batch_size_updates")
    optimizer = right.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULT.optimizer),
                                key="batch_size_optimizer")
    lr = right.number_input("Learning rate", 1e-6, 1000.0, DEFAULT.lr, format="%g", key="batch_size_lr",
                            help="The same rate for every batch size, so only the batch changes.")
    with st.expander("Sharpness settings"):
        eps = st.number_input("epsilon (box half-width, relative)", 1e-6, 0.5, DEFAULT.eps, format="%g",
                              key="batch_size_eps",
                              help="Each weight may move by epsilon x (|weight| + 1) in the search for the worst loss.")
        iters = st.number_input("L-BFGS-B iterations per start", 1, 500, DEFAULT.sharpness_iters,
                                key="batch_size_iters")
    st.form_submit_button("Run the sweep", type="primary")

try:
    sizes = parse_batch_sizes(sizes_text)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

config = Config(
    batch_sizes=sizes, epochs=int(epochs), same_updates=budget == "same updates", updates=int(updates),
    optimizer=optimizer, lr=float(lr), eps=float(eps), sharpness_iters=int(iters),
)
result = run_diagnosis(run, setup, config, label="Batch-size sweep")
if result is None:
    st.stop()

show_verdict(result.verdict)
sweep = result.sweep.set_index("batch_size")
ok = sweep[sweep["status"] == "ok"]
cols = st.columns(4)
cols[0].metric("Training rows (full batch)", f"{result.n_train:,}")
cols[1].metric("Parameters", f"{result.n_params:,}")
if len(ok) >= 2:
    small, large = ok.iloc[0], ok.iloc[-1]
    cols[2].metric(f"Epoch speed-up, batch {large['label']} vs {small['label']}",
                   f"{small['seconds_per_epoch'] / large['seconds_per_epoch']:.1f}x")
cols[3].metric("Gradient noise scale B_simple", result.b_simple_text(),
               help=f"From gradient norms at batch sizes {result.noise_batches[0]} and {result.noise_batches[1]}.")
for note in result.notes:
    st.info(note, icon=":material/info:")

table = result.sweep[[
    "label", "updates_per_epoch", "updates", "seconds_per_epoch", "seconds_per_update", "train_loss",
    "val_loss", "train_metric", "val_metric", "gap", "lambda_max", "eps_sharpness", "hessian_trace", "status",
]].rename(columns={"label": "batch size", "train_metric": f"train {result.metric}",
                   "val_metric": f"validation {result.metric}", "eps_sharpness": "eps-sharpness (%)"})
st.dataframe(table, hide_index=True)

st.subheader("Speed: per epoch and per update")
show_chart(lambda: time_chart(result), PAGE, "time", memo=(setup, config, result.seconds))
st.markdown(
    "An epoch is one pass over the training rows, so a batch of size B takes n / B updates per epoch. "
    "Each update of a larger batch costs a little more, but far less than proportionally: the rows of "
    "a batch are computed in parallel (on a GPU even more so). That is why an epoch gets cheaper as the "
    "batch grows, until the hardware's parallelism runs out."
)

st.subheader("Accuracy and the generalization gap")
show_chart(lambda: quality_chart(result), PAGE, "accuracy and gap", memo=(setup, config, result.seconds))
st.markdown(
    f"The gap is training minus validation {result.metric}: large means the model fits the training "
    "rows better than new ones. With the same epoch budget large batches also took far fewer updates, "
    "so a low score there can mean *not trained yet* rather than *generalizes worse*; switch the "
    "budget to **same updates** to separate the two."
)

st.subheader("Sharpness of the minimum reached")
show_chart(lambda: sharpness_chart(result), PAGE, "sharpness", memo=(setup, config, result.seconds))
st.markdown(
    "All three are measured on the training loss at each run's final weights. **lambda_max** is the "
    "largest Hessian eigenvalue, the curvature along the steepest direction. **Epsilon-sharpness** "
    f"(Keskar et al.) is the largest loss increase, in percent of 1 + loss, within a small box around "
    f"the weights (each weight moved by at most {config.eps:g} x (|weight| + 1)). The **trace** sums "
    "the curvature over all directions. Sharp minima (large values) are the ones a small shift of "
    "the data moves far up the loss, which is how they hurt validation."
)

st.subheader("Between the two solutions")
if len(result.interpolation):
    show_chart(lambda: interpolation_chart(result), PAGE, "interpolation", memo=(setup, config, result.seconds))
    st.markdown(
        "The loss along the straight line from the smallest-batch weights (alpha = 0) to the "
        "largest-batch weights (alpha = 1), continued half a step beyond each end, as in Keskar et al.'s "
        "figure: a sharp solution sits in a narrow well, a flat one in a wide basin."
    )

st.subheader("Gradient noise scale")
st.markdown(
    f"B_simple = tr(Σ) / |G|², the per-example gradient variance over the squared mean gradient "
    f"(McCandlish et al. 2018), estimated from gradient norms at batch sizes {result.noise_batches[0]} "
    f"and {result.noise_batches[1]} along the smallest-batch run. Below it, doubling the batch nearly "
    "halves the updates needed; well above it, the batch gradient is already close to the full one, "
    "so a larger batch costs more per update and saves almost no updates. It is the dashed rule on the "
    "speed and accuracy charts; it usually grows as training goes on."
)
if len(result.noise):
    st.dataframe(result.noise.rename(columns={"grad_sq": "|G|² estimate", "trace_sigma": "tr(Σ) estimate",
                                              "b_simple": "B_simple"}), hide_index=True)
st.caption(f"{setup.describe()} · sweep took {result.seconds:.1f} s · learning rate {config.lr:g}, {config.optimizer}")
