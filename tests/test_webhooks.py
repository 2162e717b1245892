"""Webhooks against a real HTTP server on a loopback port: body, signature, retries, the time
bound, event filtering, once-per-cause, and the config errors of a secret that cannot be had."""
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from retrainctl.publish import notify, webhooks
from retrainctl.base.errors import ConfigError

FAILURE = {"model_name": "iris", "status": "failure", "trigger_type": "data_change",
           "trigger_time": "2026-12-02T10:00:00+00:00", "duration": 1.5, "data_hash": "abc",
           "description": "data file changed", "version": None, "score": None, "metric": "accuracy",
           "error": "fit failed: boom", "error_type": "fit_error"}
SUCCESS = dict(FAILURE, status="success", error=None, error_type=None, version=3, score=0.97, data_hash="def")


class Endpoint:
    """A local HTTP server answering with the scripted statuses in turn (the last one repeats);
    `delay` seconds of sleep before answering."""

    def __init__(self, *statuses, delay=0.0):
        self.statuses, self.delay, self.requests = list(statuses or [200]), delay, []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests.append((dict(self.headers), body, self.path))
                time.sleep(endpoint.delay)
                status = endpoint.statuses.pop(0) if len(endpoint.statuses) > 1 else endpoint.statuses[0]
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up on us

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints():
    made = []

    def make(*statuses, delay=0.0):
        made.append(Endpoint(*statuses, delay=delay))
        return made[-1]

    yield make
    for e in made:
        e.close()


def _hook(endpoint, events=webhooks.DEFAULT_EVENTS, **kwargs):
    return webhooks.Webhook(endpoint.url, events=tuple(events), **kwargs)


def test_body_is_the_event_and_the_signature_verifies(endpoints, tmp_path):
    server = endpoints()
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret\n")
    results = notify.Notifier([_hook(server, secret_file=str(secret))]).send([FAILURE])
    assert [(r.outcome, r.attempts, r.event) for r in results] == [("sent", 1, "failure")]
    [(headers, body, path)] = server.requests
    assert path == "/hook" and json.loads(body) == {"event": "failure", **FAILURE}
    assert body == webhooks.payload(FAILURE, "failure")
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Retrainctl-Signature-256"] == expected
    assert headers["Content-Type"] == "application/json" and headers["X-Retrainctl-Event"] == "failure"


def test_secret_from_the_environment(endpoints, monkeypatch):
    server = endpoints()
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    notify.Notifier([_hook(server, secret_env="HOOK_SECRET")]).send([FAILURE])
    headers, body, _ = server.requests[0]
    assert headers["X-Retrainctl-Signature-256"] == webhooks.signature(b"from-env", body)


def test_without_a_secret_there_is_no_signature(endpoints):
    server = endpoints()
    notify.Notifier([_hook(server)]).send([FAILURE])
    assert "X-Retrainctl-Signature-256" not in server.requests[0][0]


def test_a_500_is_retried(endpoints):
    server = endpoints(500, 200)
    results = notify.Notifier([_hook(server)], backoff=0.05).send([FAILURE])
    assert [(r.outcome, r.attempts) for r in results] == [("sent", 2)]
    assert len(server.requests) == 2 and server.requests[0][1] == server.requests[1][1]
    assert server.requests[0][0]["X-Retrainctl-Delivery"] == server.requests[1][0]["X-Retrainctl-Delivery"]


def test_retries_are_bounded_and_a_4xx_is_not_retried(endpoints, caplog):
    failing, refusing = endpoints(503), endpoints(400)
    results = notify.Notifier([_hook(failing), _hook(refusing)], backoff=0.05).send([FAILURE])
    assert [(r.outcome, r.attempts, r.detail) for r in results] == [
        ("failed", 1 + notify.RETRIES, "HTTP 503 Service Unavailable"), ("failed", 1, "HTTP 400 Bad Request")]
    assert len(failing.requests) == 3 and len(refusing.requests) == 1
    port = failing.url.split(":")[2].split("/")[0]
    assert (f"webhook http://127.0.0.1:{port}: failure event for iris not delivered after 3 attempt(s): "
            "HTTP 503 Service Unavailable") in caplog.text
    assert "/hook" not in caplog.text  # a path may hold a token: never logged


