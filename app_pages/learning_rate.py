"""Learning rate: find a rate (range test and its check), preview schedules, train with them,
compare adaptive optimizers, and see the lecture's Adagrad burst and its cure."""
import streamlit as st

from core.charts import learning_rate as charts
from core.diagnoses import learning_rate as answer_module
from core.diagnoses import lr_burst, lr_optimizers, lr_preview, lr_range, lr_schedules, lr_surfaces
from core.diagnoses._kits.lr import display_table
from core.schedules import SCHEDULES, default_params
from core.surfaces import SURFACES
from core.train import OPTIMIZERS
from ui.export import show_chart
from ui.data_checks import show_data_checks
from ui.runner import run_diagnosis
from ui.state import current_setup
from ui.url_state import bound
from ui.verdict import show_verdict
from ui.inputs import number_input

PAGE = "learning_rate"

st.title("Learning rate")
st.caption("Lecture section 3: the gradient is not zero but the loss will not fall. One rate does not fit "
           "every parameter (Adagrad, RMSprop, Adam adapt it per parameter) nor every moment of training "
           "(warmup and decay schedules).")
setup = current_setup()
show_data_checks(setup, key=PAGE)
answer = st.container()  # the page's one-sentence answer, filled once the range test and training ran
seeds_col, seeds_note = st.columns([1, 3], vertical_alignment="bottom")
seeds = int(number_input(seeds_col, 
    "Seeds per compared run", 1, lr_range.MAX_SEEDS, 3, **bound(f"{PAGE}_seeds"),
    help="Every run that is compared (the range test's check, the schedules, the optimizers on the lab model) "
         "repeats with this many seeds: the lab seed and the next ones (initial weights and batch order). "
         "A run is called better only when Welch's t-test across the seeds says so; with one seed, only when "
         "the difference is twice the runs' own noise."))
seeds_note.caption("Charts of compared runs show the mean over seeds and the band from the lowest to the highest "
                   "seed; a claim (\"trained better\") is made only where it holds across the seeds.")
# Tabs that track which one is open: every tab's widgets are drawn (so their values persist), but
# charts and the slower runs only happen in the open tab. The range test and the schedule training
# always run (cached): the answer above needs both.
tab_range, tab_preview, tab_train, tab_adaptive = st.tabs(
    ["Find a rate (range test)", "Preview schedules", "Train with schedules", "Adaptive optimizers"],
    key=f"{PAGE}_tab", on_change="rerun", bind="query-params")  # the open tab is in the URL


def rate_input(label: str, value: float, key: str, **kw) -> float:
    """A learning-rate box that shows 1e-05 and 0.3 alike."""
    return float(number_input(st, label, min_value=1e-8, max_value=1e4, value=value, format="%g",
                                 step=value / 2, **bound(f"{PAGE}_{key}"), **kw))


def batch_input(key: str) -> int | None:
    size = int(number_input(st, "Batch size (0 = full batch)", 0, 100_000, 32, **bound(f"{PAGE}_{key}")))
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
            chosen[param] = int(number_input(col, param, min_value=0, value=value, **bound(key)))
        else:
            chosen[param] = float(number_input(col, param, value=float(value), format="%g", **bound(key)))
    return tuple(chosen.items())


def show_table(frame, **kw) -> None:
    """A result table with display labels, '–' for gaps and one number format ("%.3g": 3.05e-07,
    9.9e-70 and 0.0137 alike)."""
    table = display_table(frame, **kw)
    config = {col: st.column_config.NumberColumn(col, format="%.3g") for col in table.columns
              if table[col].dtype.kind == "f"}
    st.dataframe(table, hide_index=True, column_config=config)


def show_notes(notes) -> None:
    for note in notes:
        st.caption(note)


