"""Check-time model quality, the shell around quality.py: score the current model on recent
labelled rows (performance trigger) and compare recent inputs with its training reference (drift
trigger). Results are cached in <state_dir>/quality.json under a key of everything they depend on,
so a check where nothing changed reads one small JSON file and imports nothing heavy."""
import csv
import io
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import DataError, IntegrityError, TrainingError
from ..base.fsutil import atomic_write_json, best_effort, read_json
from ..base.locks import file_lock
from ..config.records import METRICS, CsvOptions, ModelConfig, default_record
from ..core import quality
from ..core.quality import Judged
from ..core.decide import Reason
from ..core.records import TriggerType
from ..core.segment_names import entry_key
from ..data import datasets
from ..data.fingerprint import FingerprintCache, hash_bytes, row_offset, set_hash
from ..data.read import frame_xy, labelled, load_frame, repeated_columns

log = logging.getLogger(__name__)

CACHE_FILE = "quality.json"
LOCK_TIMEOUT = 60.0
FLUSH_SECONDS = 1.0
# What pandas reads as missing in a text column, so drift inputs are binned as training saw them.
NA_TEXT = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})

STATUS_FIELDS = ("eval_source", "eval_rows", "eval_score", "eval_ci", "eval_baseline", "eval_baseline_rows",
                 "eval_p_value", "eval_p_adjusted", "eval_correction", "eval_detectable", "eval_method",
                 "eval_degradation", "degraded", "eval_note", "drift_source", "drift_rows", "drift_psi",
                 "drift_p_values", "drift_p_value", "drift_p_adjusted", "drift_correction", "drifted_features",
                 "drifted", "drift_action", "drift_note", "quality_notes")


class QualityCache:
    """The last evaluation of each model per kind ("performance", "drift"), with the key it was
    computed under. A cache, not history: losing it costs one re-evaluation, never a wrong answer.
    Read once per command; what a command computes is merged into the file under its lock by
    flush(), so that ten thousand segments evaluated in one check write it once, not each time."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, CACHE_FILE)
        self._entries: dict[str, Any] | None = None
        self.pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.flushed = time.monotonic()

    @property
    def entries(self) -> dict[str, Any]:
        if self._entries is None:  # read when first needed: a check of models without eval or drift paths never does
            data = read_json(self.path, default={})
            self._entries = data if isinstance(data, dict) else {}
        return self._entries

    def get(self, model: str, kind: str, key: str) -> dict[str, Any] | None:
        entry = (self.entries.get(model) or {}).get(kind)
        if isinstance(entry, dict) and entry.get("key") == key and isinstance(entry.get("result"), dict):
            return entry["result"]
        return None

    def put(self, model: str, kind: str, key: str, result: dict[str, Any]) -> None:
        entry = {"key": key, "result": result}
        self.entries.setdefault(model, {})[kind] = entry
        self.pending[model, kind] = entry

    def flush(self, final: bool = True) -> None:
        """Merge this command's results into the file; unless `final`, at most once a second."""
        if not self.pending or (not final and time.monotonic() - self.flushed < FLUSH_SECONDS):
            return
        pending, self.pending = self.pending, {}
        self.flushed = time.monotonic()
        if not os.access(self.state_dir, os.W_OK):
            return  # `status` before the first check, or on a read-only state dir, writes nothing
        with best_effort(self.path), file_lock(os.path.join(self.state_dir, "quality.lock"), LOCK_TIMEOUT):
            data = read_json(self.path, default={})
            data = data if isinstance(data, dict) else {}
            for (model, kind), entry in pending.items():
                data.setdefault(model, {})[kind] = entry
            atomic_write_json(self.path, data)


@dataclass
class Assessment:
    performance: Reason | None = None
    drift: Reason | None = None
    keys: dict = field(default_factory=dict)      # evidence keys of the triggers that fired
    details: dict = field(default_factory=dict)   # the status fields
    evidence: dict = field(default_factory=dict)  # trigger -> the test's numbers, for the history record
    alerts: dict = field(default_factory=dict)    # evidence keys of the signals that only alert

    def observation_fields(self):
        return {"performance": self.performance, "drift": self.drift, "quality": self.details,
                "quality_keys": dict(self.keys) or None, "quality_evidence": dict(self.evidence) or None,
                "quality_alerts": dict(self.alerts) or None}


