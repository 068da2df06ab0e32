"""Many seeded training trials, run in-process, in local worker processes (joblib/loky) or on Ray.

A `Trial` is everything one training run needs (data, model, TrainConfig, seed); `run_trial`
turns it into a `TrialResult` of plain numbers, the same numbers wherever it runs. `run_sweep`
runs a list of trials through one backend, hands each result to `on_result` as it finishes,
honours a stop, and keeps finished results in a `TrialCache` so a grown grid only trains the new
cells and a rerun trains nothing.

    >>> from core.lab import DataSpec
    >>> from core.models import ModelSpec
    >>> from core.train import TrainConfig
    >>> trials = grid(DataSpec("moons"), ModelSpec(hidden=(8,)), TrainConfig(epochs=2),
    ...               seeds=(0, 1), lr=(0.01, 0.1))
    >>> len(trials), trials[0].train.lr, trials[3].seed
    (4, 0.01, 1)
    >>> results = run_sweep(trials, backend="inline")
    >>> [r.error for r in results]
    [None, None, None, None]

Backends (all existing engines, no pool of our own):
- "inline": this process, one trial after another (a handful of tiny runs; no start-up cost).
- "joblib": `joblib.Parallel` with loky worker processes, kept alive between sweeps.
- "ray": Ray tasks, one CPU each (and a GPU share when the cluster has GPUs), on the cluster at
  TRAINSCOPE_RAY_ADDRESS or on a local Ray that the first sweep starts.
- "auto": ray when TRAINSCOPE_RAY_ADDRESS is set, inline for at most INLINE_MAX trials or
  n_jobs=1, joblib otherwise.
"""
from __future__ import annotations

import itertools
import math
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from core.data import DataError
from core.lab import DataSpec, load_data
from core.models import ModelSpec, build_mlp
from core.train import TrainConfig, split_data, train

BACKENDS = ("auto", "inline", "joblib", "ray")
INLINE_MAX = 3  # "auto" runs this many trials or fewer in-process: workers cost ~2 s to start
CURVE_POINTS = 200  # a result's loss curve is thinned to at most this many points
TAIL_FRACTION = 0.1  # final train loss = mean loss over the last 10% of steps (less step noise)
# Ray GPU share per trial when the cluster has GPUs: the models here are tiny and launch-bound,
# so four trials on one GPU lose little and use it four times better.
GPU_SHARE = 0.25
RAY_ADDRESS_ENV = "TRAINSCOPE_RAY_ADDRESS"
RAY_POLL_S = 0.2  # how often a Ray sweep checks should_stop while trials are running

OnResult = Callable[["TrialResult", int, int], None]  # (result, trials done, trials in sweep)


@dataclass(frozen=True)
class Trial:
    """One training run: data, model, training config and seed. Frozen and hashable (a cache key).

    `seed` sets the model's initial weights and the TrainConfig's seed (split, batch order,
    gradient noise); `data_seed` regenerates a synthetic dataset (the lab setup's seed), so the
    seeds of a grid vary the run, not the data. `label` is for display only and is not part of
    the key.
    """

    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainConfig = TrainConfig()
    seed: int = 0
    data_seed: int = 0
    label: str = field(default="", compare=False)


@dataclass(frozen=True, eq=False)
class TrialResult:
    """What one trial produced: final numbers, a thinned loss curve, or the error that stopped it.

    Arrays are read-only (a result may be shared through a cache). Metrics are NaN when
    `error` is set or the run ended in NaN/inf.
    """

    trial: Trial | None  # the trial that produced it (attached by run_sweep / run_trial)
    final_train_loss: float  # mean per-step training loss over the last TAIL_FRACTION of steps
    val_loss: float  # validation loss at the end of training (NaN if the run hit NaN/inf)
    val_metric: float  # validation accuracy or R^2 at the end (see `metric`)
    metric: str  # "accuracy" or "R^2"
    diverged_at: int | None  # core.train's divergence rule (History.blowup_at), None if none
    n_steps: int  # optimizer updates done
    seconds: float  # wall time of the trial, data loading included
    curve_step: np.ndarray  # step numbers of the thinned training-loss curve (int64)
    curve_loss: np.ndarray  # per-step training loss at those steps (float64)
    error: str | None = None  # why the trial failed, in a sentence fit to show; None if it ran

    @property
    def ok(self) -> bool:
        """True when the trial ran to the end without an error (it may still have diverged)."""
        return self.error is None


