"""Datasets: the `Dataset` container, the built-in sets and CSV loading with validation.

Everything here returns plain numpy / pandas and raises `DataError` with a sentence fit to show a
user. A loaded `Dataset` never holds NaN or inf: CSV rows with missing or infinite values are
dropped (and a note says how many). A CSV is loaded whole; a diagnosis that wants fewer rows
calls `subsample` and states the note it returns.

>>> data = load_builtin("moons", seed=0, n_samples=200)
>>> data.X.shape, data.task, data.class_names
((200, 2), 'classification', ('upper moon', 'lower moon'))
"""
from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import math
import numbers
import pathlib
import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split

TASKS = ("classification", "regression")
MAX_CLASSES = 50  # more distinct target values than this cannot be treated as classes
AUTO_CLASS_LIMIT = 20  # an integer target with at most this many values is taken as classes
MAX_CATEGORIES = 20  # text features with at most this many values are one-hot encoded
MIN_ROWS = 10
MAX_SAMPLES = 100_000  # largest n_samples a built-in generator accepts


class DataError(ValueError):
    """A problem with the data, worded for the user (the UI shows the message as is)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A table ready for training: finite float32 features and a target.

    `y` holds class indices 0..k-1 (int64) for classification and float32 values for regression.
    Arrays are converted to those dtypes on construction; NaN or inf raises DataError.

    >>> d = Dataset(np.zeros((3, 2)), np.array([0, 1, 0]), "classification", ("a", "b"), "t", ("no", "yes"))
    >>> d.n_rows, d.n_features, d.n_classes
    (3, 2, 2)
    """

    X: np.ndarray  # (n, d) float32
    y: np.ndarray  # (n,) int64 class index or float32 value
    task: str  # "classification" or "regression"
    feature_names: tuple[str, ...]
    target_name: str
    class_names: tuple[str, ...] = ()  # empty for regression
    name: str = ""  # "moons", or the uploaded file's name
    notes: tuple[str, ...] = ()  # plain-language loading notes for the user
    # The file column each feature came from ("colour" for "colour=red"); empty: each its own.
    feature_sources: tuple[str, ...] = ()
    # Per feature, the share of the file's rows where its column was empty (those rows were
    # dropped); empty: nothing was missing.
    missing_share: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"The task must be 'classification' or 'regression', not {self.task!r}.")
        X = np.ascontiguousarray(self.X, dtype=np.float32)
        y_dtype = np.int64 if self.task == "classification" else np.float32
        y = np.ascontiguousarray(self.y, dtype=y_dtype)
        if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
            raise DataError(f"Features of shape {X.shape} do not match a target of shape {y.shape}.")
        if len(self.feature_names) != X.shape[1]:
            raise DataError(f"There are {X.shape[1]} feature columns but {len(self.feature_names)} names.")
        # The one guarantee every caller relies on: nothing non-finite reaches training.
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise DataError("The data contains missing or infinite values.")
        if self.task == "classification" and len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
            raise DataError("Class indices must lie between 0 and the number of class names minus one.")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "feature_names", tuple(str(f) for f in self.feature_names))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "notes", tuple(self.notes))
        for field_name in ("feature_sources", "missing_share"):
            value = tuple(getattr(self, field_name))
            if value and len(value) != X.shape[1]:
                raise DataError(f"There are {X.shape[1]} feature columns but {len(value)} {field_name}.")
            object.__setattr__(self, field_name, value)

    @property
    def sources(self) -> tuple[str, ...]:
        """The file column behind each feature (one-hot and date features share theirs).

        >>> load_builtin("moons").sources
        ('x1', 'x2')
        """
        return self.feature_sources or self.feature_names

    @property
    def n_rows(self) -> int:
        """Number of samples."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns (after one-hot encoding)."""
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes; 0 for regression."""
        return len(self.class_names) if self.task == "classification" else 0

    def class_counts(self) -> pd.DataFrame:
        """Rows per class as a DataFrame with columns class, count (empty for regression).

        >>> load_builtin("iris").class_counts()["count"].tolist()
        [50, 50, 50]
        """
        if self.task != "classification":
            return pd.DataFrame({"class": pd.Series([], dtype=str), "count": pd.Series([], dtype=np.int64)})
        counts = np.bincount(self.y, minlength=self.n_classes)
        return pd.DataFrame({"class": list(self.class_names), "count": counts.astype(np.int64)})

    def frame(self) -> pd.DataFrame:
        """Features plus target as one DataFrame, for previews (classes shown by name)."""
        df = pd.DataFrame(self.X, columns=list(self.feature_names))
        target = self.target_name if self.target_name not in df.columns else f"{self.target_name} (target)"
        if self.task == "classification":
            df[target] = np.asarray(self.class_names, dtype=object)[self.y]
        else:
            df[target] = self.y
        return df

    def fingerprint(self) -> str:
        """A short sha1 of X, y and the task: equal data gives an equal key (for caches).

        >>> load_builtin("moons", seed=1).fingerprint() == load_builtin("moons", seed=1).fingerprint()
        True
        """
        h = hashlib.sha1()
        h.update(f"{self.task}|{self.X.shape}|{self.y.dtype}|".encode())
        h.update(self.X.tobytes())
        h.update(self.y.tobytes())
        return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Built-in datasets

BUILTIN_DATASETS = (
    "moons", "circles", "spirals", "xor", "blobs",
    "iris", "wine", "breast_cancer", "digits", "diabetes", "scaled_regression",
)

_TOY = {"n_samples": 400, "noise": 0.2}
BUILTIN_PARAMS: dict[str, dict] = {
    "moons": dict(_TOY),
    "circles": {"n_samples": 400, "noise": 0.1},  # 0.2 would blur the two rings into each other
    "spirals": dict(_TOY),
    "xor": dict(_TOY),
    "blobs": {"n_samples": 400, "n_centers": 3, "noise": 1.0},
    "iris": {},
    "wine": {},
    "breast_cancer": {},
    "digits": {},
    "diabetes": {},
    "scaled_regression": {"n_samples": 400, "noise": 0.1},
}

BUILTIN_DESCRIPTIONS: dict[str, str] = {
    "moons": "Two interleaving half circles in 2-D (classification, 2 classes).",
    "circles": "A small ring inside a large ring in 2-D (classification, 2 classes).",
    "spirals": "Two interleaved spirals in 2-D, hard for small nets (classification, 2 classes).",
    "xor": "Points in a square labelled by the sign of x1*x2 (classification, 2 classes).",
    "blobs": "Gaussian clusters in 2-D, one class per cluster (classification).",
    "iris": "150 iris flowers, 4 measurements, 3 species (classification).",
    "wine": "178 wines, 13 chemical measurements, 3 cultivars (classification).",
    "breast_cancer": "569 tumours, 30 features, malignant or benign (classification).",
    "digits": "1,797 8x8 images of handwritten digits, 64 pixels (classification, 10 classes).",
    "diabetes": "442 patients, 10 features, disease progression after a year (regression).",
    "scaled_regression": "Linear regression with one feature in the thousands and one in "
    "fractions: shows why inputs need scaling (regression).",
}

_BUNDLED = {
    "iris": skdatasets.load_iris,
    "wine": skdatasets.load_wine,
    "breast_cancer": skdatasets.load_breast_cancer,
    "digits": skdatasets.load_digits,
    "diabetes": skdatasets.load_diabetes,
}


def _int_param(name: str, key: str, value, low: int, high: int) -> int:
    # The sidebar may hand over floats (400.0); accept whole numbers of any numeric type.
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or int(value) != value or not low <= int(value) <= high:
        raise DataError(f"{key} for '{name}' must be a whole number between {low:,} and {high:,}, "
                        f"not {value!r}.")
    return int(value)


def _check_params(name: str, params: dict) -> dict:
    """Defaults merged with `params`, validated; raises DataError for unknown or bad values."""
    defaults = BUILTIN_PARAMS[name]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) if defaults else "none"
        raise DataError(f"The dataset '{name}' has no parameter {', '.join(unknown)} (it takes: {allowed}).")
    p = {**defaults, **params}
    if "n_samples" in p:
        p["n_samples"] = _int_param(name, "n_samples", p["n_samples"], MIN_ROWS, MAX_SAMPLES)
    if "n_centers" in p:
        p["n_centers"] = _int_param(name, "n_centers", p["n_centers"], 2, 10)
    if "noise" in p:
        noise = p["noise"]
        ok = isinstance(noise, numbers.Real) and not isinstance(noise, bool) and math.isfinite(noise)
        if not ok or noise < 0:
            raise DataError(f"noise for '{name}' must be a number of zero or more, not {noise!r}.")
        p["noise"] = float(noise)
    return p


def _spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat([0, 1], [n // 2, n - n // 2])
    # Arc length of an Archimedean spiral grows like theta^2, so sqrt spreads points evenly along it.
    theta = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3 * np.pi + 0.5  # 1.5 turns
    r = theta / np.pi  # arms of the two spirals lie 1 apart, so noise is in units of that gap
    angle = theta + np.pi * labels
    X = np.column_stack([r * np.cos(angle), r * np.sin(angle)]) + noise * rng.standard_normal((n, 2))
    perm = rng.permutation(n)
    return X[perm], labels[perm]


def _xor(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    clean = rng.uniform(-1.0, 1.0, (n, 2))
    labels = (clean[:, 0] * clean[:, 1] > 0).astype(np.int64)  # 1 where x1 and x2 share a sign
    # Labels come from the clean points; the jitter pushes some across the axes.
    return clean + noise * rng.standard_normal((n, 2)), labels


def _scaled_regression(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x1 = rng.uniform(1000.0, 5000.0, n)  # std ~1155
    x2 = rng.uniform(0.0, 0.4, n)  # std ~0.115: a 1e4 ratio
    # Both terms have std ~0.58, so each feature explains about half the target's variance.
    y = 5e-4 * (x1 - 3000.0) + 5.0 * (x2 - 0.2) + noise * rng.standard_normal(n)
    return np.column_stack([x1, x2]), y


def load_builtin(name: str, seed: int = 0, **params) -> Dataset:
    """Load a built-in dataset by name; synthetic ones are regenerated from `seed`.

    `params` override `BUILTIN_PARAMS[name]` (n_samples, noise, n_centers). The bundled
    scikit-learn sets ignore the seed. Raises DataError for an unknown name or a bad parameter.

    >>> d = load_builtin("blobs", seed=3, n_centers=4)
    >>> d.n_classes, d.X.dtype
    (4, dtype('float32'))
    """
    if name not in BUILTIN_DATASETS:
        raise DataError(f"There is no built-in dataset called '{name}'. "
                        f"Choose one of: {', '.join(BUILTIN_DATASETS)}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise DataError(f"The seed must be a whole number between 0 and 2**32 - 1, not {seed!r}.")
    seed = int(seed)
    p = _check_params(name, params)
    xy = ("x1", "x2")

    if name in _BUNDLED:
        bunch = _BUNDLED[name]()
        if name == "diabetes":
            return Dataset(bunch.data, bunch.target, "regression", tuple(bunch.feature_names), "progression",
                           (), name)
        return Dataset(bunch.data, bunch.target, "classification", tuple(bunch.feature_names), "class",
                       tuple(str(c) for c in bunch.target_names), name)

    n, noise = p["n_samples"], p["noise"]
    rng = np.random.default_rng(seed)
    if name == "moons":
        X, y = skdatasets.make_moons(n, noise=noise, random_state=seed)
        return Dataset(X, y, "classification", xy, "moon", ("upper moon", "lower moon"), name)
    if name == "circles":
        X, y = skdatasets.make_circles(n, noise=noise, factor=0.5, random_state=seed)
        return Dataset(X, y, "classification", xy, "ring", ("outer ring", "inner ring"), name)
    if name == "blobs":
        k = p["n_centers"]
        X, y = skdatasets.make_blobs(n, n_features=2, centers=k, cluster_std=noise, random_state=seed)
        return Dataset(X, y, "classification", xy, "blob", tuple(f"blob {i}" for i in range(k)), name)
    if name == "spirals":
        X, y = _spirals(n, noise, rng)
        return Dataset(X, y, "classification", xy, "spiral", ("spiral A", "spiral B"), name)
    if name == "xor":
        X, y = _xor(n, noise, rng)
        return Dataset(X, y, "classification", xy, "quadrant", ("opposite signs", "same sign"), name)
    X, y = _scaled_regression(n, noise, rng)
    return Dataset(X, y, "regression", ("x1_thousands", "x2_fractions"), "y", (), name)


# ---------------------------------------------------------------------------------------------
# CSV loading

_DELIMITERS = ",;\t"
_DELIMITER_WORDS = {",": "comma", ";": "semicolon", "\t": "tab"}
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*(,\d+)?$")  # "1,5" or "12": numbers written with a decimal comma


def _read_bytes(source) -> tuple[bytes, str]:
    """The raw bytes of `source` and a display name for it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "uploaded.csv"
    if isinstance(source, str) and "\n" in source:
        return source.encode("utf-8"), "uploaded.csv"  # CSV text itself: no path holds a newline
    if isinstance(source, (str, pathlib.Path)):
        path = pathlib.Path(source)
        try:
            return path.read_bytes(), path.name
        except (OSError, ValueError) as exc:
            shown = str(path) if len(str(path)) <= 80 else str(path)[:77] + "..."
            reason = getattr(exc, "strerror", None) or str(exc)
            raise DataError(f"Could not open the file '{shown}': {reason}.") from None
    name = str(getattr(source, "name", "") or "uploaded.csv")
    if hasattr(source, "getvalue"):  # Streamlit's UploadedFile, BytesIO
        raw = source.getvalue()
    elif hasattr(source, "read"):
        raw = source.read()
    else:
        raise DataError("Expected a file, a path or bytes to read the table from.")
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return bytes(raw), pathlib.PurePath(name).name or "uploaded.csv"