def status_fields(details):
    """The quality columns of a `status` row (all present, None when not evaluated)."""
    details = details or {}
    return {k: details.get(k, [] if k == "quality_notes" else None) for k in STATUS_FIELDS}


SegmentOf = Callable[[ModelConfig, str], "tuple[Any, list[list[str]]] | None"]
# (segment, kind "performance" | "drift", its p-value) -> its Correction across its entry's segments
FamilyOf = Callable[[ModelConfig, str, float], "quality.Correction | None"]


def assess(config, store, model, current, data_hash, data_rows, handled, fpcache, cache, dataset=None,
           segment_of: SegmentOf | None = None, family: FamilyOf | None = None):
    """Evaluate the performance and drift triggers of `model`'s current version. `handled` is the
    set of (trigger, evidence key) a quality-triggered retrain already ran for (no retrain loops);
    `cache` the command's QualityCache; `dataset` is the data path's datasets.DataSet (its files,
    for a set's new partitions). A segment model is evaluated on its own rows of its entry's
    eval_path and drift_path: `segment_of(model, "eval" | "drift")` gives them (observe.observer),
    and its tests are corrected across the segments of its entry: `family(model, kind, p)` gives
    its Correction (observe.observer, from segment_p_values)."""
    out = Assessment(details=status_fields(None))
    if current is None or data_hash is None:
        return out
    for kind, evaluate in ((TriggerType.PERFORMANCE, _performance), (TriggerType.DRIFT, _drift)):
        try:
            verdict, evidence, fields = evaluate(config, store, model, current, data_hash, data_rows, fpcache, cache,
                                                 dataset, segment_of, family)
        except (DataError, IntegrityError) as exc:
            log.warning("%s: %s check: %s", model.name, kind, exc)
            out.details["quality_notes"].append(f"{kind}: {exc}")
            continue
        except Exception as exc:  # a hostile eval/drift file or model must not stop every model's check
            log.warning("%s: %s check failed: %s: %s", model.name, kind, type(exc).__name__, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            out.details["quality_notes"].append(f"{kind}: check failed: {type(exc).__name__}: {exc}")
            continue
        out.details.update(fields)
        if verdict is None:
            continue
        if verdict.state != Judged.DEGRADED:
            if verdict.state in (Judged.INSUFFICIENT, Judged.ERROR):
                out.details["quality_notes"].append(f"{kind}: {verdict.text}")
            elif verdict.note:
                out.details["quality_notes"].append(f"{kind}: {verdict.note}")
            continue
        # drift_action alert: a signal for status, metrics and alerts that core.decide.fire does not
        # retrain on, so there is no retrain to remember and no loop to prevent
        alert = kind == "drift" and model.policy.drift_action == "alert"
        key = f"{data_hash}|{evidence}"
        if not alert and handled.get(kind) == key:
            out.details["quality_notes"].append(
                f"{kind} still degraded, but already answered for this training data and "
                f"{'eval data' if kind == 'performance' else 'drift inputs'} (a retrain, or none because "
                f"the training data had not changed); waiting for either to change")
            continue
        setattr(out, kind, Reason(kind, verdict.text))
        out.evidence[kind] = verdict.evidence
        if alert:
            out.alerts[kind] = key
        else:
            out.keys[kind] = key
    return out


def _relpath(config, path):
    return os.path.relpath(path, config.base_dir)


def _read(path, expected_hash):
    """The bytes of a fingerprinted file, refusing them if they changed since (next check retries)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if hash_bytes(raw) != expected_hash:
        raise DataError(f"{path}: changed while being evaluated; evaluated again on the next check")
    return raw


def _cached(cache, model, kind, key, compute):
    result = cache.get(model.name, kind, key)
    if result is None:
        result = compute()
        cache.put(model.name, kind, key, result)
        if result.get("error"):
            log.warning("%s: %s check: %s", model.name, kind, result["error"])
    return result


# --- performance ---------------------------------------------------------------------------------

def _performance(config, store, model, current, data_hash, data_rows, fpcache, cache, dataset=None, segment_of=None,
                 family=None):
    meta = current.metadata
    policy = model.policy
    metric = meta.get("metric") or model.metric
    baseline = meta.get("score")
    fields = {"eval_baseline": baseline, "eval_baseline_rows": meta.get("holdout_rows")}
    new = datasets.new_files(dataset.files, meta) if dataset is not None and dataset.is_set else None
    if segment_of is not None:  # a segment: its own rows of eval_path; no other source (see docs/many-models.md)
        if not model.eval_path:
            return None, None, {}
        found = segment_of(model, "eval")
        source = f"{_relpath(config, model.eval_path)} [{entry_key(model.name)}]"
        if found is None:
            fields.update(eval_source=source, eval_rows=0)
            return None, None, fields
        seg, files = found
        available, evidence = seg.rows, f"eval:{seg.hash}"
        labelled = _loader(model, model.eval_path, None, 0, files)
    elif model.eval_path:
        fp = datasets.fingerprint(fpcache, model.eval_path, model.csv.quotechar)
        source = _relpath(config, model.eval_path)
        available, evidence = fp.rows, f"eval:{fp.hash}"
        labelled = _loader(model, model.eval_path, fp.hash, 0, fp.fit_files)
    elif new is not None:  # a data set: the partitions added since training
        if not new:
            fields["eval_rows"] = 0
            return None, None, fields
        added = set(new)
        pairs = [list(f) for f in dataset.files if f[0] in added]
        source = f"{dataset.label(config.base_dir)}: {len(pairs)} new file(s)"
        available = sum(n for f, n in zip(dataset.files, dataset.counts) if f[0] in added)
        evidence = f"files:{set_hash(map(tuple, pairs))}"
        labelled = _loader(model, model.data_path, None, 0, pairs)
    else:
        lines = meta.get("data_lines")
        if lines is None or data_rows is None or data_rows <= lines:
            fields["eval_rows"] = 0 if lines is not None else None
            return None, None, fields  # no new labelled rows: nothing to say
        source = f"{_relpath(config, model.data_path)} (appended rows)"
        available, evidence = data_rows - lines, f"tail:{lines}"
        labelled = _loader(model, model.data_path, data_hash, lines, None)
    fields.update(eval_source=source, eval_rows=available)
    if baseline is None or metric not in METRICS:
        fields["eval_note"] = f"model v{current.version} has no holdout score to compare with"
        return quality.Verdict(Judged.ERROR, fields["eval_note"]), None, fields
    test = None
    if available >= policy.min_eval_rows:
        key = "|".join(map(str, (current.version, meta.get("sha256"), data_hash if not model.eval_path else "",
                                 evidence, metric, model.target, policy.quality_alpha)))
        result = _cached(cache, model, "performance", key,
                         lambda: _score(store, model, current, metric, *labelled))
        if result.get("error"):
            fields["eval_note"] = result["error"]
            return quality.Verdict(Judged.ERROR, result["error"]), evidence, fields
        available = result["rows"]
        test = result["test"]
        fields.update(eval_rows=available, eval_score=result["score"], eval_ci=test["ci"],
                      eval_baseline=test["baseline"], eval_baseline_rows=test["baseline_n"],
                      eval_p_value=test["p_value"], eval_detectable=test["detectable"], eval_method=test["method"])
    correction = _correction(family, model, "performance", test["p_value"]) if test is not None else None
    if correction is not None:
        fields.update(eval_p_adjusted=correction.p_adjusted, eval_correction=correction.evidence())
    verdict = quality.performance_verdict(metric, test, available, METRICS[metric][1], policy.performance_threshold,
                                          policy.quality_alpha, policy.min_eval_rows, source, correction)
    fields.update(eval_note=verdict.text, eval_degradation=verdict.degradation,
                  degraded=None if verdict.state == Judged.INSUFFICIENT else verdict.state == Judged.DEGRADED)
    return verdict, evidence, fields


def _loader(model, path, expected_hash, skip_lines, files):
    """(path, spec -> (X, y) of the labelled rows): a set's (or Parquet file's) listed files, each
    checked against its hash; else one CSV file's rows after its first `skip_lines` data rows."""
    def load(spec):
        if files:
            loaded = datasets.read_frame(path, files, spec)
            return labelled(*frame_xy(loaded.frame, path, spec, loaded.left_out))
        raw = _read(path, expected_hash)
        quotechar = model.csv.quotechar
        raw = raw[:row_offset(raw, 0, quotechar)] + raw[row_offset(raw, skip_lines, quotechar):]
        return load_frame(raw, path, spec)
    return path, load


