"""Fits handed to an executor: a real Dask scheduler and workers on 127.0.0.1, and local child
processes several at a time. The controller still decides, locks, gates and records."""
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pandas as pd
import pytest

from conftest import IRIS, REPO, RETRAINCTL, base_config

sys.path.insert(0, str(REPO / "bench"))
from segments_bench import SEGMENT_MODEL, store_rows  # noqa: E402

HERE = Path(__file__).resolve().parent
DASK = str(Path(sys.executable).parent / "dask")
ENV = {"PYTHONPATH": str(HERE)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.pop("RETRAINCTL_CONFIG", None)
    return env


class Cluster:
    """`dask scheduler` and `dask worker` processes (no nanny, so a worker's pid is the pid that
    runs its tasks)."""

    def __init__(self, logdir, workers=2, tls=None):
        self.logdir = logdir
        self.port = free_port()
        self.tls = tls  # {"ca": ..., "cert": ..., "key": ...} paths: every connection is mutual TLS
        self.address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{self.port}"
        self.workers = []
        self.scheduler = self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                                   str(self.port), "--no-dashboard", *self._tls_args()])
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.scheduler.poll() is None, (logdir / "scheduler.log").read_text()
                assert time.monotonic() < deadline, "scheduler did not start"
                time.sleep(0.1)
        for _ in range(workers):
            self.add_worker()
        if workers:
            self.wait_for_workers(workers)

    def _tls_args(self):
        if not self.tls:
            return []
        return ["--tls-ca-file", self.tls["ca"], "--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]

    def _spawn(self, name, argv):
        log = open(self.logdir / f"{name}.log", "ab")
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=str(self.logdir))

    def add_worker(self):
        self.workers.append(self._spawn(f"worker{len(self.workers)}", [
            DASK, "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
            "--no-nanny", "--no-dashboard", *self._tls_args()]))

    def client(self):
        from distributed import Client
        from distributed.security import Security

        security = Security(tls_ca_file=self.tls["ca"], tls_client_cert=self.tls["cert"],
                            tls_client_key=self.tls["key"], require_encryption=True) if self.tls else None
        return Client(self.address, timeout=10, set_as_default=False, security=security)

    def wait_for_workers(self, n):
        with self.client() as c:
            c.wait_for_workers(n, timeout=60)

    def worker_pids(self):
        """{address: pid} of the live workers, as the workers themselves report it."""
        with self.client() as c:
            return c.run(os.getpid)

    def stop(self):
        """Workers first, while the scheduler can still see them off; then the scheduler."""
        for group in (self.workers, [self.scheduler]):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.stop()


@pytest.fixture
def own_cluster(tmp_path):
    logs = tmp_path / "dask"
    logs.mkdir()
    c = Cluster(logs)
    yield c
    c.stop()


def iris_models(project, n, **changes):
    project.config["models"] = {f"m{i}": dict(IRIS, **changes) for i in range(n)}


def use_dask(project, address, **extra):
    project.config["executor"] = {"type": "dask", "address": address, **extra}
    project.write_config()


def successes(project):
    return [e for e in project.history() if e["status"] == "success"]


def test_eight_models_fit_on_the_workers_and_the_promoted_models_predict(project, cluster):
    iris_models(project, 8)
    use_dask(project, cluster.address)
    pids = cluster.worker_pids()
    assert sorted(pids.values()) == sorted(p.pid for p in cluster.workers)

    result = project.run("check", "--json", env=ENV)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(m["model_name"], m["result"].split(" ")[0]) for m in out["models"]] == [
        (f"m{i}", "promoted") for i in range(8)]

    done = successes(project)
    assert sorted(e["model_name"] for e in done) == [f"m{i}" for i in range(8)]
    started = [e for e in project.events() if e["status"] == "started"]
    assert len(started) == 8 and {e["executor"] for e in started} == {"dask"}
    controller_pid = started[0]["pid"]
    fit_pids = set()
    for e in done:
        assert e["executor"] == "dask" and e["worker"] in pids
        assert e["executor_seconds"] >= 0 and e["queued_seconds"] >= 0
        meta = json.loads((project.model_dir / e["model_name"] / "v1" / "metadata.json").read_text())
        assert meta["fit_pid"] == pids[e["worker"]] != controller_pid
        assert meta["fit_host"] == socket.gethostname()
        fit_pids.add(meta["fit_pid"])
    assert fit_pids == set(pids.values()), "both workers took fits"

    rows = pd.read_csv(project.data("iris")).drop(columns=["Species"]).head(10)
    for i in range(8):
        model = joblib.load(project.model_dir / f"m{i}" / "current" / "model.joblib")
        assert set(model.predict(rows)) <= {"Iris-setosa", "Iris-versicolor", "Iris-virginica"}
    assert not list((project.state_dir / "running").iterdir())

    again = project.run("check", env=ENV)
    assert again.returncode == 0 and len(project.history()) == 8


