"""The report page, from a real project's history (trainings, a rejected candidate, a rollback, a
failure), rendered as HTML and Markdown and loaded in headless Chromium."""
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import zlib

import pytest

from conftest import IRIS, REPO, Project, base_config, copy_project, made_once

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


# --- many models: the overview and an entry's page ----------------------------------------------

SALES = {"data_path": "data/sales/", "segment_by": ["store"], "min_segment_rows": 60, "min_data_size": 20,
         "promotion_tolerance": 1.0, "target": "units", "task": "regression", "features": ["price", "temp"],
         "estimator": "sklearn.linear_model.Ridge"}


def fleet_project(folder):
    """`sales` split by store (eight stores of skewed sizes, three monthly partitions) and `iris`:
    a first check (an hour ago) trains iris and stores s000-s004 but s003, whose orders carry no
    label (it fails); s005-s007 are too small (skipped). Then s001 is paused, and a fourth
    partition with orders of s000 and s002 retrains them in a second check, where s003 fails again."""
    sys.path.insert(0, str(REPO / "bench"))
    from generate import orders, write_month

    project = Project(folder / "proj")
    frames = orders(months=4, rows_per_month=300, stores=8, seed=4)
    for frame in frames:
        frame.loc[frame["store"] == "s003", "units"] = None

    def month(m, frame):
        path = write_month(frame, project.root / "data" / "sales", m, fmt="csv")
        os.utime(path, (1_700_000_000 + m, 1_700_000_000 + m))

    for m in (1, 2, 3):
        month(m, frames[m - 1])
    project.write_config(FLEET_CONFIG)
    assert project.cli("check").exit_code == 1
    log = project.state_dir / "events.jsonl"  # the first check ran an hour ago
    log.write_text(re.sub(r'"trigger_time": "([^"]+)"', lambda m: json.dumps(
        {"trigger_time": _iso(_unix(m[1]) - 3600)})[1:-1], log.read_text()))
    _ok(project.cli("pause", "sales:s001"))
    month(4, frames[3][frames[3]["store"].isin(["s000", "s002"])])
    assert project.cli("check").exit_code == 1