def _decode(raw: bytes) -> tuple[str, str, list[str]]:
    """The first 64 KiB of a CSV's text, the encoding pandas should read it with, and notes.

    UTF-8 (BOM skipped), UTF-16 with a BOM, or Latin-1 as a fallback. The whole file is checked,
    but only a sample is kept: the parser reads the bytes itself, so a 50 MB upload is not held
    a second time as a str.
    """
    notes: list[str] = []
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")[:65536], "utf-16", notes
        except UnicodeDecodeError:
            raise DataError("The file claims to be UTF-16 text but cannot be decoded.") from None
    encoding = "utf-8"
    if raw.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    if not raw[:1 << 16].strip() and not raw.strip():
        raise DataError("The file is empty.")
    if b"\x00" in raw:
        raise DataError("This looks like a binary file, not a CSV text table.")
    if not raw.isascii():  # isascii() costs nothing; a full decode only for non-ASCII files
        try:
            raw.decode(encoding)
        except UnicodeDecodeError:
            encoding = "latin-1"  # never fails: every byte is a character
            notes.append("The file is not valid UTF-8, so it was read as Latin-1.")
    # 256 KiB of bytes hold at least 64 KiB of characters in any of these encodings.
    sample = raw[:1 << 18].decode(encoding, errors="ignore")[:65536]
    control = sum(1 for ch in sample if (ch < " " and ch not in "\t\r\n") or "\x7f" <= ch < "\xa0")
    if control > 0.01 * len(sample):
        raise DataError("This looks like a binary file, not a CSV text table.")
    return sample, encoding, notes