def run_trial(trial: Trial) -> TrialResult:
    """Train one trial and summarize it; never raises for a bad trial (the error is returned).

    Pure and seeded: the same trial gives the same numbers in this process, in a joblib worker
    and in a Ray task (one torch thread each). Only `seconds` differs between runs.
    """
    start = time.perf_counter()
    try:
        data = load_data(trial.data, trial.data_seed)
        config = replace(trial.train, seed=trial.seed)
        split = split_data(data, config.scaler, config.val_fraction, config.seed)
        model = build_mlp(trial.model, split.n_features, split.n_outputs, seed=trial.seed)
        hist = train(model, split, config)
    except (DataError, ValueError) as exc:  # our own messages are written for the user
        return _failed(trial, str(exc), time.perf_counter() - start)
    except Exception as exc:  # anything else: say what it was rather than crash the sweep
        return _failed(trial, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)

    loss = hist.steps["loss"].to_numpy(dtype=float)
    tail = loss[-max(1, math.ceil(TAIL_FRACTION * len(loss))):]
    tail = tail[np.isfinite(tail)]
    val_loss = val_metric = float("nan")
    if hist.diverged_at is None and len(hist.epochs):
        last = hist.epochs.iloc[-1]
        val_loss, val_metric = float(last["val_loss"]), float(last["val_metric"])
    idx = _thin(len(loss), CURVE_POINTS)
    return TrialResult(
        trial=trial,
        final_train_loss=float(tail.mean()) if len(tail) else float("nan"),
        val_loss=val_loss,
        val_metric=val_metric,
        metric=hist.metric,
        diverged_at=hist.blowup_at(),
        n_steps=int(len(hist.steps) - (hist.diverged_at is not None)),
        seconds=time.perf_counter() - start,
        curve_step=_frozen(hist.steps["step"].to_numpy(dtype=np.int64)[idx]),
        curve_loss=_frozen(loss[idx]),
    )


def _failed(trial: Trial | None, message: str, seconds: float = 0.0) -> TrialResult:
    empty = _frozen(np.zeros(0))
    return TrialResult(trial, math.nan, math.nan, math.nan, "", None, 0, seconds,
                       _frozen(np.zeros(0, dtype=np.int64)), empty, error=message)


def _thin(n: int, points: int) -> np.ndarray:
    """Indices of at most `points` evenly spaced rows of n, first and last included."""
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def _worker_entry(index: int, trial: Trial) -> tuple[int, TrialResult]:
    """Run a trial in a worker process: one torch thread (workers share the cores), and the
    trial itself is not sent back (the caller has it; an uploaded CSV would travel twice)."""
    import torch

    torch.set_num_threads(1)
    return index, replace(run_trial(trial), trial=None)


class TrialCache:
    """A bounded, thread-safe LRU map Trial -> TrialResult (finished, error-free results only).

    Kept in memory, not on disk (joblib.Memory): a result is a few KB, so a few hundred fit in a
    few MB; an uploaded CSV inside a trial key never lands on disk; and the bound is exact at
    every put (joblib.Memory only trims its folder when asked). One cache can serve every session
    of the app (hold it in st.cache_resource), since a key is the whole trial.
    """

    def __init__(self, max_entries: int = 512):
        if max_entries < 1:
            raise ValueError("A trial cache needs room for at least one entry.")
        self.max_entries = max_entries
        self._items: OrderedDict[Trial, TrialResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, trial: Trial) -> TrialResult | None:
        """The cached result of this trial (marked most recently used), or None."""
        with self._lock:
            result = self._items.get(trial)
            if result is not None:
                self._items.move_to_end(trial)
            return result

    def put(self, trial: Trial, result: TrialResult) -> None:
        """Keep a finished result; errors are not kept, so a rerun tries them again."""
        if result.error is not None:
            return
        with self._lock:
            self._items[trial] = result
            self._items.move_to_end(trial)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __contains__(self, trial: Trial) -> bool:
        with self._lock:
            return trial in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        """Forget every result."""
        with self._lock:
            self._items.clear()


