"""core.sweep: the same trial gives the same numbers inline, through joblib and through Ray;
a stop keeps what finished; a failing trial is that trial's error, never the sweep's crash."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss

from core.data import load_builtin
from core.lab import DataSpec
from core.models import ModelSpec, build_mlp
from core.sweep import (
    CURVE_POINTS,
    Trial,
    TrialCache,
    _choose_backend,
    grid,
    results_frame,
    run_sweep,
    run_trial,
    warm_workers,
)
from core.train import BLOWUP_FACTOR, TrainConfig, split_data, train

DATA = DataSpec("moons", params=(("n_samples", 200),))
MODEL = ModelSpec(hidden=(8,))
BASE = TrainConfig(optimizer="sgd", epochs=3)


def small_grid(**kw):
    """Eight quick trials (~0.05 s each): 2 learning rates x 2 batch sizes x 2 seeds."""
    return grid(DATA, MODEL, BASE, seeds=(0, 1), lr=(0.05, 0.5), batch_size=(16, 64), **kw)


def bad_trials():
    """A batch larger than the training split (ValueError) and a CSV that was never uploaded
    (DataError): both raise inside the trial."""
    return [
        Trial(DATA, MODEL, TrainConfig(batch_size=10_000), label="too big a batch"),
        Trial(DataSpec(builtin=None), MODEL, BASE, label="no file"),
    ]


def assert_same_numbers(a, b):
    """Every number but the wall time, bit for bit (NaN equals NaN)."""
    assert a.trial == b.trial
    for name in ("final_train_loss", "val_loss", "val_metric"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x == y) or (math.isnan(x) and math.isnan(y)), (name, x, y)
    assert (a.metric, a.diverged_at, a.n_steps, a.error) == (b.metric, b.diverged_at, b.n_steps, b.error)
    np.testing.assert_array_equal(a.curve_step, b.curve_step)
    np.testing.assert_array_equal(a.curve_loss, b.curve_loss)


def test_trial_numbers_match_a_direct_training_run_scored_by_sklearn():
    trial = Trial(DATA, MODEL, TrainConfig(optimizer="adam", lr=0.02, epochs=40, batch_size=16), seed=3)
    result = run_trial(trial)
    # The same run built by hand from core's pieces, scored with scikit-learn.
    data = load_builtin("moons", seed=0, n_samples=200)
    split = split_data(data, seed=3)
    model = build_mlp(MODEL, 2, 2, seed=3)
    hist = train(model, split, TrainConfig(optimizer="adam", lr=0.02, epochs=40, batch_size=16, seed=3))
    with torch.no_grad():
        logits = model(torch.as_tensor(split.X_val))
    proba = torch.softmax(logits.double(), dim=1).numpy()
    assert result.error is None and result.metric == "accuracy"
    assert result.val_loss == pytest.approx(log_loss(split.y_val, proba), rel=1e-5)
    assert result.val_metric == pytest.approx(accuracy_score(split.y_val, logits.argmax(1).numpy()))
    losses = hist.steps["loss"]
    assert len(losses) == 40 * 10 == result.n_steps  # 160 training rows / 16
    assert result.final_train_loss == pytest.approx(losses.tail(40).mean(), rel=1e-12)
    # Thinned curve: at most CURVE_POINTS points, first and last step kept, values unchanged.
    assert len(result.curve_step) == CURVE_POINTS
    assert result.curve_step[0] == 0 and result.curve_step[-1] == 399
    np.testing.assert_array_equal(result.curve_loss, losses.to_numpy()[result.curve_step])
    assert result.diverged_at is None and 0.5 < result.val_metric <= 1
    assert not result.curve_loss.flags.writeable


def test_divergence_uses_the_training_loops_rule():
    trial = Trial(DATA, ModelSpec(hidden=(8,), activation="relu"),
                  TrainConfig(optimizer="sgd", lr=50.0, max_steps=200))
    result = run_trial(trial)
    hist = train(build_mlp(trial.model, 2, 2, seed=0), load_builtin("moons", n_samples=200),
                 TrainConfig(optimizer="sgd", lr=50.0, max_steps=200))
    loss = hist.steps["loss"].to_numpy()
    # Brute force: the first step whose loss is not finite or above BLOWUP_FACTOR x the first.
    expected = next(i for i, v in enumerate(loss) if not np.isfinite(v) or v > BLOWUP_FACTOR * loss[0])
    assert result.diverged_at == expected
    assert result.error is None


def test_inline_and_joblib_give_identical_numbers_and_errors():
    trials = small_grid() + bad_trials()
    inline = run_sweep(trials, backend="inline")
    pooled = run_sweep(trials, backend="joblib", n_jobs=2)
    assert len(inline) == len(pooled) == 10
    for a, b in zip(inline, pooled):
        assert_same_numbers(a, b)
    assert all(r.ok for r in inline[:8])
    assert "larger than the training split" in inline[8].error
    assert inline[9].error == "No file was uploaded yet."
    assert math.isnan(inline[8].val_loss) and len(inline[8].curve_loss) == 0
    # Different settings really train differently (the comparison above is not vacuous).
    assert len({r.final_train_loss for r in inline[:8]}) == 8


@pytest.mark.slow
def test_ray_local_mode_gives_the_same_numbers(monkeypatch):
    ray = pytest.importorskip("ray")  # in requirements.txt: CI has it
    from core.sweep import ray_init

    monkeypatch.delenv("TRAINSCOPE_RAY_ADDRESS", raising=False)
    trials = small_grid()[:4] + bad_trials()[:1]
    inline = run_sweep(trials, backend="inline")
    was_running = ray.is_initialized()
    ray_init(num_cpus=2)
    try:
        seen = []
        remote = run_sweep(trials, backend="ray", on_result=lambda r, done, total: seen.append((done, total)))
        assert seen == [(i, 5) for i in range(1, 6)]
        for a, b in zip(inline, remote):
            assert_same_numbers(a, b)
        assert remote[-1].error is not None and all(r.ok for r in remote[:4])
        # A stop after the first result cancels the rest; the next sweep still runs.
        got = []
        stopped = run_sweep(trials, backend="ray", on_result=lambda r, d, t: got.append(r),
                            should_stop=lambda: bool(got))
        assert len(stopped) == 1
        assert len(run_sweep(trials[:2], backend="ray")) == 2
    finally:
        if not was_running:
            ray.shutdown()


def test_a_stopped_sweep_keeps_the_finished_trials_cached():
    trials = small_grid()
    cache = TrialCache(max_entries=32)
    got = []
    first = run_sweep(trials, backend="joblib", n_jobs=2, cache=cache,
                      on_result=lambda r, done, total: got.append(r), should_stop=lambda: len(got) >= 3)
    assert 3 <= len(first) < len(trials)
    assert len(cache) == len(first)
    assert all(cache.get(r.trial) is r for r in first)
    # The rerun serves those from the cache (the very same objects) and trains the rest.
    order = []
    second = run_sweep(trials, backend="inline", cache=cache, on_result=lambda r, done, total: order.append(r))
    assert len(second) == len(trials) == len(cache)
    assert order[: len(first)] == [r for r in first]  # cached ones are handed over first
    kept = {id(r) for r in first}
    assert sum(id(r) in kept for r in second) == len(first)
    reference = run_sweep(trials, backend="inline")
    for a, b in zip(second, reference):
        assert_same_numbers(a, b)


class FakeStop(BaseException):
    """Like Streamlit's StopException: raised from inside the progress callback."""


