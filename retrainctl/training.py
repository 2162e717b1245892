"""The training task: a plain function of (training spec, data path, expected data hash) that
returns a records.FitResult (the fitted pipeline's bytes, its holdout score and metadata). It
never touches the state log, the locks or the model store, so it can run in a child process or
on another host.

pandas and scikit-learn are imported inside the functions: importing this module is cheap.
"""
import importlib
import io
import os
import platform
import socket
import time

from .errors import ConfigError, DataError, TrainingError
from .fingerprint import csv_rows, hash_bytes
from .records import FitResult


def resolve_callable(path, keypath, config_path):
    """Import `package.module.Class` or `package.module:function`; ConfigError if it is not there."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{config_path}: {keypath}: cannot import module '{module_name}' ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        import difflib

        hint = difflib.get_close_matches(attr, [n for n in dir(module) if not n.startswith("_")], n=1)
        raise ConfigError(f"{config_path}: {keypath}: '{module_name}' has no '{attr}'"
                          + (f"; did you mean '{hint[0]}'?" if hint else "")) from None


def validate_models(config):
    """Check what only imports can tell: estimators exist, accept their params, and trainers are callable."""
    for name, m in config.models.items():
        prefix = f"models.{name}"
        if m.estimator:
            cls = resolve_callable(m.estimator, f"{prefix}.estimator", config.path)
            if not isinstance(cls, type) or not hasattr(cls, "fit") or not hasattr(cls, "predict"):
                raise ConfigError(f"{config.path}: {prefix}.estimator: '{m.estimator}' is not an estimator class with fit and predict")
            try:
                estimator = cls(**m.params)
                # scikit-learn checks parameter values only at fit; ask it now, so a bad value is a
                # config error at load (exit 2), not a failure at every retrain.
                check = getattr(estimator, "_validate_params", None)
                if callable(check):
                    check()
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{config.path}: {prefix}.params: {str(exc).splitlines()[0]}") from None
        else:
            fn = resolve_callable(m.trainer, f"{prefix}.trainer", config.path)
            if not callable(fn):
                raise ConfigError(f"{config.path}: {prefix}.trainer: '{m.trainer}' is not callable")


def csv_options(spec):
    """The model's `csv:` options (the defaults for a spec from before they existed)."""
    from .config import CsvOptions

    return CsvOptions(**spec.get("csv") or {})


def load_frame(raw, data_path, spec):
    """Parse CSV bytes into (X, y), with errors that name the file and column."""
    return frame_xy(parse_csv(raw, data_path, spec), data_path, spec)


def parse_csv(raw, data_path, spec):
    """CSV bytes as a DataFrame, read with the model's `csv:` options, with errors that name the file."""
    import pandas as pd

    if not raw.strip():
        raise DataError(f"{data_path}: data file is empty")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{data_path}: not a text CSV file (binary content)")
    opts = csv_options(spec)
    header = _header(raw, opts)
    # Declared non-numeric columns are read as written: a category `007` stays `007`.
    as_text = [c for c, kind in (spec.get("feature_types") or {}).items() if kind != "numeric" and c in header]
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


def frame_xy(df, data_path, spec):
    """(X, y) of a parsed data file or set, with errors that name it and the column."""
    import pandas as pd

    target = spec["target"]
    if target not in df.columns:
        raise DataError(f"{data_path}: target column '{target}' not found (columns: {', '.join(map(str, df.columns))})")
    features = spec["features"] or [c for c in df.columns if c != target]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(f"{data_path}: feature column(s) not found: {', '.join(missing)}")
    if not features:
        raise DataError(f"{data_path}: no feature columns besides the target '{target}'")
    unknown = [c for c in spec.get("feature_types") or {} if c not in df.columns]
    if unknown:
        raise DataError(f"{data_path}: feature_types names column(s) not in the file: {', '.join(unknown)}")
    df = df[df[target].notna()]
    if df.empty:
        raise DataError(f"{data_path}: every row lacks the target '{target}'")
    X = df[features]
    y = df[target]
    if spec["task"] == "regression":
        try:
            y = pd.to_numeric(y)
        except (ValueError, TypeError):
            raise DataError(f"{data_path}: target column '{target}' is not numeric, but the task is regression") from None
    else:
        y = y.astype(str)
    return X, y


