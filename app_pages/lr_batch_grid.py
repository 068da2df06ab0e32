"""Learning rate x batch size (lecture 4 with 3): a grid over both, the scaling rules and the critical batch size."""
import streamlit as st

from core.charts.lr_batch_grid import heatmap_chart, trace_chart
from core.data import DataError
from core.diagnoses.batch_size import parse_batch_sizes
from core.diagnoses.lr_batch_grid import (
    MAX_RATE, MAX_RATES, MAX_SEEDS, MAX_UPDATES, MEASURES, MIN_RATES, MIN_SEEDS, Config, backend_text, best_table,
    errors_table, measure_label, plan, run,
)
from core.sweep import BACKENDS
from core.train import OPTIMIZER_LABELS, OPTIMIZERS
from ui.data_checks import show_data_checks
from ui.export import show_chart
from ui.inputs import number_input
from ui.warmup import warm_sweep_workers
from ui.runner import load_dataset, run_diagnosis
from ui.state import current_setup
from ui.url_state import bound
from ui.verdict import escape_markdown, show_verdict

PAGE = "lr_batch_grid"
RAN_KEY = "lr_batch_grid_ran"  # plain session key: the (setup, config) of the last grid the user ran
DONE_KEY = "lr_batch_grid_done"  # False while that grid has not finished (a Stop leaves it False)
DEFAULT = Config()
BUDGETS = {"updates": "same updates", "epochs": "same epochs"}
MEASURE_NAMES = {"val_loss": "validation loss", "val_metric": "validation accuracy / R²",
                 "train_loss": "training loss"}
BACKEND_NAMES = {"auto": "auto", "inline": "this process", "joblib": "joblib workers", "ray": "Ray"}

st.title("Learning rate × batch size")
st.caption("Lecture 4 with lecture 3: does the best rate grow with the batch, and from where does a larger batch stop helping?")
setup = current_setup()
show_data_checks(setup, key=PAGE)
st.markdown(
    "A larger batch averages away gradient noise, so it can take a larger step: the **linear scaling rule** "
    "(Goyal et al. 2017) multiplies the rate by k when the batch grows k times, **square-root scaling** by √k. "
    "Both stop where the rate meets the **divergence boundary**, or where the batch passes the **critical batch "
    "size**, beyond which the batch gradient is already close to the full one and a larger batch buys little "
    "(McCandlish et al. 2018 put it near the gradient noise scale B_simple). This page trains the lab model on a "
    "log grid of rates and batch sizes, several seeds per cell, and claims a difference only where it holds "
    "across the seeds. The grid runs only when you press **Run the grid**; finished trials are kept, so a grown "
    "grid trains only its new cells and a stopped one resumes."
)

with st.form("lr_batch_grid_form"):
    left, middle, right = st.columns(3)
    lr_min = number_input(left, "Smallest rate", 1e-6, MAX_RATE, DEFAULT.lr_min, format="%g", **bound("lr_batch_grid_lr_min"))
    lr_max = number_input(left, "Largest rate", 1e-6, MAX_RATE, DEFAULT.lr_max, format="%g", **bound("lr_batch_grid_lr_max"))
    n_rates = left.slider("Rates (log-spaced)", MIN_RATES, MAX_RATES, DEFAULT.n_rates, **bound("lr_batch_grid_n_rates"))
    sizes_text = middle.text_input(
        "Batch sizes", "auto", **bound("lr_batch_grid_sizes"),
        help="Rows per update, separated by commas, e.g. '8, 32, 128, full'; 'full' is the whole training split; "
             "'auto' is 8, 32 and 128 (those smaller than the split) and full.")
    seeds = number_input(middle,
        "Seeds per cell", MIN_SEEDS, MAX_SEEDS, DEFAULT.seeds, **bound("lr_batch_grid_seeds"),
        help="Each seed draws its own train/validation split, initial weights and batch order.")
    budget = middle.radio(
        "Budget", list(BUDGETS), format_func=BUDGETS.get, horizontal=True, **bound("lr_batch_grid_budget", list(BUDGETS), BUDGETS.get),
        help="Same updates: every cell takes the same number of steps (a larger batch sees more data). Same epochs: "
             "every cell sees the data equally often (a larger batch takes fewer steps).")
    updates = number_input(middle, "Updates (same-updates budget)", 1, MAX_UPDATES, DEFAULT.updates,
                                  **bound("lr_batch_grid_updates"))
    epochs = number_input(middle, "Epochs (same-epochs budget)", 1, 500, DEFAULT.epochs, **bound("lr_batch_grid_epochs"))
    optimizer = right.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULT.optimizer),
                                format_func=OPTIMIZER_LABELS.get, **bound("lr_batch_grid_optimizer", OPTIMIZERS, OPTIMIZER_LABELS.get))
    measure = right.selectbox("Best means", MEASURES, format_func=MEASURE_NAMES.get, **bound("lr_batch_grid_measure", MEASURES, MEASURE_NAMES.get),
                              help="The measure that picks the best rate and compares batch sizes. A loss separates "
                                   "cells more finely than accuracy on a small validation split.")
    backend = right.selectbox("Run trials on", BACKENDS, format_func=BACKEND_NAMES.get, **bound("lr_batch_grid_backend", BACKENDS, BACKEND_NAMES.get),
                              help="auto: this process for three trials or fewer, joblib worker processes otherwise, "
                                   "Ray when TRAINSCOPE_RAY_ADDRESS names a cluster. Every backend gives the same numbers.")
    n_jobs = number_input(right, "Workers", 1, 64, DEFAULT.n_jobs, **bound("lr_batch_grid_workers"),
                                help="Worker processes (joblib) or CPUs (local Ray), each on one torch thread.")
    submitted = st.form_submit_button("Run the grid", type="primary", key="lr_batch_grid_run")

