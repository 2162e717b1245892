"""Hostile text in the report and the history: a `--reason`, an operator name ($USER), a column name
and category values that are markup must show as text in the Markdown report (rendered here by a
CommonMark renderer that passes raw HTML, as many do) and the HTML page; control characters in
reasons and operator names are recorded as one line."""
import csv
import json
import random
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from conftest import Project

COLUMN = "<img src=x onerror=alert(1)>"
CATEGORIES = ['"><script>alert(2)</script>', "a|b", "`c`", "*d*"]
REASON = "<script>alert(1)</script>"
OPERATOR = "<b onmouseover=alert(3)>op</b>"
ROLLER = "[x](javascript:alert(4)) _y_ ~~z~~ &amp;"
PLANTED = [COLUMN, *CATEGORIES, REASON, OPERATOR, ROLLER]


def _write(path, rows, weights, rnd):
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["x", COLUMN, "label"])
        for _ in range(rows):
            category, x = rnd.choices(CATEGORIES, weights)[0], rnd.random()
            out.writerow([f"{x:.3f}", category, "yes" if (x > 0.5) ^ (category == CATEGORIES[0]) else "no"])


def _as(user):
    return {"USER": user, "LOGNAME": user}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One model trained on a column named like an <img> tag whose categories are markup, with a
    drift file that moves them; then `train --reason <script>`, a pause by a user named in markup
    and a rollback by another. An entry `shops` is split by that column (a segment per category)."""
    project = Project(tmp_path_factory.mktemp("hostile") / "proj")
    rnd = random.Random(0)
    _write(project.root / "data" / "hostile.csv", 300, [1, 1, 1, 1], rnd)
    _write(project.root / "data" / "hostile-recent.csv", 200, [6, 1, 1, 0.2], rnd)
    project.config["models"] = {"m": {
        "data_path": "data/hostile.csv", "drift_path": "data/hostile-recent.csv", "target": "label",
        "task": "classification", "estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"random_state": 0}},
        # one segment per hostile category: their names are encoded, their rows shown in the entry's table
        "shops": {"data_path": "data/hostile.csv", "segment_by": [COLUMN], "min_segment_rows": 50, "target": "label",
                  "features": ["x"], "task": "classification", "estimator": "sklearn.tree.DecisionTreeClassifier"}}
    project.write_config()
    for args, env in ((("check",), None), (("train", "m", "--force", "--reason", REASON), None),
                      (("pause", "m"), _as(OPERATOR)), (("rollback", "m"), _as(ROLLER))):
        done = project.cli(*args, env=env)
        assert done.exit_code == 0, (args, done.stderr)
    return project


class Tags(HTMLParser):
    """The elements and attributes of an HTML text, and its text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text, self.tables = [], [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append(0)
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self.tables[-1][-1] += 1

    def handle_data(self, data):
        self.text.append(data)


def test_markdown_report_shows_markup_as_text(hostile):
    done = hostile.cli("report", "--format", "md")
    assert done.exit_code == 0, done.stderr
    md = done.stdout
    for raw in ("<script", "<img", "<b ", "<i"):
        assert raw not in md
    assert "](javascript:" not in md.replace("\\](", "")
    assert md.count("onerror=") == md.count("&lt;img src=x onerror=alert(1)&gt;") > 0
    # a renderer that lets raw HTML through (CommonMark's default) still makes no element of it
    page = Tags(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md))
    assert set(page.tags) <= {"h1", "h2", "h3", "p", "strong", "code", "table", "thead", "tbody", "tr", "th", "td"}, page.tags
    assert page.attrs == []  # no onerror, no onmouseover, no href
    text = "".join(page.text)
    for planted in PLANTED:
        assert planted in text, planted  # shown, letter for letter
    for category in CATEGORIES:
        assert f"shops:{_encoded(category)}" in text
    # every table row has as many cells as its header: no pipe split one
    assert len(page.tables) >= 6
    for table in page.tables:
        assert len(set(table)) == 1, table
    bins = md[md.index("reference vs recent share per bin"):]
    assert '| "&gt;&lt;script&gt;alert(2)&lt;/script&gt; | ' in bins and "| a\\|b | " in bins
    assert "| \\`c\\` | " in bins and "| \\*d\\* | " in bins


def test_html_report_shows_markup_as_text(hostile):
    from retrainctl.publish.report import SCRIPT

    done = hostile.cli("report")
    assert done.exit_code == 0, done.stderr
    page = Tags(done.stdout)
    # the one script is the page's own sorting and searching, which no value is written into
    assert page.tags.count("script") == 1 and done.stdout.count("<script") == 1
    assert done.stdout.index(f"<script>{SCRIPT}</script>") > done.stdout.rindex("</main>")
    assert {"img", "i"} & set(page.tags) == set()
    assert {name for _, name, _ in page.attrs} & {"onerror", "onmouseover"} == set()
    segments = {f"#segment-shops:{_encoded(c)}" for c in CATEGORIES}
    assert {value for tag, name, value in page.attrs if name == "href"} == {"#model-m", "#entry-shops"} | segments
    text = "".join(page.text)
    for planted in PLANTED:
        assert planted in text, planted
    for category in CATEGORIES:
        assert f"shops:{_encoded(category)}" in text


def _encoded(value):
    from retrainctl.core.segment_names import encode_value

    return encode_value(value)


def test_control_characters_in_reasons_and_operator_names_are_recorded_as_one_line(trained):
    project = trained
    reason = "relabelled\r\nQA batch\tfrom \x1b[31mred\x1b[0m team\u202e"
    done = project.cli("train", "iris", "--force", "--reason", reason)
    assert done.exit_code == 0, done.stderr
    assert project.cli("pause", "iris", env=_as("ops\rroot\x07")).exit_code == 0
    assert project.cli("rollback", "iris", env=_as("a\nb")).exit_code == 0
    listed = project.cli("history", "--model", "iris", "--json")
    assert listed.exit_code == 0, listed.stderr
    records = json.loads(listed.stdout)["history"]
    assert [r["description"] for r in records[:3]] == [
        "rolled back from v2 to v1 by a b",
        "automatic retraining paused by ops root\\x07",
        "relabelled QA batch from \\x1b[31mred\\x1b[0m team\\u202e; forced by operator (--force)"]
    table = project.cli("history", "--model", "iris")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 1 + len(records) and lines[0].startswith("TIME ")
    assert all(line.startswith(r["trigger_time"]) for line, r in zip(lines[1:], records))
    assert not any(c in table.stdout for c in "\r\t\x1b\x07\u202e")
    assert lines[1].endswith("rolled back from v2 to v1 by a b")
