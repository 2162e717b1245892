"""Telling people about events: the Python callback, the notification command (the event as JSON
on its stdin), signed webhooks (publish/webhooks.py) and chat or mail through apprise. All the
sends of one command share one time budget; an alert whose cause persists is sent once per cause
(and again after a day), remembered in notified.json. The events of an entry's segments are sent
as one message per entry and event at the end of a command, when the command gathers them. A
failing or slow notifier is logged and never fails a retrain."""
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..base.errors import ConfigError, ErrorType
from ..base.fsutil import atomic_write_json, read_json
from ..base.locks import LockTimeout, file_lock
from ..config.records import NotifyConfig
from ..core.records import DEFAULT_EVENTS, NotifyEvent, Status
from ..core.segment_names import entry_of, is_segment_name
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
NAMED = 10                 # segments an aggregate names; the rest it counts
# What the segments of an aggregate did, after "12 of 1,000 segments of sales".
DID: dict[str, str] = {
    NotifyEvent.SUCCESS: "retrained", NotifyEvent.FAILURE: "failed", NotifyEvent.INTERRUPTED: "were interrupted",
    NotifyEvent.REJECTED: "had their candidate rejected", NotifyEvent.SKIPPED: "were skipped",
    NotifyEvent.DRIFT: "drifted", NotifyEvent.PERFORMANCE: "lost performance", NotifyEvent.PAUSED: "were paused",
    NotifyEvent.RESUMED: "were resumed", NotifyEvent.ROLLED_BACK: "were rolled back"}


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
    """Who the once-per-cause memory is kept for: the model (a segment: each its own), or the
    failed unit; who an aggregate is about: its entry."""
    return str(record.get("model_name") or record.get("unit") or record.get("entry") or "-")


def slot(record: dict[str, Any]) -> str:
    """Where the once-per-cause memory keeps a record's cause: per subject, with drift and
    performance alerts apart, so an alert and a failure of one model do not take turns
    re-sending each other, and a retrain (which cannot fix input drift) does not end a drift alert."""
    status = record.get("status")
    return subject(record) + (f"|{status}" if status in (NotifyEvent.DRIFT, NotifyEvent.PERFORMANCE) else "")


def chat_message(record: dict[str, Any]) -> tuple[str, str]:
    """(title, body) of a chat or mail notification: of a model's own event, or of an aggregate
    (its description as the title, a line per segment named)."""
    if record.get("aggregate"):
        lines = [f"{r['model_name']}: {_one_line(r)}" for r in record["records"]]
        if record["more"]:
            lines.append(f"and {record['more']:,} more")
        if record["already_notified"]:
            lines.append(f"{record['already_notified']:,} more as before (already notified)")
        return f"retrainctl: {_headline(record)}", "\n".join(lines)
    event = primary_name(record)
    who = record.get("model_name") or record.get("unit") or "retrainctl"
    title = f"retrainctl: {who} {event}"
    lines = [record.get("description") or ""]
    if record.get("error"):
        lines.append(f"error ({record.get('error_type')}): {record['error']}")
    if record.get("version") is not None:
        lines.append(f"version v{record['version']}, {record.get('metric')} {record.get('score')}")
    return title, "\n".join(line for line in lines if line)


# --- many segments, one message ------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """What one delivery tells: a model's own record (`body` is the record), or the aggregate of
    an entry's segments (`records` are the ones it stands for)."""

    event: str
    body: dict[str, Any]
    records: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, record: dict[str, Any]) -> "Message":
        return cls(primary_name(record), record, (record,))


def segment_entry(record: dict[str, Any]) -> str | None:
    """The entry of a segment's record; None for a declared model's or a unit's."""
    name = record.get("model_name")
    return entry_of(name) if isinstance(name, str) and is_segment_name(name) else None