def test_a_slow_endpoint_is_abandoned_within_the_budget(endpoints):
    slow, fast = endpoints(200, delay=5), endpoints(200)
    start = time.monotonic()
    results = notify.Notifier([_hook(slow), _hook(fast)], budget=1.5, timeout=1.0, backoff=0.1).send(
        [FAILURE, SUCCESS])
    elapsed = time.monotonic() - start
    assert elapsed < 2.1, elapsed  # the slow endpoint alone would take 5 s, and retries
    outcomes = [(r.target.split(":")[2].split("/")[0], r.event, r.outcome) for r in results]
    slow_port, fast_port = (e.url.split(":")[2].split("/")[0] for e in (slow, fast))
    assert outcomes[2:] == [(fast_port, "failure", "sent"), (fast_port, "success", "sent")]
    assert [o[2] for o in outcomes[:2]] in (["failed", "timed_out"], ["timed_out", "timed_out"]), outcomes


def test_the_budget_is_shared_by_every_send_of_a_command_but_not_spent_between_them(endpoints):
    slow, fast = endpoints(200, delay=5), endpoints(200)
    notifier = notify.Notifier([_hook(slow, events=["failure"]), _hook(fast, events=["success"])],
                                 budget=2.0, timeout=2.0)
    time.sleep(2.1)  # a training between two events
    assert [r.outcome for r in notifier.send([SUCCESS])] == ["sent"]
    assert [r.outcome for r in notifier.send([FAILURE])] in (["failed"], ["timed_out"])
    start = time.monotonic()
    assert [r.outcome for r in notifier.send([SUCCESS])] == ["timed_out"]
    assert time.monotonic() - start < 0.5 and len(fast.requests) == 1


def test_an_unreachable_endpoint_is_logged_not_raised(caplog):
    hook = webhooks.Webhook("http://127.0.0.1:9/hook")  # discard port: refused
    results = notify.Notifier([hook], backoff=0.05).send([FAILURE])
    assert results[0].outcome == "failed" and "Connection refused" in results[0].detail
    assert "not delivered after 3 attempt(s)" in caplog.text


def test_events_are_filtered_by_name(endpoints):
    failures, default = endpoints(), endpoints()
    interrupted = dict(FAILURE, error_type="interrupted", error="interrupted: the training process died")
    paused = dict(FAILURE, status="paused", trigger_type="operator", error=None, error_type=None)
    drifted = dict(SUCCESS, trigger_type="drift")
    hooks = [_hook(failures, events=["failure", "drift"]), _hook(default)]
    notify.Notifier(hooks).send([FAILURE, SUCCESS, interrupted, paused, drifted])
    got = lambda e: [json.loads(body)["event"] for _, body, _ in e.requests]  # noqa: E731
    assert got(failures) == ["failure", "interrupted", "success"]
    assert got(default) == ["failure", "success", "interrupted", "success"]


def test_a_repeated_alert_is_sent_once_per_cause(endpoints, tmp_path):
    server = endpoints()
    hooks = [_hook(server)]
    first = notify.Notifier(hooks, state_dir=str(tmp_path)).send([FAILURE])
    again = notify.Notifier(hooks, state_dir=str(tmp_path)).send([dict(FAILURE, trigger_time="later")])
    assert [r.outcome for r in first + again] == ["sent", "duplicate"]
    other = notify.Notifier(hooks, state_dir=str(tmp_path)).send([dict(FAILURE, data_hash="new")])
    assert [r.outcome for r in other] == ["sent"]
    # news (a success) ends the cause: the same failure afterwards is a new alert
    notify.Notifier(hooks, state_dir=str(tmp_path)).send([SUCCESS, FAILURE])
    assert [json.loads(b)["data_hash"] for _, b, _ in server.requests] == ["abc", "new", "def", "abc"]
    saved = json.loads((tmp_path / notify.SENT_FILE).read_text())
    assert saved == {hooks[0].key: {"iris": {"cause": notify.cause(FAILURE), "at": saved[hooks[0].key]["iris"]["at"]}}}
    assert server.url not in (tmp_path / notify.SENT_FILE).read_text()
    # a cause that persists is repeated as a reminder once REMIND_AFTER_SECONDS have passed
    later = time.time() + notify.REMIND_AFTER_SECONDS + 1
    assert notify.Notifier(hooks, state_dir=str(tmp_path)).send([FAILURE])[0].outcome == "duplicate"
    assert notify.Notifier(hooks, state_dir=str(tmp_path), clock=lambda: later).send([FAILURE])[0].outcome == "sent"


