"""Home: what TrainScope is, the current dataset at a glance, and a card per diagnosis."""
import streamlit as st

from core.charts import bars, scatter_2d
from core.data import DataError
from core.overview import feature_table, project_2d, scale_spread, summary
from ui.data_checks import show_data_checks
from ui.export import show_chart
from ui.pages import DIAGNOSES
from ui.runner import load_dataset
from ui.state import current_setup
from ui.verdict import escape_markdown

st.title("TrainScope")
st.markdown(
    "Why won't my network train? Pick a dataset, a small model and a seed in the sidebar, then "
    "open a diagnosis. Each one runs an experiment from the lecture *Tips for training* and "
    "answers with charts, numbers and a plain verdict."
)

setup = current_setup()
try:
    data = load_dataset(setup.data, setup.seed)
except DataError as exc:
    st.error(escape_markdown(str(exc)), icon=":material/error:")
    data = None

if data is not None:
    # A built-in name is ours; a file's name is the user's and is shown literally.
    shown_name = data.name if setup.data.builtin is not None else escape_markdown(data.name)
    st.subheader(f"Dataset: {shown_name}")
    show_data_checks(setup, key="home")
    left, right = st.columns([1, 2])
    with left:
        st.dataframe(summary(data), hide_index=True)
        if data.task == "classification":
            show_chart(bars(data.class_counts(), "class", "count", title="Rows per class"), "home", "class counts")
    with right:
        projection = project_2d(data, seed=setup.seed)
        title = "The data" + (" (first two principal components)" if projection.method == "PCA" else "")
        chart = scatter_2d(projection.frame, projection.x_name, projection.y_name,
                           projection.frame.columns[2], title=title,
                           quantitative_color=data.task == "regression")
        show_chart(chart, "home", "scatter")
        if projection.sample_note:
            st.caption(projection.sample_note)

    st.markdown("##### Feature scales")
    table = feature_table(data)
    st.dataframe(
        table, hide_index=True,
        column_config={
            "missing": st.column_config.NumberColumn(
                "missing", format="percent",
                help="Share of the file's rows where this column was empty (those rows were dropped)."),
            **{c: st.column_config.NumberColumn(c, format="%.4g") for c in ("min", "max", "mean", "std")},
        },
    )
    spread = scale_spread(table)
    if spread:
        st.caption(escape_markdown(spread))
    for note in data.notes:
        st.info(escape_markdown(note), icon=":material/info:")
    with st.expander("Preview (first 50 rows)"):
        st.dataframe(data.frame().head(50))

st.subheader("Diagnoses")
cols = st.columns(3)
for i, info in enumerate(DIAGNOSES):
    with cols[i % 3].container(border=True):
        st.page_link(info.path, label=f"**{info.title}**", icon=info.icon)
        st.caption(f"{info.description}  \nLecture: {info.lecture}")
