"""MLflow tracking and registry: every candidate becomes a run in `<model>_retraining`; a promoted
one becomes a registered version of `<model>` carrying the alias `champion`.

MLflow runs in a child process with a hard deadline (`mlflow.timeout_seconds`), so a slow,
hanging or unreachable tracking server costs bounded time and never a trained model, and the
controller itself never imports mlflow (about a second) or prints what mlflow prints."""
import logging
import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from . import __version__
from .config import redact

log = logging.getLogger(__name__)

CHAMPION = "champion"
STORE_VERSION_TAG = "retrainctl.store_version"
# skops refuses to load types it does not know; these packages' types are what retrainctl's own
# pipelines hold, so they are trusted. Anything else (a custom trainer's classes) goes cloudpickle.
SKOPS_TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
MAX_PARAM_LENGTH = 6000  # MLflow's limit for one param value
CAPTURED_TAIL = 4000


@dataclass
class Tracked:
    """What tracking produced: ids where it got that far, and the error if it failed."""

    run_id: Optional[str] = None
    model_version: Optional[int] = None
    error: Optional[str] = None
    enabled: bool = True

    def ids(self):
        return {"mlflow_run_id": self.run_id, "mlflow_model_version": self.model_version}

    def fields(self):
        """The history-record fields: the ids always (when tracking is on), the error when there was one."""
        if not self.enabled:
            return {}
        return dict(self.ids(), **({"tracking_error": self.error} if self.error else {}))


def tracking_uri(config, environ=None):
    """`mlflow.tracking_uri`, else $MLFLOW_TRACKING_URI, else `sqlite:///<state_dir>/mlflow.db`.
    A relative sqlite path in the config resolves against base_dir, like every path there."""
    environ = os.environ if environ is None else environ
    uri = config.mlflow.tracking_uri
    if uri:
        path = _sqlite_path(uri)
        if path is not None and not os.path.isabs(path):
            return "sqlite:///" + os.path.normpath(os.path.join(config.base_dir, path))
        return uri
    return environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + os.path.join(config.state_dir, "mlflow.db")


def _sqlite_path(uri):
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == prefix + ":memory:":
        return None
    return uri[len(prefix):].split("?", 1)[0]


def artifact_location(config, uri):
    """Where a new experiment keeps its artifacts. A tracking server decides for itself; without
    one MLflow would use ./mlruns in whatever folder cron started in, so keep them beside the db."""
    if urlsplit(uri).scheme in ("http", "https", "databricks"):
        return None
    path = _sqlite_path(uri)
    folder = os.path.dirname(path) if path and os.path.isabs(path) else config.state_dir
    return os.path.join(folder, "mlartifacts")


def _job(config, uri):
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


def log_training(config, model, mv, result, trigger_type, promoted, description="", warm=None):
    """Log one candidate (store version `mv`, fit `result` from the training task) as an MLflow
    run; register it and move `champion` to it when `promoted`. Never raises: a failure comes
    back as Tracked.error, with whatever ids were obtained before it."""
    if not config.mlflow.enabled:
        return Tracked(enabled=False)
    uri = tracking_uri(config)
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
    metrics = {model.metric: result["score"], "training_seconds": meta.get("fit_seconds")}
    if result.get("champion_score") is not None:
        metrics[f"champion_{model.metric}"] = result["champion_score"]
    job = dict(
        _job(config, uri),
        experiment=f"{model.name}_retraining",
        artifact_location=artifact_location(config, uri),
        run_name=f"{model.name}-v{mv.version}-{trigger_type}",
        description=description,
        params={k: str(v)[:MAX_PARAM_LENGTH] for k, v in params.items() if v is not None},
        metrics={k: float(v) for k, v in metrics.items() if v is not None},
        tags={"trigger": trigger_type, "outcome": "promoted" if promoted else "rejected",
              STORE_VERSION_TAG: str(mv.version), "retrainctl.attempt_id": str(meta.get("attempt_id")),
              "retrainctl.model_file": mv.model_file, "retrainctl.sha256": meta["sha256"]},
        model_file=mv.model_file,
        sha256=meta["sha256"],
        spec=model.training_spec(),
        data_path=model.data_path,
        columns=meta.get("columns"),
        register=model.name if promoted else None,
        store_version=mv.version,
    )
    tracked = _run_child("log", job, warm)
    where = f"{model.name} v{mv.version}"
    if tracked.error:
        _warn(config, "%s: MLflow tracking at %s failed: %s", where, redact(uri), tracked.error)
    elif tracked.model_version is not None:
        log.info("%s: MLflow run %s; registered %s version %s as %s", where, tracked.run_id, model.name,
                 tracked.model_version, CHAMPION)
    else:
        log.info("%s: MLflow run %s", where, tracked.run_id)
    return tracked


