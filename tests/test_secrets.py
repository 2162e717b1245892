"""No secret leaves the config: credentials in webhook, apprise and Pushgateway URLs (sent as basic
auth), a token in a path or a query, a signing secret from the environment and one from a file are
planted, every command runs against a real receiver and a real Pushgateway, and then every output
and every file the project holds is searched for them."""
import base64
import hashlib
import hmac
import json

import pytest

from test_metrics import Gateway, _bcrypt, free_port, value
from test_webhooks import Endpoint

HOOK_PASSWORD = "HookPassQ7x2"
HOOK_QUERY = "HookQueryT9k4"
HOOK_PATH = "HookPathZ3m8"
SIGNING = "SigningSecretW5r1"
FILE_SECRET = "FileSecretJ6p0"
APP_PASSWORD = "AppPassV4n7"
APP_PATH = "AppPathB2c5"
PUSH_PASSWORD = "PushPassK8d3"
PUSH_PATH = "PushPathH1f6"
MLFLOW_PASSWORD = "MlflowPassU0g9"
MLFLOW_QUERY = "MlflowQueryE7s2"
PARAM_SECRET = "ParamTokenY3w5"
PLANTED = [HOOK_PASSWORD, HOOK_QUERY, HOOK_PATH, SIGNING, FILE_SECRET, APP_PASSWORD, APP_PATH, PUSH_PASSWORD,
           PUSH_PATH, MLFLOW_PASSWORD, MLFLOW_QUERY, PARAM_SECRET]


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# What would betray a secret besides the secret itself: the basic-auth header values.
BETRAYALS = [basic("hookuser", HOOK_PASSWORD).split()[1], basic("appuser", APP_PASSWORD).split()[1],
             basic("pushuser", PUSH_PASSWORD).split()[1]]


def leaks(text):
    """The planted secrets (and their header forms) found in `text`, in any case."""
    low = text.lower()
    return [s for s in PLANTED + BETRAYALS if s.lower() in low]


@pytest.fixture
def receiver():
    endpoint = Endpoint(200)
    yield endpoint
    endpoint.close()


@pytest.fixture
def pushgateway(tmp_path):
    """The real Pushgateway (tests/test_metrics.py), behind basic auth and below a path token."""
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  pushuser: '{_bcrypt(PUSH_PASSWORD)}'\n")
    gw = Gateway(tmp_path, web_config=web, auth=("pushuser", PUSH_PASSWORD), route_prefix=f"/pg/{PUSH_PATH}").start()
    yield gw
    gw.stop()


