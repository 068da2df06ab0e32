"""Training logs in: the formats real trainers write, read by their own libraries.

`load_log(source)` reads one file and returns a `TrainingLog` whose `steps` DataFrame has a `step`
column and whichever of `loss`, `grad_norm`, `lr` and `eval_loss` it found, plus every other
numeric series under its own name. Formats (detected from the content, not the file name):

- Hugging Face `trainer_state.json`: `log_history` entries, train and eval rows merged by step
  (the end-of-training summary row, whose `train_loss` is a mean over the run, is left out);
- TensorBoard event files (`events.out.tfevents.*`), read with the `tensorboard` package's event
  loader (scalars written as simple values, and TF2-style scalar tensors);
- TensorBoard scalar CSV exports (`Wall time,Step,Value`; the tag comes from TensorBoard's file
  name `run-<run>-tag-<tag>.csv`, and `load_logs` joins the exports of one run into one log);
- Weights & Biases CSV exports: a panel export (`Step`, `<run> - <metric>`, `__MIN`/`__MAX`
  columns; one log per run) or a run-history export (`_step`, `_runtime`, metrics);
- Lightning `CSVLogger` `metrics.csv` (`epoch`, `step`, `train_loss_step`, `val_loss`, ...);
- any CSV with a step column and loss-like columns.

Column and tag names are matched after normalising (lower case, `/ - . space` -> `_`):
`train/loss`, `Loss/train`, `train_loss_step` all read as the training loss. A `mapping`
(canonical name -> the file's own name) overrides the guess. Bad input raises
`core.data.DataError` with a sentence fit to show a user; a file with numbers but no loss-like
series raises `MissingLoss`, which carries the series found so a page can offer to pick one.

>>> log = load_log(b"step,train/loss,lr\\n0,2.5,0.1\\n1,2.0,0.1\\n")
>>> log.format, list(log.steps.columns), log.mapping["loss"]
('csv', ['step', 'loss', 'lr'], 'train/loss')
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pathlib
import re
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from core.data import DataError

MAX_BYTES = 50 * 1024 * 1024  # the same cap as the app's uploads (server.maxUploadSize = 50 MB)
CANONICAL = ("loss", "grad_norm", "lr", "eval_loss")
LABELS = {"loss": "training loss", "grad_norm": "gradient norm", "lr": "learning rate",
          "eval_loss": "evaluation loss"}
FORMATS = {
    "trainer_state": "Hugging Face trainer_state.json",
    "tensorboard": "TensorBoard event file",
    "tensorboard_csv": "TensorBoard scalar CSV export",
    "wandb_csv": "Weights & Biases CSV export",
    "lightning_csv": "Lightning metrics.csv",
    "csv": "CSV",
}

# Candidate names per canonical series, in order of preference, after _norm(). The first present
# wins; a per-step series beats an epoch average (Lightning's train_loss_step vs _epoch).
_CANDIDATES = {
    "loss": ["loss", "train_loss", "training_loss", "train_loss_step", "loss_step", "loss_train",
             "train_batch_loss", "batch_loss", "train_loss_epoch", "loss_epoch", "trainer_loss"],
    "grad_norm": ["grad_norm", "train_grad_norm", "gradient_norm", "grad_norm_total", "total_grad_norm",
                  "grad_2_0_norm_total", "grad_l2_norm", "gradnorm", "grad_norm_2", "train_gradient_norm"],
    "lr": ["learning_rate", "lr", "train_learning_rate", "train_lr", "lr_0", "learning_rate_0"],
    "eval_loss": ["eval_loss", "val_loss", "validation_loss", "valid_loss", "val_loss_epoch", "loss_val",
                  "loss_validation", "eval_loss_epoch", "val_loss_step"],
}
# Lightning's LearningRateMonitor writes lr-Adam, lr-AdamW/pg1, ...
_LR_PATTERN = re.compile(r"^(train_)?(lr|learning_rate)_[a-z]+[a-z0-9_]*$")
_STEP_NAMES = ["step", "global_step", "train_global_step", "trainer_global_step", "_step", "iteration",
               "iter", "steps", "train_step"]
# Columns a trainer writes on every row of a step (train and eval rows alike): not metrics, so
# sharing them is no sign of a step logged twice.
_BOOKKEEPING = {"epoch", "runtime", "timestamp", "wall_time", "global_step", "trainer_global_step"}
_TB_EXPORT = re.compile(r"^run[-_](?P<run>.*)[-_]tag[-_](?P<tag>.+)\.csv$", re.IGNORECASE)
_WANDB_PANEL = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<agg>__MIN|__MAX)?$")
_HELD_OUT = re.compile(r"(^|_)(eval|val|valid|validation|test)(_|$)")


class MissingLoss(DataError):
    """A log with numbers but no series that reads as the training loss.

    `columns` lists the numeric series found, so the page can ask which one is the loss.
    """

    def __init__(self, message: str, columns: Sequence[str]):
        super().__init__(message)
        self.columns = tuple(columns)


@dataclass(eq=False)
class RawLog:
    """One run as read from a file, before any series is mapped: original names, numbers only."""

    name: str  # the run's name (file name, or the run named inside a W&B / TensorBoard export)
    format: str  # a key of FORMATS
    series: pd.DataFrame  # step (int64, sorted, unique) + numeric series under their own names
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""  # digest of the source bytes and run: a cache key
    meta: dict = field(default_factory=dict)  # e.g. {"max_steps": 1000} from a trainer_state.json
    # series -> rows where it was logged, for series not logged on every row. A NaN on such a row
    # was logged as NaN (a divergence); elsewhere it only means "not logged at this step".
    present: dict = field(default_factory=dict)


@dataclass(eq=False)
class TrainingLog:
    """A training log ready for diagnosis.

    `steps` has `step` (int64, increasing) and whichever of CANONICAL were found, then every other
    numeric series under its own name. `mapping` says which of the file's names each canonical
    series came from; `series_names` lists all of the file's numeric series (for re-mapping).
    """

    name: str
    format: str
    steps: pd.DataFrame
    notes: list[str]
    mapping: dict[str, str]
    series_names: tuple[str, ...]
    fingerprint: str = ""
    meta: dict = field(default_factory=dict)
    present: dict = field(default_factory=dict)  # column -> bool rows where logged (see RawLog)

    def logged(self, column: str) -> np.ndarray:
        """Rows of `steps` where `column` was logged (NaN included): all rows unless some lack it."""
        mask = self.present.get(column)
        return np.ones(len(self.steps), bool) if mask is None else mask

    @property
    def format_label(self) -> str:
        """The format in words: 'Hugging Face trainer_state.json'."""
        return FORMATS.get(self.format, self.format)


# --------------------------------------------------------------------------- public entry points
def load_log(source, name: str | None = None, mapping: Mapping[str, str] | None = None,
             on_progress: Callable[[float, str], None] | None = None) -> TrainingLog:
    """Read one training log (a path, bytes, or a file-like object with `.name`).

    `mapping` maps canonical names (CANONICAL) to the file's own series names; an empty string
    means "none". A file holding several runs (a W&B panel export) gives its first run, with a
    note naming the others; `load_logs` gives them all.
    """
    raws = read_source(source, name, on_progress)
    log = to_training_log(raws[0], mapping)
    if len(raws) > 1:
        others = ", ".join(repr(r.name) for r in raws[1:])
        log.notes.append(f"The file holds {len(raws)} runs; this is {raws[0].name!r} (also: {others}).")
    return log


def load_logs(files: Iterable, mappings: Mapping[str, Mapping[str, str]] | None = None
              ) -> tuple[list[TrainingLog], list[tuple[str, str]]]:
    """Read several uploads into runs: (logs, problems).

    Each item of `files` is a source as for load_log, or a (name, bytes) pair. TensorBoard CSV
    exports of the same run (one file per tag) are joined into one log; a W&B panel export with
    several runs gives one log each. `mappings` maps a run name to its mapping. A file that
    cannot be read never stops the others: it gives a (file or run name, message) problem.
    """
    raws, problems = [], []
    for item in files:
        src, nm = (item[1], item[0]) if isinstance(item, tuple) else (item, None)
        try:
            raws.extend(read_source(src, nm))
        except DataError as exc:
            problems.append((nm or _source_name(src), str(exc)))
    logs = []
    for raw in combine(raws):
        try:
            logs.append(to_training_log(raw, (mappings or {}).get(raw.name)))
        except DataError as exc:
            problems.append((raw.name, str(exc)))
    return logs, problems


def read_source(source, name: str | None = None,
                on_progress: Callable[[float, str], None] | None = None) -> list[RawLog]:
    """The run(s) a file holds, with their series under the file's own names (DataError if bad)."""
    raw, shown = _read_bytes(source, name)
    digest = hashlib.sha1(raw).hexdigest()
    if not raw.strip():
        raise DataError(f"The file {shown!r} is empty.")
    binary = b"\x00" in raw[:4096]
    if "tfevents" in shown.lower() or binary:
        runs = [_read_events(raw, shown, on_progress)]
    else:
        text, encoding = _decode(raw)
        head = text.lstrip()[:1]
        if head in ("{", "[") or shown.lower().endswith(".json"):
            runs = [_read_trainer_state(text, shown)]
        else:
            runs = _read_csv(raw, text, encoding, shown)
    for r in runs:
        r.fingerprint = hashlib.sha1(f"{digest}:{r.name}".encode()).hexdigest()
    return runs


