"""Batch norm inside the lab model (lecture 5.2, issue 15 item 8): where it sits, what it learns,
what it uses at test time, and why it needs a large enough batch.

1. Where: the lab model's layers in order (core.models puts BatchNorm1d after each hidden linear
   layer, before the activation); optionally the same model with batch norm after the
   activation, trained beside it.
2. What it learns: gamma (scale) and beta (shift) of every unit after training.
3. Test time: in training mode each unit is normalized by its batch's mean and variance; in
   evaluation mode by running averages that torch updates once per training batch with the
   momentum rule running = (1 - m) running + m batch_statistic (m = 0.1; the variance is the
   unbiased batch variance). The diagnosis records the batch statistics of every training step
   with forward hooks, applies the rule itself and reports how far the result is from torch's
   buffers, and checks that evaluation-mode outputs equal (z - running_mean) /
   sqrt(running_var + eps) * gamma + beta computed with numpy.
4. Batch size: batch norm with a tiny batch against a normal one (and the same model without batch
   norm at the tiny batch), across seeds, in training mode (what the optimizer saw) and in
   evaluation mode (what a deployed model does), with how far a batch's statistics stray from
   the full data's against sampling theory.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses._kits.scaling import (
    batch_norm_split, DEFAULT_TRAIN_ROWS, bands, check_budget, check_common, estimated_seconds, rows_note, smooth_width,
    smoothed_curve, thin,
)
from core.findings import Comparison, compare
from core.diagnoses.scaling_lab import trim_for_batch_norm
from core.diagnoses.words import capital, comparison_sentence, divergence_sentence, num
from core.lab import LabSetup
from core.models import ACTIVATIONS, n_params
from core.runs import build, on_device, run_model, seeds_for, training_rows
from core.train import SCALERS, TrainConfig, metric_name

OPTIMIZERS = ("sgd", "momentum", "adam")
RUNS = ("bn_normal", "bn_tiny", "plain_tiny", "bn_after")  # bn_after only when Config.placement


@dataclass(frozen=True)
class Config:
    """Batch norm at a tiny and a normal batch, its parameters and its test-time rule."""

    tiny_batch: int = 2  # rows per batch; batch norm's mean and variance come from just these
    normal_batch: int = 32
    optimizer: str = "adam"
    lr: float = 0.01
    steps: int = 100  # the same number of updates for every run
    seeds: int = 3  # initial weights and batch order; claims must hold across them
    placement: bool = False  # also train batch norm after the activation (at the normal batch)
    scaler: str = "standard"  # inputs are standardized so only the batch statistics differ
    max_train_rows: int = DEFAULT_TRAIN_ROWS
    n_batches: int = 500  # random batches drawn to measure how far batch statistics stray


def run_labels(config: Config) -> dict[str, str]:
    """What the page calls each run (keys stay RUNS)."""
    return {"bn_normal": f"batch norm, batch {config.normal_batch}",
            "bn_tiny": f"batch norm, batch {config.tiny_batch}",
            "plain_tiny": f"no batch norm, batch {config.tiny_batch}",
            "bn_after": f"batch norm after the activation, batch {config.normal_batch}"}


@dataclass(frozen=True)
class RuleCheck:
    """Torch's running statistics against the momentum rule applied here to the recorded batch
    statistics, and evaluation-mode outputs against the formula (lab seed's normal-batch run)."""

    momentum: float
    eps: float
    batches: int  # training batches recorded by the hooks (per batch-norm layer)
    tracked: int  # torch's num_batches_tracked
    mean_error: float  # max |torch running_mean - rule|
    var_error: float  # max |torch running_var - rule|
    eval_error: float  # max |torch eval output - (z - rm) / sqrt(rv + eps) * gamma + beta| on validation rows
    scale: float  # max |eval output|, the scale eval_error is measured against


@dataclass(frozen=True)
class Findings:
    """The comparisons behind the verdict, decided before any wording."""

    tiny_vs_normal: Comparison  # eval_train_loss, bn_tiny (a) vs bn_normal (b); lower is better
    tiny_vs_plain: Comparison  # eval_train_loss, bn_tiny vs plain_tiny
    after_vs_before: Comparison | None  # eval_train_loss, bn_after vs bn_normal (when trained)
    mean_error: dict  # batch size -> rms error of a batch's mean, in standard deviations
    expected_error: dict  # batch size -> sampling theory's sqrt((1/B)(N-B)/(N-1))
    diverged: dict  # run key -> (seed, Divergence) of the first diverged seed
    placement: str  # "before the activation", "after the activation" or "elsewhere"
    n_seeds: int


@dataclass
class Result:
    """Runs over seeds, the model's layers, gamma/beta and running statistics, and the checks."""

    runs: pd.DataFrame  # run, label, seed, batch_size, train_mode_loss, eval_train_loss, final_val_metric,
    #                     diverged_at
    summary: pd.DataFrame  # one row per run: means and spreads over seeds
    modes: pd.DataFrame  # run, label, seed, mode ("training"/"evaluation"), loss: for the mode chart
    bands: pd.DataFrame  # run, label, step, mean, low, high, n: smoothed training-mode loss over seeds
    layers: pd.DataFrame  # position, layer, detail: the lab model with batch norm, in order
    params: pd.DataFrame  # layer, unit, gamma, beta, running_mean, running_var, rule_mean, rule_var
    check: RuleCheck
    batch_stats: pd.DataFrame  # batch_size, mean_error, std_error, expected_mean_error
    labels: dict  # run key -> display label
    metric: str
    n_train: int
    findings: Findings
    verdict: Verdict  # batch size
    rule_verdict: Verdict  # where batch norm sits and the test-time rule
    notes: tuple[str, ...] = ()


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for an impossible config."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError("The learning rate must be a positive number.")
    if config.tiny_batch < 2 or config.normal_batch < 2:
        raise ValueError("Batch norm needs at least 2 rows per batch.")
    if config.tiny_batch >= config.normal_batch:
        raise ValueError("The tiny batch must be smaller than the normal one.")
    check_common(config.seeds, config.steps, config.max_train_rows)
    if config.scaler not in SCALERS:
        raise ValueError(f"Unknown scaler {config.scaler!r}; choose one of {', '.join(SCALERS)}.")
    if not 10 <= config.n_batches <= 5000:
        raise ValueError("Draw between 10 and 5,000 batches to measure batch statistics.")


# --------------------------------------------------------------------------- pieces
def describe_layers(model: nn.Module) -> pd.DataFrame:
    """The model's layers in order: position, layer (class name), detail (sizes)."""
    rows = []
    for i, layer in enumerate(model):
        if isinstance(layer, nn.Linear):
            detail = f"{layer.in_features} → {layer.out_features}"
        elif isinstance(layer, nn.BatchNorm1d):
            detail = f"{layer.num_features} units"
        else:
            detail = ""
        rows.append(dict(position=i + 1, layer=type(layer).__name__, detail=detail))
    return pd.DataFrame(rows)


def placement(model: nn.Module) -> str:
    """Where the batch-norm layers sit: "before the activation" when each is followed by one,
    "after the activation" when each follows one, else "elsewhere" (or "none")."""
    acts = tuple(ACTIVATIONS.values())
    layers = list(model)
    where = set()
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.BatchNorm1d):
            if i + 1 < len(layers) and isinstance(layers[i + 1], acts):
                where.add("before the activation")
            elif i > 0 and isinstance(layers[i - 1], acts):
                where.add("after the activation")
            else:
                where.add("elsewhere")
    if not where:
        return "none"
    return where.pop() if len(where) == 1 else "elsewhere"


