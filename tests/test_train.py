import math

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from core.data import load_builtin
from core.models import ModelSpec, build_mlp
from core.train import TrainConfig, evaluate, make_loss, split_data, train


@pytest.fixture(scope="module")
def moons():
    return load_builtin("moons", seed=0, n_samples=200, noise=0.2)


def _model(split, hidden=(8,), seed=0, **kw):
    return build_mlp(ModelSpec(hidden=hidden, **kw), split.n_features, split.n_outputs, seed=seed)


def test_records_and_determinism(moons):
    cfg = TrainConfig(optimizer="adam", lr=0.01, epochs=4, batch_size=32, seed=1)
    split = split_data(moons, seed=1)
    h1 = train(_model(split), moons, cfg)
    h2 = train(_model(split), moons, cfg)
    assert list(h1.steps.columns) == ["step", "epoch", "loss", "grad_norm", "lr"]
    assert len(h1.steps) == 4 * math.ceil(len(split.X_train) / 32)
    assert h1.steps["step"].tolist() == list(range(len(h1.steps)))
    np.testing.assert_array_equal(h1.steps["loss"].to_numpy(), h2.steps["loss"].to_numpy())
    assert h1.diverged_at is None and len(h1.epochs) == 4
    assert h1.metric == "accuracy" and 0 <= h1.epochs["val_metric"].iloc[-1] <= 1


def test_full_batch_sgd_matches_a_bare_torch_loop(moons):
    split = split_data(moons, seed=0)
    cfg = TrainConfig(optimizer="sgd", lr=0.5, max_steps=25, seed=0)
    hist = train(_model(split), split, cfg)
    ref = _model(split)
    opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    X, y = torch.as_tensor(split.X_train), torch.as_tensor(split.y_train)
    losses, norms = [], []
    for _ in range(25):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(X), y)
        loss.backward()
        norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in ref.parameters()])))
        losses.append(loss.item())
        opt.step()
    np.testing.assert_allclose(hist.steps["loss"], losses, rtol=1e-6)
    np.testing.assert_allclose(hist.steps["grad_norm"], norms, rtol=1e-5)
    assert (hist.steps["lr"] == 0.5).all()


def test_divergence_is_reported_with_its_step(moons):
    split = split_data(moons)
    hist = train(_model(split, activation="relu"), split, TrainConfig(optimizer="sgd", lr=1e6, max_steps=200))
    assert hist.diverged_at is not None and hist.diverged_at < 200
    last = hist.steps.iloc[-1]
    assert last["step"] == hist.diverged_at
    loss = hist.steps["loss"].to_numpy()
    # Diverged: past 10x the start loss or not a number, and nothing before it was.
    assert not (math.isfinite(last["loss"]) and last["loss"] <= 10 * loss[0])
    assert (np.isfinite(loss[:-1]) & (loss[:-1] <= 10 * loss[0])).all()
    assert f"step {hist.diverged_at}" in hist.divergence_message()


def test_scaler_fitted_on_training_split_only(moons):
    split = split_data(moons, scaler="standard", seed=0)
    from sklearn.model_selection import train_test_split

    X_tr, X_va, _, _ = train_test_split(moons.X, moons.y, test_size=0.2, random_state=0, stratify=moons.y)
    np.testing.assert_allclose(split.scaler.mean_, X_tr.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-6)
    # Changing the validation rows must not move the fitted statistics.
    X_mod = moons.X.copy()
    val_rows = np.array([i for i, row in enumerate(moons.X) if any((row == v).all() for v in X_va)])
    X_mod[val_rows] += 1000.0
    from dataclasses import replace

    split2 = split_data(replace(moons, X=X_mod), scaler="standard", seed=0)
    np.testing.assert_allclose(split2.scaler.mean_, split.scaler.mean_, rtol=1e-7)
    np.testing.assert_allclose(split2.scaler.scale_, split.scaler.scale_, rtol=1e-7)


def test_stratified_split_keeps_class_shares():
    data = load_builtin("iris")
    split = split_data(data, val_fraction=0.2, seed=0)
    assert np.bincount(split.y_val).tolist() == [10, 10, 10]