def test_a_stop_raised_by_the_callback_keeps_what_finished_and_the_pool_recovers():
    trials = small_grid()
    cache = TrialCache()

    def on_result(result, done, total):
        if done == 2:
            raise FakeStop

    with pytest.raises(FakeStop):
        run_sweep(trials, backend="joblib", n_jobs=2, cache=cache, on_result=on_result)
    assert len(cache) == 2
    assert warm_workers(2) > 0  # the stop killed the workers: start fresh ones
    again = run_sweep(trials, backend="joblib", n_jobs=2, cache=cache)
    assert len(again) == 8 and all(r.ok for r in again)


def test_inline_stop_checks_before_each_trial():
    calls = []
    results = run_sweep(small_grid(), backend="inline", should_stop=lambda: len(calls) >= 3,
                        on_result=lambda r, d, t: calls.append(d))
    assert len(results) == 3 and calls == [1, 2, 3]


def test_errors_are_not_cached_and_duplicates_run_once():
    cache = TrialCache()
    good = small_grid()[0]
    twin = Trial(good.data, good.model, good.train, good.seed, label="same trial, other label")
    results = run_sweep([good, twin, *bad_trials()], backend="inline", cache=cache)
    assert len(results) == 3 and len(cache) == 1
    assert good in cache and bad_trials()[0] not in cache


def test_cache_is_a_bounded_lru():
    trials = small_grid()[:3]
    cache = TrialCache(max_entries=2)
    results = run_sweep(trials[:2], backend="inline", cache=cache)
    assert cache.get(trials[0]) is results[0]  # now trials[1] is the least recently used
    run_sweep(trials[2:3], backend="inline", cache=cache)
    assert len(cache) == 2 and trials[0] in cache and trials[2] in cache and trials[1] not in cache
    with pytest.raises(ValueError):
        TrialCache(max_entries=0)


def test_grid_order_labels_and_frame():
    trials = small_grid()
    assert [(t.train.lr, t.train.batch_size, t.seed) for t in trials[:3]] == [
        (0.05, 16, 0), (0.05, 16, 1), (0.05, 64, 0)]
    assert trials[0].label == "lr=0.05, batch_size=16, seed=0"
    assert all(t.train.optimizer == "sgd" and t.train.epochs == 3 for t in trials)
    with pytest.raises(ValueError, match="not a training setting"):
        grid(DATA, MODEL, BASE, learning_rate=(0.1,))
    with pytest.raises(ValueError, match="no values"):
        grid(DATA, MODEL, BASE, lr=())
    frame = results_frame(run_sweep(trials[:4], backend="inline"))
    assert list(frame.columns[:3]) == ["label", "seed", "batch_size"]  # lr is the same in these four
    assert frame["batch_size"].tolist() == [16, 16, 64, 64]
    assert frame["error"].isna().all() and (frame["n_steps"] > 0).all()


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("TRAINSCOPE_RAY_ADDRESS", raising=False)
    assert _choose_backend("auto", 3, 2) == "inline"
    assert _choose_backend("auto", 24, 2) == "joblib"
    assert _choose_backend("auto", 24, 1) == "inline"
    monkeypatch.setenv("TRAINSCOPE_RAY_ADDRESS", "10.0.0.1:6379")
    assert _choose_backend("auto", 2, 2) == "ray"
    assert _choose_backend("joblib", 2, 2) == "joblib"
    with pytest.raises(ValueError, match="Unknown backend"):
        run_sweep([], backend="dask")


def test_an_unreachable_ray_cluster_is_a_plain_error_not_a_hang(monkeypatch):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process")
    from core.sweep import BackendError

    monkeypatch.setenv("TRAINSCOPE_RAY_ADDRESS", "127.0.0.1:1")  # a port nobody listens on
    with pytest.raises(BackendError, match="Nothing answers at 127.0.0.1:1"):
        run_sweep(small_grid()[:1])
    assert not ray.is_initialized()


def test_module_example_runs():
    import doctest

    import core.sweep

    assert doctest.testmod(core.sweep).failed == 0
