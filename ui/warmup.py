"""Pay torch's one-off start-up costs once per server process, off the user's critical path."""
from __future__ import annotations

import threading

import streamlit as st


def _first_optimizer_step() -> None:
    # The first torch.optim step in a process imports torch._dynamo: 1.5-4.5 s on 2 cores.
    import torch

    param = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.1)
    (param**2).sum().backward()
    opt.step()
    # The first Hessian-vector product costs ~0.3 s of CPU too (double backward's first use).
    from core.curvature import hvp

    ones = torch.ones(2, dtype=torch.float64)
    hvp(lambda t: (t**3).sum(), ones, ones)


@st.cache_resource(show_spinner=False, max_entries=1)  # one thread per process: no arguments
def start_warmup() -> threading.Thread:
    """Start (once per process) a daemon thread that runs a throwaway optimizer step."""
    thread = threading.Thread(target=_first_optimizer_step, name="trainscope-warmup", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner=False, max_entries=4)
def warm_sweep_workers(n_jobs: int = 2) -> threading.Thread:
    """Start (once per process and worker count) the joblib workers a sweep will use, in the
    background: a fresh worker spends seconds importing torch, which made a first 24-trial sweep
    0.87x the sequential time against 0.56x with warm workers (bench/sweep.py)."""
    from core.sweep import warm_workers

    thread = threading.Thread(target=warm_workers, args=(n_jobs,), name="trainscope-sweep-warmup", daemon=True)
    thread.start()
    return thread