def combine(raws: Sequence[RawLog]) -> list[RawLog]:
    """Join TensorBoard CSV exports of one run (one file per tag) into one RawLog; others pass."""
    out: list[RawLog] = []
    groups: dict[str, list[RawLog]] = {}
    for r in raws:
        if r.format == "tensorboard_csv":
            if r.name not in groups:
                groups[r.name] = []
                out.append(r)  # placeholder keeps the upload order
            groups[r.name].append(r)
        else:
            out.append(r)
    for i, r in enumerate(out):
        parts = groups.get(r.name) if r.format == "tensorboard_csv" else None
        if parts and len(parts) > 1:
            frame = parts[0].series
            for p in parts[1:]:
                clash = [c for c in p.series.columns if c != "step" and c in frame.columns]
                frame = frame.merge(p.series.drop(columns=clash), on="step", how="outer")
            frame = frame.sort_values("step", ignore_index=True)
            tags = ", ".join(repr(c) for c in frame.columns if c != "step")
            notes = [n for p in parts for n in p.notes]
            notes.append(f"Joined {len(parts)} TensorBoard CSV exports of run {r.name!r} by step ({tags}).")
            fp = hashlib.sha1("".join(sorted(p.fingerprint for p in parts)).encode()).hexdigest()
            present = {}
            for p in parts:  # where each file logged its tag (a NaN it logged stays a logged NaN)
                for c in p.series.columns:
                    if c == "step" or c in present:
                        continue
                    mask = p.present.get(c, np.ones(len(p.series), bool))
                    present[c] = np.isin(frame["step"].to_numpy(), p.series["step"].to_numpy()[mask])
            present = {c: m for c, m in present.items() if not m.all()}
            out[i] = RawLog(r.name, r.format, frame, notes, fp, {}, present)
    return out


