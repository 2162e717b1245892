"""MLflow for an entry with `segment_by`: one run per round (per command that trained some of its
segments) in `<entry>_retraining`, holding a table of the round's segments and summary metrics;
and one registered model `<entry>` whose versions route each row to its segment's pipeline
(publish/router.py), with `champion` on the version that holds exactly the store's current
pipelines.

A segment's pipeline is uploaded once per store version, as an artifact of the run of the round
that first needed it; later model versions refer to it there (`<state_dir>/registry/<entry>@segments.json`
remembers where), so a round that changes 50 of 10,000 segments uploads 50 files and a manifest.
The registry follows the store at the end of each round and rollback; a command killed before
that leaves the entry marked pending, and the next `check` or round brings `champion` in step."""
import hashlib
import logging
import os
import socket
import statistics
from collections.abc import Iterable
from typing import Any

from ..base.fsutil import atomic_write_json, read_json
from ..base.errors import LockBusy
from ..base.locks import flocked
from ..base.secrets import redact
from ..base.version import __version__
from ..config.records import Config, ModelConfig
from ..core.outcomes import Outcome
from ..core.records import Status
from ..core.segment_names import SEPARATOR, parse_name
from ..fit import child
from ..fit.child import Child, note
from ..state.briefs import Briefs
from ..state.sidecars import registry_path
from ..state.store import ModelStore
from .router import MANIFEST, artifact_path
from .tracking import (CHAMPION, Tracked, Warm, _child_error, _experiment, _job, artifact_location,
                       pip_requirements, tracking_uri)

log = logging.getLogger(__name__)

ROUTER = "retrainctl.publish.router"
TABLE = "round_segments.json"
KEEP_UPLOADS = 5  # uploaded versions remembered per segment (a rollback goes back to one of them)
LOCK_SECONDS = 60.0


def entries_of(config: Config, models: Iterable[ModelConfig]) -> list[str]:
    """The entries (with segment_by) the segment models among `models` belong to, when MLflow is on."""
    if not config.mlflow.enabled:
        return []
    return list(dict.fromkeys(m.entry for m in models if m.entry is not None))


def _sidecar(config: Config, entry: str, part: str = "segments") -> str:
    """`registry/<entry>@segments.json`: where each pipeline was uploaded and what `champion` holds;
    `registry/<entry>@pending.json`: the commands that may have moved the store since (small, as
    it is written before every round)."""
    return registry_path(config.state_dir, f"{entry}@{part}")


def _pending(config: Config, entry: str) -> list[str]:
    tokens = read_json(_sidecar(config, entry, "pending"))
    return [t for t in tokens if isinstance(t, str)] if isinstance(tokens, list) else []


def _set_pending(config: Config, entry: str, tokens: list[str]) -> None:
    path = _sidecar(config, entry, "pending")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_json(path, sorted(set(tokens)))


def _locked(config: Config, entry: str) -> Any:
    return flocked(os.path.join(config.state_dir, f"registry-{entry}.lock"), LOCK_SECONDS)


def _token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Round:
    """The MLflow side of one command's round over some entries' segments: begun before any of
    them is promoted or rolled back, ended (end()) once all are recorded. With `warm`, a tracking
    process imports MLflow and opens the store beside the fits."""

    def __init__(self, config: Config, entries: list[str], warm: bool = False) -> None:
        self.config, self.entries = config, entries
        self.warm = Warm(config) if warm and entries else None
        begin(config, entries)

    def end(self, store: ModelStore, outcomes: list[Outcome], trigger: str = "round") -> dict[str, Tracked]:
        """One run per entry for the round (its segments' `outcomes`), and a new registered version
        with `champion` moved to it where the store's current pipelines changed. Never raises: an
        error is a warning, and the entry stays pending for repair()."""
        done = {}
        for entry in self.entries:
            mine = [o for o in outcomes if o.model_name.partition(SEPARATOR)[0] == entry]
            proc = self.warm.take() if self.warm is not None else None
            done[entry] = sync(self.config, store, entry, mine, trigger, finished=_token(), proc=proc)
        self.close()
        return done

    def close(self) -> None:
        """Dismiss the warm process if it was not used (idempotent)."""
        if self.warm is not None:
            self.warm.close()


def start_round(config: Config, models: Iterable[ModelConfig], warm: bool = False) -> Round:
    """The Round of the entries (with segment_by) whose segments are among `models`: none when
    MLflow is off."""
    return Round(config, entries_of(config, models), warm)


def begin(config: Config, entries: list[str]) -> None:
    """Mark `entries` pending before their segments are promoted or rolled back: until the round
    ends and brings `champion` in step, the store may be ahead of it (a command killed in
    between is repaired by repair())."""
    for entry in entries:
        try:
            with _locked(config, entry):
                _set_pending(config, entry, [*_pending(config, entry), _token()])
        except (OSError, LockBusy) as exc:
            log.warning("%s: MLflow registry not marked pending: %s", entry, exc)


