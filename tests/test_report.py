"""The report page, from a real project's history (trainings, a rejected candidate, a rollback, a
failure), rendered as HTML and Markdown and loaded in headless Chromium."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

from conftest import copy_project

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOW = 2_000_000_000.0


def _config(project):
    from retrainctl.config.load import load_config

    return load_config(str(project.config_path))


def _models(config, names=None):
    return [config.model(n) for n in names] if names else list(config.models.values())


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def history(tmp_path_factory, _trained_template):
    """iris: v1, v2 (appended rows), v3 rejected (a worse estimator, manual train), a rollback to
    v1, then a failure from a missing data file; a drift file shifted on PetalLengthCm and an
    eval file. housing: v1 only. fresh: configured, never trained.
    It starts from a copy of the demo project after its first `check` (iris v1 and housing v1)."""
    project = copy_project(_trained_template, tmp_path_factory.mktemp("report") / "proj")
    iris = project.data("iris")
    lines = iris.read_text().splitlines()
    drift = project.root / "data" / "raw" / "iris-recent.csv"
    head = lines[0].split(",")
    col = head.index("PetalLengthCm")
    shifted = [lines[0]]
    for line in lines[1:80]:
        cells = line.split(",")
        cells[col] = str(float(cells[col]) + 3)
        shifted.append(",".join(cells))
    drift.write_text("\n".join(shifted) + "\n")
    evalf = project.root / "data" / "raw" / "iris-eval.csv"
    evalf.write_text("\n".join([lines[0]] + lines[1::3]) + "\n")
    assert [(e["model_name"], e["trigger_type"], e["status"]) for e in project.history()] == [
        ("iris", "initial", "success"), ("housing", "initial", "success")]
    project.append_rows("iris", 30)
    _ok(project.cli("check", "iris"))
    project.set_model("iris", estimator="sklearn.dummy.DummyClassifier", params={"strategy": "prior"})
    _ok(project.cli("train", "iris", "--reason", "try a baseline"))
    assert project.history("iris")[-1]["status"] == "rejected"
    _ok(project.cli("rollback", "iris", "--to", "1"))
    saved = iris.read_bytes()
    iris.unlink()
    assert project.cli("check", "iris").exit_code == 1
    iris.write_bytes(saved)
    project.set_model("iris", estimator="sklearn.tree.DecisionTreeClassifier", params={"random_state": 0},
                      drift_path="data/raw/iris-recent.csv", eval_path="data/raw/iris-eval.csv")
    project.config["models"]["fresh"] = dict(project.config["models"]["housing"])
    project.write_config()
    return project


@pytest.fixture(scope="module")
def facts(history):
    from retrainctl.publish import report

    config = _config(history)
    return {f.name: f for f in report.gather(config, _models(config))}


def test_facts_of_the_history(history, facts):
    iris = facts["iris"]
    by_version = {v.version: v for v in iris.versions}
    assert sorted(by_version) == [1, 2, 3]
    assert [(v.outcome, v.rolled_back, v.live) for v in iris.versions] == [
        ("promoted", False, True), ("promoted", True, False), ("rejected", False, False)]
    assert by_version[3].score < by_version[1].score
    assert [e.status for e in iris.history] == ["failure", "rolled_back", "rejected", "success", "success"]
    assert iris.drift[0].name == "PetalLengthCm" and iris.drift[0].drifted is True
    assert iris.drift[0].bins[-1].startswith("> ") and len(iris.drift[0].recent) == len(iris.drift[0].bins)
    assert abs(sum(iris.drift[0].recent) - 1) < 1e-9 and abs(sum(iris.drift[0].reference) - 1) < 1e-9
    from retrainctl.publish import report

    decision = report.last_decision(iris)
    assert decision["status"] == "failure" and decision["error_type"] == "data_error"
    assert decision["gate"]["earlier"] is True and decision["gate"]["record"].version == 3
    assert "(last candidate compared: v3 at " in report._gate_text(decision["gate"], "accuracy")
    assert facts["fresh"].versions == [] and facts["fresh"].history == []
    assert report.headline(facts["fresh"]).startswith("never trained")


def test_gate_arithmetic_of_a_rejection(facts):
    from retrainctl.publish import report

    iris = facts["iris"]
    rejected = report.ModelFacts(**{**iris.__dict__, "history": iris.history[2:]})
    gate = report.last_decision(rejected)["gate"]
    assert gate["earlier"] is False and gate["live_version"] == 2 and gate["tolerance"] == 0.02 and gate["passes"] is False
    assert gate["candidate"] == iris.versions[2].score and gate["live"] == iris.versions[1].score
    text = report._gate_text(gate, "accuracy")
    assert re.fullmatch(r"candidate accuracy 0\.\d+ vs live v2 0\.\d+ on the same holdout: \d+\.\d\d% worse, "
                        r"tolerance 2\.00% -> fails the gate", text), text


def test_markdown(facts):
    from retrainctl.publish import report

    md = report.render(list(facts.values()), "md", NOW)
    iris = md[md.index("## iris"):md.index("## housing")]
    assert "| v1 **(live)** |" in iris
    assert re.search(r"\| v2 \| [^|]+ \| [^|]+ \| promoted, rolled back \|", iris)
    assert re.search(r"\| v3 \| [^|]+ \| [^|]+ \| rejected \| manual \|", iris)
    assert re.search(r"\| [^|]+ \| failure \| data_change \| - \| \[data_error\] [^|]*iris\.csv", iris)
    assert "| PetalLengthCm | " in iris and "| drifted |" in iris
    assert "PetalLengthCm: reference vs recent share per bin" in iris
    fresh = md[md.index("## fresh"):]
    assert "**never trained" in fresh and "The state log has no events for this model." in fresh


def test_html_facts(facts):
    from retrainctl.publish import report

    page = report.render(list(facts.values()), "html", NOW)
    assert "http://" not in page.replace("http://www.w3.org/", "") and "https://" not in page
    iris = page[page.index('id="model-iris"'):page.index('id="model-housing"')]
    live_rows = re.findall(r'<tr class="live"><td>(v\d+)</td>', iris)
    assert live_rows == ["v1"]
    assert re.search(r"<td>v2</td>.*?rolled back", iris) and re.search(r"<td>v3</td>(?:(?!</tr>).)*rejected", iris)
    assert 'class="badge failure"' in iris and "[data_error]" in iris
    for chart in ("score", "drift", "timeline", "distribution:PetalLengthCm"):
        assert f'data-chart="{chart}"' in iris, chart
    fresh = page[page.index('id="model-fresh"'):]
    assert "never trained" in fresh and "<svg" not in fresh


def _moved(config, **dirs):
    return config.__class__(**{**config.__dict__, **{k: str(v) for k, v in dirs.items()}})


def test_an_empty_state_dir_gives_a_page(history, tmp_path):
    from retrainctl.publish import report

    config = _config(history)
    facts = report.gather(_moved(config, state_dir=tmp_path / "none", model_dir=tmp_path / "none"),
                          _models(config, ["housing"]))
    assert "never trained" in report.render(facts, "html", NOW)
    assert "never trained" in report.render(facts, "md", NOW)
    facts = report.gather(_moved(config, state_dir=tmp_path / "none"), _models(config, ["housing"]))
    assert report.headline(facts[0]) == f"live version v1, r2 {facts[0].versions[0].score:.4g}; the state log has no history for it"
    assert "The state log has no events for this model." in report.render(facts, "html", NOW)


def test_garbled_records_do_not_break_the_page(history, tmp_path):
    from retrainctl.publish import report

    state = tmp_path / "state"
    shutil.copytree(history.state_dir, state)
    garbage = [{"model_name": "iris", "status": "success", "version": "x", "score": "NaN", "trigger_time": "soon"},
               {"model_name": "iris", "status": "rejected", "version": 7, "score": "high", "champion_score": None},
               {"model_name": "iris", "status": "rolled_back", "version": 1, "previous_version": [2]},
               {"model_name": "iris", "status": "failure", "duration": "long", "description": 42}]
    with open(state / "events.jsonl", "a") as fh:
        fh.writelines(json.dumps(g) + "\n" for g in garbage)
    config = _config(history)
    facts = report.gather(_moved(config, state_dir=state), _models(config, ["iris"]))
    assert [(v.version, v.outcome, v.score) for v in facts[0].versions][-1] == (7, "rejected", None)
    page, md = report.render(facts, "html", NOW), report.render(facts, "md", NOW)
    assert "<td>v7</td>" in page and "| v7 | - | - | rejected |" in md


def test_write_to_a_file(history, tmp_path):
    from retrainctl.commands import report

    out = tmp_path / "site" / "report.html"
    assert report.write(_config(history), ["housing"], "html", str(out), clock=lambda: NOW) is None
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "generated 2033-05-18T03:33:20Z" in page
    assert oct(out.stat().st_mode & 0o777) == "0o644" and 'id="model-iris"' not in page


def test_unknown_model(history):
    from retrainctl.commands import report
    from retrainctl.base.errors import UsageError

    with pytest.raises(UsageError, match="nope"):
        report.write(_config(history), ["nope"])


def test_matplotlib_is_imported_only_by_charts(history):
    code = ("import sys; from retrainctl.publish import report; from retrainctl.config.load import load_config; "
            f"c = load_config({str(history.config_path)!r}); f = report.gather(c, list(c.models.values())); "
            "assert 'matplotlib' not in sys.modules; report.render(f, 'md'); "
            "assert 'matplotlib' not in sys.modules; report.render(f); print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr


# --- in a real browser ---------------------------------------------------------------------------

def _png_pixels(data):
    """(width, height, set of distinct RGB(A) rows sampled) of a non-interlaced 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    colors = set()
    for y in range(0, height, 7):
        row = raw[y * stride + 1:(y + 1) * stride]  # filtered bytes: distinct values still mean ink
        colors.update(row[i:i + channels] for i in range(0, len(row), channels * 13))
    return width, height, colors