def update_rules_markdown(table) -> str:
    """The lecture's summary table (core data) as a Markdown table with inline math."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| optimizer | $m_t$ | $\\sigma_t$ | $\\eta_t$ | torch | the lecture's version |",
             "|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.name} | ${cell(row.m_t)}$ | ${cell(row.sigma_t)}$ | ${cell(row.eta_t)}$ | "
                     f"`{row.torch}` | {cell(row.lecture)} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ 1. LR range test (fills the answer too)
with tab_range:
    st.markdown(
        "**Smith's LR range test**, as fastai's `lr_find` runs it: train a few hundred mini-batches while the "
        "rate grows exponentially from a tiny to a huge value, smooth the loss with a debiased moving average "
        "(beta 0.98), and stop once it passes 4x its best (fastai's stopping rule: the test has seen enough; "
        "it is not a divergence). Two readings: **valley** (fastai's default, about half-way along the longest "
        "stretch of falling loss) and **steepest** (the fastest fall per decade of rate). Then the **check** "
        "trains at a tenth, once and ten times the valley, and the page recommends the valley unless the check "
        "found a rate that trained clearly better.")
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    rt_optimizer = c1.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index("adam"), **bound(f"{PAGE}_rt_opt"))
    with c2:
        rt_start = rate_input("Start rate", 1e-4, "rt_start")
    with c3:
        rt_end = rate_input("End rate", 10.0, "rt_end")
    rt_steps = int(number_input(c4, "Steps", 10, lr_range.MAX_STEPS, 200, step=50, **bound(f"{PAGE}_rt_steps")))
    with c5:
        rt_batch = batch_input("rt_batch")
    rt_check = int(number_input(c6, "Check steps", 0, lr_range.MAX_STEPS, 200, step=50, **bound(f"{PAGE}_rt_check"),
                                   help="Then train this long at 0.1x, 1x and 10x the valley (0 = skip)."))
    rt_config = lr_range.Config(rt_optimizer, rt_start, rt_end, rt_steps, rt_batch, rt_check, seeds)
    rt = run_diagnosis(lr_range.run, setup, rt_config, "Range test")
    if rt is not None and tab_range.open is not False:
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Valley", f"{rt.valley_lr:.3g}" if rt.valley_lr else "none")
        m2.metric("Steepest", f"{rt.steep_lr:.3g}" if rt.steep_lr else "none")
        checked = "not checked" if rt.choice.kind == "unchecked" else "after the check"
        m3.metric(f"Recommended ({checked})", f"{rt.recommended_lr:.3g}" if rt.recommended_lr else "none")
        m4.metric("Stopping rule fired at step", rt.stop_step if rt.stop_step is not None else "never")
        show_chart(charts.range_test_chart(rt), PAGE, "range test")
        show_notes(rt.notes)
        if len(rt.check):
            show_chart(charts.range_check_chart(rt), PAGE, "range check")
            show_table(rt.check)
        show_verdict(rt.verdict)

# ------------------------------------------------------------------ 2. schedule preview (pure math)
with tab_preview:
    st.caption("Lecture 3.2.4: decay lowers the rate as training settles; a warm-up starts low while the "
               "optimizer's per-parameter statistics rest on few gradients (why BERT and the Transformer's Noam "
               "schedule warm up). Schedules here are pure functions of the step; the code is torch's twin.")
    c1, c2, c3 = st.columns([3, 1, 1])
    names = c1.multiselect("Schedules", list(SCHEDULES), ["constant", "step", "warmup_cosine", "one_cycle"],
                           format_func=lambda n: SCHEDULES[n].label,
                           **bound(f"{PAGE}_pv_names", SCHEDULES, lambda n: SCHEDULES[n].label, many=True))
    total = int(number_input(c2, "Total steps", 2, lr_preview.MAX_STEPS, 1000, step=100, **bound(f"{PAGE}_pv_total")))
    with c3:
        base = rate_input("Base rate", 0.1, "pv_base")
    c1, c2 = st.columns([3, 1])
    at_text = c1.text_input("Read the rate at steps", "0, 100, 250, 500, 999", **bound(f"{PAGE}_pv_at"))
    log_y = c2.toggle("Log scale", True, **bound(f"{PAGE}_pv_log"))
    picks, code_slots = [], {}
    for name in names:
        with st.expander(f"{SCHEDULES[name].label}: parameters and PyTorch code"):
            st.caption(SCHEDULES[name].description)
            picks.append((name, schedule_params(name, total)))
            code_slots[name] = st.empty()  # filled with "copy as PyTorch code" once the params are valid
    preview = None
    if tab_preview.open is not False:
        try:
            at = lr_preview.parse_steps(at_text, total)
            preview = lr_preview.run(None, setup, lr_preview.Config(tuple(picks), total, base, at))
        except ValueError as exc:
            st.error(str(exc))
    if preview is not None:
        for name, slot in code_slots.items():
            slot.code(preview.code[name], language="python")
        show_chart(charts.schedule_chart(preview, log_y), PAGE, "schedules", dataset=None, seed=None)
        show_table(preview.table, run_labels={n: SCHEDULES[n].label for n in SCHEDULES}, key="schedule")
        show_verdict(preview.verdict)

# ------------------------------------------------------------------ 3. train with schedules
with tab_train:
    chosen = rt.recommended_lr if rt is not None else None
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    use_chosen = c1.checkbox("Base rate = the range test's recommendation" + (f" ({chosen:.3g})" if chosen else ""),
                             value=True, **bound(f"{PAGE}_tr_valley"), disabled=chosen is None)
    with c2:
        manual = rate_input("Base rate", 0.01, "tr_lr", disabled=bool(use_chosen and chosen))
    steps = int(number_input(c3, "Steps", 2, lr_schedules.MAX_STEPS, 200, step=50, **bound(f"{PAGE}_tr_steps")))
    with c4:
        tr_batch = batch_input("tr_batch")
    scheds = st.multiselect("Schedules (against a constant rate)", [n for n in SCHEDULES if n != "constant"],
                            ["warmup_cosine", "cosine"], format_func=lambda n: SCHEDULES[n].label,
                            max_selections=lr_schedules.MAX_SCHEDULES, **bound(f"{PAGE}_tr_scheds"))
    st.caption(f"Optimizer: {rt_optimizer} (set on the range-test tab). For each seed every run starts from the "
               "same weights and sees the same batches; only the rate per step differs. Runs are compared on "
               "their tail training loss (the mean of the last 20% of steps). Schedules take their defaults for "
               "this run length (warm-ups are 10% of it): the preview tab shows them for the same total steps.")
    tr_config = lr_schedules.Config(optimizer=rt_optimizer, lr=chosen if use_chosen and chosen else manual,
                                    steps=steps, batch_size=tr_batch, schedules=tuple((n, ()) for n in scheds),
                                    seeds=seeds)
    training = run_diagnosis(lr_schedules.run, setup, tr_config, "Training")
    if training is not None and tab_train.open is not False:
        left, right = st.columns(2)
        with left:
            spread = f": mean and min-max of {seeds} seeds" if seeds > 1 else ""
            names = lr_schedules.labels(training)
            show_chart(charts.band_chart(training.curves, training.summary, f"Training with schedules{spread}", names),
                       PAGE, "training loss")
        with right:
            show_chart(charts.training_rate_chart(training, names), PAGE, "training rates")
        show_notes(training.notes)
        show_table(training.summary, run_labels=names)
        show_verdict(training.verdict)

# ------------------------------------------------------------------ 4. adaptive optimizers
with tab_adaptive:
    st.markdown(
        "Plain gradient descent moves every parameter by *rate x gradient*. **Adagrad** divides each "
        "parameter's step by a root of its past squared gradients, **RMSprop** by a moving average of "
        "them that forgets (alpha 0.99), **Adam** adds momentum and bias correction. All runs below use "
        "`torch.optim`, except one labelled toy: the lecture's own Adagrad rule, written out to show its burst.")

    st.subheader("torch's optimizers on a surface")
    c1, c2, c3, c4 = st.columns(4)
    surface = c1.selectbox("Surface", list(lr_surfaces.SURFACE_RATES), format_func=lambda k: SURFACES[k].label,
                           index=list(lr_surfaces.SURFACE_RATES).index("flat_then_steep"),
                           **bound(f"{PAGE}_sf_surface", lr_surfaces.SURFACE_RATES, lambda k: SURFACES[k].label))
    sf_steps = int(number_input(c2, "Steps", 10, lr_surfaces.MAX_STEPS, 150, step=50, **bound(f"{PAGE}_sf_steps")))
    demo = c3.selectbox("Twins with warmup and decay", lr_surfaces.OPTIMIZERS, index=2,
                        format_func=lr_surfaces.LABELS.get,
                        **bound(f"{PAGE}_sf_demo", lr_surfaces.OPTIMIZERS, lr_surfaces.LABELS.get))
    warm = c4.slider("Warmup share", 0.05, 0.5, 0.1, 0.05, **bound(f"{PAGE}_sf_warm"))
    rates = {}
    with st.expander("Rate per optimizer on this surface"):
        for col, (opt, value) in zip(st.columns(4), lr_surfaces.surface_rates(surface).items()):
            with col:
                rates[opt] = rate_input(lr_surfaces.LABELS[opt], value, f"sf_rate_{surface}_{opt}")
    if tab_adaptive.open is not False:
        sf = run_diagnosis(lr_surfaces.run, setup,
                           lr_surfaces.Config(surface, sf_steps, tuple(rates.items()), demo, warm), "Surface race",
                           needs_data=False)
        if sf is not None:
            toy = SURFACES[surface].label
            left, right = st.columns(2)
            with left:
                show_chart(charts.surface_map(sf), PAGE, "surface paths", dataset=toy, seed=None)
            with right:
                show_chart(charts.surface_loss_chart(sf, SURFACES[surface].min_loss), PAGE, "surface loss",
                           dataset=toy, seed=None)
            show_chart(charts.per_coordinate_chart(sf, "eff_lr"), PAGE, "effective rate", dataset=toy, seed=None)
            show_chart(charts.per_coordinate_chart(sf, "step"), PAGE, "step per rate", dataset=toy, seed=None)
            show_table(sf.summary, drop=("run",))
            show_verdict(sf.verdict)

    st.subheader("Adagrad's burst and its cure (lecture 3.2.4)")
    st.markdown(
        "The lecture's Adagrad divides by the root **mean** square of past gradients, "
        "$\\sigma_t = \\sqrt{\\tfrac{1}{t+1}\\sum_{i=0}^{t} g_i^2}$. Along a direction whose gradient has been "
        "tiny for a long time, $\\sigma_t$ shrinks, the step $\\eta\\, g_t / \\sigma_t$ outgrows what the "
        "curvature allows and the parameter is thrown across the valley; the big gradients raise "
        "$\\sigma_t$, it settles, and it happens again. The cure is a decaying rate, "
        "$\\eta_t = \\eta/\\sqrt{t+1}$. **A toy illustration:** the lecture's rule is written out here (the "
        "page's only hand-written update, tested step by step against the formula); `torch.optim.Adagrad` "
        "divides by the root of the **sum**, which is the lecture's rule with that decay built in, so it "
        "cannot burst. A *burst* is a step over 2x the rate after 50 steps whose median step was 10x smaller.")
    c1, c2, c3 = st.columns(3)
    bu_surface = c1.selectbox("Surface ", list(SURFACES), index=list(SURFACES).index("elongated"),
                              format_func=lambda k: SURFACES[k].label,
                              **bound(f"{PAGE}_bu_surface", SURFACES, lambda k: SURFACES[k].label))
    with c2:
        bu_lr = rate_input("Rate", 0.3, "bu_lr")
    bu_steps = int(number_input(c3, "Steps ", lr_burst.BURST_QUIET + 1, lr_burst.MAX_STEPS, 4000, step=500,
                                   **bound(f"{PAGE}_bu_steps")))
    if tab_adaptive.open is not False:
        bu = run_diagnosis(lr_burst.run, setup, lr_burst.Config(bu_surface, bu_lr, bu_steps),
                           "Lecture's Adagrad", needs_data=False)
        if bu is not None:
            toy = SURFACES[bu_surface].label
            show_chart(charts.burst_path_chart(bu), PAGE, "adagrad burst path", dataset=toy, seed=None)
            show_chart(charts.burst_step_chart(bu), PAGE, "adagrad burst steps", dataset=toy, seed=None)
            show_table(bu.summary, drop=("run",))
            show_verdict(bu.verdict)
            st.caption(f"torch.optim.Adagrad and the decayed lecture rule took the same path here: their largest "
                       f"difference over the run is {bu.torch_vs_decay:.2g} (torch adds eps = 1e-10 to the root).")

    st.subheader("The summary (lecture 3.2.5) and the optimizers on the lab model")
    st.latex(lr_optimizers.SUMMARY_FORMULA)
    c1, c2, c3 = st.columns([2, 3, 1])
    on_lab = c1.toggle("Train the optimizers on the lab model", True, **bound(f"{PAGE}_ad_on"),
                       help="One training run per optimizer and seed.")
    ad_steps = int(number_input(c3, "Steps", 1, lr_optimizers.MAX_STEPS, 200, step=50, **bound(f"{PAGE}_ad_steps")))
    ad_rates = []
    with c2.expander("Rate per optimizer"):
        for col, (opt, value) in zip(st.columns(len(lr_optimizers.DEFAULT_RATES)), lr_optimizers.DEFAULT_RATES):
            with col:
                ad_rates.append((opt, rate_input(opt, value, f"ad_rate_{opt}")))
    st.markdown(update_rules_markdown(lr_optimizers.update_table(dict(ad_rates))))
    st.caption(lr_optimizers.ETA_NOTE + " The torch calls carry the rates of the runs below.")
    if on_lab and tab_adaptive.open is not False:
        adaptive = run_diagnosis(lr_optimizers.run, setup,
                                 lr_optimizers.Config(ad_steps, 32, tuple(ad_rates), seeds), "Optimizers")
        if adaptive is not None:
            spread = f": mean and min-max of {seeds} seeds" if seeds > 1 else ""
            show_chart(charts.band_chart(adaptive.curves, adaptive.summary, f"Optimizers on the lab model{spread}"),
                       PAGE, "optimizers loss")
            show_notes(adaptive.notes)
            show_table(adaptive.summary)
            show_verdict(adaptive.verdict)

if rt is not None:  # otherwise the range tab (or the data) shows why nothing ran
    with answer:
        show_verdict(answer_module.recommend(rt, training))