def _header(raw, opts):
    import csv

    text = raw[:1 << 20].decode(opts.text_encoding, "replace")
    try:
        return next(csv.reader(io.StringIO(text), delimiter=opts.delimiter, quotechar=opts.quotechar), [])
    except csv.Error:
        return []


def repeated_columns(names):
    """Header names given more than once (blank ones aside: pandas numbers those itself)."""
    seen, repeated = set(), []
    for name in names:
        if name.strip() and name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def build_pipeline(spec, X, plans=None):
    """Raw rows in, predictions out: each column as `features.plan` says (impute numbers; one-hot
    encode the top categories; date parts; drop ids, free text and `drop` columns)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from . import features

    if plans is None:
        plans = features.plan(X, spec.get("feature_types") or {})
    transformers = features.transformers({c: p for c, p in plans.items() if p.used}, X)
    if not transformers:
        raise DataError("no usable feature columns: every one is dropped (see feature_types)")
    cls = resolve_callable(spec["estimator"], f"models.{spec['name']}.estimator", "config")
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("model", cls(**spec["params"]))])


def score(metric, y_true, y_pred):
    from sklearn import metrics as m

    if metric == "accuracy":
        return float(m.accuracy_score(y_true, y_pred))
    if metric == "f1_macro":
        return float(m.f1_score(y_true, y_pred, average="macro"))
    if metric == "r2":
        return float(m.r2_score(y_true, y_pred))
    if metric == "rmse":
        return float(m.root_mean_squared_error(y_true, y_pred))
    if metric == "mae":
        return float(m.mean_absolute_error(y_true, y_pred))
    raise ValueError(metric)


def holdout_split(spec, X, y, data_path):
    """A fixed holdout: a row is held out when the salted hash of its content falls below
    test_size. Rows keep their side as the file grows, duplicates share a side, so a champion
    is never scored on rows it was trained on. Being random per row, it is stratified in
    expectation; a class too small to be split that way falls back to a seeded stratified split."""
    import numpy as np
    import pandas as pd

    if len(y) < 4:
        raise DataError(f"{data_path}: only {len(y)} usable rows; too few to train and hold out a test set")
    if spec["task"] == "classification" and y.nunique() < 2:
        raise DataError(f"{data_path}: target '{spec['target']}' has a single class; nothing to learn")
    salt = f"{spec['random_state']:016d}"[-16:]
    hashes = pd.util.hash_pandas_object(pd.concat([X, y], axis=1), index=False, hash_key=salt).to_numpy()
    held = hashes < np.uint64(int(spec["test_size"] * 2**64))
    if _split_ok(spec, y, held):
        return X[~held], X[held], y[~held], y[held]
    from sklearn.model_selection import train_test_split

    counts = y.value_counts() if spec["task"] == "classification" else None
    stratify = y if counts is not None and counts.min() >= 2 and round(len(y) * spec["test_size"]) >= len(counts) else None
    return train_test_split(X, y, test_size=spec["test_size"], random_state=spec["random_state"], stratify=stratify)


def _split_ok(spec, y, held):
    if held.all() or not held.any():
        return False
    if spec["task"] == "classification":
        return set(y[~held].unique()) == set(y.unique()) and y[held].nunique() >= min(2, y.nunique())
    return held.sum() >= 2


def read_data(data_path, limit=None):
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


def _take(fh, limit):
    if limit is None:
        return fh.read(), False
    return fh.read(limit), fh.read(1) != b""


def read_decided(spec, data_path, expected_hash):
    """(bytes, hash, rows, grown): the bytes the decision to train was made on, parsed to (X, y).
    A file that has grown since is read up to the size it had then: if those bytes still hash as
    decided, it was only appended to, and the fit uses them (minus a last line still being
    written). Otherwise it changed: TrainingError. The hash and the row count run on a thread
    beside the parse (blake3 and pandas' tokenizer release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    size = spec.get("data_size") if expected_hash else None
    raw, grown = read_data(data_path, size)
    if grown and not raw.endswith(b"\n"):
        whole = raw[:raw.rfind(b"\n") + 1]
    else:
        whole = raw
    quotechar = csv_options(spec).quotechar
    with ThreadPoolExecutor(1, thread_name_prefix="hash") as pool:
        hashing = pool.submit(lambda: (hash_bytes(raw), csv_rows(whole, quotechar)))
        try:
            X, y = load_frame(whole, data_path, spec)
        finally:  # a file that changed is "data changed", even where it no longer parses
            data_hash, rows = hashing.result()
            if expected_hash and data_hash != expected_hash:
                how = " (rewritten, not appended to)" if size is not None else ""
                raise TrainingError(f"{data_path}: data changed after the decision to train{how}; "
                                    f"will retry on the next check", error_type="data_changed")
    return X, y, data_hash, rows, grown


def run_task(spec, data_path, expected_hash, champion_bytes=None):
    """Fit one model. The bytes parsed are the bytes hashed, so a file rewritten mid-read can
    never be trained on under the wrong hash."""
    import joblib
    import numpy as np
    import pandas as pd
    import sklearn

    from . import features

    started = time.monotonic()
    lap = _Laps()
    files, names = spec.get("data_files"), None
    if files:  # a data set, Parquet or gzip: exactly the decided files, each checked against its hash
        from .datasets import read_frame

        df, data_hash, names = read_frame(data_path, files, spec)
        if expected_hash and data_hash != expected_hash:
            raise TrainingError(f"{data_path}: data changed after the decision to train; will retry on the next check",
                                error_type="data_changed")
        X, y = frame_xy(df, data_path, spec)
        del df
        data_lines = grown = None
    else:
        # data_lines: lines after the header when trained (missing targets included): the performance
        # check scores the rows appended after these when no eval_path is configured.
        X, y, data_hash, data_lines, grown = read_decided(spec, data_path, expected_hash)
    lap("read_hash_parse")
    if len(y) < spec.get("min_data_size", 1):
        raise DataError(f"{data_path}: only {len(y)} usable rows, min_data_size is {spec['min_data_size']}")
    plans = features.plan(X, spec.get("feature_types") or {}, trainer=bool(spec.get("trainer")))
    columns = {c: dict(p.to_dict(), dtype=str(X[c].dtype)) for c, p in plans.items()}
    if spec.get("trainer"):  # the trainer's model is given (and later fed) only the columns it gets
        X = X[features.used(plans)]
    features_in = [str(c) for c in X.columns]
    reference = reference_stats(drift_inputs(X, plans))
    lap("plan_columns_and_reference")
    X_train, X_test, y_train, y_test = holdout_split(spec, X, y, data_path)
    X = None  # the two parts are copies: the whole frame is not kept through the fit
    lap("holdout_split")

    if spec.get("trainer"):
        fn = resolve_callable(spec["trainer"], f"models.{spec['name']}.trainer", "config")
        model = fn(X_train, y_train, dict(spec["params"]))
        if not hasattr(model, "predict"):
            raise TrainingError(f"trainer {spec['trainer']} returned {type(model).__name__}, which has no predict()")
    else:
        model = build_pipeline(spec, X_train, plans)
        try:
            model.fit(X_train, y_train)
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"fit failed: {exc}", error_type="fit_error") from None
    fit_seconds = time.monotonic() - started
    lap("fit")

    pred = model.predict(X_test)
    sanity = sanity_problem(spec, model, pred, y_test, X_test)
    candidate_score = score(spec["metric"], y_test, pred)
    from .quality import metric_sample

    baseline = metric_sample(spec["metric"], y_test, pred)

    champion_score = None
    champion_error = None
    if champion_bytes is not None:
        try:
            champion = joblib.load(io.BytesIO(champion_bytes))
            champion_score = score(spec["metric"], y_test, champion.predict(X_test))
        except Exception as exc:  # a champion that cannot score these rows is no bar to clear
            champion_error = f"{type(exc).__name__}: {exc}"

    lap("score")
    buf = io.BytesIO()
    joblib.dump(model, buf)
    lap("dump")
    metadata = {
        "rows": int(len(y)),
        "train_rows": int(len(y_train)),
        "holdout_rows": int(len(y_test)),
        "features": features_in,
        "target": spec["target"],
        "task": spec["task"],
        "metric": spec["metric"],
        "score": candidate_score,
        # what the performance test needs of the holdout score: it is a sample too
        "baseline": baseline,
        "estimator": spec.get("estimator") or spec.get("trainer"),
        "params": spec["params"],
        "fit_seconds": round(fit_seconds, 3),
        "data_hash": data_hash,
        "data_grown": grown,  # appended to since the decision: trained on the bytes decided on
        "columns": columns,
        "column_warnings": features.warnings(plans),
        # where the fit ran: a cluster worker, a child process of the controller, ...
        "fit_host": socket.gethostname(),
        "fit_pid": os.getpid(),
        "data_lines": data_lines,
        "reference": reference,
        "phase_seconds": lap.seconds,  # where the task's time went (`make bench` row 8 shows it)
        "libraries": {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                      "pandas": pd.__version__, "numpy": np.__version__, "joblib": joblib.__version__},
    }
    if names:  # a set's files when trained: the performance check scores the files added since
        metadata["data_files"] = names
    if spec["task"] == "classification":
        metadata["classes"] = sorted(map(str, y.unique()))
    return FitResult(model_bytes=buf.getvalue(), score=candidate_score, data_hash=data_hash, metadata=metadata,
                     champion_score=champion_score, champion_error=champion_error, sanity_problem=sanity)