try:
    sizes = parse_batch_sizes(sizes_text)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
config = Config(lr_min=float(lr_min), lr_max=float(lr_max), n_rates=int(n_rates), batch_sizes=sizes,
                seeds=int(seeds), budget=budget, updates=int(updates), epochs=int(epochs), optimizer=optimizer,
                measure=measure, backend=backend, n_jobs=int(n_jobs))
if backend in ("auto", "joblib") and int(n_jobs) > 1:
    warm_sweep_workers(int(n_jobs))  # while the user reads the form: the first grid then starts at full speed

try:  # refuse an impossible or too heavy grid before anything trains
    data = load_dataset(setup.data, setup.seed)
    grid_plan = plan(data, setup, config)
except (DataError, ValueError) as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
n_trials = len(grid_plan.trials)
st.caption(f"This grid: {config.n_rates} rates ({', '.join(f'{r:g}' for r in config.rates)}) × "
           f"{len(grid_plan.sizes)} batch sizes × {config.seeds} seeds = {n_trials} trials, {grid_plan.cached} of them "
           f"already trained; about {grid_plan.seconds:.0f} s to train the rest (estimate).")

if submitted:
    st.session_state[RAN_KEY] = (setup, config)
    st.session_state[DONE_KEY] = False
ran = st.session_state.get(RAN_KEY)
if ran is None:
    st.info("Set the grid and press **Run the grid**. Nothing trains until then.", icon=":material/grid_on:")
    st.stop()
if ran != (setup, config):
    st.info("The lab setup or the grid changed since the last run: press **Run the grid** to train this one "
            "(cells already trained are reused).", icon=":material/grid_on:")
    st.stop()

if not submitted and not st.session_state.get(DONE_KEY, True):
    # The last run never got to its end: it was stopped. Resume only when asked.
    st.info("The last grid was stopped; the trials that finished are kept. Press **Run the grid** to train the "
            "rest.", icon=":material/pause_circle:")
    st.stop()
result = run_diagnosis(run, setup, config, label="Learning-rate × batch-size grid")
st.session_state[DONE_KEY] = True  # finished, or refused with a message: either way not stopped
if result is None:
    st.stop()

show_verdict(result.verdict)
memo = (setup, config, result.seconds)
cols = st.columns(4)
cols[0].metric("Trials", f"{len(result.trials):,}", help=f"{result.trained} trained by this run, {result.cached} "
               "served from the cache of finished trials.")
cols[1].metric("Trained on", backend_text(result.backend), help=f"Backend chosen: {config.backend}.")
cols[2].metric("Training rows", f"{result.n_train:,}", help=f"The full batch. Parameters: {result.n_params:,}.")
cols[3].metric("Took", f"{result.seconds:.1f} s")
for note in result.notes:
    st.info(note, icon=":material/info:")

st.subheader("The grid")
show_chart(lambda: heatmap_chart(result), PAGE, "grid", memo=memo)
st.caption("Solid outline: the best rate of each batch size among the cells where every seed trained; dashed: the "
           "rates whose cell is not clearly worse (Welch's t-test across seeds). Grey: at least one seed diverged "
           "(loss past 10x its start, or NaN) or a trial failed; the note says how many, and the number is the mean "
           "of the seeds that trained.")
if config.measure != "val_metric":
    show_chart(lambda: heatmap_chart(result, which="metric"), PAGE, "grid metric", memo=memo)

st.subheader("Best rate against batch size")
show_chart(lambda: trace_chart(result), PAGE, "best rate", memo=memo)
st.markdown(
    "The best rate of each batch size (dot) with the rates whose cell is not clearly worse (bar), against what "
    "the linear and the square-root rule predict from the smallest batch's best rate. A rule fits when its "
    "factor lies inside what the grid allows: the bars, widened by half a grid step on each side because the "
    "true optimum may sit between two grid rates."
)
st.dataframe(best_table(result), hide_index=True)

st.subheader("Critical batch size and the gradient noise scale")
budget_text = ("the same updates, the critical batch is where a larger batch stops clearly beating the smaller ones"
               if config.budget == "updates" else
               "the same epochs, the critical batch is where a larger batch, taking fewer updates, starts to fall "
               "clearly behind a smaller one")
st.markdown(
    f"Each batch size is judged at its own best rate, across the seeds (Welch's t-test). With {budget_text}. "
    "B_simple = tr(Σ)/|G|² comes from the squared norms of batch gradients at two batch sizes (the batch-size "
    "page's estimator, McCandlish et al. 2018), measured at the start and at the end of the smallest batch's "
    "runs at its best rate (each seed's run trained again, with the same numbers)."
)
if len(result.noise):
    st.dataframe(result.noise.rename(columns={"b_simple_start": "B_simple at the start",
                                              "b_simple_end": "B_simple at the end"}), hide_index=True)

errors = errors_table(result)
if len(errors):
    st.subheader("Trials that failed")
    st.dataframe(errors, hide_index=True)  # cells are shown as plain text

with st.expander("Every trial"):
    st.dataframe(result.trials.rename(columns={"lr": "rate", "train_loss": "training loss (last 10% of updates)"}),
                 hide_index=True)

st.caption(escape_markdown(  # the setup names an uploaded file: shown literally
    f"{setup.describe()} · {OPTIMIZER_LABELS.get(config.optimizer, config.optimizer)} · best by "
    f"{measure_label(config.measure, result.metric)} · took {result.seconds:.1f} s"
))