def _status_row(project, name):
    rows = json.loads(project.cli("status", "--json").stdout)["models"]
    return next(r for r in rows if r["model_name"] == name)


def test_killed_worker_is_worker_lost_and_the_next_check_retries(project, own_cluster, tmp_path):
    hold = tmp_path / "hold"
    hold.write_text("")
    project.config["defaults"]["retry_backoff_seconds"] = 0
    project.config["models"] = {"slow": dict(IRIS, estimator=None, trainer="dask_helpers:slow_tree",
                                             params={"hold_file": str(hold), "max_seconds": 60})}
    use_dask(project, own_cluster.address)
    pids = own_cluster.worker_pids()

    proc = subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), "check", "--json"], cwd="/",
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            row = _status_row(project, "slow")
            if row["executing"] and row["executing"]["state"] == "running":
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, row
            time.sleep(0.1)
        assert row["training_now"] is True
        assert row["executing"]["executor"] == "dask" and row["executing"]["where"] in pids
        table = project.cli("status", "slow").stdout.splitlines()
        assert table[0].split()[-2:] == ["TRAINING", "WHERE"]
        assert table[1].split()[-2:] == ["yes", f"dask:{row['executing']['where']}"]

        os.kill(pids[row["executing"]["where"]], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    [failure] = project.history()
    assert failure["status"] == "failure" and failure["error_type"] == "worker_lost"
    assert failure["worker"] == row["executing"]["where"]
    assert "died or left during the fit" in failure["error"]
    assert json.loads(stdout)["models"][0]["result"].startswith("failed: Dask worker ")
    assert _status_row(project, "slow")["training_now"] is False
    assert not (project.state_dir / "running" / "slow.json").exists()
    assert project.current_version("slow") is None

    hold.unlink()
    retry = project.run("check", env=ENV)
    assert retry.returncode == 0, retry.stderr
    assert [(e["status"], e.get("error_type")) for e in project.history()] == [
        ("failure", "worker_lost"), ("success", None)]
    survivor = [a for a in pids if a != failure["worker"]]
    assert project.history()[-1]["worker"] == survivor[0]
    assert project.current_version("slow") == 1


def fleet(project, stores=30, no_labels=None, **changes):
    """The entry `sales` split by store: two monthly CSV partitions of `stores` stores of skewed
    sizes (about 120 orders for the first, 76 for the last), prices with gaps, cancelled orders
    without a label; store `no_labels` has no label at all. Returns the segment names."""
    import numpy as np

    for month in (1, 2):
        frame = store_rows(stores, 30, seed=month, month=month, skew=True)
        if no_labels:
            frame.loc[frame["store"] == no_labels, "units"] = np.nan
        path = project.root / "data" / "sales" / f"month=2025-{month:02d}" / "part-0.csv"
        path.parent.mkdir(parents=True)
        frame.to_csv(path, index=False)
        os.utime(path, (1_700_000_000 + month, 1_700_000_000 + month))  # not "just written"
    project.write_config(base_config(sales=dict(SEGMENT_MODEL, data_path="data/sales/", **changes)))
    return [f"sales:s{i:05d}" for i in range(stores)]


def batch_tasks(cluster, attempt_ids):
    """The keys of the batch tasks the scheduler ran for these attempts (a batch's key names its
    first fit's attempt id), from the scheduler's own transition log."""
    def keys(dask_scheduler):
        return sorted({str(t[0]) for t in dask_scheduler.transition_log if str(t[0]).startswith("retrainctl-batch-")})

    with cluster.client() as c:
        return [k for k in c.run_on_scheduler(keys) if k.rsplit("-", 2)[1] in attempt_ids]


def test_batches_keep_every_worker_thread_busy_and_an_entry_together(project):
    from retrainctl.config.load import load_config
    from retrainctl.fit.executors import FitRequest, plan_batches

    spec = load_config(str(project.config_path)).model("iris").training_spec()

    def requests(n, paths=("data/sales",)):
        return [FitRequest(f"m{i}", f"a{i}", spec, paths[i % len(paths)], None) for i in range(n)]

    def sizes(n, threads):
        return [len(b) for b in plan_batches(requests(n), threads)]

    assert sizes(30, 2) == [4] * 7 + [2]
    assert sizes(2000, 2) == [100] * 20
    assert sizes(2000, 64) == [8] * 250
    assert sizes(1, 2) == [1] and sizes(8, 2) == [1] * 8 and sizes(0, 2) == []
    mixed = plan_batches(requests(6, ("a.csv", "b.csv")), 1)
    assert [[r.data_path for r in b] for b in mixed] == [["a.csv", "a.csv"], ["a.csv", "b.csv"], ["b.csv", "b.csv"]]
    assert [r.model_name for b in mixed for r in b] == ["m0", "m2", "m4", "m1", "m3", "m5"]


def test_a_fleet_trains_in_batches_one_task_each_and_a_failing_store_fails_alone(project, cluster):
    names = fleet(project, no_labels="s00007")
    use_dask(project, cluster.address)
    pids = cluster.worker_pids()

    result = project.cli("check", "--json")
    assert result.exit_code == 1, result.output
    out = {m["model_name"]: m for m in json.loads(result.stdout)["models"]}
    assert sorted(out) == names
    assert [n for n in names if out[n]["failed"]] == ["sales:s00007"]
    assert out["sales:s00007"]["result"] == (f"failed: {project.root}/data/sales: every row lacks the target 'units'")
    done = {e["model_name"]: e for e in project.history()}
    assert len(project.history()) == len(done) == 30
    assert done.pop("sales:s00007")["error_type"] == "data_error"
    assert {e["status"] for e in done.values()} == {"success"}
    assert {e["worker"] for e in done.values()} == set(pids), "both workers took batches"
    for name, e in done.items():
        meta = json.loads((project.model_dir / name / "v1" / "metadata.json").read_text())
        assert meta["fit_pid"] == pids[e["worker"]]

    # 30 fits on 2 worker threads: 4 batches a thread, so 8 tasks of 4 fits (the last of 2)
    started = {e["attempt_id"] for e in project.events() if e["status"] == "started"}
    tasks = batch_tasks(cluster, started)
    assert sorted(int(k.rsplit("-", 1)[1]) for k in tasks) == [2, 4, 4, 4, 4, 4, 4, 4]
    assert not list((project.state_dir / "running").iterdir())
    with cluster.client() as c:  # the results' queue was let go by the tasks and the controller
        assert c.run_on_scheduler(lambda dask_scheduler: [
            q for q in dask_scheduler.extensions["queues"].queues if q.startswith("retrainctl-results-")]) == []


def test_a_worker_killed_mid_batch_fails_each_unfinished_fit_of_its_batch(project, own_cluster, tmp_path):
    """18 stores on 2 worker threads: 6 batches of 3. Each worker stops in its second fit, the
    second of its first batch; one is killed. Its batch's finished fit keeps its version, its two
    unfinished ones are each a worker_lost failure (the one it was running, and the one after);
    the batch the scheduler had already handed it, not started, runs on the other worker (the
    next check retries the two, as test_killed_worker_is_worker_lost_and_the_next_check_retries
    shows for one fit)."""
    hold, holding = tmp_path / "hold", tmp_path / "holding"
    hold.write_text("")
    holding.mkdir()
    names = fleet(project, stores=18, estimator=None, trainer="dask_helpers:held_ridge",
                  params={"hold_at": 2, "hold_file": str(hold), "holding_dir": str(holding), "max_seconds": 300})
    use_dask(project, own_cluster.address)
    address = {pid: addr for addr, pid in own_cluster.worker_pids().items()}

    proc = subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), "check", "--json"], cwd="/",
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240  # a loaded machine: the command's imports, then each worker's
        while len(os.listdir(holding)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, os.listdir(holding)
            time.sleep(0.05)
        victim = min(int(pid) for pid in os.listdir(holding))
        os.kill(victim, signal.SIGKILL)
        while len([e for e in project.history() if e.get("error_type") == "worker_lost"]) < 2:
            assert time.monotonic() < deadline, project.history()
            time.sleep(0.05)
        hold.unlink()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    records = project.history()
    assert sorted(e["model_name"] for e in records) == names, "one record per store"
    lost = address[victim]
    failed = [e for e in records if e["status"] != "success"]
    assert [(e["error_type"], e["worker"], e["error"]) for e in failed] == [
        ("worker_lost", lost, f"Dask worker {lost} died or left during the fit"),
        ("worker_lost", lost, f"Dask worker {lost} died or left before this fit of its batch started (1 of 3 done)")]
    on_victim = [e["model_name"] for e in records if e["status"] == "success" and e["worker"] == lost]
    assert len(on_victim) == 1 and all(project.current_version(n) == 1 for n in on_victim)
    assert all(project.current_version(e["model_name"]) is None for e in failed)
    assert {m["model_name"] for m in json.loads(stdout)["models"] if m["failed"]} == {e["model_name"] for e in failed}


def test_a_fit_past_its_timeout_fails_alone_and_the_rest_of_its_batch_goes_on(project, cluster, tmp_path):
    """18 stores on 2 worker threads: 6 batches of 3. The second fit of each worker's first batch
    hangs past train_timeout_seconds: it is a `timeout` failure, and the fit after it trains in
    a batch of its own, while the stuck thread's later results are dropped."""
    hold, holding = tmp_path / "hold", tmp_path / "holding"
    hold.write_text("")
    holding.mkdir()
    names = fleet(project, stores=18, estimator=None, trainer="dask_helpers:held_ridge", train_timeout_seconds=5,
                  params={"hold_at": 2, "hold_file": str(hold), "holding_dir": str(holding), "max_seconds": 12})
    use_dask(project, cluster.address)
    with cluster.client() as c:  # a first fit's imports must not pass the timeout on a loaded machine
        c.run(lambda: [__import__(m) for m in ("retrainctl.fit.executors", "retrainctl.fit.task", "sklearn.linear_model",
                                                "sklearn.impute", "sklearn.compose", "scipy.stats")] and None)
    result = project.cli("check", "--json")
    assert result.exit_code == 1, result.output
    records = project.history()
    assert sorted(e["model_name"] for e in records) == names, "one record per store"
    failed = [e for e in records if e["status"] != "success"]
    assert sorted((e["error_type"], e["error"]) for e in failed) == sorted(
        ("timeout", f"fit did not finish within train_timeout_seconds=5 on {e['worker']}") for e in failed)
    assert len(failed) == 2 and {e["worker"] for e in failed} == set(cluster.worker_pids())
    assert sorted(int(pid) for pid in os.listdir(holding)) == sorted(cluster.worker_pids().values())
    started = {e["attempt_id"] for e in project.events() if e["status"] == "started"}
    assert sorted(int(k.rsplit("-", 1)[1]) for k in batch_tasks(cluster, started)) == [1, 1, 3, 3, 3, 3, 3, 3]
    assert all(project.current_version(e["model_name"]) is None for e in failed)


def test_stopped_scheduler_is_exit_1_and_a_clean_state(project, tmp_path):
    logs = tmp_path / "dask"
    logs.mkdir()
    stopped = Cluster(logs, workers=0)
    stopped.stop()
    use_dask(project, stopped.address, connect_timeout_seconds=2)

    started = time.monotonic()
    result = project.run("check", env=ENV)
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: executor.address: cannot reach the Dask scheduler at {stopped.address} "
        f"(Timed out trying to connect to {stopped.address} after 2 s); nothing was trained")
    assert project.events() == []
    assert not project.model_dir.exists() or not any(project.model_dir.iterdir())
    assert not (project.state_dir / "running").exists() or not any((project.state_dir / "running").iterdir())
    assert {r["model_name"]: r["training_now"] for r in
            json.loads(project.cli("status", "--json").stdout)["models"]} == {"iris": False, "housing": False}

    train = project.run("train", "iris", env=ENV)
    assert train.returncode == 1 and "cannot reach the Dask scheduler" in train.stderr
    assert project.events() == []