def aggregate(entry: str, event: str, records: list[dict[str, Any]], segments: int,
              already_notified: int = 0) -> dict[str, Any]:
    """The one event that tells of the `records` of an entry's segments sent under `event` by one
    command: how many of its `segments` (those the command covered), the first NAMED of them by
    name with their records, the rest counted; `already_notified`: segments with the same event
    whose cause this endpoint was told of already (not named, not counted in `count`)."""
    last = {r["model_name"]: r for r in records}
    names = sorted(last)
    named = names[:NAMED]
    errors = Counter(str(r["error_type"]) for r in last.values() if r.get("error_type"))
    times = sorted(str(r["trigger_time"]) for r in last.values() if r.get("trigger_time"))
    body = {"aggregate": True, "entry": entry, "status": records[0].get("status"),
            "segments": max(segments, len(names)), "count": len(names), "models": named,
            "more": len(names) - len(named), "already_notified": already_notified,
            "error_types": dict(sorted(errors.items())), "trigger_time": times[0] if times else None,
            "records": [last[n] for n in named]}
    return {**body, "description": _headline(body, event) + ": " + ", ".join(named)
            + (f" and {body['more']:,} more" if body["more"] else "")
            + (f"; {already_notified:,} more as before, already notified" if already_notified else "")}


def aggregates(fresh: list[dict[str, Any]], repeated: list[dict[str, Any]],
               segments: Mapping[str, int]) -> list[Message]:
    """One Message per entry and event for the segments' records an endpoint is to be told of
    (`fresh`), in the order of their first record; `repeated`: the ones it was told of already."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in fresh:
        groups.setdefault((segment_entry(record) or "-", primary_name(record)), []).append(record)
    told: dict[tuple[str, str], set[str]] = {}
    for record in repeated:
        told.setdefault((segment_entry(record) or "-", primary_name(record)), set()).add(record["model_name"])
    out = []
    for (entry, event), group in groups.items():
        again = told.get((entry, event), set()) - {r["model_name"] for r in group}
        out.append(Message(event, aggregate(entry, event, group, segments.get(entry, 0), len(again)), tuple(group)))
    return out


def _headline(body: dict[str, Any], event: str | None = None) -> str:
    event = event or primary_name(body["records"][0])
    return (f"{body['count']:,} of {body['segments']:,} segments of {body['entry']} "
            f"{DID.get(event, event)}")


def _one_line(record: dict[str, Any]) -> str:
    """A segment's record in an aggregate's chat message: its error, else its description."""
    text = (f"{record['error_type']}: {record['error']}" if record.get("error")
            else record.get("description") or str(record.get("status")))
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


# --- sending -------------------------------------------------------------------------------------

class Notifier:
    """One command's notifications: its send() calls share one time budget, counted while they
    run (an hour of training between two events does not use it up). With `segments` (entry ->
    how many of its segments the command covers), the records of those entries' segments are
    held by send() and sent by flush() as one aggregate per entry and event."""

    def __init__(self, webhooks: Iterable[Webhook] = (), apprise: AppriseTarget | None = None,
                 state_dir: str | None = None, budget: float = BUDGET_SECONDS, timeout: float = TIMEOUT_SECONDS,
                 retries: int = RETRIES, backoff: float = BACKOFF_SECONDS,
                 clock: Callable[[], float] = time.time, segments: Mapping[str, int] | None = None) -> None:
        self.webhooks = tuple(webhooks)
        self.apprise = apprise
        self.state_dir = state_dir
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.budget, self.spent = budget, 0.0
        self.clock = clock
        self.segments: Mapping[str, int] = segments if segments is not None else {}
        self.held: list[dict[str, Any]] = []

    @classmethod
    def from_config(cls, notify: NotifyConfig, state_dir: str | None = None,
                    clock: Callable[[], float] = time.time, segments: Mapping[str, int] | None = None) -> "Notifier":
        hooks, apprise = targets(notify)
        return cls(hooks, apprise, state_dir=state_dir, clock=clock, segments=segments)

    @staticmethod
    def check_secrets(notify: NotifyConfig) -> None:
        """Every configured secret can be had, or ConfigError naming the entry: checked before a
        command does anything, so a config that promises signatures fails at once, not mid-retrain."""
        for i, hook in enumerate(targets(notify)[0]):
            hook.secret(f"notify.webhooks[{i}]")

    def send(self, records: list[dict[str, Any]]) -> list[Delivery]:
        """Deliver `records` to every endpoint that wants them, in parallel threads joined by
        the deadline; returns a Delivery per (endpoint, record) considered. The records of the
        segments of an entry in `segments` are held for flush() instead."""
        now: list[dict[str, Any]] = []
        for record in records:
            (self.held if segment_entry(record) in self.segments else now).append(record)
        return self._deliver(now, together=False)

    def flush(self) -> list[Delivery]:
        """Send what send() held, one aggregate per entry and event at each endpoint; a Delivery
        per (endpoint, record) considered, the records of one aggregate sharing its Delivery."""
        records, self.held = self.held, []
        return self._deliver(records, together=True)

    def _deliver(self, records: list[dict[str, Any]], together: bool) -> list[Delivery]:
        targets_: list[Target] = [*self.webhooks, *([self.apprise] if self.apprise else [])]
        if not targets_ or not records:
            return []
        start = time.monotonic()
        try:
            return self._send(targets_, records, start + max(0.0, self.budget - self.spent), together)
        finally:
            self.spent += time.monotonic() - start

    def _send(self, targets_: list[Target], records: list[dict[str, Any]], deadline: float,
              together: bool) -> list[Delivery]:
        sent = self._load_sent()
        results: list[Delivery] = []
        jobs = []
        changes: list[tuple[str, str, dict[str, Any] | None]] = []
        for target in targets_:
            fresh, repeated = [], []
            for record in (r for r in records if event_names(r) & set(target.events)):
                why = cause(record)
                if why is not None and self._already_sent(sent, target, record, why):
                    results.append(Delivery(target.label, primary_name(record), "duplicate"))
                    repeated.append(record)
                else:
                    fresh.append(record)
            todo = aggregates(fresh, repeated, self.segments) if together else [Message.of(r) for r in fresh]
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
            delivered = list(out)
            done: dict[int, Delivery] = {}
            for i, message in enumerate(todo):
                result = delivered[i] if i < len(delivered) else _budget_used_up(target.label, message)
                for record in message.records:
                    done[id(record)] = result
                    results.append(result)
            changes += _changes(target, records, done, self.clock())
        self._save_sent(changes, deadline)
        return results

    def _work(self, target: Target, messages: list[Message], out: list[Delivery], deadline: float) -> None:
        if isinstance(target, AppriseTarget):
            for message in messages:
                out.append(self._apprise_one(target, message))
            return
        try:
            secret = target.secret()
        except ConfigError as exc:
            log.warning("%s: not notified: %s", target.label, exc)
            out.extend(Delivery(target.label, m.event, "failed", detail=str(exc)) for m in messages)
            return
        for message in messages:
            out.append(self._post_one(target, message, secret, deadline))

    def _post_one(self, hook: Webhook, message: Message, secret: bytes | None, deadline: float) -> Delivery:
        label, event, who = hook.label, message.event, subject(message.body)
        url, body, headers = webhooks.request_parts(hook, message.body, event, secret, _user_agent())
        detail, attempt = "", 0
        while attempt <= self.retries:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            attempt += 1
            code, detail = webhooks.post(url, body, headers, min(self.timeout, left))
            if code is not None and 200 <= code < 300:
                log.info("%s: %s event for %s delivered (HTTP %d)", label, event, who, code)
                return Delivery(label, event, "sent", attempt, f"HTTP {code}")
            if code is not None and code < 500 and code != 429:
                break  # the endpoint refuses this request: asking again will not change its mind
            pause = self.backoff * 2 ** (attempt - 1)
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
        if attempt == 0:  # the command's budget was spent before this one's turn: as if abandoned
            return _budget_used_up(label, message)
        log.warning("%s: %s event for %s not delivered after %d attempt(s): %s", label, event,
                    who, attempt, detail or "time budget used up")
        return Delivery(label, event, "failed", attempt, detail or "time budget used up")

    def _apprise_one(self, target: AppriseTarget, message: Message) -> Delivery:
        event = message.event
        try:
            import apprise
        except ImportError:
            detail = "notify.apprise is set but apprise is not installed (pip install 'retrainctl[notify]')"
            log.warning("apprise: not notified: %s", detail)
            return Delivery("apprise", event, "failed", detail=detail)
        sender = apprise.Apprise()
        for url in target.urls:
            sender.add(url)
        title, text = chat_message(message.body)
        detail = "not delivered to every URL"
        try:
            ok = bool(sender.notify(title=title, body=text))
        except Exception as exc:  # a plugin's own failure must not reach the retrain
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            log.warning("apprise: %s event for %s: %s", event, subject(message.body), detail)
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


def _budget_used_up(label: str, message: Message) -> Delivery:
    """The Delivery of an event the command's notification budget left no time for, logged."""
    log.warning("%s: %s event for %s not delivered: time budget used up", label, message.event,
                subject(message.body))
    return Delivery(label, message.event, "timed_out", detail="notification time budget used up")


def _user_agent() -> str:
    from ..base.version import __version__

    return f"retrainctl/{__version__}"