def to_training_log(raw: RawLog, mapping: Mapping[str, str] | None = None) -> TrainingLog:
    """Map a RawLog's series onto CANONICAL names (auto-detected unless `mapping` says).

    Raises MissingLoss when nothing reads as the training loss.
    """
    series = [c for c in raw.series.columns if c != "step"]
    mapping = dict(mapping or {})
    unknown = [v for k, v in mapping.items() if v and v not in series]
    if unknown:
        raise DataError(f"The log {raw.name!r} has no series {unknown[0]!r}; it has: {_names(series)}.")
    chosen: dict[str, str] = {}
    taken: set[str] = set()
    for canon in CANONICAL:
        if canon in mapping:
            if mapping[canon]:
                chosen[canon] = mapping[canon]
                taken.add(mapping[canon])
            continue
        found = _guess(canon, [c for c in series if c not in taken and c not in mapping.values()])
        if found is not None:
            chosen[canon] = found
            taken.add(found)
    if "loss" not in chosen:
        raise MissingLoss(
            f"No training-loss series in {raw.name!r}: it has {_names(series) or 'no numeric series'}. "
            "Name the loss column loss (or train_loss, train/loss), or pick it under 'Columns'.", series)
    frame = raw.series
    data = {"step": frame["step"].to_numpy()}
    present = {}
    for canon in CANONICAL:
        if canon in chosen:
            data[canon] = frame[chosen[canon]].to_numpy(dtype=float)
            if chosen[canon] in raw.present:
                present[canon] = raw.present[chosen[canon]]
    for c in series:
        if c not in taken:
            key = c if c not in data else f"{c} (unmapped)"
            data[key] = frame[c].to_numpy(dtype=float)
            if c in raw.present:
                present[key] = raw.present[c]
    steps = pd.DataFrame(data)
    # Rows where no chosen series has a value (another tag's steps) stay: eval rows, lr rows.
    notes = list(raw.notes)
    read = [f"{c!r} as the {LABELS[k]}" for k, c in chosen.items() if c != k]
    if read:
        notes.append("Read " + ", ".join(read) + ".")
    if "grad_norm" not in chosen:
        notes.append("No gradient norm logged: a plateau cannot be told apart as a critical point or an "
                     "oscillation. Log it (the Hugging Face Trainer does by default; in your own loop, "
                     "core.probe.Probe or torch.nn.utils.clip_grad_norm_'s return value).")
    if "lr" not in chosen:
        notes.append("No learning rate logged: the schedule cannot be read back.")
    return TrainingLog(raw.name, raw.format, steps, notes, chosen, tuple(series), raw.fingerprint,
                       dict(raw.meta), present)


