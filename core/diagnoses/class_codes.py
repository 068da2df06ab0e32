"""Classes as numbers (lecture 5.1): why a class is not coded as 1, 2, 3 and regressed.

Coding class 1, 2, 3 as a number says class 1 is closer to 2 than to 3. A model that regresses
the index with MSE then answers "2" where it cannot tell 1 from 3: the average of two confused
classes is the middle class, even where the middle class never occurs. One-hot targets with
softmax + cross-entropy make no such claim.

The data are made by construction (seeded): classes "A" (index 0) and "C" (index 2) share one
overlapping blob, class "B" (index 1) sits far away. Both models are the same MLP trained by the
one training loop (core.runs); the regression predicts round(clip(output, 0, 2)).

>>> res = run(None, None, Config(seeds=1))
>>> res.findings.middle.winner
'one_hot'
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.findings import Comparison, compare
from core.diagnoses.words import pct
from core.lab import LabSetup
from core.models import ModelSpec
from core.runs import prepare_split, run_model
from core.train import TrainConfig

CLASSES = ("A", "B", "C")  # coded 0, 1, 2 by the regression
RUNS = {"index_mse": "class index + MSE", "one_hot": "one-hot + cross-entropy"}


@dataclass(frozen=True)
class Config:
    """The demonstration's size and training. Defaults run in about a second."""

    rows_per_class: int = 200
    overlap: float = 0.6  # distance between the A and C blob centres, in blob standard deviations
    steps: int = 300  # full-batch Adam updates per model
    lr: float = 0.02
    hidden: tuple[int, ...] = (16, 16)
    seeds: int = 3  # data and initial weights; the claim must hold across them


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence when the demonstration cannot run."""
    if not 20 <= config.rows_per_class <= 5000:
        raise ValueError("Use between 20 and 5,000 rows per class.")
    if not 0 <= config.overlap <= 10:
        raise ValueError("The A-C distance must be between 0 and 10 standard deviations.")
    if not 1 <= config.steps <= 5000:
        raise ValueError("Train between 1 and 5,000 steps.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if not 1 <= config.seeds <= 10:
        raise ValueError("Use between 1 and 10 seeds.")


def make_data(config: Config, seed: int) -> tuple[Dataset, Dataset]:
    """The three-class set twice: as a regression on the class index, and as a classification."""
    rng = np.random.default_rng(seed)
    n = config.rows_per_class
    half = config.overlap / 2
    a = rng.normal([-3.0 - half, 0.0], 1.0, size=(n, 2))
    c = rng.normal([-3.0 + half, 0.0], 1.0, size=(n, 2))
    b = rng.normal([4.0, 0.0], 1.0, size=(n, 2))
    X = np.vstack([a, b, c]).astype(np.float32)
    y = np.repeat(np.arange(3), n)
    names = ("x1", "x2")
    as_number = Dataset(X, y.astype(np.float32), "regression", names, "class index",
                        name="three classes, coded 0-1-2")
    as_classes = Dataset(X, y, "classification", names, "class", CLASSES, name="three classes, one-hot")
    return as_number, as_classes


@dataclass(frozen=True)
class Findings:
    """The middle-class artifact, compared across seeds."""

    middle: Comparison  # share of A and C validation rows predicted as B (lower is better)
    accuracy: Comparison  # validation accuracy (higher is better)
    n_seeds: int


@dataclass(eq=False)
class Result:
    """Per-seed numbers, the validation predictions of the lab seed, findings and the verdict."""

    config: Config
    per_seed: pd.DataFrame  # run, label, seed, val_accuracy, middle_share (A/C rows called B)
    summary: pd.DataFrame  # run, label, val_accuracy, middle_share (means), seeds
    predictions: pd.DataFrame  # run, label, x1, x2, true, predicted, raw_output (lab seed, validation rows)
    confusion: pd.DataFrame  # run, label, true, predicted, rows
    findings: Findings
    verdict: Verdict


def _predict(record, split, run: str) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class indices and the raw output (the regression's number, or argmax)."""
    import torch

    model = record.model
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(split.X_val, device=next(model.parameters()).device)).cpu().double().numpy()
    if run == "index_mse":
        raw = out[:, 0] * split.y_std + split.y_mean  # back from the standardized target
        return np.clip(np.rint(raw), 0, 2).astype(int), raw
    return out.argmax(axis=1), out.argmax(axis=1).astype(float)


