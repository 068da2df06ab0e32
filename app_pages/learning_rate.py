"""Learning rate: find a rate (range test), preview schedules, train with them, compare adaptive optimizers."""
import streamlit as st

from core.charts import learning_rate as charts
from core.diagnoses import learning_rate as lab
from core.schedules import SCHEDULES, default_params
from core.surfaces import OPTIMIZERS as SURFACE_LABELS
from core.surfaces import SURFACES
from core.train import OPTIMIZERS
from ui.export import show_chart
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.verdict import show_verdict

PAGE = "learning_rate"

st.title("Learning rate")
st.caption("Lecture section 3: the gradient is not zero but the loss will not fall. One rate does not fit "
           "every parameter (Adagrad, RMSprop, Adam adapt it per parameter) nor every moment of training "
           "(warmup and decay schedules).")
setup = current_setup()
answer = st.container()  # the page's one-sentence answer, filled once the range test and training ran
# Tabs that track which one is open: every tab's widgets are drawn (so their values persist), but
# charts and the slower runs only happen in the open tab. The range test and the schedule training
# always run (cached): the answer above needs both.
tab_range, tab_preview, tab_train, tab_adaptive = st.tabs(
    ["Find a rate (range test)", "Preview schedules", "Train with schedules", "Adaptive optimizers"],
    key=f"{PAGE}_tab", on_change="rerun")


def rate_input(label: str, value: float, key: str, **kw) -> float:
    """A learning-rate box that shows 1e-05 and 0.3 alike."""
    return float(st.number_input(label, min_value=1e-8, max_value=1e4, value=value, format="%g",
                                 step=value / 2, key=f"{PAGE}_{key}", **kw))


def batch_input(key: str) -> int | None:
    size = int(st.number_input("Batch size (0 = full batch)", 0, 100_000, 32, key=f"{PAGE}_{key}"))
    return size or None


def schedule_params(name: str, total_steps: int) -> tuple:
    """Widgets for the parameters a schedule is worth tuning by; defaults scale with the run length."""
    defaults = default_params(name, total_steps)
    chosen = {}
    cols = st.columns(max(1, len(SCHEDULES[name].needs)))
    for col, param in zip(cols, SCHEDULES[name].needs):
        key = f"{PAGE}_p_{name}_{param}_{total_steps}"  # a new run length brings new defaults
        value = defaults[param]
        if isinstance(value, int):
            chosen[param] = int(col.number_input(param, min_value=0, value=value, key=key))
        else:
            chosen[param] = float(col.number_input(param, value=float(value), format="%g", key=key))
    return tuple(chosen.items())


# ------------------------------------------------------------------ 1. LR range test (fills the answer too)
with tab_range:
    st.markdown(
        "**Smith's LR range test**, as fastai's `lr_find` runs it (`torch-lr-finder` differs only in its "
        "constants): train a few hundred mini-batches while the rate grows exponentially from a tiny to a huge "
        "value, smooth the loss with a debiased moving average (beta 0.98), stop once it passes 4x its best. "
        "Two readings: **valley** "
        "(fastai's default: the longest stretch of falling loss, about half-way along it) and **steepest** "
        "(the fastest fall per decade of rate). A median of three neighbours before the average keeps one bad "
        "batch from stopping the test or moving the suggestions.")
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    rt_optimizer = c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index("adam"), key=f"{PAGE}_rt_opt")
    with c2:
        rt_start = rate_input("Start rate", 1e-4, "rt_start")
    with c3:
        rt_end = rate_input("End rate", 10.0, "rt_end")
    rt_steps = int(c4.number_input("Steps", 10, 2000, 200, step=50, key=f"{PAGE}_rt_steps"))
    with c5:
        rt_batch = batch_input("rt_batch")
    rt_check = int(c6.number_input("Check steps", 0, 2000, 200, step=50, key=f"{PAGE}_rt_check",
                                   help="Then train this long at 0.1x, 1x and 10x the valley (0 = skip)."))
    rt_config = lab.RangeTestConfig(rt_optimizer, rt_start, rt_end, rt_steps, rt_batch, rt_check)
    st.caption("Adam is the default: its step is about the rate per parameter whatever the gradient's scale, "
               "so the valley it finds carries over to training. With plain SGD on the default setup the "
               "valley came out ten times too low (training at 10x did better); the check below tells you.")
    rt = run_diagnosis(lab.run_range_test, setup, rt_config, "Range test")
    if rt is not None and tab_range.open is not False:
        m1, m2, m3 = st.columns(3)
        m1.metric("Valley (suggested)", f"{rt.valley_lr:.3g}" if rt.valley_lr else "none")
        m2.metric("Steepest", f"{rt.steep_lr:.3g}" if rt.steep_lr else "none")
        m3.metric("Stopped at step", rt.stop_step if rt.stop_step is not None else "ran through")
        show_chart(charts.range_test_chart(rt), PAGE, "range test")
        for note in rt.notes:
            st.info(note)
        if len(rt.check):
            show_chart(charts.range_check_chart(rt), PAGE, "range check")
            st.dataframe(rt.check.drop(columns="factor"), hide_index=True)
        show_verdict(rt.verdict)

