"""Shared test setup: one torch thread (see core/__init__.py) and small helpers."""
import os

os.environ.setdefault("TRAINSCOPE_TORCH_THREADS", "1")

import core  # noqa: E402,F401  (pins torch threads before any test imports torch)
