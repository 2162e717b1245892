"""Child processes under supervision (retrainctl/child.py): the Python API from a script without a
`__main__` guard, Ctrl-C at each moment a child is being started, a notifier's process tree."""
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tests.conftest import REPO, RETRAINCTL

ENV = {"PYTHONPATH": str(REPO)}


def running(pid):
    """Whether `pid` is a live process (a zombie has ended; only its parent has not looked yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tagged_processes(tag):
    """Pids of the live processes whose environment carries `tag` (children inherit it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                tagged = tag.encode() in fh.read().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if tagged and running(pid):
            found.append(int(pid))
    return found


def test_a_script_without_a_main_guard_trains_once(project, tmp_path):
    """The README's API example saved as a script, no `if __name__ == "__main__":`, with a live
    model over 64 KB: the fit process never re-runs the script; it trains once and exits 0."""
    project.set_model("iris", estimator="sklearn.ensemble.RandomForestClassifier",
                      params={"n_estimators": 100, "random_state": 0})
    assert project.run("train", "iris").returncode == 0
    assert (project.model_dir / "iris" / "current" / "model.joblib").stat().st_size > 64 * 1024
    side_effect = tmp_path / "ran"
    script = tmp_path / "retrain.py"
    script.write_text(textwrap.dedent("""\
        import os
        import sys

        from retrainctl import load_config

        from retrainctl import train

        with open(sys.argv[2], "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        print(train(load_config(sys.argv[1]), "iris", force=True).result)
        """))
    done = subprocess.run([sys.executable, str(script), str(project.config_path), str(side_effect)], cwd=tmp_path,
                          env=dict(os.environ, **ENV), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["promoted v2 (accuracy 0.9286)"]
    assert len(side_effect.read_text().splitlines()) == 1
    assert [e["status"] for e in project.history("iris")] == ["success", "success"]
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("point, mlflow", [
    ("fit_submitted", False),  # the controller, before the fit process starts
    ("child_spawned", False),  # the controller, the fit process just spawned, not yet told what to run
    ("child_started", False),  # the fit process starting up
    ("tracking_warming", True),  # the tracking process importing MLflow beside the fit
])
def test_ctrl_c_at_each_moment_stops_train_and_leaves_no_process(project, tmp_path, point, mlflow):
    """A SIGINT at `point` (sent by retrainctl/faults.py, as Ctrl-C would) stops `train` with exit
    130 well before its 60-second fit would end, and no process it started outlives it."""
    project.set_model("iris", estimator=None, trainer="tests.slowfit:fit", params={"sleep": 60})
    project.config["mlflow"] = {"enabled": mlflow}
    project.write_config()
    tag = f"RETRAINCTL_TEST_TAG={uuid.uuid4()}"
    env = dict(os.environ, **ENV, RETRAINCTL_FAULT=f"sigint:{point}")
    env.update([tag.split("=", 1)])
    started = time.monotonic()
    proc = subprocess.Popen([RETRAINCTL, "--config", str(project.config_path), "train", "iris"], cwd="/", env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert time.monotonic() - started < 50
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "Error: interrupted", err
    assert "Traceback" not in err, err
    assert tagged_processes(tag) == []


def test_ctrl_c_after_a_fit_process_was_started_ahead_of_the_fits_leaves_nothing(project):
    """A check starts a fit process (its imports) as soon as it has claimed a first model, while
    it decides the others. A Ctrl-C at that moment is exit 130 with no process left behind,
    nothing recorded and every training lock released: the next check trains both models."""
    tag = f"RETRAINCTL_TEST_TAG={uuid.uuid4()}"
    env = dict(os.environ, **ENV, RETRAINCTL_FAULT="sigint:prewarmed")
    env.update([tag.split("=", 1)])
    proc = subprocess.run([RETRAINCTL, "--config", str(project.config_path), "check"], cwd="/", env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines()[-1] == "Error: interrupted", proc.stderr
    assert "Traceback" not in proc.stderr
    assert tagged_processes(tag) == []
    assert project.events() == []
    again = project.run("check")
    assert again.returncode == 0, again.stderr
    assert sorted((e["model_name"], e["status"]) for e in project.history()) == [("housing", "success"),
                                                                                  ("iris", "success")]


def test_a_hanging_notifier_is_killed_with_what_it_started(project, tmp_path):
    """A notify.command shell that runs `sleep 120` is killed after its timeout, its sleep too."""
    pidfile = tmp_path / "sleep.pid"
    project.config["notify"] = {"command": ["sh", "-c", f"sleep 120 & echo $! > {pidfile}; wait"],
                                "timeout_seconds": 2}
    project.write_config()
    result = project.run("train", "iris")
    assert result.returncode == 0, result.stderr
    assert "retrainctl: WARNING: notify command sh timed out after 2s" in result.stderr.splitlines()
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5  # SIGKILL is sent; give the kernel a moment under load
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(pid)


# --- fit processes kept between two calls of the Python API (retrainctl/fit/kept.py) ---------------

def fit_pid(project, name):
    return json.loads((project.model_dir / name / "current" / "metadata.json").read_text())["fit_pid"]


def api_train(project, name):
    from retrainctl import load_config, train

    outcome = train(load_config(str(project.config_path)), name, force=True)
    assert outcome.result.startswith("promoted"), outcome.result
    return fit_pid(project, name)


def test_a_later_call_of_the_same_thread_fits_in_the_kept_process_until_it_expires(project, monkeypatch):
    """A second `train` from the same thread, in the same environment, fits in the first call's
    process (its imports done); with another environment variable, in a new one, and the old one
    is closed (this thread left its context). Unused for KEEP_SECONDS, a kept process is closed."""
    from retrainctl.fit import kept

    first = api_train(project, "iris")
    assert running(first)
    assert api_train(project, "iris") == first
    assert api_train(project, "housing") == first  # another model of the library: the same process
    monkeypatch.setenv("RETRAINCTL_TEST_CHANGED", "1")  # what a fit inherits changed: a new process
    other = api_train(project, "iris")
    assert other != first and not running(first) and running(other)
    assert kept.expire(time.monotonic() + kept.KEEP_SECONDS) == 0
    assert not running(other)


def test_a_process_that_ran_the_callers_code_or_served_another_thread_is_not_kept(project):
    """A `trainer` is the caller's code, which may change between calls: its process, which
    imported it, is closed. A process serves only the thread that started it (it dies with that
    thread)."""
    import threading

    from retrainctl.fit import kept

    project.set_model("iris", estimator=None, trainer="tests.slowfit:fit", params={})
    project.write_config()
    trained = api_train(project, "iris")
    assert not running(trained)
    assert api_train(project, "iris") != trained

    here = api_train(project, "housing")
    there = []
    worker = threading.Thread(target=lambda: there.append(api_train(project, "housing")))
    worker.start()
    worker.join()
    assert there and there[0] != here and running(here)
    assert api_train(project, "housing") == here
    kept.expire(time.monotonic() + kept.KEEP_SECONDS)


def test_a_process_asked_for_an_answer_nobody_took_is_not_kept(project):
    """`check irs` starts a fit process validating the config, then stops at the unknown name
    without taking its answer: that process must not serve the next command, which would read
    the stale answer as its fit's."""
    assert project.cli("check", "irs").exit_code == 2
    done = project.cli("check", "iris")
    assert done.exit_code == 0, done.output
    assert [e["status"] for e in project.history("iris")] == ["success"]


def test_a_forked_copy_of_the_caller_leaves_the_kept_processes_alone(project):
    """A service that forks workers after a call (gunicorn --preload): the copy's exit or its
    own calls must not close the parent's kept processes."""
    from retrainctl.fit import kept

    first = api_train(project, "iris")
    pid = os.fork()
    if pid == 0:  # the copy: what its exit would do
        code = 0
        try:
            kept.expire(float("inf"))
        except BaseException:
            code = 1
        os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert running(first)
    assert api_train(project, "iris") == first
    kept.expire(time.monotonic() + kept.KEEP_SECONDS)
