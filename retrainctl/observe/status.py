"""The `status` rows: every selected model observed (or what a check just observed, brought up to
date) and decided, without changing anything."""
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config.records import Config, ModelConfig
from ..core import decide
from ..core.decide import Decision, Observation
from ..core.fold import ModelState
from ..core.outcomes import EntryCounts, StatusRow, status_counts
from ..core.records import Action, Held
from ..state.log import StateLog
from .observer import Observer


def status(config: Config, models: list[ModelConfig], clock: Callable[[], float] = time.time, verify: bool = True,
           states: dict[str, ModelState] | None = None,
           observed: dict[str, Observation] | None = None, observer: Observer | None = None) -> list[StatusRow]:
    """One StatusRow per model: data, current version, age, due and why, last event, failures,
    training now. `verify` checks each current model file's sha256 (skipped where only counters
    are wanted); `states` is the log's fold when the caller has already read it; `observed`
    ({model: Observation}) is what a check saw, brought up to date instead of observing (and
    evaluating) those models again."""
    observer = observer or Observer(config, clock=clock)
    has_state = os.path.isdir(config.state_dir)
    if states is None:
        states = StateLog(config.state_dir).states() if has_state else {}
    observed = observed or {}
    rows = []
    for model in models:
        state = states.get(model.name, ModelState())
        seen = observed.get(model.name)
        obs = observer.refresh(seen, model, state) if seen is not None else observer.observe(model, state)
        rows.append(observer.status_row(model, obs, decide.decide(model.policy, obs), state, verify))
    if has_state:
        observer.save()
    return rows


@dataclass(frozen=True)
class SegmentCount:
    """What core.outcomes.status_counts reads of a segment, as its StatusRow would say it."""

    entry: str | None
    due: bool
    held: Held | None
    action: Action
    paused: bool
    no_data: bool
    failures_in_row: int
    model_version: int | None
    model_age_seconds: float | None


def entry_counts(config: Config, segments: list[ModelConfig], observer: Observer,
                 states: dict[str, ModelState]) -> list[EntryCounts]:
    """The per-entry counts of `status` for these segment models, from each one's observation
    and decision alone: counted as their status rows count them, without building the rows,
    which read every segment's metadata.json and checksum its model file (seconds at ten
    thousand segments)."""
    counted = []
    for model in segments:
        state = states.get(model.name, ModelState())
        obs = observer.observe(model, state)
        counted.append(segment_count(model, obs, decide.decide(model.policy, obs), state))
    if os.path.isdir(config.state_dir):
        observer.save()
    return status_counts(counted)


def segment_count(model: ModelConfig, obs: Observation, decision: Decision, state: ModelState) -> SegmentCount:
    """A segment as its status row would count it."""
    return SegmentCount(
        entry=model.entry, due=decision.due, held=decision.held, action=decision.action, paused=state.paused,
        no_data=obs.no_data, failures_in_row=obs.failures_on_data, model_version=obs.model_version,
        model_age_seconds=round(obs.now - obs.model_trained_at, 1) if obs.model_trained_at else None)
