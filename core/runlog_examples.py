"""Training logs made by real training, with answers known by construction, in every format.

Each scenario trains a small model with torch.optim in a plain loop, logs it with
`core.probe.Probe` (TensorBoard scalars, one row per update), and returns the event file with
the facts the diagnosis must find:

- "divergence": Adam on moons; the batch of update 300 holds a NaN, so the loss is NaN from
  update 300 on (diverged_at = 300);
- "blowup": SGD on moons; from update 250 the rate is 300x larger, so the loss blows up past
  10x its start a few updates later (a finite divergence);
- "saddle": the Gradient stall page's saddle (a 1-1 tanh chain starting next to the origin,
  full-batch gradient descent): a plateau from step 0 with a vanishing gradient, then a drop;
- "oscillation": full-batch gradient descent on a linear least-squares model, the rate just
  under 2 / lambda_max and the start displaced along the sharpest direction: the loss stays flat
  while the gradient bounces (not small);
- "warmup_cosine": Adam with core.schedules' warmup + cosine (200 warm-up steps to 3e-3,
  cosine to 0 at step 2,000), mini-batches of 32;
- "spikes": Adam at a constant rate; the batches of updates 500, 900 and 1,300 have flipped
  labels and inputs 3x too large, so those three logged losses spike (well under 10x the start);
- "overfit": a 64-64 MLP on 60 noisy rows (Adam, full batch), with the evaluation loss on 500
  held-out rows every 25 updates: it bottoms out and rises while the training loss keeps falling.

The writers turn a steps frame (step, loss, grad_norm, lr, eval_loss) into the other formats,
as their tools write them: Hugging Face trainer_state.json, Lightning metrics.csv, TensorBoard
CSV exports, W&B CSV exports (history and panel), and a plain CSV. Tests, bench/probe.py and
the page's examples use them.
"""
from __future__ import annotations

import glob
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.probe import Probe

SCENARIOS = ("divergence", "blowup", "saddle", "oscillation", "warmup_cosine", "spikes", "overfit")
EXAMPLES = {  # the page's built-in examples: scenario -> what it shows
    "warmup_cosine": "Adam with warmup + cosine (mini-batches)",
    "spikes": "Isolated loss spikes (three corrupted batches)",
    "saddle": "A saddle plateau (full-batch gradient descent)",
    "oscillation": "An oscillation at the edge of stability",
    "divergence": "Divergence (a NaN at update 300)",
    "overfit": "Overfitting (train vs evaluation loss)",
}
SPIKE_STEPS = (500, 900, 1300)
NAN_STEP = 300
BLOWUP_STEP = 250


@dataclass
class Scenario:
    """One scenario's event file and the answers known by construction."""

    name: str
    events: bytes  # the TensorBoard event file the probe wrote
    truth: dict = field(default_factory=dict)


def _moons(n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import make_moons

    X, y = make_moons(n, noise=noise, random_state=seed)
    X = (X - X.mean(0)) / X.std(0)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def _mlp(hidden: tuple[int, ...], n_in: int = 2, n_out: int = 2, seed: int = 0, scale: float = 1.0) -> nn.Module:
    torch.manual_seed(seed)
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, n_out))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def run_scenario(name: str, seed: int = 0) -> Scenario:
    """Train scenario `name` (one of SCENARIOS) and return its event file and known answers."""
    if name not in SCENARIOS:
        raise ValueError(f"Unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}.")
    with tempfile.TemporaryDirectory(prefix="trainscope-scenario-") as tmp:
        truth = globals()[f"_train_{name}"](tmp, seed)
        files = glob.glob(os.path.join(tmp, "**", "*tfevents*"), recursive=True)
        with open(files[0], "rb") as fh:
            events = fh.read()
    return Scenario(name, events, truth)