def repair(config: Config, store: ModelStore) -> None:
    """Bring `champion` in step for each entry left pending by a command that has died."""
    if not config.mlflow.enabled:
        return
    for model in config.models.values():
        if not model.segment_by:
            continue
        pending = _pending(config, model.name)
        if pending and not any(_alive(t) for t in pending):
            log.warning("%s: MLflow alias '%s' may be behind the store (a command died before registering); "
                        "bringing it in step", model.name, CHAMPION)
            sync(config, store, model.name, [], "repair", finished=None)


def _alive(token: str) -> bool:
    host, _, pid = token.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's command: its round ends there, or the next check repairs it
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(config: Config, entry: str) -> dict[str, Any]:
    side = read_json(_sidecar(config, entry))
    side = side if isinstance(side, dict) else {}
    side.setdefault("uploaded", {})
    return side


def _write(config: Config, entry: str, side: dict[str, Any]) -> None:
    path = _sidecar(config, entry)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_json(path, side)


def live(config: Config, store: ModelStore, entry: str) -> dict[str, dict[str, Any]]:
    """{segment name: its current version's {version, sha256, model_file}} of every segment of
    `entry` with a current model (the checksums from briefs.json while a metadata.json is unchanged)."""
    prefix = entry + SEPARATOR
    try:
        names = sorted(n for n in os.listdir(store.model_dir) if n.startswith(prefix))
    except FileNotFoundError:
        return {}
    briefs = Briefs(config.state_dir, store)
    out = {}
    for name in names:
        mv = briefs.current(name)
        if mv is not None and mv.metadata.get("sha256"):
            out[name] = {"version": mv.version, "sha256": mv.metadata["sha256"], "model_file": mv.model_file}
    return out


def digest(entry: ModelConfig, current: dict[str, dict[str, Any]]) -> str:
    """What a registered version stands for: the segments' versions and checksums, and how rows
    are routed. Equal digests: the registered version serves what the store does."""
    h = hashlib.sha256(repr((list(entry.segment_by or ()), entry.segment_fallback)).encode())
    for name, seg in sorted(current.items()):
        h.update(f"\n{name} {seg['version']} {seg['sha256']}".encode())
    return h.hexdigest()


def sync(config: Config, store: ModelStore, entry: str, outcomes: list[Outcome], trigger: str,
         finished: str | None, proc: Child | None = None) -> Tracked:
    """Log the round (when it has outcomes) and register what the store serves (when it differs
    from what `champion` names), under the entry's registry lock. `finished`: the pending token
    to clear on success (None: every token, as repair() does). `proc`: a tracking process to log
    in (a warm one), else a fresh one is started; either way it is closed."""
    model = config.model(entry)
    uri = tracking_uri(config)
    try:
        with _locked(config, entry):
            side = _read(config, entry)
            current = live(config, store, entry)
            wanted = digest(model, current)
            register = bool(current) and (side.get("digest") != wanted or side.get("error") is not None)
            if not outcomes and not register:
                tracked = Tracked(model_version=side.get("registered_version"))
            else:
                tracked = _log_round(config, model, uri, trigger, outcomes, current, side, register, proc)
                proc = None
            if tracked.error is None:
                if register:
                    side["digest"], side["registered_version"] = wanted, tracked.model_version
                    side["segments"] = len(current)
            side["error"] = tracked.error
            _write(config, entry, side)
            if tracked.error is None:
                _set_pending(config, entry, [] if finished is None else
                             [t for t in _pending(config, entry) if t != finished])
    except (OSError, LockBusy) as exc:
        tracked = Tracked(error=str(exc))
    finally:
        if proc is not None:
            proc.close()
    if tracked.error:
        if config.mlflow.required:
            log.error("%s: MLflow registry not in step with the store (mlflow.required): %s", entry, tracked.error)
        else:
            log.warning("%s: MLflow round not logged or registered at %s: %s", entry, redact(uri), tracked.error)
    elif tracked.model_version is not None:
        run = f"MLflow run {tracked.run_id}; " if tracked.run_id else ""  # none when nothing was logged
        log.info("%s: %s'%s' on registered version %s of %s (%d segments)", entry, run,
                 CHAMPION, tracked.model_version, entry, len(current))
    return tracked


