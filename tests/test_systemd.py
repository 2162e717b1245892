"""The shipped systemd units: they verify once installed, their hardening (one drop-in both services
share) rates an exposure of at most 2.0, and what it forbids is nothing a real check (training
included) needs."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, RETRAINCTL

UNIT_SOURCES = REPO / "systemd"
SERVICES = ["retrainctl-check.service", "retrainctl-train@.service", "retrainctl-notify-failure@.service"]
NOTIFY_FAILURE = "retrainctl-notify-failure@retrainctl-check.service.service"
HARDENING = UNIT_SOURCES / "retrainctl-hardening.conf"
UNITS = SERVICES + ["retrainctl-check.timer"]
INSTALLED_UNITS = "etc/systemd/system"
MAX_EXPOSURE = 2.0
INSTALLED_STATE = "/var/lib/retrainctl/state"
INSTALLED_CACHE = "/var/cache/retrainctl"
# What systemd gives a system service when the unit sets no PATH.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def analyze(*args):
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=120)


def unit_settings(path):
    """[(section, key, value)] of a unit file, repeated keys kept in order."""
    section, out = None, []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def service_settings(unit_path):
    """The unit's settings followed by those of its drop-ins (`<unit>.d/*.conf`, in name order), the
    order in which systemd applies them."""
    drop_ins = sorted(unit_path.parent.joinpath(unit_path.name + ".d").glob("*.conf"))
    return [entry for path in (unit_path, *drop_ins) for entry in unit_settings(path)]


def setting(path, key):
    return [v for _, k, v in service_settings(path) if k == key]


def shipped_setting(service, key):
    """A setting of a shipped service as installed: the unit file, then the shared hardening drop-in."""
    return [v for _, k, v in unit_settings(UNIT_SOURCES / service) + unit_settings(HARDENING) if k == key]


def exposure(*args):
    out = analyze("security", "--offline=true", "--no-pager", *map(str, args))
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert out.returncode == 0 and found, out.stdout + out.stderr
    return float(found[1])


def verify(root, *units):
    return analyze("verify", f"--root={root}", *units)


def test_installed_units_verify_with_their_exec_paths(installed):
    done = verify(installed, "retrainctl-check.service", "retrainctl-check.timer", "retrainctl-train@iris.service",
                  NOTIFY_FAILURE)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    for service in SERVICES:
        exec_start = setting(installed / INSTALLED_UNITS / service, "ExecStart")
        assert len(exec_start) == 1 and exec_start[0].startswith("/opt/retrainctl/bin/retrainctl --config "
                                                                  "/etc/retrainctl/retrainctl.yaml ")
        assert os.access(installed / "opt/retrainctl/bin/retrainctl", os.X_OK)


def test_verify_fails_when_the_exec_path_is_missing(installed, tmp_path):
    """The check above can fail: the same units in a root without the program do not verify."""
    shutil.copytree(installed / "usr", tmp_path / "usr", symlinks=True)
    shutil.copytree(installed / INSTALLED_UNITS, tmp_path / INSTALLED_UNITS, symlinks=True)
    done = verify(tmp_path, "retrainctl-check.service")
    assert done.returncode != 0
    assert "Command /opt/retrainctl/bin/retrainctl is not executable" in done.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_exposure_of_every_service_is_at_most_2(service, installed):
    """Rated as installed, so that systemd-analyze reads the unit with its hardening drop-in; the
    same unit file alone rates far worse, which shows the drop-in is what counts."""
    unit = service.replace("@.", "@iris.")
    score = exposure(f"--root={installed}", unit)
    assert score <= MAX_EXPOSURE
    assert exposure(UNIT_SOURCES / service) > 9.0, "the unit file alone has no hardening of its own"
    assert f"exposure {score:.1f}" in (REPO / "docs" / "operations.md").read_text(), "the docs state the score"
    assert f"exposure {score:.1f}" in (UNIT_SOURCES / "README.md").read_text()


def test_services_share_their_hardening_drop_in(installed):
    """Each unit file says only what it runs; everything else is the one drop-in, installed for both."""
    for service in SERVICES:
        own = {(section, key) for section, key, _ in unit_settings(UNIT_SOURCES / service) if section == "Service"}
        assert own == {("Service", "Type"), ("Service", "ExecStart")}, service
        drop_in = installed / INSTALLED_UNITS / f"{service}.d" / "hardening.conf"
        assert drop_in.read_text() == HARDENING.read_text()
    assert {section for section, _, _ in unit_settings(HARDENING)} == {"Service"}


def test_a_failed_check_starts_the_failure_hook_with_its_own_settings(installed):
    """retrainctl-check.service names the hook in OnFailure=; the hook's own drop-in, applied
    after the shared one, keeps the journal's group and a short timeout."""
    check = UNIT_SOURCES / "retrainctl-check.service"
    assert [(s, v) for s, k, v in unit_settings(check) if k == "OnFailure"] == [
        ("Unit", "retrainctl-notify-failure@%n.service")]
    hook = installed / INSTALLED_UNITS / "retrainctl-notify-failure@.service"
    assert sorted(p.name for p in hook.parent.joinpath(hook.name + ".d").iterdir()) == [
        "hardening.conf", "notify-failure.conf"]
    last = {key: setting(hook, key)[-1] for key in ("PrivateUsers", "TimeoutStartSec", "SupplementaryGroups",
                                                    "User", "ProtectSystem")}
    assert last == {"PrivateUsers": "no", "TimeoutStartSec": "2min", "SupplementaryGroups": "systemd-journal",
                    "User": "retrainctl", "ProtectSystem": "strict"}
    assert setting(hook, "ExecStart") == ["/opt/retrainctl/bin/retrainctl --config /etc/retrainctl/retrainctl.yaml "
                                          "notify-failure %i"]


