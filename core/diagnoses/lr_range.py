"""The LR range test (Smith; fastai's `lr_find`) and its check at a tenth, once and ten times.

1. The test: train the lab model for `num_steps` mini-batches while the rate grows exponentially
   from `start_lr` to `end_lr` (core.train with the "exponential" schedule), smooth the loss with
   fastai's debiased moving average, cut the record at fastai's *stopping rule* (the smoothed loss
   past 4x its best: the test has seen enough, which is not a divergence; a divergence is only
   what core.rules says, and core.train stops the run there), and read two suggestions off it:
   "valley" and "steepest".
2. The check: train at 0.1x, 1x and 10x the valley, each with `seeds` seeds, and compare them on
   the tail training loss (the mean of each run's last 20% of steps) with
   core.findings.compare: Welch's t-test across seeds, or the runs' own tail noise.
3. The choice (`choose_rate`): nothing when the test's loss never fell (`range_fall`: the batch
   losses around the valley not below the untrained model's loss beyond their noise: the
   "valley" is noise) or when no checked rate lowered the training loss (`kit.trained`);
   otherwise the valley, unless the check found a rate that trained clearly better; then the
   rate with the lowest mean, which no other rate can have beaten. A rate that diverged in any
   seed, or did not train, is never chosen. So the recommendation never names a rate its own
   check beat, nor one under which the loss did not fall.

>>> from core.data import load_builtin
>>> r = run(load_builtin("moons"), LabSetup(), Config(num_steps=60, check_steps=0))
>>> r.choice.kind, r.recommended_lr == r.valley_lr
('unchecked', True)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses._kits import lr as kit
from core.findings import Comparison, compare, tail_noise
from core.diagnoses.words import divergence_sentence, num
from core.lab import LabSetup
from core.rules import Divergence
from core.runs import run_model
from core.train import TrainConfig

BETA = 0.98  # fastai's AvgSmoothLoss (torch-lr-finder: smooth_f = 0.05, i.e. 0.95, not debiased)
STOP_FACTOR = 4.0  # fastai's stopping rule: past 4x the best smoothed loss (torch-lr-finder: diverge_th = 5)
CHECK_FACTORS = (0.1, 1.0, 10.0)  # the check trains at these multiples of the valley
CHECK_KEYS = {0.1: "0.1x", 1.0: "1x", 10.0: "10x"}
MAX_STEPS = 2000  # range-test and check steps (widget ceilings)
MAX_SEEDS = kit.MAX_SEEDS


# ============================================================================ the record


def smooth_losses(raw, beta: float = BETA, despike: bool = True) -> np.ndarray:
    """Debiased exponential moving average of a loss record, as fastai's AvgSmoothLoss.

    avg_k = beta * avg_(k-1) + (1 - beta) * loss_k, reported as avg_k / (1 - beta^(k+1)) so the
    first values are not pulled towards the zero start. With `despike` each raw loss is first
    replaced by the median of itself and its two neighbours (the ends use their one neighbour
    twice): one bad batch then counts as one of its neighbours, so it neither stops the test nor
    moves a suggestion by more than a step, while a real blow-up, which lasts, comes through
    one step late. fastai has no such filter: early in the test, when the debiased
    average still weighs each loss heavily, one spike of 4x can stop it.

    >>> smooth_losses([2.0, 2.0, 2.0]).round(6).tolist()
    [2.0, 2.0, 2.0]
    """
    x = np.asarray(raw, dtype=float)
    if despike and len(x) >= 3:
        padded = np.concatenate([x[:1], x, x[-1:]])
        x = np.median(np.lib.stride_tricks.sliding_window_view(padded, 3), axis=1)
    out = np.empty(len(x))
    avg = 0.0
    for k, value in enumerate(x):
        avg = beta * avg + (1 - beta) * value
        out[k] = avg / (1 - beta ** (k + 1))
    return out


def stop_index(smoothed, factor: float = STOP_FACTOR) -> int | None:
    """The range test's stopping rule: first index whose smoothed loss exceeds `factor` times the
    best before it (or None). fastai LRFinder.after_batch:
    `if smooth_loss > 4 * best_loss: raise CancelFitException`. Not a divergence rule.
    """
    s = np.asarray(smoothed, dtype=float)
    if len(s) == 0:
        return None
    best = np.minimum.accumulate(s)
    over = np.flatnonzero(s > factor * best)
    return int(over[0]) if len(over) else None


def valley(lrs, losses) -> int:
    """Index of fastai's "valley" suggestion (fastai.callback.schedule.valley, fastai 2.x).

    The longest strictly decreasing subsequence of the loss ends at `max_end`; fastai takes
    `max_start = max_end - length` and returns index `max_start + int(L/3) + int(L/6)` with
    L = max_end - max_start, i.e. about half-way along the valley (past its first third, before
    its second). Written as in fastai, O(n^2) over at most a few thousand points.

    >>> valley(np.logspace(-3, 0, 9), np.array([5, 4, 3, 2, 1, 0.5, 0.4, 2, 9.0]))  # -1 + 2 + 1
    2

    fastai's max_start is one before the valley's first point (-1 here); a valley of 2 points
    at the very start would give index -1, the last rate, so the index is clamped at 0.
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    max_start, max_end = 0, 0
    lds = np.ones(n, dtype=int)  # lds[i]: length of the longest decreasing subsequence ending at i
    for i in range(1, n):
        # fastai's inner loop over j < i, vectorised: lds[i] grows as a running maximum over j, and
        # max_start is set at the first j where it passes lds[max_end] (later growth of lds[i]
        # leaves max_start as it was, as in fastai)
        running = np.maximum.accumulate(np.where(losses[i] < losses[:i], lds[:i] + 1, 1))
        lds[i] = running[-1]
        passed = np.flatnonzero(running > lds[max_end])
        if len(passed):
            max_end = i
            max_start = max_end - int(running[passed[0]])
    sections = (max_end - max_start) / 3
    return max(0, int(max_start + int(sections) + int(sections / 2)))


