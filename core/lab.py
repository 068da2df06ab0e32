"""The lab setup every page shares: which data, which model, which seed.

The sidebar builds a `LabSetup`; diagnoses read it. It is frozen and hashable (an uploaded file
is kept as its bytes) so a cached runner can key on it directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from core.data import Dataset, load_builtin, load_csv
from core.models import ModelSpec, build_mlp


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from: a built-in name with its parameters, or an uploaded CSV."""

    builtin: str | None = "moons"  # a core.data.BUILTIN_DATASETS name; None for a CSV
    params: tuple[tuple[str, float], ...] = ()  # built-in parameters as (name, value) pairs
    csv_bytes: bytes | None = field(default=None, repr=False)  # the uploaded file's bytes
    csv_name: str = ""  # the uploaded file's name, for captions and export file names
    target: str | None = None  # target column of a CSV; None = last column
    task: str | None = None  # force "classification" / "regression"; None = infer
    # CSV columns the user chose to leave out (e.g. a column that leaks the target), in file order
    drop_columns: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Short name for captions and file names."""
        return self.builtin if self.builtin is not None else (self.csv_name or "upload")


@dataclass(frozen=True)
class LabSetup:
    """Data, model and seed: the inputs every diagnosis shares."""

    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    seed: int = 0
    device: str = "auto"  # core.train.DEVICES: "auto" takes a GPU only where it is faster (pick_device)

    def describe(self) -> str:
        """One line for captions, e.g. 'moons · MLP 16-16 tanh · seed 0'."""
        device = "" if self.device == "auto" else f" · {self.device}"
        return f"{self.data.label} · {self.model.describe()} · seed {self.seed}{device}"


def load_data(spec: DataSpec, seed: int = 0) -> Dataset:
    """Load the dataset a DataSpec names; raises core.data.DataError with a plain message."""
    if spec.builtin is not None:
        return load_builtin(spec.builtin, seed=seed, **dict(spec.params))
    if spec.csv_bytes is None:
        from core.data import DataError

        raise DataError("No file was uploaded yet.")
    return load_csv(spec.csv_bytes, target=spec.target, task=spec.task, name=spec.csv_name,
                    drop_columns=spec.drop_columns)


def build_model(setup: LabSetup, n_in: int, n_out: int, model: ModelSpec | None = None) -> nn.Module:
    """The setup's MLP for a given input and output width (a diagnosis may override the spec)."""
    return build_mlp(model or setup.model, n_in, n_out, seed=setup.seed)
