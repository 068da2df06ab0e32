"""The verdict box every page ends with."""
from __future__ import annotations

import streamlit as st

from core.diagnoses import Verdict

_BOX = {"good": st.success, "info": st.info, "warning": st.warning, "problem": st.error}
_ICON = {"good": ":material/check_circle:", "info": ":material/info:", "warning": ":material/warning:",
         "problem": ":material/error:"}


def show_verdict(verdict: Verdict) -> None:
    """A coloured box with the verdict sentence and, below it, what to try next."""
    text = verdict.text + (f"\n\n**Try next:** {verdict.advice}" if verdict.advice else "")
    _BOX.get(verdict.kind, st.info)(text, icon=_ICON.get(verdict.kind))
