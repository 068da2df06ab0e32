"""TrainScope: why won't my network train? Run with `streamlit run app.py`."""
import streamlit as st

from ui.lab import lab_sidebar
from ui.pages import DIAGNOSES
from ui.warmup import start_warmup

st.set_page_config(page_title="TrainScope", page_icon=":material/troubleshoot:", layout="wide")

home = st.Page("app_pages/home.py", title="TrainScope", icon=":material/home:", default=True)
diagnoses = [st.Page(p.path, title=p.title, icon=p.icon) for p in DIAGNOSES]
page = st.navigation({"": [home], "Diagnoses": diagnoses})
start_warmup()
lab_sidebar()
page.run()
