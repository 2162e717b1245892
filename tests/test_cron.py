"""The shipped cron example: its job line, run the way cron runs it (bare environment, in $HOME),
does a real check; its output reaches MAILTO only when something went wrong."""
import re
import shlex
import subprocess

from conftest import REPO, RETRAINCTL

CRON_FILE = REPO / "etc" / "cron.d" / "retrainctl"
INSTALLED_COMMAND = "/opt/retrainctl/bin/retrainctl"
INSTALLED_CONFIG = "/etc/retrainctl/retrainctl.yaml"
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def parse_cron_file(text):
    """(environment assignments, [(schedule, user, command)]) of a /etc/cron.d file."""
    env, jobs = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assignment = ENV_LINE.match(line)
        if assignment:
            env[assignment[1]] = assignment[2]
        else:
            fields = line.split(None, 6)
            assert len(fields) == 7, f"a job line needs 5 time fields, a user and a command: {line!r}"
            jobs.append((" ".join(fields[:5]), fields[5], fields[6]))
    return env, jobs


def test_cron_file_names_everything_cron_does_not_provide():
    env, jobs = parse_cron_file(CRON_FILE.read_text())
    assert set(env) == {"SHELL", "PATH", "MAILTO"}
    assert env["SHELL"] == "/bin/sh" and "/usr/bin" in env["PATH"].split(":")
    assert jobs == [("*/5 * * * *", "retrainctl",
                     f"{INSTALLED_COMMAND} --config {INSTALLED_CONFIG} -q check >/dev/null")]
    assert CRON_FILE.read_text().endswith("\n"), "cron ignores a last line without a newline"


def run_like_cron(project, home, command):
    """Run a cron.d command the way cron does: only HOME, LOGNAME, SHELL and the file's variables,
    in the user's home directory, through SHELL -c."""
    env, _ = parse_cron_file(CRON_FILE.read_text())
    command = command.replace(INSTALLED_COMMAND, shlex.quote(RETRAINCTL))
    command = command.replace(INSTALLED_CONFIG, shlex.quote(str(project.config_path)))
    bare = {"HOME": str(home), "LOGNAME": "retrainctl", **env}
    argv = ["env", "-i", *(f"{k}={v}" for k, v in bare.items()), env["SHELL"], "-c", command]
    return subprocess.run(argv, cwd=home, capture_output=True, text=True, timeout=300)


def test_cron_line_does_a_real_check_under_a_bare_environment(project, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (_, _, command), = parse_cron_file(CRON_FILE.read_text())[1]

    first = run_like_cron(project, home, command)
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    assert [(e["model_name"], e["trigger_type"], e["status"]) for e in project.history()] == [
        ("iris", "initial", "success"), ("housing", "initial", "success")]
    assert project.current_version("iris") == 1 and project.current_version("housing") == 1
    assert list(home.iterdir()) == [], "the job wrote into the working directory"

    second = run_like_cron(project, home, command)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert len(project.history()) == 2

    project.data("housing").unlink()
    broken = run_like_cron(project, home, command)
    assert broken.returncode == 1
    assert str(project.data("housing")) in broken.stderr, "cron mails stderr: it must say what failed"
    assert broken.stdout == ""
