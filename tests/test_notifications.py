"""The report and notifications through the installed command: `report` in both formats, a
failed check and a drift alert POSTed to a real loopback server (these two checks in-process: they
train or validate, which costs a subprocess the scikit-learn imports), the failures of a fleet of
segments as one message per entry, `notify-failure` as systemd's OnFailure= hook runs it."""
import base64
import json

import numpy as np
import pandas as pd
from standardwebhooks import Webhook

from conftest import IRIS, Project, base_config
from test_quality import write_inputs
from test_webhooks import Endpoint

from retrainctl.publish import webhooks

SECRET = "s3cret"


def _endpoint(request, *statuses):
    endpoint = Endpoint(*statuses)
    request.addfinalizer(endpoint.close)
    return endpoint


def _hooks(project, *entries):
    project.config["notify"] = {"webhooks": list(entries)}
    project.write_config()


def _bodies(endpoint):
    return [json.loads(body) for _, body, _ in endpoint.requests]


# --- report --------------------------------------------------------------------------------------

def test_report_before_and_after_training(trained, tmp_path):
    # before: the demo project as it is made, never checked; after: the same project after its
    # first `check` (the shared `trained` copy), instead of training it here
    fresh = Project(tmp_path / "fresh")
    never = fresh.run("report", "iris", "--format", "md")
    assert never.returncode == 0, never.stderr
    assert "never trained" in never.stdout and "housing" not in never.stdout

    project = trained
    assert (project.current_version("iris"), project.current_version("housing")) == (1, 1)
    html = project.run("report")
    assert html.returncode == 0, html.stderr
    assert html.stdout.startswith("<!DOCTYPE html>") and "iris" in html.stdout and "housing" in html.stdout
    assert "<script src=" not in html.stdout and "http://" not in html.stdout.replace("http://www.w3.org", "")
    md = project.run("report", "housing", "--format", "md")
    assert md.returncode == 0 and not md.stdout.startswith("<") and "housing" in md.stdout
    assert "never trained" not in md.stdout and "iris" not in md.stdout

    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    written = project.run("report", "iris", "--output", str(page))
    assert (written.returncode, written.stdout) == (0, "")
    assert page.read_text().startswith("<!DOCTYPE html>") and oct(page.stat().st_mode & 0o777) == "0o644"


def test_report_of_an_unknown_model_exits_2(project):
    out = project.run("report", "irs")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"Error: model 'irs' is not configured in {project.config_path}; did you mean 'iris'?\n"


# --- webhooks ------------------------------------------------------------------------------------

def test_a_failed_check_posts_a_signed_failure_once(project, request):
    server = _endpoint(request)
    _hooks(project, {"url": server.url, "secret_env": "HOOK_SECRET"})
    project.data("iris").unlink()
    env = {"HOOK_SECRET": SECRET}
    out = project.cli("check", "iris", env=env)
    assert out.exit_code == 1, out.stderr
    [(headers, body, path)] = server.requests
    event = json.loads(body)
    assert path == "/hook" and headers["X-Retrainctl-Event"] == "failure"
    assert headers["X-Retrainctl-Signature-256"] == webhooks.signature(SECRET.encode(), body)
    assert {k: event[k] for k in ("event", "model_name", "status", "error_type", "description")} == {
        "event": "failure", "model_name": "iris", "status": "failure", "error_type": "data_error",
        "description": "data file could not be read"}
    assert event == {"event": "failure", **project.history("iris")[-1]}
    # the same failure again is not news
    assert project.cli("check", "iris", env=env).exit_code == 1
    assert len(server.requests) == 1


def test_a_secret_that_cannot_be_had_is_a_config_error(project, request):
    server = _endpoint(request)
    _hooks(project, {"url": server.url}, {"url": server.url, "secret_env": "NO_SUCH_SECRET"})
    out = project.run("check")
    assert out.returncode == 2
    assert out.stderr == "Error: notify.webhooks[1]: secret_env NO_SUCH_SECRET is not set or empty\n"
    assert project.history() == [] and server.requests == []