def bn_after_activation(model: nn.Sequential) -> nn.Sequential:
    """The same layers (and weights) with each Linear → BatchNorm1d → activation triple reordered
    to Linear → activation → BatchNorm1d."""
    layers = list(model)
    acts = tuple(ACTIVATIONS.values())
    out, i = [], 0
    while i < len(layers):
        if (i + 2 < len(layers) and isinstance(layers[i], nn.Linear) and isinstance(layers[i + 1], nn.BatchNorm1d)
                and isinstance(layers[i + 2], acts)):
            out += [layers[i], layers[i + 2], layers[i + 1]]
            i += 3
        else:
            out.append(layers[i])
            i += 1
    return nn.Sequential(*out)


class BatchRecorder:
    """Forward hooks that record, for every batch-norm layer, the mean and unbiased variance of
    its input in each training-mode forward pass (float64, on the CPU)."""

    def __init__(self, model: nn.Module):
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        self.means: list[list[np.ndarray]] = [[] for _ in self.layers]
        self.vars: list[list[np.ndarray]] = [[] for _ in self.layers]
        self.handles = [layer.register_forward_pre_hook(self._hook(i)) for i, layer in enumerate(self.layers)]

    def _hook(self, i: int):
        def hook(module: nn.Module, inputs) -> None:
            if module.training:
                z = inputs[0].detach().double()
                self.means[i].append(z.mean(dim=0).cpu().numpy())
                self.vars[i].append(z.var(dim=0, unbiased=True).cpu().numpy())
        return hook

    def remove(self) -> None:
        """Detach the hooks (the model is handed back unchanged)."""
        for h in self.handles:
            h.remove()