def move_champion(config, model, target):
    """Point the registry's `champion` alias at the registered version of store version `target`."""
    if not config.mlflow.enabled:
        return Tracked(enabled=False)
    version = target.metadata.get("mlflow_model_version")
    run_id = target.metadata.get("mlflow_run_id")
    uri = tracking_uri(config)
    if version is None:
        tracked = Tracked(run_id=run_id, error=f"v{target.version} has no MLflow registry version "
                                               f"(it was not registered when it was trained)")
    else:
        tracked = _set_alias(config, uri, model, version)
        tracked.run_id = run_id
    if tracked.error:
        _warn(config, "%s: MLflow alias '%s' not moved to v%d at %s: %s", model.name, CHAMPION, target.version,
              redact(uri), tracked.error)
    return tracked


def realign_champion(config, model, cur):
    """After a crash between the registry and the store: point `champion` at what is live, the
    registered version of store version `cur`; with no registered live version, remove the alias
    (none is better than one naming a model that never served). Never raises."""
    uri = tracking_uri(config)
    version = cur.metadata.get("mlflow_model_version") if cur is not None else None
    tracked = _set_alias(config, uri, model, version)
    if tracked.error:
        log.warning("%s: MLflow alias '%s' not put back in step with the store at %s: %s", model.name, CHAMPION,
                    redact(uri), tracked.error)
    elif version is None:
        log.warning("%s: MLflow alias '%s' removed: it named a version that never went live, and the live "
                    "model %s", model.name, CHAMPION,
                    f"v{cur.version} is not registered" if cur is not None else "does not exist")
    return tracked


def _set_alias(config, uri, model, version):
    """Move `champion` to registered `version` (None: remove it) in a tracking process."""
    tracked = _run_child("alias", dict(_job(config, uri), name=model.name, version=version))
    tracked.model_version = version
    if not tracked.error and version is not None:
        log.info("%s: MLflow alias '%s' now on registered version %s", model.name, CHAMPION, version)
    return tracked


def _warn(config, *args):
    """With mlflow.required the caller fails and says why; a warning first would only repeat it."""
    if not config.mlflow.required:
        log.warning(*args)


# --- the parent side of the child process --------------------------------------------------------

class Warm:
    """A tracking process started ahead of need: it imports MLflow and the model libraries (most
    of tracking's cost) on the second core while the fit runs, then serves one action."""

    def __init__(self, config):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        job = _job(config, tracking_uri(config))
        self.proc = ctx.Process(target=_warm_child, args=(child, job["env"], job["uri"]),
                                name="retrainctl-mlflow", daemon=True)
        self.proc.start()
        child.close()
        self.used = False

    def take(self, action, job):
        """Hand the action over; (conn, process) to wait on, or None if the process already died."""
        if self.used or not self.proc.is_alive():
            self.close()
            return None
        self.used = True
        try:
            self.conn.send((action, job))
        except OSError:
            self.close()
            return None
        return self.conn, self.proc

    def close(self):
        """Dismiss an unused process (idempotent; a used one is cleaned up by its caller)."""
        if self.used:
            return
        self.used = True
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.conn.close()
        self.proc.join(1)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def start_warm(config):
    """A Warm tracking process when tracking is on, else None."""
    return Warm(config) if config.mlflow.enabled else None


def _run_child(action, job, warm=None):
    """Run `action` in a tracking process (the warm one if given, else a fresh one); whatever
    happens, return within job['timeout'] seconds."""
    taken = warm.take(action, job) if warm is not None else None
    deadline = time.monotonic() + job["timeout"]
    if taken is not None:
        parent, proc = taken
    else:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, action, job), name=f"retrainctl-mlflow-{action}", daemon=True)
        proc.start()
        child.close()
    tracked = Tracked()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not parent.poll(left):
                tracked.error = f"no answer within mlflow.timeout_seconds={job['timeout']:g}"
                break
            try:
                message = parent.recv()
            except EOFError:
                proc.join(5)
                tracked.error = f"the tracking process exited with code {proc.exitcode}"
                break
            kind, payload = message[0], message[1]
            if kind == "run":
                tracked.run_id = payload
                continue
            log.debug("mlflow output:\n%s", message[2])
            if kind == "ok":
                tracked.model_version = payload
            else:
                tracked.error = payload
            break
    finally:
        parent.close()
        proc.join(1)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return tracked