def _score(store, model, current, metric, path, load):
    """Score the current model on the labelled rows of `path` that `load(spec)` gives: in-process,
    since the result is cached per (model, data, eval data) and an eval set is small; the model
    file is checksummed before anything unpickles it."""
    model_bytes = store.read_verified(current)
    import joblib

    try:
        estimator = joblib.load(io.BytesIO(model_bytes))
    except Exception as exc:  # reported, not fatal: see score_rows
        return {"error": f"{path}: cannot load model v{current.version}: {type(exc).__name__}: {exc}"}
    spec = model.training_spec()
    spec = spec.with_features(current.metadata.get("features") or spec.features)
    try:
        X, y = load(spec)
    except (DataError, TrainingError) as exc:
        return {"error": str(exc)}
    return _score_xy(estimator, X, y, path, current.metadata, metric, model.policy.quality_alpha,
                     f"model v{current.version}")


def score_rows(estimator, raw, path, spec, meta, metric, alpha, name="the model"):
    """The score of `estimator` on labelled CSV bytes and the performance test against the
    holdout baseline in its metadata. A model trained before the baseline statistics were stored
    has its holdout score and size only: the test then takes that baseline as exact."""
    try:
        X, y = load_frame(raw, path, spec)
    except DataError as exc:
        return {"error": str(exc)}
    return _score_xy(estimator, X, y, path, meta, metric, alpha, name)