def _log_round(config: Config, model: ModelConfig, uri: str, trigger: str, outcomes: list[Outcome],
               current: dict[str, dict[str, Any]], side: dict[str, Any], register: bool,
               proc: Child | None) -> Tracked:
    rows = [_row(o) for o in outcomes]
    scores = [r["score"] for r in rows if r["score"] is not None]
    counts = {s: sum(r["outcome"] == s for r in rows) for s in ("promoted", "rejected", "failed", "skipped")}
    metrics: dict[str, float] = {"segments_trained": counts["promoted"] + counts["rejected"],
                                 "segments_promoted": counts["promoted"], "segments_rejected": counts["rejected"],
                                 "segments_failed": counts["failed"], "segments_live": len(current)}
    if scores:
        metrics[f"median_{model.metric}"] = float(statistics.median(scores))
    uploads, refs = [], {}
    if register:
        for name, seg in current.items():
            known = side["uploaded"].get(name, {}).get(seg["sha256"])
            if known:
                refs[name] = dict(known, version=seg["version"], sha256=seg["sha256"])
            else:
                uploads.append((name, seg["version"], seg["model_file"], seg["sha256"]))
    kind = "estimator" if model.estimator else "trainer"
    job = dict(
        _job(config, uri),
        experiment=f"{model.name}_retraining",
        artifact_location=artifact_location(config, uri),
        run_name=f"{model.name}-{trigger}-{len(outcomes)}-segments" if outcomes else f"{model.name}-{trigger}",
        params={kind: model.estimator or model.trainer, "segment_by": ",".join(model.segment_by or ()),
                "data_path": model.data_path, "trigger_type": trigger, "retrainctl_version": __version__,
                **{f"{kind}.{k}": str(v)[:6000] for k, v in sorted(model.params.items())}},
        metrics=metrics, rows=rows,
        tags={"trigger": trigger, "retrainctl.entry": model.name},
        register=model.name if register else None,
        manifest={"entry": model.name, "segment_by": list(model.segment_by or ()),
                  "fallback": model.segment_fallback, "segments": refs},
        uploads=uploads,
        requirements=pip_requirements("joblib", model.training_spec()) if register else [],
    )
    tracked = Tracked()
    if proc is None:
        proc = Child("retrainctl-mlflow-entry", capture_output=True, env=job["env"])
    try:
        answer = proc.call(_log_entry, job, timeout=job["timeout"],
                           on_note=lambda run_id: setattr(tracked, "run_id", run_id))
        tracked.model_version = answer["version"]
        for name, ref in answer["uploaded"].items():
            mine = side["uploaded"].setdefault(name, {})
            mine[ref["sha256"]] = {"run_id": ref["run_id"], "path": ref["path"]}
            for old in list(mine)[:-KEEP_UPLOADS]:
                del mine[old]
    except child.ChildError as exc:
        tracked.error = _child_error(exc, job)
    finally:
        proc.close()
    return tracked


def _row(out: Outcome) -> dict[str, Any]:
    """The round table's row of one segment."""
    ev = out.event
    if ev is None:
        outcome = "failed" if out.failed else "skipped"
    elif ev.status == Status.SUCCESS:
        outcome = "promoted"
    else:
        outcome = {Status.REJECTED: "rejected", Status.FAILURE: "failed"}.get(ev.status, str(ev.status))
    return {"segment": out.model_name, "version": ev.version if ev else None, "score": ev.score if ev else None,
            "outcome": outcome, "rows": ev.extra.get("rows") if ev else None}


# --- the tracking process's side -------------------------------------------------------------------

def _log_entry(job):
    import json
    import shutil
    import tempfile
    import warnings

    import mlflow
    import mlflow.pyfunc

    warnings.simplefilter("ignore")
    client, experiment_id = _experiment(job)
    with tempfile.TemporaryDirectory(prefix="retrainctl-entry-") as tmp:
        with mlflow.start_run(experiment_id=experiment_id, run_name=job["run_name"], tags=job["tags"]) as run:
            run_id = run.info.run_id
            note(run_id)
            mlflow.log_params(job["params"], synchronous=True)
            mlflow.log_metrics(job["metrics"], synchronous=True)
            if job["rows"]:
                mlflow.log_dict({"columns": ["segment", "version", "score", "outcome", "rows"],
                                 "data": [[r["segment"], r["version"], r["score"], r["outcome"], r["rows"]]
                                          for r in job["rows"]]}, TABLE)
            if job["register"] is None:
                return {"version": None, "uploaded": {}}
            uploaded, segments = {}, dict(job["manifest"]["segments"])
            staged = os.path.join(tmp, "staged")
            for name, version, model_file, sha256 in job["uploads"]:
                path = artifact_path(name, version)
                os.makedirs(os.path.dirname(os.path.join(staged, path)), exist_ok=True)
                shutil.copyfile(model_file, os.path.join(staged, path))
                uploaded[name] = {"sha256": sha256, "run_id": run_id, "path": path}
                segments[name] = {"version": version, "sha256": sha256, "run_id": run_id, "path": path}
            if job["uploads"]:
                mlflow.log_artifacts(os.path.join(staged, "pipelines"), "pipelines")
            for name, seg in segments.items():
                seg["values"] = list(parse_name(name)[1])
            manifest = os.path.join(tmp, MANIFEST)
            with open(manifest, "w") as fh:
                json.dump(dict(job["manifest"], segments=segments), fh, indent=1, sort_keys=True)
            info = mlflow.pyfunc.log_model(name="model", loader_module=ROUTER, data_path=manifest,
                                           pip_requirements=job["requirements"])
        version = mlflow.register_model(info.model_uri, job["register"], await_registration_for=int(job["timeout"]),
                                        tags={"retrainctl.segments": str(len(segments))})
        client.set_registered_model_alias(job["register"], CHAMPION, version.version)
        return {"version": int(version.version), "uploaded": uploaded}