def run(data=None, setup: LabSetup | None = None, config: Config = Config(),
        on_progress: Progress | None = None) -> Result:
    """Train the class-index regression and the one-hot classifier on the same data, per seed."""
    validate(config)
    on_progress = on_progress or no_progress
    base_seed = setup.seed if setup is not None else 0
    rows, preds = [], []
    spec = ModelSpec(hidden=config.hidden, activation="tanh")
    jobs = [(base_seed + i, key) for i in range(config.seeds) for key in RUNS]
    for j, (seed, key) in enumerate(jobs):
        as_number, as_classes = make_data(config, seed)
        data_j = as_number if key == "index_mse" else as_classes
        lab = LabSetup(model=spec, seed=seed, device=setup.device if setup is not None else "auto")
        split = prepare_split(data_j, lab)
        rec = run_model(split, lab, TrainConfig(optimizer="adam", lr=config.lr, max_steps=config.steps, seed=seed),
                        key=key, on_progress=sub_progress(on_progress, j / len(jobs), (j + 1) / len(jobs)),
                        message=f"{RUNS[key]}, seed {seed}")
        true = np.rint(split.y_val * split.y_std + split.y_mean).astype(int) if key == "index_mse" else split.y_val
        pred, raw = _predict(rec, split, key)
        outer = true != 1
        rows.append(dict(run=key, label=RUNS[key], seed=seed, val_accuracy=float(np.mean(pred == true)),
                         middle_share=float(np.mean(pred[outer] == 1)) if outer.any() else float("nan")))
        if seed == base_seed:
            preds.append(pd.DataFrame({"run": key, "label": RUNS[key], "x1": split.X_val[:, 0],
                                       "x2": split.X_val[:, 1], "true": [CLASSES[t] for t in true],
                                       "predicted": [CLASSES[p] for p in pred], "raw_output": raw}))
    on_progress(1.0, "done")
    per_seed = pd.DataFrame(rows)
    summary = (per_seed.groupby(["run", "label"], sort=False)[["val_accuracy", "middle_share"]].mean()
               .reset_index().assign(seeds=config.seeds))
    predictions = pd.concat(preds, ignore_index=True)
    confusion = (predictions.groupby(["run", "label", "true", "predicted"], sort=False).size()
                 .rename("rows").reset_index())
    findings = find(per_seed, config.seeds)
    return Result(config, per_seed, summary, predictions, confusion, findings, make_verdict(findings))


def find(per_seed: pd.DataFrame, n_seeds: int) -> Findings:
    """Compare the two codings across seeds (core.findings.compare)."""
    mse, hot = per_seed[per_seed["run"] == "index_mse"], per_seed[per_seed["run"] == "one_hot"]
    # With one seed there is no run-to-run noise to judge by; a share of rows is then held to the
    # binomial standard error of that share.
    noise = None
    if n_seeds == 1:
        p = float(np.clip(mse["middle_share"].iloc[0], 0.05, 0.95))
        noise = math.sqrt(p * (1 - p) / 100)
    middle = compare("middle_share", "index_mse", mse["middle_share"], "one_hot", hot["middle_share"],
                     higher_is_better=False, noise=noise, split="validation")
    accuracy = compare("val_accuracy", "index_mse", mse["val_accuracy"], "one_hot", hot["val_accuracy"],
                       higher_is_better=True, noise=noise, split="validation")
    return Findings(middle, accuracy, n_seeds)


def make_verdict(f: Findings) -> Verdict:
    """Words for the findings."""
    m = f.middle
    seeds = f" (mean of {f.n_seeds} seeds)" if f.n_seeds > 1 else ""
    share = (f"Of the validation rows of classes A and C, the class-index regression called "
             f"{pct(m.a_value)} 'B' and the one-hot classifier {pct(m.b_value)}{seeds}. ")
    acc = f"Validation accuracy: {pct(f.accuracy.a_value)} against {pct(f.accuracy.b_value)}."
    if m.winner == "one_hot":
        return Verdict("info", share + "Where the regression cannot tell A from C it answers their average, 1, "
                       "which is B, a class that never occurs there: coding classes as numbers made B "
                       "\"between\" A and C. " + acc,
                       "Code classes one-hot and train with cross-entropy (torch.nn.CrossEntropyLoss).")
    return Verdict("info", share + "No clear difference in how often B was called for A or C rows this time. " + acc,
                   "Move A and C closer together (a smaller distance) to see the artifact.")
