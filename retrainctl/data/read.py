"""Reading data files into frames: CSV bytes parsed with the model's `csv:` options, a frame split
into features and target, and the exact bytes a decision to train was made on. Errors name the
file and the column. pandas is imported inside the functions: importing this module is cheap."""
import io
from collections.abc import Collection
from typing import IO, TYPE_CHECKING, Any

from ..base.errors import DataError, ErrorType, TrainingError
from ..config.records import CsvOptions, TrainingSpec
from .fingerprint import csv_rows, hash_bytes

# feature_types read as numbers (every other declared type is read as the text it is written as).
NUMERIC_TYPES = ("numeric", "calendar")

if TYPE_CHECKING:
    import pandas as pd


def load_frame(raw: bytes, data_path: str, spec: TrainingSpec) -> "tuple[pd.DataFrame, pd.Series]":
    """Parse CSV bytes into the labelled rows (X, y), with errors that name the file and column."""
    return labelled(*frame_xy(parse_csv(raw, data_path, spec), data_path, spec))


def parse_csv(raw: bytes, data_path: str, spec: TrainingSpec) -> "pd.DataFrame":
    """CSV bytes as a DataFrame, read with the model's `csv:` options, with errors that name the file."""
    import pandas as pd

    if not raw.strip():
        raise DataError(f"{data_path}: data file is empty")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{data_path}: not a text CSV file (binary content)")
    opts = spec.csv
    header = _header(raw, opts)
    # Declared non-numeric columns are read as written: a category `007` stays `007`.
    as_text = [c for c, kind in spec.feature_types.items() if kind not in NUMERIC_TYPES and c in header]
    as_text += [c for c in spec.segment_by if c in header and c not in as_text]  # keys as their names spell them
    try:
        df = pd.read_csv(io.BytesIO(raw), sep=opts.delimiter, quotechar=opts.quotechar,
                         encoding=opts.encoding, dtype=dict.fromkeys(as_text, str) or None)
    except UnicodeDecodeError as exc:
        raise DataError(f"{data_path}: cannot parse CSV: not {opts.encoding} text ({exc.reason}); "
                        f"set csv.encoding to the file's encoding, e.g. cp1252") from None
    except (pd.errors.ParserError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{data_path}: cannot parse CSV: {first}") from None
    if df.empty:
        raise DataError(f"{data_path}: has a header but no data rows")
    if len(df.columns) == 1 and len(header) == 1 and opts.delimiter != ";" and ";" in header[0]:
        raise DataError(f"{data_path}: one column named '{header[0][:60]}': set csv.delimiter to ';'")
    repeated = repeated_columns(header)
    if repeated:  # pandas would rename the second one ("Species.1") and train on the wrong column
        raise DataError(f"{data_path}: column(s) named more than once in the header: {', '.join(repeated)}")
    return df


def frame_xy(df: "pd.DataFrame", data_path: str, spec: TrainingSpec,
             left_out: Collection[str] = ()) -> "tuple[pd.DataFrame, pd.Series]":
    """(X, y) of every row of a parsed data file or set, rows without a target included (y is
    missing there: they are inputs the model sees in production, which the drift reference must
    count), with errors that name the file and the column. y keeps its type (see target_values)."""
    target = spec.target
    if target not in df.columns:
        raise DataError(f"{data_path}: target column '{target}' not found (columns: {', '.join(map(str, df.columns))})")
    features = list(spec.features) if spec.features else [c for c in df.columns
                                                          if c != target and c not in spec.segment_by]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(f"{data_path}: feature column(s) not found: {', '.join(missing)}")
    if not features:
        raise DataError(f"{data_path}: no feature columns besides the target '{target}'")
    # `left_out`: the unused columns a data set's files disagree on (datasets.read_frame), named
    # in feature_types as `id` or `drop` and gone from the frame for that reason, not a typo
    unknown = [c for c in spec.feature_types if c not in df.columns and c not in left_out]
    if unknown:
        raise DataError(f"{data_path}: feature_types names column(s) not in the file: {', '.join(unknown)}")
    y = df[target]
    if not y.notna().any():
        raise DataError(f"{data_path}: every row lacks the target '{target}'")
    return df[features], target_values(y, spec.task, data_path, target)


def labelled(X: "pd.DataFrame", y: "pd.Series") -> "tuple[pd.DataFrame, pd.Series]":
    """The rows of (X, y) that have a target, y as the labels a model is fit on: integral numbers
    as integers (a CSV column with one empty cell reads as floats), booleans as booleans."""
    import pandas as pd

    keep = y.notna()
    if not keep.all():
        X, y = X[keep], y[keep]
    if pd.api.types.is_bool_dtype(y.dtype) or (y.dtype == object and all(isinstance(v, bool) for v in y)):
        return X, y.astype(bool)
    if pd.api.types.is_numeric_dtype(y.dtype) and not isinstance(y.dtype, pd.CategoricalDtype):
        values = y.astype("float64")
        if len(values) and bool((values == values.round()).all()) and bool(values.abs().max() < 2 ** 53):
            return X, values.astype("int64")
        return X, values
    if isinstance(y.dtype, pd.CategoricalDtype):
        return X, y.cat.remove_unused_categories()
    return X, y


def target_values(y: "pd.Series", task: str, data_path: str, target: str) -> "pd.Series":
    """The target column as the task reads it, missing values kept: numbers for a regression; for
    a classification the labels as they are (labelled() makes integral numbers integers, so a CSV
    column of 0/1 with a gap and a Parquet Int8 column give the same classes)."""
    import pandas as pd

    if task == "regression":
        try:
            return pd.to_numeric(y)
        except (ValueError, TypeError):
            raise DataError(f"{data_path}: target column '{target}' is not numeric, but the task is regression") from None
    return y


def _header(raw: bytes, opts: CsvOptions) -> list[str]:
    import csv

    text = raw[:1 << 20].decode(opts.text_encoding, "replace")
    try:
        return next(csv.reader(io.StringIO(text), delimiter=opts.delimiter, quotechar=opts.quotechar), [])
    except csv.Error:
        return []


def repeated_columns(names: list[str]) -> list[str]:
    """Header names given more than once (blank ones aside: pandas numbers those itself)."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name.strip() and name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def read_data(data_path: str, limit: int | None = None) -> tuple[bytes, bool]:
    """(bytes, whether the file has more): the whole data file, or its first `limit` bytes.
    A local path, or any fsspec URL (s3://, gs://, ...) where fsspec and the filesystem's package
    are installed, so cluster workers can read from object storage."""
    if "://" not in data_path:
        try:
            with open(data_path, "rb") as fh:
                return _take(fh, limit)
        except FileNotFoundError:
            raise DataError(f"{data_path}: data file not found") from None
        except OSError as exc:
            raise DataError(f"{data_path}: cannot read data file: {exc.strerror}") from None
    try:
        import fsspec
    except ImportError:
        raise DataError(f"{data_path}: reading URLs needs fsspec (pip install 'retrainctl[dask]')") from None
    try:
        with fsspec.open(data_path, "rb") as fh:
            return _take(fh, limit)
    except FileNotFoundError:
        raise DataError(f"{data_path}: data file not found") from None
    except (ImportError, ValueError) as exc:
        raise DataError(f"{data_path}: cannot open this URL: {exc}") from None
    except OSError as exc:
        raise DataError(f"{data_path}: cannot read data file: {exc.strerror or exc}") from None


def _take(fh: IO[bytes], limit: int | None) -> tuple[bytes, bool]:
    if limit is None:
        return fh.read(), False
    return fh.read(limit), fh.read(1) != b""


def read_decided(spec: TrainingSpec, data_path: str, expected_hash: str | None,
                 size: int | None) -> "tuple[pd.DataFrame, str, int, bool]":
    """(frame, hash, rows, grown): the bytes the decision to train was made on (the first `size`
    bytes, the fingerprinted prefix), parsed. A file that has grown since is read up to the size
    it had then: if those bytes still hash as decided, it was only appended to, and the fit uses
    them (minus a last line still being written). Otherwise it changed: TrainingError. The hash
    and the row count run on a thread beside the parse (blake3 and pandas' tokenizer release the
    GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    size = size if expected_hash else None
    raw, grown = read_data(data_path, size)
    if grown and not raw.endswith(b"\n"):
        whole = raw[:raw.rfind(b"\n") + 1]
    else:
        whole = raw
    quotechar = spec.csv.quotechar
    with ThreadPoolExecutor(1, thread_name_prefix="hash") as pool:
        hashing = pool.submit(lambda: (hash_bytes(raw), csv_rows(whole, quotechar)))
        try:
            df = parse_csv(whole, data_path, spec)
        finally:  # a file that changed is "data changed", even where it no longer parses
            data_hash, rows = hashing.result()
            if expected_hash and data_hash != expected_hash:
                how = " (rewritten, not appended to)" if size is not None else ""
                raise TrainingError(f"{data_path}: data changed after the decision to train{how}; "
                                    f"will retry on the next check", ErrorType.DATA_CHANGED)
    return df, data_hash, rows, grown


def time_order(df: "pd.DataFrame", spec: TrainingSpec, data_path: str, sizes: list[int] | None = None) -> Any:
    """A sortable key per row, oldest first: the `time_column` (numbers as they are, anything else
    as dates; a row whose time cannot be read counts as the oldest), else the file a row came from
    (a set's files sort oldest first by name: `date=2026-11-01/...`), else the row's position."""
    import numpy as np
    import pandas as pd

    if spec.time_column:
        if spec.time_column not in df.columns:
            raise DataError(f"{data_path}: time_column '{spec.time_column}' not found "
                            f"(columns: {', '.join(map(str, df.columns))})")
        column = df[spec.time_column]
        if pd.api.types.is_numeric_dtype(column.dtype):
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        else:
            when = pd.to_datetime(column, errors="coerce", utc=True, format="mixed")
            values = when.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
            values[when.isna().to_numpy()] = np.nan
        if np.isnan(values).all():
            raise DataError(f"{data_path}: time_column '{spec.time_column}' holds no readable time")
        return np.where(np.isnan(values), -np.inf, values)
    if sizes and len(sizes) > 1:
        return np.repeat(np.arange(len(sizes), dtype=float), sizes)
    return np.arange(len(df), dtype=float)


__all__ = ["frame_xy", "labelled", "load_frame", "parse_csv", "read_data", "read_decided", "repeated_columns",
           "target_values", "time_order"]