# --- the child side: everything below runs in the tracking process -------------------------------

def _child(conn, action, job):
    captured = _capture_output(job["env"])
    _serve(conn, action, job, captured)


def _warm_child(conn, env, uri):
    captured = _capture_output(env)
    import importlib

    # Imported now, while the fit runs, so that the log itself is quick; a module that fails to
    # import here is reported by the action itself.
    for module in ("joblib", "pandas", "sklearn", "skops.io", "mlflow.sklearn"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    _warm_stores(uri)
    try:
        message = conn.recv()
    except EOFError:
        message = None
    if message is not None:
        _serve(conn, *message, captured)
    from .executor import exit_child

    exit_child()  # dismissed: nothing was done


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


def _capture_output(env):
    import tempfile

    from .executor import _die_with_parent

    _die_with_parent()
    # MLflow prints to stdout ("View run ...") and stderr; stdout is the command's result channel.
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 1)
    os.dup2(captured.fileno(), 2)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return captured


def _serve(conn, action, job, captured):
    try:
        if action == "log":
            result = _log(job, lambda run_id: conn.send(("run", run_id)))
        else:
            result = _alias(job)
        conn.send(("ok", result, _tail(captured)))
    except Exception as exc:
        conn.send(("error", _one_line(exc), _tail(captured) + traceback.format_exc()))
    finally:
        conn.close()
    from .executor import exit_child

    exit_child()  # everything is committed (logging is synchronous); see _log


def _tail(captured):
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    captured.seek(0)
    return captured.read().decode("utf-8", "replace")[-CAPTURED_TAIL:]


def _one_line(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _log(job, on_run):
    import hashlib
    import io
    import warnings

    import joblib
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    warnings.simplefilter("ignore")  # mlflow's hints would only land in the captured output
    with open(job["model_file"], "rb") as fh:
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != job["sha256"]:
        raise RuntimeError(f"{job['model_file']}: checksum does not match metadata.json; not logging it")
    model = joblib.load(io.BytesIO(data))
    sample, signature = _signature(job, model)
    fmt, trusted = serialization_format(model, sample)

    _ensure_database(job["uri"])
    mlflow.set_tracking_uri(job["uri"])
    client = MlflowClient(job["uri"])
    experiment = client.get_experiment_by_name(job["experiment"])
    if experiment is None:
        experiment_id = client.create_experiment(job["experiment"], artifact_location=job["artifact_location"])
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
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


def _alias(job):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _ensure_database(job["uri"])
    client = MlflowClient(job["uri"])
    if job["version"] is not None:
        client.set_registered_model_alias(job["name"], CHAMPION, str(job["version"]))
        return job["version"]
    try:
        client.delete_registered_model_alias(job["name"], CHAMPION)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    return None


SIGNATURE_BYTES = 1 << 20
SIGNATURE_ROWS = 100


def _signature(job, model):
    """The input schema from the training rows (the data file as the training task reads it).
    A data file that changed shape since the fit only costs the signature."""
    from mlflow.models import infer_signature

    from .fingerprint import csv_rows, row_offset
    from .training import csv_options, load_frame

    try:
        with open(job["data_path"], "rb") as fh:  # the head is enough: a big file is not parsed again
            raw = fh.read(SIGNATURE_BYTES)
            if fh.read(1):
                quotechar = csv_options(job["spec"]).quotechar
                raw = raw[:row_offset(raw, min(SIGNATURE_ROWS, csv_rows(raw, quotechar) - 1), quotechar)]
        X, _ = load_frame(raw, job["data_path"], job["spec"])
        # As the whole file was parsed for the fit: a column whose first rows are whole numbers is
        # still a float column when a later row is not.
        dtypes = {c: d["dtype"] for c, d in (job.get("columns") or {}).items() if c in X.columns and d.get("dtype")}
        sample = X.head(SIGNATURE_ROWS).astype(dtypes)
        return sample, infer_signature(sample, model.predict(sample))
    except Exception:
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


def pip_requirements(fmt, spec):
    """Pinned requirements, given explicitly: MLflow's own inference costs seconds per model."""
    from importlib import metadata

    names = ["mlflow", "scikit-learn", "numpy", "pandas", "scipy", fmt]
    top = (spec.get("estimator") or spec.get("trainer") or "").split(".", 1)[0].split(":", 1)[0]
    if top and top != "sklearn":
        names += metadata.packages_distributions().get(top, [])
    pins = []
    for name in dict.fromkeys(names):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins
