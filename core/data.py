"""Datasets: the `Dataset` container, the built-in sets and CSV loading with validation.

Everything here returns plain numpy / pandas and raises `DataError` with a sentence fit to show a
user. A loaded `Dataset` never holds NaN or inf: CSV rows with missing or infinite values are
dropped (and a note says how many).

>>> data = load_builtin("moons", seed=0, n_samples=200)
>>> data.X.shape, data.task, data.class_names
((200, 2), 'classification', ('upper moon', 'lower moon'))
"""
from __future__ import annotations

import codecs
import functools
import csv
import hashlib
import io
import math
import numbers
import pathlib
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import datasets as skdatasets

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


def _decode(raw: bytes) -> tuple[str, list[str]]:
    """Text of a CSV file: UTF-8 (BOM stripped), UTF-16 with a BOM, or Latin-1 as a fallback."""
    notes: list[str] = []
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), notes
        except UnicodeDecodeError:
            raise DataError("The file claims to be UTF-16 text but cannot be decoded.") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if not raw.strip():
        raise DataError("The file is empty.")
    if b"\x00" in raw:
        raise DataError("This looks like a binary file, not a CSV text table.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # never fails: every byte is a character
        notes.append("The file is not valid UTF-8, so it was read as Latin-1.")
    sample = text[:65536]
    control = sum(1 for ch in sample if (ch < " " and ch not in "\t\r\n") or "\x7f" <= ch < "\xa0")
    if control > 0.01 * len(sample):
        raise DataError("This looks like a binary file, not a CSV text table.")
    return text, notes


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
    text, notes = _decode(raw)
    delimiter = _sniff_delimiter(text)
    headerless = _first_line_is_data(text, delimiter)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            # index_col=False: a trailing delimiter on every row must not turn column 1 into an index.
            df = pd.read_csv(
                io.StringIO(text), sep=delimiter, engine="c", skipinitialspace=True, index_col=False,
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


def _classify_column(s: pd.Series, bools_as_numbers: bool = True,
                     decimal_comma: bool = False) -> tuple[str, np.ndarray]:
    """('num', float64 array, NaN = missing) for numbers (and booleans as 0/1), else ('text',
    object array of stripped strings, None = missing). With `decimal_comma`, "1,5" reads as 1.5."""
    if pd.api.types.is_numeric_dtype(s) and (bools_as_numbers or not pd.api.types.is_bool_dtype(s)):
        return "num", s.to_numpy(dtype=np.float64, na_value=np.nan)
    # Vectorised strip (100k rows in milliseconds); np.array copies: pandas hands out read-only views.
    text = np.array(s.astype(str).str.strip().to_numpy(dtype=object), dtype=object)
    missing = s.isna().to_numpy() | (text == "")
    text[missing] = None
    if missing.all():
        return "num", np.full(len(text), np.nan)
    # Decide on the distinct values (few for categories) before converting every row.
    distinct = pd.unique(text[~missing])
    if bools_as_numbers and len(distinct) <= 4 and {v.lower() for v in distinct} <= {"true", "false"}:
        out = np.full(len(text), np.nan)
        out[~missing] = [v.lower() == "true" for v in text[~missing]]
        return "num", out
    # Numbers stored as text ("3.2") become numbers; any non-number keeps the column as text.
    for convert in (str, lambda v: v.replace(",", ".")) if decimal_comma else (str,):
        if convert is not str and not all(_DECIMAL_COMMA.match(v) for v in distinct):
            break
        sample = np.array([convert(v) for v in distinct[:200]], dtype=object)
        if np.isnan(pd.to_numeric(sample, errors="coerce")).any():
            continue  # cheap early exit for names and categories
        values = np.array([convert(v) for v in text[~missing]], dtype=object)
        num = pd.to_numeric(values, errors="coerce")
        if not np.isnan(num).any():
            out = np.full(len(text), np.nan)
            out[~missing] = num
            return "num", out
    return "text", text


def _has_comma(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) and bool(s.astype(str).str.contains(",", regex=False).any())


def _missing(kind: str, values: np.ndarray) -> np.ndarray:
    return np.isnan(values) if kind == "num" else np.equal(values, None)


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


@_user_errors
def load_csv(source, target: str | None = None, task: str | None = None, max_rows: int = 100_000,
             seed: int = 0, name: str | None = None) -> Dataset:
    """Load a CSV file as a Dataset; every problem becomes a DataError with a plain sentence.

    `source` is anything `read_csv_table` takes. The last column is the target unless `target`
    names one. Numbers stored as text are converted (decimal commas too in semicolon and tab
    files), true/false becomes 0/1, text features with few values are one-hot encoded
    ("colour=red"), id-like text columns and constant columns are dropped, and rows with missing
    or infinite values are dropped; `notes` says what happened. A text target, or a whole-number
    target with at most 20 values, means classification, otherwise regression; `task` overrides
    that. More than `max_rows` usable rows are randomly sampled down (seeded by `seed`).

    >>> rows = "".join(f"{i},{'red' if i % 2 else 'blue'},{i * 2.5}\\n" for i in range(30))
    >>> d = load_csv(("size,colour,price\\n" + rows).encode())
    >>> d.feature_names, d.task
    (('size', 'colour=blue', 'colour=red'), 'regression')
    """
    if task is not None and task not in TASKS:
        raise DataError(f"The task must be 'classification', 'regression' or automatic, not {task!r}.")
    if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < MIN_ROWS:
        raise DataError(f"max_rows must be a whole number of at least {MIN_ROWS}.")
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

    # Sort the feature columns into numeric ones and text ones; drop what cannot be used.
    decimal_comma = delimiter != ","  # semicolon and tab files often write 1,5 for 1.5
    comma_columns: list[str] = []
    numeric: dict[str, np.ndarray] = {}  # float64, NaN = missing
    text: dict[str, np.ndarray] = {}  # stripped strings, None = missing
    dropped = {"empty": [], "index": [], "ids": []}
    for col in columns:
        if col == target:
            continue
        kind, values = _classify_column(df[col], decimal_comma=decimal_comma)
        if kind == "num" and decimal_comma and _has_comma(df[col]):
            comma_columns.append(col)
        missing = _missing(kind, values)
        if missing.mean() > 0.5:  # keeping it would cost more than half the rows
            dropped["empty"].append(col)
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
    if dropped["empty"]:
        notes.append(f"Dropped columns that are mostly empty: {_names(dropped['empty'])}.")
    if dropped["index"]:
        notes.append(f"Dropped row-number columns: {_names(dropped['index'])}.")
    if dropped["ids"]:
        notes.append("Dropped text columns with too many distinct values to use as features "
                      f"(like ids or names): {_names(dropped['ids'])}.")

    # true/false in the target stays text: two named classes
    t_kind, t_values = _classify_column(df[target], bools_as_numbers=False, decimal_comma=decimal_comma)
    if t_kind == "num" and decimal_comma and _has_comma(df[target]):
        comma_columns.append(target)
    if comma_columns:
        notes.append(f"Read decimal commas (1,5 = 1.5) in: {_names(comma_columns)}.")

    # Rows with anything missing or infinite (in float32) in a used column go.
    keep = np.ones(n_all, dtype=bool)
    for col, arr in numeric.items():
        keep &= _finite32(arr)[1]
    for col, values in text.items():
        keep &= ~_missing("text", values)
    keep &= _finite32(t_values)[1] if t_kind == "num" else ~_missing("text", t_values)
    n_dropped = int(n_all - keep.sum())
    if n_dropped:
        rows_word = "rows" if n_dropped != 1 else "row"
        notes.append(f"Dropped {n_dropped:,} {rows_word} with missing or infinite values.")
    n_rows = int(keep.sum())
    if n_rows < MIN_ROWS:
        extra = " after dropping rows with missing or infinite values" if n_dropped else ""
        raise DataError(f"Only {n_rows} usable row{'s remain' if n_rows != 1 else ' remains'}{extra}; "
                        f"at least {MIN_ROWS} are needed.")

    # Sample before encoding so the one-hot columns and classes reflect the rows kept.
    rows = np.flatnonzero(keep)
    if n_rows > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
        notes.append(f"Randomly sampled {max_rows:,} of {n_rows:,} rows to stay within the "
                     f"{max_rows:,}-row limit.")

    blocks: list[np.ndarray] = []
    feature_names: list[str] = []
    constant: list[str] = []
    encoded: list[str] = []
    for col in columns:
        if col in numeric:
            v = numeric[col][rows]
            if v.min() == v.max():
                constant.append(col)
                continue
            blocks.append(v.astype(np.float32)[:, None])
            feature_names.append(col)
        elif col in text:
            v = text[col][rows].astype(str)
            cats = np.unique(v)
            if len(cats) < 2:
                constant.append(col)
                continue
            blocks.append((v[:, None] == cats[None, :]).astype(np.float32))
            feature_names.extend(f"{col}={c}" for c in cats)
            encoded.append(col)
    if constant:
        notes.append(f"Dropped constant columns (the same value in every row): {_names(constant)}.")
    if encoded:
        notes.append(f"One-hot encoded text columns: {_names(encoded)}.")
    if not blocks:
        raise DataError(f"No usable feature columns are left besides the target '{target}'; "
                        "the features need numbers or text with few distinct values.")
    X = np.hstack(blocks)

    if t_kind == "text":
        labels = t_values[rows].astype(str)
        if task == "regression":
            raise DataError(f"The target '{target}' holds text, so it cannot be used for regression.")
        class_names, y = np.unique(labels, return_inverse=True)
        class_names = tuple(str(c) for c in class_names)
        chosen = "classification"
    else:
        values = t_values[rows]
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

    assert np.isfinite(X).all() and np.isfinite(np.asarray(y, dtype=np.float64)).all()
    feature_names = _unique_names(feature_names)
    return Dataset(X, y, chosen, tuple(feature_names), target, class_names, name, tuple(notes))