def test_regression_metric_is_sklearn_r2():
    data = load_builtin("diabetes")
    split = split_data(data, seed=0)
    model = _model(split, hidden=(16,))
    hist = train(model, split, TrainConfig(epochs=20, lr=0.01))
    assert hist.metric == "R^2"
    with torch.no_grad():
        pred = model(torch.as_tensor(split.X_val))[:, 0].numpy()
    assert hist.epochs["val_metric"].iloc[-1] == pytest.approx(r2_score(split.y_val, pred), rel=1e-6)
    assert abs(split.y_train.mean()) < 1e-5 and split.y_train.std() == pytest.approx(1, rel=1e-4)


def test_losses_match_their_formulas():
    out = torch.tensor([[2.0, -1.0], [0.5, 0.25]])
    y = torch.tensor([0, 1])
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.softmax(out, dim=1)
    assert float(make_loss("softmax_mse", "classification", 2)(out, y)) == pytest.approx(
        float(((p - onehot) ** 2).sum(1).mean()), rel=1e-6)
    assert float(make_loss("mse", "classification", 2)(out, y)) == pytest.approx(
        float(((out - onehot) ** 2).sum(1).mean()), rel=1e-6)
    assert float(make_loss("auto", "classification", 2)(out, y)) == pytest.approx(
        float(-torch.log(p[[0, 1], [0, 1]]).mean()), rel=1e-6)


def test_grad_cosine_and_snapshots(moons):
    split = split_data(moons)
    cfg = TrainConfig(optimizer="sgd", lr=0.1, max_steps=10, record_grad_cosine=True, snapshot_every=5)
    model = _model(split)
    hist = train(model, split, cfg)
    assert math.isnan(hist.steps["grad_cos"].iloc[0])
    assert hist.steps["grad_cos"].iloc[1:].between(-1 - 1e-9, 1 + 1e-9).all()
    assert sorted(hist.snapshots) == [0, 5]
    assert hist.final_params.shape == (sum(p.numel() for p in model.parameters()),)


def test_evaluate_restores_mode_and_batch_norm_uses_running_stats(moons):
    split = split_data(moons)
    model = _model(split, batch_norm=True)
    train(model, split, TrainConfig(epochs=3, batch_size=16))
    model.train()
    loss_fn = make_loss("auto", "classification", 2)
    evaluate(model, split.X_val, split.y_val, "classification", loss_fn)
    assert model.training
    # A single row cannot be normalized by its own batch statistics; eval mode must still work.
    loss, acc = evaluate(model, split.X_val[:1], split.y_val[:1], "classification", loss_fn)
    assert math.isfinite(loss)


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(epochs=0), dict(batch_size=10_000), dict(optimizer="lion"),
                                 dict(scaler="log"), dict(max_steps=0)])
def test_impossible_configs_are_rejected_with_a_sentence(moons, bad):
    split = split_data(moons)
    with pytest.raises(ValueError, match=r"\w+ \w+"):
        train(_model(split), split, TrainConfig(**bad))


def test_metric_value_matches_sklearn():
    from sklearn.metrics import accuracy_score

    from core.train import metric_value

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    out = rng.normal(size=(300, 4))
    assert metric_value("classification", y, out) == pytest.approx(accuracy_score(y, out.argmax(1)), abs=1e-12)
    yr = rng.normal(size=300).astype(np.float32)
    pred = (yr + rng.normal(scale=0.5, size=300)).astype(np.float32)[:, None]
    assert metric_value("regression", yr, pred) == pytest.approx(r2_score(yr, pred[:, 0]), rel=1e-6)


def test_eval_every_thins_the_epoch_table_but_keeps_the_last(moons):
    split = split_data(moons)
    every = train(_model(split), split, TrainConfig(optimizer="sgd", lr=0.1, max_steps=25))
    thinned = train(_model(split), split, TrainConfig(optimizer="sgd", lr=0.1, max_steps=25, eval_every=10))
    assert every.epochs["epoch"].tolist() == list(range(1, 26))
    assert thinned.epochs["epoch"].tolist() == [10, 20, 25]
    # Same training either way: evaluation never touches the weights.
    np.testing.assert_array_equal(every.steps["loss"], thinned.steps["loss"])
    np.testing.assert_allclose(thinned.epochs.set_index("epoch")["val_loss"],
                               every.epochs.set_index("epoch").loc[[10, 20, 25], "val_loss"], rtol=1e-6)