# ------------------------------------------------------------------ 2. schedule preview (pure math)
with tab_preview:
    st.caption("Lecture 3.2.4: decay lowers the rate as training settles; a warm-up starts low while the "
               "optimizer's per-parameter statistics rest on few gradients (why BERT and the Transformer's Noam "
               "schedule warm up). Schedules here are pure functions of the step; the code is torch's twin.")
    c1, c2, c3 = st.columns([3, 1, 1])
    names = c1.multiselect("Schedules", list(SCHEDULES), ["constant", "step", "warmup_cosine", "one_cycle"],
                           format_func=lambda n: SCHEDULES[n].label, key=f"{PAGE}_pv_names")
    total = int(c2.number_input("Total steps", 2, 100_000, 1000, step=100, key=f"{PAGE}_pv_total"))
    with c3:
        base = rate_input("Base rate", 0.1, "pv_base")
    c1, c2 = st.columns([3, 1])
    at_text = c1.text_input("Read the rate at steps", "0, 100, 250, 500, 999", key=f"{PAGE}_pv_at")
    log_y = c2.toggle("Log scale", True, key=f"{PAGE}_pv_log")
    picks, code_slots = [], {}
    for name in names:
        with st.expander(f"{SCHEDULES[name].label}: parameters and PyTorch code"):
            st.caption(SCHEDULES[name].description)
            picks.append((name, schedule_params(name, total)))
            code_slots[name] = st.empty()  # filled with "copy as PyTorch code" once the params are valid
    preview = None
    if tab_preview.open is not False:
        try:
            at = lab.parse_steps(at_text, total)
            preview = lab.run_preview(None, setup, lab.PreviewConfig(tuple(picks), total, base, at))
        except ValueError as exc:
            st.error(str(exc))
    if preview is not None:
        for name, slot in code_slots.items():
            slot.code(preview.code[name], language="python")
        show_chart(charts.schedule_chart(preview, log_y), PAGE, "schedules")
        st.dataframe(preview.table, hide_index=True)
        show_verdict(preview.verdict)

# ------------------------------------------------------------------ 3. train with schedules
with tab_train:
    valley = rt.valley_lr if rt is not None else None
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    use_valley = c1.checkbox("Base rate = the range test's valley" + (f" ({valley:.3g})" if valley else ""),
                             value=True, key=f"{PAGE}_tr_valley", disabled=valley is None)
    with c2:
        manual = rate_input("Base rate", 0.01, "tr_lr", disabled=bool(use_valley and valley))
    steps = int(c3.number_input("Steps", 2, 5000, 200, step=50, key=f"{PAGE}_tr_steps"))
    with c4:
        tr_batch = batch_input("tr_batch")
    scheds = st.multiselect("Schedules (against a constant rate)", [n for n in SCHEDULES if n != "constant"],
                            ["warmup_cosine", "cosine"], format_func=lambda n: SCHEDULES[n].label,
                            key=f"{PAGE}_tr_scheds")
    st.caption(f"Optimizer: {rt_optimizer} (set on the range-test tab). Every run starts from the same weights "
               "and sees the same batches; only the rate per step differs. Schedules take their defaults for "
               "this run length (warm-ups are 10% of it): the preview tab shows them for the same total steps.")
    tr_config = lab.TrainingConfig(optimizer=rt_optimizer, lr=valley if use_valley and valley else manual,
                                   steps=steps, batch_size=tr_batch, schedules=tuple((n, ()) for n in scheds))
    training = run_diagnosis(lab.run_training, setup, tr_config, "Training")
    if training is not None and tab_train.open is not False:
        for row in training.summary[training.summary["diverged at"].notna()].itertuples():
            st.warning(f"**{row.run}**: {row.message}.")
        left, right = st.columns(2)
        with left:
            show_chart(charts.training_loss_chart(training), PAGE, "training loss")
        with right:
            show_chart(charts.training_rate_chart(training), PAGE, "training rates")
        st.dataframe(training.summary, hide_index=True)
        show_verdict(training.verdict)

