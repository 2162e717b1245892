"""The segments of an entry with `segment_by`: its data set read once, the distinct key values and
a content hash of each segment's own rows, so that only the segments whose rows changed are due.

Per file, the answer is cached by the file's content hash (from the fingerprint cache, itself
keyed by the file's stat): an unchanged file is never read again. A file below Hive-style folders
that name every key column (`store=s0042/part-0.parquet`) is answered from its path alone. The
whole answer is cached too, by the data set's hash, so a check where nothing changed reads one
JSON file per entry. pandas, pyarrow and numpy are imported only to read a changed file."""
import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..base.errors import DataError
from ..base.fsutil import atomic_write, best_effort, read_json
from ..config.records import CsvOptions, ModelConfig
from ..core.segment_names import MAX_NAME, SEPARATOR, encode_value
from . import datasets
from .fingerprint import FingerprintCache, set_hash
from .segment_keys import row_keys

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CACHE_DIR = "segment-index"
VERSION = 1
HIVE_MISSING = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class SegmentData:
    """One segment's rows in the data set now: how many, their hash, and the files that hold them
    (relative path and content hash, as datasets.DataSet.files), which are all a fit reads."""

    key: str                              # the name after `<entry>:` (core.segment_names)
    rows: int
    hash: str
    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SegmentIndex:
    dataset: datasets.DataSet
    columns: tuple[str, ...]
    segments: dict[str, SegmentData]      # by key, sorted

    def fit_files(self, segment: SegmentData) -> list[list[str]]:
        """What the fit of `segment` reads: its files with their hashes ("" for a single file)."""
        if not self.dataset.is_set:
            return [["", self.dataset.hash]]
        return [list(pair) for pair in segment.files]


def cache_path(state_dir: str, entry: str) -> str:
    return os.path.join(state_dir, CACHE_DIR, f"{entry}.json")


def discover(fpcache: FingerprintCache, state_dir: str, model: ModelConfig, data_path: str | None = None,
             role: str = "") -> SegmentIndex:
    """The segments of `model` (an entry with segment_by) now, in its data path or in `data_path`
    (its eval_path or drift_path, `role` "eval" or "drift", cached apart). DataError for a path
    that cannot be read, a key column missing from a file, a name too long or too many segments."""
    columns = tuple(model.segment_by or ())
    data_path = data_path or model.data_path
    ds = datasets.fingerprint(fpcache, data_path, model.csv.quotechar)
    path = cache_path(state_dir, f"{model.name}@{role}" if role else model.name)
    cached = read_json(path, default={}) or {}
    how = [VERSION, list(columns), _csv_key(model.csv)]
    if not isinstance(cached, dict) or cached.get("how") != how:
        cached = {}
    whole = cached.get("set") or {}
    if whole.get("hash") == ds.hash and isinstance(whole.get("segments"), dict):
        return _index(ds, columns, whole["segments"], model, data_path)
    files = cached.get("files") or {}
    root = datasets.root_of(data_path) if ds.is_set else os.path.dirname(data_path)
    per_file: dict[str, Any] = {}
    for (rel, digest), rows in zip(ds.files, ds.counts):
        known = files.get(rel)
        if isinstance(known, dict) and known.get("hash") == digest:
            per_file[rel] = known
            continue
        name = os.path.join(root, rel) if ds.is_set else data_path
        per_file[rel] = {"hash": digest, "segments": _file_segments(name, rel if ds.is_set else "", digest, rows,
                                                                    columns, model.csv)}
    combined = _combine(ds, per_file)
    with best_effort(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, json.dumps({"how": how, "files": per_file, "set": {"hash": ds.hash, "segments": combined}},
                                      separators=(",", ":")), durable=False)
    return _index(ds, columns, combined, model, data_path)


def _csv_key(csv: CsvOptions) -> list[str]:
    return [csv.delimiter, csv.encoding, csv.quotechar]


def _combine(ds: datasets.DataSet, per_file: dict[str, Any]) -> dict[str, list[Any]]:
    """{key: [rows, hash, [index of each file in ds.files]]} over every file, keys sorted."""
    found: dict[str, list[Any]] = {}
    for i, (rel, _) in enumerate(ds.files):
        for key, (rows, digest) in per_file[rel]["segments"].items():
            entry = found.setdefault(key, [0, [], []])
            entry[0] += rows
            entry[1].append((rel, digest))
            entry[2].append(i)
    return {key: [rows, set_hash(pairs)[:32], indices] for key, (rows, pairs, indices) in sorted(found.items())}


