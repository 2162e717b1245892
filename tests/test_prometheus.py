"""The shipped alert rules and dashboard against a real Prometheus scraping a real Pushgateway,
driven by real `retrainctl` runs (in-process, see run()): each alert fires for what it names and
resolves when that is fixed, none fires in normal operation, the first failure counts in increase(),
no counter resets, and every dashboard panel returns data. Only the rules' `for:` durations are
shortened here."""
import copy
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from conftest import Project
from retrainctl.base.errors import FAILURE_TYPES
from retrainctl.core.fold import fold
from retrainctl.core.records import Record
from retrainctl.core.totals import fold_totals
from retrainctl.core.values import parse_iso
from retrainctl.publish import metrics
from test_metrics import _sample_map, free_port, gateway  # noqa: F401 (gateway is a fixture)

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "etc" / "prometheus" / "retrainctl-rules.yml"
DASHBOARD = REPO / "etc" / "grafana" / "retrainctl-dashboard.json"
PROMETHEUS = shutil.which("prometheus")
# Prometheus' scrape and evaluation interval, and every rule's shortened `for:`
TICK_SECONDS = 0.5
TICK = f"{TICK_SECONDS * 1000:.0f}ms"
WAIT = 60  # seconds at most for a scrape and an evaluation to show a change, on a loaded machine
COUNTERS = re.compile(r"model_retraining_\w+(_total|_count|_sum|_bucket)")


class Prometheus:
    """A real Prometheus on a loopback port scraping one Pushgateway every TICK (honor_labels,
    as docs/alerts.md tells operators) and evaluating the shipped rules, `for:` shortened."""

    def __init__(self, folder, target):
        assert PROMETHEUS, "prometheus is missing: `make system-deps` installs it"
        self.folder = folder
        self.port = free_port()
        rules = re.sub(r"(?m)^(\s+for:) \S+$", rf"\1 {TICK}", RULES.read_text())
        assert rules.count(f"for: {TICK}") == RULES.read_text().count("for:")
        (folder / "rules.yml").write_text(rules)
        (folder / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": TICK, "evaluation_interval": TICK},
            "rule_files": [str(folder / "rules.yml")],
            "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                                "static_configs": [{"targets": [target]}]}],
        }))

    def start(self):
        self.log = open(self.folder / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._until(self._ready, "Prometheus is ready")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()

    def _ready(self):
        assert self.proc.poll() is None, (self.folder / "prometheus.log").read_text()
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5).status == 200
        except OSError:
            return False

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr, at=None):
        """{labels without __name__: value} of an instant query."""
        data = self.api("query", query=expr, **({"time": at} if at is not None else {}))
        assert data["resultType"] == "vector", data
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
                for r in data["result"]}

    def alerts(self, state="firing"):
        """{(alertname, model_name or instance)} of the active alerts in that state."""
        return {(a["labels"]["alertname"], a["labels"].get("model_name") or a["labels"]["instance"])
                for a in self.api("alerts")["alerts"] if a["state"] == state}

    def counter_resets(self, window="10m"):
        """Every counter series (histograms included) whose value went down in the window."""
        names = [n for n in self.api("label/__name__/values") if COUNTERS.fullmatch(n)]
        assert names
        return {(name, labels) for name in names for labels in self.query(f"resets({name}[{window}]) > 0")}

    def ever_active(self, window="10m"):
        """Every alert that was pending or firing at any evaluation in the window (the ALERTS series)."""
        return set(self.query(f"count_over_time(ALERTS[{window}])"))

    def _until(self, predicate, what):
        deadline = time.monotonic() + WAIT
        while not predicate():
            assert time.monotonic() < deadline, f"not within {WAIT}s: {what}"
            time.sleep(0.2)

    def wait_alert(self, alert, subject, firing=True):
        self._until(lambda: ((alert, subject) in self.alerts()) == firing,
                    f"{alert} for {subject} {'fires' if firing else 'resolves'}; active: {self.api('alerts')}")

    def settle(self, gw):
        """Wait until Prometheus has scraped every group the gateway holds now and then evaluated
        the rules twice (pending, then firing with `for:` shortened to one tick)."""
        pushed = push_times(gw)
        self._until(lambda: self.query("push_time_seconds") == pushed, f"Prometheus scrapes the pushes {pushed}")
        after = time.time() + 2 * TICK_SECONDS
        self._until(lambda: min(_evaluated(g) for g in self.api("rules")["groups"]) > after,
                    "the rules are evaluated twice more")


