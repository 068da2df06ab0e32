"""Batch size (lecture 4): speed per update and per epoch, optimisation, generalisation, sharpness."""
import streamlit as st

from core.charts.batch_size import curves_chart, interpolation_chart, quality_chart, sharpness_chart, time_chart
from core.diagnoses.batch_size import (
    MAX_SEEDS, MAX_TRAIN_ROWS, MAX_UPDATES, MIN_SEEDS, TIMING_MIN_RATIO, Config, device_story, epochs_text,
    dash_missing, parse_batch_sizes, run, runs_table, sweep_table, table_cell,
)
from core.train import OPTIMIZERS
from ui.data_checks import show_data_checks
from ui.export import show_chart
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.url_state import bound
from ui.verdict import escape_markdown, show_verdict
from ui.inputs import number_input

PAGE = "batch_size"
DEFAULT = Config()
BUDGETS = {"updates": "same updates", "epochs": "same epochs"}

st.title("Batch size")
st.caption("Lecture 4: trading training speed against quality")
setup = current_setup()
show_data_checks(setup, key=PAGE)
st.markdown(
    "A large batch takes few, steady updates per epoch and computes the rows of each one in parallel; "
    "a small batch takes many noisy ones. The lecture adds that the noise is not only a cost: it shakes "
    "the model out of narrow valleys, so small batches tend to settle in **flat minima** that generalize "
    "better than the **sharp** ones large batches find (Keskar et al. 2017). This page times the updates "
    "on your device, trains the same model with each batch size over several seeds, and claims a "
    "difference only where it holds beyond the spread of those seeds."
)

with st.form("batch_size_form"):
    left, middle, right = st.columns(3)
    sizes_text = left.text_input(
        "Batch sizes", "auto", **bound("batch_size_sizes"),
        help="Rows per update, separated by commas, e.g. '8, 32, 128, full'; 'full' is the whole "
             "training split (or its capped sample); 'auto' is 8, 32 and 128 (those smaller than the split) and full.",
    )
    seeds = number_input(left, 
        "Seeds", MIN_SEEDS, MAX_SEEDS, DEFAULT.seeds, **bound("batch_size_seeds"),
        help="Runs per batch size; each seed draws its own train/validation split, initial weights and batch "
             "order. Three keep the page quick; five or more let smaller differences show.",
    )
    budget = middle.radio(
        "Budget", list(BUDGETS), format_func=BUDGETS.get, horizontal=True,
        **bound("batch_size_budget", BUDGETS, BUDGETS.get),
        help="Same updates: every size takes the same number of steps. Same epochs: every size sees the data "
             "equally often (large batches then take fewer steps).",
    )
    updates = number_input(middle, "Updates (same-updates budget)", 1, MAX_UPDATES, DEFAULT.updates,
                                  **bound("batch_size_updates"))
    epochs = number_input(middle, "Epochs (same-epochs budget)", 1, 500, DEFAULT.epochs, **bound("batch_size_epochs"),
                                 help=f"At most {MAX_UPDATES:,} updates per run: small batches on big data "
                                      "need the same-updates budget.")
    optimizer = right.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULT.optimizer),
                                **bound("batch_size_optimizer"))
    lr = number_input(right, "Learning rate", 1e-6, 1000.0, DEFAULT.lr, format="%g", **bound("batch_size_lr"),
                            help="The same rate for every batch size, so only the batch changes.")
    with st.expander("Training rows and sharpness settings"):
        a, b, c = st.columns(3)
        max_rows = number_input(a, 
            "Training-rows cap", 10, MAX_TRAIN_ROWS, DEFAULT.max_train_rows, step=1024,
            **bound("batch_size_max_rows"),
            help="Each run trains on at most this many rows of the training split (a random sample), which "
                 "is then the full batch. The timing profile always uses the whole split.",
        )
        eps = number_input(b, "epsilon (box half-width, relative)", 1e-6, 0.5, DEFAULT.eps, format="%g",
                             **bound("batch_size_eps"),
                             help="Each weight may move by epsilon x (|weight| + 1) in the search for the worst loss.")
        iters = number_input(c, "L-BFGS-B iterations per start", 1, 500, DEFAULT.sharpness_iters,
                               **bound("batch_size_iters"))
    st.form_submit_button("Run", type="primary")

try:
    sizes = parse_batch_sizes(sizes_text)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

config = Config(
    batch_sizes=sizes, budget=budget, updates=int(updates), epochs=int(epochs), seeds=int(seeds),
    optimizer=optimizer, lr=float(lr), max_train_rows=int(max_rows), eps=float(eps), sharpness_iters=int(iters),
)
result = run_diagnosis(run, setup, config, label="Batch-size sweep")
if result is None:
    st.stop()

show_verdict(result.verdict)
memo = (setup, config, result.seconds)
cols = st.columns(4)
cols[0].metric("Training rows per run", f"{result.n_train:,}",
               help=f"Validation: {result.n_val:,} rows per seed. Curvature and sharpness: {result.n_measure:,} rows.")
