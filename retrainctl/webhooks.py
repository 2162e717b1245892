"""Webhook and chat notifications: each chosen event POSTed as JSON to every configured endpoint
(signed with HMAC-SHA256 when it has a secret), and to apprise URLs when configured; all of one
command within one time budget. A failing or slow endpoint is logged and never raises."""
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Optional

from .config_keys import DEFAULT_EVENTS
from .errors import ConfigError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Retrainctl-Signature-256"
BUDGET_SECONDS = 10.0      # per command, every endpoint together
TIMEOUT_SECONDS = 5.0      # per request
RETRIES = 2                # after the first attempt
BACKOFF_SECONDS = 0.5      # before the first retry, doubled for each next one
SENT_FILE = "notified.json"
# An alert whose cause persists is repeated this often, so a failure that outlives its first
# alert (or a unit that fails the same way a week later) is not silenced for good.
REMIND_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_env: Optional[str] = None
    secret_file: Optional[str] = None
    events: tuple = DEFAULT_EVENTS

    @property
    def key(self):
        """Names the endpoint in notified.json without writing its URL (which may hold a token)."""
        return "webhook:" + hashlib.sha256(self.url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AppriseTarget:
    urls: tuple
    events: tuple = DEFAULT_EVENTS

    @property
    def key(self):
        return "apprise:" + hashlib.sha256("\n".join(self.urls).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Delivery:
    """What became of one event at one endpoint: sent, failed, duplicate or timed_out."""

    target: str
    event: str
    outcome: str
    attempts: int = 0
    detail: str = ""


# --- config --------------------------------------------------------------------------------------

def targets(notify):
    """The webhooks and the apprise target (or None) of a validated `notify` config section."""
    hooks = tuple(Webhook(h.url, h.secret_env, h.secret_file, tuple(h.events)) for h in notify.webhooks)
    return hooks, AppriseTarget(tuple(notify.apprise), tuple(notify.apprise_events)) if notify.apprise else None


def check_secrets(hooks):
    """Every configured secret can be had, or ConfigError naming the entry: checked before a
    command does anything, so a config that promises signatures fails at once, not mid-retrain."""
    for i, hook in enumerate(hooks):
        load_secret(hook, f"notify.webhooks[{i}]")


def load_secret(hook, where="notify.webhooks"):
    """The signing secret of `hook` as bytes (None without one); ConfigError when it is set but
    cannot be had, so a config that promises signatures never sends unsigned requests."""
    if hook.secret_env:
        value = os.environ.get(hook.secret_env)
        if not value:
            raise ConfigError(f"{where}: secret_env {hook.secret_env} is not set or empty")
        return value.encode()
    if hook.secret_file:
        try:
            with open(hook.secret_file, "rb") as fh:
                value = fh.read().strip()
        except OSError as exc:
            raise ConfigError(f"{hook.secret_file}: cannot read the secret_file of {where}: "
                              f"{exc.strerror or exc}") from None
        if not value:
            raise ConfigError(f"{hook.secret_file}: the secret_file of {where} is empty")
        return value
    return None


def signature(secret, body):
    """The header value for `body`: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# --- events --------------------------------------------------------------------------------------

def event_names(record):
    """Every name a record answers to: its status, `interrupted` for a dead attempt's failure,
    and the quality trigger (`drift`, `performance`) that fired it or that it alerts about."""
    status = record.get("status")
    names = {status}
    if status == "failure" and record.get("error_type") in ("interrupted", "unit_failed"):
        names.add(record["error_type"])
    if record.get("trigger_type") in ("drift", "performance"):
        names.add(record["trigger_type"])
    return names


def primary_name(record):
    """The one name an event is sent under (the `event` field and X-Retrainctl-Event header)."""
    names = event_names(record)
    return next((n for n in ("interrupted", "unit_failed") if n in names), record.get("status"))


def unit_failure_event(unit, environ, log_tail, now):
    """The event of `retrainctl notify-failure UNIT`, run by an OnFailure= unit: systemd (251 and
    later) passes what happened as MONITOR_* variables; `log_tail` is the failed run's last log
    lines. Shaped like a history record, so every notifier and filter treats it alike."""
    from .events import utcnow_iso

    result = environ.get("MONITOR_SERVICE_RESULT") or "unknown"
    code, status = environ.get("MONITOR_EXIT_CODE"), environ.get("MONITOR_EXIT_STATUS")
    what = f"{unit} failed: result {result}" + (f", {code} {status}" if code else "")
    return {"model_name": None, "unit": unit, "status": "failure", "trigger_type": "systemd",
            "trigger_time": utcnow_iso(now), "duration": 0.0, "data_hash": None, "description": what,
            "error": "\n".join(list(log_tail)[-20:]) or what, "error_type": "unit_failed",
            "error_signature": f"{result}|{code}|{status}", "invocation_id": environ.get("MONITOR_INVOCATION_ID")}


def cause(record):
    """What makes an alert the same alert again: a failure of the same kind on the same data, a
    rejection or skip of the same data, a drift alert on the same evidence. None for events that
    are news each time (a success, an operator's action)."""
    status = record.get("status")
    if status == "failure":
        return "|".join(map(str, ("failure", record.get("error_type"), record.get("error_signature") or "",
                                  record.get("data_hash"), record.get("unit") or "")))
    if status in ("rejected", "skipped"):
        return f"{status}|{record.get('error_type') or ''}|{record.get('data_hash')}"
    if status in ("drift", "performance"):
        keys = record.get("quality_keys") or {}
        return f"{status}|{keys.get(status) or record.get('data_hash')}"
    return None


def subject(record):
    """Who the once-per-cause memory is kept for: the model, or the failed unit."""
    return str(record.get("model_name") or record.get("unit") or "-")


def slot(record):
    """Where the once-per-cause memory keeps a record's cause: per subject, with drift and
    performance alerts apart, so an alert and a failure of one model do not take turns
    re-sending each other, and a retrain (which cannot fix input drift) does not end a drift alert."""
    status = record.get("status")
    return subject(record) + (f"|{status}" if status in ("drift", "performance") else "")


def payload(record):
    """The exact bytes POSTed: the record with its event name, as JSON."""
    return json.dumps({"event": primary_name(record), **record}, sort_keys=True, default=str).encode()


# --- sending -------------------------------------------------------------------------------------

class Notifier:
    """One command's notifications: its send() calls share one time budget, counted while they
    run (an hour of training between two events does not use it up)."""

    def __init__(self, webhooks=(), apprise=None, state_dir=None, budget=BUDGET_SECONDS,
                 timeout=TIMEOUT_SECONDS, retries=RETRIES, backoff=BACKOFF_SECONDS, clock=time.time):
        self.webhooks = tuple(webhooks)
        self.apprise = apprise
        self.state_dir = state_dir
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.budget, self.spent = budget, 0.0
        self.clock = clock

    def send(self, records):
        """Deliver `records` to every endpoint that wants them, in parallel threads joined by
        the deadline; returns a Delivery per (endpoint, record) considered."""
        targets = list(self.webhooks) + ([self.apprise] if self.apprise else [])
        if not targets or not records:
            return []
        start = time.monotonic()
        try:
            return self._send(targets, records, start + max(0.0, self.budget - self.spent))
        finally:
            self.spent += time.monotonic() - start

    def _send(self, targets, records, deadline):
        sent = self._load_sent()
        results, jobs, changes = [], [], []
        for target in targets:
            todo = [r for r in records if event_names(r) & set(target.events)]
            for record in list(todo):
                why = cause(record)
                if why is not None and self._already_sent(sent, target, record, why):
                    results.append(Delivery(_label(target), primary_name(record), "duplicate"))
                    todo.remove(record)
            out, worker = [], None
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
                    done[id(record)] = _budget_used_up(_label(target), record)
                results.append(done[id(record)])
            changes += _changes(target, records, done, self.clock())
        self._save_sent(changes, deadline)
        return results

    def _work(self, target, records, out, deadline):
        if isinstance(target, AppriseTarget):
            for record in records:
                out.append(self._apprise_one(target, record))
            return
        try:
            secret = load_secret(target)
        except ConfigError as exc:
            log.warning("%s: not notified: %s", _label(target), exc)
            out.extend(Delivery(_label(target), primary_name(r), "failed", detail=str(exc)) for r in records)
            return
        for record in records:
            out.append(self._post_one(target, record, secret, deadline))

    def _post_one(self, hook, record, secret, deadline):
        import uuid

        body = payload(record)
        headers = {"Content-Type": "application/json", "User-Agent": _user_agent(),
                   "X-Retrainctl-Event": primary_name(record), "X-Retrainctl-Delivery": uuid.uuid4().hex}
        if secret is not None:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        label, event = _label(hook), primary_name(record)
        detail, attempt = "", 0
        while attempt <= self.retries:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            attempt += 1
            code, detail = _post(hook.url, body, headers, min(self.timeout, left))
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

    def _apprise_one(self, target, record):
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
            ok = sender.notify(title=title, body=text)
        except Exception as exc:  # a plugin's own failure must not reach the retrain
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            log.warning("apprise: %s event for %s: %s", event, subject(record), detail)
        return Delivery("apprise", event, "sent" if ok else "failed", 1, "" if ok else detail)

    def _already_sent(self, sent, target, record, why):
        entry = (sent.get(target.key) or {}).get(slot(record))
        if not isinstance(entry, dict) or entry.get("cause") != why:
            return False
        at = entry.get("at")
        return isinstance(at, (int, float)) and self.clock() - at < REMIND_AFTER_SECONDS

    def _load_sent(self):
        if not self.state_dir:
            return {}
        from .fsutil import read_json

        data = read_json(os.path.join(self.state_dir, SENT_FILE), default={})
        return data if isinstance(data, dict) else {}

    def _save_sent(self, changes, deadline):
        """Applied to the file under its lock, as another command may have sent meanwhile. Best
        effort: losing it only means an alert is sent once more."""
        if not changes or not self.state_dir or not os.path.isdir(self.state_dir):
            return
        from .fsutil import atomic_write_json
        from .locks import LockTimeout, file_lock

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


def _changes(target, records, done, now):
    """(endpoint, slot, {cause, at} or None) in the records' order: a cause whose alert was
    delivered, or a success that ends the cause before it, whether this endpoint wanted it or
    not (an operator's pause does not). An alert that was not delivered changes nothing: its
    next occurrence is tried again."""
    out = []
    for record in records:
        why, result = cause(record), done.get(id(record))
        if record.get("status") == "success":
            out.append((target.key, slot(record), None))
        elif result is not None and result.outcome == "sent":
            out.append((target.key, slot(record), {"cause": why, "at": round(now, 3)}))
    return out


def chat_message(record):
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


def _post(url, body, headers, timeout):
    """POST once: (HTTP status or None, what went wrong). Redirects are not followed: a POST
    turned into a GET by a redirect would be reported as delivered."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return None, str(exc.reason)
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _budget_used_up(label, record):
    """The Delivery of an event the command's notification budget left no time for, logged."""
    log.warning("%s: %s event for %s not delivered: time budget used up", label, primary_name(record),
                subject(record))
    return Delivery(label, primary_name(record), "timed_out", detail="notification time budget used up")


def _label(target):
    """An endpoint as the log names it: scheme, host and port, never a path that may hold a token."""
    if isinstance(target, AppriseTarget):
        return "apprise"
    from urllib.parse import urlsplit

    parts = urlsplit(target.url)
    return f"webhook {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _user_agent():
    from . import __version__

    return f"retrainctl/{__version__}"