class _Laps:
    """Seconds per phase of the training task, each call closing the phase it names."""

    def __init__(self):
        self.seconds, self.last = {}, time.monotonic()

    def __call__(self, name):
        now = time.monotonic()
        self.seconds[name] = round(now - self.last, 3)
        self.last = now


def drift_inputs(X, plans):
    """The columns the model uses as numbers or categories, as it reads them: the ones drift is
    tested on (dates move on and ids and text never repeat, so those would drift forever)."""
    import pandas as pd

    kept = [c for c, p in plans.items() if p.used and p.type in ("numeric", "categorical")]
    frame = X[kept]
    text = [c for c in kept if plans[c].type == "numeric" and not pd.api.types.is_numeric_dtype(frame[c])]
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in text}) if text else frame


EDGE_SAMPLE = 100_000  # values a numeric feature's bin edges are computed from


def reference_stats(X):
    """Per-feature reference of the training inputs for the drift test, vectorised: a numeric
    feature's inner decile edges (numpy's linear quantiles) and its row count per bin
    [-inf, e1), [e1, e2), ... plus a last bin of missing values; a categorical feature's count
    per top category (text, as a CSV gives it back), the rest lumped into OTHER. The bins are
    quality.sample_counts' bins, so a check counts a sample the same way."""
    import numpy as np

    from .quality import BINS, MAX_CATEGORIES, MISSING, OTHER

    numeric = set(X.select_dtypes(include="number").columns)
    out = {}
    for column in X.columns:
        values = X[column]
        n = int(len(values))
        if column in numeric:
            present = values.to_numpy(dtype=float)
            missing = np.isnan(present)
            present = present[~missing]
            edges, counts = [], [0]
            if present.size:
                # Edges from an evenly strided sample of at most EDGE_SAMPLE values: close to the
                # deciles; the counts are every row's whatever the edges (the test compares counts).
                sample = present[::-(-present.size // EDGE_SAMPLE)]
                edges = np.unique(np.quantile(sample, np.arange(1, BINS) / BINS)).tolist()
                # Bin k is [e_k, e_k+1): the differences of the counts at or above each edge, one
                # vectorised comparison per edge (np.histogram sorts the values: 8 times slower)
                above = [int(np.count_nonzero(present >= e)) for e in edges]
                counts = [a - b for a, b in zip([present.size, *above], [*above, 0])]
            counts.append(int(missing.sum()))
            out[str(column)] = {"kind": "numeric", "edges": edges, "counts": counts, "n": n}
        else:
            labels = values.astype(str).where(values.notna(), MISSING)
            top = labels.value_counts(sort=True).iloc[:MAX_CATEGORIES]
            categories, counts = [str(c) for c in top.index], [int(c) for c in top.to_numpy()]
            if n > sum(counts):
                categories.append(OTHER)
                counts.append(n - sum(counts))
            out[str(column)] = {"kind": "categorical", "categories": categories, "counts": counts, "n": n}
    return out


def sanity_problem(spec, model, pred, y_test, X_test):
    """None if the candidate behaves like a model should on raw rows; else what is wrong."""
    import numpy as np

    if len(pred) != len(X_test):
        return f"predicted {len(pred)} values for {len(X_test)} rows"
    if spec["task"] == "regression":
        if not np.all(np.isfinite(np.asarray(pred, dtype=float))):
            return "predictions contain NaN or infinite values"
    else:
        known = set(map(str, getattr(model, "classes_", [])))
        missing = set(map(str, y_test.unique())) - known
        if known and missing:
            return f"classifier does not know class(es) {', '.join(sorted(missing))} seen in the holdout"
    return None