# --------------------------------------------------------------------------- name matching
def _norm(name: str) -> str:
    """'Train/Loss' -> 'train_loss'; 'grad_2.0_norm_total' -> 'grad_2_0_norm_total'."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def _guess(canon: str, names: Sequence[str]) -> str | None:
    """The best name for a canonical series among `names`, or None."""
    normed = {n: _norm(n) for n in names}
    for cand in _CANDIDATES[canon]:
        for n, m in normed.items():
            if m == cand:
                return n
    if canon == "lr":
        return next((n for n, m in normed.items() if _LR_PATTERN.match(m)), None)
    if canon == "loss":  # a name holding "loss" that is not held-out: "my_loss", "nll_loss"
        return next((n for n, m in normed.items() if "loss" in m and not _HELD_OUT.search(m)), None)
    if canon == "eval_loss":
        return next((n for n, m in normed.items() if "loss" in m and _HELD_OUT.search(m)
                     and not re.search(r"(^|_)test(_|$)", m)), None)
    return None


def _names(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(str(n)) for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --------------------------------------------------------------------------- bytes and text
def _source_name(source) -> str:
    if isinstance(source, (str, pathlib.Path)) and "\n" not in str(source):
        return pathlib.Path(source).name
    return pathlib.PurePath(str(getattr(source, "name", "") or "uploaded log")).name


def _read_bytes(source, name: str | None) -> tuple[bytes, str]:
    """The raw bytes of `source` (at most MAX_BYTES) and a display name for it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, shown = bytes(source), "uploaded log"
    elif isinstance(source, (str, pathlib.Path)):
        path = pathlib.Path(source)
        shown = path.name
        try:
            if path.stat().st_size > MAX_BYTES:
                raise DataError(_too_big(name or shown, path.stat().st_size))
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"Could not open the file {shown!r}: {exc.strerror or exc}.") from None
    elif hasattr(source, "getvalue") or hasattr(source, "read"):
        shown = pathlib.PurePath(str(getattr(source, "name", "") or "uploaded log")).name
        raw = source.getvalue() if hasattr(source, "getvalue") else source.read()
        raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    else:
        raise DataError("Expected a file, a path or bytes to read the log from.")
    shown = name or shown
    if len(raw) > MAX_BYTES:
        raise DataError(_too_big(shown, len(raw)))
    return raw, shown


def _too_big(name: str, size: int) -> str:
    return (f"The file {name!r} is {size / 2**20:.0f} MB; logs up to {MAX_BYTES // 2**20} MB are read. "
            "Log less often, or export every n-th step.")


def _decode(raw: bytes) -> tuple[str, str]:
    """The text and the encoding that read it (UTF-8, else Latin-1, which reads any bytes)."""
    try:
        return raw.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


