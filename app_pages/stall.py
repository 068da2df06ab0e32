"""Gradient stall: the loss stopped falling. Is the gradient ~0 (a critical point) or is the step bouncing?"""
import streamlit as st

from core.charts.stall import escape_chart, spectrum_chart, toy_chart, training_chart
from core.diagnoses.stall import EXACT_MAX_PARAMS, SCENARIO, Config, run, toy_map, toy_point
from core.lab import LabSetup
from core.train import OPTIMIZERS
from ui.export import show_chart
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.verdict import show_verdict

PAGE = "stall"
DEFAULT = Config()
SOURCES = {"lab": "Lab setup (sidebar)", "scenario": "Stall scenario (built-in)"}

st.title("Gradient stall")
st.markdown(
    "The loss stopped going down: why? The lecture (2.1) gives two answers. Either the **gradient is ~0** and "
    "the parameters sit near a *critical point*, whose kind the Hessian tells (a saddle point you can leave, a "
    "local minimum, or a flat point); or the **gradient is not ~0** but the step is too large for the "
    "curvature and bounces across a valley (section 3.1). This page trains, finds where the loss went flat, "
    "and tells the two apart with numbers."
)

setup = current_setup()
source = st.radio("What to train", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="stall_source")
scenario = source == "scenario"
if scenario:
    st.caption(f"**Stall scenario** (ignores the sidebar): {SCENARIO.describe()}. A narrow tanh chain with a "
               "tiny initial scale starts next to the origin, a saddle point: plain gradient descent crawls on a "
               "long plateau, then drops, then settles as the learning rate decays. The seed is fixed so the "
               "plateau is always there.")
else:
    st.caption(f"Lab setup: {setup.describe()}.")

c1, c2, c3 = st.columns(3)
optimizer = c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(DEFAULT.optimizer), key="stall_optimizer",
                         disabled=scenario, help="'sgd' is plain (stochastic) gradient descent.")
lr = c1.number_input("Learning rate", 1e-5, 1000.0, DEFAULT.lr, format="%g", key="stall_lr", disabled=scenario)
steps = c2.number_input("Steps", 50, 20_000, DEFAULT.steps, 100, key="stall_steps", disabled=scenario)
batch = c2.number_input("Batch size (0 = full batch)", 0, 100_000, 0, 16, key="stall_batch", disabled=scenario,
                        help="Full batch gives clean gradient norms; a mini-batch gradient never vanishes.")
window = c3.number_input("Window (steps)", 10, 5_000, DEFAULT.window, 10, key="stall_window",
                         help="A stall is at least this long: the loss is compared with its value a window earlier.")
rel_eps = c3.number_input("Stall threshold (relative fall per window)", 1e-5, 0.5, DEFAULT.rel_eps, format="%g",
                          key="stall_eps", help="A window is flat when the loss falls by less than this fraction.")
with st.expander("Critical-point test and curvature"):
    d1, d2 = st.columns(2)
    grad_rel = d1.number_input("Critical when median |g| ≤ this × peak |g|", 1e-6, 0.9, DEFAULT.grad_rel,
                               format="%g", key="stall_grad_rel")
    grad_floor = d1.number_input("… or |g| ≤ this absolute floor", 0.0, 10.0, DEFAULT.grad_floor, format="%g",
                                 key="stall_grad_floor")
    max_classified = d2.number_input("Classify at most this many critical stalls", 0, 10, DEFAULT.max_classified,
                                     key="stall_max_classified", help="Each one costs Hessian-vector products.")
    spectrum = d2.toggle(f"Full eigenvalue spectrum (models up to {EXACT_MAX_PARAMS:,} parameters)", DEFAULT.spectrum,
                         key="stall_spectrum")

config = Config(scenario=scenario, optimizer=optimizer, lr=float(lr), steps=int(steps),
                batch_size=int(batch) or None, window=int(window), rel_eps=float(rel_eps), grad_rel=float(grad_rel),
                grad_floor=float(grad_floor), max_classified=int(max_classified), spectrum=bool(spectrum))
if scenario:  # the scenario ignores the lab setup and the training widgets: one cache entry for it
    config = Config(scenario=True, window=config.window, rel_eps=config.rel_eps, grad_rel=config.grad_rel,
                    grad_floor=config.grad_floor, max_classified=config.max_classified, spectrum=config.spectrum)
result = run_diagnosis(run, LabSetup() if scenario else setup, config, label="Training and classifying")