FLEET_CONFIG = base_config(sales=dict(SALES), iris=dict(IRIS))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A copy of fleet_project, made once per test run (conftest.made_once)."""
    folder = made_once(tmp_path_factory, "report-fleet", fleet_project)
    template = Project.__new__(Project)
    template.root, template.config_path = folder / "proj", folder / "proj" / "etc" / "retrainctl.yaml"
    return copy_project(template, tmp_path_factory.mktemp("fleet") / "proj", FLEET_CONFIG)


def _unix(iso):
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _iso(ts):
    from retrainctl.core.values import utcnow_iso

    return utcnow_iso(ts)


def _scores(project):
    return {f"sales:s00{i}": json.loads((project.model_dir / f"sales:s00{i}" / "current" / "metadata.json")
                                        .read_text())["score"] for i in (0, 1, 2, 4)}


def _cells(html, table_id):
    """The rows of one table of a page as lists of cell texts (tags dropped)."""
    table = html[html.index(f'id="{table_id}"'):]
    table = table[:table.index("</table>")]
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table[table.index("<tbody>"):])]


def test_overview_and_entry_page_of_a_fleet(fleet):
    from retrainctl.publish.report import SCRIPT

    page = _ok(fleet.cli("report")).stdout
    scores = _scores(fleet)
    # the overview opens the page: worst first, an entry as one row
    assert page.index('id="overview"') < page.index('id="entry-sales"') < page.index('id="model-iris"')
    overview = _cells(page, "overview-table")
    assert [r[:3] for r in overview] == [["sales", "entry", "failing"], ["iris", "model", "up to date"]]
    assert overview[0][3] == f"{statistics.median(scores.values()):.4g}"  # an entry's score: its segments' median
    assert overview[0][7] == "8 segments: 1 failing, 1 paused, 3 skipped, 3 up to date"
    assert '<a href="#entry-sales">sales</a>' in page and '<a href="#model-iris">iris</a>' in page
    entry = page[page.index('id="entry-sales"'):page.index('id="model-iris"')]
    counts = entry[entry.index("<h3>Counts by state</h3>"):]
    assert re.findall(r"<td>([^<]*)</td>", counts[:counts.index("</table>")])[:7] == ["8", "4", "0", "1", "3", "1", "0"]
    changed = entry[entry.index("<h3>Changed this round</h3>"):entry.index("<h3>The ")]
    assert "3 segments have a record from the entry's newest round." in changed
    assert sorted(re.findall(r'<a href="#segment-(sales:s\d+)">', changed)) == ["sales:s000", "sales:s002", "sales:s003"]
    worst = _cells(entry, "worst-0-score")
    assert [r[0] for r in worst] == sorted(scores, key=scores.get)  # r2: the lowest first
    assert [r[3] for r in worst] == [f"{scores[n]:.4g}" for n in sorted(scores, key=scores.get)]
    failures = entry[entry.index("with the most failures in a row"):entry.index("<h3>All segments</h3>")]
    assert re.findall(r'<a href="#segment-([^"]+)">', failures) == ["sales:s003"]
    assert ">failing</span></td><td data-v=\"\">-</td>" in failures
    table = _cells(entry, "segments-0")
    assert [r[0] for r in table] == [f"sales:s00{i}" for i in range(8)]
    assert [r[1] for r in table] == ["up to date", "paused", "up to date", "failing", "up to date", "skipped",
                                     "skipped", "skipped"]
    assert [r[2] for r in table] == ["v2", "v1", "v2", "-", "v1", "-", "-", "-"]
    # every link to a segment lands on its row in the table
    ids = set(re.findall(r' id="([^"]+)"', page))
    links = set(re.findall(r' href="#([^"]+)"', page))
    assert {f"segment-sales:s00{i}" for i in range(8)} <= ids and links <= ids, links - ids
    assert page.count("<script>") == 1 and f"<script>{SCRIPT}</script>" in page


def test_markdown_of_a_fleet(fleet):
    md = _ok(fleet.cli("report", "sales", "--format", "md")).stdout
    scores = _scores(fleet)
    assert "## Overview" not in md and "## iris" not in md  # named: that entry only
    assert ("| segments | up to date | due | failed | skipped | paused | no data | oldest model |\n|---|---|---|---|---"
            "|---|---|---|\n| 8 | 4 | 0 | 1 | 3 | 1 | 0 | ") in md
    low, high = min(scores.values()), max(scores.values())
    assert re.search(rf"\| r2 \| {low:.4g} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| {high:.4g} \|", md)
    worst = md[md.index("### The 4 worst by r2"):md.index("### The 4 oldest")]
    assert [line.split(" | ")[0][2:] for line in worst.splitlines()[4:-1]] == sorted(scores, key=scores.get)
    assert "| sales:s003 | failing | - | - | - | 2 | failure " in md
    assert "All 8 segments are listed in the HTML page (`--format html`)." in md


def test_a_segment_has_its_own_page(fleet):
    page = _ok(fleet.cli("report", "sales:s000")).stdout
    assert 'id="overview"' not in page and 'id="entry-sales"' not in page
    section = page[page.index('id="model-sales:s000"'):]
    section = section[section.index("<h3>Versions</h3>"):section.index("<h3>Last decision</h3>")]
    assert re.findall(r"<td>(v\d)</td>", section) == ["v1", "v2"] and '<tr class="live"><td>v2</td>' in section
    assert 'data-chart="score"' in section
    both = _ok(fleet.cli("report", "sales", "sales:s000")).stdout  # the entry's row and the segment's section
    ids = re.findall(r' id="([^"]+)"', re.sub(r"<svg.*?</svg>", "", both, flags=re.S))  # matplotlib's own ids aside
    assert len(ids) == len(set(ids)) and {"segment-sales:s000", "model-sales:s000"} <= set(ids)
    done = fleet.cli("report", "sales:s08")
    assert done.exit_code == 2 and done.stderr == "Error: segment 'sales:s08' is not in the data of 'sales' nor in its history; did you mean 'sales:s007'?\n"


def test_a_page_of_many_models_draws_no_charts(facts):
    from retrainctl.publish import report

    many = list(facts.values()) * 4
    page = report.render(many, "html", NOW)
    assert page.count('class="model"') == 12 and "data-chart=" not in page and "<svg" not in page
    assert "12 models: charts are drawn on pages of at most 10" in page


def _ten_thousand_segments():
    """An entry of 10,000 segments as `status` could report them: a long tail of states, scores
    missing where no version is live, ages from minutes to weeks, a few failing in a row."""
    import random

    from retrainctl.core.outcomes import EntryCounts
    from retrainctl.publish import overview

    rnd = random.Random(7)
    lines = []
    for i in range(10_000):
        state = rnd.choices(overview.STATES, weights=[2, 1, 4, 1, 1, 12, 79])[0]
        live = state not in ("never trained", "skipped")
        when = NOW - rnd.choice([60, 3600, 86400 * 7]) - rnd.random() * 600
        lines.append(overview.Line(
            f"sales:s{i:05d}", state, rnd.randint(1, 9) if live else None,
            round(rnd.betavariate(5, 2), 4) if live else None, rnd.uniform(60, 86400 * 21) if live else None,
            rnd.randint(1, 6) if state == "failing" else 0, "failure" if state == "failing" else "success",
            _iso(when), when, rnd.randint(10, 5000)))
    counts = EntryCounts("sales", segments=len(lines), up_to_date=sum(s.state == "up to date" for s in lines))
    return overview.EntryFacts("sales", "r2", True, counts, lines,
                               histogram=overview.histogram([s.score for s in lines if s.score is not None]))


# Run in the page after its own script, as a user would: sort by r2 (a click on its header),
# search, sort again (descending); what is visible goes into <pre id="result">, shown with the
# table at the top of the page for the screenshot (a headless screenshot of a scrolled page is blank).
HARNESS = """<script>
(function(){
var t=document.getElementById("segments-0"),rows=function(){return Array.prototype.slice.call(t.tBodies[0].rows);};
var names=function(){return rows().filter(function(r){return !r.hidden;}).map(function(r){return r.cells[0].textContent;});};
var t0=performance.now();t.tHead.rows[0].cells[3].click();var sortMs=performance.now()-t0;
var firstUp=names().slice(0,3);
var box=document.querySelector("input.search");box.value="S0004";box.dispatchEvent(new Event("input"));
var searched=names(),count=document.getElementById("shown-0").textContent;
t.tHead.rows[0].cells[3].click();
var out=document.createElement("pre");out.id="result";
out.textContent=JSON.stringify({firstUp:firstUp,searched:searched,count:count,down:names(),sortMs:sortMs,
 total:rows().length,arrow:t.tHead.rows[0].cells[3].getAttribute("aria-sort")});
var main=document.querySelector("main");main.insertBefore(t,main.firstChild);main.insertBefore(box.parentNode,t);
main.insertBefore(out,main.firstChild);
})();
</script>"""


def test_ten_thousand_segments_sorted_and_searched_in_headless_chromium(tmp_path):
    import html

    from retrainctl.publish import report

    assert os.access(CHROMIUM, os.X_OK), "chromium is missing: make system-deps installs it"
    entry = _ten_thousand_segments()
    text = report.render([], "html", NOW, [entry], None)
    assert text.count("<tr id=\"segment-sales:s") == 10_000
    page = tmp_path / "sales.html"
    page.write_text(text.replace("</body>", HARNESS + "</body>"))
    png = tmp_path / "sales.png"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--window-size=1200,900"]
    shot = subprocess.run(flags + [f"--screenshot={png}", page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in (shot.stderr + dom.stderr).splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    result = json.loads(html.unescape(re.search(r'<pre id="result">(.*?)</pre>', dom.stdout, re.S)[1]))
    scored = sorted((s for s in entry.segments if s.score is not None), key=lambda s: (s.score, s.name))
    assert result["firstUp"] == [s.name for s in scored[:3]]
    # the search is case-insensitive and keeps the sort; unscored segments sort last both ways
    mine = [s for s in entry.segments if "s0004" in s.name]
    up = sorted(mine, key=lambda s: (s.score is None, s.score or 0, s.name))
    assert result["searched"] == [s.name for s in up] and result["count"] == str(len(mine)) == "10"
    down = sorted(mine, key=lambda s: (s.score is None, -(s.score or 0), s.name))
    assert result["down"] == [s.name for s in down] and result["arrow"] == "descending"
    assert result["total"] == 10_000
    width, height, colors = _png_pixels(png.read_bytes())
    assert (width, height) == (1200, 900) and len(colors) > 20
    if os.environ.get("RETRAINCTL_REPORT_SCREENSHOT"):
        shutil.copy(png, os.environ["RETRAINCTL_REPORT_SCREENSHOT"])
    print(f"screenshot: {png} ({len(text) / (1 << 20):.1f} MiB page, sorted 10,000 rows in {result['sortMs']:.0f} ms)")


def test_an_entry_whose_segments_cannot_be_listed(fleet, tmp_path):
    project = copy_project(fleet, tmp_path / "proj")
    part = project.root / "data" / "sales" / "month=2025-04" / "part-0.csv"
    lines = part.read_text().splitlines()
    column = lines[0].split(",").index("store")
    part.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != column) for line in lines) + "\n")
    page = _ok(project.cli("report")).stdout
    overview = _cells(page, "overview-table")
    assert [r[:3] for r in overview] == [["sales", "entry", "failing"], ["iris", "model", "up to date"]]
    assert overview[0][7].startswith(f"{part}: segment_by column &#x27;store&#x27; not found (columns: ")
    entry = page[page.index('id="entry-sales"'):page.index('id="model-iris"')]
    assert "The segments of sales cannot be listed: " in entry and "<table" not in entry
    md = _ok(project.cli("report", "sales", "--format", "md")).stdout
    assert f"The segments of sales cannot be listed: {part}: segment_by column 'store' not found (columns: " in md
