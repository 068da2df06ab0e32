"""Saddle escape: race six optimizers away from the same saddle and see who gets out, how fast, at what cost."""
import streamlit as st

from core.charts.saddle import distance_curves, escape_bars, loss_curves, race_map, well_loss, well_map
from core.diagnoses.local_minimum import Config as WellConfig
from core.diagnoses.local_minimum import run as run_well
from core.diagnoses.saddle import NETWORK, SURFACE_CHOICES, Config, run
from core.diagnoses.words import cells, num
from core.surfaces import SURFACES
from ui.data_checks import show_data_checks
from ui.export import FROM_LAB, show_chart
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.url_state import bound
from ui.verdict import escape_markdown, show_verdict
from ui.inputs import number_input

PAGE = "saddle"
DEFAULT = Config()
WELL_DEFAULT = WellConfig()


def gaps_as_text(table, missing: dict):
    """The table with each listed column that has a gap shown as text, the gap as `missing`
    (Streamlit draws a grey "None" for a missing number whatever the column format); a column
    without gaps stays numeric."""
    table = table.copy()
    for col, (word, fmt) in missing.items():
        if table[col].isna().any():
            table[col] = cells(table[col], fmt, word)
    return table


GROUNDS = {**{key: SURFACES[key].label for key in SURFACE_CHOICES}, NETWORK: "Your network (lab model at a saddle)"}

st.title("Saddle escape")
st.markdown(
    "At a saddle point the gradient is zero, so plain gradient descent has nothing to follow. The lecture "
    "(2.2.1) names two ways out: the Hessian's **negative-curvature direction**, exact but costly, and "
    "**momentum**, which carries the parameters on like a rolling ball. Section 4.2 adds a third: the "
    "**noise** of small batches. Here six racers start from the same point, exactly at the saddle or pushed "
    "a tiny seeded step off it, and race to get away."
)

setup = current_setup()
ground = st.selectbox("Ground", list(GROUNDS), format_func=GROUNDS.get,
                      **bound("saddle_surface", GROUNDS, GROUNDS.get))
if ground == NETWORK:
    show_data_checks(setup, key=PAGE)
    st.caption(f"The lab model ({escape_markdown(setup.describe())}) with its last hidden layer and output weights zeroed and "
               "the output bias at the best constant: a critical point of the full-batch training loss.")
else:
    s = SURFACES[ground]
    st.latex(s.formula)
    st.caption(s.description)

with st.form("saddle_form"):
    c1, c2, c3 = st.columns(3)
    steps = number_input(c1, "Step budget", 1, 2000, DEFAULT.steps, 50, **bound("saddle_steps"))
    lr = number_input(c1, "Learning rate", 1e-4, 1000.0, DEFAULT.lr, format="%g", **bound("saddle_lr"))
    epsilon = number_input(c1, "Push epsilon (distance off the saddle)", 1e-6, 1.0, DEFAULT.epsilon,
                              format="%g", **bound("saddle_epsilon"))
    sigma = c2.slider("Gradient noise sigma", 0.0, 3.0, DEFAULT.noise_sigma, 0.05, **bound("saddle_sigma"))
    beta = c2.slider("Momentum beta (momentum and Nesterov)", 0.0, 0.99, DEFAULT.momentum, 0.01, **bound("saddle_beta"),
                     help="At 0 Nesterov sits the race out: it is plain gradient descent then (and torch's "
                          "SGD accepts Nesterov only with a positive momentum).")
    scale = c2.slider("Curvature step scale (length = scale x |lambda_min|)", 0.05, 2.0, DEFAULT.curvature_scale,
                      0.05, **bound("saddle_scale"))
    delta = number_input(c3, "Escaped when the loss drops by (delta)", 1e-4, 10.0, DEFAULT.delta, format="%g",
                            **bound("saddle_delta"))
    radius = number_input(c3, "... or the distance exceeds (r)", 1e-3, 100.0, DEFAULT.radius, format="%g",
                             **bound("saddle_radius"), disabled=ground == NETWORK,
                             help="Surfaces only: in a network, Adam's first step alone moves hundreds of "
                                  "parameters by the learning rate each, so only the loss rule counts there.")
    all_zero = c3.checkbox("Network: zero every layer, not only the last two", DEFAULT.all_zero,
                           **bound("saddle_all_zero"), disabled=ground != NETWORK)
    st.form_submit_button("Race", key="saddle_race")

