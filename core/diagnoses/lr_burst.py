"""Adagrad's burst and its cure (lecture 3.2.4), with the lecture's own rule beside torch's.

The lecture's Adagrad divides each parameter's step by the root *mean* square of its past
gradients, sigma_t = sqrt(mean_{i<=t} g_i^2). Along a direction whose gradient has been tiny for a
long time sigma shrinks like 1/sqrt(t), the step eta/sigma * g grows past what the curvature
allows, the parameter is thrown across the valley (a burst), the big gradients raise sigma, it
settles, and the cycle repeats. The cure is a rate that decays, eta_t = eta / sqrt(t + 1).

`torch.optim.Adagrad` divides by the root of the *sum* of squares instead, which is the lecture's
rule with exactly that decay built in (sqrt(sum) = sqrt(t + 1) * sqrt(mean)): it cannot burst, its
step never exceeds the rate per coordinate.

`lecture_adagrad` is the page's one hand-written update rule: a labelled toy illustration of the
lecture's formula, tested step by step against the formula (tests/test_lr_burst.py). Everything
else trains with torch.optim.

`find_bursts` is the one burst test, used for the lecture's rule and for torch's optimizers
(lr_surfaces): a step on a coordinate is a burst when it follows BURST_QUIET steps whose median
step on that coordinate was BURST_JUMP times smaller, and is itself larger than BURST_RATE times
the base rate (a step the rate alone could not make).

>>> r = run(None, None, Config(steps=1000))
>>> [(b.run, b.step) for b in r.bursts]
[('lecture', 714)]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from core import surfaces as srf
from core.diagnoses import Progress, Verdict, no_progress
from core.diagnoses.words import num, steps as steps_word
from core.rules import first_divergence

BURST_QUIET = 50  # steps of quiet a burst follows
BURST_JUMP = 10.0  # a burst step is at least this many times the median step of the quiet stretch
BURST_RATE = 2.0  # and at least this many times the base rate (torch's Adagrad stays <= 1x)
MAX_STEPS = 10_000  # widget ceiling (three runs of 10,000 steps take about 3 s)
PROGRESS_EVERY = 250  # steps between progress calls (the Stop button lands there)
SHOWN_POINTS = 1000  # the charts get about this many points per run, plus every step near a burst
BURST_MARGIN = 20  # steps kept on each side of a burst episode
RUNS = ("lecture", "lecture_decay", "torch_adagrad")
RUN_LABELS = {
    "lecture": "lecture's Adagrad, constant rate",
    "lecture_decay": "lecture's Adagrad, rate / sqrt(t+1)",
    "torch_adagrad": "torch.optim.Adagrad",
}


def lecture_adagrad(grad: Callable[[np.ndarray], np.ndarray], start, steps: int, lr: float, decay: bool = False,
                    on_step: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """The lecture's Adagrad (3.2.1, 3.2.4), written out as a toy illustration; not an optimizer
    to train with (torch.optim.Adagrad is that).

    For each coordinate i and step t = 0, 1, ...:
        sigma_t^i = sqrt( (1 / (t + 1)) * sum_{k=0..t} (g_k^i)^2 )      (root mean square)
        theta_{t+1}^i = theta_t^i - (eta_t / sigma_t^i) * g_t^i
    with eta_t = lr, or lr / sqrt(t + 1) when `decay` (the lecture's cure). A coordinate whose
    gradients were all exactly 0 so far (sigma = 0) does not move. No epsilon: the lecture has none.

    Returns points (steps + 1, 2), grads (steps, 2), sigma (steps, 2) and eta (steps,).
    """
    theta = np.asarray(start, dtype=float).copy()
    points = np.empty((steps + 1, len(theta)))
    grads = np.empty((steps, len(theta)))
    sigmas = np.empty((steps, len(theta)))
    etas = np.empty(steps)
    points[0] = theta
    sum_sq = np.zeros_like(theta)
    for t in range(steps):
        g = np.asarray(grad(theta), dtype=float)
        sum_sq += g * g
        sigma = np.sqrt(sum_sq / (t + 1))
        eta = lr / math.sqrt(t + 1) if decay else lr
        step = np.divide(eta * g, sigma, out=np.zeros_like(g), where=sigma > 0)
        theta = theta - step
        points[t + 1], grads[t], sigmas[t], etas[t] = theta, g, sigma, eta
        if on_step is not None and (t + 1) % PROGRESS_EVERY == 0:
            on_step(t + 1)
    return {"points": points, "grads": grads, "sigma": sigmas, "eta": etas}


def torch_adagrad(surface: srf.Surface, start, steps: int, lr: float,
                  on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """The points of torch.optim.Adagrad (torch's defaults, eps 1e-10) on a surface, (steps + 1, 2)."""
    p = torch.tensor(np.asarray(start, dtype=float), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adagrad([p], lr=lr)
    points = np.empty((steps + 1, 2))
    points[0] = p.detach().numpy()
    for t in range(steps):
        opt.zero_grad()
        surface.fn(p).backward()
        opt.step()
        points[t + 1] = p.detach().numpy()
        if on_step is not None and (t + 1) % PROGRESS_EVERY == 0:
            on_step(t + 1)
    return points


@dataclass(frozen=True)
class Burst:
    """One burst episode on one coordinate: the test passed at `step` (the update from point
    `step` to `step + 1`), and kept passing until `end`; `size` is the episode's largest step."""

    run: str
    coordinate: str  # the surface's axis name
    step: int  # first update of the episode that passed the test
    end: int  # last update of the episode that passed it
    size: float  # largest |step| on the coordinate during the episode
    quiet: float  # median |step| over the BURST_QUIET updates before `step`
    reach: float  # largest |coordinate| during the episode
    rate: float  # the base rate the test compared with


def find_bursts(moves: np.ndarray, points: np.ndarray, rate: float, run: str = "",
                axis_names: tuple[str, ...] = ("x", "y")) -> list[Burst]:
    """Burst episodes of a trajectory (the test in the module docstring).

    `moves` (n, d): |step| per update and coordinate; `points` (n + 1, d): the path. Steps that pass
    within BURST_QUIET updates of each other belong to one episode.

    >>> quiet = np.full((60, 1), 1e-3); moves = np.r_[quiet, [[0.5]], quiet]
    >>> [(b.step, b.size) for b in find_bursts(moves, np.zeros((122, 1)), 0.1, axis_names=("x",))]
    [(60, 0.5)]
    """
    moves = np.asarray(moves, dtype=float)
    points = np.asarray(points, dtype=float)
    found: list[Burst] = []
    if len(moves) <= BURST_QUIET:
        return found
    for c in range(moves.shape[1]):
        m = moves[:, c]
        windows = np.lib.stride_tricks.sliding_window_view(m[:-1], BURST_QUIET)  # window k: steps k..k+Q-1
        quiet = np.median(windows, axis=1)  # quiet[j] is the median before step j + BURST_QUIET
        after = m[BURST_QUIET:]
        passed = np.flatnonzero((after > BURST_JUMP * quiet) & (after > BURST_RATE * rate)) + BURST_QUIET
        episodes: list[list[int]] = []
        for k in passed:
            if episodes and k - episodes[-1][-1] <= BURST_QUIET:
                episodes[-1].append(int(k))
            else:
                episodes.append([int(k)])
        for ep in episodes:
            first, last = ep[0], ep[-1]
            found.append(Burst(run, axis_names[c], first, last, float(m[first:last + 1].max()),
                               float(quiet[first - BURST_QUIET]),
                               float(np.abs(points[first:last + 2, c]).max()), rate))
    return sorted(found, key=lambda b: (b.step, b.coordinate))


def shown_steps(n_updates: int, bursts: list[Burst], points: int = SHOWN_POINTS) -> np.ndarray:
    """Which points of a run the charts get (a boolean mask over steps 0..n): every k-th point
    (about `points` per run) and the last, plus every point within BURST_MARGIN steps of a burst,
    so a burst keeps every step while the long quiet stretches thin out.

    >>> b = Burst("r", "x", 50, 52, 1.0, 0.0, 1.0, 0.1)
    >>> shown_steps(100, [b], points=4).nonzero()[0].tolist()[:8]
    [0, 25, 30, 31, 32, 33, 34, 35]
    """
    steps = np.arange(n_updates + 1)
    keep = (steps % max(1, n_updates // points) == 0) | (steps == n_updates)
    for b in bursts:
        keep[max(0, b.step - BURST_MARGIN): b.end + BURST_MARGIN + 2] = True
    return keep


@dataclass(frozen=True)
class Config:
    """The lecture's Adagrad, its decayed twin and torch's Adagrad on one toy surface."""

    surface: str = "elongated"  # a core.surfaces.SURFACES key; the bowl 100x steeper along x than y
    lr: float = 0.3  # base rate of all three runs
    steps: int = 4000  # updates per run (bursts near steps 714, 1930 and 3503 at lr 0.3)


@dataclass
class Result:
    """Paths, bursts (findings) and a summary per run."""

    paths: pd.DataFrame  # run, step, x, y, loss, move_x, move_y (|step| of the update leaving the point);
    # the points `shown_steps` keeps (the findings use every step)
    bursts: list[Burst]
    summary: pd.DataFrame  # run, label, lr, bursts, first_burst_at, largest_step, largest_step_per_lr, ...
    torch_vs_decay: float  # largest |torch point - lecture_decay point| over the run
    surface: str
    axis_names: tuple[str, str]
    config: Config
    verdict: Verdict


def validate(config: Config) -> None:
    """Raise ValueError with a plain sentence for a config that cannot run."""
    if config.surface not in srf.SURFACES:
        raise ValueError(f"Unknown surface {config.surface!r}; choose one of {', '.join(srf.SURFACES)}.")
    if isinstance(config.lr, bool) or not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr)
                                           and config.lr > 0):
        raise ValueError(f"The learning rate must be a positive number, got {config.lr!r}.")
    if isinstance(config.steps, bool) or not isinstance(config.steps, int) or not \
            BURST_QUIET + 1 <= config.steps <= MAX_STEPS:
        raise ValueError(f"Run from {BURST_QUIET + 1} to {MAX_STEPS:,} steps, got {config.steps!r}.")


def run(data, setup, config: Config, on_progress: Progress | None = None) -> Result:
    """Run the lecture's rule with a constant and a decaying rate and torch's Adagrad from the
    surface's start point; find their bursts. `data` and `setup` are not used (a toy surface)."""
    on_progress = on_progress or no_progress
    validate(config)
    surface = srf.SURFACES[config.surface]
    n = config.steps

    def ticker(i: int):
        return lambda t: on_progress((i + t / n) / len(RUNS), f"{RUN_LABELS[RUNS[i]]}: step {t:,} of {n:,}")

    paths = {
        "lecture": lecture_adagrad(surface.gradient, surface.start, n, config.lr, False, ticker(0))["points"],
        "lecture_decay": lecture_adagrad(surface.gradient, surface.start, n, config.lr, True, ticker(1))["points"],
        "torch_adagrad": torch_adagrad(surface, surface.start, n, config.lr, ticker(2)),
    }
    frames, rows, bursts = [], [], []
    for key in RUNS:
        pts = paths[key]
        with torch.no_grad():
            loss = surface.fn(torch.as_tensor(pts)).numpy()
        moves = np.abs(np.diff(pts, axis=0))
        found = find_bursts(moves, pts, config.lr, key, surface.axis_names)
        bursts += found
        start_loss = float(loss[0])
        div = first_divergence(loss, scale=start_loss - surface.min_loss)
        largest = int(np.argmax(moves.max(axis=1)))
        rows.append(dict(run=key, label=RUN_LABELS[key], lr=config.lr, bursts=len(found),
                         first_burst_at=found[0].step if found else None,
                         largest_step=float(moves.max()), largest_step_at=largest,
                         largest_step_per_lr=float(moves.max() / config.lr),
                         final_loss=float(loss[-1]), diverged_at=div))
        moved = np.vstack([moves, np.full((1, 2), np.nan)])  # the last point has no update
        keep = shown_steps(len(moves), found)
        frames.append(pd.DataFrame({"run": key, "step": np.arange(len(pts)), "x": pts[:, 0], "y": pts[:, 1],
                                    "loss": loss, "move_x": moved[:, 0], "move_y": moved[:, 1]})[keep])
    summary = pd.DataFrame(rows)
    for col in ("first_burst_at", "diverged_at"):
        summary[col] = summary[col].astype("Int64")
    gap = float(np.abs(paths["torch_adagrad"] - paths["lecture_decay"]).max())
    result = Result(pd.concat(frames, ignore_index=True), bursts, summary, gap, config.surface, surface.axis_names,
                    config, Verdict("info", ""))
    result.verdict = verdict(result)
    on_progress(1.0, "done")
    return result


def _list(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def burst_sentence(run_label: str, bursts: list[Burst]) -> str:
    """'<run> burst 3 times: on x at steps 714, 1,930 and 3,503 (largest step 5.46, 18x the rate; x reached 2.74).'"""
    if not bursts:
        return f"{run_label}: no burst."
    big = max(bursts, key=lambda b: b.size)
    coords = sorted({b.coordinate for b in bursts})
    times = "once" if len(bursts) == 1 else "twice" if len(bursts) == 2 else f"{len(bursts)} times"
    where = _list([f"{b.step:,}" for b in bursts])
    return (f"{run_label} burst {times}: on {' and '.join(coords)} at {'step' if len(bursts) == 1 else 'steps'} "
            f"{where} (largest step {num(big.size)}, {num(big.size / big.rate, 2)}x the rate, after "
            f"{steps_word(BURST_QUIET)} whose median step was {num(big.quiet, 2)}; {big.coordinate} reached "
            f"{num(big.reach)}).")


def verdict(result: Result) -> Verdict:
    """Worded from the bursts and the summary only."""
    s = result.summary.set_index("run")
    by_run = {key: [b for b in result.bursts if b.run == key] for key in RUNS}
    c = result.config
    parts = [f"On the {srf.SURFACES[result.surface].label.lower()} at lr {num(c.lr)} for {c.steps:,} steps:"]
    parts.append(burst_sentence("The lecture's Adagrad (root mean square) at a constant rate", by_run["lecture"]))
    for key, name in (("lecture_decay", "With the rate divided by sqrt(t+1)"),
                      ("torch_adagrad", "torch.optim.Adagrad (root of the sum)")):
        if by_run[key]:
            parts.append(burst_sentence(name, by_run[key]))
        else:
            parts.append(f"{name}: no burst; its largest step is {num(s.loc[key, 'largest_step_per_lr'], 2)}x "
                         "the rate.")
    diverged = s["diverged_at"].dropna()
    if len(diverged):
        parts.append("Diverged (core rule): " + ", ".join(
            f"{RUN_LABELS[k]} at step {int(v):,}" for k, v in diverged.items()) + ".")
    if by_run["lecture"] and not by_run["lecture_decay"]:
        return Verdict("good", " ".join(parts) + " The decaying rate is the cure: the bursts exist with the "
                       "lecture's rule and vanish with decay.")
    if not by_run["lecture"]:
        return Verdict("info", " ".join(parts) + " No burst at this rate and length: the lecture's rule needs a "
                       "long quiet stretch (try lr 0.3 and 4,000 steps on the elongated bowl).")
    return Verdict("warning", " ".join(parts) + " The decay did not remove every burst here.")