def momentum_rule(batch_stats: list[np.ndarray], start: float, momentum: float | None) -> np.ndarray:
    """running = (1 - m) running + m batch_stat over the batches, from `start`; m = None is
    torch's cumulative average (m = 1 / batches so far).

    >>> momentum_rule([np.array([1.0]), np.array([3.0])], 0.0, 0.5)
    array([1.75])
    """
    running = None
    for k, stat in enumerate(batch_stats, start=1):
        m = (1.0 / k) if momentum is None else momentum
        running = (np.full_like(stat, start) if running is None else running)
        running = (1.0 - m) * running + m * stat
    return running if running is not None else np.array([])


def rule_check(model: nn.Module, recorder: BatchRecorder, X_val: np.ndarray) -> tuple[RuleCheck, pd.DataFrame]:
    """Compare torch's buffers with the momentum rule and evaluation outputs with the formula."""
    rows, mean_err, var_err, eval_err, scale = [], 0.0, 0.0, 0.0, 0.0
    layers = list(model)
    was_training = model.training
    model.eval()
    try:
        for j, bn in enumerate(recorder.layers):
            rm = bn.running_mean.detach().double().cpu().numpy()
            rv = bn.running_var.detach().double().cpu().numpy()
            rule_m = momentum_rule(recorder.means[j], 0.0, bn.momentum)
            rule_v = momentum_rule(recorder.vars[j], 1.0, bn.momentum)
            mean_err = max(mean_err, float(np.max(np.abs(rm - rule_m))))
            var_err = max(var_err, float(np.max(np.abs(rv - rule_v))))
            gamma = bn.weight.detach().double().cpu().numpy()
            beta = bn.bias.detach().double().cpu().numpy()
            at = next(i for i, layer in enumerate(layers) if layer is bn)
            with torch.no_grad():
                z = nn.Sequential(*layers[:at])(on_device(X_val, model))
                out = bn(z).double().cpu().numpy()
            z = z.double().cpu().numpy()
            formula = (z - rm) / np.sqrt(rv + bn.eps) * gamma + beta
            eval_err = max(eval_err, float(np.max(np.abs(out - formula))))
            scale = max(scale, float(np.max(np.abs(out))))
            for u in range(bn.num_features):
                rows.append(dict(layer=j + 1, unit=u + 1, gamma=gamma[u], beta=beta[u], running_mean=rm[u],
                                 running_var=rv[u], rule_mean=rule_m[u], rule_var=rule_v[u]))
    finally:
        model.train(was_training)
    first = recorder.layers[0]
    check = RuleCheck(momentum=float(first.momentum) if first.momentum is not None else float("nan"),
                      eps=float(first.eps), batches=len(recorder.means[0]), tracked=int(first.num_batches_tracked),
                      mean_error=mean_err, var_error=var_err, eval_error=eval_err, scale=scale)
    return check, pd.DataFrame(rows)


