"""Prometheus metrics against Debian's real Pushgateway: pushes after each command, counters that
keep rising across stateless runs, auth, TLS, failures that only warn, the textfile, the rules."""
import base64
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from retrainctl.base.errors import FAILURE_TYPES
from retrainctl.base.secrets import redact
from retrainctl.config.load import load_config
from retrainctl.core.records import Record
from retrainctl.core.totals import fold_totals
from retrainctl.publish import metrics

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "etc" / "prometheus"
PUSHGATEWAY = shutil.which("prometheus-pushgateway")
PROMTOOL = shutil.which("promtool")
ISSUE_METRICS = {
    "model_retraining_triggered_total", "model_retraining_success_total", "model_retraining_failure_total",
    "model_retraining_duration_seconds", "model_age_seconds", "model_last_retraining_success_timestamp_seconds",
    "model_retraining_rejected_total", "model_score", "model_data_rows", "model_retraining_due",
    "model_retraining_paused", "retrainctl_last_check_timestamp_seconds",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """A real prometheus-pushgateway on a loopback port, kept in memory only."""

    def __init__(self, folder, web_config=None, scheme="http", auth=None, cafile=None, route_prefix=""):
        assert PUSHGATEWAY, "prometheus-pushgateway is missing: `make test` installs it"
        self.folder = folder
        self.route_prefix = route_prefix  # e.g. "/pg/<token>": the gateway serves below it
        self.port = free_port()
        self.web_config = web_config
        self.scheme = scheme
        self.auth = auth
        self.cafile = cafile
        self.proc = None

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}{self.route_prefix}"

    def start(self):
        args = [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file=",
                "--log.level=warn"]
        if self.web_config:
            args.append(f"--web.config.file={self.web_config}")
        if self.route_prefix:
            args.append(f"--web.route-prefix={self.route_prefix}")
        self.log = open(self.folder / f"pushgateway-{self.port}.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / f"pushgateway-{self.port}.log").read_text()
            try:
                self.get("/-/ready")
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the Pushgateway did not become ready")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
            self.log.close()

    def get(self, path, auth="default"):
        auth = self.auth if auth == "default" else auth
        req = urllib.request.Request(self.url + path)
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
        ctx = ssl.create_default_context(cafile=self.cafile) if self.cafile else None
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
            return resp.read().decode()

    def samples(self, job="retrainctl"):
        """Every sample the gateway serves for `job`, as (name, labels, value)."""
        out = []
        for fam in text_string_to_metric_families(self.get("/metrics")):
            out += [(s.name, s.labels, s.value) for s in fam.samples if s.labels.get("job") == job]
        return out


def value(samples, name, **labels):
    """The one sample called `name` whose labels include `labels`; None if there is none."""
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


@pytest.fixture
def gateway(tmp_path):
    gw = Gateway(tmp_path).start()
    yield gw
    gw.stop()


@pytest.fixture
def iris_project(project):
    """The shared project with only the iris model (one fit per retrain keeps the suite fast)."""
    del project.config["models"]["housing"]
    project.write_config()
    return project


def use_gateway(project, url, **extra):
    project.config["pushgateway"] = {"url": url, "instance": "host-a", **extra}
    project.write_config()


def retrains(project):
    return [e for e in project.history("iris") if e["status"] in ("success", "failure", "rejected")]


# --- against the real Pushgateway -------------------------------------------------------------

def test_counters_rise_across_stateless_runs_and_count_a_failure(iris_project, gateway):
    project = iris_project
    use_gateway(project, gateway.url)

    first = project.run("train", "iris")
    assert first.returncode == 0, first.stderr
    s = gateway.samples()
    assert value(s, "model_retraining_triggered_total", model_name="iris", trigger_type="manual") == 1
    assert value(s, "model_retraining_success_total", model_name="iris") == 1
    assert value(s, "model_retraining_duration_seconds_count", model_name="iris", status="success") == 1
    assert value(s, "model_score", model_name="iris", metric="accuracy") == retrains(project)[0]["score"]
    assert {lab["instance"] for _, lab, _ in s} == {"host-a"}
    assert {lab["job"] for _, lab, _ in s} == {"retrainctl"}

    second = project.run("train", "--force", "iris")
    assert second.returncode == 0, second.stderr
    s = gateway.samples()
    assert value(s, "model_retraining_triggered_total", model_name="iris", trigger_type="manual") == 2
    assert value(s, "model_retraining_success_total", model_name="iris") == 2
    # every known error_type is there from the start, at 0, so increase() sees the first failure
    failures = {lab["error_type"]: v for n, lab, v in s if n == "model_retraining_failure_total"}
    assert failures == dict.fromkeys(FAILURE_TYPES, 0)
    assert value(s, "model_retraining_duration_seconds_count", model_name="iris", status="rejected") == 0

    project.set_model("iris", target="NoSuchColumn")
    failed = project.run("train", "iris")
    assert failed.returncode == 1, failed.stderr
    assert "target column 'NoSuchColumn' not found" in failed.stderr
    s = gateway.samples()
    assert value(s, "model_retraining_failure_total", model_name="iris", error_type="data_error") == 1
    assert value(s, "model_retraining_success_total", model_name="iris") == 2
    assert value(s, "model_retraining_triggered_total", model_name="iris", trigger_type="manual") == 3
    assert value(s, "model_retraining_duration_seconds_count", model_name="iris", status="failure") == 1
    counts = sum(v for n, lab, v in s if n == "model_retraining_duration_seconds_count")
    assert counts == len(retrains(project)) == 3
    assert value(s, "model_retraining_duration_seconds_bucket", model_name="iris", status="success",
                 le="+Inf") == 2
    assert value(s, "model_age_seconds", model_name="iris") < 60
    assert value(s, "model_max_age_seconds", model_name="iris") == 24 * 3600
    last_success = [e for e in retrains(project) if e["status"] == "success"][-1]
    started = datetime.datetime.fromisoformat(last_success["trigger_time"]).timestamp()
    assert value(s, "model_last_retraining_success_timestamp_seconds", model_name="iris") == pytest.approx(
        started + last_success["duration"])


def test_check_pushes_the_full_picture_again_after_a_gateway_restart(iris_project, gateway):
    project = iris_project
    use_gateway(project, gateway.url)
    result = project.cli("check")
    assert result.exit_code == 0, result.output
    s = gateway.samples()
    assert value(s, "model_retraining_triggered_total", model_name="iris", trigger_type="initial") == 1
    assert value(s, "model_retraining_due", model_name="iris") == 0
    assert value(s, "model_retraining_paused", model_name="iris") == 0
    assert value(s, "model_data_rows", model_name="iris") == 150
    checks = json.loads((project.state_dir / "checks.json").read_text())
    assert value(s, "retrainctl_last_check_timestamp_seconds") == pytest.approx(checks["iris"])
    assert {n for n, _, _ in s} | {"model_retraining_duration_seconds"} >= ISSUE_METRICS
    assert value(s, "model_retraining_duration_seconds_count", model_name="iris", status="success") == 1

    gateway.stop()
    gateway.start()
    assert gateway.samples() == []  # in memory only: the restart lost everything

    paused = project.cli("pause", "iris")
    assert paused.exit_code == 0, paused.output
    s = gateway.samples()
    assert value(s, "model_retraining_success_total", model_name="iris") == 1
    assert value(s, "model_retraining_triggered_total", model_name="iris", trigger_type="initial") == 1
    assert value(s, "model_retraining_paused", model_name="iris") == 1

    project.append_rows("iris", 10)
    resumed = project.cli("resume", "iris")
    assert resumed.exit_code == 0, resumed.output
    s = gateway.samples()
    assert value(s, "model_retraining_paused", model_name="iris") == 0
    assert value(s, "model_retraining_due", model_name="iris") == 1
    assert value(s, "model_data_rows", model_name="iris") == 160


def test_a_check_that_exits_1_still_pushes(iris_project, gateway):
    project = iris_project
    use_gateway(project, gateway.url)
    project.data("iris").unlink()
    result = project.run("check")
    assert result.returncode == 1
    s = gateway.samples()
    assert value(s, "model_retraining_failure_total", model_name="iris", error_type="data_error") == 1
    assert value(s, "model_retraining_duration_seconds_count", model_name="iris", status="failure") == 1
    assert value(s, "model_data_rows", model_name="iris") is None


def test_dry_run_pushes_nothing(iris_project, gateway):
    use_gateway(iris_project, gateway.url)
    result = iris_project.cli("check", "--dry-run")
    assert result.exit_code == 3
    assert gateway.samples() == []


def test_stopped_gateway_is_a_warning_and_exit_0(iris_project, tmp_path):
    project = iris_project
    gw = Gateway(tmp_path)  # never started: nothing listens on its port
    use_gateway(project, gw.url)
    result = project.run("pause", "iris")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "iris: paused\n"
    assert result.stderr == (f"retrainctl: WARNING: push to {gw.url} failed: Connection refused\n")
    assert [e["status"] for e in project.history()] == ["paused"]

    explicit = project.run("metrics", "--push")
    assert explicit.returncode == 1
    assert explicit.stderr == f"Error: push to {gw.url} failed: Connection refused\n"


def test_push_timeout_is_bounded(iris_project):
    project = iris_project
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        use_gateway(project, f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_seconds=0.5)
        begin = time.monotonic()
        result = project.run("pause", "iris")
        elapsed = time.monotonic() - begin
    assert result.returncode == 0, result.stderr
    assert "failed: timed out after 0.5s" in result.stderr
    assert elapsed < 15


def _bcrypt(password):
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def test_basic_auth_password_from_env_or_file_never_shown(iris_project, tmp_path):
    project = iris_project
    password = "s3cret-Pa55word"
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  pusher: '{_bcrypt(password)}'\n")
    gw = Gateway(tmp_path, web_config=web, auth=("pusher", password)).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            gw.get("/metrics", auth=None)
        assert denied.value.code == 401

        use_gateway(project, gw.url, username="pusher", password_env="TEST_PUSH_PASSWORD")
        ok = project.run("-v", "pause", "iris", env={"TEST_PUSH_PASSWORD": password})
        assert ok.returncode == 0, ok.stderr
        assert "WARNING" not in ok.stderr
        assert value(gw.samples(), "model_retraining_paused", model_name="iris") == 1

        wrong = project.run("-v", "resume", "iris", env={"TEST_PUSH_PASSWORD": "not-it"})
        assert wrong.returncode == 0
        assert f"retrainctl: WARNING: push to {gw.url} failed: HTTP 401 Unauthorized" in wrong.stderr
        assert value(gw.samples(), "model_retraining_paused", model_name="iris") == 1  # the push was refused

        unset = project.run("pause", "iris")
        assert unset.returncode == 0
        assert unset.stderr == ("retrainctl: WARNING: pushgateway: password_env TEST_PUSH_PASSWORD is not set "
                                "or empty\n")

        (project.root / "etc" / "pushgateway.password").write_text(password + "\n")
        use_gateway(project, gw.url, username="pusher", password_file="etc/pushgateway.password")
        from_file = project.run("-v", "resume", "iris")
        assert from_file.returncode == 0, from_file.stderr
        assert "WARNING" not in from_file.stderr
        assert value(gw.samples(), "model_retraining_paused", model_name="iris") == 0

        for result in (ok, wrong, unset, from_file):
            assert password not in result.stdout + result.stderr
        shown = project.run("config")
        assert shown.returncode == 0, shown.stderr
        assert f"password_file: {project.root}/etc/pushgateway.password" in shown.stdout
        assert password not in shown.stdout
    finally:
        gw.stop()


def _self_signed(folder):
    """A certificate for 127.0.0.1 and its key, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_with_basic_auth(iris_project, tmp_path):
    project = iris_project
    cert, key = _self_signed(tmp_path)
    password = "tls-and-auth"
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
                   f"basic_auth_users:\n  pusher: '{_bcrypt(password)}'\n")
    gw = Gateway(tmp_path, web_config=web, scheme="https", auth=("pusher", password), cafile=str(cert)).start()
    try:
        use_gateway(project, gw.url, username="pusher", password_env="TEST_PUSH_PASSWORD")
        untrusted = project.run("pause", "iris", env={"TEST_PUSH_PASSWORD": password})
        assert untrusted.returncode == 0
        assert f"WARNING: push to {gw.url} failed: " in untrusted.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr

        trusted = project.run("resume", "iris", env={"TEST_PUSH_PASSWORD": password, "SSL_CERT_FILE": str(cert)})
        assert trusted.returncode == 0
        assert trusted.stderr == ""
        assert value(gw.samples(), "model_retraining_paused", model_name="iris") == 0
    finally:
        gw.stop()


# --- the textfile -------------------------------------------------------------------------------

def test_textfile_is_never_seen_half_written(iris_project, tmp_path):
    project = iris_project
    assert project.cli("pause", "iris").exit_code == 0
    config = load_config(str(project.config_path))
    registry = metrics.build_registry(config)
    expected = metrics.exposition(registry)
    path = tmp_path / "node" / "retrainctl.prom"
    path.parent.mkdir()
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(path.read_bytes())
            except FileNotFoundError:
                pass

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(300):
            metrics.write_textfile(str(path), registry)
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 100
    assert all(content == expected for content in seen), {len(c) for c in seen}
    assert os.listdir(path.parent) == ["retrainctl.prom"]  # no temporary files left behind
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_textfile_path_is_written_after_every_run(iris_project):
    project = iris_project
    project.config["textfile_path"] = "var/textfile/retrainctl.prom"
    project.write_config()
    path = project.root / "var" / "textfile" / "retrainctl.prom"
    assert project.cli("pause", "iris").exit_code == 0
    fams = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    assert fams["model_retraining_paused"].samples[0].value == 1
    assert project.cli("resume", "iris").exit_code == 0
    fams = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    assert fams["model_retraining_paused"].samples[0].value == 0

    explicit = project.root / "elsewhere.prom"
    result = project.cli("metrics", "--textfile", str(explicit))
    assert result.exit_code == 0 and result.stdout == ""
    assert "model_retraining_paused" in explicit.read_text()


def test_unwritable_textfile_warns_and_keeps_the_exit_code(iris_project):
    project = iris_project
    (project.root / "blocker").write_text("a file where a folder should be")
    project.config["textfile_path"] = "blocker/retrainctl.prom"
    project.write_config()
    result = project.run("pause", "iris")
    assert result.returncode == 0
    assert result.stderr.startswith(f"retrainctl: WARNING: {project.root}/blocker/retrainctl.prom: "
                                    "cannot write the metrics textfile: ")
    failed = project.run("metrics", "--textfile", str(project.root / "blocker" / "x.prom"))
    assert failed.returncode == 1
    assert "cannot write the metrics textfile" in failed.stderr


# --- the command, the config, the import cost -------------------------------------------------

def test_metrics_command_prints_every_metric(iris_project):
    project = iris_project
    assert project.cli("pause", "iris").exit_code == 0
    result = project.cli("metrics")
    assert result.exit_code == 0, result.output
    fams = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    # the parser names counter families without _total
    names = {n[:-len("_total")] if n.endswith("_total") else n for n in ISSUE_METRICS}
    missing = names - set(fams)
    assert not missing
    assert fams["model_retraining_paused"].samples[0].labels == {"model_name": "iris"}
    assert fams["model_retraining_due"].samples[0].value == 1  # initial, held by the pause
    assert fams["model_retraining_triggered"].type == "counter"
    assert fams["model_retraining_duration_seconds"].type == "histogram"


def test_metrics_push_without_url_is_a_usage_error(iris_project):
    result = iris_project.cli("metrics", "--push")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {iris_project.config_path}: pushgateway.url is not set; nothing to push to\n"


@pytest.mark.parametrize("push, message", [
    ({"url": "127.0.0.1:9091"}, "pushgateway.url: must be an http:// or https:// URL, got '127.0.0.1:9091'"),
    ({"url": "http://x", "pasword_env": "P"}, "pushgateway.pasword_env: unknown key 'pasword_env'; "
                                               "did you mean 'password_env'?"),
    ({"url": "http://x", "password_env": "P"}, "pushgateway.username: is required with 'password_env'"),
    ({"url": "http://x", "username": "u"}, "pushgateway.username: needs a password: set 'password_env' or "
                                            "'password_file'"),
    ({"url": "http://x", "username": "u", "password_env": "P", "password_file": "f"},
     "pushgateway.password_file: set only one of 'password_env' or 'password_file'"),
    ({"url": "http://x", "timeout_seconds": 0}, "pushgateway.timeout_seconds: must be more than 0 and at most 3600, got 0"),
])
def test_pushgateway_config_errors(iris_project, push, message):
    assert iris_project.config_error(pushgateway=push) == message


IMPORT_PROBE = """
import sys
from retrainctl.cli import main
try:
    main(["--config", sys.argv[1], "-q", "check"])
except SystemExit as exc:
    print(exc.code, "prometheus_client" in sys.modules)
"""


def test_check_imports_prometheus_client_only_when_exporting(iris_project):
    project = iris_project
    project.set_model("iris", check_interval=3600)
    assert project.cli("pause", "iris").exit_code == 0
    assert project.cli("check").exit_code == 0  # evaluated now: the next check waits

    def probe():
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE, str(project.config_path)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()[-1].split()

    assert probe() == ["0", "False"]
    project.config["textfile_path"] = "var/retrainctl.prom"
    project.write_config()
    assert probe() == ["0", "True"]


# --- the pure core ----------------------------------------------------------------------------

def _sample_map(fams):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams for s in f.samples}


def test_families_from_records():
    records = [
        {"model_name": "m", "trigger_type": "initial", "status": "started"},
        {"model_name": "m", "trigger_type": "initial", "status": "success", "duration": 0.5,
         "trigger_time": "2026-01-01T00:00:00+00:00"},
        {"model_name": "m", "trigger_type": "data_change", "status": "failure", "duration": 3,
         "error_type": "timeout"},
        {"model_name": "m", "trigger_type": "model_age", "status": "rejected", "duration": 4000},
        {"model_name": "m", "trigger_type": "data_change", "status": "skipped", "duration": 0},
        {"model_name": "m", "trigger_type": "operator", "status": "paused"},
        {"model_name": "gone", "trigger_type": "initial", "status": "success", "duration": 1},
        {"model_name": "m", "trigger_type": "manual", "status": "failure", "duration": "garbled"},
    ]
    view = metrics.ModelView("m", 7200.0, data_rows=10, due=True, paused=True, failures_in_row=1,
                             trained_at=1000.0, score=0.9, metric="accuracy")
    got = _sample_map(metrics.families(fold_totals([Record.from_dict(d) for d in records]), [view], now=1600.0,
                                        last_check=1500.0))
    m = (("model_name", "m"),)
    assert got["model_retraining_triggered_total", m + (("trigger_type", "initial"),)] == 1
    assert got["model_retraining_triggered_total", m + (("trigger_type", "data_change"),)] == 2
    assert got["model_retraining_triggered_total", m + (("trigger_type", "model_age"),)] == 1
    assert got["model_retraining_triggered_total", m + (("trigger_type", "performance"),)] == 0
    assert got["model_retraining_triggered_total", m + (("trigger_type", "manual"),)] == 1
    assert got["model_retraining_success_total", m] == 1
    assert got["model_retraining_rejected_total", m] == 1
    assert got["model_retraining_failure_total", (("error_type", "timeout"), ("model_name", "m"))] == 1
    assert got["model_retraining_failure_total", (("error_type", "unknown"), ("model_name", "m"))] == 1
    fail = m + (("status", "failure"),)
    assert got["model_retraining_duration_seconds_count", fail] == 2
    assert got["model_retraining_duration_seconds_sum", fail] == 3
    rej = (("le", "1.0"), ("model_name", "m"), ("status", "rejected"))
    assert got["model_retraining_duration_seconds_bucket", rej] == 0
    assert got["model_retraining_duration_seconds_bucket", (("le", "3600.0"),) + rej[1:]] == 0
    assert got["model_retraining_duration_seconds_bucket", (("le", "7200.0"),) + rej[1:]] == 1
    assert got["model_retraining_duration_seconds_bucket", (("le", "+Inf"),) + rej[1:]] == 1
    assert got["model_age_seconds", m] == 600
    assert got["model_max_age_seconds", m] == 7200
    assert got["model_score", (("metric", "accuracy"), ("model_name", "m"))] == 0.9
    assert got["model_data_rows", m] == 10
    assert got["model_retraining_due", m] == 1
    assert got["model_retraining_paused", m] == 1
    assert got["model_retraining_consecutive_failures", m] == 1
    assert got["retrainctl_last_check_timestamp_seconds", ()] == 1500
    assert got["model_last_retraining_success_timestamp_seconds", m] == pytest.approx(1767225600.5)
    assert not any(dict(labels).get("model_name") == "gone" for _, labels in got)


def test_every_trigger_type_has_a_counter_from_the_start():
    """Each trigger type's series exists at 0 before its first event (drift was once missing)."""
    from retrainctl.core.records import TriggerType

    view = metrics.ModelView("m", 7200.0)
    got = _sample_map(metrics.families({}, [view], now=1600.0))
    triggered = {dict(labels)["trigger_type"]: value for (name, labels), value in got.items()
                 if name == "model_retraining_triggered_total"}
    assert triggered == {t.value: 0 for t in TriggerType}
    assert {"initial", "data_change", "model_age", "performance", "drift", "manual"} <= set(triggered)


def test_export_parses_only_the_log_after_the_summary(project, monkeypatch):
    """Counters and histograms are running totals, a fold that summary.json caches, so the
    export after every run costs the same with years of history: only new lines are parsed."""
    from retrainctl.state import log as eventlog
    from retrainctl.state import segments as logfile
    from retrainctl.state.log import StateLog

    cfg = load_config(str(project.config_path))
    log = StateLog(cfg.state_dir)
    log.append(*[Record.from_dict({"model_name": "iris", "trigger_type": "data_change", "status": "failure",
                                   "duration": 2.0, "error_type": "timeout",
                                   "trigger_time": "2026-01-01T00:00:00+00:00"}) for _ in range(300)])
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log.states()  # the summary now covers all 300
    monkeypatch.undo()
    log.append(Record.from_dict({"model_name": "iris", "trigger_type": "manual", "status": "success", "duration": 90.0,
                                 "executor": "local", "executor_seconds": 80.0,
                                 "trigger_time": "2026-01-02T00:00:00+00:00"}))
    parsed = []
    real = logfile.parse
    monkeypatch.setattr(logfile, "parse", lambda line: parsed.append(line) or real(line))

    got = _sample_map(metrics.build_registry(cfg).collect())
    assert parsed and all(b'"status": "success"' in line for line in parsed)  # the new line only
    iris = (("model_name", "iris"),)
    assert got["model_retraining_triggered_total", iris + (("trigger_type", "data_change"),)] == 300
    assert got["model_retraining_triggered_total", iris + (("trigger_type", "manual"),)] == 1
    assert got["model_retraining_failure_total", (("error_type", "timeout"), ("model_name", "iris"))] == 300
    assert got["model_retraining_success_total", iris] == 1
    assert got["model_retraining_duration_seconds_sum", iris + (("status", "failure"),)] == 600
    assert got["model_retraining_duration_seconds_bucket", (("le", "60.0"), ("model_name", "iris"),
                                                            ("status", "success"))] == 0
    assert got["model_retraining_duration_seconds_bucket", (("le", "120.0"), ("model_name", "iris"),
                                                            ("status", "success"))] == 1
    assert got["model_retraining_executor_seconds_count", (("executor", "local"), ("model_name", "iris"))] == 1


def test_executor_seconds_histogram():
    records = [
        {"model_name": "m", "trigger_type": "initial", "status": "success", "duration": 9,
         "executor": "dask", "executor_seconds": 7.5},
        {"model_name": "m", "trigger_type": "manual", "status": "failure", "duration": 2,
         "executor": "local", "executor_seconds": 1.5},
        {"model_name": "m", "trigger_type": "manual", "status": "success", "duration": 2},  # before executors
        {"model_name": "m", "trigger_type": "data_change", "status": "skipped", "executor_seconds": 3},
    ]
    got = _sample_map(metrics.families(fold_totals([Record.from_dict(d) for d in records]),
                                       [metrics.ModelView("m", 3600.0)], now=0.0))
    dask = (("executor", "dask"), ("model_name", "m"))
    assert got["model_retraining_executor_seconds_count", dask] == 1
    assert got["model_retraining_executor_seconds_sum", dask] == 7.5
    assert got["model_retraining_executor_seconds_bucket", (("executor", "dask"), ("le", "5.0"), ("model_name", "m"))] == 0
    assert got["model_retraining_executor_seconds_count", (("executor", "local"), ("model_name", "m"))] == 1


def test_an_entrys_totals_sum_its_segments_and_never_go_down():
    from retrainctl.core.totals import fold_entry_totals

    def rec(name, status, duration, **extra):
        return Record.from_dict({"model_name": name, "trigger_type": "initial", "status": status,
                                 "duration": duration, "trigger_time": "2026-01-01T00:00:00+00:00", **extra})

    records = [rec("sales:s1", "success", 2), rec("sales:s2", "failure", 40, error_type="timeout"),
               rec("sales:s3", "rejected", 700), rec("iris", "success", 1), rec("sales:s1", "success", 3)]
    totals = fold_totals(records)
    summed = fold_entry_totals(records)
    sales = summed["sales"]
    assert (sales.successes, sales.rejections, sales.failures, sales.triggered) == (2, 1, {"timeout": 1}, {"initial": 4})
    assert sales.durations["success"][:2] == [2, 5.0] and sales.durations["rejected"][2][7] == 0  # 700 s > 600
    assert sales.durations["rejected"][2][8] == 1 and sales.durations["failure"][2][:4] == [0, 0, 0, 0]
    assert sales.last_success_time == totals["sales:s1"].last_success_time
    assert set(summed) == {"sales"}  # a declared model is not an entry's
    # a segment whose rows left the data keeps its records: the sum does not drop
    more = [rec("sales:s2", "failure", 1, error_type="data_error")]
    fold_totals(more, totals)
    again = fold_entry_totals(more, summed)["sales"]
    assert again.failures == {"timeout": 1, "data_error": 1} and again.triggered == {"initial": 5}
    assert totals["sales:s1"].durations["success"][0] == 2  # the segments' own totals are left alone


def test_families_of_a_model_never_trained():
    fams = metrics.families({}, [metrics.ModelView("m", 3600.0)], now=0.0)
    names = {s.name for f in fams for s in f.samples}
    assert "model_age_seconds" not in names and "model_score" not in names
    assert "retrainctl_last_check_timestamp_seconds" not in names
    assert "model_retraining_success_total" in names


def test_redact_hides_a_password_in_the_url():
    assert redact("https://u:pw@gw.example:9091/x") == "https://gw.example:9091/***"
    assert redact("http://gw:9091") == "http://gw:9091"


# --- alert rules and the dashboard ------------------------------------------------------------

def test_promtool_checks_and_tests_the_rules():
    assert PROMTOOL, "promtool is missing: `make test` installs the prometheus package"
    check = subprocess.run([PROMTOOL, "check", "rules", str(RULES / "retrainctl-rules.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout
    test = subprocess.run([PROMTOOL, "test", "rules", "retrainctl-rules.test.yml"], cwd=RULES,
                          capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


def test_dashboard_queries_only_exported_metrics():
    import re

    dashboard = json.loads((REPO / "etc" / "grafana" / "retrainctl-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 5
    exported = {f.name for f in metrics.families({}, [metrics.ModelView("m", 1.0)], now=0.0)}
    exported |= {n + "_total" for n in exported} | {"model_retraining_duration_seconds_bucket",
                                                    "model_retraining_duration_seconds_count",
                                                    "model_retraining_duration_seconds_sum"}
    used = {name for e in exprs for name in re.findall(r"\b((?:model|retrainctl)_[a-z_]+)", e)} - {"model_name"}
    assert used and used <= exported, used - exported


def test_status_and_metrics_agree_during_a_backoff(project):
    """A failed retrain waiting out its backoff: a trigger still fires (model_retraining_due 1),
    and both `status` (DUE `backoff`) and the metrics (model_retraining_held, reason backoff)
    say what holds it, instead of `DUE no` beside a due gauge at 1."""
    del project.config["models"]["housing"]
    project.set_model("iris", target="NoSuchColumn", retry_backoff_seconds=3600, max_retries=3)
    assert project.run("check").returncode == 1

    status = project.run("status")
    assert status.returncode == 0, status.stderr
    header, row = status.stdout.splitlines()
    assert dict(zip(header.split()[:7], row.split()[:7]))["DUE"] == "backoff"
    assert row.split()[6] == "initial"
    [st] = json.loads(project.run("status", "--json").stdout)["models"]
    assert (st["due"], st["held"], st["action"]) == (False, "backoff", "backoff")
    again = project.run("check", "--dry-run", "--json")
    assert again.returncode == 0, again.stderr
    assert [(m["due"], m["held"]) for m in json.loads(again.stdout)["models"]] == [(False, "backoff")]

    out = project.run("metrics")
    assert out.returncode == 0, out.stderr
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(out.stdout) for s in fam.samples}
    assert got["model_retraining_due", (("model_name", "iris"),)] == 1
    assert {reason: got["model_retraining_held", (("model_name", "iris"), ("reason", reason))]
            for reason in ("paused", "disabled", "too_few_rows", "backoff", "gave_up")} == {
        "paused": 0, "disabled": 0, "too_few_rows": 0, "backoff": 1, "gave_up": 0}


# --- an entry with segment_by: per entry by default, per segment when asked ------------------------

def exposed(project):
    """{(name, labels): value} of `retrainctl metrics`, in-process, and the body's size."""
    result = project.cli("metrics")
    assert result.exit_code == 0, result.stderr
    fams = text_string_to_metric_families(result.stdout)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams for s in f.samples}, len(result.stdout)


def test_an_entry_is_exported_per_entry_and_per_segment_only_when_asked(tmp_path):
    import pandas as pd
    from test_segments import Shop

    shop = Shop(tmp_path / "shop")  # 8 stores of skewed sizes: 5 with enough rows, 3 skipped
    shop.set_model("sales", train_timeout_seconds=0.001)  # each retrain fails at once, without a fit
    assert shop.cli("check").exit_code == 1
    got, size = exposed(shop)
    sales = (("model_name", "sales"),)
    assert not any(":" in dict(labels).get("model_name", "") for _, labels in got)  # no segment's series
    assert {s: got["retrainctl_segments", sales + (("state", s),)] for s in metrics.SEGMENT_STATES} == {
        "up_to_date": 0, "due": 0, "failed": 5, "skipped": 3, "paused": 0, "no_data": 0}  # in backoff: not due
    assert shop.cli("status").stdout.splitlines()[-1].split() == ["sales", "8", "0", "0", "-", "5", "3", "0", "0"]
    assert got["retrainctl_entry_segments", sales] == 8
    failures = {dict(k)["error_type"]: v for (n, k), v in got.items()
                if n == "model_retraining_failure_total" and dict(k)["model_name"] == "sales"}
    assert failures == {**dict.fromkeys(FAILURE_TYPES, 0), "timeout": 5}
    assert got["model_retraining_triggered_total", sales + (("trigger_type", "initial"),)] == 5
    assert got["model_retraining_duration_seconds_count", sales + (("status", "failure"),)] == 5
    assert got["model_data_rows", sales] == 900
    assert got["model_data_last_change_timestamp_seconds", sales] == 1_700_000_003  # month 3's file
    for absent in ("model_retraining_consecutive_failures", "model_retraining_due", "model_score",
                   "model_last_retraining_failure_timestamp_seconds", "model_age_seconds"):
        assert not any(n == absent for n, _ in got), absent
    assert size < 16_000

    shop.set_model("sales", train_timeout_seconds=600)
    assert shop.cli("train", "sales").exit_code == 0  # the operator retrains the five
    assert shop.cli("pause", "sales:s001").exit_code == 0
    shop.write_month(4, shop.frames[3][shop.frames[3]["store"].isin(["s000", "s002"])])  # new rows of two stores
    # recent rows of every store, in which s000's prices jumped and how they drive units flipped
    from generate import orders

    broken, normal = orders(months=4, rows_per_month=300, stores=8, seed=4, break_months=(4,))[3], shop.frames[3]
    recent = pd.concat([broken[broken["store"] == "s000"], normal[normal["store"] != "s000"]])
    recent.to_csv(shop.root / "data" / "eval.csv", index=False)
    recent.drop(columns="units").to_csv(shop.root / "data" / "recent.csv", index=False)
    shop.set_model("sales", eval_path="data/eval.csv", drift_path="data/recent.csv")
    got, _ = exposed(shop)
    assert {s: got["retrainctl_segments", sales + (("state", s),)] for s in metrics.SEGMENT_STATES} == {
        "up_to_date": 3, "due": 2, "failed": 0, "skipped": 3, "paused": 1, "no_data": 0}
    assert {c: got["retrainctl_segments_alerting", (("check", c),) + sales] for c in ("performance", "drift")} == {
        "performance": 1, "drift": 1}  # s000's
    # counted over the whole history: the failures stay, the manual retrains add to them
    assert got["model_retraining_failure_total", (("error_type", "timeout"),) + sales] == 5
    assert got["model_retraining_success_total", sales] == 5
    assert got["model_retraining_triggered_total", sales + (("trigger_type", "manual"),)] == 5
    assert got["model_data_last_change_timestamp_seconds", sales] == 1_700_000_004
    assert 0 < got["model_age_seconds", sales] < 600
    assert got["model_age_clock_start_timestamp_seconds", sales] == pytest.approx(
        min(json.loads((shop.model_dir / f"sales:{s}" / "v1" / "metadata.json").read_text())["trained_at_ts"]
            for s in ("s000", "s002", "s003", "s004")), abs=0.2)  # s001 is paused: not kept fresh

    shop.config["metrics"] = {"per_segment": True}
    shop.write_config()
    every, size = exposed(shop)
    # the entry's series are the same; each segment adds its own, as a declared model's
    moving = ("model_age_seconds", "model_age_clock_start_timestamp_seconds")  # from ages rounded to 0.1 s
    assert {k: v for k, v in every.items() if ":" not in dict(k[1]).get("model_name", "") and k[0] not in moving} == {
        k: v for k, v in got.items() if k[0] not in moving}
    s000, s001, s007 = ((("model_name", f"sales:{s}"),) for s in ("s000", "s001", "s007"))
    assert every["model_retraining_due", s000] == 1 and every["model_retraining_paused", s001] == 1
    assert every["model_retraining_held", s007 + (("reason", "too_few_rows"),)] == 1
    assert every["model_retraining_failure_total", (("error_type", "timeout"),) + s000] == 1
    assert every["model_retraining_success_total", s000] == 1
    assert every["model_data_last_change_timestamp_seconds", s000] == 1_700_000_004
    assert every["model_data_last_change_timestamp_seconds", s001] == 1_700_000_003  # not in month 4
    assert not any(n == "model_score" for n, k in every.items() if k == s007)  # never trained
    assert every["model_input_drifted", s000] == 1 and every["model_input_drifted", s001] == 0
    assert size > 50_000

    # a partition without the key column: the segments cannot be listed; the entry's data is
    # unavailable, its counters stay, and no segment's series are left over
    shop.write_month(5, shop.frames[3].drop(columns="store"))
    broken, _ = exposed(shop)
    assert broken["model_data_unavailable", sales] == 1 and broken["retrainctl_entry_segments", sales] == 0
    assert broken["model_retraining_success_total", sales] == 5
    assert broken["model_retraining_failure_total", (("error_type", "timeout"),) + sales] == 5
    assert not any(":" in dict(labels).get("model_name", "") for _, labels in broken)