# --------------------------------------------------------------------------- trainer_state.json
def _read_trainer_state(text: str, name: str) -> RawLog:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        hint = " The file looks cut short." if exc.pos >= len(text.rstrip()) - 1 else ""
        raise DataError(f"The file {name!r} is not valid JSON ({exc.msg} at {where}).{hint}") from None
    notes: list[str] = []
    if isinstance(obj, dict) and isinstance(obj.get("log_history"), list):
        history = obj["log_history"]
    elif isinstance(obj, list) and obj and all(isinstance(e, dict) for e in obj):
        history = obj
        notes.append("Read the JSON list as a Hugging Face log_history.")
    else:
        keys = ", ".join(repr(k) for k in list(obj)[:8]) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"The JSON file {name!r} is not a Hugging Face trainer_state.json: it has no "
                        f"'log_history' list (it has {keys}).")
    entries = [e for e in history if isinstance(e, dict)]
    summary = [e for e in entries if "train_runtime" in e]
    entries = [e for e in entries if "train_runtime" not in e]
    if summary:
        notes.append("Left out the end-of-training summary row (its train_loss is a mean over the whole run).")
    if not entries:
        raise DataError(f"The trainer state {name!r} has an empty log_history: nothing was logged "
                        "(set logging_steps and train for at least that many steps).")
    # A NaN the trainer logged must stay apart from a key the entry lacks (both NaN in a frame).
    entries = [{k: ("nan" if isinstance(v, float) and v != v else v) for k, v in e.items()} for e in entries]
    frame = pd.DataFrame.from_records(entries)
    if "step" not in frame.columns:
        raise DataError(f"The log_history of {name!r} has no 'step' field.")
    meta = {k: obj[k] for k in ("max_steps", "logging_steps", "global_step")
            if isinstance(obj, dict) and isinstance(obj.get(k), (int, float)) and not isinstance(obj.get(k), bool)}
    return _raw(name, "trainer_state", frame, "step", name, notes, meta=meta)


# --------------------------------------------------------------------------- CSV
def _read_csv(raw: bytes, text: str, encoding: str, name: str) -> list[RawLog]:
    first = text.lstrip().split("\n", 1)[0]
    sep = max(",;\t", key=first.count)
    try:
        frame = pd.read_csv(io.BytesIO(raw), sep=sep, encoding=encoding, low_memory=False,
                            keep_default_na=False, na_values=[""])  # "nan" = logged NaN; "" = not logged
    except pd.errors.EmptyDataError:
        raise DataError(f"The file {name!r} is empty.") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"Could not read {name!r} as a CSV table: {str(exc).strip()[:200]}") from None
    if frame.shape[1] < 2 and sep == "," and first.count(",") == 0:
        raise DataError(f"{name!r} is not a log this page reads: no JSON, no TensorBoard events, and no "
                        "CSV with a step column and a loss column.")
    if not len(frame):
        raise DataError(f"The table {name!r} has column names but no rows.")
    cols = [str(c) for c in frame.columns]
    frame.columns = cols
    notes: list[str] = []
    if cols == ["Wall time", "Step", "Value"]:
        m = _TB_EXPORT.match(name)
        run, tag = (m["run"] or name, m["tag"]) if m else (pathlib.PurePath(name).stem, pathlib.PurePath(name).stem)
        frame = frame[["Step", "Value"]].rename(columns={"Value": tag})
        return [_raw(run, "tensorboard_csv", frame, "Step", name, notes)]
    panel = [c for c in cols if _WANDB_PANEL.match(c) and c.lower() != "step"]
    if panel and any(c.lower() == "step" for c in cols) and len(panel) == len(cols) - 1:
        return _split_wandb_panel(frame, name)
    fmt = "csv"
    if "_step" in cols or "_runtime" in cols or "_timestamp" in cols:
        fmt = "wandb_csv"
    elif _is_lightning(frame, cols):
        fmt = "lightning_csv"
    step = _find_step(cols, fmt)
    if step is None:
        frame = frame.assign(step=np.arange(len(frame)))
        step = "step"
        notes.append("No step column: the row number is used as the step.")
    return [_raw(name, fmt, frame, step, name, notes)]