def test_page_in_headless_chromium(facts, tmp_path):
    from retrainctl.publish import report

    assert os.access(CHROMIUM, os.X_OK), "chromium is missing: make system-deps installs it"
    page = tmp_path / "report.html"
    page.write_text(report.render(list(facts.values()), "html", NOW))
    png = tmp_path / "report.png"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--window-size=1200,2000"]
    shot = subprocess.run(flags + [f"--screenshot={png}", page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in (shot.stderr + dom.stderr).splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    assert dom.stdout.count('class="model"') == 3
    charts = re.findall(r'<div class="chart" data-chart="([^"]+)">(.*?)</div>', dom.stdout, re.S)
    names = [n for n, _ in charts]
    assert {"score", "drift", "timeline", "distribution:PetalLengthCm"} <= set(names), names
    assert names.count("score") == 2  # iris and housing; fresh has none
    for name, svg in charts:
        assert svg.lstrip().startswith("<svg") and svg.count("<path") >= 5, (name, svg[:200])
    if os.environ.get("RETRAINCTL_REPORT_SCREENSHOT"):
        shutil.copy(png, os.environ["RETRAINCTL_REPORT_SCREENSHOT"])
    width, height, colors = _png_pixels(png.read_bytes())
    assert (width, height) == (1200, 2000)
    assert len(colors) > 20, len(colors)


def test_the_page_reads_drift_inputs_as_the_drift_check_does(project):
    """The page's reference-vs-recent shares come from the drift path read with the model's
    `csv:` options (a `;`-separated cp1252 file here) and as a data set (a directory of CSV and
    Parquet partitions); it read one UTF-8, comma-separated file of its own before."""
    import pandas as pd

    frame = pd.read_csv(project.data("iris")).rename(columns={"PetalLengthCm": "PétalLengthCm"})
    data = project.root / "data" / "iris-semicolon.csv"
    frame.to_csv(data, sep=";", encoding="cp1252", index=False)
    recent = frame.iloc[:80].assign(**{"PétalLengthCm": frame["PétalLengthCm"].iloc[:80] + 3})
    recent.to_csv(project.root / "data" / "recent.csv", sep=";", encoding="cp1252", index=False)
    project.config["models"].pop("housing")
    project.set_model("iris", data_path="data/iris-semicolon.csv", drift_path="data/recent.csv",
                      features=["SepalLengthCm", "SepalWidthCm", "PétalLengthCm", "PetalWidthCm"],
                      csv={"delimiter": ";", "encoding": "cp1252"})
    _ok(project.cli("check"))

    def distribution(md):
        section = md[md.index("PétalLengthCm: reference vs recent share per bin"):]
        rows = [line for line in section.splitlines()[4:] if line.startswith("|")]
        return {row.split("|")[1].strip(): row.split("|")[3].strip() for row in rows}

    md = _ok(project.cli("report", "--format", "md")).stdout
    shares = distribution(md)
    assert shares["&gt; 6.9"] == "30.0%"  # the shifted values beyond the training range (">" escaped)
    assert "recent values not read" not in md

    folder = project.root / "data" / "recent"
    folder.mkdir()
    recent.iloc[:40].to_csv(folder / "part-1.csv", sep=";", encoding="cp1252", index=False)
    recent.iloc[40:].to_parquet(folder / "part-2.parquet", index=False)
    project.set_model("iris", drift_path="data/recent")
    md = _ok(project.cli("report", "--format", "md")).stdout
    assert distribution(md) == shares and "recent values not read" not in md
    html = _ok(project.cli("report")).stdout
    assert 'data-chart="distribution:PétalLengthCm"' in html
