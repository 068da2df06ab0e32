"""TrainScope: why won't my network train? Run with `make run` (or `streamlit run app.py`)."""
from pathlib import Path

import streamlit as st

from ui.lab import lab_sidebar
from ui.pages import DIAGNOSES
from ui.warmup import start_warmup

# The favicon ships with the app: a ":material/..." icon would be fetched from a public font CDN
# on every page load.
ICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
st.set_page_config(page_title="TrainScope", page_icon=str(ICON), layout="wide")

home = st.Page("app_pages/home.py", title="TrainScope", icon=":material/home:", default=True)
diagnoses = [st.Page(p.path, title=p.title, icon=p.icon) for p in DIAGNOSES]
page = st.navigation({"": [home], "Diagnoses": diagnoses})
start_warmup()
lab_sidebar()
page.run()