cols[1].metric("Parameters", f"{result.n_params:,}")
cols[2].metric("Device", result.device, help="Set in the sidebar's lab setup; every size ran here.")
cols[3].metric("Noise scale B_simple", result.b_simple_text(),
               help=f"tr(Σ)/|G|², from gradient norms at batch sizes {result.noise_batches[0]:,} and "
                    f"{result.noise_batches[1]:,} at the end of the smallest batch's runs (mean over seeds).")
for note in result.notes:
    st.info(note, icon=":material/info:")

st.subheader("Small against large batch: the lecture's summary, from this run")
st.table(  # a static table: its cells wrap, so the sources stay readable
    result.summary.drop(columns="key").rename(columns={
        "measure": "measure", "lecture": "the lecture says", "small": f"batch {result.label(result.findings.small)}",
        "large": f"batch {result.label(result.findings.large)}", "this_run": "this run", "source": "source"}),
    hide_index=True,
)
st.caption("A difference is claimed only when it passes Welch's t-test (p < 0.05) across the seeds (or the timing "
           f"samples); otherwise the table says 'no clear difference'. A time difference must also be larger than "
           f"{TIMING_MIN_RATIO:g}x: a smaller one that passes the test is reported as too small to matter.")

st.subheader("Speed: per update and per epoch")
show_chart(lambda: time_chart(result), PAGE, "time", memo=memo)
st.markdown(device_story(result.findings))

st.subheader("Optimisation and generalisation")
show_chart(lambda: quality_chart(result), PAGE, "quality", memo=memo)
show_chart(lambda: curves_chart(result), PAGE, "training curves", memo=memo)
st.markdown(
    f"Grey points are single seeds, blue the mean with one standard deviation each side. The gap is training "
    f"minus validation {result.metric}. Under the same-epochs budget large batches take far fewer updates, so a "
    "worse score there can mean *not trained yet* rather than *generalizes worse*; the same-updates budget "
    "separates the two."
)

st.subheader("Sharpness of the minimum reached")
show_chart(lambda: sharpness_chart(result), PAGE, "sharpness", memo=memo)
st.markdown(
    "A mini-batch run ends jittering around a minimum, and away from a minimum the slope dominates "
    "epsilon-sharpness. So each run is first **settled**: full-batch gradient descent at the safe rate "
    "1 / λmax from its final weights until the gradient is ~0 by the app's critical-point rule; the table of "
    "runs below says how many steps that took and how much it lowered the loss. At the settled point: "
    "**λmax**, the largest Hessian eigenvalue; **epsilon-sharpness** (Keskar et al.), the largest loss increase "
    f"in percent of 1 + loss within a box where each weight moves by at most {config.eps:g} × (|weight| + 1); "
    "and the **trace**, the curvature summed over all directions. Only seeds whose settled point passed the "
    "rule are drawn."
)

st.subheader("Between the two solutions")
if len(result.interpolation):
    show_chart(lambda: interpolation_chart(result), PAGE, "interpolation", memo=memo)
    st.markdown(
        f"The loss along the straight line from the batch-{result.label(result.interp_from)} weights "
        f"(alpha = 0) to the batch-{result.label(result.interp_to)} weights (alpha = 1) of seed "
        f"{result.seeds[0]}, continued half a step beyond each end, as in Keskar et al.'s figure: a sharp "
        "solution sits in a narrow well, a flat one in a wide basin."
    )

st.subheader("Gradient noise scale")
st.markdown(
    f"B_simple = tr(Σ) / |G|², the per-example gradient variance over the squared mean gradient "
    f"(McCandlish et al. 2018), from gradient norms at batch sizes {result.noise_batches[0]:,} and "
    f"{result.noise_batches[1]:,} at the end of the smallest batch's runs. Below it, doubling the batch nearly "
    "halves the updates needed; well above it, the batch gradient is already close to the full one, so a "
    "larger batch costs more per update and saves almost no updates."
)
if len(result.noise):
    st.dataframe(result.noise.rename(columns={"grad_sq": "|G|² estimate", "trace_sigma": "tr(Σ) estimate",
                                              "b_simple": "B_simple"}), hide_index=True)

with st.expander("Every batch size and every run"):
    st.dataframe(sweep_table(result), hide_index=True)
    # A missing value (no divergence step, no sharpness for a run that did not train) shows "–",
    # epochs one decimal when fractional; columns without a missing value keep their types.
    st.dataframe(dash_missing(runs_table(result)).style.format(table_cell).format(epochs_text, subset=["epochs"]),
                 hide_index=True)

st.caption(escape_markdown(  # the setup names an uploaded file: shown literally
    f"{setup.describe()} · {len(result.seeds)} seeds ({', '.join(str(s) for s in result.seeds)}), each its own "
    f"split, weights and batch order · {config.optimizer}, learning rate {config.lr:g} · took {result.seconds:.1f} s"
))