def _sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: csv.Sniffer first, then counting delimiters per line."""
    lines = [ln for ln in text[:20000].splitlines() if ln.strip()][:30]
    if not lines:
        raise DataError("The file is empty.")
    if len(lines) > 1 and len(text) > 20000:
        lines = lines[:-1]  # the sample may have cut the last line in half
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
        if found in lines[0]:
            return found
    except csv.Error:
        pass
    best, best_score = ",", (0.0, 0)
    for d in _DELIMITERS:
        counts = [ln.count(d) for ln in lines]
        if counts[0] == 0:
            continue
        score = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if score > best_score:
            best, best_score = d, score
    return best


def _name_repeats(df: pd.DataFrame, text: str, delimiter: str, notes: list[str]) -> None:
    """Columns that share a name in the header: pandas renames the repeats 'a.1', which reads like
    another column of the file. Take the header's own names back (`_unique_names` numbers the
    repeats 'a_2') and say so."""
    first = text.split("\n", 1)[0].rstrip("\r")
    header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter), [])]
    named = [h for h in header if h]
    repeated = list(dict.fromkeys(h for h in named if named.count(h) > 1))
    if not repeated or len(header) != df.shape[1]:
        return
    df.columns = [h if h else c for h, c in zip(header, df.columns)]  # an empty name keeps pandas' 'Unnamed: k'
    example = repeated[0]
    notes.append(f"Several columns share a name ({_names(repeated)}): the later ones are numbered, "
                 f"e.g. the second '{example}' is '{example}_2'.")


def _unique_names(names) -> list[str]:
    """Column names as stripped strings, made unique by numbering repeats."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in names:
        base = str(raw).strip() or "column"
        name, i = base, 2
        while name in seen:
            name, i = f"{base}_{i}", i + 1
        seen.add(name)
        out.append(name)
    return out


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _first_line_is_data(text: str, delimiter: str) -> bool:
    """True when every cell of the first line is a number: a file without a header row."""
    first = next((ln for ln in text[:20000].splitlines() if ln.strip()), "")
    cells = [c.strip() for c in next(csv.reader([first], delimiter=delimiter), [])]
    return len(cells) >= 2 and all(c and _is_number(c) for c in cells)