def grid(
    data: DataSpec,
    model: ModelSpec,
    train: TrainConfig,
    seeds: Sequence[int] = (0,),
    data_seed: int = 0,
    **axes: Sequence,
) -> list[Trial]:
    """The Cartesian grid of trials over TrainConfig fields (`lr=(...)`, `batch_size=(...)`) x seeds.

    The first axis varies slowest and the seed fastest. Raises ValueError for a name that is
    not a TrainConfig field or an empty axis.
    """
    known = {f.name for f in fields(TrainConfig)} - {"seed"}
    for name, values in axes.items():
        if name not in known:
            raise ValueError(f"{name!r} is not a training setting; choose among {', '.join(sorted(known))}.")
        if len(values) == 0:
            raise ValueError(f"The grid axis {name!r} has no values.")
    if len(seeds) == 0:
        raise ValueError("The grid needs at least one seed.")
    names = list(axes)
    trials = []
    for combo in itertools.product(*(axes[n] for n in names), seeds):
        settings = dict(zip(names, combo[:-1]))
        label = ", ".join(f"{n}={v}" for n, v in settings.items()) + f", seed={combo[-1]}"
        trials.append(Trial(data, model, replace(train, **settings), int(combo[-1]), data_seed,
                            label.lstrip(", ")))
    return trials


