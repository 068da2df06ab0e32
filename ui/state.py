"""Session keys shared by every page (plain keys, so they survive page switches)."""
from __future__ import annotations

import streamlit as st

from core.lab import LabSetup

SETUP_KEY = "lab_setup"


def current_setup() -> LabSetup:
    """The LabSetup the sidebar last built (the default setup before the sidebar ran)."""
    return st.session_state.get(SETUP_KEY, LabSetup())
