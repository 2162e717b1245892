"""MLflow tracking and registry: every candidate becomes a run in `<model>_retraining`; a promoted
one becomes a registered version of `<model>` carrying the alias `champion`.

MLflow runs in a child process with a hard deadline (`mlflow.timeout_seconds`), so a slow,
hanging or unreachable tracking server costs bounded time and never a trained model, and the
controller itself never imports mlflow (about a second) or prints what mlflow prints."""
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..base.version import __version__
from ..base import faults
from ..base.errors import ErrorType
from ..base.secrets import redact, scrub
from ..config.records import Config, ModelConfig, TrainingSpec
from ..core.records import FitResult
from ..fit import child
from ..fit.child import Child, note
from ..state.sidecars import remember_champion
from ..state.store import ModelVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"
STORE_VERSION_TAG = "retrainctl.store_version"
# skops refuses to load types it does not know; these packages' types are what retrainctl's own
# pipelines hold, so they are trusted. Anything else (a custom trainer's classes) goes cloudpickle.
SKOPS_TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
MAX_PARAM_LENGTH = 6000  # MLflow's limit for one param value
MAX_TAG_LENGTH = 5000


@dataclass
class Tracked:
    """What tracking produced: ids where it got that far, and the error if it failed."""

    run_id: str | None = None
    model_version: int | None = None
    error: str | None = None
    enabled: bool = True
    session: Child | None = field(default=None, repr=False)  # the process that logged it, kept for the report

    def close(self) -> None:
        """Dismiss the kept tracking process, if any (idempotent)."""
        proc, self.session = self.session, None
        if proc is not None:
            proc.close()

    def ids(self) -> dict[str, Any]:
        return {"mlflow_run_id": self.run_id, "mlflow_model_version": self.model_version}

    def fields(self) -> dict[str, Any]:
        """The history-record fields: the ids always (when tracking is on), the error when there was one."""
        if not self.enabled:
            return {}
        return dict(self.ids(), **({"tracking_error": self.error} if self.error else {}))


def tracking_uri(config: Config, environ: dict[str, str] | None = None) -> str:
    """`mlflow.tracking_uri`, else $MLFLOW_TRACKING_URI, else `sqlite:///<state_dir>/mlflow.db`.
    A relative sqlite path in the config resolves against base_dir, like every path there."""
    env = os.environ if environ is None else environ
    uri = config.mlflow.tracking_uri
    if uri:
        path = _sqlite_path(uri)
        if path is not None and not os.path.isabs(path):
            return "sqlite:///" + os.path.normpath(os.path.join(config.base_dir, path))
        return uri
    return env.get("MLFLOW_TRACKING_URI") or "sqlite:///" + os.path.join(config.state_dir, "mlflow.db")


def _sqlite_path(uri: str) -> str | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == prefix + ":memory:":
        return None
    return uri[len(prefix):].split("?", 1)[0]


def artifact_location(config: Config, uri: str) -> str | None:
    """Where a new experiment keeps its artifacts. A tracking server decides for itself; without
    one MLflow would use ./mlruns in whatever folder cron started in, so keep them beside the db."""
    if urlsplit(uri).scheme in ("http", "https", "databricks"):
        return None
    path = _sqlite_path(uri)
    folder = os.path.dirname(path) if path and os.path.isabs(path) else config.state_dir
    return os.path.join(folder, "mlartifacts")


