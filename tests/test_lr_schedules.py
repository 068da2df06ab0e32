"""Schedule preview (pure math, torch's twins) and training with schedules (seeded comparisons)."""
import math

import numpy as np
import pytest
import torch

from core.diagnoses import lr_preview, lr_schedules
from core.diagnoses.words import divergence_sentence, num
from core.lab import LabSetup, load_data
from core.models import build_mlp
from core.schedules import lr_at
from core.train import TrainConfig, split_data, train

SETUP = LabSetup()


@pytest.fixture(scope="module")
def moons():
    return load_data(SETUP.data, SETUP.seed)


# ----------------------------------------------------------------------------- preview


def test_preview_numbers_match_lr_at_and_its_code_builds_the_same_scheduler():
    cfg = lr_preview.Config(schedules=(("warmup_cosine", (("warmup_steps", 30),)), ("cyclic", ())),
                            total_steps=300, base_lr=0.05, at_steps=(0, 29, 30, 299, 500))
    r = lr_preview.run(None, SETUP, cfg)
    row = r.table.set_index("schedule").loc["warmup_cosine"]
    for k in (0, 29, 30, 299):
        assert row[f"step {k}"] == pytest.approx(lr_at("warmup_cosine", k, 300, 0.05, warmup_steps=30), rel=1e-12)
    assert "step 500" not in r.table  # past the run: dropped
    assert set(r.points["step"]) == {0, 29, 30, 299}
    for name in ("warmup_cosine", "cyclic"):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
        scope = {"optimizer": opt}
        exec(r.code[name], scope)  # "copy as PyTorch code" really builds the schedule
        got = []
        for _ in range(300):
            got.append(scope["scheduler"].get_last_lr()[0])
            opt.step()
            scope["scheduler"].step()
        want = r.frame[r.frame["schedule"] == name]["lr"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_a_long_preview_is_thinned_for_the_chart_but_read_exactly():
    r = lr_preview.run(None, SETUP, lr_preview.Config(schedules=(("step", ()),), total_steps=100_000,
                                                      at_steps=(0, 12_345, 99_999)))
    assert len(r.frame) <= lr_preview.SHOWN_POINTS + 5
    assert r.table.loc[0, "step 12345"] == pytest.approx(lr_at("step", 12_345, 100_000, 0.1), rel=1e-12)
    assert {0, 12_345, 99_999} <= set(r.frame["step"])


def test_preview_rejects_bad_input():
    with pytest.raises(ValueError, match="outside the run"):
        lr_preview.parse_steps("0, 1000", 1000)
    with pytest.raises(ValueError, match="whole numbers"):
        lr_preview.parse_steps("ten", 1000)
    with pytest.raises(ValueError, match="at least one schedule"):
        lr_preview.run(None, SETUP, lr_preview.Config(schedules=()))
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_preview.run(None, SETUP, lr_preview.Config(schedules=(("warmup_cosine", (("warmup_steps", 5000),)),)))


# ----------------------------------------------------------------------------- training with schedules


def _fresh_tail(data, lr, seed, schedule=None, steps=60, optimizer="adam"):
    split = split_data(data, "standard", 0.2, SETUP.seed)
    model = build_mlp(SETUP.model, split.n_features, split.n_outputs, seed=seed)
    h = train(model, split, TrainConfig(optimizer=optimizer, lr=lr, max_steps=steps, batch_size=32, seed=seed,
                                        schedule=schedule))
    loss = h.steps["loss"].to_numpy()
    return float(loss[-math.ceil(0.2 * len(loss)):].mean()), h


def test_runs_match_core_train_and_use_the_schedule(moons):
    r = lr_schedules.run(moons, SETUP, lr_schedules.Config(lr=0.02, steps=60, schedules=(("cosine", ()),), seeds=2))
    assert [g.key for g in r.groups] == ["constant", "cosine"]
    for g in r.groups:
        for seed, tail in zip(g.seeds, g.tail):
            ref, h = _fresh_tail(moons, 0.02, seed, None if g.key == "constant" else "cosine")
            assert tail == pytest.approx(ref, rel=1e-6)
    used = r.rates[r.rates["run"] == "cosine"]
    np.testing.assert_allclose(used["lr"], [lr_at("cosine", k, 60, 0.02) for k in used["step"]], rtol=1e-12, atol=1e-18)
    _, h = _fresh_tail(moons, 0.02, 0, "cosine")
    np.testing.assert_allclose(h.steps["lr"].to_numpy()[used["step"]], used["lr"], rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.01), ("adam", 0.05), ("sgd", 0.5)])
def test_words_agree_with_the_numbers(moons, optimizer, lr):
    r = lr_schedules.run(moons, SETUP, lr_schedules.Config(optimizer=optimizer, lr=lr, steps=150,
                                                           schedules=(("warmup_cosine", ()), ("cosine", ()),
                                                                      ("step", ()))))
    groups = {g.key: g for g in r.groups}
    names = lr_schedules.labels(r)
    for key, comp in r.comparisons.items():
        if comp.winner is not None:
            w, l = comp.winner, comp.loser
            assert groups[w].mean < groups[l].mean
            assert f"{names[w]} trained better: {num(groups[w].mean)} vs {num(groups[l].mean)}".lower() in \
                r.verdict.text.lower()
    for key, comp in r.rivals.items():  # the best-mean winner against each other schedule
        assert comp.a == r.choice.key and comp.b == key
        if comp.winner is not None:
            assert groups[comp.winner].mean < groups[comp.loser].mean
    if r.choice.kind == "schedule":  # named only when it beat the constant rate and every other schedule
        assert r.comparisons[r.choice.key].winner == r.choice.key
        assert all(c.winner == r.choice.key for c in r.rivals.values())
        assert f"{names[r.choice.key]} is the schedule to use" in r.verdict.text
    elif r.choice.kind == "tied":  # beat the constant rate, but not every other schedule: no single best
        assert r.comparisons[r.choice.key].winner == r.choice.key
        assert r.choice.tied and all(r.rivals[k].winner is None for k in r.choice.tied)
        assert "is the schedule to use" not in r.verdict.text and "No single schedule is best" in r.verdict.text
    else:
        assert all(c.winner != k for k, c in r.comparisons.items())
        assert "No schedule trained clearly better" in r.verdict.text


def test_a_rate_of_100_is_reported_by_the_core_divergence_rule(moons):
    r = lr_schedules.run(moons, SETUP, lr_schedules.Config(lr=100.0, steps=30, schedules=(), seeds=1))
    g = r.groups[0]
    _, h = _fresh_tail(moons, 100.0, 0, steps=30)
    assert h.diverged_at is not None and g.first_divergence.step == h.diverged_at  # core.train's rule
    assert divergence_sentence(h.divergence, "The constant rate") in r.verdict.text
    assert r.verdict.kind == "problem" and r.choice.kind == "none"
    assert int(r.summary.loc[0, "first_diverged_at"]) == h.diverged_at


def test_regression_data_and_a_tiny_csv_train(moons):
    from core.lab import DataSpec
    setup = LabSetup(data=DataSpec(builtin="diabetes"))
    r = lr_schedules.run(load_data(setup.data, 0), setup, lr_schedules.Config(lr=0.01, steps=30, seeds=1,
                                                                               schedules=(("step", ()),)))
    assert np.isfinite(r.summary["tail_train_loss"]).all()
    csv = ("a,b,y\n" + "".join(f"{i % 5},{(i * 7) % 3},{i % 2}\n" for i in range(14))).encode()
    tiny = LabSetup(data=DataSpec(builtin=None, csv_bytes=csv, csv_name="tiny.csv"))
    r = lr_schedules.run(load_data(tiny.data, 0), tiny, lr_schedules.Config(steps=20, seeds=1, schedules=()))
    assert len(r.groups) == 1 and r.groups[0].stable


