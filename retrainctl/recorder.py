"""Write events to the state log, and tell the notification hook about the history ones."""
from .notify import notify
from .records import OPERATOR, Event
from .eventlog import StateLog
from .events import HISTORY_STATUSES
from .fold import ModelState

# The Event fields a caller may pass by name; any other field goes to Event.extra, in order.
_TYPED = ("duration", "data_hash", "version", "score", "error", "error_type")


class Recorder:
    """The state log of one command, and who to tell."""

    def __init__(self, config, log=None, callback=None):
        self.config = config
        self.log = log if log is not None else StateLog(config.state_dir, rotate_bytes=config.state_log_rotate_bytes)
        self.callback = callback if callback is not None else config.defaults.notification_callback

    def states(self):
        return self.log.states()

    def state(self, name):
        return self.states().get(name, ModelState())

    def write(self, model, trigger_type, status, when, description="", unless=None, **fields):
        """Record one event of `model`; see record()."""
        typed = {k: fields.pop(k) for k in _TYPED if k in fields}
        event = Event(model.name, trigger_type, status, when, description, metric=model.metric, extra=fields, **typed)
        return self.record(event, unless)

    def record(self, event, unless=None):
        """Append `event` (and notify); with `unless(model_state)`, only if that is false under
        the log's lock, else return None: see StateLog.append."""
        check = None if unless is None else (lambda states: unless(states.get(event.model_name, ModelState())))
        record = event.to_dict()
        if not self.log.append(record, unless=check):
            return None
        if event.status in HISTORY_STATUSES and event.trigger_type != OPERATOR:
            notify(record, callback=self.callback, command=self.config.notify.command,
                   timeout=self.config.notify.timeout_seconds)
        return event