@pytest.mark.parametrize("service", SERVICES[:2])
def test_services_are_hardened_oneshots(service):
    expected = {
        "Type": ["oneshot"], "User": ["retrainctl"], "NoNewPrivileges": ["yes"], "UMask": ["0027"],
        "ProtectSystem": ["strict"], "StateDirectory": ["retrainctl/state retrainctl/models"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"], "CapabilityBoundingSet": [""],
        "MemoryMax": ["2G"], "CPUQuota": ["200%"], "TimeoutStartSec": ["2h"],
    }
    assert {key: shipped_setting(service, key) for key in expected} == expected


def test_timer_runs_check_every_5_minutes_and_catches_up():
    path = UNIT_SOURCES / "retrainctl-check.timer"
    assert setting(path, "Unit") == ["retrainctl-check.service"]
    assert setting(path, "Persistent") == ["true"]
    assert setting(path, "RandomizedDelaySec") == ["60"]
    assert setting(path, "WantedBy") == ["timers.target"]
    calendar, = setting(path, "OnCalendar")
    done = analyze("calendar", "--iterations=3", "--base-time=2030-01-01 00:01:00 UTC", calendar)
    assert done.returncode == 0, done.stderr
    assert "Normalized form: *-*-* *:00/5:00" in done.stdout
    assert re.findall(r"\d\d:\d\d:\d\d UTC", done.stdout) == ["00:05:00 UTC", "00:10:00 UTC", "00:15:00 UTC"]


def test_train_template_trains_the_instance():
    exec_start, = shipped_setting("retrainctl-train@.service", "ExecStart")
    assert exec_start.endswith(' train %i --reason "systemctl start %n"')


def syscall_groups():
    """systemd's syscall groups (`@system-service`, ...) as {name: members}, members possibly groups."""
    out = analyze("syscall-filter", "--no-pager")
    assert out.returncode == 0, out.stderr
    groups, current = {}, None
    for line in out.stdout.splitlines():
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if not line.startswith(" "):
            current = groups.setdefault(name, set())
        else:
            current.add(name)
    return groups


def allowed_syscalls(unit_path):
    """The allow list SystemCallFilter= lines build: the first adds, `~` lines take away."""
    groups = syscall_groups()

    def expand(name):
        if not name.startswith("@"):
            return {name}
        return set().union(*(expand(member) for member in groups[name]))

    filters = setting(unit_path, "SystemCallFilter")
    assert filters and not filters[0].startswith("~"), "an allow list comes first"
    allowed = set()
    for value in filters:
        names = set().union(*(expand(name) for name in value.lstrip("~").split()))
        allowed = allowed - names if value.startswith("~") else allowed | names
    return allowed


STRACE_LINE = re.compile(r"^\d+\s+(\w+)\((.*)$")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT")
PATH_CALLS = {"mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat", "symlink",
              "symlinkat", "link", "linkat", "rmdir", "chmod", "fchmodat", "truncate"}


def written_paths(name, args, cwd):
    """The paths a traced call writes to (strace -y shows a dirfd's folder as 5</dir>)."""
    if name in ("open", "openat", "creat"):
        if name != "creat" and not any(flag in args.split(", ")[1 if name == "open" else 2] for flag in WRITE_FLAGS):
            return []
    elif name not in PATH_CALLS:
        return []
    paths = []
    for base, path in re.findall(r'(?:(?:\d+<([^>]*)>|AT_FDCWD), )?"([^"]*)"', args):
        paths.append(os.path.normpath(os.path.join(base or cwd, path)))
    return paths


def test_a_real_check_needs_nothing_the_service_forbids(installed, project, tmp_path):
    """Run the installed program the way retrainctl-check.service does (its environment, working
    directory and umask), training included, under strace: every syscall is in the unit's
    SystemCallFilter, no memory is mapped writable and executable (MemoryDenyWriteExecute),
    sockets use allowed families, and files are written only where the unit allows it."""
    unit = installed / INSTALLED_UNITS / "retrainctl-check.service"
    state, models, cache = project.state_dir, project.model_dir, tmp_path / "cache"
    state.mkdir(parents=True)
    env = {"PATH": SERVICE_PATH, "LANG": "C.UTF-8"}
    for assignment in " ".join(setting(unit, "Environment")).split():
        key, _, value = assignment.partition("=")
        env[key] = value.replace(INSTALLED_STATE, str(state)).replace(INSTALLED_CACHE, str(cache))
    assert setting(unit, "WorkingDirectory") == [INSTALLED_STATE]
    trace = tmp_path / "strace.log"
    python = installed / "opt/retrainctl/venv/bin/python"
    done = subprocess.run(["strace", "-f", "-qq", "-y", "-s", "4096", "-o", str(trace),
                           str(python), "-m", "retrainctl", "--config", str(project.config_path), "check"],
                          cwd=state, env=env, umask=0o027, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [(e["model_name"], e["status"]) for e in project.history()] == [("iris", "success"), ("housing", "success")]

    calls = [m.groups() for m in map(STRACE_LINE.match, trace.read_text().splitlines()) if m]
    used = {name for name, _ in calls}
    assert any("retrainctl.fit.child" in args for name, args in calls if name == "execve"), "the training child is traced"
    assert used - allowed_syscalls(unit) == set()
    wx = [args for name, args in calls if (name in ("mmap", "mprotect", "pkey_mprotect") and "PROT_EXEC" in args
                                           and (name != "mmap" or "PROT_WRITE" in args))]
    assert wx == []
    families = set(setting(unit, "RestrictAddressFamilies")[0].split())
    assert {args.split(",")[0] for name, args in calls if name in ("socket", "socketpair")} <= families
    writable = [str(state), str(models), "/tmp", "/dev/shm", "/dev/null"]
    written = {p for name, args in calls for p in written_paths(name, args, str(state))}
    assert any(p.startswith(str(models)) for p in written), "the check wrote the models"
    assert sorted(p for p in written if not any(p == w or p.startswith(w + "/") for w in writable)) == []


def test_logs_carry_syslog_priorities_only_when_journald_reads_them(project, tmp_path):
    """Under systemd, stderr is the journal ($JOURNAL_STREAM names it): every line starts with its
    priority, which journald strips and keeps. Elsewhere the lines are plain, with no colour."""
    def run(*args, journal):
        log = tmp_path / "stderr.log"
        with open(log, "w") as fh:
            st = os.fstat(fh.fileno())
            env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}" if journal else ""}
            env.pop("RETRAINCTL_CONFIG", None)
            subprocess.run([RETRAINCTL, "--config", str(project.config_path), *args], stdout=subprocess.DEVNULL,
                           stderr=fh, env=env, cwd="/", timeout=300, check=False)
        return log.read_text().splitlines()

    journal = run("check", journal=True)
    assert journal[0] == "<6>retrainctl: INFO: iris: training (no current model)"
    assert all(line.startswith("<6>retrainctl: INFO: ") for line in journal), journal

    project.data("housing").unlink()
    as_json = run("--log-format", "json", "check", journal=True)
    assert as_json[0].startswith("<3>{")
    assert json.loads(as_json[0][3:])["level"] == "error"

    plain = run("check", journal=False)
    assert plain[0].startswith("retrainctl: ERROR: ") and str(project.data("housing")) in plain[0]
    assert not any("\x1b[" in line for line in journal + as_json + plain)
