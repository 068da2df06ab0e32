"""Gradient stall: the loss stopped falling. Is the gradient ~0 (a critical point) or is the step bouncing?"""
import streamlit as st

from core.charts.stall import escape_chart, minimum_ratio_chart, spectrum_chart, toy_chart, training_chart
from core.diagnoses import minimum_ratio
from core.diagnoses.stall import (
    CRITICAL, EXACT_MAX_PARAMS, NOT_CRITICAL_KINDS, SCENARIO, Config, display_points, display_stalls, run, toy_map,
    toy_point,
)
from core.lab import LabSetup
from core.rules import CRITICAL_GAIN, SMALL_STEP_COSINE
from core.surfaces import SURFACES
from core.train import OPTIMIZERS
from ui.data_checks import show_data_checks
from ui.export import show_chart
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.url_state import bound
from ui.verdict import show_verdict
from ui.inputs import number_input

PAGE = "stall"
DEFAULT = Config()
SOURCES = {"lab": "Lab setup (sidebar)", "scenario": "Stall scenario (built-in)"}

st.title("Gradient stall")
st.markdown(
    "The loss stopped going down: why? The lecture (2.1) gives two answers. Either the **gradient is ~0** and "
    "the parameters sit near a *critical point*, whose kind the Hessian tells (a saddle point you can leave, a "
    "local minimum, or a flat point); or the **gradient is not ~0** but the step is too large for the "
    "curvature and bounces across a valley (section 3.1). A third case looks the same on a loss curve: the "
    "gradient is not ~0 and every step goes the same way, but each is too short (the learning rate is too small). "
    "This page trains, finds where the loss stopped falling, and tells the cases apart with numbers."
)

setup = current_setup()
source = st.radio("What to train", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                  **bound("stall_source", SOURCES, SOURCES.get))
scenario = source == "scenario"
if not scenario:
    show_data_checks(setup, key=PAGE)
if scenario:
    st.caption(f"**Stall scenario** (ignores the sidebar): {SCENARIO.describe()}. A narrow tanh chain with a "
               "tiny initial scale starts next to the origin, a saddle point: plain gradient descent crawls on a "
               "long plateau, then drops, then settles as the learning rate decays. The seed is fixed so the "
               "plateau is always there. The greyed controls show the scenario's own settings.")
else:
    st.text(f"Lab setup: {setup.describe()}")

# In scenario mode the training controls show the scenario's values, greyed, under their own keys;
# the lab controls (bound to the URL) come back with their values when the lab setup is chosen again.
SC = dict(optimizer=SCENARIO.optimizer, lr=SCENARIO.lr, steps=SCENARIO.steps, batch=SCENARIO.batch_size or 0)
c1, c2, c3 = st.columns(3)
if scenario:
    c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(SC["optimizer"]), key="stall_sc_optimizer",
                 disabled=True)
    number_input(c1, "Learning rate", 1e-5, 1000.0, float(SC["lr"]), format="%g", key="stall_sc_lr", disabled=True)
    number_input(c2, "Steps", 50, 20_000, int(SC["steps"]), 100, key="stall_sc_steps", disabled=True)
    number_input(c2, "Batch size (0 = full batch)", 0, 100_000, int(SC["batch"]), 16, key="stall_sc_batch",
                    disabled=True)
    optimizer, lr, steps, batch = SC["optimizer"], SC["lr"], SC["steps"], SC["batch"]
else:
    optimizer = c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULT.optimizer),
                             help="'sgd' is plain (stochastic) gradient descent.", **bound("stall_optimizer"))
    lr = number_input(c1, "Learning rate", 1e-5, 1000.0, DEFAULT.lr, format="%g", **bound("stall_lr"))
    steps = number_input(c2, "Steps", 50, 20_000, DEFAULT.steps, 100, **bound("stall_steps"))
    batch = number_input(c2, "Batch size (0 = full batch)", 0, 100_000, 0, 16,
                            help="Full batch gives clean gradient norms; a mini-batch gradient never vanishes.",
                            **bound("stall_batch"))
window = number_input(c3, "Window (steps)", 10, 5_000, DEFAULT.window, 10, **bound("stall_window"),
                         help="A stall is at least this long: the loss is compared with its value a window earlier.")
rel_eps = number_input(c3, "Stall threshold (relative fall per window)", 1e-5, 0.5, DEFAULT.rel_eps, format="%g",
                          **bound("stall_eps"), help="A window is flat when the loss falls by less than this fraction.")