def certificates(folder, name):
    """A throw-away CA `name` and a certificate with its key signed by it (for 127.0.0.1), as
    PEM files in `folder`: {"ca": ..., "cert": ..., "key": ...}."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def build(subject, issuer, key, signer, ca):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = build(ca_name, ca_name, ca_key, ca_key, True)
    cert = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key, ca_key, False)
    paths = {part: str(folder / f"{name}-{part}.pem") for part in ("ca", "cert", "key")}
    Path(paths["ca"]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths["cert"]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths["key"]).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    return paths


def test_tls_cluster_trains_and_a_wrong_certificate_is_one_line(project, tmp_path):
    """A scheduler and a worker that speak only mutual TLS: `executor.tls_*` trains on them; a
    client certificate from another CA is refused with one line, exit 1 and no record."""
    logs = tmp_path / "dask"
    logs.mkdir()
    good = certificates(tmp_path, "cluster")
    c = Cluster(logs, workers=1, tls=good)
    try:
        use_dask(project, c.address, tls_ca_file=good["ca"], tls_cert=good["cert"], tls_key=good["key"])
        result = project.run("train", "iris", env=ENV)
        assert result.returncode == 0, result.stderr
        [done] = successes(project)
        assert done["executor"] == "dask" and done["worker"].startswith("tls://127.0.0.1:")

        wrong = certificates(tmp_path, "stranger")
        use_dask(project, c.address, tls_ca_file=good["ca"], tls_cert=wrong["cert"], tls_key=wrong["key"],
                 connect_timeout_seconds=5)
        before = project.events()
        refused = project.run("train", "iris", "--force", env=ENV)  # the same data and config: only --force trains
    finally:
        c.stop()
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"Error: executor.address: cannot reach the Dask scheduler at {c.address} ("), line
    assert line.endswith("); nothing was trained"), line
    assert project.events() == before


def test_local_max_parallel_runs_fits_side_by_side(project, tmp_path):
    def run(max_parallel):
        trace, barrier = tmp_path / f"trace{max_parallel}", tmp_path / f"barrier{max_parallel}"
        trace.mkdir()
        barrier.mkdir()
        # Two processes: each waits for the other as long as a loaded host may need to start it
        # (met as soon as both run). One process: the first fit waits out 3 s alone.
        params = {"trace_dir": str(trace), "barrier_dir": str(barrier), "barrier_count": 2,
                  "barrier_seconds": 120 if max_parallel == 2 else 3}
        project.config["models"] = {f"m{i}": dict(IRIS, estimator=None, trainer="dask_helpers:slow_tree",
                                                  params=params) for i in range(2)}
        project.config["executor"] = {"type": "local", "max_parallel": max_parallel}
        project.write_config()
        for d in (project.state_dir, project.model_dir):
            if d.exists():
                shutil.rmtree(d)
        result = project.run("check", env=ENV)
        assert result.returncode == 0, result.stderr
        fits = [f.read_text().split() for f in trace.iterdir()]
        # max_parallel fit processes: side by side in two, one after the other in a shared one
        assert len(fits) == 2 and len({pid for _, _, pid, _ in fits}) == max_parallel
        assert {e["executor"] for e in successes(project)} == {"local"}
        return sorted(met for _, _, _, met in fits)

    assert run(2) == ["True", "True"], "both fits were running at the same time"
    assert run(1) == ["False", "True"], "the first fit waited alone"


def test_a_plain_check_never_imports_dask(project):
    del project.config["models"]["housing"]
    project.write_config()
    code = ("import sys\nfrom retrainctl.cli import main\n"
            f"try:\n    main(['--config', {str(project.config_path)!r}, 'check'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "print(sorted(m for m in ('dask', 'distributed', 'fsspec') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
    assert {e["executor"] for e in successes(project)} == {"local"}


@pytest.mark.parametrize("executor, message", [
    ({"type": "dask"}, "executor.address: is required with type: dask (e.g. tcp://scheduler:8786)"),
    ({"type": "dask", "address": "tcp://h:8786", "max_parallel": 2}, "executor.max_parallel: applies only to type: local"),
    ({"type": "local", "address": "tcp://h:8786"}, "executor.address: applies only to type: dask"),
    ({"type": "slurm"}, "executor.type: must be one of: local, dask, got 'slurm'"),
    ({"max_paralel": 2}, "executor.max_paralel: unknown key 'max_paralel'; did you mean 'max_parallel'?"),
    ({"max_parallel": 0}, "executor.max_parallel: must be >= 1, got 0"),
    ({"type": "dask", "address": "h:8786"}, "executor.address: must be a scheduler URL such as tcp://host:8786, got 'h:8786'"),
    ({"type": "dask", "address": "tls://h:8786", "tls_cert": "c.pem"}, "executor.tls_key: tls_cert and tls_key go together"),
])
def test_executor_config_errors(project, executor, message):
    assert project.config_error(executor=executor) == message


def test_data_path_map_and_fsspec_urls(project):
    from retrainctl.config.load import load_config
    from retrainctl.fit.task import run_task

    use_dask(project, "tcp://127.0.0.1:1", data_path_map={"data/raw": "file:///mnt/shared/raw"})
    cfg = load_config(str(project.config_path))
    assert cfg.executor.worker_path(str(project.data("iris"))) == "file:///mnt/shared/raw/iris.csv"
    assert cfg.executor.worker_path("/elsewhere/x.csv") == "/elsewhere/x.csv"

    spec = dataclasses.replace(cfg.model("iris").training_spec(), min_data_size=10)
    from retrainctl.data.fingerprint import compute

    url = "file://" + str(project.data("iris"))
    result = run_task(spec, url, compute(str(project.data("iris"))).hash)
    assert result.metadata["rows"] == 150 and result.metadata["fit_pid"] == os.getpid()
    from retrainctl.base.errors import DataError

    with pytest.raises(DataError, match="data file not found"):
        run_task(spec, url + ".missing", None)
