"""The training task: a plain function of (training spec, data path, expected data hash) that
returns a core.records.FitResult (the fitted pipeline's bytes, its holdout score and metadata). It
never touches the state log, the locks or the model store, so it can run in a child process or
on another host.

pandas and scikit-learn (and data/features.py, whose transformers subclass scikit-learn's) are
imported inside the functions: importing this module is cheap.
"""
import importlib
import io
import os
import pickle
import platform
import socket
import time
from typing import Any

from ..base.errors import ConfigError, DataError, ErrorType, TrainingError
from ..config.keys import MIN_HOLDOUT_ROWS
from ..config.records import Config, TrainingSpec
from ..core.records import FitResult
from ..data.datasets import read_frame
from ..data.read import frame_xy, labelled, read_decided, time_order


def resolve_callable(path: str, keypath: str, config_path: str) -> Any:
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


def validation_problem(config: Config) -> str | None:
    """validate_models' ConfigError as its text, None when the models are valid: what a fit
    process asked to validate answers (commands.shell)."""
    try:
        validate_models(config)
    except ConfigError as exc:
        return str(exc)
    return None


def validate_models(config: Config) -> None:
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
            fn = resolve_callable(m.trainer or "", f"{prefix}.trainer", config.path)
            if not callable(fn):
                raise ConfigError(f"{config.path}: {prefix}.trainer: '{m.trainer}' is not callable")