config = Config(surface=ground, steps=int(steps), lr=float(lr), epsilon=float(epsilon), noise_sigma=float(sigma),
                momentum=float(beta), delta=float(delta), radius=float(radius), curvature_scale=float(scale),
                all_zero=bool(all_zero))
result = run_diagnosis(run, setup, config, label="Racing", needs_data=config.surface == NETWORK)

if result is not None:
    show_verdict(result.verdict)

    if result.check is not None:
        st.subheader("Is it really a saddle? The check")
        chk = result.check
        cols = st.columns(5)
        cols[0].metric("Loss at the point", f"{chk.loss:.4f}")
        cols[1].metric("Gradient norm", f"{chk.grad_norm:.1e}", help=f"counts as zero below {chk.grad_tol:.1e}")
        cols[2].metric("lambda_min", f"{chk.eig_min:.4g}")
        cols[3].metric("lambda_max", f"{chk.eig_max:.4g}")
        cols[4].metric("Verdict", chk.kind, help=f"{chk.n_hvp} Hessian-vector products")
        st.caption(f"{chk.sentence} ({result.n_params} parameters, {chk.n_hvp} Hessian-vector products.)")
        for note in result.network_notes:
            st.info(note, icon=":material/info:")

    # File names carry the chart's own inputs: the surface (seeded push and noise), or the lab data.
    race_data = FROM_LAB if ground == NETWORK else SURFACES[ground].label
    st.subheader("The race")
    views = {"pushed": f"pushed {config.epsilon:g} off the saddle", "exact": "exactly the saddle"}
    start = st.radio("Show the race from", list(views), horizontal=True, format_func=views.get,
                     **bound("saddle_view", views, views.get))
    if result.grid is not None:
        show_chart(lambda: race_map(result, start, SURFACES[ground].axis_names), PAGE, f"paths_{start}", dataset=race_data,
                   memo=(setup, config, start))
        if start == "exact":
            st.caption("Racers that never moved sit under the saddle marker: their whole path is one point.")
    show_chart(lambda: loss_curves(result, start), PAGE, f"loss_{start}", memo=(setup, config, start), dataset=race_data)
    show_chart(lambda: distance_curves(result, start), PAGE, f"distance_{start}", memo=(setup, config, start), dataset=race_data)
    show_chart(lambda: escape_bars(result, start), PAGE, f"escape_{start}", memo=(setup, config, start), dataset=race_data)

    table = gaps_as_text(result.table[result.table["start"] == start].drop(columns=["racer", "start"]), {
        "steps_to_escape": ("never", num), "diverged_at": ("–", num),
        "eig_min": ("–", lambda v: f"{v:.4g}")})
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "label": "Racer",
            "escaped": st.column_config.CheckboxColumn("Escaped"),
            "steps_to_escape": "Steps to escape",
            "escaped_by": "By",
            "final_loss": st.column_config.NumberColumn("Final loss", format="%.4g"),
            "loss_change": st.column_config.NumberColumn("Loss change", format="%.4g",
                                                         help="last finite loss minus the start's"),
            "final_distance": st.column_config.NumberColumn("Final distance", format="%.3g"),
            "diverged_at": "Diverged at step",
            "hessian_evals": "Exact Hessians",
            "hvps": "Hessian-vector products",
            "curvature_seconds": st.column_config.NumberColumn("Curvature seconds", format="%.4f"),
            "eig_min": "lambda_min seen",
            "seconds": st.column_config.NumberColumn("Run seconds", format="%.3f"),
        },
    )
    st.caption(f"Escaped = loss below L(saddle) - delta = {result.saddle_loss - config.delta:.4g}"
               + ("" if ground == NETWORK else f", or farther than r = {config.radius:g} from the saddle")
               + f", within {config.steps} steps. Same seed ({setup.seed}), same push, same noise.")

    st.subheader("Honest about the exact saddle")
    st.info(result.honesty, icon=":material/balance:")
    st.markdown(
        "- **How momentum can beat plain gradient descent after a push.** Near a saddle the push grows by a "
        "factor (1 + lr x |lambda_min|) per step under gradient descent. Momentum adds the previous update "
        "to each new one, so consistent small gradients accumulate into a speed up to 1 / (1 - beta) times "
        "larger: the ball rolls off (with beta 0 it is plain gradient descent, and a rate past the stable "
        "limit diverges either way; the race above says what happened here). Exactly at the saddle, though, "
        "there is no gradient to accumulate.\n"
        "- **Why not always take the curvature step?** It is exact, one step along the eigenvector of "
        "lambda_min, like the lecture's (1, 1) direction at the origin. But finding that eigenvector costs "
        "an eigen-solve: on a toy surface one exact Hessian (its cost is in the table above), on a network "
        "Lanczos with a few dozen Hessian-vector products (each about one extra forward and backward pass); "
        "for millions of parameters and a fresh solve at every suspicious point it is far too costly, as the "
        "lecture warns.\n"
        "- **Why noise works.** Mini-batch gradients are noisy (lecture 4.2): the noise knocks the "
        "parameters off the exact balance point, and the negative curvature does the rest. Adam escapes fast "
        "after a push because it rescales every coordinate to a step of about the learning rate."
    )