def test_a_finite_blow_up_is_reported_with_its_step(moons):
    # tanh saturates, so lr 100 on cross-entropy never reaches NaN: the loss just jumps.
    split = split_data(moons)
    hist = train(_model(split), split, TrainConfig(optimizer="sgd", lr=100.0, max_steps=30))
    loss = hist.steps["loss"].to_numpy()
    assert np.isfinite(loss).all()  # never NaN, yet it diverged
    step = hist.diverged_at
    assert step is not None and hist.blowup_at() == step
    assert loss[step] > 10 * loss[0] and (loss[:step] <= 10 * loss[0]).all()
    assert len(loss) == step + 1  # the run stops at the divergent step
    assert f"step {step}" in hist.divergence_message()
    calm = train(_model(split), split, TrainConfig(optimizer="adam", lr=0.01, max_steps=30))
    assert calm.blowup_at() is None and calm.divergence_message() is None


def test_one_unlucky_minibatch_is_not_a_divergence():
    # Regression with batch 1: single-row squared errors vary by orders of magnitude (a 4-sigma
    # row alone costs ~16x the mean), yet a calm rate must not be called diverged.
    from core.data import load_builtin

    data = load_builtin("scaled_regression", seed=0)
    split = split_data(data)
    hist = train(_model(split), split, TrainConfig(optimizer="sgd", lr=1e-3, batch_size=1, max_steps=400))
    loss = hist.steps["loss"].to_numpy()
    assert loss.max() > 10 * loss[0] or loss.max() > 10 * np.median(loss)  # the noise is really there
    assert hist.diverged_at is None


def test_minibatch_blow_up_is_caught():
    from core.data import load_builtin

    split = split_data(load_builtin("moons", seed=0))
    hist = train(_model(split, activation="relu"), split,
                 TrainConfig(optimizer="sgd", lr=1e4, batch_size=8, max_steps=300))
    assert hist.diverged_at is not None and hist.diverged_at < 300


def test_auto_device_takes_a_gpu_only_for_big_work(monkeypatch):
    import torch

    from core.train import AUTO_CUDA_MIN_WORK, available_devices, pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "cuda" in available_devices()
    # The default lab model (a few hundred parameters, a few hundred rows) stays on the CPU...
    assert pick_device("auto", n_params=354, rows_per_step=320).type == "cpu"
    # ...a 784-64-64-10 MLP at batch 1,000 (5.5e7 parameter-rows) goes to the GPU.
    assert 55_050 * 1000 >= AUTO_CUDA_MIN_WORK and pick_device("auto", 55_050, 1000).type == "cuda"
    assert pick_device("cpu", 55_050, 1000).type == "cpu"


def test_an_absent_device_is_refused_with_a_sentence(monkeypatch):
    import torch

    from core.train import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="not available on this machine"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="Unknown device"):
        pick_device("tpu")
    assert pick_device("auto", 10**9, 10**6).type in ("cpu", "mps")


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not __import__("torch").cuda.is_available(),
                                                                   reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_training_and_the_kit_run_on_each_device_and_agree_with_the_cpu(device, moons):
    # issue 13: every core path device-correct; results come back as CPU numbers.
    from core.lab import LabSetup
    from core.runs import prepare_split, run_model

    setup = LabSetup(device=device)
    split = prepare_split(moons, setup)
    cfg = TrainConfig(optimizer="sgd", lr=0.5, max_steps=30, device=device)
    rec = run_model(split, setup, cfg, key="x")
    assert rec.device.startswith(device)
    ref = run_model(split, LabSetup(device="cpu"), TrainConfig(optimizer="sgd", lr=0.5, max_steps=30, device="cpu"),
                    key="x")
    np.testing.assert_allclose(rec.history.steps["loss"], ref.history.steps["loss"], rtol=1e-4, atol=1e-6)
    assert isinstance(rec.end.val_loss, float) and abs(rec.end.val_loss - ref.end.val_loss) < 1e-4


@pytest.mark.parametrize("device", DEVICES)
def test_a_diagnosis_on_each_device_returns_numpy(device):
    from core.data import load_builtin
    from core.diagnoses import loss_function
    from core.lab import LabSetup

    res = loss_function.run(load_builtin("moons", n_samples=120), LabSetup(device=device),
                            loss_function.Config(steps=20, seeds=1))
    assert res.trained and res.curves["loss"].dtype.kind == "f"
    assert not any(type(v).__module__.startswith("torch") for v in res.summary.iloc[0].to_dict().values())
