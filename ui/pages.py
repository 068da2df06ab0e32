"""The app's pages: one entry per diagnosis, in the lecture's order (sections 2 to 5)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    """A page file with its sidebar title, icon and the one line its home-page card shows."""

    path: str
    title: str
    icon: str
    description: str
    lecture: str  # the lecture section it follows


DIAGNOSES = (
    PageInfo("app_pages/run_log.py", "Your training run", ":material/monitoring:", "Upload your trainer's logs (Hugging Face, Lightning, TensorBoard, W&B, CSV): stalls, divergence, spikes, schedule, train vs eval.", "2-3 on your own logs"),
    PageInfo("app_pages/stall.py", "Gradient stall", ":material/trending_flat:",
             "The loss stopped falling: is the gradient ~0 (saddle point or minimum) or is the step bouncing?",
             "2.1 Critical points"),
    PageInfo("app_pages/saddle.py", "Saddle escape", ":material/downhill_skiing:",
             "Race plain GD, a negative-curvature step, noise, momentum and Adam away from the same saddle.",
             "2.2 Escaping saddle points"),
    PageInfo("app_pages/learning_rate.py", "Learning rate", ":material/speed:",
             "Preview warmup, decay and cyclic schedules, compare adaptive optimizers, find a rate that works.",
             "3 Adaptive learning rates"),
    PageInfo("app_pages/batch_size.py", "Batch size", ":material/stacks:",
             "Small vs large batches: time per epoch, accuracy, and the sharpness of the minimum reached.",
             "4 Batch and momentum"),
    PageInfo("app_pages/lr_batch_grid.py", "Rate × batch grid", ":material/grid_on:", "A learning-rate × batch-size grid over seeds: best rate per batch, linear vs square-root scaling, divergence, critical batch size.", "4 with 3: scaling rules"),
    PageInfo("app_pages/scaling.py", "Feature scaling", ":material/straighten:",
             "Raw vs standardized inputs: the error surface's conditioning, and what batch norm does.",
             "5.2 Feature normalization"),
    PageInfo("app_pages/loss_function.py", "Loss function", ":material/functions:",
             "MSE vs cross-entropy for classification: why MSE stalls where the model is confidently wrong.",
             "5.1 Classification loss"),
)