with st.expander("Rows and curvature"):
    d1, d2 = st.columns(2)
    train_rows = number_input(d1, "Training rows (a random draw of the training split)", 20, 50_000,
                                 DEFAULT.max_train_rows, 500, disabled=scenario, **bound("stall_train_rows"),
                                 help="Full-batch training costs rows x steps; the default keeps the page fast.")
    curvature_rows = number_input(d1, "Rows for the Hessian", 20, 20_000, DEFAULT.curvature_rows, 500,
                                     **bound("stall_curvature_rows"),
                                     help="Each Hessian-vector product is a pass over these rows.")
    max_classified = number_input(d2, "Judge at most this many stalls with the Hessian", 0, 10, DEFAULT.max_classified,
                                     **bound("stall_max_classified"), help="Longest first; each costs Hessian-vector products.")
    spectrum = d2.toggle(f"Full eigenvalue spectrum (models up to {EXACT_MAX_PARAMS:,} parameters)", DEFAULT.spectrum,
                         **bound("stall_spectrum"))
st.caption(f"**Gradient ~0** (the app's one rule for a critical point): one gradient step at the largest stable rate "
           f"1/max|λ| would lower the loss by |g|²/(2·max|λ|); the gradient counts as ~0 when that gain is below "
           f"{CRITICAL_GAIN:.2%} of the loss the run started from. A point that fails this test is *not a critical "
           "point*, whatever the signs of its eigenvalues.")

config = Config(scenario=scenario, optimizer=optimizer, lr=float(lr), steps=int(steps), batch_size=int(batch) or None,
                window=int(window), rel_eps=float(rel_eps), max_train_rows=int(train_rows),
                curvature_rows=int(curvature_rows), max_classified=int(max_classified), spectrum=bool(spectrum))
if scenario:  # the scenario ignores the lab setup and the training widgets: one cache entry for it
    config = Config(scenario=True, window=config.window, rel_eps=config.rel_eps, curvature_rows=config.curvature_rows,
                    max_classified=config.max_classified, spectrum=config.spectrum)
result = run_diagnosis(run, LabSetup(device=setup.device) if scenario else setup, config,
                       label="Training and classifying")

if result is not None:
    show_verdict(result.verdict)
    stalls, points = result.stalls, result.points
    m = st.columns(5)
    m[0].metric("Stalls", len(stalls))
    m[1].metric("At a critical point", int((stalls["kind"] == CRITICAL).sum()))
    m[2].metric("Gradient not ~0", int(stalls["kind"].isin(NOT_CRITICAL_KINDS).sum()),
                help="Oscillation and small-steps stalls: the loss hardly falls although the gradient is not ~0.")
    m[3].metric("Final training loss", f"{result.final_loss:.4g}", help=f"Start: {result.start_loss:.4g}")
    m[4].metric("Parameters", f"{result.n_params:,}", help=result.model)
    st.text(f"{result.data_name} · {result.model} · trained on {result.train_rows:,} rows · Hessian on "
            f"{result.curvature_rows:,} rows")
    for note in result.notes:
        st.info(note, icon=":material/info:")

    st.subheader("Where the loss stopped falling")
    log_y = st.toggle("Log scale (loss and gradient norm)", True, **bound("stall_log"))
    show_chart(lambda: training_chart(result, log_y), PAGE, "training curves",
               memo=(setup, config, log_y, result.final_loss))
    st.caption("Shaded: stalls, at least one window long, where the loss fell by less than the threshold per window "
               "beyond its step-to-step noise. Red: the gradient is ~0 (a critical point). Orange: the loss is flat "
               "although the gradient is not ~0; a gradient cosine near −1 means each step undoes the last (bouncing "
               f"across a valley). Light blue: small steps, the gradient is not ~0 and successive gradients point the "
               f"same way (cosine ≥ {SMALL_STEP_COSINE:g}), so the loss still falls, only slower than the threshold: "
               "the learning rate is too small. Grey: judged by the log rules only, and neither.")
    if len(stalls):
        st.dataframe(display_stalls(stalls), hide_index=True)
        st.caption("Judged by 'Hessian': the critical test at a parameter snapshot inside the stall. 'log rules': "
                   "only the per-step record (the gradient collapsed below 5% of its first-window level, or "
                   "successive gradients point against each other or the same way); '—' where no Hessian was "
                   "computed.")

    if len(points):
        st.subheader("What kind of point? The Hessian at the longest stalls and at the end")
        st.dataframe(display_points(points), hide_index=True)
        with st.expander("What the numbers say, point by point"):
            for row in points.itertuples():
                st.markdown(f"**{row.label}**: {row.sentence}")
        st.caption("Minimum ratio (the lecture's name) = share of positive eigenvalues; at a strict local minimum it "
                   "is 1. Eigenvalues within ±tolerance (10⁻⁴ of the largest) count as zero.")

    if len(result.histogram):
        labels = list(dict.fromkeys(result.histogram["point"]))
        kinds = dict(zip(points["label"], points["kind"]))
        first = next((i for i, label in enumerate(labels) if kinds.get(label) == "saddle point"), 0)
        chosen = (st.selectbox("Spectrum at", labels, index=first, key="stall_spectrum_point")
                  if len(labels) > 1 else labels[0])
        show_chart(lambda: spectrum_chart(result, chosen), PAGE, "eigenvalue histogram",
                   memo=(setup, config, chosen))

    if len(result.escape):
        st.subheader("The way out of the saddle")
        show_chart(lambda: escape_chart(result), PAGE, "escape direction", memo=(setup, config))
        st.caption("u is the eigenvector of the smallest (negative) eigenvalue. The loss falls along it although "
                   "the gradient is ~0: the step gradient descent cannot find, and the one the Saddle escape page "
                   "races optimizers to find. Dashed: the second-order (Taylor) model the Hessian predicts.")