if result is not None:
    show_verdict(result.verdict)
    stalls, points = result.stalls, result.points
    m = st.columns(5)
    m[0].metric("Stalls", len(stalls))
    m[1].metric("At a critical point", int((stalls["kind"] == "critical point").sum()) if len(stalls) else 0)
    m[2].metric("Oscillating", int((stalls["kind"] == "oscillation").sum()) if len(stalls) else 0)
    m[3].metric("Final training loss", f"{result.final_loss:.4g}")
    m[4].metric("Parameters", f"{result.n_params:,}", help=result.model)
    st.caption(f"{result.data_name} · {result.model} · critical below |g| = {result.grad_threshold:.2e} "
               f"(peak |g| = {result.grad_peak:.2e}).")
    for note in result.notes:
        st.info(note, icon=":material/info:")

    st.subheader("Where the loss went flat")
    log_y = st.toggle("Log scale (loss and gradient norm)", True, key="stall_log")
    show_chart(lambda: training_chart(result, log_y), PAGE, "training curves",
               memo=(setup, config, log_y, result.final_loss))
    st.caption("Red bands: the gradient is tiny (a critical point). Orange bands: the loss is flat but the gradient "
               "is not; a gradient cosine near −1 means each step undoes the last (bouncing across a valley).")
    if len(stalls):
        st.dataframe(stalls, hide_index=True, column_config={
            "rel_drop": st.column_config.NumberColumn("rel. fall", format="%.2e"),
            "grad_median": st.column_config.NumberColumn("median |g|", format="%.2e"),
            "grad_ratio": st.column_config.NumberColumn("|g| / peak", format="%.2e"),
            "eig_min": st.column_config.NumberColumn("λ_min", format="%.3e"),
            "eig_max": st.column_config.NumberColumn("λ_max", format="%.3e"),
            "point_kind": "Hessian says"})

    if len(points):
        st.subheader("What kind of point? The Hessian at each critical stall and at the end")
        st.dataframe(points.drop(columns=["sentence"]), hide_index=True, column_config={
            "neg_share": st.column_config.NumberColumn("negative share", format="%.3f"),
            "min_ratio": st.column_config.NumberColumn("minimum ratio", format="%.3f"),
            "grad_norm": st.column_config.NumberColumn("|g|", format="%.2e")})
        with st.expander("What the Hessian says, point by point"):
            for row in points.itertuples():
                st.markdown(f"**{row.point}**: {row.sentence}")
        st.caption("Minimum ratio (the lecture's name) = share of positive eigenvalues; at a local minimum it is 1. "
                   "Eigenvalues within ±tolerance count as zero.")

    if len(result.histogram):
        labels = list(dict.fromkeys(result.histogram["point"]))
        kinds = dict(zip(points["point"], points["kind"]))
        first = next((i for i, label in enumerate(labels) if kinds.get(label) == "saddle point"), 0)
        chosen = (st.selectbox("Spectrum at", labels, index=first, key="stall_spectrum_point")
                  if len(labels) > 1 else labels[0])
        show_chart(lambda: spectrum_chart(result, chosen), PAGE, "eigenvalue histogram",
                   memo=(setup, config, chosen))
        st.caption("The lecture (2.2.2): in many dimensions a true local minimum is rare; where training stalls "
                   "there is usually still a direction with negative curvature, i.e. a saddle.")

    if len(result.escape):
        st.subheader("The way out of the saddle")
        show_chart(lambda: escape_chart(result), PAGE, "escape direction", memo=(setup, config))
        st.caption("u is the eigenvector of the smallest (negative) eigenvalue. The loss falls along it although "
                   "the gradient is ~0: the step gradient descent cannot find, and the one the Saddle escape page "
                   "races optimizers to find. Dashed: the second-order (Taylor) model the Hessian predicts.")

st.divider()
st.subheader("The lecture's example: ŷ = w1·w2·x with one sample (x = 1, y = 1)")
st.markdown("The loss L(w1, w2) = (1 − w1·w2)² has a saddle point at the origin and a valley of minima on the "
            "hyperbola w1·w2 = 1 (dashed). Pick a point: the same classify_point that judged the network above "
            "judges it here.")
left, right = st.columns([1, 2])
w1 = left.number_input("w1", -2.0, 2.0, 0.0, 0.1, format="%.3f", key="stall_w1")
w2 = left.number_input("w2", -2.0, 2.0, 0.0, 0.1, format="%.3f", key="stall_w2")
point = toy_point(w1, w2)
left.metric("Loss", f"{point.loss:.4g}")
left.markdown(f"**Gradient** (∂L/∂w1, ∂L/∂w2) = ({point.gradient[0]:.4g}, {point.gradient[1]:.4g})")
left.markdown("**Hessian**")
left.dataframe(point.hessian_frame, hide_index=True)
left.markdown("**Eigenvalues and eigenvectors**")
left.dataframe(point.eigen_frame, hide_index=True)
with right:
    show_chart(lambda: toy_chart(*toy_map(), point), PAGE, "lecture surface", memo=(w1, w2))
(st.warning if point.kind == "saddle point" else st.info)(
    point.sentence + (" The arrow is the escape direction (±u): the loss falls both ways."
                      if point.escape_direction is not None else
                      " The arrow is the negative gradient." if len(point.arrow) else ""))