st.divider()
st.subheader("Momentum rolls past a local minimum (lecture 2.2.1)")
st.caption("The lecture's picture of a ball rolling downhill: where gradient descent stops because the gradient "
           "is zero at the bottom of a small dip, momentum keeps the speed it gathered and can carry on over "
           "the ridge into a deeper minimum. Same start, same rate for gradient descent and momentum.")
s = SURFACES["double_well"]
st.latex(s.formula)
with st.form("saddle_well_form"):
    w1, w2, w3 = st.columns(3)
    well_start = w1.slider("Start x", 1.0, 2.2, WELL_DEFAULT.start_x, 0.05, **bound("saddle_well_x"))
    well_lr = number_input(w1, "Learning rate (GD and momentum)", 1e-4, 0.1, WELL_DEFAULT.lr, format="%g",
                              **bound("saddle_well_lr"))
    well_beta = w2.slider("Momentum beta", 0.0, 0.99, WELL_DEFAULT.momentum, 0.01, **bound("saddle_well_beta"))
    well_adam = number_input(w2, "Adam's learning rate", 1e-4, 2.0, WELL_DEFAULT.adam_lr, format="%g",
                                **bound("saddle_well_adam"))
    well_steps = number_input(w3, "Steps", 10, 5000, WELL_DEFAULT.steps, 50, **bound("saddle_well_steps"))
    st.form_submit_button("Roll", key="saddle_well_roll")
well_config = WellConfig(start_x=float(well_start), steps=int(well_steps), lr=float(well_lr),
                         momentum=float(well_beta), adam_lr=float(well_adam))
well = run_diagnosis(run_well, setup, well_config, label="Rolling", needs_data=False)
if well is not None:
    show_verdict(well.verdict)
    show_chart(lambda: well_map(well), PAGE, "double_well_paths", memo=well_config, dataset="double well", seed=None)
    show_chart(lambda: well_loss(well), PAGE, "double_well_loss", memo=well_config, dataset="double well", seed=None)
    well_table = gaps_as_text(well.table.drop(columns=["racer"]),
                              {"settle_step": ("–", num), "diverged_at": ("–", num)})
    st.dataframe(well_table, hide_index=True, column_config={
        "label": "Racer", "lr": "Learning rate", "final_x": st.column_config.NumberColumn("Final x", format="%.3f"),
        "final_loss": st.column_config.NumberColumn("Final loss", format="%.4f"), "settled_in": "Settled in",
        "settle_step": "Settled by step", "diverged_at": "Diverged at step"})