def _score_xy(estimator, X, y, path, meta, metric, alpha, name):
    from ..fit.task import comparable, score

    try:
        pred = comparable(estimator.predict(X), y)
        sample = quality.metric_sample(metric, y, pred)
        result: dict[str, Any] = {"rows": int(len(y)), "score": score(metric, y, pred)}
    except Exception as exc:  # an eval set the model cannot score is reported, not fatal
        return {"error": f"{path}: cannot score {name}: {type(exc).__name__}: {exc}"}
    baseline = meta.get("baseline") or (meta.get("score"), meta.get("holdout_rows"))
    result["test"] = quality.performance_test(metric, baseline, sample, METRICS[metric][1], alpha)
    return result


# --- drift ---------------------------------------------------------------------------------------

def drift_policy(policy):
    """The drift verdict's view of a model's policy."""
    return quality.DriftPolicy(threshold=policy.drift_threshold, alpha=policy.quality_alpha, share=policy.drift_share,
                               features=policy.drift_features, exclude=policy.drift_exclude or (),
                               thresholds=policy.drift_thresholds)


def _drift(config, store, model, current, data_hash, data_rows, fpcache, cache, dataset=None, segment_of=None,
           family=None):
    if not model.drift_path:
        return None, None, {}
    policy = model.policy
    source = _relpath(config, model.drift_path)
    if segment_of is not None:
        source += f" [{entry_key(model.name)}]"
    fields = {"drift_source": source, "drift_action": policy.drift_action}
    reference = current.metadata.get("reference")
    if reference:  # in the training column order, not metadata.json's sorted keys
        order = [f for f in current.metadata.get("features") or () if f in reference]
        reference = {f: reference[f] for f in order + sorted(set(reference) - set(order))}
    if not reference:
        note = f"model v{current.version} has no reference statistics; retrain it to record them"
        fields["drift_note"] = note
        return quality.Verdict(Judged.ERROR, note), None, fields
    named = [f for f in (*(policy.drift_features or ()), *(policy.drift_exclude or ()), *(policy.drift_thresholds or ()))
             if f not in reference]
    if named:
        note = (f"drift_features/drift_exclude/drift_thresholds name feature(s) model v{current.version} "
                f"was not trained on: {', '.join(dict.fromkeys(named))}")
        fields["drift_note"] = note
        return quality.Verdict(Judged.ERROR, note), None, fields
    if segment_of is not None:  # a segment: its own rows of drift_path, read with pandas
        found = segment_of(model, "drift")
        rows, digest, files = (found[0].rows, found[0].hash, found[1]) if found else (0, "none", None)
    else:
        fp = datasets.fingerprint(fpcache, model.drift_path, model.csv.quotechar)
        rows, digest, files = fp.rows, fp.hash, fp.fit_files
    fields["drift_rows"] = rows
    evidence = f"drift:{digest}"
    tests = {}
    if rows >= policy.min_eval_rows:
        key = f"{current.version}|{current.metadata.get('sha256')}|{evidence}"
        trained_rows = current.metadata.get("rows")
        result = _cached(cache, model, "drift", key, lambda: drift_tests(
            _read(model.drift_path, digest), model.drift_path, reference, trained_rows, model.csv)
            if files is None else _set_tests(model, files, reference, trained_rows))
        if result.get("error"):
            fields["drift_note"] = result["error"]
            return quality.Verdict(Judged.ERROR, result["error"]), evidence, fields
        tests = result["tests"]
        fields.update(drift_rows=result["rows"], drift_psi={f: t["psi"] for f, t in tests.items()})
    correction = None
    segment_p = quality.drift_p_value(tests, drift_policy(policy)) if segment_of is not None else math.nan
    if not math.isnan(segment_p) and fields["drift_rows"] >= policy.min_eval_rows:  # NaN: nothing tested
        fields["drift_p_value"] = segment_p
        correction = _correction(family, model, "drift", segment_p)
        if correction is not None:
            fields.update(drift_p_adjusted=correction.p_adjusted, drift_correction=correction.evidence())
    verdict = quality.drift_verdict(tests, fields["drift_rows"], drift_policy(policy), policy.min_eval_rows, source,
                                    correction)
    drifted = verdict.state == Judged.DEGRADED
    text = verdict.text
    if drifted and policy.drift_action == "alert":
        text += "; drift_action alert: a signal, not a retrain"
    fields.update(drift_note=text, drifted=None if verdict.state == Judged.INSUFFICIENT else drifted,
                  drift_p_values=verdict.evidence["p_adjusted"] if verdict.evidence else None,
                  drifted_features=verdict.evidence["drifted_features"] if verdict.evidence else None)
    return verdict, evidence, fields


