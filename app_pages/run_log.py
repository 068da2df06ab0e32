"""Your training run: upload the logs your trainer wrote and get the lecture's diagnoses on them."""
import hashlib
import time

import streamlit as st

from core.charts.run_log import extras_chart, gap_chart, overlay_chart, training_chart
from core.data import DataError
from core.diagnoses.run_log import (
    CLIP_QUANTILE, SPIKE_Z, Config, compare_runs, final_loss_words, overlay_frame, run,
)
from core.runlog import CANONICAL, LABELS, MAX_BYTES, MissingLoss, combine, read_source, to_training_log
from core.runlog_examples import EXAMPLES, run_scenario
from ui.export import show_chart
from ui.url_state import bound
from ui.verdict import escape_markdown, show_verdict
from ui.inputs import number_input

PAGE = "run_log"
DEFAULT = Config()
MAX_RUNS = 8  # one colour each in the overlays
NONE = "(not logged)"

st.title("Your training run")
st.markdown(
    "Your real model will not train, and you have its logs. Upload them: this page reads the loss, gradient norm, "
    "learning rate and evaluation loss your trainer logged and runs the lecture's diagnoses on them: where the "
    "loss **stalled** (and whether the gradient was ~0 or the step bounced), where it **diverged**, where it "
    "**spiked**, which **learning-rate schedule** you ran, and where the **evaluation loss** parted from the "
    "training loss. Several runs are compared side by side."
)
with st.expander("Which files? And how to log what this page needs from your own loop"):
    st.markdown(
        "- **Hugging Face** `Trainer`: `trainer_state.json` (in every checkpoint folder), or its TensorBoard "
        "event file (`runs/…/events.out.tfevents.*`).\n"
        "- **PyTorch Lightning**: `metrics.csv` from `CSVLogger`, or the event file from `TensorBoardLogger`.\n"
        "- **TensorBoard**: event files, or the scalar CSV exports (*Download data* → CSV, one file per tag; "
        "exports of one run are joined).\n"
        "- **Weights & Biases**: a panel's *Export CSV* (several runs in one file) or a run-history export.\n"
        "- **Any CSV** with a step column and loss-like columns (`loss`, `train/loss`, `val_loss`, `lr`, "
        "`grad_norm`, …). Names are recognised automatically and can be re-mapped below.\n\n"
        "In your own PyTorch loop, five lines log everything here (and TensorBoard reads it too):"
    )
    st.code(
        "from core.probe import Probe                          # 1\n"
        "probe = Probe(model, optimizer, log_dir=\"runs/exp1\")  # 2: hooks optimizer.step()\n"
        "for x, y in loader:\n"
        "    loss = loss_fn(model(x), y)\n"
        "    optimizer.zero_grad(); loss.backward(); optimizer.step()\n"
        "    probe.log(loss)                                   # 3: loss, |g|, lr, update ratios\n"
        "probe.close()                                         # 4\n"
        "# 5: curvature too: Probe(..., curvature_every=500, held_batch=(x_val, y_val), loss_fn=loss_fn)",
        language="python")

uploads = st.file_uploader(
    f"Training logs (up to {MAX_RUNS} runs, {MAX_BYTES // 2**20} MB each)", accept_multiple_files=True,
    key="runlog_files", help="trainer_state.json, events.out.tfevents.*, metrics.csv, TensorBoard or W&B CSV exports.")
example = None
if not uploads:
    names = list(EXAMPLES)
    example = st.selectbox("No log yet? Look at one made by real training", names, format_func=EXAMPLES.get,
                           **bound("runlog_example"))


@st.cache_data(show_spinner=False, max_entries=8)  # a 1M-step log holds ~40 MB of series
def _read(name: str, data: bytes):
    """The runs a file holds (cached by content), or the message that says why it cannot be read."""
    bar = st.progress(0.0, text=f"Reading {name}")
    try:
        return read_source(data, name, on_progress=lambda f, m: bar.progress(f, text=f"Reading: {m}")), None
    except DataError as exc:
        return [], str(exc)
    finally:
        bar.empty()


@st.cache_data(show_spinner="Training the example…", max_entries=8)
def _example(name: str):
    """An example log: a small model trained with core.probe, its TensorBoard event file."""
    scenario = run_scenario(name)
    return f"example: {EXAMPLES[name]}", scenario.events


@st.cache_data(show_spinner=False, max_entries=32)
def _diagnose(fingerprint: str, mapping: tuple, config: Config, _log):
    """core.diagnoses.run_log.run, cached by the log's content, its mapping and the settings."""
    bar = st.progress(0.0, text="Diagnosing")
    try:
        return run(_log, config, on_progress=lambda f, m: bar.progress(f, text=f"Diagnosing: {m}"))
    finally:
        bar.empty()


# ---------------------------------------------------------------------------- read the files
if uploads:
    files = [(u.name, u.getvalue()) for u in uploads]
else:
    files = [_example(example)]
