"""What each input column becomes in a built-in pipeline: numeric, categorical (one-hot, top
categories only), datetime (numeric parts), or dropped (free text, ids, `drop`), inferred from
the training rows unless `feature_types` says. The transformers here are pickled into models,
so this module imports scikit-learn: only training and model loading import it, never `check`."""
import re
from typing import Any
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

# One-hot columns per categorical feature, the last for every rarer or unseen category: a column
# of 100,000 distinct strings costs 32 dense columns, not 100,000.
MAX_CATEGORIES = 32
# Rows looked at to infer a string column's type (the decision must not cost a pass over millions).
SAMPLE = 5000
ID_SHARE = 0.9      # distinct values per non-missing value at or above which strings are ids
TEXT_WORDS = 3.0    # mean words per value from which distinct strings are free text
DATE_SHARE = 0.95   # share of sampled values that must look like dates (or numbers)
DATE = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"
                  r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$")
DATE_PARTS = ("year", "month", "day", "weekday", "hour")
USED = ("numeric", "calendar", "categorical", "datetime")  # types a built-in pipeline keeps
# Types whose columns the drift test compares: dates, calendar numbers (a year, a week number) and
# the time column move on by design, ids and text never repeat.
DRIFT_TESTED = ("numeric", "categorical")
ROW_ID_MIN = 20     # rows before a run of increasing integers counts as a row number


@dataclass(frozen=True)
class Column:
    """One input column: its type, where the type came from, and what the pipeline does with it."""

    type: str          # one of config_keys.FEATURE_TYPES
    source: str        # "inferred" or "feature_types"
    treatment: str     # e.g. "median-imputed", "dropped: id-like (..)"
    used: bool         # an input of the model (and so tested for drift)

    def to_dict(self):
        return asdict(self)


def plan(X, feature_types, trainer=False):
    """{column: Column} for the training inputs `X`. With a user's trainer only `drop` and `id`
    columns are removed; the trainer gets every other column as it is."""
    plans = {}
    for name in X.columns:
        declared = feature_types.get(str(name))
        kind, why = (declared, None) if declared else _infer(X[name])
        source = "feature_types" if declared else "inferred"
        if trainer:
            passed = kind not in ("drop", "id") or source == "inferred"
            treatment = "passed to the trainer" if passed else f"dropped (feature_types: {kind})"
            plans[str(name)] = Column(kind, source, treatment, passed)
            continue
        plans[str(name)] = Column(kind, source, _treatment(kind, source, why, X[name]), kind in USED)
    return plans


def used(plans):
    return [c for c, p in plans.items() if p.used]


def _infer(series):
    """(type, evidence) of a column nobody declared."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "categorical", None
    if pd.api.types.is_numeric_dtype(series):
        if _row_number(series):
            return "id", "unique, increasing whole numbers, like a row number or an order id"
        return "numeric", None
    values = series.dropna()
    if values.empty:
        return "categorical", None
    sample = values.iloc[:SAMPLE].astype(str)
    if pd.to_numeric(sample, errors="coerce").notna().mean() >= DATE_SHARE:
        return "numeric", None  # numbers with a few stray marks ("?", "-"): those become missing
    if sample.str.match(DATE).mean() >= DATE_SHARE:
        return "datetime", None
    distinct = sample.nunique()
    if len(sample) >= 20 and distinct >= ID_SHARE * len(sample):
        words = sample.str.split().str.len().mean()
        if words >= TEXT_WORDS:
            return "text", f"{words:.1f} words per value on average"
        return "id", f"{distinct:,} distinct values in {len(sample):,} rows"
    return "categorical", None


def _row_number(series: Any) -> bool:
    """Whole numbers, one per row, each larger than the one before: a row number or an id handed
    out in order, which a model would learn the time (or the file order) from."""
    import pandas as pd

    if len(series) < ROW_ID_MIN or series.isna().any() or not pd.api.types.is_integer_dtype(series):
        return False
    return bool(series.is_monotonic_increasing and series.is_unique)


def _treatment(kind, source, why, series):
    if kind == "numeric":
        return "median-imputed"
    if kind == "calendar":
        return "median-imputed; not drift-tested (a calendar number moves on by design)"
    if kind == "categorical":
        distinct = series.nunique()
        if distinct > MAX_CATEGORIES - 1:
            return (f"one-hot, the {MAX_CATEGORIES - 1} most frequent of {distinct:,} values "
                    f"(the rest and unseen ones share one column)")
        return f"one-hot, {distinct} value(s)"
    if kind == "datetime":
        return f"parsed as dates: {', '.join(DATE_PARTS)}"
    reason = {"text": "free text", "id": "id-like", "drop": "drop"}[kind]
    if source == "feature_types":
        return f"dropped (feature_types: {reason})"
    return f"dropped: {reason}" + (f" ({why})" if why else "") + "; to keep it, declare its type in feature_types"


def warnings(plans):
    """One line per column dropped by inference, for the log: what a user did not ask for."""
    return [f"column '{c}' {p.treatment}" for c, p in plans.items()
            if p.source == "inferred" and not p.used]


def transformers(plans, X):
    """The ColumnTransformer entries for the planned columns of `X`; the rest are dropped. Only
    what needs it gets a transformer of this module (a model of plain scikit-learn parts can be
    saved with skops and loaded without retrainctl)."""
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    by_type: dict[str, list[str]] = {}
    for name, p in plans.items():
        kind = p.type
        if kind == "calendar":
            kind = "numeric"  # a number to the model; only the drift test leaves it out
        if kind == "numeric" and not pd.api.types.is_numeric_dtype(X[name]):
            kind = "numeric text"  # declared numeric, read as strings: parsed, the rest missing
        if kind in ("numeric", "categorical") and pd.api.types.is_bool_dtype(X[name]):
            kind = "flag"  # True/False (pandas' boolean: with gaps); SimpleImputer refuses a bool array
        by_type.setdefault(kind, []).append(name)
    out = []
    if by_type.get("numeric"):
        out.append(("num", SimpleImputer(strategy="median"), by_type["numeric"]))
    if by_type.get("numeric text"):
        out.append(("num_text", Pipeline([("parse", ToNumeric()), ("impute", SimpleImputer(strategy="median"))]),
                    by_type["numeric text"]))
    if by_type.get("categorical"):
        out.append(("cat", Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES,
                                     sparse_output=False)),
        ]), by_type["categorical"]))
    if by_type.get("flag"):  # missing is a value of its own where seen at fit; else it encodes as neither
        out.append(("flag", OneHotEncoder(handle_unknown="ignore", sparse_output=False), by_type["flag"]))
    if by_type.get("datetime"):
        out.append(("date", Pipeline([("parts", DateParts()), ("impute", SimpleImputer(strategy="median",
                                                                                        keep_empty_features=True))]),
                    by_type["datetime"]))
    return out


class ToNumeric(TransformerMixin, BaseEstimator):
    """Numbers from a column declared numeric; what does not parse becomes missing (then imputed).
    A no-op on columns pandas already parsed as numbers."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        import pandas as pd

        frame = pd.DataFrame(X)
        if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
            return frame
        return frame.apply(pd.to_numeric, errors="coerce")

    def get_feature_names_out(self, input_features=None):
        return input_features