def test_no_output_and_no_file_shows_a_planted_secret(trained, receiver, pushgateway):
    project = trained
    del project.config["models"]["housing"]
    port = receiver.server.server_address[1]
    (project.root / "etc" / "hook.secret").write_text(FILE_SECRET + "\n")
    project.config.update({
        "log_file": "var/state/retrainctl.log",
        "textfile_path": "var/state/retrainctl.prom",
        # nothing listens there: every MLflow error repeats the URI, which must not reach a log or a record
        "mlflow": {"timeout_seconds": 5,
                   "tracking_uri": f"http://mluser:{MLFLOW_PASSWORD}@127.0.0.1:{free_port()}/ml?token={MLFLOW_QUERY}"},
        "pushgateway": {"url": f"http://pushuser:{PUSH_PASSWORD}@127.0.0.1:{pushgateway.port}/pg/{PUSH_PATH}",
                        "instance": "host-a"},
        "notify": {
            "webhooks": [
                {"url": f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:{port}/hook/{HOOK_PATH}?token={HOOK_QUERY}",
                 "secret_env": "HOOK_SECRET",
                 "events": ["success", "failure", "rejected", "skipped", "interrupted", "paused", "resumed"]},
                {"url": f"http://127.0.0.1:{port}/hook-b", "secret_file": "etc/hook.secret"},
            ],
            "apprise": [f"json://appuser:{APP_PASSWORD}@127.0.0.1:{port}/apprise/{APP_PATH}"],
        },
    })
    project.config["models"]["iris"]["params"] = {"random_state": 0}
    project.write_config()
    env = {"HOOK_SECRET": SIGNING, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    outputs = []

    def run(*args, code=0):
        result = project.run(*args, env=env)
        outputs.append((args, result.stdout + result.stderr))
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return result

    project.append_rows("iris", 20)
    run("-v", "check")                                                     # trained and promoted: v2
    project.set_model("iris", estimator="sklearn.dummy.DummyClassifier", params={"strategy": "prior"})
    run("check")                                                           # a worse candidate: rejected
    data = project.data("iris")
    data.rename(data.with_suffix(".away"))
    run("-v", "check", code=1)                                             # no data: a failure
    data.with_suffix(".away").rename(data)
    run("-v", "pause", "iris")
    run("resume", "iris")
    run("status")
    run("-v", "status", "--json")
    run("history")
    run("-v", "history", "--json")
    shown = run("config")
    run("-v", "config", "--model", "iris")
    (project.root / "var" / "report").mkdir()
    run("-v", "report", "--output", str(project.root / "var" / "report" / "report.html"))
    run("report", "--format", "md", "--output", str(project.root / "var" / "report" / "report.md"))
    run("-v", "report", "--format", "md")
    run("metrics")
    run("-v", "metrics", "--push")
    run("metrics", "--textfile", str(project.root / "var" / "state" / "by-hand.prom"))
    pushed = pushgateway.samples()
    pushgateway.stop()
    failed = run("-v", "metrics", "--push", code=1)                        # a failed push names the gateway
    assert f"push to http://127.0.0.1:{pushgateway.port}/*** failed: Connection refused" in failed.stderr

    assert [e["status"] for e in project.history("iris")][-6:] == [
        "success", "success", "rejected", "failure", "paused", "resumed"]
    for args, text in outputs:
        assert leaks(text) == [], (args, text)
    # `config` does say where things go, without the secrets
    assert f"url: http://127.0.0.1:{pushgateway.port}/***\n" in shown.stdout
    assert f"- url: http://127.0.0.1:{port}/***?***\n" in shown.stdout
    assert "tracking_uri: http://127.0.0.1:" in shown.stdout and "/***?***\n" in shown.stdout
    assert "- json://***\n" in shown.stdout and "secret_env: HOOK_SECRET\n" in shown.stdout

    config_files = {project.config_path, project.root / "etc" / "hook.secret"}
    searched = [p for p in project.root.rglob("*") if p.is_file() and p not in config_files]
    names = {p.relative_to(project.root).as_posix() for p in searched}
    assert {"var/state/events.jsonl", "var/state/retrainctl.log", "var/state/retrainctl.prom",
            "var/state/by-hand.prom", "var/state/notified.json", "var/report/report.html",
            "var/report/report.md", "var/models/iris/v2/metadata.json"} <= names, sorted(names)
    for path in searched:
        assert leaks(path.read_bytes().decode("latin-1")) == [], path

    # ...and the credentials did reach the endpoints, as basic auth, with the path and query
    hook_a = [(h, b) for h, b, p in receiver.requests if p == f"/hook/{HOOK_PATH}?token={HOOK_QUERY}"]
    hook_b = [(h, b) for h, b, p in receiver.requests if p == "/hook-b"]
    chat = [h for h, b, p in receiver.requests if p == f"/apprise/{APP_PATH}"]
    assert len(hook_a) + len(hook_b) + len(chat) == len(receiver.requests)
    assert [json.loads(b)["event"] for _, b in hook_a] == ["success", "rejected", "failure", "paused", "resumed"]
    assert [json.loads(b)["event"] for _, b in hook_b] == ["success", "rejected", "failure"]
    assert len(chat) == 3
    for headers, body in hook_a:
        assert headers["Authorization"] == basic("hookuser", HOOK_PASSWORD)
        assert headers["X-Retrainctl-Signature-256"] == "sha256=" + hmac.new(
            SIGNING.encode(), body, hashlib.sha256).hexdigest()
    for headers, body in hook_b:
        assert "Authorization" not in headers
        assert headers["X-Retrainctl-Signature-256"] == "sha256=" + hmac.new(
            FILE_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert {h["Authorization"] for h in chat} == {basic("appuser", APP_PASSWORD)}
    successes = sum(e["status"] == "success" for e in project.history("iris"))
    assert value(pushed, "model_retraining_success_total", model_name="iris") == successes
    assert value(pushed, "model_retraining_rejected_total", model_name="iris") == 1


def test_how_config_shows_urls_and_credential_parameters():
    from retrainctl.commands.config import redacted

    shown = redacted({
        "mlflow": {"tracking_uri": "sqlite:////var/lib/retrainctl/mlflow.db"},
        "notify": {"command": ["notify-send", "--url=https://u:pw@chat.example/hooks/T000?token=abc"],
                   "apprise": ["tgram://123456:BOT-TOKEN/42", "mailto://user:pass@mail.example"]},
        "executor": {"address": "tls://scheduler:8786", "data_path_map": {"/srv/tokens": "s3://bucket/prefix"}},
        "models": {"m": {"params": {"api_key": "k", "db": {"Password": "p", "port": 5432}, "max_depth": 3,
                                    "auth_header": None, "endpoint": "https://svc.example/v1?key=abc"}}}})
    assert shown == {
        "mlflow": {"tracking_uri": "sqlite:////var/lib/retrainctl/mlflow.db"},  # a local file: no secret in it
        "notify": {"command": ["notify-send", "--url=https://chat.example/***?***"],
                   "apprise": ["tgram://***", "mailto://***"]},
        "executor": {"address": "tls://scheduler:8786", "data_path_map": {"/srv/tokens": "s3://bucket/***"}},
        "models": {"m": {"params": {"api_key": "***", "db": {"Password": "***", "port": 5432}, "max_depth": 3,
                                    "auth_header": None, "endpoint": "https://svc.example/***?***"}}}}


def test_a_library_message_loses_the_secrets_of_its_url():
    from retrainctl.base.secrets import redact, scrub

    uri = "http://ml:pa%40ss@127.0.0.1:5000/tracking/T0K?token=Q1"
    message = ("API request to http://ml:pa%40ss@127.0.0.1:5000/tracking/T0K?token=Q1/api/2.0/runs failed: "
               "Max retries exceeded with url: /tracking/T0K?token=Q1/api/2.0/runs (password pa@ss)")
    assert scrub(message, uri) == ("API request to http://127.0.0.1:5000/***?*** failed: Max retries exceeded "
                                   "with url: /***?***/api/2.0/runs (password ***)")
    assert redact("/srv/mlruns") == "/srv/mlruns" and redact("databricks") == "databricks"
    assert redact("http://u:p@[::1]:9091/") == "http://[::1]:9091"


def test_a_rejected_url_in_a_config_error_loses_its_secrets(project):
    """Config validation quotes what it rejects: never the password or a token of a URL."""
    line = project.config_error(pushgateway={"url": "ftp://pushuser:PUSHPASS@gw.example:9091/pg/PATHTOKEN?t=QTOKEN"})
    assert line == ("pushgateway.url: must be an http:// or https:// URL, got 'ftp://gw.example:9091/***?***'")
    line = project.config_error(pushgateway={"url": ["https://u:LISTPASS@gw.example"]})
    assert "LISTPASS" not in line and line.endswith("got ['https://gw.example']")