raws, problems = [], []
for name, data in files:
    found, problem = _read(name, data)
    raws.extend(found)
    if problem:
        problems.append(problem)
raws = combine(raws)
if len(raws) > MAX_RUNS:
    st.warning(f"{len(raws)} runs were read; the first {MAX_RUNS} are shown.")
    raws = raws[:MAX_RUNS]
for problem in problems:
    st.error(escape_markdown(problem), icon=":material/error:")

with st.expander("Settings"):
    c1, c2, c3, c4 = st.columns(4)
    window = number_input(c1, "Stall window (steps, 0 = a tenth of the log)", 0, 10_000_000, DEFAULT.window, 100,
                             **bound("runlog_window"),
                             help="A stall lasts at least this long: the loss is compared with its value a window earlier.")
    rel_eps = number_input(c2, "Stall threshold (relative fall per window)", 1e-5, 0.5, DEFAULT.rel_eps, format="%g",
                              **bound("runlog_eps"))
    level = number_input(c3, "Divergence level: median of this many logged losses", 1, 50, DEFAULT.level_window,
                            **bound("runlog_level"),
                            help="1 = every logged loss on its own (logs of means over an interval); 3 = one bad batch "
                                 "is a spike, not a divergence.")
    spike_z = number_input(c4, "Spike threshold (robust standard deviations)", 2.0, 50.0, float(SPIKE_Z), 0.5,
                              **bound("runlog_spike_z"))
config = Config(window=int(window), rel_eps=float(rel_eps), level_window=int(level), spike_z=float(spike_z))

# ---------------------------------------------------------------------------- map the series
labels = []
for raw in raws:  # distinct labels for runs with the same name (two trainer_state.json)
    label = raw.name if raw.name not in labels else f"{raw.name} ({sum(lbl.startswith(raw.name) for lbl in labels) + 1})"
    labels.append(label)
logs, log_labels = [], []
with st.expander("Columns: which logged series is which", expanded=False):
    for i, (raw, label) in enumerate(zip(raws, labels)):
        st.text(f"{label}  ·  {raw.format}")
        options = [NONE] + [c for c in raw.series.columns if c != "step"]
        try:
            guessed = to_training_log(raw).mapping
        except MissingLoss:
            guessed = {}
        cols = st.columns(len(CANONICAL))
        mapping = {}
        key_base = f"runlog_map_{hashlib.sha1(raw.fingerprint.encode()).hexdigest()[:10]}"
        for col, canon in zip(cols, CANONICAL):
            current = guessed.get(canon, NONE)
            chosen = col.selectbox(LABELS[canon].capitalize(), options, index=options.index(current),
                                   key=f"{key_base}_{canon}")
            mapping[canon] = "" if chosen == NONE else chosen
        try:
            logs.append(to_training_log(raw, mapping))
            log_labels.append(label)
        except DataError as exc:
            problems.append(str(exc))
            st.error(escape_markdown(str(exc)), icon=":material/error:")

if not logs:
    if not problems:
        st.info("Upload a log to start.")
    st.stop()

# ---------------------------------------------------------------------------- diagnose
results, result_labels = [], []
start = time.perf_counter()
for log, label in zip(logs, log_labels):
    try:
        results.append(_diagnose(log.fingerprint, tuple(sorted(log.mapping.items())), config, log))
        result_labels.append(label)
    except ValueError as exc:
        st.error(escape_markdown(f"{label}: {exc}"), icon=":material/error:")
if not results:
    st.stop()
if example:
    st.caption("Example log: a small model trained in a plain PyTorch loop and logged with core.probe (one row per "
               "update), read back from its TensorBoard event file.")


