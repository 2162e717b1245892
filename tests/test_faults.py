"""Fault injection on real processes: concurrent runs, kill -9 at named points and mid-fit,
timeouts, memory limits, tampered model files. After each fault: `current` points at a complete,
checksum-valid model, every complete line of the log parses, and the next run recovers."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from retrainctl.commands.check import check as run_check
from retrainctl.commands.shell import Shell
from retrainctl.commands.status import status as run_status
from retrainctl.commands.train import train as run_train
from retrainctl.config.load import load_config
from retrainctl.core.records import Record
from tests.conftest import REPO, RETRAINCTL

ENV = {"PYTHONPATH": str(REPO)}


def assert_invariants(project, model="iris"):
    link = project.model_dir / model / "current"
    if link.is_symlink():
        folder = project.model_dir / model / os.readlink(link)
        meta = json.loads((folder / "metadata.json").read_text())
        assert hashlib.sha256((folder / "model.joblib").read_bytes()).hexdigest() == meta["sha256"]
    raw = (project.state_dir / "events.jsonl").read_bytes()
    complete = raw.split(b"\n")[:-1]  # everything before the last newline
    for line in complete:
        if line.strip():
            json.loads(line)


def statuses(project, model="iris"):
    return [(e["trigger_type"], e["status"], e.get("error_type")) for e in project.history(model)]


def test_six_concurrent_checks_train_each_model_once(project, _trained_template):
    # The config's validation as the trained template's first check remembered it (the same bytes):
    # the six runs race for the models' locks, not through six copies of its scikit-learn imports.
    assert project.config_path.read_bytes() == _trained_template.config_path.read_bytes()
    project.state_dir.mkdir(parents=True)
    shutil.copy(_trained_template.state_dir / "validated.json", project.state_dir)
    procs = [subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), "check"], cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0] * 6, [r[1] for r in results]
    for model in ("iris", "housing"):
        assert statuses(project, model) == [("initial", "success", None)]
    assert project.current_version("iris") == 1 and project.current_version("housing") == 1
    skipped = sum(out.count("being trained by another process") + out.count("already handled by another process")
                  for out, _, _ in results)
    assert skipped >= 1  # at least one run really did meet another


@pytest.mark.parametrize("point", ["before_save", "after_save", "after_promote", "mid_append"])
def test_kill_at_each_point_then_recover(trained, point):
    project = trained  # iris v1 from its `initial` training; the crash and the recovery are this test's
    project.set_model("iris", retry_backoff_seconds=0)
    project.append_rows("iris", 10)
    crashed = project.run("check", "iris", env={"RETRAINCTL_FAULT": point})
    assert crashed.returncode == -signal.SIGKILL
    assert_invariants(project)
    versions = sorted(os.listdir(project.model_dir / "iris"))
    if point in ("before_save",):
        assert versions == ["current", "v1"] and project.current_version("iris") == 1
    if point == "after_save":
        assert project.current_version("iris") == 1 and "v2" in versions

    after = project.run("check", "iris")
    assert after.returncode == 0, after.stderr
    assert_invariants(project)
    got = statuses(project)
    if point in ("after_promote", "mid_append"):
        # v2 went live; only its record was lost: recovered as a success, nothing retrained
        assert got == [("initial", "success", None), ("data_change", "success", None)]
        assert "recovered after a crash" in project.history()[-1]["description"]
        assert project.current_version("iris") == 2
    else:
        assert got == [("initial", "success", None), ("data_change", "failure", "interrupted"),
                       ("data_change", "success", None)]
        assert project.current_version("iris") == (3 if point == "after_save" else 2)
    assert not [f for f in os.listdir(project.model_dir / "iris") if f.startswith(".tmp")]


def test_kill_dash_9_mid_fit(trained, tmp_path):
    project = trained  # iris v1 from its `initial` training
    project.set_model("iris", retry_backoff_seconds=0)
    marker = tmp_path / "child.pid"
    project.set_model("iris", estimator=None, trainer="tests.slowfit:fit", params={"sleep": 60, "marker": str(marker)})
    project.append_rows("iris", 10)
    env = dict(os.environ, **ENV)
    proc = subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), "check", "iris"], cwd="/", env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    child = int(marker.read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(50):  # the fit process dies with its parent (PR_SET_PDEATHSIG)
        if not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the fit process outlived the killed controller")
    assert_invariants(project)
    assert project.current_version("iris") == 1

    project.set_model("iris", params={"sleep": 0})
    after = project.cli("check", "iris")  # in-process: the edited config's validation imports are paid
    assert after.exit_code == 0, after.stderr
    assert statuses(project) == [("initial", "success", None), ("data_change", "failure", "interrupted"),
                                 ("data_change", "success", None)]


def failed_train(project, trainer, params, status="failure", **policy):
    """`train iris` with a test trainer from tests/slowfit.py: exit 1; the record it left. In-process:
    the limits are enforced in the fit process either way, and the new config's validation costs a
    subprocess the scikit-learn imports."""
    project.set_model("iris", estimator=None, trainer=f"tests.slowfit:{trainer}", params=params, **policy)
    r = project.cli("train", "iris")
    assert r.exit_code == 1, r.stderr
    last = project.history()[-1]
    assert last["status"] == status
    return last


def test_timeout_is_a_recorded_failure(project):
    started = time.monotonic()
    last = failed_train(project, "fit", {"sleep": 60}, train_timeout_seconds=1)
    assert time.monotonic() - started < 30
    assert last["error_type"] == "timeout"
    assert last["error"] == "fit did not finish within train_timeout_seconds=1"


def test_memory_limit_is_a_recorded_failure(project):
    assert failed_train(project, "hog", {"megabytes": 8000}, max_memory_mb=2000)["error_type"] == "memory"


@pytest.mark.parametrize("exc", [
    ImportError("libopenblas.so: failed to map segment from shared object"),
    OSError(12, "Cannot allocate memory"),
])
def test_what_a_memory_limit_looks_like_elsewhere_is_a_memory_failure(exc):
    from retrainctl.fit.executors import classify

    error_type, text = classify(exc, 400)
    assert error_type == "memory" and text.startswith("fit exceeded max_memory_mb=400 (")
    assert classify(ImportError("No module named 'nope'"), 400)[0] == "training_error"


def test_a_fit_that_exits_under_a_memory_limit_says_the_limit_may_be_why(project):
    last = failed_train(project, "exit_hard", {"code": 1}, max_memory_mb=2000)
    assert last["error_type"] == "crashed"
    assert last["error"] == ("fit process exited with code 1 before returning a model (with max_memory_mb=2000: "
                             "native code that cannot allocate often exits like this; try a higher limit)")


def test_flipped_byte_in_current_model(trained):
    project = trained  # iris v1 is current
    path = project.model_dir / "iris" / "current" / "model.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    st = project.run("status", "--json", "iris")
    row = json.loads(st.stdout)["models"][0]
    assert "checksum does not match metadata.json" in row["model_integrity"]

    assert project.run("train", "iris").returncode == 0
    last = project.history()[-1]
    assert last["status"] == "success" and "current v1 failed its checksum" in last["description"]
    assert project.current_version("iris") == 2

    rb = project.run("rollback", "iris", "--to", "1")
    assert rb.returncode == 1
    assert "model.joblib: checksum does not match metadata.json" in rb.stderr and "refusing to load it" in rb.stderr
    assert project.current_version("iris") == 2


def test_backoff_schedule_with_an_injected_clock(project):
    project.set_model("iris", target="NoSuchColumn", max_retries=3, retry_backoff_seconds=100)
    project.config["models"].pop("housing")
    project.write_config()
    cfg = load_config(str(project.config_path))
    t0 = time.time()

    def at(offset):
        return run_check(cfg, clock=lambda: t0 + offset)

    def actions(report):
        return report.outcomes[0].action

    assert at(0).exit_code == 1                      # failure 1
    assert actions(at(50)) == "backoff"              # retry after 100 s
    assert at(101).exit_code == 1                    # failure 2
    assert actions(at(250)) == "backoff"             # next retry after 200 s more
    assert at(302).exit_code == 1                    # failure 3 = max_retries
    final = at(10_000)
    assert actions(final) == "gave_up" and final.exit_code == 0
    assert [e["error_type"] for e in project.history()] == ["data_error"] * 3
    st = run_status(cfg, clock=lambda: t0 + 10_000)[0]
    assert st.failures_in_row == 3
    project.set_model("iris", target="Species")
    assert run_train(load_config(str(project.config_path)), "iris").record["status"] == "success"


def test_torn_line_by_hand_then_normal_runs(trained):
    project = trained  # the log holds the first check's records of iris and housing
    log = project.state_dir / "events.jsonl"
    before = log.read_text().splitlines()
    with open(log, "a") as fh:
        fh.write('{"model_name": "iris", "stat')
    r = project.run("train", "--force", "iris")
    assert r.returncode == 0
    assert "skipped a torn last line" in r.stderr and "cut off a torn last line (28 bytes)" in r.stderr
    lines = log.read_text().splitlines()
    assert lines[:len(before)] == before  # the torn part is gone, nothing before it touched
    events = [json.loads(line) for line in lines]
    assert [e["status"] for e in events[len(before):]] == ["started", "success"]
    assert [e["status"] for e in events if e["model_name"] == "iris"] == ["started", "success", "started", "success"]


def test_state_dir_that_is_a_file(project):
    project.root.joinpath("var").mkdir()
    project.state_dir.write_text("not a folder")
    r = project.run("check")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"Error: {project.state_dir}: cannot create the state directory: File exists"


def test_data_path_that_is_a_directory_of_files_that_disagree(project):
    """A directory is a data set (docs/data.md); one whose files have other columns is a data error
    naming the file that disagrees, and nothing is trained."""
    project.set_model("iris", data_path="data/raw")
    r = project.run("check", "iris")
    assert r.returncode == 1
    [line] = [x for x in r.stderr.splitlines() if "ERROR" in x]
    assert "is not in the other files" in line and f"{project.root / 'data' / 'raw' / 'housing.csv'}" in line
    assert project.current_version("iris") is None


def test_files_have_no_world_access(project):
    assert project.run("check", "iris").returncode == 0
    for folder in (project.state_dir, project.model_dir):
        for root, dirs, files in os.walk(folder):
            for name in files + dirs:
                mode = os.lstat(os.path.join(root, name)).st_mode
                if not os.path.islink(os.path.join(root, name)):
                    assert mode & 0o007 == 0, (os.path.join(root, name), oct(mode))


def decided(project, name="iris"):
    """A Shell, and the decision it takes for a model on a fresh state: (shell, model, decision, obs)."""
    from retrainctl.core.fold import ModelState
    from retrainctl.core.decide import decide

    cfg = load_config(str(project.config_path))
    shell = Shell(cfg)
    shell.log.ensure_dir()
    model = cfg.models[name]
    obs = shell.observer.observe(model, ModelState())
    return shell, model, decide(model.policy, obs), obs


def test_data_rewritten_between_decision_and_fit_is_never_trained_on(project):
    """The fit hashes the bytes it parses; a file rewritten after the decision is skipped."""
    r, model, decision, obs = decided(project)
    path = project.data("iris")  # the writer strikes after the decision: a rewrite, not an append
    path.write_text(path.read_text().replace("5.1,", "5.2,", 1))
    out = r.attempts.run_one(model, decision, obs)
    assert out.record["status"] == "skipped" and out.record["error_type"] == "data_changed"
    assert not out.failed and project.current_version("iris") is None
    assert project.cli("check", "iris").exit_code == 0
    assert [e["status"] for e in project.history()] == ["skipped", "success"]


def test_an_error_after_the_fit_closes_that_attempt_and_spares_the_others(project):
    """A bug between fit and record must not leave `started` records open or stop other models."""
    r, model, decision, obs = decided(project)
    from retrainctl.retrain.attempt import Claim
    from retrainctl.core.records import FitResult

    job = r.attempts.prepare(Claim(model, decision, obs))
    broken = FitResult(model_bytes=b"", score=0.5, data_hash=obs.data_hash, metadata=None)  # no metadata
    out = r.attempts._finish_safely(job, broken, None)
    assert out.failed and out.record["error_type"] == "internal" and out.record["error"].startswith("AttributeError")
    assert r.recorder.states()["iris"].open_attempts == {}
    after = project.cli("check", "--json")  # the others go on; iris waits out its retry backoff
    assert after.exit_code == 0
    assert [(m["model_name"], m["action"]) for m in json.loads(after.stdout)["models"]] == [
        ("iris", "backoff"), ("housing", "train")]
    assert [(e["model_name"], e["status"]) for e in project.history()] == [("iris", "failure"), ("housing", "success")]


def test_retry_right_after_recording_an_interrupted_attempt(project):
    """The decision after recovery uses the time after the failure was recorded: with no backoff
    the model is retried in the same run, even when the clock crosses a second meanwhile."""
    import blake3

    from retrainctl.state.log import StateLog

    project.set_model("iris", retry_backoff_seconds=0)
    project.config["models"].pop("housing")
    project.write_config()
    StateLog(str(project.state_dir)).append(Record.from_dict({
        "model_name": "iris", "trigger_type": "initial", "status": "started", "attempt_id": "dead",
        "trigger_time": "2026-01-01T00:00:00+00:00", "pid": 1, "host": "gone",
        "data_hash": blake3.blake3(project.data("iris").read_bytes()).hexdigest()}))
    ticks = iter(range(10_000))
    t0 = float(int(time.time())) + 0.9  # the next tick crosses into a new second

    report = run_check(load_config(str(project.config_path)), clock=lambda: t0 + 0.5 * next(ticks))
    assert report.exit_code == 0
    assert statuses(project) == [("initial", "failure", "interrupted"), ("initial", "success", None)]


def test_claim_closes_a_dead_attempt_before_training(project):
    """A run whose recovery found the lock busy for a moment (another process probing it) may
    still win the lock for the fit: the dead attempt is closed first, then decided after."""
    import blake3

    from retrainctl.state.log import StateLog

    project.set_model("iris", retry_backoff_seconds=0)
    StateLog(str(project.state_dir)).append(Record.from_dict({
        "model_name": "iris", "trigger_type": "initial", "status": "started", "attempt_id": "dead",
        "trigger_time": "2026-01-01T00:00:00+00:00", "pid": 1, "host": "gone",
        "data_hash": blake3.blake3(project.data("iris").read_bytes()).hexdigest()}))
    shell, model, _, obs = decided(project)  # observed while the dead attempt was still open
    claim = shell.attempts.claim(model, obs)
    try:
        assert statuses(project) == [("initial", "failure", "interrupted")]
        assert claim.decision.trigger_type == "initial" and claim.obs.failures_in_row == 1
    finally:
        claim.lock.release()

    out = run_train(load_config(str(project.config_path)), "iris")
    assert out.record["status"] == "success"
    assert statuses(project) == [("initial", "failure", "interrupted"), ("manual", "success", None)]


def concurrently(project, *args, n=8):
    procs = [subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), *args], cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    return [p.communicate(timeout=300) + (p.returncode,) for p in procs]


def test_concurrent_runs_record_one_incident_once(trained):
    """Records that are written once per cause (an unreadable data file, too few rows, a pause)
    are decided under the log's lock: eight runs meeting the same cause write one record."""
    # iris v1 from its `initial` training. The config stays the one that was validated, so that no
    # run pays the ML imports of validating a new one; housing, untouched, has nothing to do.
    project = trained
    project.data("iris").unlink()
    assert [code for _, _, code in concurrently(project, "check")] == [1] * 8
    assert statuses(project) == [("initial", "success", None), ("data_change", "failure", "data_error")]

    project.data("iris").write_text("Id,SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm,Species\n"
                                    "1,5.1,3.5,1.4,0.2,Iris-setosa\n")
    assert [code for _, _, code in concurrently(project, "check")] == [0] * 8
    assert statuses(project)[2:] == [("data_change", "skipped", "too_few_rows")]

    results = concurrently(project, "pause", "iris")
    assert [code for _, _, code in results] == [0] * 8
    assert [e["status"] for e in project.history("iris")].count("paused") == 1
    assert sum("already paused" in out for out, _, _ in results) == 7