def _parse(source, nrows: int | None = None) -> tuple[pd.DataFrame, str, list[str], str]:
    """DataFrame, display name, notes and delimiter; every failure becomes a DataError."""
    raw, name = _read_bytes(source)
    text, encoding, notes = _decode(raw)
    delimiter = _sniff_delimiter(text)
    headerless = _first_line_is_data(text, delimiter)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            # index_col=False: a trailing delimiter on every row must not turn column 1 into an index.
            # BytesIO shares the upload's buffer: no copy of the file is made to parse it.
            df = pd.read_csv(
                io.BytesIO(raw), encoding=encoding, sep=delimiter, engine="c", skipinitialspace=True,
                index_col=False,
                na_values=["?"], low_memory=False, nrows=nrows, header=None if headerless else "infer",
            )
    except pd.errors.EmptyDataError:
        raise DataError("The file has no columns to read.") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().split("\n")[-1].removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"The file could not be read as a {_DELIMITER_WORDS[delimiter]}-separated "
                        f"table: {detail.rstrip('.')}.") from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        notes.append("Some rows have more fields than the header; the extra fields were ignored.")
    if not headerless:
        _name_repeats(df, text, delimiter, notes)
    # A delimiter at the end of every line makes an empty column without a name: not data.
    blank = [c for c in df.columns if (headerless or str(c).startswith("Unnamed:")) and df[c].isna().all()]
    if blank and len(df) and len(blank) < df.shape[1]:
        df = df.drop(columns=blank)
        notes.append(f"Ignored {len(blank)} empty column{'s' if len(blank) > 1 else ''} without a name.")
    if df.shape[1] < 2:
        raise DataError("The file has only one column; a table needs at least one feature column and "
                        "a target column, separated by commas, semicolons or tabs.")
    if len(df) == 0:
        raise DataError("The file has a header but no data rows.")
    if headerless:
        df.columns = [f"column_{i + 1}" for i in range(df.shape[1])]
        notes.append(f"The first line holds numbers, not column names, so the columns are named "
                     f"column_1 to column_{df.shape[1]}.")
    df.columns = _unique_names(df.columns)
    return df, name, notes, delimiter