def single_run(result, label: str, log) -> None:
    """The diagnoses of one run: verdict, numbers, charts, tables, schedule."""
    show_verdict(result.verdict)
    m = st.columns(6)
    m[0].metric("Logged steps", f"{result.n_points:,}", help=f"steps {result.first_step:,}–{result.last_step:,}")
    final_label, final_help = final_loss_words(result)
    m[1].metric(final_label, f"{result.final_loss:.4g}", help=final_help)
    m[2].metric("Diverged at step", "—" if result.diverged_at is None else f"{result.diverged_at:,}")  # six columns: "step 2,235" was clipped
    m[3].metric("Stalls", len(result.stalls))
    m[4].metric("Spikes", len(result.spikes))
    m[5].metric("Clip at", "—" if result.clip is None else f"{result.clip:.3g}",
                help=f"The {CLIP_QUANTILE:.0%} quantile of the logged gradient norm, suggested when spikes, a heavy "
                     "tail or a divergence call for clipping.")
    smoothing = ("no smoothing" if result.smooth_points <= 1
                 else f"smoothing over {result.smooth_points:,} logged points")
    st.text(f"{label} · {log.format_label} · stall window {result.window:,} steps ({result.window_points:,} logged "
            f"points), {smoothing}")
    with st.expander("What was read"):
        for note in log.notes + result.notes:
            st.text(note)

    log_y = st.toggle("Log scale", True, **bound("runlog_log"))
    key = (log.fingerprint, tuple(sorted(log.mapping.items())), config, log_y)
    show_chart(lambda: training_chart(result, log_y), PAGE, "training curves", key=f"{PAGE}_training_{label}",
               memo=key, dataset=label, seed=None)
    st.caption("Light blue: the logged loss (thinned to at most a few thousand points by keeping each bucket's "
               "lowest and highest value, so no spike disappears). Dark blue: the smoothed loss the stall detector "
               "reads. Shaded: stalls (red: gradient ~0, yellow: gradient not small, cyan: small steps (gradient "
               "not small, successive gradients aligned: the rate is too small), purple: unclear, grey: no "
               "gradient logged). Red triangles: spikes. Red line: divergence.")
    if len(result.stalls):
        st.markdown("**Stalls**")
        st.dataframe(result.stalls.dropna(axis=1, how="all"), hide_index=True, column_config={
            "grad_median": st.column_config.NumberColumn("median |g|", format="%.3g"),
            "grad_ratio": st.column_config.NumberColumn("|g| / gradient level", format="%.3g"),
            "lr_share": st.column_config.NumberColumn("lr / peak lr", format="%.3g"),
            "rel_drop": st.column_config.NumberColumn("relative fall", format="%.3g")})
    if len(result.spikes):
        st.markdown("**Spikes**")
        st.dataframe(result.spikes, hide_index=True, column_config={
            "ratio": st.column_config.NumberColumn("x smoothed loss", format="%.3g"),
            "lr": st.column_config.NumberColumn("learning rate", format="%.3g")})
    if result.schedule is not None:
        st.subheader("The learning-rate schedule, read back")
        st.text(result.schedule.sentence())
        with st.expander("PyTorch code for this schedule, and how well each family fits"):
            st.code(result.schedule.torch_code(), language="python")
            st.dataframe([{"schedule": n, "rms relative error": e} for n, e in result.schedule.ranking],
                         hide_index=True)
    if result.gap is not None:
        st.subheader("Training vs evaluation loss")
        show_chart(lambda: gap_chart(result), PAGE, "train vs eval", key=f"{PAGE}_gap_{label}", memo=key,
                   dataset=label, seed=None)
    if len(result.extras):
        st.subheader("Other logged series")
        names = list(dict.fromkeys(result.extras["series"]))
        chosen = st.multiselect("Series", names, default=names[: min(4, len(names))], key=f"runlog_extras_{label}")
        if chosen:
            data = result.extras[result.extras["series"].isin(chosen)]
            show_chart(lambda: extras_chart(data, log_y), PAGE, "other series", key=f"{PAGE}_extras_{label}",
                       memo=key + tuple(chosen), dataset=label, seed=None)


if len(results) > 1:
    st.subheader(f"{len(results)} runs side by side")
    comparison = compare_runs(results)
    show_verdict(comparison.verdict)
    st.dataframe(comparison.table.assign(run=result_labels), hide_index=True, column_config={
        "loss_at_horizon": st.column_config.NumberColumn(f"loss by step {comparison.horizon:,}", format="%.4g"),
        "final_loss": st.column_config.NumberColumn(
            "final loss", format="%.4g", help="Mean of the last 20% of the logged losses; for a run that diverged, "
                                              "of those before the blow-up began."),
        "best_eval": st.column_config.NumberColumn("best eval loss", format="%.4g")})
    log_y_all = st.toggle("Log scale (overlays)", True, **bound("runlog_overlay_log"))
    memo = (tuple(r.name for r in results), tuple(log.fingerprint for log in logs), config, log_y_all)
    show_chart(lambda: overlay_chart(overlay_frame(results, result_labels, "smoothed loss"),
                                     "Smoothed training loss of every run", "loss", log_y_all),
               PAGE, "runs loss", memo=memo, dataset=None, seed=None)
    if any(len(r.curve[r.curve["series"] == "lr"]) for r in results):
        show_chart(lambda: overlay_chart(overlay_frame(results, result_labels, "lr"), "Learning rate of every run",
                                         "learning rate", log_y_all), PAGE, "runs lr", memo=memo, dataset=None, seed=None)
    if any(len(r.curve[r.curve["series"] == "grad_norm"]) for r in results):
        show_chart(lambda: overlay_chart(overlay_frame(results, result_labels, "grad_norm"),
                                         "Gradient norm of every run", "gradient norm", log_y_all),
                   PAGE, "runs grad norm", memo=memo, dataset=None, seed=None)
    st.divider()
    pick = st.selectbox("Look at one run", range(len(results)), format_func=lambda i: result_labels[i],
                        key="runlog_pick")
    single_run(results[pick], result_labels[pick], logs[pick])
else:
    single_run(results[0], result_labels[0], logs[0])
st.caption(f"Diagnosed in {time.perf_counter() - start:.2f} s.")