def steepest(lrs, losses) -> int:
    """Index of fastai's "steep" suggestion: the most negative slope of loss against log(lr).

    fastai: grads = (losses[1:] - losses[:-1]) / (log lrs[1:] - log lrs[:-1]); lrs[argmin(grads)].

    >>> steepest(np.logspace(-3, 0, 5), np.array([3.0, 2.9, 1.0, 0.9, 2.0]))
    1
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    grads = np.diff(losses) / np.diff(np.log(lrs))
    return int(np.argmin(grads))


@dataclass(frozen=True)
class RangeAnalysis:
    """What a range-test record says; indices point into the record."""

    smoothed: np.ndarray  # one value per finite raw loss before the first non-finite one
    stop: int | None  # index where the stopping rule fired, None if it never did
    end: int  # length of the record kept: through the stop point, or up to a NaN/inf loss
    window: tuple[int, int]  # [start, end) of the points the suggestions look at
    valley: int | None  # None when the window is too short to suggest anything
    steep: int | None


def analyze_range(lrs, raw_losses, num_steps: int | None = None, beta: float = BETA,
                  factor: float = STOP_FACTOR, despike: bool = True) -> RangeAnalysis:
    """Smooth, apply the stopping rule, trim as fastai's lr_find does, and find both suggestions.

    fastai drops the first num_steps // 10 points (rates too small to matter, average still
    settling) and the last 5 (where the loss turns up) before suggesting:
    `recorder.losses[num_it//10:-5]`. A non-finite raw loss ends the record before it.

    >>> lrs = np.logspace(-5, 1, 100)
    >>> a = analyze_range(lrs, 1 + (np.log10(lrs) + 2) ** 2)  # a parabola in log(lr), lowest at 1e-2
    >>> a.stop is None, a.window, bool(1e-5 < lrs[a.valley] < 1e-2)  # never 4x its best: only the end trimmed
    (True, (10, 95), True)
    """
    lrs = np.asarray(lrs, dtype=float)
    raw = np.asarray(raw_losses, dtype=float)
    bad = np.flatnonzero(~np.isfinite(raw))
    n = int(bad[0]) if len(bad) else len(raw)
    smoothed = smooth_losses(raw[:n], beta, despike)
    stop = stop_index(smoothed, factor)
    end = stop + 1 if stop is not None else n  # fastai records the point that stops it
    lo, hi = (num_steps or len(raw)) // 10, end - 5
    if hi - lo < 3:  # fastai would fail here; say "no suggestion" instead
        return RangeAnalysis(smoothed, stop, end, (lo, max(lo, hi)), None, None)
    v = lo + valley(lrs[lo:hi], smoothed[lo:hi])
    s = lo + steepest(lrs[lo:hi], smoothed[lo:hi])
    return RangeAnalysis(smoothed, stop, end, (lo, hi), v, s)


def range_fall(raw_losses, valley_index: int, start_loss: float, half_width: int) -> Comparison:
    """Did the range test's loss fall by the valley: the raw batch losses within `half_width`
    steps of it against the untrained model's loss on the whole training split (findings.compare,
    single-run path: the difference must pass NOISE_MULTIPLE x the window's own noise, its
    detrended standard error). `winner == "valley"` when it fell beyond the noise.

    >>> range_fall([0.7, 0.69, 0.71, 0.7, 0.69, 0.71, 0.7], 3, 0.7, 3).winner is None
    True
    >>> range_fall([0.7, 0.5, 0.31, 0.3, 0.29, 0.3, 0.31], 4, 0.7, 2).winner
    'valley'
    """
    raw = np.asarray(raw_losses, dtype=float)
    window = raw[max(0, valley_index - half_width): valley_index + half_width + 1]
    window = window[np.isfinite(window)]
    return compare("train_loss", "start", [start_loss], "valley", window.tolist(), higher_is_better=False,
                   noise=tail_noise(window, share=1.0), split="train")


# ============================================================================ config, findings, result


@dataclass(frozen=True)
class Config:
    """Smith's LR range test with fastai's defaults where they fit a small model, then the check."""

    optimizer: str = "adam"  # core.train.OPTIMIZERS; Adam's step ~ lr whatever the gradient scale
    start_lr: float = 1e-4  # fastai starts at 1e-7; Adam barely moves below 1e-4 in this short test
    end_lr: float = 10.0  # fastai's end
    num_steps: int = 200  # fastai uses 100; 200 halves the lag (in log-rate) of the 0.98 average
    batch_size: int | None = 32  # rows per step (fastai: one batch of the data loader); None = full batch
    check_steps: int = 200  # then train this many steps at 0.1x, 1x and 10x the valley (0 = skip)
    seeds: int = 3  # seeds per checked rate (the lab seed and the next ones); claims need all of them


@dataclass(frozen=True)
class RateChoice:
    """The rate the check supports, and why.

    kind: "confirmed" (the valley beat both other rates), "no_clear_difference" (nothing beat
    the valley), "higher" / "lower" (10x / 0.1x trained clearly better than the valley: it is
    chosen), "unchecked" (no check ran: the valley), "no_stable_rate" (every checked rate
    diverged in some seed), "no_valley" (the test suggested nothing), "never_fell" (the test's
    loss at the valley was not below its start beyond the noise: nothing to recommend),
    "nothing_trained" (no checked rate lowered the training loss beyond the noise).
    """

    kind: str
    key: str | None  # the chosen check run ("0.1x", "1x", "10x"), None without one
    factor: float | None
    lr: float | None
    beaten_by: tuple[str, ...] = ()  # check runs that beat the valley (for the wording)


@dataclass
class Result:
    """The record, the suggestions, the check (seeded groups and comparisons) and the choice."""

    record: pd.DataFrame  # step, lr, loss (raw batch loss), smoothed, in_window (used by suggestions)
    stop_step: int | None  # where the stopping rule fired (smoothed loss > 4x best), None if it never did
    divergence: Divergence | None  # the test's run diverged by core.rules (core.train stopped there)
    start_loss: float  # the untrained model's loss on the training split (the range test's seed)
    fell: Comparison | None  # range_fall at the valley (None without a valley)
    valley_lr: float | None
    steep_lr: float | None
    valley_step: int | None
    steep_step: int | None
    groups: list[kit.RunGroup]  # the check: one group per factor, in CHECK_FACTORS order
    comparisons: dict[tuple[str, str], Comparison]  # (a, b) -> compare_groups(a, b)
    trained: dict[str, bool]  # check key -> kit.trained(group): did that rate lower the loss in every seed
    choice: RateChoice
    check: pd.DataFrame  # one row per checked rate (kit.summary_table) plus factor
    check_curves: pd.DataFrame  # run, step, loss_mean, loss_lo, loss_hi, seeds
    optimizer: str
    config: Config
    verdict: Verdict
    notes: list[str] = field(default_factory=list)

    @property
    def recommended_lr(self) -> float | None:
        """The rate the page recommends: the valley unless the check found a better one."""
        return self.choice.lr


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for a config that cannot run."""
    kit.check_optimizer(config.optimizer)
    kit.check_rate(config.start_lr, "The start rate")
    kit.check_rate(config.end_lr, "The end rate")
    if config.end_lr <= config.start_lr:
        raise ValueError("The end rate must be larger than the start rate.")
    kit.check_steps(config.num_steps, 10, "The range test's steps", MAX_STEPS)
    kit.check_steps(config.check_steps, 0, "The check's steps", MAX_STEPS)
    kit.check_seeds(config.seeds)


