"""Scenarios whose answers are known by construction, across pages (issue 12).

One divergence rule (core.rules) means one answer: the same setup trained at a rate far too high
diverges at the same step on every page that trains it, and every page words it with the same
sentence. Page-specific scenarios live beside each page's tests (test_stall, test_scaling, ...).
"""
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import core.diagnoses
from core.data import load_builtin
from core.diagnoses import loss_function, lr_schedules, stall
from core.lab import LabSetup
from core.rules import BLOWUP_FACTOR
from core.train import TrainConfig, split_data, train
from core.models import build_mlp

MOONS = load_builtin("moons", seed=0)
SETUP = LabSetup(seed=0)
LR = 30.0  # plain gradient descent at 30 on the default tanh MLP: the cross-entropy blows up


def _reference_step() -> int:
    """The divergent step computed here from an independent loop: torch SGD, full batch, the
    same split and initial weights; the first loss past 10x the first (or not finite)."""
    import torch

    split = split_data(MOONS, "standard", 0.2, SETUP.seed)
    model = build_mlp(SETUP.model, split.n_features, split.n_outputs, seed=SETUP.seed)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    X, y = torch.as_tensor(split.X_train), torch.as_tensor(split.y_train)
    first = None
    for k in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        value = loss.item()
        first = value if first is None else first
        if not np.isfinite(value) or value > BLOWUP_FACTOR * first:
            return k
        loss.backward()
        opt.step()
    raise AssertionError("the reference run did not diverge: pick a larger LR")


def test_far_too_high_a_rate_diverges_at_the_same_step_on_every_page():
    ref = _reference_step()
    hist = train(build_mlp(SETUP.model, 2, 2, seed=0), split_data(MOONS, "standard", 0.2, 0),
                 TrainConfig(optimizer="sgd", lr=LR, max_steps=200, seed=0))
    assert hist.diverged_at == ref
    s = stall.run(MOONS, SETUP, stall.Config(optimizer="sgd", lr=LR, steps=200, window=20))
    assert s.diverged_at == ref
    lf = loss_function.run(MOONS, SETUP, loss_function.Config(optimizer="sgd", lr=LR, steps=200, seeds=1))
    assert lf.diverged["cross_entropy"] == ref
    sch = lr_schedules.run(MOONS, SETUP, lr_schedules.Config(optimizer="sgd", lr=LR, steps=200, batch_size=None,
                                                             schedules=(), seeds=1))
    constant = [g for g in sch.groups if g.key == "constant"][0]
    assert constant.first_divergence.step == ref
    # One sentence for it everywhere.
    sentence = f"diverged at step {ref:,}: the loss reached"
    assert sentence in s.verdict.text and sentence in " ".join(lf.messages)
    assert sentence in sch.verdict.text or any(sentence in n for n in sch.notes)


def _diagnosis_modules():
    for info in pkgutil.iter_modules(core.diagnoses.__path__):
        if info.name.startswith("_") or info.name in ("findings", "words", "registry"):
            continue
        yield importlib.import_module(f"core.diagnoses.{info.name}")


@pytest.mark.parametrize("module", list(_diagnosis_modules()), ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_diagnosis_module_keeps_the_contract(module):
    # issue 12: `run(data, setup, config, on_progress=None) -> Result` in every module (the run-log
    # diagnosis reads a log, not a dataset: `run(log, config=Config())`, as its issue names it).
    assert hasattr(module, "run"), module.__name__
    params = list(inspect.signature(module.run).parameters)
    if module.__name__.endswith("run_log"):
        assert params[:2] == ["log", "config"]
        return
    assert params[:4] == ["data", "setup", "config", "on_progress"], params
    assert inspect.signature(module.run).parameters["on_progress"].default is None


def test_no_display_label_is_a_dataframe_key_in_diagnoses():
    # issue 12: "grep finds no display label used as a DataFrame key in core/diagnoses".
    import re
    from pathlib import Path

    pattern = re.compile(r"\.(?:loc|at)\[\s*f?[\"'][^\"']*[ +][^\"']*[\"']")  # a key with a space or "+"
    hits = []
    for path in Path(core.diagnoses.__file__).parent.glob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.name}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
