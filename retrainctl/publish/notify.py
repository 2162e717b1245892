"""Telling people about events: the Python callback, the notification command (the event as JSON
on its stdin), signed webhooks (publish/webhooks.py) and chat or mail through apprise. All the
sends of one command share one time budget; an alert whose cause persists is sent once per cause
(and again after a day), remembered in notified.json. A failing or slow notifier is logged and
never fails a retrain."""
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..base.errors import ConfigError, ErrorType
from ..base.fsutil import atomic_write_json, read_json
from ..base.locks import LockTimeout, file_lock
from ..config.records import NotifyConfig
from ..core.records import DEFAULT_EVENTS, NotifyEvent, Status
from ..core.values import utcnow_iso
from . import webhooks
from .webhooks import Webhook

log = logging.getLogger(__name__)

BUDGET_SECONDS = 10.0      # per command, every endpoint together
TIMEOUT_SECONDS = 5.0      # per request
RETRIES = 2                # after the first attempt
BACKOFF_SECONDS = 0.5      # before the first retry, doubled for each next one
SENT_FILE = "notified.json"
# An alert whose cause persists is repeated this often, so a failure that outlives its first
# alert (or a unit that fails the same way a week later) is not silenced for good.
REMIND_AFTER_SECONDS = 24 * 3600


# --- the callback and the command ----------------------------------------------------------------

def notify_callback(record: dict[str, Any], callback: Callable[..., Any] | None) -> None:
    """The Python API's notification_callback(model_name, status, duration, **the rest)."""
    if callback is None:
        return
    try:
        callback(record["model_name"], record["status"], record.get("duration"),
                 **{k: v for k, v in record.items() if k not in ("model_name", "status", "duration")})
    except Exception as exc:
        log.warning("notification_callback failed for %s: %s: %s", record["model_name"], type(exc).__name__, exc)


def notify_command(record: dict[str, Any], command: tuple[str, ...] | None, timeout: float = 10.0) -> None:
    """Run `notify.command` with the record as JSON on its stdin, killed after `timeout`."""
    if not command:
        return
    from ..fit import child

    try:
        code, err = child.run_command(command, json.dumps(record, default=str).encode(), timeout)
    except child.Timeout:
        log.warning("notify command %s timed out after %gs", command[0], timeout)
    except OSError as exc:
        log.warning("notify command %s could not run: %s", command[0], exc.strerror or exc)
    else:
        if code != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            log.warning("notify command %s exited %d%s", command[0], code, f": {lines[-1]}" if lines else "")