def test_an_undelivered_alert_is_tried_again_next_time(endpoints, tmp_path):
    server = endpoints(400, 200)
    hooks = [_hook(server)]
    assert notify.Notifier(hooks, state_dir=str(tmp_path)).send([FAILURE])[0].outcome == "failed"
    assert notify.Notifier(hooks, state_dir=str(tmp_path)).send([FAILURE])[0].outcome == "sent"


def test_a_missing_or_empty_secret_is_a_config_error(endpoints, tmp_path, monkeypatch, caplog):
    server = endpoints()
    missing = tmp_path / "nope.secret"
    hook = _hook(server, secret_file=str(missing))
    with pytest.raises(ConfigError) as err:
        hook.secret()
    assert str(err.value) == f"{missing}: cannot read the secret_file of notify.webhooks: No such file or directory"
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=r"empty\.secret: the secret_file of notify.webhooks is empty$"):
        _hook(server, secret_file=str(empty)).secret()
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    with pytest.raises(ConfigError,
                       match=r"^notify.webhooks: secret_env NO_SUCH_SECRET is not set or empty$"):
        _hook(server, secret_env="NO_SUCH_SECRET").secret()
    # at send time it is logged, never raised, and nothing unsigned is sent
    results = notify.Notifier([hook]).send([FAILURE])
    assert [r.outcome for r in results] == ["failed"] and server.requests == []
    assert "cannot read the secret_file" in caplog.text


def test_apprise_posts_to_a_json_url(endpoints):
    server = endpoints()
    target = notify.AppriseTarget((server.url.replace("http://", "json://"),))
    results = notify.Notifier(apprise=target).send([FAILURE, dict(FAILURE, status="paused")])
    assert [(r.target, r.event, r.outcome) for r in results] == [("apprise", "failure", "sent")]
    [(_, body, _)] = server.requests
    message = json.loads(body)
    assert message["title"] == "retrainctl: iris failure"
    assert "error (fit_error): fit failed: boom" in message["message"]


def test_a_failed_systemd_unit_is_a_unit_failed_event(endpoints, tmp_path):
    environ = {"MONITOR_SERVICE_RESULT": "exit-code", "MONITOR_EXIT_CODE": "exited", "MONITOR_EXIT_STATUS": "1",
               "MONITOR_INVOCATION_ID": "0123abcd"}
    tail = ["check: starting", "Error: /etc/retrainctl/retrainctl.yaml: models.iris: unknown key 'targt'"]
    event = notify.unit_failure_event("retrainctl-check.service", environ, tail, 1_800_000_000)
    assert event["description"] == "retrainctl-check.service failed: result exit-code, exited 1"
    assert event["error"] == "\n".join(tail) and event["trigger_time"] == "2027-01-15T08:00:00+00:00"
    failures, units, successes = endpoints(), endpoints(), endpoints()
    hooks = [_hook(failures, events=["failure"]), _hook(units, events=["unit_failed"]),
             _hook(successes, events=["success"])]
    notify.Notifier(hooks, state_dir=str(tmp_path)).send([event])
    again = notify.Notifier(hooks, state_dir=str(tmp_path)).send([dict(event, invocation_id="other")])
    assert [json.loads(b)["event"] for _, b, _ in failures.requests + units.requests] == ["unit_failed"] * 2
    assert successes.requests == [] and [r.outcome for r in again] == ["duplicate", "duplicate"]
    title, body = notify.chat_message(event)
    assert title == "retrainctl: retrainctl-check.service unit_failed" and "unknown key 'targt'" in body


def test_an_apprise_url_that_fails_is_logged(endpoints, caplog):
    server = endpoints(500)
    target = notify.AppriseTarget((server.url.replace("http://", "json://"),), ("failure",))
    results = notify.Notifier(apprise=target).send([FAILURE])
    assert [(r.outcome, r.detail) for r in results] == [("failed", "not delivered to every URL")]
    assert "apprise: failure event for iris: not delivered to every URL" in caplog.text


# --- the segments of an entry: one message per entry and event -----------------------------------

