"""Observation of one model, changing nothing: its data file's fingerprint, what the log's fold
says, its current version in the store and the quality checks -> core.decide.Observation; and the
`status` row built from an observation and its decision."""
import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any

from ..base.errors import DataError, IntegrityError
from ..base.locks import lock_is_held
from ..base.version import __version__
from ..config.records import Config, ModelConfig
from ..core import decide, quality
from ..core.decide import Decision, Observation
from ..core.fold import ModelState
from ..core.outcomes import StatusRow
from ..core.quality import Correction
from ..core.records import QUALITY_TRIGGERS, candidate_key
from ..core.segment_names import entry_key
from ..core.values import newer_version, utcnow_iso
from ..data import datasets, segment_index
from ..data.fingerprint import FingerprintCache
from ..data.segment_index import SegmentData, SegmentIndex
from ..state.briefs import Briefs
from ..state.sidecars import read_running, registry_state
from ..state.store import ModelStore, ModelVersion
from . import evaluation


class Observer:
    """Looks at models for one command: the model store, the fingerprint cache and the clock."""

    def __init__(self, config: Config, store: ModelStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store if store is not None else ModelStore(config.model_dir)
        self.clock = clock
        self.fingerprints = FingerprintCache(config.state_dir)
        self._indexes: dict[tuple[str, str], SegmentIndex | DataError] = {}  # (entry, role) -> its segments, per command
        self._labels: dict[int, tuple[SegmentIndex, str]] = {}  # id(index) -> (index, its data path's label)
        self._families: dict[tuple[str, str], tuple[dict[str, float], dict[str, Correction]]] = {}  # (entry, kind) ->
        # ({segment: p}, {segment: Correction}): the tests of an entry's segments, corrected together
        self.quality = evaluation.QualityCache(config.state_dir)
        self._last: tuple[str, ModelVersion | None] | None = None  # the model observe() saw last, and its version
        self.briefs = Briefs(config.state_dir, self.store)

    def observe(self, model: ModelConfig, state: ModelState, manual: bool = False,
                now: float | None = None, force: bool = False) -> Observation:
        """Everything the decision needs about `model`, whose folded log is `state`. The quality
        checks (performance, drift) run here and only here."""
        now = self.clock() if now is None else now
        data, dataset = self._data(model)
        if model.entry and not (model.eval_path or model.drift_path):
            # a segment without quality checks needs only the fields of its brief (state.briefs)
            cur = self.briefs.current(model.name)
            self._last = None
            if cur is not None and cur.metadata.get("config_hash") != model.config_hash:
                cur = self.store.current(model.name)  # config_change: its keys are in the whole metadata
        else:
            cur = self.store.current(model.name)
            self._last = (model.name, cur)
        assessment = evaluation.assess(self.config, self.store, model, cur, data["data_hash"], data["data_rows"],
                                       state.quality_handled, self.fingerprints, self.quality, dataset,
                                       self._segment_of if model.entry else None,
                                       self._family if model.entry else None)
        config = _config(model, cur)
        obs = Observation(now=now, manual=manual, force=force, **data, **config,
                          **_from_log(state, data["data_hash"], config["config_hash"]), **_from_store(cur),
                          **assessment.observation_fields())
        if obs.unchanged and (manual or decide.fire(model.policy, obs)):
            # about to keep the live model rather than train: only if its file is sound
            obs = dataclasses.replace(obs, model_damaged=_integrity(self.store, cur) not in (None, "ok"))
        return obs

    def refresh(self, obs: Observation, model: ModelConfig, state: ModelState, data: bool = False) -> Observation:
        """`obs` brought up to date with the log (`state`) and the store after an attempt (this
        run's or another process's), without evaluating the model again. A performance or drift
        reason is kept only while the model it was found on is still current, the data is the
        same and no retrain has run for its evidence. With `data`, the data file is fingerprinted
        again (from the cache while its stat is unchanged)."""
        fields: dict[str, Any] = self._data(model)[0] if data else {}
        data_hash = fields.get("data_hash", obs.data_hash)
        cur = self.store.current(model.name)
        self._last = (model.name, cur)
        config = _config(model, cur)
        fields.update(_from_log(state, data_hash, config["config_hash"]), **_from_store(cur), **config)
        fields["model_damaged"] = obs.model_damaged and fields["model_version"] == obs.model_version
        keys = {kind: key for kind, key in (obs.quality_keys or {}).items()
                if fields["model_version"] == obs.model_version and data_hash == obs.data_hash
                and state.quality_handled.get(kind) != key}
        quality: dict[str, Any] = {kind: getattr(obs, kind) if kind in keys else None for kind in QUALITY_TRIGGERS}
        evidence = {kind: e for kind, e in (obs.quality_evidence or {}).items() if kind in keys}
        return dataclasses.replace(obs, now=self.clock(), quality_keys=keys or None, quality_evidence=evidence or None,
                                   **quality, **fields)

    def save(self, final: bool = True) -> None:
        """Keep the fingerprints and quality results computed so far for the next run; `final`
        False (between the models of one command) writes each cache at most once a second."""
        self.fingerprints.save(final)
        self.quality.flush(final)
        if final:
            self.briefs.save()

    def _segment_of(self, model: ModelConfig, role: str) -> tuple[SegmentData, list[list[str]]] | None:
        """A segment model's own rows in its entry's eval_path or drift_path (`role`), and the
        files that hold them; None where it has none. DataError where that path cannot be split
        into segments."""
        index = self.segments(self.config.model(model.entry or model.name), role)
        seg = index.segments.get(entry_key(model.name))
        return None if seg is None else (seg, index.fit_files(seg))

    def _family(self, model: ModelConfig, kind: str, p: float) -> Correction | None:
        """The Correction of segment `model`'s test of `kind` (its p-value `p`): the tests of every
        segment of its entry corrected together (BH), gathered once per command (those in its
        data with rows in its eval_path or drift_path). A segment whose own p the family does not
        hold (judged after it was gathered) joins it; a NaN p is no member."""
        if math.isnan(p):
            return None
        entry = self.config.model(model.entry or model.name)
        alpha = entry.policy.quality_alpha
        found = self._families.get((entry.name, kind))
        if found is None:
            try:
                rows = self.segments(entry, "eval" if kind == "performance" else "drift").segments
                segments = {k: seg for k, seg in self.segments(entry).segments.items() if k in rows}
            except DataError:
                segments = {}
            pvalues = evaluation.segment_p_values(self.config, self.store, entry, kind, segments, self.fingerprints,
                                                  self.quality, self._segment_of)
            found = (pvalues, quality.correct(pvalues, alpha))
        if found[0].get(model.name) != p:
            pvalues = dict(found[0], **{model.name: p})
            found = (pvalues, quality.correct(pvalues, alpha))
        self._families[entry.name, kind] = found
        return found[1][model.name]

    def segments(self, entry: ModelConfig, role: str = "") -> SegmentIndex:
        """The segments of an entry with segment_by, discovered once per command in its data path
        (or, `role` "eval" or "drift", in its eval_path or drift_path); DataError when that path
        cannot be split into segments."""
        found = self._indexes.get((entry.name, role))
        if found is None:
            path = getattr(entry, f"{role}_path") if role else None
            try:
                found = segment_index.discover(self.fingerprints, self.config.state_dir, entry, path, role)
            except DataError as exc:
                found = exc
            self._indexes[entry.name, role] = found
        if isinstance(found, DataError):
            raise found
        return found

    def _data(self, model: ModelConfig) -> tuple[dict[str, Any], datasets.DataSet | None]:
        """(Observation fields of the data path, its datasets.DataSet or None where unreadable)."""
        try:
            if model.segment_by:
                return self._segment_data(model), None
            ds = datasets.fingerprint(self.fingerprints, model.data_path, model.csv.quotechar)
        except DataError as exc:
            return {"data_path": os.path.relpath(model.data_path, self.config.base_dir), "data_hash": None,
                    "data_rows": None, "data_size": None, "data_files": None, "fit_files": None,
                    "data_error": str(exc)}, None
        return {"data_path": ds.label(self.config.base_dir), "data_hash": ds.hash, "data_rows": ds.rows,
                "data_size": ds.size, "data_files": ds.files if ds.is_set else None, "fit_files": ds.fit_files,
                "data_error": None}, ds

    def _segment_data(self, model: ModelConfig) -> dict[str, Any]:
        """The Observation fields of a segment model: its own rows' count and hash, and the files
        that hold them; `no_data` where its rows are gone. An entry itself (which stands in for
        its segments only when they cannot be discovered) raises the discovery's DataError."""
        index = self.segments(self.config.model(model.entry or model.name))
        key = entry_key(model.name)
        seg = index.segments.get(key)
        label = f"{self._label(index)} [{key}]"
        fields = {"data_path": label, "data_size": None, "data_files": None, "data_error": None,
                  "min_segment_rows": model.min_segment_rows}
        if seg is None:
            return dict(fields, data_hash=None, data_rows=0, fit_files=None, no_data=True)
        return dict(fields, data_hash=seg.hash, data_rows=seg.rows, fit_files=index.fit_files(seg))

    def _label(self, index: SegmentIndex) -> str:
        """The data path's label as status shows it: one relpath per entry, not per segment."""
        label = self._labels.get(id(index))
        if label is None or label[0] is not index:
            label = self._labels[id(index)] = (index, index.dataset.label(self.config.base_dir))
        return label[1]

    def status_row(self, model: ModelConfig, obs: Observation, decision: Decision, state: ModelState,
                   verify: bool = True) -> StatusRow:
        """The `status` row of a model observed as `obs` and decided as `decision`. `verify`
        checks the current model file's sha256 and warns of a lost model folder."""
        # the version observe() just read, when it was this model's (status observes, then asks for the row)
        cur = self._last[1] if self._last and self._last[0] == model.name else self.store.current(model.name)
        meta = cur.metadata if cur else {}
        state_dir = self.config.state_dir
        training_now = os.path.isdir(state_dir) and lock_is_held(state_dir, model.name)
        registered, in_sync = registry_state(state_dir, self.config.mlflow.enabled, model.name,
                                             cur.version if cur else None)
        return StatusRow(
            model_name=model.name,
            data_path=model.data_path,
            data_rows=obs.data_rows,
            data_files=len(obs.data_files) if obs.data_files else None,
            new_files=datasets.new_files(obs.data_files, meta),
            data_hash=obs.data_hash,
            data_error=obs.data_error,
            data_changed=(obs.data_hash != obs.model_data_hash) if (obs.data_hash and cur) else None,
            model_version=cur.version if cur else None,
            model_age_seconds=round(obs.now - obs.model_trained_at, 1) if obs.model_trained_at else None,
            metric=model.metric,
            score=meta.get("score"),
            columns=meta.get("columns"),
            mlflow_run_id=meta.get("mlflow_run_id"),
            mlflow_model_version=meta.get("mlflow_model_version"),
            due=decision.due,
            held=decision.held,
            due_reasons=decision.reasons,
            action=decision.action,
            note="; ".join(filter(None, [decision.note, *(obs.quality or {}).get("quality_notes", ())])),
            paused=state.paused,
            auto_retraining=model.policy.enable_auto_retraining,
            failures_in_row=obs.failures_on_data,
            next_retry=utcnow_iso(decision.next_retry) if decision.next_retry else None,
            model_integrity=_integrity(self.store, cur) if verify else None,
            model_dir_missing=self.store.warn_if_lost(model.name, state.had_live, state.max_version) if verify else None,
            training_now=training_now,
            last_event=state.last_event,
            quality=evaluation.status_fields(obs.quality),
            executing=_executing(state_dir, model.name, state) if training_now else None,
            alert=decide.alerts(obs),
            column_warnings=tuple(w for w in meta.get("column_warnings") or () if isinstance(w, str)),
            registry_champion_version=registered,
            registry_in_sync=in_sync,
            written_by_newer=_newer_than_this(state.newest_writer, meta.get("retrainctl_version")),
            entry=model.entry,
            segment=dict(zip(model.segment_by or (), model.segment)) if model.entry else None,
            no_data=obs.no_data,
        )


def _config(model: ModelConfig, cur: ModelVersion | None) -> dict[str, Any]:
    """The training config now against the live version's: its hash, and the keys that changed."""
    meta = cur.metadata if cur else {}
    live = meta.get("training_config")
    now = model.training_config()
    changes = tuple(k for k in now if isinstance(live, dict) and live.get(k) != now[k])
    return {"config_hash": model.config_hash, "model_config_hash": meta.get("config_hash"), "config_changes": changes}


def _from_log(state: ModelState, data_hash: str | None, config_hash: str | None) -> dict[str, Any]:
    rejected = None
    if data_hash:  # records from before config hashes remember the data alone
        rejected = state.rejected.get(candidate_key(data_hash, config_hash), state.rejected.get(data_hash))
    return {"paused": state.paused, "skipped_hash": state.skipped_hash,
            "rejected_at": rejected,
            "failures_in_row": state.failures_in_row, "failure_hash": state.failure_hash,
            "last_failure_time": state.last_failure_time}


def _from_store(cur: ModelVersion | None) -> dict[str, Any]:
    meta = cur.metadata if cur else {}
    return {"model_version": cur.version if cur else None, "model_data_hash": meta.get("data_hash"),
            "model_trained_at": meta.get("trained_at_ts")}


def _newer_than_this(*written_by: Any) -> str | None:
    """The newest of the releases that wrote a model's state, if it is newer than this one: its
    records or files may hold what this release does not understand."""
    newest = None
    for version in written_by:
        newest = newer_version(newest, version)
    return newest if newest is not None and newer_version(__version__, newest) != __version__ else None


def _integrity(store: ModelStore, mv: ModelVersion | None) -> str | None:
    if mv is None:
        return None
    try:
        store.verify(mv)
        return "ok"
    except IntegrityError as exc:
        return str(exc)


def _executing(state_dir: str, name: str, state: ModelState) -> dict[str, Any] | None:
    """Where a fit of a model whose lock is held executes: from the sidecar its controller
    writes once the fit runs, else `queued` as its open `started` record says (the executor,
    the controller's host and pid). No side file is written for a queued fit: a round of
    thousands of segments would write and delete one per segment."""
    info = read_running(state_dir, name)
    if info and (not state.open_attempts or info.get("attempt_id") in state.open_attempts):
        return {"executor": info.get("executor"), "state": info.get("state"), "where": info.get("where"),
                "since": utcnow_iso(info["since"]) if isinstance(info.get("since"), (int, float)) else None,
                "controller": info.get("controller")}
    if not state.open_attempts:
        return None
    started = max(state.open_attempts.values(), key=lambda r: r.when or 0.0)
    host, pid = started.get("host"), started.get("pid")
    return {"executor": started.get("executor"), "state": "queued", "where": None,
            "since": utcnow_iso(started.when) if started.when is not None else None,
            "controller": {"host": host, "pid": pid} if host is not None else None}