def test_ctrl_c_mid_fit_is_one_line_and_leaves_nothing_running(trained, tmp_path):
    """Ctrl-C signals the whole process group: exit 130 with `Error: interrupted`, no traceback
    from the controller or the fit process, the fit process gone, and the next run records the
    attempt as interrupted."""
    project = trained  # iris v1 from its `initial` training
    project.set_model("iris", retry_backoff_seconds=0)
    marker = tmp_path / "child.pid"
    project.set_model("iris", estimator=None, trainer="tests.slowfit:fit", params={"sleep": 60, "marker": str(marker)})
    env = dict(os.environ, **ENV)
    proc = subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), "train", "iris"], cwd="/", env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    child = int(marker.read_text())
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10  # not the fit's 60 s
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "Error: interrupted"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split()[2] == "Z"

    project.set_model("iris", params={"sleep": 0})
    after = project.cli("check", "iris")
    assert after.exit_code == 0, after.stderr
    assert statuses(project)[:2] == [("initial", "success", None), ("manual", "failure", "interrupted")]


def test_sigint_to_the_controller_alone_stops_its_fit(project, tmp_path):
    """`kill -INT <pid>` reaches only the controller: it kills its fit process rather than
    waiting for the fit to end."""
    marker = tmp_path / "child.pid"
    project.set_model("iris", estimator=None, trainer="tests.slowfit:fit", params={"sleep": 60, "marker": str(marker)})
    env = dict(os.environ, **ENV)
    proc = subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), "train", "iris"], cwd="/", env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.splitlines()[-1] == "Error: interrupted", err


def test_failures_in_a_row_count_for_the_data_they_happened_on(trained):
    """An unreadable data file is a failure; once the file is back (and the model is up to date
    with it), status and the consecutive-failures gauge read 0 again, so the alert clears."""
    from retrainctl.publish import metrics

    # iris v1 from its `initial` training; housing, untouched, has nothing to do (the config stays
    # the one already validated, so no run pays the ML imports of validating another)
    project = trained
    saved = project.data("iris").read_bytes()
    project.data("iris").unlink()
    assert project.run("check").returncode == 1
    cfg = load_config(str(project.config_path))
    assert run_status(cfg, ["iris"])[0].failures_in_row == 1
    project.data("iris").write_bytes(saved)
    assert project.run("check").returncode == 0
    assert run_status(cfg, ["iris"])[0].failures_in_row == 0
    assert 'model_retraining_consecutive_failures{model_name="iris"} 0.0' in metrics.exposition(
        metrics.build_registry(cfg)).decode()