def run_sweep(
    trials: Iterable[Trial],
    backend: str = "auto",
    n_jobs: int = 2,
    on_result: OnResult | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache: TrialCache | None = None,
) -> list[TrialResult]:
    """Run trials and return their results in the order given; stop early on request.

    Cached trials are served first, without training. Every other result is put in `cache`
    and then handed to `on_result(result, done, total)` as soon as it finishes (finish order),
    so a stop, or an exception raised by `on_result` itself (Streamlit's stop), keeps what
    finished. `should_stop()` is checked before each inline trial, after each joblib result
    and every RAY_POLL_S on Ray; when it returns True, pending trials are cancelled (running
    joblib workers are killed) and the finished results are returned. A trial that raises
    comes back as a result with `error` set; run_sweep itself does not raise for it, only
    BackendError when Ray cannot start or be reached. Duplicate trials run once.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if n_jobs < 1:
        raise ValueError("Use at least one worker (n_jobs >= 1).")
    order = list(dict.fromkeys(trials))
    total = len(order)
    done: dict[Trial, TrialResult] = {}
    stop = should_stop or (lambda: False)

    def finish(trial: Trial, result: TrialResult) -> None:
        if result.trial is not trial:  # a cached result may carry an equal trial's label
            result = replace(result, trial=trial)
        done[trial] = result
        if cache is not None:
            cache.put(trial, result)
        if on_result is not None:
            on_result(result, len(done), total)

    todo = []
    for trial in order:
        hit = cache.get(trial) if cache is not None else None
        if hit is not None:
            finish(trial, hit)
        else:
            todo.append(trial)
    if todo and not stop():
        chosen = _choose_backend(backend, len(todo), n_jobs)
        runner = {"inline": _run_inline, "joblib": _run_joblib, "ray": _run_ray}[chosen]
        runner(todo, n_jobs, finish, stop)
    return [done[t] for t in order if t in done]


def _choose_backend(backend: str, n_todo: int, n_jobs: int) -> str:
    if backend != "auto":
        return backend
    if os.environ.get(RAY_ADDRESS_ENV):
        return "ray"
    return "inline" if n_todo <= INLINE_MAX or n_jobs == 1 else "joblib"


def _run_inline(todo, n_jobs, finish, stop) -> None:
    for trial in todo:
        if stop():
            return
        finish(trial, run_trial(trial))


def _run_joblib(todo, n_jobs, finish, stop) -> None:
    from joblib import Parallel, delayed

    # batch_size=1: each trial comes back on its own (auto-batching would hold finished ones).
    # n_jobs stays as asked even for fewer trials: loky keeps its workers only for the same size.
    parallel = Parallel(n_jobs=n_jobs, backend="loky", batch_size=1,
                        return_as="generator_unordered")
    results = parallel(delayed(_worker_entry)(i, t) for i, t in enumerate(todo))
    finished: set[int] = set()
    try:
        while True:
            try:
                index, result = next(results)
            except StopIteration:
                break
            except Exception as exc:  # a worker died (killed, out of memory): its trials are lost
                message = f"A worker process failed ({type(exc).__name__}: {exc}); run the sweep again."
                for i, trial in enumerate(todo):
                    if i not in finished:
                        finish(trial, _failed(trial, message))
                break
            finished.add(index)
            finish(todo[index], result)
            if stop():
                break
    finally:
        # Closing early aborts the rest: pending trials are dropped, running workers killed
        # (loky starts fresh ones for the next sweep). joblib warns about it; it is on purpose.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results.close()


def warm_workers(n_jobs: int = 2) -> float:
    """Start the joblib (loky) worker processes and pay their start-up now; returns seconds.

    A fresh worker spends 4-7 s on 2 cores before its first trial ends: importing torch and
    scikit-learn, then torch's first optimizer step (which imports torch._dynamo). A page can
    call this when it opens (in a thread), so its first sweep runs on warm workers; loky keeps
    them for 300 s of idleness, and a stop or a different n_jobs replaces them.
    """
    from joblib import Parallel, delayed

    start = time.perf_counter()
    Parallel(n_jobs=n_jobs, backend="loky", batch_size=1)(delayed(_warm_one)(i) for i in range(n_jobs))
    return time.perf_counter() - start


def _warm_one(index: int) -> int:
    # One real (tiny) trial: every import and first-call cost that a sweep's first trial pays.
    _worker_entry(index, Trial(DataSpec("moons", params=(("n_samples", 40),)), ModelSpec(hidden=(2,)),
                               TrainConfig(epochs=1)))
    return os.getpid()


class BackendError(RuntimeError):
    """The chosen backend cannot run (Ray missing or its cluster unreachable); a message to show."""


def ray_init(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at `address` (default: TRAINSCOPE_RAY_ADDRESS) or start a local one.

    Does nothing when Ray is already initialized in this process. Usage statistics are off and
    no dashboard is started, so nothing reaches the internet. A cluster gets this `core` package
    shipped with each job (its nodes need TrainScope's requirements installed); a local Ray uses
    `num_cpus` CPUs (default: all). Raises BackendError with a plain message when Ray is not
    installed or the cluster cannot be reached.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise BackendError("Ray is not installed: pip install -r requirements.txt.") from None

    if ray.is_initialized():
        return
    address = address or os.environ.get(RAY_ADDRESS_ENV) or None
    core_dir = os.path.dirname(os.path.abspath(__file__))
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, runtime_env={"py_modules": [core_dir]}, log_to_driver=False)
        else:
            # Local workers share this file system: point them at the code instead of copying it.
            path = os.pathsep.join(p for p in (os.path.dirname(core_dir), os.environ.get("PYTHONPATH")) if p)
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}})
    except BackendError:
        raise
    except Exception as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = (" Check TRAINSCOPE_RAY_ADDRESS; a cluster with token authentication also needs "
                "RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN).") if address else ""
        raise BackendError(f"Could not start {where} ({type(exc).__name__}: {exc}).{hint}") from exc


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast on a host:port nobody answers: ray.init would retry it for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" or a form Ray parses itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BackendError(
            f"Nothing answers at {address} (from {RAY_ADDRESS_ENV}): {exc}. Start the cluster "
            "(ray start --head) or fix the address."
        ) from None


def _run_ray(todo, n_jobs, finish, stop) -> None:
    import ray

    ray_init(num_cpus=n_jobs)
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    remote = ray.remote(_worker_entry)
    pending = {}
    for i, trial in enumerate(todo):
        gpus = GPU_SHARE if has_gpu and trial.train.device != "cpu" else 0
        pending[remote.options(num_cpus=1, num_gpus=gpus).remote(i, trial)] = i
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=RAY_POLL_S)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    result = ray.get(ref)[1]
                except Exception as exc:  # the task's process died: only this trial is lost
                    result = _failed(todo[index], f"The Ray task failed ({type(exc).__name__}: {exc}).")
                finish(todo[index], result)
            if pending and stop():
                break
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def results_frame(results: Sequence[TrialResult]) -> pd.DataFrame:
    """One row per result: label, seed, the TrainConfig settings that vary, metrics and error."""
    trials = [r.trial for r in results]
    varying = []
    if trials and all(t is not None for t in trials):
        for f in fields(TrainConfig):
            if f.name != "seed" and len({getattr(t.train, f.name) for t in trials}) > 1:
                varying.append(f.name)
    rows = []
    for r in results:
        t = r.trial
        row = {"label": t.label if t else "", "seed": t.seed if t else None}
        row.update({name: getattr(t.train, name) for name in varying})
        row.update(final_train_loss=r.final_train_loss, val_loss=r.val_loss, val_metric=r.val_metric,
                   metric=r.metric, diverged_at=r.diverged_at, n_steps=r.n_steps, seconds=r.seconds,
                   error=r.error)
        rows.append(row)
    return pd.DataFrame(rows)