def _user_errors(fn):
    """Turn any exception escaping `fn` into a DataError: the UI shows a sentence, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - pandas and csv raise many kinds
            raise DataError(f"The file could not be read as a table ({type(exc).__name__}: {exc}).") from None
    return wrapper


@_user_errors
def read_csv_table(source) -> pd.DataFrame:
    """Read a CSV into a DataFrame, columns as pandas parsed them; raises DataError.

    `source` is bytes, a path (str or pathlib.Path), CSV text (a str holding a newline) or a
    binary file-like (Streamlit's UploadedFile). The delimiter (comma, semicolon, tab) and the
    encoding (UTF-8 with or without BOM, UTF-16 with BOM, Latin-1) are detected; the first line
    is the header unless it holds only numbers.

    >>> read_csv_table(b"a;b\\n1;2\\n3;4\\n").shape
    (2, 2)
    """
    return _parse(source)[0]


@_user_errors
def csv_columns(source) -> list[str]:
    """Column names of a CSV, for picking the target (parses only the first rows).

    >>> csv_columns(b"x,y,label\\n1,2,a\\n")
    ['x', 'y', 'label']
    """
    return list(_parse(source, nrows=50)[0].columns)


def _names(cols) -> str:
    return ", ".join(f"'{c}'" for c in cols)


# Ways to read text cells as numbers. Each applies to a column only when every distinct value fits
# its pattern and converts, so a column of names or codes is never half-converted.
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")  # 1,250,000 or 52,300.50
_DOT_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")  # 1.250.000 or 52.300,50
_TIME = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")  # 14:30 or 14:30:05
_DATES = (  # (pattern, day-first) for the date formats that are read as dates
    (re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$"), False),
    (re.compile(r"^\d{4}/\d{1,2}/\d{1,2}( \d{1,2}:\d{2}(:\d{2})?)?$"), False),
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}( \d{1,2}:\d{2}(:\d{2})?( ?[AaPp][Mm])?)?$"), None),  # 3/15 or 15/3
    (re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}( \d{1,2}:\d{2}(:\d{2})?)?$"), True),
)


def _number_readings(decimal_comma: bool):
    """(reading, fits(value), convert(Series)) in the order they are tried."""
    yield "", None, lambda s: s
    if decimal_comma:  # semicolon and tab files often write 1,5 for 1.5
        yield ("decimal comma", _DECIMAL_COMMA.match,
               lambda s: s.str.replace(",", ".", regex=False))
        yield ("thousands", lambda v: "." not in v or _DOT_THOUSANDS.match(v),
               lambda s: s.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    yield ("thousands", lambda v: "," not in v or _THOUSANDS.match(v),
           lambda s: s.str.replace(",", "", regex=False))


def _as_numbers(present: pd.Series, distinct: np.ndarray, decimal_comma: bool) -> tuple[np.ndarray, str] | None:
    """The strings in `present` as float64 and how they were read, or None if they are not numbers."""
    for reading, fits, convert in _number_readings(decimal_comma):
        head = distinct[:200]  # a sample first: a cheap early exit for names, ids and categories
        if fits is not None and not all(fits(v) for v in head):
            continue
        if np.isnan(pd.to_numeric(convert(pd.Series(head, dtype=object)), errors="coerce")
                    .to_numpy(np.float64)).any():
            continue
        if fits is not None and not all(fits(v) for v in distinct[200:]):
            continue
        num = pd.to_numeric(convert(present), errors="coerce").to_numpy(np.float64)
        if not np.isnan(num).any():
            return num, reading
    if all(_TIME.match(v) for v in distinct):
        parts = present.str.split(":", expand=True).astype(np.float64).fillna(0.0)
        hours, minutes = parts[0].to_numpy(), parts[1].to_numpy()
        seconds = parts[2].to_numpy() if parts.shape[1] > 2 else np.zeros(len(parts))
        if (hours <= 24).all() and (minutes < 60).all() and (seconds < 60).all():
            return hours + minutes / 60 + seconds / 3600, "time"
    return None


def _as_days(present: pd.Series, distinct: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Dates (with or without a time) as float64 days since 1970-01-01 in local wall time, and
    "date" or "datetime" (plus ", read as day/month/year" or month/day/year for 3/5/2019-style
    dates); None when the strings are not all dates of one recognised format."""
    for pattern, dayfirst in _DATES:
        if not all(pattern.match(v) for v in distinct):
            continue
        if dayfirst is None:  # 15/3/2019 is day-first; 3/15/2019 month-first; 3/5/2019 taken month-first
            first = np.array([int(v.split("/")[0]) for v in distinct])
            second = np.array([int(v.split("/")[1]) for v in distinct])
            if (first > 12).any() and (second > 12).any():
                return None  # both orders in one column: not one date format
            dayfirst = bool((first > 12).any())
            order = ", read as day/month/year" if dayfirst else ", read as month/day/year"
        else:
            order = ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format": pandas then parses each cell
            try:
                if pattern is _DATES[0][0]:
                    stamps = pd.to_datetime(present, format="ISO8601", errors="coerce")
                else:
                    stamps = pd.to_datetime(present, dayfirst=dayfirst, errors="coerce")
            except (ValueError, TypeError):  # mixed time zones: compare them in UTC
                stamps = pd.to_datetime(present, format="ISO8601", errors="coerce", utc=True)
        if stamps.isna().any():
            return None
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_localize(None)  # the clock time where the event happened
        days = ((stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy(np.float64)
        return days, ("datetime" if (days % 1 != 0).any() else "date") + order
    return None


def _classify_column(s: pd.Series, bools_as_numbers: bool = True,
                     decimal_comma: bool = False) -> tuple[str, np.ndarray, str]:
    """(kind, values, reading) for one column.

    kind "num": float64 array, NaN = missing (numbers, numbers stored as text, booleans as 0/1,
    times of day as hours); "date": float64 days since 1970-01-01, NaN = missing; "text": object
    array of stripped strings, None = missing. `reading` says how text became a number: "",
    "decimal comma" ("1,5" = 1.5, only with `decimal_comma`), "thousands" ("1,250,000"), "time",
    "date" or "datetime".
    """
    if pd.api.types.is_numeric_dtype(s) and (bools_as_numbers or not pd.api.types.is_bool_dtype(s)):
        return "num", s.to_numpy(dtype=np.float64, na_value=np.nan), ""
    # Vectorised strip (100k rows in milliseconds); np.array copies: pandas hands out read-only views.
    text = np.array(s.astype(str).str.strip().to_numpy(dtype=object), dtype=object)
    missing = s.isna().to_numpy() | (text == "")
    text[missing] = None
    if missing.all():
        return "num", np.full(len(text), np.nan), ""
    # Decide on the distinct values (few for categories) before converting every row.
    distinct = pd.unique(text[~missing])
    if bools_as_numbers and len(distinct) <= 4 and {v.lower() for v in distinct} <= {"true", "false"}:
        out = np.full(len(text), np.nan)
        out[~missing] = [v.lower() == "true" for v in text[~missing]]
        return "num", out, ""
    present = pd.Series(text[~missing], dtype=object)
    for kind, found in (("num", _as_numbers(present, distinct, decimal_comma)), ("date", None)):
        if kind == "date":
            found = _as_days(present, distinct)
        if found is not None:
            out = np.full(len(text), np.nan)
            out[~missing] = found[0]
            return kind, out, found[1]
    return "text", text, ""


def _missing(kind: str, values: np.ndarray) -> np.ndarray:
    return np.equal(values, None) if kind == "text" else np.isnan(values)


def _finite32(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """values as float32 and a mask of entries that are finite there (overflow counts as inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        v32 = values.astype(np.float32)
    return v32, np.isfinite(v32)


def _is_row_index(name: str, values: np.ndarray) -> bool:
    # pandas' to_csv writes the index as an unnamed first column: 0, 1, 2, ...
    if not name.startswith("Unnamed:") or len(values) < 2 or not np.isfinite(values).all():
        return False
    return bool(np.all(np.diff(values) == 1) and values[0] in (0, 1))


def _format_value(v: float) -> str:
    return np.format_float_positional(float(v), trim="-")


def _format_day(days: float) -> str:
    stamp = pd.Timestamp("1970-01-01") + pd.Timedelta(days=float(days))
    return str(stamp.round("s")).removesuffix(" 00:00:00")


@_user_errors
def load_csv(source, target: str | None = None, task: str | None = None, name: str | None = None,
             drop_columns=()) -> Dataset:
    """Load a whole CSV file as a Dataset; every problem becomes a DataError with a plain sentence.

    `source` is anything `read_csv_table` takes. The last column is the target unless `target`
    names one; the columns in `drop_columns` are left out. Numbers stored as text are converted
    (thousands separators "1,250,000" too, and decimal commas in semicolon and tab files),
    true/false becomes 0/1, dates become days since the column's earliest date plus the hour of
    the day when times are given (never categories), text features with few values are one-hot
    encoded ("colour=red"), id-like text columns and constant columns are dropped, and rows with
    missing or infinite values are dropped; `notes` says what happened. A text target, or a
    whole-number target with at most 20 values, means classification, otherwise regression;
    `task` overrides that. Every usable row is kept: training on a sample is a diagnosis' choice
    (see `subsample`).

    >>> rows = "".join(f"{i},{'red' if i % 2 else 'blue'},\\"{i * 1000.5:,}\\"\\n" for i in range(30))
    >>> d = load_csv(("size,colour,price\\n" + rows).encode())
    >>> d.feature_names, d.task, float(d.y[3])
    (('size', 'colour=blue', 'colour=red'), 'regression', 3001.5)
    """
    if task is not None and task not in TASKS:
        raise DataError(f"The task must be 'classification', 'regression' or automatic, not {task!r}.")
    drop_columns = (drop_columns,) if isinstance(drop_columns, str) else tuple(str(c) for c in drop_columns)
    df, file_name, notes, delimiter = _parse(source)
    name = name or file_name
    columns = list(df.columns)
    if target is None:
        target = columns[-1]
    elif target not in columns:
        stripped = str(target).strip()
        if stripped not in columns:
            shown = _names(columns[:30]) + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")
            raise DataError(f"There is no column '{target}' in the file. Available columns: {shown}.")
        target = stripped
    n_all = len(df)

    user_dropped = [c for c in columns if c in drop_columns and c != target]
    if user_dropped:
        notes.append(f"Left out as you asked: {_names(user_dropped)}.")
    absent = [c for c in drop_columns if c not in columns]
    if absent:
        notes.append(f"Columns you asked to leave out are not in this file: {_names(absent)}.")
    if target in drop_columns:
        notes.append(f"The target '{target}' was also listed to leave out; it is kept as the target.")

    # The target first, then each feature column; a parsed column is freed as soon as it is sorted.
    decimal_comma = delimiter != ","
    readings: dict[str, list[str]] = {"decimal comma": [], "thousands": [], "time": []}
    # true/false in the target stays text: two named classes
    t_kind, t_values, t_reading = _classify_column(df[target], bools_as_numbers=False,
                                                   decimal_comma=decimal_comma)
    readings.get(t_reading, []).append(target)
    numeric: dict[str, np.ndarray] = {}  # float64, NaN = missing
    dates: dict[str, tuple[np.ndarray, str]] = {}  # float64 days since 1970, NaN = missing; reading
    text: dict[str, np.ndarray] = {}  # stripped strings, None = missing
    missing_share: dict[str, float] = {}  # share of the file's rows missing in each kept column
    dropped = {"empty": [], "index": [], "ids": []}
    for col in columns:
        if col == target or col in user_dropped:
            continue
        kind, values, reading = _classify_column(df[col], decimal_comma=decimal_comma)
        del df[col]
        missing = _missing(kind, values)
        share = float(missing.mean())
        if share > 0.5:  # keeping it would cost more than half the rows
            dropped["empty"].append(col)
            continue
        missing_share[col] = share
        readings.get(reading, []).append(col)
        if kind == "date":
            dates[col] = (values, reading)
        elif kind == "num":
            if _is_row_index(col, values):
                dropped["index"].append(col)
            else:
                numeric[col] = values
        else:
            n_distinct = len(set(values[~missing]))
            if n_distinct > MAX_CATEGORIES or n_distinct > 0.5 * (~missing).sum():
                dropped["ids"].append(col)  # names, ids, free text: one column per value is useless
            else:
                text[col] = values
    del df
    if dropped["empty"]:
        notes.append(f"Dropped columns that are mostly empty: {_names(dropped['empty'])}.")
    if dropped["index"]:
        notes.append(f"Dropped row-number columns: {_names(dropped['index'])}.")
    if dropped["ids"]:
        notes.append("Dropped text columns with too many distinct values to use as features "
                      f"(like ids or names): {_names(dropped['ids'])}.")
    if readings["decimal comma"]:
        notes.append(f"Read decimal commas (1,5 = 1.5) in: {_names(readings['decimal comma'])}.")
    if readings["thousands"]:
        notes.append(f"Read thousands separators (1,250,000 = 1250000) in: {_names(readings['thousands'])}.")
    if readings["time"]:
        notes.append(f"Read times of day as hours (14:30 = 14.5) in: {_names(readings['time'])}.")

    # Rows with anything missing or infinite (in float32) in a used column go.
    keep = np.ones(n_all, dtype=bool)
    for arr in numeric.values():
        keep &= _finite32(arr)[1]
    for days, _ in dates.values():
        keep &= ~np.isnan(days)
    for values in text.values():
        keep &= ~_missing("text", values)
    keep &= _finite32(t_values)[1] if t_kind != "text" else ~_missing("text", t_values)
    n_dropped = int(n_all - keep.sum())
    if n_dropped:
        rows_word = "rows" if n_dropped != 1 else "row"
        notes.append(f"Dropped {n_dropped:,} {rows_word} with missing or infinite values.")
    n_rows = int(keep.sum())
    if n_rows < MIN_ROWS:
        extra = " after dropping rows with missing or infinite values" if n_dropped else ""
        raise DataError(f"Only {n_rows} usable row{'s remain' if n_rows != 1 else ' remains'}{extra}; "
                        f"at least {MIN_ROWS} are needed.")
    rows = np.flatnonzero(keep)

    # Plan the feature matrix first, then fill one float32 array: no per-block copies to stack.
    plans: list[tuple[list[str], str, Callable[[np.ndarray], None]]] = []  # names, source, fill(out)
    constant: list[str] = []
    encoded: list[str] = []
    date_words: list[str] = []
    for col in columns:
        if col in numeric:
            v = numeric.pop(col)[rows]
            if v.min() == v.max():
                constant.append(col)
                continue
            plans.append(([col], col, functools.partial(_fill_column, v)))
        elif col in dates:
            days, reading = dates.pop(col)
            days = days[rows]
            start = float(days.min())
            parts = []
            if days.max() > start:
                plans.append(([f"{col} (days)"], col, functools.partial(_fill_column, days - start)))
                parts.append(f"days since {_format_day(start)}")
            hour = (days % 1.0) * 24.0
            if reading.startswith("datetime") and hour.min() < hour.max():
                plans.append(([f"{col} (hour)"], col, functools.partial(_fill_column, hour)))
                parts.append("hour of the day")
            if parts:
                date_words.append(f"'{col}' as {' and '.join(parts)}{reading.partition(',')[2] and ','}"
                                  f"{reading.partition(',')[2]}")
            else:
                constant.append(col)
        elif col in text:
            codes, cats = _codes(text.pop(col)[rows])
            if len(cats) < 2:
                constant.append(col)
                continue
            plans.append(([f"{col}={c}" for c in cats], col, functools.partial(_fill_one_hot, codes)))
            encoded.append(col)
    if date_words:
        notes.append(f"Read dates as numbers, not categories: {'; '.join(date_words)}.")
    if constant:
        notes.append(f"Dropped constant columns (the same value in every row): {_names(constant)}.")
    if encoded:
        notes.append(f"One-hot encoded text columns: {_names(encoded)}.")
    if not plans:
        raise DataError(f"No usable feature columns are left besides the target '{target}'; "
                        "the features need numbers or text with few distinct values.")
    width = sum(len(names) for names, _, _ in plans)
    X = np.zeros((n_rows, width), dtype=np.float32)
    feature_names: list[str] = []
    sources: list[str] = []
    j = 0
    for names, source_col, fill in plans:
        fill(X[:, j:j + len(names)])
        j += len(names)
        feature_names.extend(names)
        sources.extend([source_col] * len(names))

    if t_kind == "text":
        labels = t_values[rows].astype(str)
        if task == "regression":
            raise DataError(f"The target '{target}' holds text, so it cannot be used for regression.")
        class_names, y = np.unique(labels, return_inverse=True)
        class_names = tuple(str(c) for c in class_names)
        chosen = "classification"
    else:
        values = t_values[rows]
        if t_kind == "date":
            start = float(values.min())
            values = values - start
            notes.append(f"Read the target '{target}' as days since {_format_day(start)}.")
        distinct = np.unique(values)
        integer = bool(np.all(distinct == np.round(distinct)))
        chosen = task or ("classification" if integer and len(distinct) <= AUTO_CLASS_LIMIT else "regression")
        if chosen == "classification":
            if len(distinct) > MAX_CLASSES:
                raise DataError(f"The target '{target}' has {len(distinct):,} distinct values, too many to "
                                f"treat as classes (at most {MAX_CLASSES}); use regression instead.")
            y = np.searchsorted(distinct, values)
            class_names = tuple(_format_value(v) for v in distinct)
            if task is None:
                notes.append(f"The target '{target}' has {len(distinct)} whole-number values, "
                             "so it is treated as classes.")
        else:
            y, class_names = values.astype(np.float32), ()
            if float(y.min()) == float(y.max()):
                raise DataError(f"The target '{target}' has the same value in every row, so there is "
                                "nothing to predict.")

    if chosen == "classification":
        if len(class_names) < 2:
            raise DataError(f"The target '{target}' has a single class ({class_names[0]}); "
                            "classification needs at least two.")
        if len(class_names) > MAX_CLASSES or len(class_names) > 0.5 * len(y):
            raise DataError(f"The target '{target}' has {len(class_names):,} distinct values in {len(y):,} "
                            f"rows, too many to treat as classes (at most {MAX_CLASSES}, and fewer than "
                            "half the rows).")

    feature_names = _unique_names(feature_names)
    return Dataset(X, y, chosen, tuple(feature_names), target, class_names, name, tuple(notes),
                   feature_sources=tuple(sources),
                   missing_share=tuple(missing_share[s] for s in sources))


def _fill_column(values: np.ndarray, out: np.ndarray) -> None:
    out[:, 0] = values  # float64 -> float32 on assignment, no extra copy


def _fill_one_hot(codes: np.ndarray, out: np.ndarray) -> None:
    out[np.arange(len(codes)), codes] = 1.0


def _codes(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Category index per row and the sorted categories (pd.factorize: hashing, not sorting rows)."""
    codes, uniques = pd.factorize(values.astype(str))
    order = np.argsort(np.asarray(uniques, dtype=str))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], [str(uniques[i]) for i in order]


# ---------------------------------------------------------------------------------------------
# Samples for diagnoses


def subsample(data: Dataset, max_rows: int, seed: int = 0) -> tuple[Dataset, str | None]:
    """At most `max_rows` rows of `data` and a note for the page, or (data, None) if it is small enough.

    Rows are drawn at random (seeded), stratified by class for classification so every class keeps
    its share (scikit-learn's train_test_split); if some class is too rare to stratify, plainly at
    random. Rows keep their file order. Loading never samples: a diagnosis that trains on fewer
    rows calls this and shows the note on its page.

    >>> d, note = subsample(load_builtin("moons", n_samples=1000), 200, seed=0)
    >>> d.n_rows, note
    (200, 'Used 200 of the 1,000 rows, drawn at random with each class keeping its share.')
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < MIN_ROWS:
        raise DataError(f"A sample needs a whole number of at least {MIN_ROWS} rows, not {max_rows!r}.")
    n = data.n_rows
    if n <= max_rows:
        return data, None
    stratify = None
    if data.task == "classification":
        counts = np.bincount(data.y, minlength=data.n_classes)
        present = counts[counts > 0]
        # train_test_split needs two rows of every class and room for each class in the sample.
        if present.min() >= 2 and len(present) <= max_rows and len(present) <= n - max_rows:
            stratify = data.y
    rows, _ = train_test_split(np.arange(n), train_size=int(max_rows), random_state=seed, stratify=stratify)
    rows = np.sort(rows)
    how = "with each class keeping its share" if stratify is not None else ""
    note = f"Used {max_rows:,} of the {n:,} rows, drawn at random{(' ' + how) if how else ''}."
    sample = Dataset(data.X[rows], data.y[rows], data.task, data.feature_names, data.target_name,
                     data.class_names, data.name, data.notes, data.feature_sources, data.missing_share)
    return sample, note