def _loop(model, optimizer, batches, log_dir, scheduler=None, every=1, ratios=False, on_step=None) -> list[float]:
    """The plain loop every scenario runs: loss, backward, step, probe.log."""
    loss_fn = nn.CrossEntropyLoss() if model[-1].out_features > 1 else nn.MSELoss()
    losses = []
    with Probe(model, optimizer, log_dir, every=every, ratios=ratios) as probe:
        for k, (xb, yb) in enumerate(batches):
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            probe.log(loss)
            losses.append(loss.item())
            if on_step is not None:
                on_step(k, probe)
    return losses


def _minibatches(X, y, batch: int, steps: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    k = 0
    while k < steps:
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X) - batch + 1, batch):
            if k >= steps:
                return
            idx = order[i : i + batch]
            yield X[idx], y[idx]
            k += 1


def _train_divergence(log_dir, seed):
    X, y = _moons(400, 0.2, seed)
    model = _mlp((16, 16), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def batches():
        for k, (xb, yb) in enumerate(_minibatches(X, y, 32, 400, seed)):
            if k == NAN_STEP:
                xb = xb.clone()
                xb[0, 0] = float("nan")
            yield xb, yb

    _loop(model, opt, batches(), log_dir)
    return {"diverged_at": NAN_STEP, "non_finite": True}


def _train_blowup(log_dir, seed):
    X, y = _moons(400, 0.2, seed)
    model = _mlp((16, 16), seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def bump(k, probe):
        if k + 1 == BLOWUP_STEP:
            for g in opt.param_groups:
                g["lr"] = 30.0

    losses = _loop(model, opt, ((X, y) for _ in range(400)), log_dir, on_step=bump)
    return {"blowup_after": BLOWUP_STEP, "losses": losses}


def _train_saddle(log_dir, seed):
    from core.data import load_builtin
    from core.schedules import to_torch

    data = load_builtin("scaled_regression", seed=0)
    X = torch.tensor((data.X - data.X.mean(0)) / data.X.std(0), dtype=torch.float32)
    y = torch.tensor((data.y - data.y.mean()) / data.y.std(), dtype=torch.float32).reshape(-1, 1)
    model = _mlp((1, 1), n_in=X.shape[1], n_out=1, seed=0, scale=0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.15)
    sched = to_torch(opt, "cosine", 1500)
    _loop(model, opt, ((X, y) for _ in range(1500)), log_dir, scheduler=sched)
    return {"stall_from": 0, "stall_kind": "critical point"}


def _train_oscillation(log_dir, seed):
    rng = np.random.default_rng(seed)
    n, d = 200, 3
    X = rng.standard_normal((n, d)) * np.array([3.0, 1.0, 0.5])
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n)
    A = np.column_stack([X, np.ones(n)])
    H = 2.0 / n * A.T @ A  # Hessian of the mean squared error in (w, b)
    vals, vecs = np.linalg.eigh(H)
    best = np.linalg.lstsq(A, y, rcond=None)[0]
    theta0 = best + 1.0 * vecs[:, -1] + 0.5 * vecs[:, 0]  # off the minimum, mostly along the sharpest axis
    model = nn.Sequential(nn.Linear(d, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(theta0[:d]).reshape(1, d))
        model[0].bias.copy_(torch.tensor(theta0[d:]))
    lr = (2.0 - 1e-6) / vals[-1]  # just inside the stability limit: the sharp direction bounces
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    Xt, yt = torch.tensor(X), torch.tensor(y).reshape(-1, 1)
    _loop(model, opt, ((Xt, yt) for _ in range(1500)), log_dir)
    return {"stall_kind": "oscillation", "lambda_max": float(vals[-1]), "lr": float(lr)}


def _train_warmup_cosine(log_dir, seed):
    from core.schedules import to_torch

    X, y = _moons(800, 0.2, seed)
    model = _mlp((16, 16), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = to_torch(opt, "warmup_cosine", 2000, warmup_steps=200)
    _loop(model, opt, _minibatches(X, y, 32, 2000, seed), log_dir, scheduler=sched, ratios=True)
    return {"schedule": "warmup_cosine", "base_lr": 3e-3, "total_steps": 2000,
            "params": {"warmup_steps": 200, "warmup_start_factor": 0.01, "min_lr": 0.0}}


def _train_spikes(log_dir, seed):
    X, y = _moons(800, 0.25, seed)  # overlapping classes: the loss settles near 0.1, not 0.001
    model = _mlp((16, 16), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def batches():
        for k, (xb, yb) in enumerate(_minibatches(X, y, 32, 1600, seed)):
            yield (3 * xb, 1 - yb) if k in SPIKE_STEPS else (xb, yb)  # far out and mislabelled

    _loop(model, opt, batches(), log_dir)
    return {"spikes": list(SPIKE_STEPS)}


def _train_overfit(log_dir, seed):
    X, y = _moons(560, 0.35, seed)
    Xtr, ytr, Xva, yva = X[:60], y[:60], X[60:], y[60:]
    model = _mlp((64, 64), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def evaluate(k, probe):
        if k % 25 == 0 or k == 1499:
            with torch.no_grad():
                probe.log_eval(float(loss_fn(model(Xva), yva)), step=k)

    _loop(model, opt, ((Xtr, ytr) for _ in range(1500)), log_dir, on_step=evaluate)
    return {"overfit": True}


# --------------------------------------------------------------------------- writers
def _rows(frame: pd.DataFrame):
    """(step, {canonical: value}) for every row of a steps frame."""
    cols = [c for c in ("loss", "grad_norm", "lr", "eval_loss") if c in frame]
    for row in frame[["step", *cols]].itertuples(index=False):
        yield int(row[0]), {c: float(x) for c, x in zip(cols, row[1:])}


def _cell(x) -> str:
    """None -> '' (not logged), NaN -> 'nan' (logged as NaN), numbers with 9 significant digits."""
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    x = float(x)
    if math.isnan(x):
        return "nan"
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.9g}"


def _table(header: list[str], rows: list[list]) -> bytes:
    lines = [",".join(header)] + [",".join(_cell(x) for x in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _train_rows(frame: pd.DataFrame):
    """(step, loss, grad_norm, lr) of the rows where the loss was logged."""
    for step, v in _rows(frame):
        if "loss" in v and not (math.isnan(v["loss"]) and math.isnan(v.get("lr", math.nan))):
            yield step, v["loss"], v.get("grad_norm"), v.get("lr")


def _eval_rows(frame: pd.DataFrame):
    for step, v in _rows(frame):
        if "eval_loss" in v and not math.isnan(v["eval_loss"]):
            yield step, v["eval_loss"]


def lightning_csv(frame: pd.DataFrame) -> bytes:
    """Lightning CSVLogger's metrics.csv: step rows (train_loss_step, grad norm, lr-Adam) and
    separate validation rows (val_loss), epoch on every row."""
    rows = [[s // 100, s, loss, g, lr, None] for s, loss, g, lr in _train_rows(frame)]
    rows += [[s // 100, s, None, None, None, e] for s, e in _eval_rows(frame)]
    rows.sort(key=lambda r: r[1])
    return _table(["epoch", "step", "train_loss_step", "grad_2.0_norm_total", "lr-Adam", "val_loss"], rows)


def tensorboard_csvs(frame: pd.DataFrame, run: str = "my_run") -> dict[str, bytes]:
    """TensorBoard's 'Download CSV' per tag: run-<run>-tag-<tag>.csv with Wall time, Step, Value
    (the browser saves the tag's '/' as '_')."""
    train = list(_train_rows(frame))
    series = {"train_loss": [(s, x) for s, x, _, _ in train]}
    if "grad_norm" in frame:
        series["train_grad_norm"] = [(s, g) for s, _, g, _ in train]
    if "lr" in frame:
        series["train_learning_rate"] = [(s, lr) for s, _, _, lr in train]
    if "eval_loss" in frame:
        series["eval_loss"] = list(_eval_rows(frame))
    return {f"run-{run}-tag-{tag}.csv": _table(["Wall time", "Step", "Value"],
                                                [[1.7e9 + 0.01 * s, s, x] for s, x in pts])
            for tag, pts in series.items() if pts}


def wandb_history_csv(frame: pd.DataFrame) -> bytes:
    """A W&B run-history export (Hugging Face integration names): _step counts log calls,
    train/global_step is the trainer's step."""
    rows = [[s, loss, g, lr, None] for s, loss, g, lr in _train_rows(frame)]
    rows += [[s, None, None, None, e] for s, e in _eval_rows(frame)]
    rows.sort(key=lambda r: r[0])
    out = [[k, 0.01 * r[0], 1.7e9 + 0.01 * r[0], *r] for k, r in enumerate(rows)]
    return _table(["_step", "_runtime", "_timestamp", "train/global_step", "train/loss", "train/grad_norm",
                   "train/learning_rate", "eval/loss"], out)


def wandb_panel_csv(frames: dict[str, pd.DataFrame], metric: str = "train/loss") -> bytes:
    """A W&B panel export of the loss for several runs: Step, '<run> - metric', __MIN, __MAX."""
    by_step: dict[int, dict[str, float]] = {}
    for run, frame in frames.items():
        for s, loss, _, _ in _train_rows(frame):
            by_step.setdefault(s, {})[run] = loss
    header = ["Step"] + [f"{run} - {metric}{agg}" for run in frames for agg in ("", "__MIN", "__MAX")]
    rows = [[s] + [by_step[s].get(run) for run in frames for _ in range(3)] for s in sorted(by_step)]
    return _table(header, rows)


def plain_csv(frame: pd.DataFrame) -> bytes:
    """step, loss, grad_norm, lr, eval_loss as a plain CSV (blank = not logged at that step)."""
    rows = {s: [s, loss, g, lr, None] for s, loss, g, lr in _train_rows(frame)}
    for s, e in _eval_rows(frame):
        rows.setdefault(s, [s, None, None, None, None])[4] = e
    cols = ["step", "loss", "grad_norm", "lr", "eval_loss"]
    keep = [i for i, c in enumerate(cols) if c == "step" or c in frame]
    return _table([cols[i] for i in keep], [[r[i] for i in keep] for _, r in sorted(rows.items())])


def trainer_state(frame: pd.DataFrame, logging_steps: int = 1, max_steps: int | None = None) -> bytes:
    """A Hugging Face trainer_state.json: train entries, eval entries, and the summary row."""
    history = []
    for s, loss, g, lr in _train_rows(frame):
        entry = {"epoch": round(s / 100, 4), "grad_norm": g, "learning_rate": lr, "loss": loss, "step": s}
        history.append({k: x for k, x in entry.items() if x is not None})
    for s, e in _eval_rows(frame):
        history.append({"epoch": round(s / 100, 4), "eval_loss": e, "eval_runtime": 0.5,
                        "eval_samples_per_second": 1000.0, "step": s})
    history.sort(key=lambda e: e["step"])
    last = int(frame["step"].iloc[-1])
    history.append({"epoch": round(last / 100, 4), "step": last, "total_flos": 1.0e12,
                    "train_loss": float(np.nanmean(frame["loss"])), "train_runtime": 12.5,
                    "train_samples_per_second": 80.0, "train_steps_per_second": 10.0})
    state = {"best_metric": None, "epoch": round(last / 100, 4), "eval_steps": 25, "global_step": last,
             "is_world_process_zero": True, "log_history": history, "logging_steps": logging_steps,
             "max_steps": max_steps or last + 1, "num_train_epochs": 1, "save_steps": 500,
             "total_flos": 1.0e12, "train_batch_size": 32, "trial_name": None, "trial_params": None}
    return json.dumps(state, indent=2).encode()


def all_formats(frame: pd.DataFrame, run: str = "my_run") -> dict[str, list[tuple[str, bytes]]]:
    """format -> the files (name, bytes) a user would upload for one run in that format."""
    return {
        "trainer_state": [("trainer_state.json", trainer_state(frame))],
        "lightning_csv": [("metrics.csv", lightning_csv(frame))],
        "tensorboard_csv": list(tensorboard_csvs(frame, run).items()),
        "wandb_csv": [("wandb_export.csv", wandb_history_csv(frame))],
        "csv": [("log.csv", plain_csv(frame))],
    }
