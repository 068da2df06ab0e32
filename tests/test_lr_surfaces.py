"""torch's adaptive optimizers racing on a toy surface: steps against a numpy RMSprop written in the
test, the burst test applied honestly, and a legend that lists every run (issue 17)."""
import numpy as np
import pytest
import vl_convert as vlc

from core.charts import learning_rate as charts
from core.diagnoses import lr_surfaces
from core.surfaces import SURFACES


@pytest.fixture(scope="module")
def race():
    return lr_surfaces.run(None, None, lr_surfaces.Config())  # flat_then_steep, RMSprop twins


def _rmsprop_reference(lr, steps, start, alpha=0.99, eps=1e-8):
    """RMSprop as torch documents it, in numpy, on flat_then_steep (closed-form gradient)."""
    w = np.array(start, dtype=float)
    v = np.zeros(2)
    moves = []
    for _ in range(steps):
        d = (w[0] - 1.0) / 0.5
        g = np.array([2 * d / 0.5 / (1 + d**2) ** 2, w[1]])
        v = alpha * v + (1 - alpha) * g**2
        step = lr * g / (np.sqrt(v) + eps)
        w = w - step
        moves.append(np.abs(step))
    return np.array(moves)


def test_rmsprop_steps_match_the_reference_and_its_first_step_is_not_a_burst(race):
    s = race.summary.set_index("run")
    lr = s.loc["rmsprop", "lr"]
    moves = _rmsprop_reference(lr, race.config.steps, SURFACES["flat_then_steep"].start)
    ratio = moves.max(axis=1) / lr
    assert s.loc["rmsprop", "first_step_per_lr"] == pytest.approx(ratio[0], rel=1e-6) == pytest.approx(10, rel=1e-4)
    assert s.loc["rmsprop", "largest_step_per_lr"] == pytest.approx(ratio.max(), rel=1e-6)
    # issue: RMSprop's first large steps were labelled the lecture's burst; the burst test says no
    assert s.loc["rmsprop", "bursts"] == 0 and not [b for b in race.bursts if b.run == "rmsprop"]
    assert "not the lecture's burst" in race.verdict.text
    assert "No run burst by the burst test" in race.verdict.text
    # warmup from 1% of the rate: the first step is 10 x 0.01 = 0.1 of the rate
    assert s.loc["rmsprop_warmup", "first_step_per_lr"] == pytest.approx(0.1, rel=1e-4)


def test_torch_adagrad_never_steps_past_the_rate(race):
    for surface in lr_surfaces.SURFACE_RATES:
        r = lr_surfaces.run(None, None, lr_surfaces.Config(surface=surface, demo_optimizer=""))
        s = r.summary.set_index("run")
        assert s.loc["adagrad", "largest_step_per_lr"] <= 1 + 1e-9
        assert s.loc["adagrad", "bursts"] == 0


def test_default_rates_do_not_diverge_and_the_leader_is_right():
    for surface in lr_surfaces.SURFACE_RATES:
        r = lr_surfaces.run(None, None, lr_surfaces.Config(surface=surface))
        assert r.summary["diverged_at"].isna().all(), surface
        near = r.summary.dropna(subset=["steps_to_near_min"])
        if len(near):
            first = int(near["steps_to_near_min"].min())
            assert f"first (step {first:,})" in r.verdict.text
            for label in near[near["steps_to_near_min"] == first]["label"]:
                assert label in r.verdict.text.split(" got near")[0]


def test_a_divergent_rate_is_reported_by_the_core_rule():
    r = lr_surfaces.run(None, None, lr_surfaces.Config(surface="rosenbrock", rates=(("adagrad", 1.0),),
                                                       demo_optimizer=""))
    s = r.summary.set_index("run")
    # first step of 1 per coordinate from (-1.2, 1): loss 385.6 > 10 x 24.2 (the start)
    assert s.loc["adagrad", "diverged_at"] == 1
    assert "Diverged: Adagrad at step 1" in r.verdict.text and r.verdict.kind == "warning"


def _legend_text_positions(spec: dict, width: int, height: int) -> tuple[float, dict[str, float]]:
    """Render a chart as Streamlit sizes it (autosize fit: legends inside width x height) and return
    the scene's height and the absolute y of every legend text (vl-convert's scenegraph)."""
    spec = {**spec, "autosize": {"type": "fit", "contains": "padding"}, "width": width, "height": height}
    scene = vlc.vegalite_to_scenegraph(spec)
    found: dict[str, float] = {}

    def visit(mark: dict, y0: float, in_legend: bool) -> None:
        in_legend = in_legend or "legend" in str(mark.get("role", ""))
        for item in mark.get("items", []):
            if mark.get("marktype") == "group":
                for sub in item.get("items", []):
                    visit(sub, y0 + item.get("y", 0), in_legend)
            elif mark.get("marktype") == "text" and in_legend:
                found[str(item.get("text"))] = y0 + item.get("y", 0)

    visit(scene["scenegraph"], 0.0, False)
    return float(scene["height"]), found


@pytest.mark.parametrize("height", [300, 420])
def test_surface_map_legend_lists_all_six_runs(race, height):
    """Issue 17: the legend of the surface paths listed 4 of the 6 runs (the rest fell below the
    chart's bottom edge in a half-width column); every run's entry must lie inside the chart."""
    total, texts = _legend_text_positions(charts.surface_map(race).to_dict(), 460, height)
    assert len(race.labels) == 6
    for label in race.labels.values():
        assert label in texts and texts[label] + 6 <= total, (label, texts.get(label), total)


def test_config_errors_are_sentences():
    with pytest.raises(ValueError, match="Unknown optimizer"):
        lr_surfaces.run(None, None, lr_surfaces.Config(rates=(("lbfgs", 0.1),)))
    with pytest.raises(ValueError, match="from 10 to"):
        lr_surfaces.run(None, None, lr_surfaces.Config(steps=5))
    with pytest.raises(ValueError, match="surfaces"):
        lr_surfaces.run(None, None, lr_surfaces.Config(surface="nope"))