def _is_lightning(frame: pd.DataFrame, cols: Sequence[str]) -> bool:
    """Lightning CSVLogger's metrics.csv: 'epoch' and 'step' columns plus metric columns, either
    named *_step / *_epoch or left blank on the rows where they were not logged (train rows
    lack val_loss, validation rows lack train_loss)."""
    if "epoch" not in cols or "step" not in cols:
        return False
    metrics = [c for c in cols if c not in ("epoch", "step")]
    if any(re.search(r"_(step|epoch)$", c) for c in metrics):
        return True
    blank = frame[metrics].isna().to_numpy()
    # two metrics logged on different rows: some row has one and lacks the other
    return len(metrics) >= 2 and bool((blank.any(axis=1) & ~blank.all(axis=1)).any())


def _find_step(cols: Sequence[str], fmt: str) -> str | None:
    normed = {c: _norm(c) for c in cols}
    order = list(_STEP_NAMES)
    if fmt == "wandb_csv":  # W&B's _step counts log calls; a trainer's own step is better
        order = ["train_global_step", "trainer_global_step", "global_step", "step", "_step"]
    for cand in order:
        for c, m in normed.items():
            if m == cand.strip("_") and (cand != "_step" or c == "_step"):
                return c
    return next((c for c in cols if c == "_step"), None)


def _split_wandb_panel(frame: pd.DataFrame, name: str) -> list[RawLog]:
    step = next(c for c in frame.columns if c.lower() == "step")
    runs: dict[str, dict[str, str]] = {}
    dropped = 0
    for c in frame.columns:
        if c == step:
            continue
        m = _WANDB_PANEL.match(c)
        if m["agg"]:
            dropped += 1
            continue
        runs.setdefault(m["run"], {})[c] = m["metric"]
    out = []
    for run, cols in runs.items():
        notes = [f"W&B panel export {name!r}: run {run!r}."]
        if dropped:
            notes.append("Left out the __MIN / __MAX columns (W&B's bucket extremes of the same series).")
        part = frame[[step, *cols]].rename(columns=cols).dropna(subset=list(cols.values()), how="all")
        out.append(_raw(run, "wandb_csv", part, step, name, notes))
    return out


def _raw(run: str, fmt: str, frame: pd.DataFrame, step: str, name: str, notes: list[str],
         present: dict | None = None, meta: dict | None = None) -> RawLog:
    """A RawLog of `frame`'s numeric columns by `step` (see _numeric_frame)."""
    series, present = _numeric_frame(frame, step, name, notes, present)
    return RawLog(run, fmt, series, notes, meta=meta or {}, present=present)