def batch_stat_error(z: np.ndarray, batch: int, n_batches: int = 500, seed: int = 0) -> tuple[float, float]:
    """How far a batch's mean and standard deviation stray from the full data's, per unit.

    `z` is (rows, units), e.g. the inputs of the first batch-norm layer. Returns the root mean
    square over random batches (drawn without replacement) and units of (mean_B - mean) / std and
    of std_B / std - 1 (std_B is the biased batch std batch norm uses). For the mean, sampling
    theory gives sqrt((1/B) (N - B) / (N - 1)).
    """
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    if not 2 <= batch <= n:
        raise ValueError(f"The batch size must be between 2 and the number of rows ({n}).")
    mu, sd = z.mean(axis=0), z.std(axis=0)
    keep = sd > 0
    z, mu, sd = z[:, keep], mu[keep], sd[keep]
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(n, size=batch, replace=False) for _ in range(n_batches)])
    b = z[idx]  # (n_batches, batch, units)
    mean_err = (b.mean(axis=1) - mu) / sd
    std_err = b.std(axis=1) / sd - 1.0
    return float(np.sqrt(np.mean(mean_err**2))), float(np.sqrt(np.mean(std_err**2)))


def expected_mean_error(batch: int, n: int) -> float:
    """Sampling theory's rms error of a batch mean, in standard deviations (without replacement)."""
    return math.sqrt((1 / batch) * (n - batch) / (n - 1))