# ============================================================================ deciding


def choose_rate(groups: dict[str, kit.RunGroup], comparisons: dict[tuple[str, str], Comparison],
                valley_lr: float | None, fell: bool = True,
                trained: dict[str, bool] | None = None) -> RateChoice:
    """The valley unless the check beat it; nothing when the test's loss never fell (`fell`
    False) or no checked rate trained (`trained`: kit.trained per group; None = not judged);
    see the module docstring.

    >>> from core.diagnoses._kits.lr import RunGroup, compare_groups
    >>> g = {k: RunGroup(k, f, (0,), (t,), (0.001,), (t,), (None,), pd.DataFrame())
    ...      for k, f, t in (("0.1x", 0.1, 0.5), ("1x", 1.0, 0.3), ("10x", 10.0, 0.2))}
    >>> c = {(a, b): compare_groups(g[a], g[b]) for a in g for b in g if a < b}
    >>> choose_rate(g, c, 1.0).kind, choose_rate(g, c, 1.0).lr
    ('higher', 10.0)
    """
    if valley_lr is None:
        return RateChoice("no_valley", None, None, None)
    if not fell:
        return RateChoice("never_fell", None, None, None)
    if not groups:
        return RateChoice("unchecked", "1x", 1.0, valley_lr)
    factors = {key: factor for factor, key in CHECK_KEYS.items()}
    beats = {}  # key -> keys it beat
    for comp in comparisons.values():
        if comp.winner is not None:
            beats.setdefault(comp.winner, set()).add(comp.loser)
    beaten_by = tuple(k for k, lost in beats.items() if "1x" in lost)
    stable = [g for g in groups.values() if g.stable]
    if not stable:
        return RateChoice("no_stable_rate", None, None, None)
    if trained is not None:  # a rate under which the loss did not fall is no candidate
        stable = [g for g in stable if trained[g.key]]
        if not stable:
            return RateChoice("nothing_trained", None, None, None)
    valley_group = groups["1x"]
    if valley_group in stable and not beaten_by:
        others = {k for k in groups if k != "1x"}
        kind = "confirmed" if beats.get("1x", set()) >= others else "no_clear_difference"
        return RateChoice(kind, "1x", 1.0, valley_group.lr)
    # the lowest mean among stable rates: a winner of compare always has the better mean, and an
    # unstable rate brings no samples, so nothing can have beaten it
    best = min(stable, key=lambda g: g.mean)
    kind = "higher" if factors[best.key] > 1 else "lower" if factors[best.key] < 1 else "no_clear_difference"
    return RateChoice(kind, best.key, factors[best.key], best.lr, beaten_by)