def _evaluated(group):
    """A rule group's lastEvaluation as Unix time (Go writes nanoseconds; Python reads micro)."""
    text = re.sub(r"(\.\d{6})\d*", r"\1", group["lastEvaluation"]).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def prometheus(tmp_path, gateway):  # noqa: F811 (the imported fixture)
    folder = tmp_path / "prometheus"
    folder.mkdir()
    prom = Prometheus(folder, f"127.0.0.1:{gateway.port}").start()
    yield prom
    prom.stop()


def push_times(gw):
    """{group's labels: push_time_seconds} of every group the gateway holds, as query() keys them."""
    from prometheus_client.parser import text_string_to_metric_families

    return {tuple(sorted(s.labels.items())): s.value for fam in text_string_to_metric_families(gw.get("/metrics"))
            for s in fam.samples if s.name == "push_time_seconds"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An iris-only project with two promoted versions (v1 by `check`, v2 by `train`), trained
    once for the tests that need a model; each test works on its own copy."""
    project = Project(tmp_path_factory.mktemp("trained") / "proj")
    del project.config["models"]["housing"]
    project.write_config()
    for args in (("check",), ("train", "--force", "iris")):
        result = project.cli(*args)
        assert result.exit_code == 0, result.stderr
    assert project.current_version("iris") == 2
    return project


def copy_of(trained, dest):
    shutil.copytree(trained.root, dest, symlinks=True)
    project = copy.copy(trained)
    project.root, project.config_path, project.config = dest, dest / "etc" / "retrainctl.yaml", copy.deepcopy(
        trained.config)
    return project


def other_host(project, instance):
    """A second host on the same state_dir, data and models: its own config file, same content."""
    host = copy.copy(project)
    host.config_path, host.config = project.root / "etc" / f"{instance}.yaml", copy.deepcopy(project.config)
    return host


def fresh(tmp_path, **iris):
    """An iris-only project that never trains on its own (enable_auto_retraining: false), so the
    alerts about data, pauses, checks and pushes cost no fit."""
    project = Project(tmp_path / "proj")
    del project.config["models"]["housing"]
    project.set_model("iris", **{"enable_auto_retraining": False, **iris})
    return project


def push_to(project, gw, instance="host-a", job="retrainctl"):
    project.config["pushgateway"] = {"url": gw.url, "instance": instance, "job": job}
    project.write_config()


def run(project, *args, code=0):
    """The command, in-process: each run builds a fresh metrics registry from the state log (never
    the global one), so it pushes what the installed command would, without a subprocess's imports
    and, after a config edit, the validation's."""
    result = project.cli(*args)
    assert result.exit_code == code, result.stderr
    return result


def backdate(project, hours):
    """Make every stored version look trained `hours` ago (the age clock, without waiting)."""
    for meta in (project.model_dir / "iris").glob("v*/metadata.json"):
        data = json.loads(meta.read_text())
        data["trained_at_ts"] = time.time() - hours * 3600
        meta.write_text(json.dumps(data))


def set_last_check(project, ago):
    (project.state_dir / "checks.json").write_text(json.dumps({"iris": time.time() - ago}))


# --- one alert each: fires for its situation, resolves when it is fixed -------------------------

def test_data_unavailable_alerts_and_the_first_failure_counts_in_increase(tmp_path, gateway, prometheus):
    project = fresh(tmp_path)
    push_to(project, gateway)
    run(project, "metrics", "--push")  # every failure series exists at 0 before the first failure
    prometheus.settle(gateway)
    assert prometheus.alerts("pending") == prometheus.alerts() == set()

    project.data("iris").unlink()
    assert "data file not found" in run(project, "check", code=1).stderr
    prometheus.wait_alert("RetrainctlDataUnavailable", "iris")
    prometheus.settle(gateway)
    # Exactly 1, not extrapolated: the window starts before the series' first sample, which is 0
    # (Prometheus then extrapolates to that sample, not beyond it), and ends on its last sample.
    failures = 'model_retraining_failure_total{job="retrainctl", model_name="iris"}'
    last = max(prometheus.query(f"timestamp({failures})").values())
    got = prometheus.query(f"increase({failures}[10m])", at=last)
    assert got[(("error_type", "data_error"), ("instance", "host-a"), ("job", "retrainctl"),
                ("model_name", "iris"))] == 1.0
    assert sum(got.values()) == 1.0 and len(got) > 1  # the other error types are there, at 0

    os.mkfifo(project.data("iris"))  # there, but not a file it can read
    assert "not a regular file" in run(project, "check", code=1).stderr
    prometheus.settle(gateway)
    assert ("RetrainctlDataUnavailable", "iris") in prometheus.alerts()

    project.data("iris").unlink()
    shutil.copy(REPO / "data" / "raw" / "iris.csv", project.data("iris"))
    run(project, "check")
    prometheus.wait_alert("RetrainctlDataUnavailable", "iris", firing=False)
    assert prometheus.counter_resets() == set()
    assert {dict(k)["alertname"] for k in prometheus.ever_active()} == {"RetrainctlDataUnavailable"}


def test_failures_on_changing_data_alert_until_a_success(tmp_path, gateway, prometheus):
    # Each retrain times out at once: a failure without a fit, on new data each time.
    project = fresh(tmp_path, enable_auto_retraining=True, train_timeout_seconds=0.001)
    push_to(project, gateway)
    run(project, "metrics", "--push")
    prometheus.settle(gateway)  # the failure counters' 0 is scraped before the first failure
    for n in range(3):
        if n:
            project.append_rows("iris", 5)
        assert "train_timeout_seconds" in run(project, "check", code=1).stderr
        prometheus.settle(gateway)
        if n < 2:
            assert prometheus.alerts() == set()
    prometheus.wait_alert("RetrainctlRetrainingFailing", "iris")
    # "3 in a row" would never have fired: every failure was the first on its data
    assert prometheus.query('max_over_time(model_retraining_consecutive_failures{model_name="iris"}[10m])') == {
        (("instance", "host-a"), ("job", "retrainctl"), ("model_name", "iris")): 1.0}

    project.set_model("iris", train_timeout_seconds=600)  # fixed; the operator retrains by hand
    run(project, "train", "iris")
    assert project.current_version("iris") == 1
    prometheus.wait_alert("RetrainctlRetrainingFailing", "iris", firing=False)
    assert prometheus.counter_resets() == set()
    assert {dict(k)["alertname"] for k in prometheus.ever_active()} == {"RetrainctlRetrainingFailing"}


def test_too_old_only_while_retraining_is_enabled_and_after_a_rollback_as_status_counts(
        trained, tmp_path, gateway, prometheus):
    project = copy_of(trained, tmp_path / "proj")
    project.set_model("iris", max_model_age_hours=1, enable_auto_retraining=False)
    push_to(project, gateway)
    backdate(project, 2)
    run(project, "metrics", "--push")  # past its limit, but meant to age
    prometheus.settle(gateway)
    assert prometheus.ever_active() == set()

    project.set_model("iris", enable_auto_retraining=True, train_timeout_seconds=0.001)
    data = project.data("iris")  # a real retrain: on unchanged data the age trigger only restarts the clock
    rows = data.read_text()
    data.write_text(rows + rows.splitlines()[-1] + "\n")
    assert "train_timeout_seconds" in run(project, "check", code=1).stderr  # the retrain fails
    prometheus.wait_alert("RetrainctlModelTooOld", "iris")
    data.write_text(rows)  # back to v2's data, which the rollback then abandons

    rolled = run(project, "rollback", "iris").stdout  # the age clock restarts
    assert rolled.startswith("iris: rolled back from v2 to v1 by ")
    assert project.current_version("iris") == 1
    status = json.loads(run(project, "status", "--json").stdout)["models"][0]
    assert status["due"] is False and status["model_age_seconds"] > 3600
    prometheus.wait_alert("RetrainctlModelTooOld", "iris", firing=False)


def test_paused_model_alerts_until_resumed(tmp_path, gateway, prometheus):
    project = fresh(tmp_path)
    push_to(project, gateway)
    run(project, "pause", "iris")
    prometheus.wait_alert("RetrainctlModelPausedLong", "iris")
    run(project, "resume", "iris")
    prometheus.wait_alert("RetrainctlModelPausedLong", "iris", firing=False)
    assert {dict(k)["alertname"] for k in prometheus.ever_active()} == {"RetrainctlModelPausedLong"}


def test_not_checking_follows_check_interval_and_a_deleted_group_resolves(tmp_path, gateway, prometheus):
    project = fresh(tmp_path, check_interval=7200)
    push_to(project, gateway)
    run(project, "check")
    # Every model checked every 2 h: a last check 1.5 h old is normal, not an alert.
    set_last_check(project, 5400)
    run(project, "metrics", "--push")
    prometheus.settle(gateway)
    assert prometheus.ever_active() == set()

    set_last_check(project, 7200 + 3600 + 60)  # the timer stopped over an hour past the interval
    run(project, "metrics", "--push")
    prometheus.wait_alert("RetrainctlNotChecking", "host-a")
    # A decommissioned host's group keeps its last check forever, until someone deletes it.
    host_b = other_host(project, "host-b")
    push_to(host_b, gateway, instance="host-b")
    run(host_b, "metrics", "--push")
    prometheus.wait_alert("RetrainctlNotChecking", "host-b")

    run(project, "check")
    prometheus.wait_alert("RetrainctlNotChecking", "host-a", firing=False)
    assert prometheus.alerts() == {("RetrainctlNotChecking", "host-b")}
    request = urllib.request.Request(f"{gateway.url}/metrics/job/retrainctl/instance/host-b", method="DELETE")
    assert urllib.request.urlopen(request, timeout=5).status == 202
    prometheus.wait_alert("RetrainctlNotChecking", "host-b", firing=False)


def test_push_failing_alerts_for_any_job_name(tmp_path, gateway, prometheus):
    project = fresh(tmp_path)
    push_to(project, gateway, job="ml-retrain")
    run(project, "metrics", "--push")  # no check yet: no retrainctl_last_check_timestamp_seconds
    # Another program claims that name with another type: the gateway now refuses retrainctl's
    # pushes that carry it (HTTP 400) and keeps serving the previous picture.
    clash = urllib.request.Request(f"{gateway.url}/metrics/job/other/instance/x", method="PUT",
                                   data=b"# TYPE retrainctl_last_check_timestamp_seconds counter\n"
                                        b"retrainctl_last_check_timestamp_seconds 1\n")
    assert urllib.request.urlopen(clash, timeout=5).status == 200
    result = run(project, "check")
    assert "WARNING: push to" in result.stderr and "HTTP 400" in result.stderr
    prometheus.wait_alert("RetrainctlPushFailing", "host-a")

    delete = urllib.request.Request(f"{gateway.url}/metrics/job/other/instance/x", method="DELETE")
    assert urllib.request.urlopen(delete, timeout=5).status == 202
    assert run(project, "check").stderr == ""
    prometheus.wait_alert("RetrainctlPushFailing", "host-a", firing=False)


# --- an entry with segment_by: alerts per entry ---------------------------------------------------

def set_mtime(files, ago):
    t = time.time() - ago
    for f in files:
        os.utime(f, (t, t))


def test_an_entry_alerts_on_failed_segments_its_oldest_segment_and_stale_data(tmp_path, gateway, prometheus):
    """Eight stores of one entry `sales`, exported per entry: more than a tenth of them failing,
    the oldest segment model past max_model_age_hours, and data that stopped arriving each fire one
    alert for `sales` and resolve when fixed; nothing else is ever pending, and the dashboard's
    entry panels have data."""
    from test_segments import Shop

    shop = Shop(tmp_path / "shop")
    files = sorted((shop.root / "data" / "sales").rglob("part-0.*"))
    set_mtime(files, 60)  # the shop's months, arriving now
    shop.set_model("sales", train_timeout_seconds=0.001, max_model_age_hours=1)  # every retrain fails at once
    push_to(shop, gateway)
    run(shop, "metrics", "--push")
    prometheus.settle(gateway)
    assert prometheus.alerts("pending") == prometheus.alerts() == set()

    run(shop, "check", code=1)  # 5 of the 8 stores fail; the 3 small ones are skipped
    prometheus.wait_alert("RetrainctlSegmentsFailing", "sales")
    got = prometheus.query('retrainctl_segments{state="failed"} / ignoring (state) retrainctl_entry_segments')
    assert list(got.values()) == [5 / 8]
    shop.set_model("sales", train_timeout_seconds=600)
    run(shop, "train", "sales")  # the operator retrains them
    prometheus.wait_alert("RetrainctlSegmentsFailing", "sales", firing=False)

    meta = shop.model_dir / "sales:s002" / "v1" / "metadata.json"  # one store's model is 2 h old
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps(dict(data, trained_at_ts=time.time() - 7200)))
    run(shop, "metrics", "--push")
    prometheus.wait_alert("RetrainctlModelTooOld", "sales")
    run(shop, "pause", "sales:s002")  # a paused store is not kept fresh: no longer the entry's oldest
    prometheus.wait_alert("RetrainctlModelTooOld", "sales", firing=False)

    set_mtime(files, 7200)  # no file changed for 2 h, over max_model_age_hours
    run(shop, "metrics", "--push")
    prometheus.wait_alert("RetrainctlDataStale", "sales")
    shop.write_month(4, shop.frames[3])
    set_mtime(files[-1:] + sorted((shop.root / "data" / "sales").glob("month=2025-04/*")), 60)
    run(shop, "metrics", "--push")
    prometheus.wait_alert("RetrainctlDataStale", "sales", firing=False)

    assert prometheus.counter_resets() == set()
    assert {dict(k)["alertname"] for k in prometheus.ever_active()} == {
        "RetrainctlSegmentsFailing", "RetrainctlModelTooOld", "RetrainctlDataStale"}
    assert {dict(k)["model_name"] for k in prometheus.ever_active()} == {"sales"}
    variables = {"$job": "retrainctl", "$instance": ".*", "$model": "sales", "$__range": "10m"}
    entry_panels = panel_queries(entries=True)
    assert {t for t, _, _ in entry_panels} == {"Segments by state", "Segments failed", "Segments with a quality alert"}
    for title, ref, expr in entry_panels:
        values = prometheus.query(substitute(expr, variables)).values()
        assert any(math.isfinite(v) for v in values), f"{title} {ref}: {substitute(expr, variables)} returns {values}"


