"""The registry of diagnoses: which page runs which core modules, in the lecture's order.

A diagnosis is one entry here plus, named after its `key`, one page `app_pages/<key>.py`, one chart
module `core/charts/<key>.py` and one test file `tests/test_<key>.py`; its `modules` are the
`core.diagnoses` modules the page runs (each with `run(data, setup, config, on_progress=None)`).
`ui/pages.py` builds the app's navigation from this tuple, and tests/test_registry.py checks that
every file it names exists and that no diagnosis module is left out.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    """One page of diagnoses: its key, sidebar title and icon, its home-page card line, the lecture
    section it follows, and the core.diagnoses modules it runs."""

    key: str
    title: str
    icon: str
    description: str
    lecture: str
    modules: tuple[str, ...]


REGISTRY: tuple[Diagnosis, ...] = (
    Diagnosis("run_log", "Your training run", ":material/monitoring:",
              "Upload your trainer's logs (Hugging Face, Lightning, TensorBoard, W&B, CSV): stalls, divergence, "
              "spikes, schedule, train vs eval.", "2-3 on your own logs", ("run_log",)),
    Diagnosis("stall", "Gradient stall", ":material/trending_flat:",
              "The loss stopped falling: is the gradient ~0 (saddle point or minimum) or is the step bouncing?",
              "2.1 Critical points", ("stall", "minimum_ratio")),
    Diagnosis("saddle", "Saddle escape", ":material/downhill_skiing:",
              "Race plain GD, a negative-curvature step, noise, momentum and Adam away from the same saddle.",
              "2.2 Escaping saddle points", ("saddle", "local_minimum")),
    Diagnosis("learning_rate", "Learning rate", ":material/speed:",
              "Preview warmup, decay and cyclic schedules, compare adaptive optimizers, find a rate that works.",
              "3 Adaptive learning rates",
              ("learning_rate", "lr_range", "lr_schedules", "lr_preview", "lr_surfaces", "lr_burst", "lr_optimizers")),
    Diagnosis("batch_size", "Batch size", ":material/stacks:",
              "Small vs large batches: time per epoch, accuracy, and the sharpness of the minimum reached.",
              "4 Batch and momentum", ("batch_size",)),
    Diagnosis("lr_batch_grid", "Rate × batch grid", ":material/grid_on:",
              "A learning-rate × batch-size grid over seeds: best rate per batch, linear vs square-root scaling, "
              "divergence, critical batch size.", "4 with 3: scaling rules", ("lr_batch_grid",)),
    Diagnosis("scaling", "Feature scaling", ":material/straighten:",
              "Raw vs standardized inputs: the error surface's conditioning, and what batch norm does.",
              "5.2 Feature normalization", ("scaling", "scaling_surface", "scaling_lab", "bn_curvature", "batch_norm")),
    Diagnosis("loss_function", "Loss function", ":material/functions:",
              "MSE vs cross-entropy for classification: why MSE stalls where the model is confidently wrong.",
              "5.1 Classification loss", ("loss_function", "class_codes")),
)
