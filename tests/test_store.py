"""The model store's promises under real faults: version numbers are never handed out twice,
even after the model folder was deleted, and a save that fills the disk fails that model alone,
naming the path, leaving no partial version and the live model as it was."""
import json
import os
import shutil

from retrainctl.core.fold import fold
from retrainctl.core.records import Record
from retrainctl.state.store import ModelStore


def warnings(stderr):
    return [line for line in stderr.splitlines() if line.startswith("retrainctl: WARNING:")]


def onto_tmpfs(full_disk, path, size):
    """full_disk(path, size) for a folder the trained copy already filled: its files are moved
    onto the new tmpfs (they take the same room there as if the first check had written them)."""
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    disk = full_disk(path, size)
    shutil.copytree(aside, path, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(aside)
    return disk


def status_json(project):
    r = project.cli("status", "--json")
    assert r.exit_code == 0, r.stderr
    return {m["model_name"]: m for m in json.loads(r.stdout)["models"]}, r.stderr


def test_the_fold_remembers_the_highest_version_and_whether_one_went_live():
    events = [
        {"model_name": "m", "status": "success", "version": 1},
        {"model_name": "m", "status": "rejected", "version": 4},
        {"model_name": "m", "status": "rolled_back", "version": 1, "previous_version": 1},
        {"model_name": "m", "status": "failure", "version": 5, "error_type": "tracking"},
        {"model_name": "m", "status": "started", "attempt_id": "a"},
        {"model_name": "m", "status": "failure", "version": None, "error_type": "interrupted"},
        {"model_name": "m", "status": "success", "version": "9"},  # hand-edited: not a version
        {"model_name": "old", "status": "success"},                 # a record from before versions
        {"model_name": "never", "status": "rejected", "version": 1},
        {"model_name": "never", "status": "failure", "version": 2, "error_type": "interrupted"},
    ]
    states = fold([Record.from_dict(e) for e in events])
    assert [(states[m].max_version, states[m].had_live) for m in ("m", "old", "never")] == [
        (5, True), (0, True), (2, False)]


def test_save_numbers_after_the_disk_and_the_floor(tmp_path):
    store = ModelStore(str(tmp_path))
    assert store.save("m", b"x", {}, at_least=7).version == 8
    assert store.save("m", b"x", {}, at_least=3).version == 9
    assert store.versions("m") == [8, 9]


def test_a_version_is_a_pickle_joblib_loads_and_metadata_a_key_per_line(tmp_path):
    """model.joblib is what joblib.load (and pickle) read; metadata.json has one top-level key per
    line, its value on the same line, keys sorted."""
    import io
    import pickle

    import joblib

    store = ModelStore(str(tmp_path))
    model = {"weights": [1.5, 2.5]}
    mv = store.save("m", pickle.dumps(model), {"score": 0.5, "columns": {"x": {"kind": "numeric"}}, "rows": 3})
    with open(mv.model_file, "rb") as fh:
        assert joblib.load(io.BytesIO(fh.read())) == model
    with open(os.path.join(mv.path, "metadata.json")) as fh:
        text = fh.read()
    assert text.splitlines()[:3] == ["{", ' "columns": {"x": {"kind": "numeric"}},', ' "rows": 3,']
    assert json.loads(text)["version"] == 1


def test_a_deleted_model_folder_never_reuses_its_version_numbers(trained):
    project = trained  # iris and housing v1 from the first check
    assert project.cli("train", "iris", "--force").stdout.startswith("iris: promoted v2")
    folder = project.model_dir / "iris"
    shutil.rmtree(folder)

    rows, stderr = status_json(project)
    line = f"retrainctl: WARNING: iris: {folder} is gone, though the history has a live model; the next training makes v3"
    assert warnings(stderr) == [line]
    assert rows["iris"]["model_dir_missing"] is True and rows["housing"]["model_dir_missing"] is False

    r = project.cli("check")
    assert r.exit_code == 0, r.stderr
    assert warnings(r.stderr) == [line]
    assert r.stdout.splitlines()[1].split()[:6] == ["iris", "yes", "initial", "train", "promoted", "v3"]
    assert [e["version"] for e in project.history("iris")] == [1, 2, 3]
    assert project.current_version("iris") == 3 and sorted(p.name for p in folder.glob("v*")) == ["v3"]

    rows, stderr = status_json(project)
    assert warnings(stderr) == [] and rows["iris"]["model_dir_missing"] is False


def test_a_lost_current_link_is_warned_and_numbering_goes_on(trained):
    project = trained  # iris and housing v1 from the first check
    link = project.model_dir / "housing" / "current"
    link.unlink()
    rows, stderr = status_json(project)
    assert warnings(stderr) == [f"retrainctl: WARNING: housing: {link} is gone, though the history has a live "
                                f"model; the next training makes v2"]
    assert rows["housing"]["model_dir_missing"] is True and rows["iris"]["model_dir_missing"] is False
    r = project.cli("check")
    assert r.exit_code == 0 and "promoted v2" in r.stdout.splitlines()[2]
    assert project.current_version("housing") == 2


def test_a_full_disk_fails_that_model_alone_and_names_the_path(trained, full_disk):
    """Both small models fit in 128 KB; a random forest of 300 trees (about 500 KB) does not."""
    project = trained  # iris and housing v1 from the first check, moved onto the tmpfs
    onto_tmpfs(full_disk, project.model_dir, "128k")
    live = (project.model_dir / "iris" / "v1" / "model.joblib").read_bytes()
    project.set_model("iris", estimator="sklearn.ensemble.RandomForestClassifier",
                      params={"random_state": 0, "n_estimators": 300})
    project.append_rows("iris", 10)
    project.append_rows("housing", 10)

    r = project.run("check")
    path = project.model_dir / "iris" / "v2"
    message = f"{path}: cannot save the model: No space left on device"
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"retrainctl: ERROR: iris: {message}" in r.stderr.splitlines()
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert rows["iris"].endswith(f"failed: {message}") and "promoted v2" in rows["housing"]

    iris = project.history("iris")[-1]
    assert (iris["status"], iris["error_type"], iris["error"], iris["version"]) == (
        "failure", "disk_full", message, None)
    assert project.history("housing")[-1]["status"] == "success"
    assert project.current_version("iris") == 1 and project.current_version("housing") == 2
    assert sorted(p.name for p in (project.model_dir / "iris").iterdir()) == ["current", "v1"]
    assert (project.model_dir / "iris" / "v1" / "model.joblib").read_bytes() == live
    rows, _ = status_json(project)
    assert rows["iris"]["model_integrity"] == "ok" and rows["iris"]["model_version"] == 1
