"""Log what the 'Your training run' page needs from any PyTorch loop, as TensorBoard scalars.

Five lines in your own loop:

>>> import torch, tempfile
>>> from core.probe import Probe
>>> model = torch.nn.Linear(3, 1); optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> x, y = torch.randn(32, 3), torch.randn(32, 1)
>>> probe = Probe(model, optimizer, tempfile.mkdtemp(), every=1)
>>> for _ in range(3):
...     loss = torch.nn.functional.mse_loss(model(x), y)
...     optimizer.zero_grad(); loss.backward(); optimizer.step()
...     probe.log(loss)
>>> probe.close()

The probe hooks `optimizer.step()` (torch's step pre/post hooks), so the gradient norm is read
after your backward and before the update, and the update-to-weight ratio of each layer,
|w_after - w_before| / |w_before|, right after it. On every `every`-th update k (k = 0, every,
2 every, ...) it writes, with `torch.utils.tensorboard.SummaryWriter`:

- `train/loss`: the mean of the losses passed to `log` since the last row (Hugging Face's
  Trainer logs the same mean), so a spike between rows still moves it;
- `train/grad_norm`: the global L2 norm of the gradients of update k;
- `train/learning_rate`: the rate update k used (param group 0), the `lr_at(k)` of
  core.schedules;
- `train/update_ratio/<layer>`: per module with parameters, every `ratio_every` updates (100);
- every `curvature_every` updates, `curvature/lambda_min` and `curvature/lambda_max` of the loss
  on a held batch, through `core.curvature.hessian_extremes` (Lanczos on Hessian-vector
  products; the model is not changed, and runs in whatever train/eval mode it is in).

Between rows the probe only adds the loss to a running sum on the loss's own device: no
synchronisation, no copy. Rows reach the event file in batches of FLUSH_ROWS (or every
FLUSH_SECONDS, at once when a value is NaN or infinite, and at `close()`). bench/probe.py prints
the overhead against a bare loop.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn

LOSS_TAG = "train/loss"
GRAD_TAG = "train/grad_norm"
LR_TAG = "train/learning_rate"
RATIO_PREFIX = "train/update_ratio/"
EVAL_TAG = "eval/loss"
LAMBDA_MIN_TAG = "curvature/lambda_min"
LAMBDA_MAX_TAG = "curvature/lambda_max"
FLUSH_ROWS = 100  # rows handed to the SummaryWriter at once (see Probe._flush)
FLUSH_SECONDS = 10.0  # ... or after this long


class Probe:
    """Writes loss, gradient norm, learning rate, update ratios and curvature to TensorBoard.

    `log_dir` is the SummaryWriter's folder (or pass your own `writer`). `every`: write a row
    every this many updates (1 = every update). `ratios`: per-layer update-to-weight ratios, on
    the rows every `ratio_every` updates (each costs a copy of the weights). `curvature_every` > 0 with `held_batch` = (X, y)
    and `loss_fn`: lambda_min / lambda_max of loss_fn(model(X), y) every that many updates.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, log_dir: str | None = None, *,
                 writer=None, every: int = 10, ratios: bool = True, ratio_every: int = 100, curvature_every: int = 0,
                 held_batch: tuple | None = None, loss_fn: Callable | None = None, curvature_tol: float = 1e-3):
        if every < 1:
            raise ValueError("every must be at least 1.")
        if curvature_every and (held_batch is None or loss_fn is None):
            raise ValueError("Curvature needs a held batch (X, y) and the loss function.")
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir)
        self.writer = writer
        self.model, self.optimizer = model, optimizer
        self.every, self.ratios = int(every), bool(ratios)
        # update ratios move slowly and cost a copy of the weights: on every row that is also a
        # multiple of ratio_every (rounded up to whole rows)
        self.ratio_every = self.every * max(1, math.ceil(max(1, int(ratio_every)) / self.every))
        self.curvature_every = int(curvature_every)
        self.held_batch, self.loss_fn, self.curvature_tol = held_batch, loss_fn, curvature_tol
        self.step = 0  # updates done so far; the next update is number `step`
        self._layers = [(name or "model", [p for p in m.parameters(recurse=False) if p.requires_grad])
                        for name, m in model.named_modules()]
        self._layers = [(name, ps) for name, ps in self._layers if ps]
        self._layer_index = torch.tensor([i for i, (_, ps) in enumerate(self._layers) for _ in ps])
        self._loss_sum: torch.Tensor | None = None
        self._loss_count = 0
        self._row: dict[str, torch.Tensor | float] = {}
        self._before: list[torch.Tensor] | None = None  # one buffer per parameter, reused every row
        self._sizes: torch.Tensor | None = None
        self._pending: list[tuple[int, dict[str, float]]] = []
        self._flushed = time.monotonic()
        self._hooks = [optimizer.register_step_pre_hook(self._pre_step),
                       optimizer.register_step_post_hook(self._post_step)]

    # ------------------------------------------------------------------ hooks on optimizer.step()
    def _due(self) -> bool:
        return self.step % self.every == 0

    def _pre_step(self, optimizer, args, kwargs) -> None:
        if "_step" in self._row:  # the last row's log(loss) never came: write it without the loss
            self._write_row()
        if not self._due():
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            # One fused call for all per-tensor norms, then the norm of norms: the global L2 norm.
            self._row[GRAD_TAG] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        self._row[LR_TAG] = float(optimizer.param_groups[0]["lr"])
        if self.ratios and self.step % self.ratio_every == 0:
            params = [p.detach() for _, ps in self._layers for p in ps]
            if self._before is None:
                self._before = [torch.empty_like(p) for p in params]
            torch._foreach_copy_(self._before, params)  # no allocation: the same buffers every row
            self._sizes = torch.stack(torch._foreach_norm(params))

    @torch.no_grad()
    def _post_step(self, optimizer, args, kwargs) -> None:
        if self._due() and self.ratios and self._sizes is not None:
            params = [p.detach() for _, ps in self._layers for p in ps]
            torch._foreach_sub_(self._before, params)  # the buffers now hold -(update)
            moved = torch.stack(torch._foreach_norm(self._before))
            # per layer: sqrt(sum of its tensors' squared norms), for all layers in one scatter-add
            layer = self._layer_index.to(moved.device)
            sums = torch.zeros(2, len(self._layers), dtype=moved.dtype, device=moved.device)
            sums.index_add_(1, layer, torch.stack([moved, self._sizes]) ** 2)
            self._row[RATIO_PREFIX] = sums[0].sqrt() / sums[1].sqrt().clamp_min(1e-30)
            self._sizes = None
        if self._due():
            self._row["_step"] = self.step  # log(loss), called after step(), writes the row
        self.step += 1
        if self.curvature_every and (self.step - 1) % self.curvature_every == 0:
            self._curvature(self.step - 1)

    # ------------------------------------------------------------------ what the user calls
    def log(self, loss: torch.Tensor | float) -> None:
        """Record this update's loss (call once per update, after optimizer.step())."""
        value = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        if self._loss_sum is None:
            self._loss_sum = value.clone().to(torch.float64)
        else:
            self._loss_sum.add_(value)  # on the loss's device: no synchronisation between rows
        self._loss_count += 1
        if "_step" in self._row:
            self._write_row()

    def log_eval(self, loss: float, step: int | None = None) -> None:
        """Write an evaluation loss (default step: the last update)."""
        self._write(max(0, self.step - 1) if step is None else int(step), {EVAL_TAG: float(loss)})

    def close(self) -> None:
        """Write what is pending, remove the hooks and close the writer."""
        if "_step" in self._row:
            self._write_row()
        for h in self._hooks:
            h.remove()
        self._flush()
        self.writer.flush()
        self.writer.close()

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def _write_row(self) -> None:
        step = int(self._row.pop("_step"))
        if self._loss_sum is not None:
            self._row[LOSS_TAG] = self._loss_sum / self._loss_count
            self._loss_sum, self._loss_count = None, 0
        # One transfer for the whole row (one sync on a GPU), and one event holding every value.
        tensors = [v.reshape(-1).double() for v in self._row.values() if isinstance(v, torch.Tensor)]
        flat = torch.cat(tensors).tolist() if tensors else []
        values, i = {}, 0
        for tag, v in self._row.items():
            if not isinstance(v, torch.Tensor):
                values[tag] = float(v)
            elif tag == RATIO_PREFIX:  # one value per layer
                for name, _ in self._layers:
                    values[RATIO_PREFIX + name] = flat[i]
                    i += 1
            else:
                values[tag] = flat[i]
                i += 1
        self._write(step, values)
        self._row = {}

    def _write(self, step: int, values: dict[str, float]) -> None:
        """Queue one row; rows go to the writer in batches (see _flush)."""
        self._pending.append((step, values))
        now = time.monotonic()
        bad = not all(math.isfinite(v) for v in values.values())
        if bad or len(self._pending) >= FLUSH_ROWS or now - self._flushed > FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        """Hand the queued rows to the SummaryWriter, one event per row holding every tag.

        In batches: each hand-over wakes the writer's background thread, whose pure-Python
        checksums then compete with the training loop for the interpreter; one wake-up per
        FLUSH_ROWS rows costs a fraction of one per row. A non-finite value is handed over at once,
        so a run that dies right after diverging still has its last rows on disk.
        """
        pending, self._pending = self._pending, []
        self._flushed = time.monotonic()
        file_writer = getattr(self.writer, "_get_file_writer", None)  # the path add_scalar takes
        if file_writer is None:  # another writer class: one add_scalar per tag
            for step, values in pending:
                for tag, value in values.items():
                    self.writer.add_scalar(tag, value, step)
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        fw = file_writer()
        for step, values in pending:
            fw.add_summary(Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values.items()]), step)

    def _curvature(self, step: int) -> None:
        from core.curvature import hessian_extremes, model_loss

        X, y = self.held_batch
        f, theta = model_loss(self.model, self.loss_fn, X, y)
        ext = hessian_extremes(f, theta, tol=self.curvature_tol)
        if math.isfinite(ext.eig_min) and math.isfinite(ext.eig_max):
            self._write(step, {LAMBDA_MIN_TAG: ext.eig_min, LAMBDA_MAX_TAG: ext.eig_max})