def _correction(family, model, kind, p):
    """A segment's Correction across its entry's segments, its p-value `p`; None for a declared model."""
    return None if family is None else family(model, kind, p)


def segment_p_values(config, store, entry, kind, segments, fpcache, cache, segment_of):
    """{segment model name: its p-value of `kind` uncorrected} for the segments of `entry`
    ({key: segment_index.SegmentData} of its data) that have a live model: the performance
    test's p, or drift_p_value of the drift tests; NaN for one not judged (too few rows, an
    error). From the quality cache where a result is there, else computed and cached, as the
    segment's own check would."""
    evaluate = _performance if kind == "performance" else _drift
    out = {}
    for key, seg in segments.items():
        model = entry.for_segment(key)
        current = store.current(model.name)
        if current is None:
            continue
        try:
            verdict, _, fields = evaluate(config, store, model, current, seg.hash, seg.rows, fpcache, cache,
                                          None, segment_of)
        except Exception:  # the segment's own check reports it; here it is only not judged
            verdict, fields = None, {}
        judged = verdict is not None and verdict.state in (Judged.OK, Judged.DEGRADED)
        p = fields.get("eval_p_value" if kind == "performance" else "drift_p_value")
        out[model.name] = float(p) if judged and p is not None else float("nan")
    return out


class RecentInputError(Exception):
    """Recent inputs that cannot be read as the model's reference needs them (the message names
    the file); the drift check reports it in `status`, never as a failed command."""