def build_pipeline(spec: TrainingSpec, X: Any, plans: dict[str, Any] | None = None, y: Any = None) -> Any:
    """Raw rows in, predictions out: each column as `features.plan` says (impute numbers; one-hot
    encode the top categories; date parts; drop ids, free text and `drop` columns)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from ..data import features

    if plans is None:
        plans = features.plan(X, spec.feature_types)
    transformers = features.transformers({c: p for c, p in plans.items() if p.used}, X)
    if not transformers:
        raise DataError("no usable feature columns: every one is dropped (see feature_types)")
    cls = resolve_callable(spec.estimator or "", f"models.{spec.name}.estimator", "config")
    estimator = cls(**dict(spec.params))
    if spec.task == "classification" and y is not None and features.needs_encoding(y):
        estimator = features.EncodedLabels(estimator)
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("model", estimator)])


def comparable(pred: Any, y_true: Any) -> Any:
    """Predictions in the labels' own type. A model stored by retrainctl 0.1 predicts text for
    numeric classes ('1' or '1.0'); compared as text with the integers the labels are now, every
    prediction would count as wrong. Text predictions are read as numbers where the labels are
    numbers; anything else is returned as it is."""
    import numpy as np
    import pandas as pd

    values = np.asarray(pred)
    truth = np.asarray(y_true)
    if values.dtype.kind in "OUS" and truth.dtype.kind in "iuf":
        numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy()
        if not np.isnan(numbers).any():
            return numbers.astype(truth.dtype) if truth.dtype.kind in "iu" and (numbers == np.round(numbers)).all() \
                else numbers
    return pred


def score(metric: str, y_true: Any, y_pred: Any) -> float:
    import numpy as np
    from sklearn import metrics as m

    if metric in ("r2", "rmse", "mae"):
        fast = _regression_score(metric, y_true, y_pred)
        if fast is not None:
            return fast

    if metric in ("accuracy", "f1_macro") and np.asarray(y_true).dtype.kind == "f":
        # fractional class labels, which scikit-learn's metrics take for a regression target
        y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)

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


def _regression_score(metric: str, y_true: Any, y_pred: Any) -> float | None:
    """r2, rmse or mae as scikit-learn computes them (its formulas, on the same (n, 1) arrays),
    in numpy alone: on a segment's few hundred rows scikit-learn's input checks cost more than
    the sums. None where those checks have something to say (values that are not finite numbers,
    fewer than two rows, shapes that differ): the caller asks scikit-learn."""
    import numpy as np

    try:
        y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    except (TypeError, ValueError):
        return None
    if y.ndim != 1 or y.shape != p.shape or len(y) < 2 or not (np.isfinite(y).all() and np.isfinite(p).all()):
        return None
    y, p = y.reshape(-1, 1), p.reshape(-1, 1)
    if metric == "mae":
        return float(np.mean(np.mean(np.abs(p - y), axis=0)))
    if metric == "rmse":
        return float(np.mean(np.sqrt(np.mean((y - p) ** 2, axis=0))))
    numerator = np.sum((y - p) ** 2, axis=0)[0]
    denominator = np.sum((y - np.mean(y, axis=0)) ** 2, axis=0)[0]
    if numerator == 0:
        return 1.0
    return float(1 - numerator / denominator) if denominator != 0 else 0.0


def holdout_split(spec: TrainingSpec, X: Any, y: Any, data_path: str, order: Any = None) -> Any:
    """(X_train, X_test, y_train, y_test, the test rows' time order). `holdout: latest` holds out
    the newest test_size of the rows by `order` (core of an out-of-time evaluation: the gate and
    the performance baseline then score the model on the period after the one it learnt from).
    `holdout: random` is a fixed random holdout: a row is held out when the salted hash of its
    content falls below test_size, or among the MIN_HOLDOUT_ROWS lowest hashes: as the file grows,
    the threshold never rises and a row can only leave the holdout; duplicates share a side; so a
    champion is never scored on rows it was trained on. Being random per row, it is stratified in
    expectation; a class too small to be split that way falls back to a seeded stratified split."""
    import numpy as np
    import pandas as pd

    _check_holdout_size(spec, len(y), data_path)
    if spec.task == "classification" and y.nunique() < 2:
        raise DataError(f"{data_path}: target '{spec.target}' has a single class; nothing to learn")
    order = np.arange(len(y), dtype=float) if order is None else np.asarray(order, dtype=float)
    if spec.holdout == "latest":
        newest = np.argsort(order, kind="stable")[len(y) - max(1, int(round(spec.test_size * len(y)))):]
        held: Any = np.zeros(len(y), dtype=bool)
        held[newest] = True
        if spec.task == "classification" and y[~held].nunique() < 2:
            raise DataError(f"{data_path}: the rows before the latest holdout hold a single class of "
                            f"'{spec.target}'; nothing to learn")
        return X[~held], X[held], y[~held], y[held], order[~held], order[held]
    salt = f"{spec.random_state:016d}"[-16:]
    # Labels hashed as text, as retrainctl 0.1 held them: rows keep their side across the upgrade.
    side_key = y.astype(str) if spec.task == "classification" else y
    rows = pd.concat([X, side_key], axis=1)
    hashes = pd.util.hash_pandas_object(rows, index=False, hash_key=salt).to_numpy()
    if spec.random_state and rows.select_dtypes(include=["object", "string", "category"]).shape[1] == 0:
        # pandas salts only the hashes of text: numbers alone would split alike for every random_state
        hashes = pd.util.hash_array(hashes ^ np.uint64(spec.random_state % 2**64))
    held = hashes < np.uint64(int(spec.test_size * 2**64))
    if held.sum() < MIN_HOLDOUT_ROWS:  # an unlucky draw on few rows: the next lowest hashes make up the floor
        held = hashes <= np.partition(hashes, MIN_HOLDOUT_ROWS - 1)[MIN_HOLDOUT_ROWS - 1]
    if _split_ok(spec, y, held):
        return X[~held], X[held], y[~held], y[held], order[~held], order[held]
    from sklearn.model_selection import train_test_split

    counts = y.value_counts() if spec.task == "classification" else None
    stratify = y if counts is not None and counts.min() >= 2 and round(len(y) * spec.test_size) >= len(counts) else None
    positions = np.arange(len(y))
    train_at, test_at = train_test_split(positions, test_size=spec.test_size, random_state=spec.random_state,
                                         stratify=stratify)
    return X.iloc[train_at], X.iloc[test_at], y.iloc[train_at], y.iloc[test_at], order[train_at], order[test_at]


def _check_holdout_size(spec: TrainingSpec, rows: int, data_path: str) -> None:
    """A holdout of fewer than MIN_HOLDOUT_ROWS rows would leave the promotion gate and the
    performance baseline to chance: a data error that says what would do."""
    import math

    if spec.test_size * rows >= MIN_HOLDOUT_ROWS - 1e-9:
        return
    share = math.ceil(MIN_HOLDOUT_ROWS / rows * 100) / 100
    fix = f"raise test_size to {share:g}, or " if share <= 0.5 else ""
    raise DataError(f"{data_path}: test_size {spec.test_size:g} of {rows} labelled rows holds out "
                    f"{int(spec.test_size * rows)}, fewer than the {MIN_HOLDOUT_ROWS} holdout rows the promotion gate "
                    f"needs: {fix}have at least {math.ceil(round(MIN_HOLDOUT_ROWS / spec.test_size, 6))} labelled rows")


def _split_ok(spec: TrainingSpec, y: Any, held: Any) -> bool:
    if held.all() or not held.any():
        return False
    if spec.task == "classification":
        return set(y[~held].unique()) == set(y.unique()) and y[held].nunique() >= min(2, y.nunique())
    return held.sum() >= 2


def run_task(spec: TrainingSpec, data_path: str, expected_hash: str | None, champion_bytes: bytes | None = None,
             data_size: int | None = None, data_files: list[list[str]] | None = None) -> FitResult:
    """Fit one model on what was decided: the first `data_size` bytes of one CSV file, or the
    `data_files` of a set (or of a Parquet or gzip file), each with its hash. The bytes parsed are
    the bytes hashed, so a file rewritten mid-read can never be trained on under the wrong hash.

    With an `estimator`, scikit-learn's parameter checks are skipped inside: the estimator's
    params were checked when the config was loaded (validate_models), and the pipeline's other
    steps and the metrics are called with fixed, valid arguments; on a segment of a few hundred
    rows those checks are a tenth of the fit. The data checks stay. A `trainer` is left as it is."""
    if spec.trainer:
        return _run_task(spec, data_path, expected_hash, champion_bytes, data_size, data_files)
    import sklearn

    with sklearn.config_context(skip_parameter_validation=True):
        return _run_task(spec, data_path, expected_hash, champion_bytes, data_size, data_files)


def _run_task(spec: TrainingSpec, data_path: str, expected_hash: str | None, champion_bytes: bytes | None,
              data_size: int | None, data_files: list[list[str]] | None) -> FitResult:
    import joblib
    import numpy as np
    import pandas as pd
    import sklearn

    from ..data import features

    started = time.monotonic()
    lap = _Laps()
    names, notes, left_out = None, [], []
    if data_files:  # a data set, Parquet or gzip: exactly the decided files, each checked against its hash
        loaded = read_frame(data_path, data_files, spec)
        df, data_hash, names, notes, sizes = loaded.frame, loaded.data_hash, loaded.files, loaded.notes, loaded.sizes
        left_out = loaded.left_out
        del loaded
        if spec.segment_by:  # each file was checked against its hash: the segment's rows are those decided on
            data_hash = expected_hash or data_hash
        elif expected_hash and data_hash != expected_hash:
            raise TrainingError(f"{data_path}: data changed after the decision to train; will retry on the next check",
                                error_type=ErrorType.DATA_CHANGED)
        data_lines = grown = None
    else:
        # data_lines: lines after the header when trained (missing targets included): the performance
        # check scores the rows appended after these when no eval_path is configured.
        df, data_hash, data_lines, grown = read_decided(spec, data_path, expected_hash, data_size)
        sizes = None
    X_all, y_all = frame_xy(df, data_path, spec, left_out)
    order_all = time_order(df, spec, data_path, sizes)
    del df
    X, y = labelled(X_all, y_all)
    order = order_all[y_all.notna().to_numpy()]
    lap("read_hash_parse")
    if len(y) < spec.min_data_size:
        raise DataError(f"{data_path}: only {len(y)} usable rows, min_data_size is {spec.min_data_size}")
    plans = features.plan(X, spec.feature_types, trainer=bool(spec.trainer))
    columns = {c: dict(p.to_dict(), dtype=str(X[c].dtype)) for c, p in plans.items()}
    if spec.trainer:  # the trainer's model is given (and later fed) only the columns it gets
        X = X[features.used(plans)]
    features_in = [str(c) for c in X.columns]
    # The drift reference counts every input row, those whose target is missing (not labelled
    # yet, or never to be) included: production sees them too.
    reference = reference_stats(drift_inputs(X_all, plans, spec.time_column))
    X_all = y_all = order_all = None
    lap("plan_columns_and_reference")
    X_train, X_test, y_train, y_test, train_order, test_order = holdout_split(spec, X, y, data_path, order)
    X = None  # the two parts are copies: the whole frame is not kept through the fit
    lap("holdout_split")

    if spec.trainer:
        fn = resolve_callable(spec.trainer, f"models.{spec.name}.trainer", "config")
        model = fn(X_train, y_train, dict(spec.params))
        if not hasattr(model, "predict"):
            raise TrainingError(f"trainer {spec.trainer} returned {type(model).__name__}, which has no predict()")
    else:
        model = build_pipeline(spec, X_train, plans, y_train)
        try:
            model.fit(X_train, y_train)
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"fit failed: {exc}", error_type=ErrorType.FIT_ERROR) from None
    fit_seconds = time.monotonic() - started
    lap("fit")

    # The holdout and an even sample of at most SPREAD_SAMPLE training rows (the in-sample period
    # spread below) predicted in one call: on a segment's few hundred rows a pipeline's predict
    # costs its input checks, whatever the rows.
    step = -(-len(y_train) // SPREAD_SAMPLE)
    pred, pred_in = _predict_both(model, X_test, X_train.iloc[::step])
    sanity = sanity_problem(spec.task, model, pred, y_test, X_test)
    candidate_score = score(spec.metric, y_test, pred)
    constant = constant_prediction(spec, y_train, len(y_test))
    constant_score = score(spec.metric, y_test, constant)
    constant_p = beats_constant_p(spec.metric, y_test, pred, constant)
    from ..core.quality import combined_spread, metric_sample, period_spread

    # What the performance test needs of the holdout score: it is a sample too, and (in time
    # order) a sample of periods whose scores vary by more than sampling error alone.
    baseline = metric_sample(spec.metric, y_test, pred)
    loss = candidate_score if spec.metric in ("mae", "rmse") else 1.0 - candidate_score
    # In-sample, on the even sample: a predict over the whole training set would cost a big model seconds.
    spread = combined_spread(period_spread(spec.metric, y_test, pred, test_order),
                             period_spread(spec.metric, y_train.iloc[::step], pred_in,
                                           train_order[::step], periods=TRAINING_PERIODS), loss)
    baseline.update(spread or {})

    champion_score = None
    champion_error = None
    if champion_bytes is not None:
        try:
            champion = joblib.load(io.BytesIO(champion_bytes))
            champion_score = score(spec.metric, y_test, comparable(champion.predict(X_test), y_test))
        except Exception as exc:  # a champion that cannot score these rows is no bar to clear
            champion_error = f"{type(exc).__name__}: {exc}"

    lap("score")
    # A plain pickle, which joblib.load reads as it reads its own format: joblib.dump pickles in
    # pure Python, ten times slower (a millisecond of each segment's fit).
    model_bytes = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    lap("dump")
    metadata = {
        "rows": int(len(y)),
        "train_rows": int(len(y_train)),
        "holdout_rows": int(len(y_test)),
        "features": features_in,
        "target": spec.target,
        "task": spec.task,
        "metric": spec.metric,
        "score": candidate_score,
        # a constant prediction's score on the same holdout: the promotion gate's skill bar
        "constant_score": constant_score,
        "constant_p": constant_p,  # one-sided p-value that the model's row losses are lower
        # what the performance test needs of the holdout score: it is a sample too
        "baseline": baseline,
        "estimator": spec.estimator or spec.trainer,
        "params": spec.params,
        "fit_seconds": round(fit_seconds, 3),
        "data_hash": data_hash,
        "data_grown": grown,  # appended to since the decision: trained on the bytes decided on
        "columns": columns,
        "column_warnings": [*notes, *features.warnings(plans)],
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
    if spec.task == "classification":
        metadata["classes"] = sorted(map(str, y.unique()))
        metadata["target_dtype"] = str(y.dtype)
    # The rows MLflow infers a model's signature from; a segment is not logged on its own (its
    # entry's one routing model is), so it sends none.
    sample = None if spec.segment_by else pickle.dumps(X_test.head(SIGNATURE_ROWS), protocol=pickle.HIGHEST_PROTOCOL)
    return FitResult(model_bytes=model_bytes, score=candidate_score, data_hash=data_hash, metadata=metadata,
                     champion_score=champion_score, champion_error=champion_error, sanity_problem=sanity,
                     input_sample=sample)


def _predict_both(model: Any, X_test: Any, X_sample: Any) -> tuple[Any, Any]:
    """(predictions of X_test, of X_sample) from one predict over both; two calls where the model
    does not answer one row per row (sanity_problem then names what it did with X_test)."""
    import numpy as np
    import pandas as pd

    both = np.asarray(model.predict(pd.concat([X_test, X_sample])))
    if both.ndim >= 1 and len(both) == len(X_test) + len(X_sample):
        return both[:len(X_test)], both[len(X_test):]
    return model.predict(X_test), model.predict(X_sample)


class _Laps:
    """Seconds per phase of the training task, each call closing the phase it names."""

    def __init__(self):
        self.seconds, self.last = {}, time.monotonic()

    def __call__(self, name):
        now = time.monotonic()
        self.seconds[name] = round(now - self.last, 3)
        self.last = now


def drift_inputs(X: Any, plans: dict[str, Any], time_column: str | None = None) -> Any:
    """The columns the model uses as numbers or categories, as it reads them: the ones drift is
    tested on (dates, calendar numbers and the time column move on, ids and text never repeat, so
    those would drift forever)."""
    import pandas as pd

    from ..data.features import DRIFT_TESTED

    kept = [c for c, p in plans.items() if p.used and p.type in DRIFT_TESTED and c != time_column]
    frame = X[kept]
    text = [c for c in kept if plans[c].type == "numeric" and not pd.api.types.is_numeric_dtype(frame[c])]
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in text}) if text else frame


EDGE_SAMPLE = 100_000  # values a numeric feature's bin edges are computed from
SIGNATURE_ROWS = 100   # rows of FitResult.input_sample
SPREAD_SAMPLE = 50_000  # training rows the in-sample period spread is measured on
TRAINING_PERIODS = 12  # chunks of the training rows, in time order, the in-sample period spread is measured on


def reference_stats(X: Any) -> dict[str, Any]:
    """Per-feature reference of the training inputs for the drift test, vectorised (the bins are
    core.quality.sample_counts' bins, so a check counts a sample the same way): a numeric
    feature's minimum, maximum, inner decile edges (numpy's linear quantiles) and its row count per
    bin (-inf, min), [min, e1), ..., [ek, max], (max, inf); a categorical feature's count per top
    category (text, as a CSV gives it back), the rest lumped into OTHER; and each feature's count
    of missing values, tested on its own."""
    import numpy as np

    from ..core.quality import BINS, LAYOUT, MAX_CATEGORIES, OTHER

    numeric = set(X.select_dtypes(include="number").columns)
    out = {}
    for column in X.columns:
        values = X[column]
        n = int(len(values))
        if column in numeric:
            present = values.to_numpy(dtype=float)
            missing = np.isnan(present)
            present = present[~missing]
            lo = hi = None
            edges, counts = [], [0, 0]
            if present.size:
                lo, hi = float(present.min()), float(present.max())
                # Edges from an evenly strided sample of at most EDGE_SAMPLE values: close to the
                # deciles; the counts are every row's whatever the edges (the test compares counts).
                sample = present[::-(-present.size // EDGE_SAMPLE)]
                edges = [e for e in np.unique(np.quantile(sample, np.arange(1, BINS) / BINS)).tolist() if lo < e <= hi]
                # Inner bin k is [e_k, e_k+1): the differences of the counts at or above each edge, one
                # vectorised comparison per edge (np.histogram sorts the values: 8 times slower)
                above = [int(np.count_nonzero(present >= e)) for e in edges]
                counts = [0, *(a - b for a, b in zip([present.size, *above], [*above, 0])), 0]
            out[str(column)] = {"kind": "numeric", "layout": LAYOUT, "min": lo, "max": hi, "edges": edges,
                                "counts": counts, "missing": int(missing.sum()), "n": n}
        else:
            present_values = values[values.notna()]
            labels = present_values.astype(str)
            top = labels.value_counts(sort=True).iloc[:MAX_CATEGORIES]
            categories, counts = [str(c) for c in top.index], [int(c) for c in top.to_numpy()]
            if len(labels) > sum(counts):
                categories.append(OTHER)
                counts.append(len(labels) - sum(counts))
            out[str(column)] = {"kind": "categorical", "layout": LAYOUT, "categories": categories, "counts": counts,
                                "missing": n - len(labels), "n": n}
    return out


def constant_prediction(spec: TrainingSpec, y_train: Any, rows: int) -> Any:
    """What a model without skill predicts for `rows` rows: the training labels' most frequent
    class, their median (for mae) or their mean: the bar a model must clear to have learnt
    anything (core.decide.skill)."""
    import numpy as np

    if spec.task == "classification":
        from sklearn.dummy import DummyClassifier

        dummy = DummyClassifier(strategy="most_frequent")
        dummy.fit(np.zeros((len(y_train), 1)), y_train)
        return dummy.predict(np.zeros((rows, 1)))
    # as scikit-learn's DummyRegressor (strategy median or mean) computes it, without its checks
    values = np.asarray(y_train, dtype=float).reshape(-1, 1)
    constant = np.median(values, axis=0) if spec.metric == "mae" else np.average(values, axis=0)
    return np.full(rows, constant[0])


def beats_constant_p(metric: str, y_true: Any, pred: Any, constant: Any) -> float:
    """One-sided p-value of "the model's loss per holdout row is lower than the constant
    prediction's": an exact sign test on the rows only one of the two gets right (McNemar) for a
    classifier, a Wilcoxon signed-rank test of the differences of absolute (mae) or squared
    errors for a regressor. 1.0 when the two never differ."""
    import numpy as np
    from scipy import stats

    if metric in ("accuracy", "f1_macro"):
        truth = np.asarray(y_true).astype(str)
        right, constant_right = np.asarray(pred).astype(str) == truth, np.asarray(constant).astype(str) == truth
        wins, losses = int(np.sum(right & ~constant_right)), int(np.sum(constant_right & ~right))
        if wins + losses == 0:
            return 1.0
        return float(stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
    y = np.asarray(y_true, dtype=float)
    loss = np.abs if metric == "mae" else np.square
    diff = loss(y - np.asarray(constant, dtype=float)) - loss(y - np.asarray(pred, dtype=float))
    diff = diff[np.isfinite(diff) & (diff != 0)]
    if diff.size == 0:
        return 1.0
    return float(stats.wilcoxon(diff, alternative="greater").pvalue)


def sanity_problem(task: str, model: Any, pred: Any, y_test: Any, X_test: Any) -> str | None:
    """None if the candidate behaves like a model should on raw rows; else what is wrong."""
    import numpy as np

    if len(pred) != len(X_test):
        return f"predicted {len(pred)} values for {len(X_test)} rows"
    if task == "regression":
        if not np.all(np.isfinite(np.asarray(pred, dtype=float))):
            return "predictions contain NaN or infinite values"
    else:
        known = set(map(str, getattr(model, "classes_", [])))
        missing = set(map(str, y_test.unique())) - known
        if known and missing:
            return f"classifier does not know class(es) {', '.join(sorted(missing))} seen in the holdout"
    return None