def test_drift_that_only_alerts_is_sent_once_per_evidence(project, request):
    drift, everything = _endpoint(request), _endpoint(request)
    _hooks(project, {"url": drift.url, "events": ["drift"]}, {"url": everything.url})
    assert project.cli("check", "iris").exit_code == 0
    assert [e["event"] for e in _bodies(everything)] == ["success"] and drift.requests == []

    write_inputs(project, shift=3.0)
    project.set_model("iris", drift_path="data/recent.csv")
    for _ in range(2):
        out = project.cli("check", "iris")
        assert out.exit_code == 0, out.stderr
    [alert] = _bodies(drift)
    assert (alert["event"], alert["status"], alert["model_name"], alert["version"]) == ("drift", "drift", "iris", 1)
    assert alert["description"].startswith("input drift in data/recent.csv: PSI PetalLengthCm:range ")
    assert set(alert["quality_evidence"]["drift"]["drifted_features"]) == {"PetalLengthCm:range", "PetalLengthCm"}
    assert [e["event"] for e in _bodies(everything)] == ["success"]  # drift is not a default event
    assert [e["status"] for e in project.history("iris")] == ["success"]  # and not a history record

    write_inputs(project, shift=4.0)  # new evidence
    assert project.cli("check", "iris").exit_code == 0
    assert len(drift.requests) == 2 and _bodies(drift)[1]["quality_keys"] != alert["quality_keys"]


def test_operator_events_reach_the_endpoints_that_ask_for_them(project, request):
    server = _endpoint(request)
    _hooks(project, {"url": server.url, "events": ["paused", "resumed"]})
    assert project.run("pause", "iris").returncode == 0
    assert project.run("resume", "iris").returncode == 0
    assert [(e["event"], e["model_name"], e["trigger_type"]) for e in _bodies(server)] == [
        ("paused", "iris", "operator"), ("resumed", "iris", "operator")]


# --- a fleet of segments -------------------------------------------------------------------------

WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
STORES = [f"s{i:03d}" for i in range(40)]
FAILING = STORES[2::3][:12]  # their labels have not arrived: too few usable rows to train on
FLEET = {"data_path": "data/sales/", "segment_by": ["store"], "min_segment_rows": 30, "min_data_size": 30,
         "retry_backoff_seconds": 0, "target": "units", "task": "regression", "features": ["price", "temp"],
         "estimator": "sklearn.linear_model.Ridge"}