class DateParts(TransformerMixin, BaseEstimator):
    """Year, month, day, weekday and hour of date strings, in the format seen at fit (guessed from
    the first value, so one format is parsed vectorised, not value by value); missing when a value
    does not parse."""

    def fit(self, X, y=None):
        import pandas as pd
        from warnings import catch_warnings, simplefilter

        from pandas.tseries.api import guess_datetime_format

        frame = pd.DataFrame(X)
        self.columns_ = [str(c) for c in frame.columns]
        self.formats_: list[str | None] = []
        for c in frame.columns:
            values = frame[c].dropna().iloc[:SAMPLE].astype("string")
            if values.empty:
                self.formats_.append(None)
                continue
            # 01.03.2024: day first where dots separate (European), month first otherwise, unless
            # the other order parses more of the values.
            first = str(values.iloc[0])
            dots = "." in first[:6]
            with catch_warnings():  # an ISO date asked day first: pandas warns, we only ask
                simplefilter("ignore", UserWarning)
                guesses = dict.fromkeys(f for f in (guess_datetime_format(first, dayfirst=dots),
                                                    guess_datetime_format(first, dayfirst=not dots)) if f)
            self.formats_.append(max(guesses, default=None, key=lambda f: int(
                pd.to_datetime(values, format=f, errors="coerce", utc=True).notna().sum())))
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X):
        import pandas as pd

        frame = pd.DataFrame(X)
        parts = []
        for c, fmt in zip(frame.columns, self.formats_):
            when = pd.to_datetime(frame[c].astype("string"), format=fmt, errors="coerce", utc=True)
            parts += [when.dt.year, when.dt.month, when.dt.day, when.dt.day_of_week, when.dt.hour]
        return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])

    def get_feature_names_out(self, input_features=None):
        return np.array([f"{c}_{p}" for c in self.columns_ for p in DATE_PARTS], dtype=object)


class EncodedLabels(ClassifierMixin, BaseEstimator):
    """A classifier for class labels scikit-learn refuses as they are (fractional numbers, which it
    takes for a regression target): fit on the labels' integer codes, it predicts the labels
    themselves, in their own type."""

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y):
        from sklearn.base import clone

        self.classes_ = np.unique(np.asarray(y))
        self.estimator_ = clone(self.estimator).fit(X, np.searchsorted(self.classes_, np.asarray(y)))
        return self

    def predict(self, X):
        return self.classes_[np.asarray(self.estimator_.predict(X), dtype=int)]

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)


def needs_encoding(y) -> bool:
    """Whether class labels must go through EncodedLabels: numbers that are not whole."""
    values = np.asarray(y)
    return values.dtype.kind == "f" and not bool(np.all(values == np.round(values)))