st.divider()
st.subheader("Are local minima rare? The lecture's empirical figure (2.2.2)")
st.markdown("The lecture (2.2.2) says that in many dimensions a point with gradient ~0 is almost never a local "
            "minimum: some direction still curves down. Its evidence is a figure of many trained networks, each "
            "driven to a point of near-zero gradient, plotted by training loss against the **minimum ratio** (the "
            "share of positive Hessian eigenvalues). This experiment reproduces it on small networks and the lab "
            "data: it takes tens of seconds, so it runs only when asked.")
mr_default = minimum_ratio.Config()
e1, e2 = st.columns(2)
mr_seeds = number_input(e1, "Initialisations per width", 2, 40, mr_default.seeds, **bound("stall_mr_seeds"))
mr_widths = e2.multiselect("Widths (hidden units)", [1, 2, 3, 4, 6, 8, 12, 16], list(mr_default.widths),
                           **bound("stall_mr_widths"))
if st.toggle("Run the minimum-ratio experiment", False, **bound("stall_mr_run")):
    mr_config = minimum_ratio.Config(widths=tuple(sorted(mr_widths)), seeds=int(mr_seeds))
    mr = run_diagnosis(minimum_ratio.run, setup, mr_config, label="Minimum-ratio experiment")
    if mr is not None:
        show_verdict(mr.verdict)
        for note in mr.notes:
            st.info(note, icon=":material/info:")
        if len(mr.points):
            show_chart(lambda: minimum_ratio_chart(mr), PAGE, "minimum ratio", memo=(setup, mr_config))
            st.caption(f"Lecture section 2.2.2 (local minima): each dot is one small tanh network "
                       f"({mr.n_inputs} inputs, one hidden layer, squared error) trained with Adam for "
                       f"{mr_config.train_steps} steps on {mr.rows} rows, then driven to a point of near-zero "
                       "gradient by minimising |g|² (scipy's Levenberg–Marquardt); every dot passes the critical "
                       "test above, and its eigenvalues are the exact Hessian's. The lecture's figure has the same "
                       "axes; its largest minimum ratio was about 0.6, so none of its points was a local minimum "
                       "(the notes hold that figure only as an image).")
            st.markdown(minimum_ratio.honesty_note(mr))
            st.caption(f"{len(mr.points)} points of {mr.asked} asked for; {mr.rejected} initialisation(s) failed the "
                       f"critical test and were replaced; {mr.seconds:.1f} s.")

st.divider()
st.subheader("The lecture's example: ŷ = w1·w2·x with one sample (x = 1, y = 1)")
st.markdown("The loss L(w1, w2) = (1 − w1·w2)² has a saddle point at the origin and a valley of minima on the "
            "hyperbola w1·w2 = 1 (dashed). Pick a point: the same critical test and Hessian signs that judged the "
            "network above judge it here (the loss scale is the origin's loss, 1).")
left, right = st.columns([1, 2])
w1 = number_input(left, "w1", -2.0, 2.0, 0.0, 0.1, format="%.3f", **bound("stall_w1"))
w2 = number_input(left, "w2", -2.0, 2.0, 0.0, 0.1, format="%.3f", **bound("stall_w2"))
point = toy_point(w1, w2)
left.metric("Loss", f"{point.loss:.4g}")
left.markdown(f"**Gradient** (∂L/∂w1, ∂L/∂w2) = ({point.gradient[0]:.4g}, {point.gradient[1]:.4g})")
left.markdown("**Hessian**")
left.dataframe(point.hessian_frame, hide_index=True)
left.markdown("**Eigenvalues and eigenvectors**")
left.dataframe(point.eigen_frame, hide_index=True)
with right:
    # The chart reads no lab data and draws no random numbers: its file carries the surface's name.
    show_chart(lambda: toy_chart(*toy_map(), point), PAGE, "error surface", memo=(w1, w2),
               dataset=SURFACES["lecture"].label, seed=None)
(st.warning if point.kind == "saddle point" else st.success if point.valley_minimum else st.info)(
    point.sentence + (" The arrow is the escape direction (±u): the loss falls both ways."
                      if point.escape_direction is not None else
                      " The arrow is the negative gradient." if len(point.arrow) else ""))