# ------------------------------------------------------------------ 4. adaptive optimizers
with tab_adaptive:
    st.markdown(
        "Plain gradient descent moves every parameter by *rate x gradient*. **Adagrad** divides each "
        "parameter's step by the root of its summed squared gradients, **RMSprop** by a moving average of "
        "them that forgets (alpha 0.99), **Adam** adds momentum and bias correction. The lecture's warning: "
        "where a parameter's gradient was small for a long time the divisor is small, so when the slope "
        "returns its step bursts, then settles. Its cure is a schedule: warm up, and let the rate decay.")
    c1, c2, c3, c4 = st.columns(4)
    surface = c1.selectbox("Surface", list(lab.SURFACE_RATES), format_func=lambda k: SURFACES[k].label,
                           index=list(lab.SURFACE_RATES).index("flat_then_steep"), key=f"{PAGE}_sf_surface")
    sf_steps = int(c2.number_input("Steps", 10, 2000, 150, step=50, key=f"{PAGE}_sf_steps"))
    demo = c3.selectbox("Tame with schedules", lab.SURFACE_OPTIMIZERS, index=2, format_func=SURFACE_LABELS.get,
                        key=f"{PAGE}_sf_demo")
    warm = c4.slider("Warmup share", 0.05, 0.5, 0.1, 0.05, key=f"{PAGE}_sf_warm")
    rates = {}
    with st.expander("Rate per optimizer on this surface"):
        for col, (opt, value) in zip(st.columns(4), lab.surface_rates(surface).items()):
            with col:
                rates[opt] = rate_input(SURFACE_LABELS[opt], value, f"sf_rate_{surface}_{opt}")
    sf = None
    if tab_adaptive.open is not False:
        sf = run_diagnosis(lab.run_surfaces, setup,
                           lab.SurfaceConfig(surface, sf_steps, tuple(rates.items()), demo, warm), "Surface race")
    if sf is not None:
        left, right = st.columns(2)
        with left:
            show_chart(charts.surface_map(sf), PAGE, "surface paths")
        with right:
            show_chart(charts.surface_loss_chart(sf, SURFACES[surface].min_loss), PAGE, "surface loss")
        show_chart(charts.per_coordinate_chart(sf, "eff_lr"), PAGE, "effective rate")
        show_chart(charts.per_coordinate_chart(sf, "step"), PAGE, "step per rate")
        st.dataframe(sf.summary, hide_index=True)
        show_verdict(sf.verdict)
        st.markdown(
            "**Reading it with torch's optimizers.** `torch.optim.Adagrad` divides by the root of the *sum* of "
            "squared gradients, which is the lecture's root-mean-square times sqrt(t+1): it is the lecture's "
            "Adagrad with a 1/sqrt(t+1) decay built in, so its step never exceeds the rate per coordinate. Its "
            "burst shows as the effective rate |Δw|/|g| on the flat stretch, orders of magnitude above plain "
            "descent's, which is what carries it across the plateau. RMSprop's average forgets and torch does "
            "not bias-correct it (it starts at zero): its first step is 10x the rate, and its largest later step "
            "comes at the cliff, where a large gradient meets a divisor that has seen only the plateau's small "
            "ones. Warmup shrinks the first step; a decaying rate shrinks late steps, but a burst that comes "
            "while the schedule is near full rate stays, as the table shows.")

    st.subheader("On the lab dataset")
    c1, c2, c3 = st.columns([2, 3, 1])
    on_lab = c1.toggle("Train the four optimizers on the lab model", True, key=f"{PAGE}_ad_on",
                       help="Four more training runs of the lab model, one per optimizer.")
    ad_steps = int(c3.number_input("Steps", 1, 5000, 200, step=50, key=f"{PAGE}_ad_steps"))
    ad_rates = []
    with c2.expander("Rate per optimizer"):
        for col, (opt, value) in zip(st.columns(4), lab.AdaptiveConfig().rates):
            with col:
                ad_rates.append((opt, rate_input(opt, value, f"ad_rate_{opt}")))
    if on_lab and tab_adaptive.open is not False:
        adaptive = run_diagnosis(lab.run_adaptive, setup, lab.AdaptiveConfig(ad_steps, 32, tuple(ad_rates)),
                                 "Optimizers")
        if adaptive is not None:
            show_chart(charts.training_loss_chart(adaptive), PAGE, "optimizers loss")
            st.dataframe(adaptive.summary, hide_index=True)
            show_verdict(adaptive.verdict)

if rt is not None or training is not None:  # otherwise the data's own error message says why
    with answer:
        show_verdict(lab.recommend(rt, training))