def write_fleet(root, unlabelled):
    """Two monthly partitions of orders from 40 stores of skewed sizes (34 to 180 rows a month),
    some prices missing, some orders cancelled (no label), and no label at all for `unlabelled`."""
    rng = np.random.default_rng(26)
    for month in (1, 2):
        store = np.repeat(STORES, [30 + 150 // (i + 1) for i in range(len(STORES))])
        n = len(store)
        ts = pd.Timestamp(f"2025-0{month}-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 28 * 86400, n)), "s")
        price, temp = rng.normal(20, 4, n).round(2), rng.normal(12, 3, n).round(1)
        units = (60 - 1.2 * price + 0.8 * temp + rng.normal(0, 5, n)).round(1)
        frame = pd.DataFrame({"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "store": store, "price": price, "temp": temp,
                              "units": units}).sort_values("ts")
        frame.loc[rng.random(n) < 0.05, "price"] = np.nan
        frame.loc[(rng.random(n) < 0.05) | frame["store"].isin(unlabelled), "units"] = np.nan
        folder = root / "data" / "sales" / f"month=2025-0{month}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / "part-0.csv", index=False)


def test_the_failures_of_a_fleet_are_one_message_per_entry(tmp_path, request):
    server = _endpoint(request)
    project = Project(tmp_path / "proj")
    write_fleet(project.root, FAILING)
    project.config = base_config(sales=dict(FLEET))
    project.config["notify"] = {"webhooks": [{"url": server.url, "secret_env": "HOOK_SECRET", "events": ["failure"]},
                                             {"url": server.url + "/ops", "events": ["paused"]}],
                                "apprise": [server.url.replace("http://", "json://") + "/chat"],
                                "apprise_events": ["failure"]}
    project.write_config()
    env = {"HOOK_SECRET": WHSEC}

    def sent(first):
        hooks = [(h, b) for h, b, p in server.requests[first:] if p == "/hook"]
        chats = [json.loads(b) for _, b, p in server.requests[first:] if p == "/hook/chat"]
        return hooks, chats

    out = project.cli("check", env=env)
    assert out.exit_code == 1, out.output
    [(headers, body)], [chat] = sent(0)
    Webhook(WHSEC).verify(body, {k.lower(): v for k, v in headers.items()})  # raises unless signed right
    assert headers["X-Retrainctl-Signature-256"] == webhooks.signature(WHSEC.encode(), body)
    event = json.loads(body)
    named = [f"sales:{s}" for s in FAILING[:10]]
    assert {k: event[k] for k in ("event", "entry", "segments", "count", "models", "more", "already_notified",
                                  "error_types")} == {
        "event": "failure", "entry": "sales", "segments": 40, "count": 12, "models": named, "more": 2,
        "already_notified": 0, "error_types": {"data_error": 12}}
    assert event["description"] == f"12 of 40 segments of sales failed: {', '.join(named)} and 2 more"
    assert event["records"] == [project.history(name)[-1] for name in named]
    assert chat["title"] == "retrainctl: 12 of 40 segments of sales failed"
    assert chat["message"].splitlines()[-1] == "and 2 more" and len(chat["message"].splitlines()) == 11
    assert {e["model_name"] for e in project.history() if e["status"] == "success"} == {
        f"sales:{s}" for s in STORES if s not in FAILING}

    # the same failures again (each retried: no backoff) are not news
    assert project.cli("check", env=env).exit_code == 1
    assert [e["status"] for e in project.history(named[0])] == ["failure", "failure"]
    assert len(server.requests) == 2

    # one more store's labels go missing: one message about it alone
    write_fleet(project.root, [*FAILING, "s001"])
    assert project.cli("check", env=env).exit_code == 1
    [(_, body)], [chat] = sent(2)
    news = json.loads(body)
    assert (news["count"], news["models"], news["more"], news["already_notified"]) == (1, ["sales:s001"], 0, 12)
    assert chat["title"] == "retrainctl: 1 of 40 segments of sales failed"
    assert chat["message"] == ("sales:s001: data_error: " + project.history("sales:s001")[-1]["error"]
                               + "\n12 more as before (already notified)")

    # an operator's action: on one segment alone, its own event; on the entry, one message
    assert project.cli("pause", "sales:s000", env=env).exit_code == 0
    assert project.cli("pause", "sales", env=env).exit_code == 0
    [(_, one, path), (_, rest, _)] = server.requests[4:]
    assert (path, json.loads(one)) == ("/hook/ops", {"event": "paused", **project.history("sales:s000")[-1]})
    paused = json.loads(rest)
    assert (paused["event"], paused["segments"], paused["count"], paused["more"]) == ("paused", 40, 39, 29)
    assert paused["description"].startswith("39 of 40 segments of sales were paused: sales:s001, sales:s002, ")


# --- notify-failure ------------------------------------------------------------------------------

MONITOR = {"MONITOR_SERVICE_RESULT": "exit-code", "MONITOR_EXIT_CODE": "exited", "MONITOR_EXIT_STATUS": "2",
           "MONITOR_INVOCATION_ID": "0123456789abcdef0123456789abcdef", "MONITOR_UNIT": "retrainctl-check.service"}


def test_notify_failure_posts_a_unit_failed_event(project, request):
    server, down = _endpoint(request), _endpoint(request, 500)
    _hooks(project, {"url": server.url, "secret_env": "HOOK_SECRET"}, {"url": down.url})
    out = project.run("notify-failure", "retrainctl-check.service", env=dict(MONITOR, HOOK_SECRET=SECRET))
    assert (out.returncode, out.stdout) == (0, ""), out.stderr  # a failed delivery is logged, not an error
    [(headers, body, _)] = server.requests
    event = json.loads(body)
    assert headers["X-Retrainctl-Signature-256"] == webhooks.signature(SECRET.encode(), body)
    assert {k: event[k] for k in ("event", "status", "unit", "error_type", "invocation_id", "description")} == {
        "event": "unit_failed", "status": "failure", "unit": "retrainctl-check.service", "error_type": "unit_failed",
        "invocation_id": MONITOR["MONITOR_INVOCATION_ID"],
        "description": "retrainctl-check.service failed: result exit-code, exited 2"}
    assert len(down.requests) == 3 and "not delivered after 3 attempt(s): HTTP 500" in out.stderr
    assert project.history() == []


def test_notify_failure_runs_the_notify_command(project, tmp_path):
    got = tmp_path / "event.json"
    project.config["notify"] = {"command": ["sh", "-c", f"cat > {got}"]}
    project.write_config()
    out = project.run("notify-failure", "retrainctl-check.service", env=MONITOR)
    assert out.returncode == 0, out.stderr
    assert json.loads(got.read_text())["error_type"] == "unit_failed"


def test_the_command_and_the_callback_get_one_aggregate_per_entry_and_event(tmp_path):
    """notify.command and the Python API's notification_callback are told of an entry's
    segments as the webhooks are: one aggregate per entry and event per command; a declared
    model's record, or a segment alone in its command, as it is."""
    from retrainctl.commands.check import check
    from retrainctl.commands.train import train
    from retrainctl.config.load import load_config

    project = Project(tmp_path / "proj")
    write_fleet(project.root, FAILING)
    got = tmp_path / "events.jsonl"
    project.config = base_config(sales=dict(FLEET), iris=dict(IRIS))
    project.config["notify"] = {"command": ["sh", "-c", f"cat >> {got}; echo >> {got}"]}
    project.write_config()
    calls = []
    config = load_config(str(project.config_path))
    report = check(config, callback=lambda name, status, duration, **rest: calls.append((name, status, duration, rest)))
    assert report.exit_code == 1
    told = [json.loads(line) for line in got.read_text().splitlines() if line.strip()]
    assert sorted((t.get("entry") or t["model_name"], t["status"], t.get("count")) for t in told) == [
        ("iris", "success", None), ("sales", "failure", 12), ("sales", "success", 28)]
    [failed] = [t for t in told if t["status"] == "failure"]
    named = [f"sales:{s}" for s in FAILING[:10]]
    assert (failed["event"], failed["segments"], failed["models"], failed["more"], failed["error_types"]) == (
        "failure", 40, named, 2, {"data_error": 12})
    assert failed["description"] == f"12 of 40 segments of sales failed: {', '.join(named)} and 2 more"
    assert failed["records"] == [project.history(name)[-1] for name in named]
    assert sorted((c[0], c[1]) for c in calls) == [("iris", "success"), ("sales", "failure"), ("sales", "success")]
    [(name, status, duration, rest)] = [c for c in calls if c[1] == "failure"]
    assert duration is None and rest == {k: v for k, v in failed.items() if k != "status"}
    got.unlink()
    calls.clear()
    train(config, "sales:s000", callback=lambda *a, **k: calls.append(a))  # a segment alone: its own record
    [one] = [json.loads(line) for line in got.read_text().splitlines() if line.strip()]
    assert one == project.history("sales:s000")[-1] and calls == [("sales:s000", one["status"], one["duration"])]
