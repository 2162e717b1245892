"""`make install` / `make uninstall` into a temporary DESTDIR: the venv, the config (never
overwritten), the demo data and the units; uninstall keeps config, data, state and models."""
import os
import subprocess

import yaml

from conftest import REPO, copy_install
from retrainctl import __version__

PREFIX = "opt/retrainctl"
CONFIG = "etc/retrainctl/retrainctl.yaml"
VAR = "var/lib/retrainctl"
UNITS = "etc/systemd/system"
DROP_INS = [f"{UNITS}/retrainctl-check.service.d/hardening.conf", f"{UNITS}/retrainctl-train@.service.d/hardening.conf",
            f"{UNITS}/retrainctl-notify-failure@.service.d/hardening.conf"]
NOTIFY_DROP_IN = f"{UNITS}/retrainctl-notify-failure@.service.d/notify-failure.conf"
OURS = [f"{UNITS}/retrainctl-check.service", f"{UNITS}/retrainctl-check.timer", f"{UNITS}/retrainctl-train@.service",
        f"{UNITS}/retrainctl-notify-failure@.service", *DROP_INS, NOTIFY_DROP_IN, "etc/sysusers.d/retrainctl.conf", f"{PREFIX}/bin/retrainctl", f"{PREFIX}/venv/bin/python"]


def make(*args, destdir):
    done = subprocess.run(["make", "-C", str(REPO), *args, f"DESTDIR={destdir}", "INSTALL_PIP_FLAGS=--no-compile"], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def test_installed_config_passes_retrainctl_config(installed):
    python = installed / PREFIX / "venv/bin/python"
    done = subprocess.run([str(python), "-m", "retrainctl", "--config", str(installed / CONFIG), "config"],
                          capture_output=True, text=True, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr
    effective = yaml.safe_load(done.stdout)
    assert (effective["base_dir"], effective["state_dir"], effective["model_dir"]) == (
        "/var/lib/retrainctl", "/var/lib/retrainctl/state", "/var/lib/retrainctl/models")
    assert {name: m["data_path"] for name, m in effective["models"].items()} == {
        "iris": "/var/lib/retrainctl/data/raw/iris.csv", "housing": "/var/lib/retrainctl/data/raw/housing.csv"}
    for name in ("iris", "housing"):
        assert (installed / VAR / "data/raw" / f"{name}.csv").read_bytes() == (REPO / "data/raw" / f"{name}.csv").read_bytes()
    assert (installed / CONFIG).read_text() == (REPO / "etc/retrainctl.installed.yaml").read_text()


def test_installed_config_has_the_default_models():
    installed_models = yaml.safe_load((REPO / "etc/retrainctl.installed.yaml").read_text())["models"]
    assert installed_models == yaml.safe_load((REPO / "etc/retrainctl.yaml").read_text())["models"]


def test_installed_tree_points_at_the_final_prefix(installed):
    """With DESTDIR the scripts name /opt/retrainctl, where the tree will live, not the staging folder."""
    venv = installed / PREFIX / "venv"
    assert os.readlink(installed / PREFIX / "bin/retrainctl") == "../venv/bin/retrainctl"
    assert (venv / "bin/retrainctl").read_text().splitlines()[0] == "#!/opt/retrainctl/venv/bin/python"
    staged = subprocess.run(["grep", "-rlI", str(installed), str(venv / "bin"), str(venv / "pyvenv.cfg")],
                            capture_output=True, text=True)
    assert staged.stdout == ""
    assert os.path.realpath(venv / "bin/python").startswith("/usr/"), "the system Python, readable by the service"
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "retrainctl" / "cli.py").is_file(), "a real (non-editable) install"
    assert not list(site.glob("__editable__*"))
    metadata = subprocess.run([str(venv / "bin/python"), "-c", "import importlib.metadata as m; print(m.version('retrainctl'))"],
                              capture_output=True, text=True, cwd="/", timeout=60)
    assert metadata.stdout == f"{__version__}\n", "setup.py takes the version from retrainctl/__init__.py"
    assert (installed / VAR / "state").is_dir() and (installed / VAR / "models").is_dir()


def test_units_get_the_prefix(tmp_path):
    make("install-units", "PREFIX=/usr/local/retrainctl", destdir=tmp_path)
    units = tmp_path / UNITS
    for name in ("retrainctl-check.service", "retrainctl-train@.service", "retrainctl-notify-failure@.service"):
        text = (units / name).read_text()
        assert "ExecStart=/usr/local/retrainctl/bin/retrainctl --config /etc/retrainctl/retrainctl.yaml " in text
        assert "/opt/retrainctl" not in text
    assert (units / "retrainctl-check.timer").read_text() == (REPO / "systemd/retrainctl-check.timer").read_text()
    for drop_in in DROP_INS:
        assert (tmp_path / drop_in).read_text() == (REPO / "systemd/retrainctl-hardening.conf").read_text()
    assert (tmp_path / NOTIFY_DROP_IN).read_text() == (REPO / "systemd/retrainctl-notify-failure.conf").read_text()


def test_uninstall_keeps_the_operators_own_drop_in(tmp_path):
    make("install-units", destdir=tmp_path)
    override = tmp_path / UNITS / "retrainctl-check.service.d/override.conf"
    override.write_text("[Service]\nMemoryMax=8G\n")
    make("uninstall", destdir=tmp_path)
    assert not any(os.path.lexists(tmp_path / path) for path in OURS)
    assert files_under(tmp_path) == [str(override.relative_to(tmp_path))]


def test_install_config_never_overwrites(tmp_path):
    (tmp_path / "etc/retrainctl").mkdir(parents=True)
    (tmp_path / CONFIG).write_text("# the operator's own\n")
    make("install-config", destdir=tmp_path)
    assert (tmp_path / CONFIG).read_text() == "# the operator's own\n"


def test_reinstall_then_uninstall_keeps_config_data_state_and_models(installed, tmp_path):
    root = tmp_path / "root"
    copy_install(installed, root)
    (root / CONFIG).write_text((root / CONFIG).read_text().replace("check_interval: 300", "check_interval: 60"))
    (root / VAR / "data/raw/iris.csv").write_text("operator data\n")
    kept = {CONFIG: (root / CONFIG).read_text(), f"{VAR}/data/raw/iris.csv": "operator data\n",
            f"{VAR}/state/events.jsonl": '{"model_name": "iris"}\n', f"{VAR}/models/iris/v1/model.joblib": "model"}
    for path, text in kept.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    system_units = files_under(root / "usr")

    make("install", destdir=root)
    assert {path: (root / path).read_text() for path in kept} == kept
    assert all(os.path.lexists(root / path) for path in OURS)

    make("uninstall", destdir=root)
    assert {path: (root / path).read_text() for path in kept} == kept
    assert not any(os.path.lexists(root / path) for path in OURS)
    assert not (root / PREFIX).exists()
    assert files_under(root) == sorted([*kept, f"{VAR}/data/raw/housing.csv",
                                        *(f"usr/{p}" for p in system_units)])