# ============================================================================ running


def run(data: Dataset, setup: LabSetup, config: Config, on_progress: Progress | None = None) -> Result:
    """Ramp the rate exponentially from start_lr to end_lr over num_steps mini-batches, then check.

    The ramp is core.train with the "exponential" schedule, gamma = (end/start)^(1/(N-1)), so step
    k uses start * gamma^k and the last step uses end_lr. The stopping rule cuts the record
    afterwards: the same record as stopping on line (later steps cannot change earlier ones).
    """
    on_progress = on_progress or no_progress
    validate(config)
    split, notes = kit.lab_split(data, setup)
    batch = kit.batch_rows(config.batch_size, split)
    rows = batch or len(split.X_train)
    n_checks = len(CHECK_FACTORS) * config.seeds if config.check_steps else 0
    kit.check_budget(config.num_steps + n_checks * config.check_steps, rows, split, setup, 1 + n_checks,
                     "The range test and its check")
    share = config.num_steps / (config.num_steps + n_checks * config.check_steps)
    gamma = (config.end_lr / config.start_lr) ** (1 / (config.num_steps - 1))
    ramp = TrainConfig(optimizer=config.optimizer, lr=config.start_lr, max_steps=config.num_steps, batch_size=batch,
                       schedule="exponential", schedule_params=(("gamma", gamma),), seed=setup.seed,
                       eval_every=kit.EVAL_EVERY)
    rec = run_model(split, setup, ramp, key="range_test", on_progress=sub_progress(on_progress, 0, share),
                    message="range test")
    steps = rec.history.steps
    lrs, raw = steps["lr"].to_numpy(dtype=float), steps["loss"].to_numpy(dtype=float)
    if rec.divergence is not None:  # the divergent step is not part of the record
        lrs, raw = lrs[:-1], raw[:-1]
    a = analyze_range(lrs, raw, config.num_steps)
    end = a.end
    record = pd.DataFrame({"step": np.arange(end, dtype=int), "lr": lrs[:end], "loss": raw[:end],
                           "smoothed": a.smoothed[:end]})
    record["in_window"] = (record["step"] >= a.window[0]) & (record["step"] < a.window[1])
    v_lr = float(lrs[a.valley]) if a.valley is not None else None
    start_loss = float(rec.start.train_loss)
    fell = (range_fall(raw[:end], a.valley, start_loss, max(5, config.num_steps // 20))
            if a.valley is not None else None)
    s_lr = float(lrs[a.steep]) if a.steep is not None else None

    groups: dict[str, kit.RunGroup] = {}
    if v_lr is not None and config.check_steps:
        for i, factor in enumerate(CHECK_FACTORS):
            key = CHECK_KEYS[factor]
            lo = share + i * (1 - share) / len(CHECK_FACTORS)
            progress = sub_progress(on_progress, lo, lo + (1 - share) / len(CHECK_FACTORS))
            cfg = TrainConfig(optimizer=config.optimizer, lr=v_lr * factor, max_steps=config.check_steps,
                              batch_size=batch)
            groups[key] = kit.train_group(split, setup, cfg, key, config.seeds, progress, f"check at {key}")
    keys = list(groups)
    comparisons = {(x, y): kit.compare_groups(groups[x], groups[y])
                   for i, x in enumerate(keys) for y in keys[i + 1:]}
    trained = {k: kit.trained(g) for k, g in groups.items()}
    choice = choose_rate(groups, comparisons, v_lr, fell is None or fell.winner == "valley", trained)
    check = kit.summary_table(list(groups.values()))
    if len(check):
        check.insert(1, "factor", [f for f in CHECK_FACTORS if CHECK_KEYS[f] in groups])
    curves = kit.curves_frame(list(groups.values()))
    if rec.divergence is not None and a.stop is None:
        notes.append(divergence_sentence(rec.divergence, "The range test's run") + " The record ends there.")
    elif a.end < len(raw) and a.stop is None:
        notes.append(f"The loss stopped being a number at step {a.end}; the record ends there.")
    elif a.stop is None:
        notes.append(f"The smoothed loss never passed {STOP_FACTOR:g}x its best: the test ran to {config.end_lr:g}. "
                     "A higher end rate would show where training breaks.")
    result = Result(record, a.stop, rec.divergence, start_loss, fell, v_lr, s_lr, a.valley, a.steep,
                    list(groups.values()), comparisons, trained, choice, check, curves, config.optimizer, config,
                    Verdict("info", ""), notes)
    result.verdict = verdict(result)
    return result


# ============================================================================ wording


LABELS = {"0.1x": "a tenth of the valley", "1x": "the valley", "10x": "ten times the valley"}


def check_sentences(result: Result) -> list[str]:
    """The check in sentences: each comparison with the valley (or the chosen rate), each divergence."""
    groups = {g.key: g for g in result.groups}
    seeds = result.config.seeds
    out = []
    for g in result.groups:
        if not g.stable:
            what = f"Training at {LABELS[g.key]} (lr {num(g.lr)})"
            where = f" (in {g.n_diverged} of {len(g.seeds)} seeds)" if len(g.seeds) > 1 else ""
            out.append(divergence_sentence(g.first_divergence, what).rstrip(".") + where + ".")
    anchor = result.choice.key if result.choice.key in groups else "1x"
    for g in result.groups:
        if g.stable and not result.trained.get(g.key, True):
            every = " in every seed" if len(g.seeds) > 1 else ""
            out.append(f"Training at {LABELS[g.key]} (lr {num(g.lr)}) did not lower the training loss beyond its "
                       f"noise{every}: {num(g.mean)} over its last 20% of steps vs {num(g.start_mean)} before "
                       "training" + (" (means over seeds)." if len(g.seeds) > 1 else "."))
    for (a, b), comp in result.comparisons.items():
        if anchor not in (a, b) or not (groups[a].stable and groups[b].stable):
            continue
        out.append(kit.comparison_text(comp, LABELS,
                                       f"tail training loss (last 20% of {result.config.check_steps} steps)"))
    if seeds > 1 and out:
        out.append(f"Each rate ran with {seeds} seeds; a difference counts only when Welch's t-test across them "
                   "says so (p < 0.05).")
    elif out and any(c.winner is not None for c in result.comparisons.values()):
        out.append(kit.ONE_SEED_CAVEAT)
    return out


def fall_sentence(result: Result) -> str:
    """The range test's loss at the valley against its start, when it did not fall beyond the noise."""
    f = result.fell
    if f is None or f.winner == "valley":
        return ""
    at = f.value("valley")
    how = "rose above its start" if f.winner == "start" else "stayed at its start, within its noise"
    return (f"The loss never fell: around the valley the batch loss {how} ({num(at)} vs "
            f"{num(f.value('start'))} before training), so the valley is noise and no rate in this range trained.")


def choice_sentence(choice: RateChoice, result: Result) -> str:
    """Which rate the check supports, in one sentence (from the RateChoice only)."""
    v = result.valley_lr
    if choice.kind == "no_valley":
        return "The test had too few points before it stopped to suggest a rate."
    if choice.kind == "unchecked":
        return f"The check did not run: the valley ({num(v)}) is the suggestion, untested."
    if choice.kind == "no_stable_rate":
        return "Every checked rate diverged in at least one seed: none can be recommended."
    if choice.kind == "never_fell":
        return "No rate to recommend from this range."
    if choice.kind == "nothing_trained":
        return ("No checked rate lowered the training loss beyond the noise: no rate in this range trained, "
                "none can be recommended.")
    if choice.kind == "confirmed":
        return f"The check confirms the valley: lr {num(choice.lr)} trained better than a tenth and ten times it."
    if choice.kind == "no_clear_difference":
        return (f"Nothing in the check trained clearly better than the valley, so the suggestion stays "
                f"lr {num(choice.lr)}.")
    word = "ten times" if choice.kind == "higher" else "a tenth of"
    clearly = "clearly better" if result.config.seeds > 1 else "better in this one run"
    return (f"The valley is not the best rate here: {word} it, lr {num(choice.lr)}, trained {clearly}, "
            f"so that is the suggestion" + (" (higher rates were not tried)." if choice.kind == "higher" else "."))


def verdict(result: Result) -> Verdict:
    """The range tab's verdict, worded from the result's findings only."""
    c = result.config
    choice = result.choice
    if result.valley_lr is None:
        where = f"by step {result.stop_step}" if result.stop_step is not None else "too early"
        if result.divergence is not None:
            where = f"at step {result.divergence.step} (it diverged)"
        return Verdict("problem", f"The range test ended {where}, before it had enough points to suggest a rate.",
                       f"Lower the start rate below {c.start_lr:g} or run more steps.")
    text = f"Range test ({c.optimizer}): valley at lr {num(result.valley_lr)}, steepest descent at {num(result.steep_lr)}"
    if result.stop_step is not None:
        stop_lr = float(result.record["lr"].iloc[result.stop_step])
        text += (f"; the test stopped at step {result.stop_step} (lr {num(stop_lr)}), where its smoothed loss "
                 f"passed {STOP_FACTOR:g}x its best (fastai's stopping rule).")
    else:
        text += "."
    sentences = [text, fall_sentence(result), *check_sentences(result), choice_sentence(choice, result)]
    body = " ".join(s for s in sentences if s)
    if choice.kind == "confirmed":
        return Verdict("good", body)
    if choice.kind in ("no_clear_difference", "unchecked"):
        return Verdict("info", body)
    if choice.kind == "higher":
        return Verdict("warning", body, f"Train at lr {num(choice.lr)}; a range test with a higher start rate, "
                       "or a check around this rate, can show whether higher still is better.")
    if choice.kind == "lower":
        return Verdict("warning", body, f"Train at lr {num(choice.lr)}: the valley was too aggressive for a run "
                       "this long.")
    if choice.kind in ("never_fell", "nothing_trained"):
        return Verdict("problem", body, widen_advice(result))
    return Verdict("problem", body, "Lower the rates: start the range test lower or end it lower.")


def widen_advice(result: Result) -> str:
    """Where to look when no rate in the range trained: lower when the loss rose from the start,
    higher (or longer) otherwise."""
    f = result.fell
    if f is not None and f.winner == "start":
        return "The loss rose from the start: try a lower range (a lower start and end rate)."
    if result.choice.kind == "nothing_trained" and (f is None or f.winner == "valley"):
        return "Try a wider or higher range, or more check steps."
    return f"Try a wider or higher range: raise the end rate (this test ended at {num(result.config.end_lr)})."
