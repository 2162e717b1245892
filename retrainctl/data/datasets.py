"""Data sets: a data path that is one file, a directory of partitions or a glob, expanded into its
data files in a stable order, fingerprinted as one from the per-file cache, and read into one
frame for training (pyarrow and pandas, imported only when a file is read)."""
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base.errors import DataError, ErrorType, TrainingError
from ..config.records import TrainingSpec
from ..core.segment_names import SEPARATOR, encode_value
from . import segment_keys
from .fingerprint import CHUNK, FingerprintCache, count_rows, hash_bytes, set_hash
from .read import parse_csv, read_data

if TYPE_CHECKING:
    import pandas as pd


PARQUET = (".parquet", ".pq")
SUFFIXES = (".csv", ".csv.gz") + PARQUET
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class DataSet:
    path: str                 # as configured: a file, a directory or a glob
    hash: str                 # a single file's own content hash, or the set hash (fingerprint.set_hash)
    rows: int
    files: tuple[tuple[str, str], ...]  # (path relative to root_of(path), content hash), sorted
    is_set: bool
    counts: tuple[int, ...] = ()        # rows of each file, in the order of `files`
    size: int | None = None   # a single file's bytes fingerprinted (the prefix a grown CSV file is fit on)

    @property
    def fit_files(self) -> list[list[str]] | None:
        """What the fit is told to read, as decided: None for one plain CSV file, which is read
        as before (data.read.read_data, URLs included); else every file with its hash."""
        if not self.is_set:  # "" for the path itself: the worker need not tell a file from a folder
            return None if data_format(self.path) == "csv" else [["", self.hash]]
        return [list(pair) for pair in self.files]

    def label(self, base_dir: str) -> str:
        rel = os.path.relpath(self.path, base_dir)
        return f"{rel} ({len(self.files)} files)" if self.is_set else rel


def is_glob(path: str) -> bool:
    return any(c in path for c in GLOB_CHARS)


def is_set(path: str) -> bool:
    """A directory or a glob, as opposed to one data file (whose fingerprint stays its own hash)."""
    return is_glob(path) or os.path.isdir(path)


def data_format(name: str) -> str:
    """'parquet', 'csv.gz' or 'csv' by suffix; a single file of another name is read as CSV, as
    always, while a directory or glob takes only the known suffixes."""
    low = name.lower()
    if low.endswith(PARQUET):
        return "parquet"
    if low.endswith(".csv.gz"):
        return "csv.gz"
    return "csv"


