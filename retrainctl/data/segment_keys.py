"""Which segment each row of a parsed file belongs to, spelled as in the segment's name, and a
segment's rows taken out of a file: discovery (segment_index.py) and the fit (datasets.read_frame)
key the rows the same way. pandas and numpy are imported inside the functions."""
from typing import TYPE_CHECKING, Any

from ..core.segment_names import MISSING, SEPARATOR, encode_value

if TYPE_CHECKING:
    import pandas as pd


def key_text(column: "pd.Series") -> Any:
    """Each row's key value as the name spells it (core.segment_names.encode_value), as a numpy
    object array: text as written (CSV key columns are read as text), other values as str() of
    what pandas holds (a Parquet integer 42 is `42`), missing values `~NA`. Encoded once per
    distinct value."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    encoded = [encode_value(v if isinstance(v, str) else str(v)) for v in uniques]
    return np.array([*encoded, MISSING], dtype=object)[codes]  # code -1 (missing) takes the last


def row_keys(frame: "pd.DataFrame", columns: tuple[str, ...]) -> Any:
    """Each row's segment key (the name after `<entry>:`), as a numpy object array."""
    keys = key_text(frame[columns[0]])
    for column in columns[1:]:
        keys = keys + SEPARATOR + key_text(frame[column])
    return keys


def column_names(part: Any) -> list[Any]:
    """The column names of a parsed file: a DataFrame or a pyarrow Table."""
    return list(part.column_names) if hasattr(part, "column_names") else list(part.columns)


def groups(part: Any, columns: tuple[str, ...]) -> tuple[Any, dict[str, tuple[int, int]] | None]:
    """(the rows of a parsed file (a DataFrame or a pyarrow Table) ordered by segment, each
    segment's rows in their order in the file, {key: (start, end)} of each segment's rows in it);
    (part, None) when the file holds none of the key columns (a Hive-style partition: its folders
    say its segment). Reordered once, so that each segment is then a slice: taking rows by position
    per segment costs the whole column each time with some column types (chunked Arrow text)."""
    import numpy as np
    import pandas as pd

    names = column_names(part)
    if not any(c in names for c in columns):
        return part, None
    keys_frame = part.select(list(columns)).to_pandas() if hasattr(part, "column_names") else part
    codes, uniques = pd.factorize(row_keys(keys_frame, columns))
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(uniques)))
    starts = np.concatenate(([0], ends[:-1]))
    ordered = part.take(order) if hasattr(part, "column_names") else part.iloc[order]
    return ordered, {str(k): (a, b) for k, a, b in zip(uniques, starts.tolist(), ends.tolist())}


def rows(part: Any, span: tuple[int, int]) -> Any:
    """Rows start..end of a DataFrame or a pyarrow Table (as ordered by groups()), without copying:
    the reader only selects columns and rows of it (new frames), never writes to it."""
    start, end = span
    if hasattr(part, "column_names"):
        return part.slice(start, end - start)
    return part.iloc[start:end]