def test_config_errors_are_sentences(moons):
    with pytest.raises(ValueError, match="positive"):
        lr_schedules.run(moons, SETUP, lr_schedules.Config(lr=-1.0))
    with pytest.raises(ValueError, match="batch size"):
        lr_schedules.run(moons, SETUP, lr_schedules.Config(batch_size=0))
    with pytest.raises(ValueError, match="Unknown schedule"):
        lr_schedules.run(moons, SETUP, lr_schedules.Config(schedules=(("nope", ()),)))
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_schedules.run(moons, SETUP, lr_schedules.Config(steps=10, schedules=(("warmup_cosine", (("warmup_steps", 50),)),)))
    with pytest.raises(ValueError, match=r"about \d+ s"):
        lr_schedules.run(moons, SETUP, lr_schedules.Config(steps=5000, seeds=10))


# ----------------------------------------------------------------------------- review findings (round 2)


def _group(key, tails):
    from core.diagnoses._kits import lr as kit
    import pandas as pd
    return kit.RunGroup(key, 0.01, tuple(range(len(tails))), tuple(tails), (0.003,) * len(tails), tuple(tails),
                        (None,) * len(tails), pd.DataFrame(), (0.7,) * len(tails))


def test_two_schedules_that_tie_are_not_ranked():
    """Review finding 4 (a regression CSV): cosine 0.2631 +- 0.0059 and warmup + cosine 0.2656 +-
    0.0044 both beat the constant rate (0.278) but were never compared with each other, and the page
    said "Cosine is the schedule to use". Welch's t-test (scipy) on the same samples: p >> 0.05."""
    from scipy import stats
    from core.diagnoses._kits import lr as kit

    cos, warm, const = [0.2631 - 0.0059, 0.2631, 0.2631 + 0.0059], [0.2656 - 0.0044, 0.2656, 0.2656 + 0.0044], \
        [0.278 - 0.002, 0.278, 0.278 + 0.002]
    assert stats.ttest_ind(cos, warm, equal_var=False).pvalue > 0.3  # a tie by the reference test
    groups = [_group("constant", const), _group("warmup_cosine", warm), _group("cosine", cos)]
    comps = {g.key: kit.compare_groups(g, groups[0]) for g in groups[1:]}
    assert all(c.winner == k for k, c in comps.items())  # both beat the constant rate
    rivals = {"warmup_cosine": kit.compare_groups(groups[2], groups[1])}
    choice = lr_schedules.choose(groups, comps, rivals)
    assert choice == lr_schedules.ScheduleChoice("tied", "cosine", ("warmup_cosine",))
    # a clear best is still named
    groups[1] = _group("warmup_cosine", [0.2656 + 0.02 + d for d in (-0.001, 0, 0.001)])
    rivals = {"warmup_cosine": kit.compare_groups(groups[2], groups[1])}
    assert lr_schedules.choose(groups, comps, rivals).kind == "schedule"


def test_a_small_lead_reads_as_a_percentage_not_1x():
    """Review finding 4: "0.266 vs 0.278 ... (1x lower)". (0.278 - 0.266) / 0.278 = 4.3%."""
    from core.diagnoses._kits import lr as kit
    from core.findings import compare

    c = compare("tail_train_loss", "warmup_cosine", [0.265, 0.266, 0.267], "constant", [0.277, 0.278, 0.279],
                higher_is_better=False)
    text = kit.comparison_text(c, {"warmup_cosine": "warmup + cosine", "constant": "the constant rate"})
    assert "(4.3% lower)" in text and "1x" not in text and text.startswith("Warmup + cosine trained better: 0.266")
    c = compare("tail_train_loss", "a", [0.05, 0.051, 0.049], "b", [0.6, 0.61, 0.59], higher_is_better=False)
    assert "(12x lower)" in kit.comparison_text(c, {"a": "a", "b": "b"})  # 0.6 / 0.05


def test_one_seed_schedules_speak_of_this_one_run(moons):
    r = lr_schedules.run(moons, SETUP, lr_schedules.Config(lr=0.05, steps=120, seeds=1))
    text = r.verdict.text
    assert "run-to-run" not in text and "mean of" not in text and ", one seed." in text
    assert ": The" not in text and "each): " not in text  # no capital after a colon (review finding 5)
    if any(c.winner for c in [*r.comparisons.values(), *r.rivals.values()]):
        assert "In this one run" in text and "luck" in text and r.verdict.kind != "good"