def _is_data(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def root_of(path: str) -> str:
    """The folder the set's relative paths start from: the directory, a glob's fixed leading
    folders, or a single file's folder."""
    if is_glob(path):
        parts = path.split(os.sep)
        fixed = []
        for part in parts:
            if is_glob(part):
                break
            fixed.append(part)
        return os.sep.join(fixed) or os.curdir
    return path if os.path.isdir(path) else os.path.dirname(path)


def expand(path: str) -> list[str]:
    """The set's data files as sorted paths relative to root_of(path)."""
    if is_glob(path):
        import glob

        root = root_of(path)
        found: set[str] = set()
        for match in glob.iglob(path, recursive=True):
            rel = os.path.relpath(match, root)
            if any(_hidden(part) for part in rel.split(os.sep)):
                continue
            if os.path.isdir(match):
                found.update(os.path.join(rel, r) for r in _walk(match))
            elif _is_data(match):
                found.add(rel)
        if not found:
            raise DataError(f"{path}: no data files match this pattern ({', '.join(SUFFIXES)})")
        return sorted(found)
    if os.path.isdir(path):
        files = _walk(path)
        if not files:
            raise DataError(f"{path}: no data files in this directory ({', '.join(SUFFIXES)})")
        return files
    return [os.path.basename(path)]


def _walk(top: str) -> list[str]:
    """Data files below `top`, following symlinked folders but refusing one that leads back to
    a folder it is inside (a loop would otherwise be walked until the path is too long)."""
    out: list[str] = []

    def visit(folder: str, rel: str, ancestors: dict[tuple[int, int], str]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{folder}: cannot list the data directory: {exc.strerror}") from None
        for entry in entries:
            if _hidden(entry.name):
                continue
            sub = os.path.join(rel, entry.name) if rel else entry.name
            if entry.is_dir():
                st = entry.stat()
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    raise DataError(f"{entry.path}: symlink loop in the data directory (leads back to {ancestors[key]})")
                visit(entry.path, sub, {**ancestors, key: entry.path})
            elif _is_data(entry.name):
                out.append(sub)

    try:
        st = os.stat(top)
    except OSError as exc:
        raise DataError(f"{top}: cannot read the data directory: {exc.strerror}") from None
    visit(top, "", {(st.st_dev, st.st_ino): top})
    return sorted(out)


# --- fingerprints ----------------------------------------------------------------------------

def _parquet_rows(path: str, newlines: int, size: int, last_byte: bytes) -> int:
    """Rows from the Parquet footer, without reading the data. pyarrow is imported only here,
    that is only for a file whose stat changed: an unchanged set is answered by the cache."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file: {_first_line(exc)}") from None


def _gzip_rows(path: str, newlines: int, size: int, last_byte: bytes) -> int:
    """Lines of the decompressed text less the header: a quoted line break inside a field is
    counted as a row here (unlike a plain CSV file's quote-aware count), which only shifts
    min_data_size and the row count shown, never what is trained on."""
    import gzip
    import zlib

    lines, total, last = 0, 0, b""
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                lines += chunk.count(b"\n")
                total += len(chunk)
                last = chunk[-1:]
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file: {_first_line(exc)}") from None
    return count_rows(lines, total, last)


# None: the fingerprint's own quote-aware count of a CSV file.
ROW_COUNTERS = {"csv": None, "csv.gz": _gzip_rows, "parquet": _parquet_rows}


def fingerprint(fpcache: FingerprintCache, path: str, quotechar: str = '"') -> DataSet:
    """The DataSet of `path`: a walk and a stat per file, hashing only files whose stat changed.
    `quotechar` is the model's CSV quote character, for the row counts of CSV files."""
    if not is_set(path):
        fp = fpcache.get(path, quotechar, ROW_COUNTERS[data_format(path)])
        return DataSet(path, fp.hash, fp.rows, ((os.path.basename(path), fp.hash),), False, (fp.rows,), fp.size)
    root = root_of(path)
    files, counts = [], []
    for rel in expand(path):
        fp = _member(fpcache, os.path.join(root, rel), quotechar)
        files.append((rel, fp.hash))
        counts.append(fp.rows)
    return DataSet(path, set_hash(files), sum(counts), tuple(files), True, tuple(counts))


def _member(fpcache: FingerprintCache, path: str, quotechar: str) -> Any:
    """A set's file fingerprinted whole: the fit reads its files whole, so a CSV partition still
    being appended to (fingerprinted by its prefix, as a single file may be) waits for a later run."""
    fp = fpcache.get(path, quotechar, ROW_COUNTERS[data_format(path)])
    if fp.size != os.stat(path).st_size:
        raise DataError(f"{path}: data file keeps changing while it is read; skipped this run")
    return fp


def new_files(files: tuple[tuple[str, str], ...] | None, metadata: dict[str, Any] | None) -> list[str] | None:
    """The set's files the model was not trained on, or None where the model does not say
    (trained before sets, or on a single file)."""
    trained = metadata.get("data_files") if metadata else None
    if files is None or trained is None:
        return None
    trained = set(trained)
    return [rel for rel, _ in files if rel not in trained]


# --- reading ---------------------------------------------------------------------------------

@dataclass
class Loaded:
    """The decided files read into one frame."""

    frame: "pd.DataFrame"
    data_hash: str
    files: list[str] | None        # a set's file names (None for one file)
    sizes: list[int]               # rows of each file, in order
    notes: list[str]               # columns the model does not use that differ between files
    left_out: list[str]            # those columns, not in `frame`


def read_frame(path: str, files: list[list[str]], spec: TrainingSpec) -> Loaded:
    """One DataFrame of the decided files (pairs of relative path and content hash), each hashed
    as it is read: a file changed or gone since the decision is a TrainingError('data_changed')
    naming it, so the fit trains on exactly the bytes that were decided on. The columns the model
    uses (its features, target and time column; every column but those declared `drop` or `id`
    when `features` is not given) must be in every file with compatible kinds; another column
    that differs between files is left out with a note. `path` may be a URL where the workers
    read from object storage."""
    single = files[0][0] == ""
    root = path if single or not is_glob(path) else root_of(path)
    used = used_columns(spec)
    declared = {c for c, kind in spec.feature_types.items() if kind in ("drop", "id")}  # said unused
    unused = declared | set(spec.segment_by)
    parts: list[Any] = []
    first: str | None = None
    schema: dict[str, str | None] | None = None
    differ: dict[str, str] = {}
    for rel, decided in files:
        name = path if single else os.path.join(root, rel)
        part = _segment_part(path, name, decided, spec) if spec.segment_by else _read_file(name, decided, spec)
        # One file has nothing to agree with: only its column names are needed.
        kinds = _kinds(part) if len(files) > 1 else dict.fromkeys(map(str, segment_keys.column_names(part)))
        if schema is None:
            first, schema = name, kinds
        else:
            for column, why in _check_schema(name, kinds, first, schema, used, unused).items():
                differ.setdefault(column, why)
        parts.append(part)
    assert schema is not None
    sizes = [len(p) for p in parts]
    columns = [c for c in schema if c not in differ]
    notes = [  # none for a column declared unused
f"column '{c}' left out: {why}; the model does not use it" for c, why in differ.items()
             if c not in declared]
    frame = _combine(path, parts, columns, keep=bool(spec.segment_by))
    if single:
        return Loaded(frame, files[0][1], None, sizes, notes, list(differ))
    return Loaded(frame, set_hash([(f[0], f[1]) for f in files]), [rel for rel, _ in files], sizes, notes,
                  list(differ))


def used_columns(spec: TrainingSpec) -> set[str] | None:
    """The columns a model reads (None: every column but those declared `drop` or `id`)."""
    if not spec.features:
        return None
    return {*spec.features, spec.target, *([spec.time_column] if spec.time_column else [])}


def _read_file(name: str, decided: str, spec: TrainingSpec) -> Any:
    if "://" in name:
        raw, _ = read_data(name)
    else:
        try:
            with open(name, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise TrainingError(f"{name}: disappeared after the decision to train; will retry on the next check",
                                ErrorType.DATA_CHANGED) from None
        except OSError as exc:
            raise DataError(f"{name}: cannot read data file: {exc.strerror}") from None
    if hash_bytes(raw) != decided:
        raise TrainingError(f"{name}: changed after the decision to train; will retry on the next check",
                            ErrorType.DATA_CHANGED)
    fmt = data_format(name)
    if fmt == "parquet":
        import pyarrow
        import pyarrow.parquet as pq

        try:
            return pq.read_table(pyarrow.BufferReader(raw))
        except (pyarrow.ArrowException, OSError) as exc:
            raise DataError(f"{name}: not a readable Parquet file: {_first_line(exc)}") from None
    if fmt == "csv.gz":
        import gzip
        import zlib

        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{name}: not a readable gzip file: {_first_line(exc)}") from None
    return parse_csv(raw, name, spec)


# A fit process given a batch of one entry's segments parses each file once: its parsed rows and
# their segments' row positions, by (file, content hash, how it is parsed). Only the files of the
# last three paths read are kept, each in its latest content. A Dask worker runs batches in
# several threads of one process: they take turns at the cache (and so read a file once).
_PARTS: dict[Any, tuple[Any, dict[str, tuple[int, int]] | None]] = {}
_PARTS_LOCK = threading.Lock()
KEEP_PATHS = 3  # an entry's data_path, eval_path and drift_path (the quality checks of its segments)


def _segment_part(path: str, name: str, decided: str, spec: TrainingSpec) -> Any:
    """The rows of segment `spec.segment` in one file (all of them in a Hive-style partition,
    whose folders say its segment), the file read and hashed only the first time in this process."""
    key = (path, name, decided, spec.csv, spec.segment_by, tuple(sorted(spec.feature_types.items())))
    with _PARTS_LOCK:
        cached = _PARTS.get(key)
        if cached is None:
            paths = list(dict.fromkeys(k[0] for k in _PARTS))
            if path not in paths and len(paths) >= KEEP_PATHS:  # forget the path read longest ago
                for old in [k for k in _PARTS if k[0] == paths[0]]:
                    del _PARTS[old]
            for old in [k for k in _PARTS if k[:2] == key[:2]]:  # an older content of this file
                del _PARTS[old]
            cached = _PARTS[key] = segment_keys.groups(_read_file(name, decided, spec), spec.segment_by)
    part, spans = cached
    if spans is None:
        return part
    wanted = SEPARATOR.join(encode_value(v) for v in spec.segment)
    return segment_keys.rows(part, spans.get(wanted, (0, 0)))


def _kinds(part: Any) -> dict[str, str | None]:
    """{column: kind} of a pyarrow Table or a DataFrame; None for a column with no values at all,
    which agrees with any kind (an empty text column reads as float from CSV)."""
    if hasattr(part, "schema"):
        import pyarrow.types as t

        out: dict[str, str | None] = {}
        for col, field in zip(part.columns, part.schema):
            if col.null_count == len(col):
                out[field.name] = None
            elif t.is_integer(field.type) or t.is_floating(field.type) or t.is_decimal(field.type):
                out[field.name] = "number"
            elif t.is_string(field.type) or t.is_large_string(field.type) or (
                    t.is_dictionary(field.type) and (t.is_string(field.type.value_type)
                                                     or t.is_large_string(field.type.value_type))):
                out[field.name] = "text"  # a category column (dictionary-encoded text) too
            else:
                out[field.name] = str(field.type)
        return out
    out = {}
    for name, nothing in zip(part.columns, part.isna().all().to_numpy()):  # one pass for the empty columns
        if nothing:
            out[str(name)] = None
            continue
        col = part[name]
        if col.dtype.kind in "iuf":
            out[str(name)] = "number"
        elif col.dtype.kind == "O" and all(isinstance(v, bool) for v in col[col.notna()].iloc[:1000]):
            out[str(name)] = "bool"  # True/False with gaps: what a CSV gives back of a nullable bool
        elif col.dtype.kind == "O" or str(col.dtype) in ("string", "str"):
            out[str(name)] = "text"
        else:
            out[str(name)] = str(col.dtype)
    return out


def _check_schema(name: str, kinds: dict[str, str | None], first: str | None,
                  schema: dict[str, str | None], used: set[str] | None, unused: set[str]) -> dict[str, str]:
    """Check a file's columns against the first file's: a DataError for a used column that is
    missing, extra or of another kind; {column: how it differs} for the others."""
    def is_used(column: str) -> bool:
        return column in used if used is not None else column not in unused

    differ = {}
    for column in schema:
        if column not in kinds:
            if is_used(column):
                raise DataError(f"{name}: column '{column}' is missing (it is in {first})")
            differ[column] = f"missing in {name}"
    for column in kinds:
        if column not in schema and is_used(column):
            raise DataError(f"{name}: column '{column}' is not in the other files (e.g. {first})")
    for column, kind in kinds.items():
        if column not in schema:
            continue
        if kind and schema[column] and kind != schema[column]:
            if is_used(column):
                raise DataError(f"{name}: column '{column}' holds {kind} values, but {schema[column]} in {first}")
            differ[column] = f"{kind} values in {name}, {schema[column]} in {first}"
        if kind and not schema[column]:
            schema[column] = kind
    return differ


def _combine(path: str, parts: list[Any], columns: list[str], keep: bool = False) -> "pd.DataFrame":
    """Arrow tables are concatenated without copying and converted once, as pandas.read_parquet
    would (freeing them as it goes, unless `keep`: a segment's parts may be its file's cached
    table); CSV frames (or a mix) are concatenated by pandas."""
    import pandas as pd

    if all(hasattr(p, "schema") for p in parts):
        import pyarrow

        try:
            table = pyarrow.concat_tables([p.select(columns) for p in parts], promote_options="permissive")
        except pyarrow.ArrowException as exc:
            raise DataError(f"{path}: the files' column types do not combine: {_first_line(exc)}") from None
        del parts[:]
        return table.to_pandas(split_blocks=True, self_destruct=not keep)
    frames = [p.to_pandas() if hasattr(p, "schema") else p for p in parts]
    if len(frames) == 1:  # a new frame of the columns, numbered from 0 as a concatenation would be
        return frames[0][columns].reset_index(drop=True)
    return pd.concat([f[columns] for f in frames], ignore_index=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