def _job(config: Config, uri: str) -> dict[str, Any]:
    timeout = config.mlflow.timeout_seconds
    return {
        "uri": uri,
        "timeout": timeout,
        # Explicit environment variables win; the deadline bounds the whole step either way.
        "env": {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout // 3))),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        },
    }


def tracks(config: Config, model: ModelConfig) -> bool:
    """Whether `model` goes to MLflow: not a segment model, whose entry's one registered model
    routing rows by segment is not built yet (docs/many-models.md)."""
    return config.mlflow.enabled and model.entry is None


def log_training(config: Config, model: ModelConfig, mv: ModelVersion, result: FitResult, trigger_type: str,
                 promoted: bool, description: str = "", warm: "Warm | None" = None,
                 training_time: float | None = None) -> "Tracked":
    """Log one candidate (store version `mv`, records.FitResult `result`) as an MLflow
    run; register it and move `champion` to it when `promoted`. `training_time`: the attempt's
    seconds so far (fit, gate, save). Never raises: a failure comes back as Tracked.error, with
    whatever ids were obtained before it. With `mlflow.log_report` the process that logged the
    run is kept in Tracked.session for attach_report; the caller closes it (Tracked.close)."""
    if not tracks(config, model):
        return Tracked(enabled=False)
    uri = tracking_uri(config)
    metrics = {model.metric: result.score, "training_seconds": mv.metadata.get("fit_seconds"),
               "training_time": training_time}
    if result.champion_score is not None:
        metrics[f"champion_{model.metric}"] = result.champion_score
    job = _log_job(config, uri, model, mv, trigger_type, "promoted" if promoted else "rejected", description,
                   metrics, promoted, result.input_sample)
    tracked = _run_child("log", job, warm, keep=config.mlflow.log_report)
    where = f"{model.name} v{mv.version}"
    if tracked.error:
        _warn(config, "%s: MLflow tracking at %s failed: %s", where, redact(uri), tracked.error)
    elif tracked.model_version is not None:
        log.info("%s: MLflow run %s; registered %s version %s as %s", where, tracked.run_id, model.name,
                 tracked.model_version, CHAMPION)
    else:
        log.info("%s: MLflow run %s", where, tracked.run_id)
    if promoted:
        _remember(config, model.name, mv.version, tracked)
    return tracked


def _log_job(config: Config, uri: str, model: ModelConfig, mv: ModelVersion, trigger_type: str, outcome: str,
             description: str, metrics: dict[str, Any], register: bool, sample: bytes | None = None) -> dict[str, Any]:
    """The tracking process's job for logging store version `mv` as a run (and registering it)."""
    meta = mv.metadata
    kind = "estimator" if model.estimator else "trainer"
    params = {
        kind: model.estimator or model.trainer,
        **{f"{kind}.{k}": v for k, v in sorted(model.params.items())},
        "features": ",".join(meta.get("features") or []),
        "rows": meta.get("rows"),
        "train_rows": meta.get("train_rows"),
        "holdout_rows": meta.get("holdout_rows"),
        "data_hash": meta.get("data_hash"),
        "data_path": model.data_path,
        "trigger_type": trigger_type,
        "retrainctl_version": __version__,
        "store_version": mv.version,
    }
    return dict(
        _job(config, uri),
        experiment=f"{model.name}_retraining",
        artifact_location=artifact_location(config, uri),
        run_name=f"{model.name}-v{mv.version}-{trigger_type}",
        description=description,
        params={k: str(v)[:MAX_PARAM_LENGTH] for k, v in params.items() if v is not None},
        metrics={k: float(v) for k, v in metrics.items() if v is not None},
        tags={"trigger": trigger_type, "outcome": outcome,
              STORE_VERSION_TAG: str(mv.version), "retrainctl.attempt_id": str(meta.get("attempt_id")),
              "retrainctl.model_file": mv.model_file, "retrainctl.sha256": meta["sha256"]},
        model_file=mv.model_file,
        sha256=meta["sha256"],
        spec=model.training_spec(),
        sample=sample,
        columns=meta.get("columns"),
        register=model.name if register else None,
        store_version=mv.version,
    )


def log_failure(config: Config, model: ModelConfig, trigger_type: str, attempt_id: str | None,
                error: BaseException | str, error_type: ErrorType, description: str = "", warm: "Warm | None" = None,
                training_time: float | None = None) -> "Tracked":
    """Log a failed attempt (no candidate) as a FAILED run carrying its error. Never raises."""
    if not tracks(config, model):
        return Tracked(enabled=False)
    uri = tracking_uri(config)
    job = dict(
        _job(config, uri),
        experiment=f"{model.name}_retraining",
        artifact_location=artifact_location(config, uri),
        run_name=f"{model.name}-failed-{trigger_type}",
        description=description,
        params={"trigger_type": trigger_type, "error_type": str(error_type), "data_path": model.data_path,
                "retrainctl_version": __version__},
        metrics={} if training_time is None else {"training_time": float(training_time)},
        tags={"trigger": trigger_type, "outcome": "failed", "error_type": str(error_type),
              "error": str(error)[:MAX_TAG_LENGTH], "retrainctl.attempt_id": str(attempt_id)},
    )
    tracked = _run_child("failure", job, warm)
    if tracked.error:
        log.warning("%s: failed attempt not logged to MLflow at %s: %s", model.name, redact(uri), tracked.error)
    else:
        log.info("%s: MLflow run %s (failed)", model.name, tracked.run_id)
    return tracked


def move_champion(config: Config, model: ModelConfig, target: ModelVersion | None,
                  tags: dict[str, str] | None = None,
                  other_tags: dict[Any, dict[str, str]] | None = None) -> "Tracked":
    """Point the registry's `champion` alias at the registered version of store version `target`
    (None: remove the alias), registering it first if it never was: from its run when it has one,
    else as a new run of its model file. `tags` go on the version the alias lands on;
    `other_tags` is {registered version: tags}. Never raises: see Tracked.error."""
    if not tracks(config, model):
        return Tracked(enabled=False)
    uri = tracking_uri(config)
    meta = target.metadata if target is not None else {}
    job = dict(_job(config, uri), name=model.name, version=meta.get("mlflow_model_version"),
               run_id=meta.get("mlflow_run_id"), tags=tags or {}, other_tags=other_tags or {},
               store_version=target.version if target is not None else None)
    if target is not None and job["version"] is None and job["run_id"] is None:
        metrics = {model.metric: meta.get("score"), "training_time": meta.get("fit_seconds")}
        job["log"] = _log_job(config, uri, model, target, "registered", "promoted", "", metrics, True)
        kind = "estimator" if model.estimator else "trainer"  # today's config, not necessarily what trained it
        job["log"]["params"] = {k: v for k, v in job["log"]["params"].items()
                                if k != kind and not k.startswith(kind + ".")}
    tracked = _run_child("champion", job)
    if tracked.run_id is None:
        tracked.run_id = job["run_id"]
    _remember(config, model.name, job["store_version"], tracked)
    if tracked.error:
        where = f"v{target.version}" if target is not None else "nothing"
        _warn(config, "%s: MLflow alias '%s' not moved to %s at %s: %s", model.name, CHAMPION, where,
              redact(uri), tracked.error)
    elif tracked.model_version is not None:
        log.info("%s: MLflow alias '%s' now on registered version %s", model.name, CHAMPION, tracked.model_version)
    return tracked


def realign_champion(config: Config, model: ModelConfig, cur: ModelVersion | None) -> "Tracked":
    """After a crash between the registry and the store: point `champion` at what is live, the
    registered version of store version `cur` (registered now if it never was); with nothing
    live, remove the alias (none is better than one naming a model that never served)."""
    tracked = move_champion(config, model, cur)
    if tracked.error:
        log.warning("%s: MLflow alias '%s' not put back in step with the store: %s", model.name, CHAMPION,
                    tracked.error)
    elif cur is None:
        log.warning("%s: MLflow alias '%s' removed: it named a version that never went live, and the live "
                    "model does not exist", model.name, CHAMPION)
    return tracked


def _remember(config: Config, name: str, store_version: int | None, tracked: "Tracked") -> None:
    """Where this command left `champion` (state/sidecars.py), for `status` and the metrics."""
    remember_champion(config.state_dir, name, store_version, tracked.model_version, tracked.error)


def _warn(config: Config, *args: Any) -> None:
    """With mlflow.required the caller fails and says why; a warning first would only repeat it."""
    if not config.mlflow.required:
        log.warning(*args)


# --- the parent side of the tracking process ----------------------------------------------------

class Warm:
    """A tracking process started ahead of need: it imports MLflow and the model libraries (most
    of tracking's cost) on the second core while the fit runs, then serves one action (and, with
    `mlflow.log_report`, the report page after it)."""

    def __init__(self, config: Config) -> None:
        job = _job(config, tracking_uri(config))
        self.child = Child("retrainctl-mlflow", prepare=(_warm_up, (job["uri"], config.mlflow.log_report)),
                           capture_output=True, env=job["env"])
        self.used = False

    def take(self) -> Child | None:
        """The process, to run one action in; None if it was taken or has died."""
        if self.used or not self.child.alive:
            self.close()
            return None
        self.used = True
        return self.child

    def close(self):
        """Dismiss an unused process (idempotent; a taken one is closed by its caller)."""
        if not self.used:
            self.used = True
            self.child.close()


def start_warm(config: Config) -> "Warm | None":
    """A Warm tracking process when tracking is on, else None."""
    return Warm(config) if config.mlflow.enabled else None


def _run_child(action: str, job: dict[str, Any], warm: "Warm | None" = None, keep: bool = False) -> Tracked:
    """Run `action` in a tracking process (the warm one if given, else a fresh one); whatever
    happens, return within job['timeout'] seconds. `keep`: a process that succeeded stays open
    in Tracked.session for one more action."""
    started = time.monotonic()
    proc = warm.take() if warm is not None else None
    if proc is None:
        proc = Child(f"retrainctl-mlflow-{action}", capture_output=True, env=job["env"])
    tracked = Tracked()
    try:
        left = job["timeout"] - (time.monotonic() - started)
        tracked.model_version = proc.call(_serve, action, job, timeout=max(left, 0),
                                          on_note=lambda run_id: setattr(tracked, "run_id", run_id))
    except child.ChildError as exc:
        tracked.error = _child_error(exc, job)
    finally:
        if keep and tracked.error is None and tracked.run_id is not None:
            tracked.session = proc
        else:
            proc.close()
    log.debug("mlflow output:\n%s", scrub(proc.output, job["uri"]))
    return tracked


def _child_error(exc: child.ChildError, job: dict[str, Any]) -> str:
    if isinstance(exc, child.Timeout):
        return f"no answer within mlflow.timeout_seconds={job['timeout']:g}"
    if isinstance(exc, child.Died):
        return f"the tracking process exited with code {exc.code}"
    return scrub(str(exc), job["uri"])  # MLflow's errors repeat the tracking URI, credentials and all


REPORT_ARTIFACT = "report.html"


def attach_report(config: Config, model: ModelConfig, tracked: Tracked) -> str | None:
    """Attach the report page of `model` (rendered now, so it shows the attempt just recorded) to
    its MLflow run as `report.html`, in the process that logged the run, then close that
    process. Never raises and takes at most mlflow.timeout_seconds: a page that cannot be made
    or sent is a warning, never a failed attempt. Returns the error text, or None."""
    proc, tracked.session = tracked.session, None
    if proc is None:
        return None
    job = dict(_job(config, tracking_uri(config)), config=config, model=model.name, run_id=tracked.run_id)
    error = None
    try:
        proc.call(_serve, "report", job, timeout=job["timeout"])
    except child.ChildError as exc:
        error = _child_error(exc, job)
    finally:
        proc.close()
    log.debug("mlflow output:\n%s", scrub(proc.output, job["uri"]))
    if error:
        log.warning("%s: report page not attached to MLflow run %s: %s", model.name, tracked.run_id, error)
    else:
        log.info("%s: report page attached to MLflow run %s", model.name, tracked.run_id)
    return error


# --- the tracking process's side -------------------------------------------------------------------

def _warm_up(uri, report=False):
    faults.point("tracking_warming", interrupt=os.getppid())
    # Imported now, while the fit runs, so that the log itself is quick.
    charts = ("matplotlib.figure",) if report else ()  # the report page's, drawn after the log
    child.preload(("joblib", "pandas", "sklearn", "skops.io", "mlflow.sklearn", *charts))
    _warm_stores(uri)


def _serve(action, job):
    """The action, in the tracking process. Logging is synchronous, so everything is committed
    when it returns (the process is killed once the parent is done with it; see child.main)."""
    if action == "log":
        return _log(job, note)
    if action == "failure":
        return _log_failure(job, note)
    if action == "report":
        return _attach_report(job)
    return _champion(job, note)


def _attach_report(job):
    from mlflow import MlflowClient

    from .report import page

    faults.point("report_attaching")
    config = job["config"]
    text = page(config, [config.model(job["model"])], "html")
    MlflowClient(job["uri"]).log_text(job["run_id"], text, REPORT_ARTIFACT)


def _warm_stores(uri):
    """Open the tracking and registry stores (for the embedded sqlite store: its imports, the
    engine and the schema check, about 0.6 s) and MLflow's package-to-module map (read when a
    model's requirements are checked, about 0.2 s) while the fit runs. Best effort: the latter two
    are MLflow internals, so after an MLflow upgrade that renames them only the time is lost; a
    store that cannot be opened is reported by the action itself.

    This process is killed when it is not needed after all (the fit failed) or when the
    controller dies, so it must never be halfway through writing: a new sqlite database is made
    by _ensure_database, and other databases (which MLflow would migrate in place) are not
    opened here at all."""
    try:
        import mlflow
        from mlflow import MlflowClient

        if _sqlite_path(uri) is not None or urlsplit(uri).scheme in ("http", "https"):
            _ensure_database(uri)
            mlflow.set_tracking_uri(uri)
            MlflowClient(uri)._get_registry_client()
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map

        _init_packages_to_modules_map()
    except Exception:
        pass


STALE_TEMPORARY_SECONDS = 600


def _ensure_database(uri):
    """Create a missing embedded sqlite database under a temporary name and link it into place
    once complete. MLflow builds a new database by running its schema migrations one by one,
    outside any transaction: a process killed halfway (the deadline, kill -9, a dismissed
    warm-up) would leave a file that every later open refuses ("table ... already exists").
    An existing database is never migrated by MLflow (it asks for `mlflow db upgrade`)."""
    path = _sqlite_path(uri)
    if path is None or os.path.exists(path):
        return
    from mlflow import MlflowClient

    folder, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}."
    try:
        for entry in os.scandir(folder):  # left behind by processes killed while creating
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                if time.time() - entry.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                    os.unlink(entry.path)
    except OSError:
        pass
    tmp = os.path.join(folder, f"{prefix}{os.getpid()}.tmp")
    if os.path.exists(tmp):
        os.unlink(tmp)
    MlflowClient("sqlite:///" + tmp)  # every table, the registry's included
    try:
        os.link(tmp, path)  # never replaces a database another process put there meanwhile
    except FileExistsError:
        pass  # that one is just as complete
    except OSError:  # a file system without hard links: rename, unless one appeared meanwhile
        if not os.path.exists(path):
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _log(job, on_run):
    import hashlib
    import io
    import warnings

    import joblib
    import mlflow
    import mlflow.sklearn

    warnings.simplefilter("ignore")  # mlflow's hints would only land in the captured output
    with open(job["model_file"], "rb") as fh:
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != job["sha256"]:
        raise RuntimeError(f"{job['model_file']}: checksum does not match metadata.json; not logging it")
    model = joblib.load(io.BytesIO(data))
    sample, signature = _signature(job, model)
    fmt, trusted = serialization_format(model, sample)

    client, experiment_id = _experiment(job)
    tags = dict(job["tags"], serialization_format=fmt)
    with mlflow.start_run(experiment_id=experiment_id, run_name=job["run_name"], tags=tags,
                          description=job["description"] or None) as run:
        on_run(run.info.run_id)
        # Synchronous whatever MLFLOW_ENABLE_ASYNC_LOGGING says (end_run would flush them too):
        # the process ends with os._exit once it has answered.
        mlflow.log_params(job["params"], synchronous=True)
        mlflow.log_metrics(job["metrics"], synchronous=True)
        if job.get("columns"):  # what each input column became (type, why, used or dropped)
            mlflow.log_dict(job["columns"], "columns.json")
        info = mlflow.sklearn.log_model(model, name="model", signature=signature,
                                        pip_requirements=pip_requirements(fmt, job["spec"]),
                                        serialization_format=fmt, skops_trusted_types=trusted)
    if not job["register"]:
        return None
    # Registered after the run ended, so a registry failure leaves a FINISHED run behind.
    version = mlflow.register_model(info.model_uri, job["register"], await_registration_for=int(job["timeout"]),
                                    tags={STORE_VERSION_TAG: str(job["store_version"])})
    client.set_registered_model_alias(job["register"], CHAMPION, version.version)
    return int(version.version)