# --------------------------------------------------------------------------- the diagnosis
def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Train batch norm at the tiny and the normal batch (and the plain model at the tiny one, and
    optionally batch norm after the activation) for each seed; check the lab seed's normal-batch
    run against the momentum rule and the evaluation formula."""
    on_progress = on_progress or no_progress
    validate(config)
    split = batch_norm_split(data, setup, config.scaler, config.max_train_rows)
    notes: list[str] = []
    note = rows_note(len(split.X_train), training_rows(data.n_rows), data.task)
    if note:
        notes.append(note)
    for batch in (config.tiny_batch, config.normal_batch):
        split, note = trim_for_batch_norm(split, batch)
        if note:
            notes.append(note)
    n_train = len(split.X_train)
    if config.normal_batch > n_train:
        raise ValueError(f"The normal batch ({config.normal_batch}) is larger than the training split ({n_train} rows).")
    keys = [k for k in RUNS if k != "bn_after" or config.placement]
    labels = run_labels(config)
    bn_spec = dataclasses.replace(setup.model, batch_norm=True)
    plain_spec = dataclasses.replace(setup.model, batch_norm=False)
    size = n_params(build(setup, split, bn_spec))
    seeds = seeds_for(setup, config.seeds)
    updates = len(seeds) * len(keys) * config.steps
    check_budget(estimated_seconds(updates, config.normal_batch, size),
                 f"{len(seeds)} seeds x {len(keys)} runs of {config.steps:,} steps")

    width = smooth_width(config.steps)
    rows, curves, modes = [], [], []
    check = params = layers = None
    jobs = [(seed, key) for seed in seeds for key in keys]
    for i, (seed, key) in enumerate(jobs):
        batch = config.tiny_batch if key.endswith("tiny") else config.normal_batch
        model = build(setup, split, plain_spec if key == "plain_tiny" else bn_spec, seed=seed)
        if key == "bn_after":
            model = bn_after_activation(model)
        inspect = key == "bn_normal" and seed == setup.seed
        recorder = BatchRecorder(model) if inspect else None
        tc = TrainConfig(optimizer=config.optimizer, lr=config.lr, max_steps=config.steps, batch_size=batch,
                         scaler=config.scaler, seed=seed, eval_every=10**9)
        label = f"{labels[key]}, seed {seed}"
        try:
            rec = run_model(split, setup, tc, key=key, model=model, message=label,
                            on_progress=sub_progress(on_progress, i / len(jobs), (i + 1) / len(jobs)))
        finally:
            if recorder is not None:
                recorder.remove()
        if inspect:
            layers = describe_layers(rec.model)
            check, params = rule_check(rec.model, recorder, split.X_val)
        curve = smoothed_curve(rec.history.steps, width)
        if rec.diverged_at is not None:
            curve = curve[curve["step"] < rec.diverged_at]
        curves.append(thin(curve).assign(run=key, label=labels[key], seed=seed))
        rows.append(dict(run=key, label=labels[key], seed=seed, batch_size=batch, train_mode_loss=rec.tail_loss,
                         eval_train_loss=rec.end.train_loss,
                         final_val_metric=rec.end.val_metric, diverged_at=rec.diverged_at, divergence=rec.divergence))
        for mode, loss in (("training", rec.tail_loss), ("evaluation", rec.end.train_loss)):
            modes.append(dict(run=key, label=labels[key], seed=seed, mode=mode, loss=loss))

    # How noisy are batch statistics? Measured on the first layer's outputs at the start: the
    # inputs of the first batch-norm layer.
    first = build(setup, split, bn_spec)[0]
    with torch.no_grad():
        z = first(torch.as_tensor(split.X_train)).double().numpy()
    stat_rows = []
    for batch in (config.tiny_batch, config.normal_batch):
        m_err, s_err = batch_stat_error(z, batch, config.n_batches, setup.seed)
        stat_rows.append(dict(batch_size=batch, mean_error=m_err, std_error=s_err,
                              expected_mean_error=expected_mean_error(batch, n_train)))
    on_progress(1.0, "done")

    runs = pd.DataFrame(rows)
    divergences = runs.pop("divergence")
    runs["diverged_at"] = runs["diverged_at"].astype("Int64")
    runs["batch_size"] = runs["batch_size"].astype(np.int64)
    curve_frame = pd.concat(curves, ignore_index=True)[["run", "label", "seed", "step", "smooth"]]
    stats = pd.DataFrame(stat_rows)
    stats["batch_size"] = stats["batch_size"].astype(np.int64)
    findings = find(runs, divergences, stats, placement(build(setup, split, bn_spec)), config)
    return Result(
        runs=runs, summary=_summary(runs), modes=pd.DataFrame(modes),
        bands=bands(curve_frame, ["run", "label"], "step", "smooth"), layers=layers, params=params, check=check,
        batch_stats=stats, labels=labels, metric=metric_name(data.task), n_train=n_train, findings=findings,
        verdict=make_verdict(findings, labels, config), rule_verdict=rule_verdict(check, findings, setup),
        notes=tuple(notes),
    )


def _summary(runs: pd.DataFrame) -> pd.DataFrame:
    out = []
    for key, g in runs.groupby("run", sort=False):
        ok = g[g["diverged_at"].isna()]
        out.append(dict(run=key, label=g["label"].iloc[0], batch_size=int(g["batch_size"].iloc[0]), seeds=len(g),
                        train_mode_loss=float(ok["train_mode_loss"].mean()),
                        eval_train_loss=float(ok["eval_train_loss"].mean()),
                        eval_train_loss_sd=float(ok["eval_train_loss"].std(ddof=1)) if len(ok) > 1 else 0.0,
                        final_val_metric=float(ok["final_val_metric"].mean()), diverged=int(len(g) - len(ok))))
    return pd.DataFrame(out)


def find(runs: pd.DataFrame, divergences: pd.Series, stats: pd.DataFrame, where: str, config: Config) -> Findings:
    """Compare the runs across seeds (core.findings.compare); a diverged seed is left out."""
    ok = runs[runs["diverged_at"].isna()]
    by = {k: ok[ok["run"] == k] for k in RUNS}
    n_seeds = int(runs["seed"].nunique())
    noise = None if n_seeds < 2 else 0.0  # one seed: no estimate of run-to-run noise, no claim

    def cmp(col: str, a: str, b: str) -> Comparison:
        return compare(col, a, by[a][col].tolist(), b, by[b][col].tolist(), higher_is_better=False, noise=noise,
                       split="train")

    diverged = {}
    for r, d in zip(runs.itertuples(), divergences):
        if d is not None and r.run not in diverged:
            diverged[r.run] = (int(r.seed), d)
    s = stats.set_index("batch_size")
    return Findings(
        tiny_vs_normal=cmp("eval_train_loss", "bn_tiny", "bn_normal"),
        tiny_vs_plain=cmp("eval_train_loss", "bn_tiny", "plain_tiny"),
        after_vs_before=cmp("eval_train_loss", "bn_after", "bn_normal") if config.placement else None,
        mean_error={int(b): float(s.loc[b, "mean_error"]) for b in s.index},
        expected_error={int(b): float(s.loc[b, "expected_mean_error"]) for b in s.index},
        diverged=diverged, placement=where, n_seeds=n_seeds,
    )


def make_verdict(f: Findings, labels: dict, config: Config) -> Verdict:
    """How batch norm fares with the tiny batch, worded from the findings only."""
    tiny, normal = config.tiny_batch, config.normal_batch
    noise = (f"A batch of {tiny} puts each unit's mean off by {num(f.mean_error[tiny])} standard deviations on "
             f"average (batch of {normal}: {num(f.mean_error[normal])}; sampling theory: "
             f"{num(f.expected_error[tiny])} and {num(f.expected_error[normal])}).")
    if f.diverged:
        key, (seed, d) = next(iter(f.diverged.items()))
        return Verdict("problem", f"{divergence_sentence(d, f'{capital(labels[key])} (seed {seed})')} {noise}",
                       "Lower the learning rate.")
    said = [comparison_sentence(f.tiny_vs_normal, labels, "ended with", "a lower training loss in evaluation mode",
                                "evaluation-mode training loss"),
            comparison_sentence(f.tiny_vs_plain, labels, "ended with", "a lower training loss in evaluation mode",
                                "evaluation-mode training loss")]
    if f.after_vs_before is not None:
        said.append(comparison_sentence(f.after_vs_before, labels, "ended with", "a lower training loss in evaluation "
                                        "mode", "evaluation-mode training loss"))
    text = " ".join(capital(s) for s in said) + " " + noise
    one = " (One seed: raise the seed count to judge a difference.)" if f.n_seeds == 1 else ""
    if f.tiny_vs_normal.winner == "bn_normal":
        return Verdict("warning", text, f"Use batches of {normal} or more with batch norm (or a norm that does not "
                                        "depend on the batch, like layer norm).")
    if f.tiny_vs_normal.winner is None:
        return Verdict("info", text + " Here the batch-statistics noise made no clear difference." + one)
    return Verdict("info", text)


def rule_verdict(check: RuleCheck, f: Findings, setup: LabSetup) -> Verdict:
    """Where batch norm sits and whether torch's test-time statistics follow the momentum rule."""
    acts = {"tanh": "tanh", "relu": "ReLU", "sigmoid": "sigmoid"}
    where = (f"In the lab model batch norm sits {f.placement} (Linear → BatchNorm1d → {acts[setup.model.activation]})"
             if f.placement == "before the activation" else f"In the lab model batch norm sits {f.placement}")
    agree = max(check.mean_error, check.var_error)
    text = (f"{where}. Over the {check.batches:,} training batches (torch counted {check.tracked:,}), the running mean "
            f"and variance torch keeps for test time match the momentum rule running = {1 - check.momentum:g} x running "
            f"+ {check.momentum:g} x batch statistic, applied here to the recorded batch statistics, to within "
            f"{agree:.1e}; evaluation-mode outputs match (z - running mean) / sqrt(running var + {check.eps:g}) x gamma "
            f"+ beta to within {check.eval_error:.1e} (outputs up to {num(check.scale)}).")
    tolerance = 1e-4 * max(1.0, check.scale)  # float32 arithmetic over a few hundred batches
    ok = agree <= tolerance and check.eval_error <= tolerance and check.batches == check.tracked
    if ok:
        return Verdict("good", text)
    return Verdict("problem", text + " They disagree beyond float32 rounding.",
                   "Check that nothing else ran the model in training mode.")