def _index(ds: datasets.DataSet, columns: tuple[str, ...], combined: dict[str, Any], model: ModelConfig,
           data_path: str) -> SegmentIndex:
    if len(combined) > model.segment_limit:
        raise DataError(f"{data_path}: {len(combined)} segments by {', '.join(columns)}, more than "
                        f"max_segments ({model.segment_limit}) of model '{model.name}'")
    segments = {key: SegmentData(key, rows, digest, tuple(ds.files[i] for i in indices))
                for key, (rows, digest, indices) in combined.items()}
    return SegmentIndex(ds, columns, segments)


def hive_values(rel: str, columns: tuple[str, ...]) -> tuple[str | None, ...] | None:
    """The key values a file's Hive-style folders name (`store=s0042/`), or None unless they
    name every column. Values are URL-decoded; Hive's default partition is the missing value."""
    named: dict[str, str | None] = {}
    for part in rel.split(os.sep)[:-1]:
        column, eq, value = part.partition("=")
        if eq and column in columns:
            text = unquote(value)
            named[column] = None if text in ("", HIVE_MISSING) else text
    if not all(c in named for c in columns):
        return None
    return tuple(named[c] for c in columns)


def _file_segments(name: str, rel: str, digest: str, rows: int, columns: tuple[str, ...],
                   csv: CsvOptions) -> dict[str, list[Any]]:
    """{key: [rows, hash of those rows]} of one file: from its folders where they name every key
    column (the hash is then the file's own), else from its rows."""
    values = hive_values(rel, columns) if rel else None
    if values is not None:
        return {_key(name, values): [rows, digest[:32]]}
    frame = _read(name, csv)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: segment_by column '{missing[0]}' not found "
                        f"(columns: {', '.join(map(str, frame.columns))})")
    return group_hashes(frame, columns, name)


def _key(name: str, values: tuple[str | None, ...]) -> str:
    return _checked(name, SEPARATOR.join(encode_value(v) for v in values))


def _checked(name: str, key: str) -> str:
    """A key short enough to name a model (its store folder and lock file)."""
    if len(key) > MAX_NAME:
        raise DataError(f"{name}: a segment key is {len(key)} characters long once encoded "
                        f"(at most {MAX_NAME}): {key[:60]}...")
    return key


def group_hashes(frame: "pd.DataFrame", columns: tuple[str, ...], name: str) -> dict[str, list[Any]]:
    """{key: [rows, hash]}: each segment's rows hashed in file order (pandas' row hashes of every
    column, with the column names), so a row added, removed or changed changes its segment's
    hash and no other's."""
    import blake3
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(row_keys(frame, columns))
    for key in uniques:
        _checked(name, key)
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniques))
    ends = np.cumsum(counts)
    header = "\0".join(map(str, frame.columns)).encode()
    out: dict[str, list[Any]] = {}
    for key, n, end in zip(uniques, counts.tolist(), ends.tolist()):
        h = blake3.blake3(header)
        h.update(hashes[order[end - n:end]].tobytes())
        out[str(key)] = [n, h.hexdigest()[:32]]
    return out


def _read(name: str, csv: CsvOptions) -> "pd.DataFrame":
    """A file's rows, CSV columns as the text they are written as (so a key `007` stays `007`)."""
    import pandas as pd

    fmt = datasets.data_format(name)
    if fmt == "parquet":
        import pyarrow
        import pyarrow.parquet as pq

        try:
            return pq.read_table(name).to_pandas()
        except (pyarrow.ArrowException, OSError) as exc:
            raise DataError(f"{name}: not a readable Parquet file: {exc}") from None
    try:
        return pd.read_csv(name, sep=csv.delimiter, quotechar=csv.quotechar, encoding=csv.text_encoding, dtype=str,
                           compression="gzip" if fmt == "csv.gz" else None)
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: cannot parse CSV: not {csv.encoding} text ({exc.reason})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{name}: cannot parse CSV: {first}") from None