# --- normal operation, two hosts, and the dashboard ----------------------------------------------

def panel_queries(entries=False):
    """(title, refId, expr) of the dashboard's panels about declared models, or (`entries`) about
    entries with segment_by (those on the retrainctl_segments families)."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["refId"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])
            if ("retrainctl_segments" in t["expr"] or "retrainctl_entry_segments" in t["expr"]) == entries]


def substitute(text, variables):
    for name, value in variables.items():
        text = text.replace(name, value)
    return text


def test_normal_operation_on_two_hosts_fires_nothing_and_every_panel_has_data(
        trained, tmp_path, gateway, prometheus):
    """Two hosts share a state_dir and push under their own instance, with a job that is not
    called retrainctl: no alert is ever pending, one promotion reads 1 on the dashboard."""
    host_a = copy_of(trained, tmp_path / "proj")
    host_b = other_host(host_a, "host-b")
    push_to(host_a, gateway, job="ml-retrain")
    push_to(host_b, gateway, instance="host-b", job="ml-retrain")
    run(host_a, "check")  # nothing due
    run(host_b, "metrics", "--push")
    prometheus.settle(gateway)
    run(host_a, "train", "--force", "iris")
    run(host_b, "metrics", "--push")
    assert host_a.current_version("iris") == 3
    prometheus.settle(gateway)

    assert prometheus.ever_active() == set()
    assert prometheus.counter_resets() == set()
    variables = {"$job": "ml-retrain", "$instance": ".*", "$model": "iris", "$__range": "10m"}
    for title, ref, expr in panel_queries():
        values = prometheus.query(substitute(expr, variables)).values()
        assert any(math.isfinite(v) for v in values), f"{title} {ref}: {substitute(expr, variables)} returns {values}"
    expected = {"job": {"ml-retrain"}, "instance": {"host-a", "host-b"}, "model": {"iris"}}
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:  # as Grafana's label_values() asks
        selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"]["query"]).groups()
        assert set(prometheus.api(f"label/{label}/values", **{"match[]": substitute(selector, variables)})) == \
            expected[var["name"]]

    # Each host reports the shared history: one promotion per host's series, and max by model
    # (the dashboard's aggregation) counts it once where sum would count it twice. increase()
    # extrapolates a series seconds old to the edges of its range (by up to half a scrape interval
    # each side: 1.26 for one promotion seen in four scrapes), so the two are compared, not rounded,
    # at the same evaluation time.
    promoted = substitute(next(e for t, r, e in panel_queries() if t == "Retrains by outcome" and r == "A"), variables)
    at = time.time()
    per_host = prometheus.query(promoted.replace("max by (model_name)", "sum by (instance)"), at=at)
    assert len(per_host) == 2
    once = prometheus.query(promoted, at=at)[(("model_name", "iris"),)]
    assert round(once) == 1
    assert sum(per_host.values()) == pytest.approx(2 * once)


# --- the gauges the rules need, from records (pure) ---------------------------------------------

def test_alert_gauges_and_zero_series_from_records():
    records = [
        {"model_name": "m", "trigger_type": "initial", "status": "success", "duration": 2,
         "trigger_time": "2026-01-01T00:00:00+00:00"},
        {"model_name": "m", "trigger_type": "data_change", "status": "failure", "duration": 1, "data_hash": "h2",
         "error_type": "timeout", "trigger_time": "2026-01-01T01:00:00+00:00"},
        {"model_name": "m", "trigger_type": "manual", "status": "failure", "duration": 1, "data_hash": "h2",
         "error_type": "timeout", "trigger_time": "2026-01-01T02:00:00+00:00"},
    ]
    records = [Record.from_dict(d) for d in records]
    view = metrics.ModelView("m", 3600.0, data_unavailable=True, auto_retraining=False, check_interval=600.0,
                             age_clock_start=1000.0, last_failure_time=fold(records)["m"].last_failure_time)
    got = _sample_map(metrics.families(fold_totals(records), [view], now=2000.0))
    m = (("model_name", "m"),)
    assert got["model_data_unavailable", m] == 1
    assert got["model_auto_retraining_enabled", m] == 0
    assert got["model_check_interval_seconds", m] == 600
    assert got["model_age_clock_start_timestamp_seconds", m] == 1000
    # the automatic failure's end; the manual one after it is someone's attended `train`
    assert got["model_last_retraining_failure_timestamp_seconds", m] == parse_iso("2026-01-01T01:00:01+00:00")
    failures = {dict(k)["error_type"]: v for (n, k), v in got.items() if n == "model_retraining_failure_total"}
    assert failures == {**dict.fromkeys(FAILURE_TYPES, 0), "timeout": 2}
    assert got["model_retraining_triggered_total", m + (("trigger_type", "drift"),)] == 0
    for status in ("failure", "rejected"):
        assert got["model_retraining_duration_seconds_bucket", (("le", "1.0"), ("model_name", "m"),
                                                                ("status", status))] == (status == "failure") * 2
    assert got["model_retraining_duration_seconds_count", m + (("status", "rejected"),)] == 0

    healthy = _sample_map(metrics.families({}, [metrics.ModelView("m", 3600.0, check_interval=300.0)], now=0.0))
    assert healthy["model_data_unavailable", m] == 0 and healthy["model_auto_retraining_enabled", m] == 1
    assert not any(n in ("model_age_clock_start_timestamp_seconds", "model_last_retraining_failure_timestamp_seconds")
                   for n, _ in healthy)


def test_the_age_clock_restarts_at_a_rollback_on_the_current_data():
    def rolled_back(**fields):
        return fold([Record.from_dict({"model_name": "m", "trigger_type": "operator", "status": "rolled_back",
                                       "duration": 0, "trigger_time": "2026-01-01T01:00:00+00:00",
                                       "abandoned_data_hash": "h2", **fields})])["m"]

    rolled = rolled_back(abandoned_config_hash="c1")
    trained_at = parse_iso("2026-01-01T00:00:00+00:00")
    assert metrics._age_clock_start(trained_at, rolled, "h2", "c1") == trained_at + 3600
    assert metrics._age_clock_start(trained_at, rolled, "h3", "c1") == trained_at  # new data
    assert metrics._age_clock_start(trained_at, rolled, "h2", "c2") == trained_at  # a config edit
    assert metrics._age_clock_start(trained_at, None, None, None) == trained_at
    assert metrics._age_clock_start(None, rolled, "h2", "c1") is None
    # a rollback recorded before config hashes remembers the data alone
    assert metrics._age_clock_start(trained_at, rolled_back(), "h2", "c1") == trained_at + 3600
