"""Feature scaling and batch normalization (lecture 5.2): the page's four experiments.

Each experiment is its own diagnosis module with `run(data, setup, config, on_progress)`, so the
page caches and reruns them separately:

1. `scaling_surface`: the exact error surface of a two-feature linear regression, raw against
   standardized inputs (condition number, closed-form gradient-descent steps to a target).
2. `scaling_lab`: the lab model with each scikit-learn scaler and with batch norm on raw inputs,
   across seeds.
3. `bn_curvature`: why lambda_max is larger with batch norm, and the largest rate plain gradient
   descent survives with and without it.
4. `batch_norm`: where batch norm sits, its learned gamma and beta, its test-time statistics
   checked against the momentum rule, and what a tiny batch does to it.

`run` here does all four and returns one `Result`, for callers that want the whole page at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.data import Dataset
from core.diagnoses import Progress, Verdict, no_progress, sub_progress
from core.diagnoses import batch_norm, bn_curvature, scaling_lab, scaling_surface
from core.lab import LabSetup


@dataclass(frozen=True)
class Config:
    """The page's default run: the four experiments' configs."""

    surface: scaling_surface.Config = scaling_surface.Config()
    lab: scaling_lab.Config = scaling_lab.Config()
    curvature: bn_curvature.Config = bn_curvature.Config()
    batch_norm: batch_norm.Config = batch_norm.Config()


@dataclass
class Result:
    """The four experiments; the verdict is the lab's input-scaling verdict (about the lab data)."""

    surface: scaling_surface.Result
    lab: scaling_lab.Result
    curvature: bn_curvature.Result
    batch_norm: batch_norm.Result
    verdict: Verdict


def run(data: Dataset, setup: LabSetup, config: Config = Config(), on_progress: Progress | None = None) -> Result:
    """Run the four experiments of the page."""
    on_progress = on_progress or no_progress
    surface = scaling_surface.run(data, setup, config.surface, sub_progress(on_progress, 0.0, 0.02))
    lab = scaling_lab.run(data, setup, config.lab, sub_progress(on_progress, 0.02, 0.5))
    curvature = bn_curvature.run(data, setup, config.curvature, sub_progress(on_progress, 0.5, 0.75))
    bn = batch_norm.run(data, setup, config.batch_norm, sub_progress(on_progress, 0.75, 1.0))
    return Result(surface, lab, curvature, bn, lab.verdict)