def drift_tests(raw: bytes, path: str, reference: dict[str, Any], rows: int | None = None,
                options: CsvOptions | None = None) -> dict[str, Any]:
    """PSI and chi-square p-value per feature of CSV bytes of recent inputs (read with the model's
    `csv:` options); `rows`: the training rows, to rebuild the counts of an older reference."""
    try:
        count, columns = csv_columns(raw, path, reference, options or default_record(CsvOptions))
    except RecentInputError as exc:
        return {"error": str(exc)}
    return {"rows": count, "tests": quality.feature_tests(reference, columns, rows)}


def csv_columns(raw: bytes, path: str, reference: dict[str, Any],
                options: CsvOptions) -> tuple[int, dict[str, list[Any]]]:
    """(rows, {feature: values}) of CSV bytes, each value as the reference bins it (a number or
    None for a numeric feature, text or None for a categorical one), parsed with the csv module
    (no pandas)."""
    try:
        text = raw.decode(options.text_encoding)
    except UnicodeDecodeError:
        raise RecentInputError(f"{path}: not {options.encoding} text; set csv.encoding to the file's encoding") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=options.delimiter, quotechar=options.quotechar)
    columns: dict[str, list[Any]] = {f: [] for f in reference}
    count = 0
    try:
        repeated = repeated_columns(list(reader.fieldnames or []))
        if repeated:
            raise RecentInputError(f"{path}: column(s) named more than once in the header: {', '.join(repeated)}")
        missing = [f for f in reference if f not in (reader.fieldnames or [])]
        if missing:
            raise RecentInputError(f"{path}: feature column(s) not found: {', '.join(missing)}")
        for row in reader:
            count += 1
            for name, stats in reference.items():
                cell = row.get(name)
                if stats["kind"] == "numeric":
                    columns[name].append(quality.to_number(cell))
                else:
                    columns[name].append(None if cell is None or cell in NA_TEXT else cell)
    except csv.Error as exc:
        raise RecentInputError(f"{path}: cannot parse CSV at row {count + 1}: {exc}") from None
    return count, columns


def frame_columns(model: ModelConfig, files: list[list[str]],
                  reference: dict[str, Any]) -> tuple[int, dict[str, list[Any]]]:
    """csv_columns of a data set (or a Parquet or gzip file) of recent inputs, read with pandas."""
    path = model.drift_path
    assert path is not None
    try:
        df = datasets.read_frame(path, files, model.training_spec()).frame
    except (DataError, TrainingError) as exc:
        raise RecentInputError(str(exc)) from None
    missing = [f for f in reference if f not in df.columns]
    if missing:
        raise RecentInputError(f"{path}: feature column(s) not found: {', '.join(missing)}")
    columns: dict[str, list[Any]] = {}
    for name, stats in reference.items():
        gaps = df[name].isna().tolist()
        if stats["kind"] == "numeric":
            columns[name] = [None if gap else quality.to_number(v) for v, gap in zip(df[name].tolist(), gaps)]
        else:
            columns[name] = [None if gap else str(v) for v, gap in zip(df[name].tolist(), gaps)]
    return len(df), columns


def recent_columns(model: ModelConfig, fpcache: FingerprintCache,
                   reference: dict[str, Any]) -> tuple[int, dict[str, list[Any]]]:
    """The model's recent inputs (its drift_path: a file or a data set, read with its `csv:`
    options), as (rows, {feature: values}) for the features of `reference`."""
    path = model.drift_path
    assert path is not None
    fp = datasets.fingerprint(fpcache, path, model.csv.quotechar)
    if fp.fit_files is None:
        return csv_columns(_read(path, fp.hash), path, reference, model.csv)
    return frame_columns(model, fp.fit_files, reference)


def _set_tests(model: ModelConfig, files: list[list[str]], reference: dict[str, Any],
               rows: int | None) -> dict[str, Any]:
    """drift_tests of a data set (or Parquet file) of recent inputs, read with pandas."""
    try:
        count, columns = frame_columns(model, files, reference)
    except RecentInputError as exc:
        return {"error": str(exc)}
    return {"rows": count, "tests": quality.feature_tests(reference, columns, rows)}