def _experiment(job):
    """The tracking client and the id of job['experiment'], created or restored as needed."""
    import mlflow
    from mlflow import MlflowClient

    _ensure_database(job["uri"])
    mlflow.set_tracking_uri(job["uri"])
    client = MlflowClient(job["uri"])
    experiment = client.get_experiment_by_name(job["experiment"])
    if experiment is None:
        return client, client.create_experiment(job["experiment"], artifact_location=job["artifact_location"])
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return client, experiment.experiment_id


def _log_failure(job, on_run):
    import mlflow

    _, experiment_id = _experiment(job)
    with mlflow.start_run(experiment_id=experiment_id, run_name=job["run_name"], tags=job["tags"],
                          description=job["description"] or None) as run:
        on_run(run.info.run_id)
        mlflow.log_params(job["params"], synchronous=True)
        if job["metrics"]:
            mlflow.log_metrics(job["metrics"], synchronous=True)
        mlflow.end_run(status="FAILED")
    return None


def _champion(job, on_run):
    """Move `champion` to registered job['version'], registering job['run_id']'s model or logging
    job['log'] first when there is none; remove it when there is no store version at all."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _ensure_database(job["uri"])
    mlflow.set_tracking_uri(job["uri"])
    client = MlflowClient(job["uri"])
    version = job["version"]
    if version is None and job["run_id"] is not None:
        registered = mlflow.register_model(f"runs:/{job['run_id']}/model", job["name"],
                                           await_registration_for=int(job["timeout"]),
                                           tags={STORE_VERSION_TAG: str(job["store_version"])})
        version = int(registered.version)
    elif version is None and job.get("log"):
        version = _log(dict(job["log"], timeout=job["timeout"]), on_run)
    for other, tags in job["other_tags"].items():
        for key, value in tags.items():
            client.set_model_version_tag(job["name"], str(other), key, value)
    if version is None:
        try:
            client.delete_registered_model_alias(job["name"], CHAMPION)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        return None
    for key, value in job["tags"].items():
        client.set_model_version_tag(job["name"], str(version), key, value)
    client.set_registered_model_alias(job["name"], CHAMPION, str(version))
    return int(version)


def _signature(job: dict[str, Any], model: Any) -> tuple[Any, Any]:
    """The input schema from the first training rows, as the fit parsed them (FitResult's
    input_sample: whatever the data was, a CSV file, Parquet or a set of partitions). A model
    registered later without them (a rollback to a version never registered) gets none."""
    from mlflow.models import infer_signature

    raw = job.get("sample")
    if raw is None:
        return None, None
    try:
        sample = pickle.loads(raw)  # our own fit's bytes (FitResult.input_sample)
        return sample, infer_signature(sample, model.predict(sample))
    except Exception:  # a sample this model cannot predict: logged without a signature
        return None, None


def serialization_format(model, sample=None):
    """("skops", trusted types) when skops writes the model and loads it back predicting the same
    on `sample`; else ("cloudpickle", None). skops never executes code on load; pickle can."""
    try:
        import skops.io as sio

        blob = sio.dumps(model)
        untrusted = sio.get_untrusted_types(data=blob)
        if any(t.split(".", 1)[0] not in SKOPS_TRUSTED_PACKAGES for t in untrusted):
            return "cloudpickle", None
        loaded = sio.loads(blob, trusted=untrusted)
        if sample is not None and not _same(loaded.predict(sample), model.predict(sample)):
            return "cloudpickle", None
        return "skops", untrusted
    except Exception:
        return "cloudpickle", None


def _same(a, b):
    import numpy as np

    try:
        return np.array_equal(a, b, equal_nan=True)
    except TypeError:  # object arrays (class labels) have no NaN to compare
        return np.array_equal(a, b)


def pip_requirements(fmt: str, spec: TrainingSpec) -> list[str]:
    """Pinned requirements, given explicitly: MLflow's own inference costs seconds per model."""
    from importlib import metadata

    names = ["mlflow", "scikit-learn", "numpy", "pandas", "scipy", fmt]
    top = (spec.estimator or spec.trainer or "").split(".", 1)[0].split(":", 1)[0]
    if top and top != "sklearn":
        names += metadata.packages_distributions().get(top, [])
    pins = []
    for name in dict.fromkeys(names):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins
