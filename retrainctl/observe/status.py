"""The `status` rows: every selected model observed (or what a check just observed, brought up to
date) and decided, without changing anything."""
import os
import time
from collections.abc import Callable

from ..config.records import Config, ModelConfig
from ..core import decide
from ..core.decide import Observation
from ..core.fold import ModelState
from ..core.outcomes import StatusRow
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
