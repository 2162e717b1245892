"""Write records to the state log, and tell the notification command, the webhooks and the chat
URLs about the history ones."""
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..base.version import __version__
from ..config.records import Config, ModelConfig
from ..core.fold import ModelState
from ..core.records import HISTORY_STATUSES, OPERATOR, Record, Status
from ..publish.notify import Notifier, aggregates, notify_callback, notify_command, segment_entry
from ..state.log import StateLog

# The Record fields a caller may pass by name; any other field goes to Record.extra, in order.
_TYPED = ("duration", "data_hash", "version", "score", "error", "error_type", "attempt_id")


class Recorder:
    """The state log of one command, and who to tell."""

    def __init__(self, config: Config, log: StateLog | None = None,
                 callback: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.log = log if log is not None else StateLog(config.state_dir, rotate_bytes=config.state_log_rotate_bytes)
        self.callback = callback if callback is not None else config.defaults.notification_callback
        self._notifier: Notifier | None = None
        self._segments: dict[str, int] = {}
        self._held: list[dict[str, Any]] = []  # segments' records for the command and callback, until flush()
        if config.notify.webhooks:
            Notifier.check_secrets(config.notify)

    def states(self) -> dict[str, ModelState]:
        return self.log.states()

    def state(self, name: str) -> ModelState:
        """One model's state: only its record is taken from the folds (a batch of segments asks
        for each of thousands in turn)."""
        return self.log.states_of((name,)).get(name, ModelState())

    def event(self, model: ModelConfig, trigger_type: str, status: Status, when: float, description: str = "",
              **fields: Any) -> Record:
        """The Record of one event of `model`: the typed fields by name, any other in `extra`."""
        typed = {k: fields.pop(k) for k in _TYPED if k in fields}
        if "error_type" in typed and typed["error_type"] is not None:
            typed["error_type"] = str(typed["error_type"])
        return Record(model.name, trigger_type, status, when, description, metric=model.metric, extra=fields,
                      **typed)

    def write(self, model: ModelConfig, trigger_type: str, status: Status, when: float, description: str = "", *,
              unless: Callable[[ModelState], bool] | None = None, **fields: Any) -> Record | None:
        """Record one event of `model`; see record()."""
        return self.record(self.event(model, trigger_type, status, when, description, **fields), unless)

    def record(self, event: Record, unless: Callable[[ModelState], bool] | None = None) -> Record | None:
        """Append `event` (and notify); with `unless(model_state)`, only if that is false under
        the log's lock, else return None: see StateLog.append."""
        event = _versioned(event)
        check = None if unless is None else (lambda states: unless(states.get(event.model_name, ModelState())))
        if not self.log.append(event, unless=check):
            return None
        self._tell(event)
        return event

    def record_many(self, events: list[Record]) -> list[Record]:
        """Append `events` in one write and one fsync (a group commit: a batch of models' outcomes),
        then notify each as record() does."""
        events = [_versioned(event) for event in events]
        self.log.append(*events)
        for event in events:
            self._tell(event)
        return events

    def _tell(self, event: Record) -> None:
        if event.status in HISTORY_STATUSES:
            record = event.to_dict()
            if event.trigger_type != OPERATOR:
                if segment_entry(record) in self._segments and (self.callback or self.config.notify.command):
                    self._held.append(record)  # told of with its entry's other segments, at flush()
                else:
                    notify_callback(record, self.callback)
                    notify_command(record, self.config.notify.command, self.config.notify.timeout_seconds)
            self.alert(record)

    def alert(self, record: dict[str, Any]) -> None:
        """Send `record` to the webhooks and chat URLs that want it (each entry's `events` picks),
        without writing it to the log: a drift alert is sent this way alone."""
        section = self.config.notify
        if not (section.webhooks or section.apprise):
            return
        if self._notifier is None:  # one per command: its sends share one time budget
            self._notifier = Notifier.from_config(section, state_dir=self.config.state_dir, segments=self._segments)
        self._notifier.send([record])

    def gather(self, models: Iterable[ModelConfig], also: Mapping[str, int] | None = None) -> None:
        """Until flush(), hold the notifications of these models' segments, to send one message
        per entry and event (publish.notify.aggregate); a segment alone of its entry is told of
        as any model is. `also`: {entry: segments the command covers without these models} (a
        check answers them from their quiet mark). Call before recording."""
        covered = Counter(m.entry for m in models if m.entry)
        covered.update(also or {})
        self._segments.update({entry: n for entry, n in covered.items() if n > 1})

    def flush(self) -> None:
        """Send what gather() held back: to the webhooks and chat URLs, and to notify.command and
        the notification callback one aggregate per entry and event (the body a webhook gets)."""
        held, self._held = self._held, []
        for message in aggregates(held, [], self._segments):
            triggers = {r.get("trigger_type") for r in message.records}  # what a callback of records reads
            body = {"event": message.event, "trigger_type": triggers.pop() if len(triggers) == 1 else "several",
                    **message.body}
            notify_callback(dict(body, model_name=body["entry"], duration=None), self.callback)
            notify_command(body, self.config.notify.command, self.config.notify.timeout_seconds)
        if self._notifier is not None:
            self._notifier.flush()


def _versioned(event: Record) -> Record:
    """`event` naming the release that wrote it."""
    if event.raw is None and "retrainctl_version" not in event.extra:
        return dataclasses.replace(event, extra={**event.extra, "retrainctl_version": __version__})
    return event