def _numeric_frame(frame: pd.DataFrame, step: str, name: str, notes: list[str],
                   present: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """(step (int64, sorted, one row per step) + every column holding numbers as float64, presence).

    A cell is logged unless it is missing (a blank CSV cell, a key an entry lacks, a tag with no
    event at that step); `present` may say so per column, else missing = NaN in `frame`. The
    presence masks come back only for columns missing somewhere.
    """
    steps = pd.to_numeric(frame[step], errors="coerce")
    keep = np.isfinite(steps.to_numpy(dtype=float, na_value=np.nan))
    if not keep.any():
        raise DataError(f"The step column {step!r} of {name!r} holds no numbers.")
    if not keep.all():
        notes.append(f"Left out {int((~keep).sum()):,} rows without a step.")
    steps = steps[keep].to_numpy(dtype=float)
    if np.any(steps != np.round(steps)):
        raise DataError(f"The step column {step!r} of {name!r} holds fractions; steps are whole numbers.")
    data = {"step": steps.astype(np.int64)}
    logged = {}
    skipped = []
    for c in frame.columns:
        if c == step or str(c) == "step":
            continue
        col = frame[c][keep]
        there = present[c][keep] if present and c in present else col.notna().to_numpy()
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        values = (col if numeric else pd.to_numeric(col, errors="coerce")).to_numpy(dtype=float, na_value=np.nan)
        if np.isnan(values).all():  # no number at all: text, or a series logged only as NaN
            if not there.any():
                continue
            texts = col[there].astype(str).str.strip().str.lower()
            if not texts.isin(["nan", "-nan", "+nan"]).all():
                skipped.append(str(c))
                continue
        data[str(c)] = values
        if not there.all():
            logged[str(c)] = there
    if skipped:
        notes.append(f"Left out columns without numbers: {_names(skipped)}.")
    if len(data) < 2:
        raise MissingLoss(f"The log {name!r} has steps but no numeric series.", [])
    out = pd.DataFrame(data)
    flags = pd.DataFrame({c: m for c, m in logged.items()}) if logged else None
    if not out["step"].is_monotonic_increasing:
        order = np.argsort(out["step"].to_numpy(), kind="stable")
        out = out.iloc[order].reset_index(drop=True)
        flags = flags.iloc[order].reset_index(drop=True) if flags is not None else None
    if not out["step"].is_unique:
        # Train and eval rows of one step (Lightning, Hugging Face) merge; a value logged twice at
        # one step (a resumed run re-logging it) keeps the last one. Only a metric logged in more
        # than one row of a step counts as logged twice: the epoch rides along on every row.
        key = out["step"]
        metrics = [c for c in out.columns if c != "step" and _norm(c) not in _BOOKKEEPING]
        there = pd.DataFrame({c: flags[c].to_numpy() if flags is not None and c in flags else np.ones(len(out), bool)
                              for c in metrics}, index=out.index)
        twice = int((there.groupby(key.to_numpy()).sum() > 1).any(axis=1).sum()) if metrics else 0
        out = out.groupby("step", sort=True).last().reset_index()
        if flags is not None:
            flags = flags.groupby(key.to_numpy(), sort=True).max().reset_index(drop=True)
        if twice:
            notes.append(f"{twice:,} steps were logged more than once (a resumed run?): the last value is used.")
    masks = {c: flags[c].to_numpy(dtype=bool) for c in flags.columns} if flags is not None else {}
    masks = {c: m for c, m in masks.items() if not m.all()}
    return out, masks


# --------------------------------------------------------------------------- TensorBoard
def _read_events(raw: bytes, name: str, on_progress=None) -> RawLog:
    """Scalars of a TensorBoard event file, through tensorboard's own event loader."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    steps: dict[str, dict[int, float]] = {}
    scalar_tags: set[str] = set()
    n_events = 0
    # The loader reads from a path: give it a private copy with the name it expects.
    with tempfile.TemporaryDirectory(prefix="trainscope-events-") as tmp:
        path = os.path.join(tmp, "events.out.tfevents.upload")
        with open(path, "wb") as fh:
            fh.write(raw)
        approx = max(1, len(raw) // 50)  # scalar events are ~50 bytes: a progress estimate
        for event in event_file_loader.LegacyEventFileLoader(path).Load():
            n_events += 1
            if on_progress is not None and n_events % 20000 == 0:
                on_progress(min(0.99, n_events / approx), f"read {n_events:,} events")
            for value in event.summary.value:
                tag = value.tag
                if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                    if value.metadata.plugin_data.plugin_name == "scalars":
                        scalar_tags.add(tag)
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    x = float(value.simple_value)
                elif kind == "tensor" and tag in scalar_tags:
                    arr = tensor_util.make_ndarray(value.tensor)
                    if arr.size != 1:
                        continue
                    x = float(arr.reshape(-1)[0])
                else:
                    continue
                steps.setdefault(tag, {})[int(event.step)] = x  # a step written twice keeps the last
    if n_events == 0:
        raise DataError(f"{name!r} is not a TensorBoard event file: no event could be read from it.")
    if not steps:
        raise DataError(f"The TensorBoard event file {name!r} holds no scalars (only {n_events:,} other "
                        "events: graphs, histograms or images).")
    frames = [pd.Series(v, name=tag, dtype=float) for tag, v in steps.items()]
    frame = pd.concat(frames, axis=1, sort=True)
    index = frame.index.to_numpy()
    present = {tag: np.isin(index, np.fromiter(v.keys(), np.int64, len(v))) for tag, v in steps.items()}
    frame.index.name = "step"
    frame = frame.reset_index()
    notes = [f"Read {len(steps)} scalar tag(s) from {n_events:,} events."]
    return _raw(name, "tensorboard", frame, "step", name, notes, present)