def _segment(store, status="failure", **changes):
    base = FAILURE if status == "failure" else SUCCESS
    return dict(base, model_name=f"sales:{store}", data_hash=f"h-{store}", **changes)


def test_the_segments_of_an_entry_are_one_message_per_event(endpoints, tmp_path):
    server = endpoints()
    stores = [f"s{i:03d}" for i in range(40)]
    failing = stores[3::3][:12]  # s003, s006, ..., s036
    records = [_segment(s, "failure" if s in failing else "success") for s in stores]
    notifier = notify.Notifier([_hook(server, events=["failure"])], state_dir=str(tmp_path), segments={"sales": 40})
    assert notifier.send(records[:20]) == [] and notifier.send(records[20:]) == [] and server.requests == []
    results = notifier.flush()
    assert [(r.event, r.outcome) for r in results] == [("failure", "sent")] * 12
    [(headers, body, _)] = server.requests
    event = json.loads(body)
    assert headers["X-Retrainctl-Event"] == "failure" and "X-Retrainctl-Signature-256" not in headers
    assert {k: v for k, v in event.items() if k != "records"} == {
        "event": "failure", "aggregate": True, "entry": "sales", "status": "failure", "segments": 40, "count": 12,
        "models": [f"sales:{s}" for s in failing[:10]], "more": 2, "already_notified": 0,
        "error_types": {"fit_error": 12}, "trigger_time": "2026-12-02T10:00:00+00:00",
        "description": "12 of 40 segments of sales failed: " + ", ".join(f"sales:{s}" for s in failing[:10])
                       + " and 2 more"}
    assert event["records"] == [_segment(s) for s in failing[:10]]
    # once per cause, per segment: the same failures again are not news; one more failing segment is
    again = notify.Notifier([_hook(server, events=["failure"])], state_dir=str(tmp_path), segments={"sales": 40})
    again.send([_segment(s) for s in failing])
    assert {r.outcome for r in again.flush()} == {"duplicate"} and len(server.requests) == 1
    more = notify.Notifier([_hook(server, events=["failure"])], state_dir=str(tmp_path), segments={"sales": 40})
    more.send([_segment(s) for s in failing] + [_segment("s001")])
    assert [r.outcome for r in more.flush()] == ["duplicate"] * 12 + ["sent"]
    news = json.loads(server.requests[1][1])
    assert (news["count"], news["models"], news["more"], news["already_notified"]) == (1, ["sales:s001"], 0, 12)
    assert news["description"] == "1 of 40 segments of sales failed: sales:s001; 12 more as before, already notified"
    saved = json.loads((tmp_path / notify.SENT_FILE).read_text())[_hook(server).key]
    assert sorted(saved) == sorted(f"sales:{s}" for s in [*failing, "s001"])  # the memory is per segment


def test_aggregates_follow_each_endpoints_events_and_apprise_gets_the_same(endpoints):
    hook, chat = endpoints(), endpoints()
    records = [_segment("s000", "success"), _segment("s001"), _segment("s002", "success"),
               _segment("s003", error_type="interrupted", error="interrupted: the training process died"),
               dict(FAILURE), _segment("s004", "success", trigger_type="drift")]
    target = notify.AppriseTarget((chat.url.replace("http://", "json://"),), ("failure", "interrupted"))
    notifier = notify.Notifier([_hook(hook)], apprise=target, segments={"sales": 5})
    assert [(r.event, r.outcome) for r in notifier.send(records)] == [("failure", "sent")] * 2  # iris at once
    notifier.flush()
    bodies = [json.loads(b) for _, b, _ in hook.requests]
    assert [(b["event"], b["models"] if b.get("aggregate") else b["model_name"]) for b in bodies] == [
        ("failure", "iris"), ("success", ["sales:s000", "sales:s002", "sales:s004"]), ("failure", ["sales:s001"]),
        ("interrupted", ["sales:s003"])]
    assert bodies[1]["description"] == "3 of 5 segments of sales retrained: sales:s000, sales:s002, sales:s004"
    messages = [json.loads(b) for _, b, _ in chat.requests]
    assert [m["title"] for m in messages] == [
        "retrainctl: iris failure", "retrainctl: 1 of 5 segments of sales failed",
        "retrainctl: 1 of 5 segments of sales were interrupted"]
    assert messages[1]["message"] == "sales:s001: fit_error: fit failed: boom"