# --- targets -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AppriseTarget:
    urls: tuple[str, ...]
    events: tuple[str, ...] = tuple(DEFAULT_EVENTS)

    @property
    def key(self) -> str:
        return "apprise:" + hashlib.sha256("\n".join(self.urls).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return "apprise"


Target = Webhook | AppriseTarget


@dataclass(frozen=True)
class Delivery:
    """What became of one event at one endpoint: sent, failed, duplicate or timed_out."""

    target: str
    event: str
    outcome: str
    attempts: int = 0
    detail: str = ""


def targets(notify: NotifyConfig) -> tuple[tuple[Webhook, ...], AppriseTarget | None]:
    """The webhooks and the apprise target (or None) of a validated `notify` config section."""
    hooks = tuple(Webhook(h.url, h.secret_env, h.secret_file, tuple(h.events)) for h in notify.webhooks)
    return hooks, AppriseTarget(tuple(notify.apprise), tuple(notify.apprise_events)) if notify.apprise else None


# --- events --------------------------------------------------------------------------------------

def event_names(record: dict[str, Any]) -> set[str]:
    """Every name a record answers to: its status, `interrupted` for a dead attempt's failure,
    and the quality trigger (`drift`, `performance`) that fired it or that it alerts about."""
    status = record.get("status")
    names = {str(status)}
    if status == Status.FAILURE and record.get("error_type") in (NotifyEvent.INTERRUPTED, NotifyEvent.UNIT_FAILED):
        names.add(record["error_type"])
    if record.get("trigger_type") in (NotifyEvent.DRIFT, NotifyEvent.PERFORMANCE):
        names.add(record["trigger_type"])
    return names


def primary_name(record: dict[str, Any]) -> str:
    """The one name an event is sent under (the `event` field and X-Retrainctl-Event header)."""
    names = event_names(record)
    return next((n for n in (NotifyEvent.INTERRUPTED, NotifyEvent.UNIT_FAILED) if n in names),
                str(record.get("status")))


def unit_failure_event(unit: str, environ: dict[str, str], log_tail: Iterable[str], now: float) -> dict[str, Any]:
    """The event of `retrainctl notify-failure UNIT`, run by an OnFailure= unit: systemd (251 and
    later) passes what happened as MONITOR_* variables; `log_tail` is the failed run's last log
    lines. Shaped like a history record, so every notifier and filter treats it alike."""
    result = environ.get("MONITOR_SERVICE_RESULT") or "unknown"
    code, status = environ.get("MONITOR_EXIT_CODE"), environ.get("MONITOR_EXIT_STATUS")
    what = f"{unit} failed: result {result}" + (f", {code} {status}" if code else "")
    return {"model_name": None, "unit": unit, "status": Status.FAILURE, "trigger_type": "systemd",
            "trigger_time": utcnow_iso(now), "duration": 0.0, "data_hash": None, "description": what,
            "error": "\n".join(list(log_tail)[-20:]) or what, "error_type": ErrorType.UNIT_FAILED,
            "error_signature": f"{result}|{code}|{status}", "invocation_id": environ.get("MONITOR_INVOCATION_ID")}


def cause(record: dict[str, Any]) -> str | None:
    """What makes an alert the same alert again: a failure of the same kind on the same data, a
    rejection or skip of the same data, a drift alert on the same evidence. None for events that
    are news each time (a success, an operator's action)."""
    status = record.get("status")
    if status == Status.FAILURE:
        return "|".join(map(str, ("failure", record.get("error_type"), record.get("error_signature") or "",
                                  record.get("data_hash"), record.get("unit") or "")))
    if status in (Status.REJECTED, Status.SKIPPED):
        return f"{status}|{record.get('error_type') or ''}|{record.get('data_hash')}"
    if status in (NotifyEvent.DRIFT, NotifyEvent.PERFORMANCE):
        keys = record.get("quality_keys") or {}
        return f"{status}|{keys.get(status) or record.get('data_hash')}"
    return None


def subject(record: dict[str, Any]) -> str:
    """Who the once-per-cause memory is kept for: the model, or the failed unit."""
    return str(record.get("model_name") or record.get("unit") or "-")


def slot(record: dict[str, Any]) -> str:
    """Where the once-per-cause memory keeps a record's cause: per subject, with drift and
    performance alerts apart, so an alert and a failure of one model do not take turns
    re-sending each other, and a retrain (which cannot fix input drift) does not end a drift alert."""
    status = record.get("status")
    return subject(record) + (f"|{status}" if status in (NotifyEvent.DRIFT, NotifyEvent.PERFORMANCE) else "")


def chat_message(record: dict[str, Any]) -> tuple[str, str]:
    """(title, body) of a chat or mail notification."""
    event = primary_name(record)
    who = record.get("model_name") or record.get("unit") or "retrainctl"
    title = f"retrainctl: {who} {event}"
    lines = [record.get("description") or ""]
    if record.get("error"):
        lines.append(f"error ({record.get('error_type')}): {record['error']}")
    if record.get("version") is not None:
        lines.append(f"version v{record['version']}, {record.get('metric')} {record.get('score')}")
    return title, "\n".join(line for line in lines if line)


# --- sending -------------------------------------------------------------------------------------

class Notifier:
    """One command's notifications: its send() calls share one time budget, counted while they
    run (an hour of training between two events does not use it up)."""

    def __init__(self, webhooks: Iterable[Webhook] = (), apprise: AppriseTarget | None = None,
                 state_dir: str | None = None, budget: float = BUDGET_SECONDS, timeout: float = TIMEOUT_SECONDS,
                 retries: int = RETRIES, backoff: float = BACKOFF_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.webhooks = tuple(webhooks)
        self.apprise = apprise
        self.state_dir = state_dir
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.budget, self.spent = budget, 0.0
        self.clock = clock

    @classmethod
    def from_config(cls, notify: NotifyConfig, state_dir: str | None = None,
                    clock: Callable[[], float] = time.time) -> "Notifier":
        hooks, apprise = targets(notify)
        return cls(hooks, apprise, state_dir=state_dir, clock=clock)

    @staticmethod
    def check_secrets(notify: NotifyConfig) -> None:
        """Every configured secret can be had, or ConfigError naming the entry: checked before a
        command does anything, so a config that promises signatures fails at once, not mid-retrain."""
        for i, hook in enumerate(targets(notify)[0]):
            hook.secret(f"notify.webhooks[{i}]")

    def send(self, records: list[dict[str, Any]]) -> list[Delivery]:
        """Deliver `records` to every endpoint that wants them, in parallel threads joined by
        the deadline; returns a Delivery per (endpoint, record) considered."""
        targets_: list[Target] = [*self.webhooks, *([self.apprise] if self.apprise else [])]
        if not targets_ or not records:
            return []
        start = time.monotonic()
        try:
            return self._send(targets_, records, start + max(0.0, self.budget - self.spent))
        finally:
            self.spent += time.monotonic() - start

    def _send(self, targets_: list[Target], records: list[dict[str, Any]], deadline: float) -> list[Delivery]:
        sent = self._load_sent()
        results: list[Delivery] = []
        jobs = []
        changes: list[tuple[str, str, dict[str, Any] | None]] = []
        for target in targets_:
            todo = [r for r in records if event_names(r) & set(target.events)]
            for record in list(todo):
                why = cause(record)
                if why is not None and self._already_sent(sent, target, record, why):
                    results.append(Delivery(target.label, primary_name(record), "duplicate"))
                    todo.remove(record)
            out: list[Delivery] = []
            worker = None
            if todo:
                worker = threading.Thread(target=self._work, args=(target, todo, out, deadline), daemon=True,
                                          name=f"retrainctl-notify-{target.key}")
                worker.start()
            jobs.append((target, todo, out, worker))
        for target, todo, out, worker in jobs:
            if worker is not None:  # one left running past the deadline is abandoned (a daemon thread)
                worker.join(max(0.0, deadline - time.monotonic()))
            done = dict(zip(map(id, todo), list(out)))
            for record in todo:
                if id(record) not in done:
                    done[id(record)] = _budget_used_up(target.label, record)
                results.append(done[id(record)])
            changes += _changes(target, records, done, self.clock())
        self._save_sent(changes, deadline)
        return results

    def _work(self, target: Target, records: list[dict[str, Any]], out: list[Delivery], deadline: float) -> None:
        if isinstance(target, AppriseTarget):
            for record in records:
                out.append(self._apprise_one(target, record))
            return
        try:
            secret = target.secret()
        except ConfigError as exc:
            log.warning("%s: not notified: %s", target.label, exc)
            out.extend(Delivery(target.label, primary_name(r), "failed", detail=str(exc)) for r in records)
            return
        for record in records:
            out.append(self._post_one(target, record, secret, deadline))

    def _post_one(self, hook: Webhook, record: dict[str, Any], secret: bytes | None, deadline: float) -> Delivery:
        label, event = hook.label, primary_name(record)
        url, body, headers = webhooks.request_parts(hook, record, event, secret, _user_agent())
        detail, attempt = "", 0
        while attempt <= self.retries:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            attempt += 1
            code, detail = webhooks.post(url, body, headers, min(self.timeout, left))
            if code is not None and 200 <= code < 300:
                log.info("%s: %s event for %s delivered (HTTP %d)", label, event, subject(record), code)
                return Delivery(label, event, "sent", attempt, f"HTTP {code}")
            if code is not None and code < 500 and code != 429:
                break  # the endpoint refuses this request: asking again will not change its mind
            pause = self.backoff * 2 ** (attempt - 1)
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
        if attempt == 0:  # the command's budget was spent before this one's turn: as if abandoned
            return _budget_used_up(label, record)
        log.warning("%s: %s event for %s not delivered after %d attempt(s): %s", label, event,
                    subject(record), attempt, detail or "time budget used up")
        return Delivery(label, event, "failed", attempt, detail or "time budget used up")

    def _apprise_one(self, target: AppriseTarget, record: dict[str, Any]) -> Delivery:
        event = primary_name(record)
        try:
            import apprise
        except ImportError:
            detail = "notify.apprise is set but apprise is not installed (pip install 'retrainctl[notify]')"
            log.warning("apprise: not notified: %s", detail)
            return Delivery("apprise", event, "failed", detail=detail)
        sender = apprise.Apprise()
        for url in target.urls:
            sender.add(url)
        title, text = chat_message(record)
        detail = "not delivered to every URL"
        try:
            ok = bool(sender.notify(title=title, body=text))
        except Exception as exc:  # a plugin's own failure must not reach the retrain
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            log.warning("apprise: %s event for %s: %s", event, subject(record), detail)
        return Delivery("apprise", event, "sent" if ok else "failed", 1, "" if ok else detail)

    def _already_sent(self, sent: dict[str, Any], target: Target, record: dict[str, Any], why: str) -> bool:
        entry = (sent.get(target.key) or {}).get(slot(record))
        if not isinstance(entry, dict) or entry.get("cause") != why:
            return False
        at = entry.get("at")
        return isinstance(at, (int, float)) and self.clock() - at < REMIND_AFTER_SECONDS

    def _load_sent(self) -> dict[str, Any]:
        if not self.state_dir:
            return {}
        data = read_json(os.path.join(self.state_dir, SENT_FILE), default={})
        return data if isinstance(data, dict) else {}

    def _save_sent(self, changes: list[tuple[str, str, dict[str, Any] | None]], deadline: float) -> None:
        """Applied to the file under its lock, as another command may have sent meanwhile. Best
        effort: losing it only means an alert is sent once more."""
        if not changes or not self.state_dir or not os.path.isdir(self.state_dir):
            return
        path = os.path.join(self.state_dir, SENT_FILE)
        try:
            with file_lock(os.path.join(self.state_dir, "notified.lock"), max(0.1, deadline - time.monotonic())):
                data = self._load_sent()
                for key, who, entry in changes:
                    causes = data.setdefault(key, {})
                    if entry is None:
                        causes.pop(who, None)
                    else:
                        causes[who] = entry
                atomic_write_json(path, data, durable=False)
        except (OSError, LockTimeout) as exc:
            log.warning("%s: not updated: %s", path, exc)


def _changes(target: Target, records: list[dict[str, Any]], done: dict[int, Delivery],
             now: float) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(endpoint, slot, {cause, at} or None) in the records' order: a cause whose alert was
    delivered, or a success that ends the cause before it, whether this endpoint wanted it or
    not (an operator's pause does not). An alert that was not delivered changes nothing: its
    next occurrence is tried again."""
    out: list[tuple[str, str, dict[str, Any] | None]] = []
    for record in records:
        why, result = cause(record), done.get(id(record))
        if record.get("status") == Status.SUCCESS:
            out.append((target.key, slot(record), None))
        elif result is not None and result.outcome == "sent":
            out.append((target.key, slot(record), {"cause": why, "at": round(now, 3)}))
    return out


def _budget_used_up(label: str, record: dict[str, Any]) -> Delivery:
    """The Delivery of an event the command's notification budget left no time for, logged."""
    log.warning("%s: %s event for %s not delivered: time budget used up", label, primary_name(record),
                subject(record))
    return Delivery(label, primary_name(record), "timed_out", detail="notification time budget used up")


def _user_agent() -> str:
    from ..base.version import __version__

    return f"retrainctl/{__version__}"
