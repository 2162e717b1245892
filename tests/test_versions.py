"""Releases are versioned: `--version`, CHANGELOG.md, the version that wrote each record and model,
and a warning when the state was written by a newer release than the one reading it."""
import json
import re
from pathlib import Path

from retrainctl.base.version import __version__

REPO = Path(__file__).resolve().parents[1]


def test_version_is_the_changelogs_newest_release_and_every_release_has_an_entry():
    text = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d\d-\d\d)$", text, flags=re.M)
    assert [v for v, _ in releases] == [__version__, "0.2.0", "0.1.0"]
    assert [d for _, d in releases] == sorted((d for _, d in releases), reverse=True)
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    for version, _ in releases:  # Keep a Changelog: each release says what it added, changed or fixed
        body = text.split(f"## [{version}]")[1].split("\n## [")[0]
        assert re.search(r"^### (Added|Changed|Fixed|Removed|Security|Deprecated)$", body, flags=re.M), version


def test_version_option_and_what_each_record_and_model_says_wrote_it(trained):
    project = trained
    out = project.run("--version")
    assert out.returncode == 0 and out.stdout == f"retrainctl, version {__version__}\n"
    assert {e["retrainctl_version"] for e in project.events()} == {__version__}
    meta = json.loads((project.model_dir / "iris" / "current" / "metadata.json").read_text())
    assert meta["retrainctl_version"] == __version__
    assert project.run("pause", "iris").returncode == 0
    assert project.history("iris")[-1]["retrainctl_version"] == __version__


def test_status_warns_of_state_written_by_a_newer_release(trained):
    project = trained
    st = project.run("status", "--json")
    assert st.returncode == 0 and st.stderr == ""
    assert [m["written_by_newer"] for m in json.loads(st.stdout)["models"]] == [None, None]

    log = project.state_dir / "events.jsonl"
    older = dict(json.loads(log.read_text().splitlines()[0]), retrainctl_version="0.1.0", status="paused")
    newer = dict(older, retrainctl_version="10.0.0", status="resumed")
    garbled = dict(older, retrainctl_version="not a version", status="resumed")
    with open(log, "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in (older, newer, garbled))
    st = project.run("status", "--json")
    assert st.returncode == 0
    assert [(m["model_name"], m["written_by_newer"]) for m in json.loads(st.stdout)["models"]] == [
        ("iris", "10.0.0"), ("housing", None)]
    warning = (f"retrainctl: WARNING: the state of iris was written by retrainctl 10.0.0, newer than this "
               f"{__version__}: upgrade before trusting what this one says or does with it\n")
    assert st.stderr == warning
    assert project.run("status").stderr == warning

    # the live model's metadata counts too (a newer release trained it)
    path = project.model_dir / "housing" / "current" / "metadata.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), retrainctl_version="9.1.0")))
    models = json.loads(project.run("status", "--json").stdout)["models"]
    assert [m["written_by_newer"] for m in models] == ["10.0.0", "9.1.0"]
