"""Every shell session shown in the docs is real: each indented block of README.md and docs/*.md
that starts with `$ ` is run, in order, page by page, in a fresh copy of the bundled demo project
(etc/retrainctl.yaml and data/raw, MLflow off and smaller ensembles to keep it quick; nothing the
sessions print comes from MLflow, and scores are masked), and what each command prints on stdout is compared with the lines shown under it.

Conventions a page follows:
- `$ COMMAND` lines run with bash in the project's root, `.venv/bin/retrainctl` and `retrainctl`
  being the installed command; the lines up to the next `$ ` are its expected stdout. A command
  shown without output must exit 0 (`; echo "exit $?"` shows another exit code).
- `<!-- example-setup: COMMAND -->` runs COMMAND at that point, unseen (to bring the project into
  the state the prose describes); `<!-- example-config -->` makes the ```yaml block above it the
  project's config from there on.
- Compared after masking what differs from run to run: timestamps, durations and ages, "N s ago",
  and numbers with decimals (scores depend on the scikit-learn release); runs of spaces count as
  one, so column widths may differ.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, REPO

PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
SETUP = re.compile(r"^<!-- example-setup: (.+) -->$")
MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "<TIME>"),
    (re.compile(r"\b\d+(\.\d+)?s ago\b"), "<N>s ago"),
    (re.compile(r"\b(\d+h)?\d+m\b|\b\d+h\b"), "<AGE>"),
    (re.compile(r"\b\d+\.\d+s\b"), "<DURATION>"),
    (re.compile(r"\b\d+s\b"), "<AGE>"),
    (re.compile(r"\b\d+\.\d+\b"), "<NUM>"),
]


def sessions(page):
    """[(kind, command, expected lines)] of a page, in order: kind `run` for a `$ ` line of an
    indented block, `setup` for an example-setup comment."""
    steps, lines, i = [], (REPO / page).read_text().splitlines(), 0
    block: list[str] = []
    while i < len(lines):
        line = lines[i]
        setup = SETUP.match(line.strip())
        if line == "```yaml":
            end = lines.index("```", i + 1)
            block, i = lines[i + 1:end], end + 1
            continue
        if setup:
            steps.append(("setup", setup.group(1), []))
        elif line.strip() == "<!-- example-config -->":
            steps.append(("config", "\n".join(block) + "\n", []))
        elif re.match(r"^ {4,}\$ ", line) and (i == 0 or not lines[i - 1].strip() or lines[i - 1].startswith(" " * 4)):
            indent = len(line) - len(line.lstrip())
            while i < len(lines) and lines[i].startswith(" " * indent) and lines[i].strip():
                text = lines[i][indent:]
                if text.startswith("$ "):
                    steps.append(("run", text[2:], []))
                else:
                    steps[-1][2].append(text)
                i += 1
            continue
        i += 1
    return steps


def masked(lines):
    out = []
    for line in lines:
        for pattern, token in MASKS:
            line = pattern.sub(token, line)
        out.append(" ".join(line.split()))
    return out


@pytest.fixture
def demo(tmp_path):
    """The bundled demo project as `make run` starts it, at tmp_path, with `.venv` pointing at the
    installed command's environment and /var/www and $GITHUB_STEP_SUMMARY inside tmp_path."""
    root = tmp_path / "demo"
    for sub in ("etc", "data/raw"):
        (root / sub).mkdir(parents=True)
    shutil.copy(REPO / "etc" / "retrainctl.yaml", root / "etc")
    for name in ("iris.csv", "housing.csv"):
        shutil.copy(REPO / "data" / "raw" / name, root / "data" / "raw")
    config = yaml.safe_load((root / "etc" / "retrainctl.yaml").read_text())
    config["mlflow"] = {"enabled": False}
    # Smaller ensembles: the sessions show the same rows and words, and scores are masked.
    config["models"]["iris"]["params"]["n_estimators"] = 10
    config["models"]["housing"]["params"]["max_iter"] = 20
    (root / "etc" / "retrainctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    os.symlink(BIN.parent, root / ".venv")
    return root


def run_page(page, root):
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", RETRAINCTL_CONFIG=str(root / "etc" / "retrainctl.yaml"),
               GITHUB_STEP_SUMMARY=str(root / "step-summary.md"))
    env.pop("MLFLOW_TRACKING_URI", None)
    checked = 0
    for kind, command, expected in sessions(page):
        if kind == "config":
            (root / "etc" / "retrainctl.yaml").write_text(command)
            continue
        command = command.replace("/var/www/", f"{root}/www/")
        done = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        where = f"{page}: `$ {command}`"
        if kind == "setup" or not expected:
            assert done.returncode == 0, f"{where} exited {done.returncode}: {done.stderr}"
            continue
        assert masked(done.stdout.splitlines()) == masked(expected), f"{where} printed:\n{done.stdout}{done.stderr}"
        checked += 1
    return checked


@pytest.mark.parametrize("page", [p for p in PAGES if any(k == "run" for k, _, _ in sessions(p))])
def test_the_sessions_shown_in_the_docs_are_real(page, demo):
    run_page(page, demo)


def test_the_worked_example_is_checked_line_by_line(demo):
    """The README's worked example is found and compared (not silently skipped by the parser)."""
    steps = sessions("README.md")
    assert [c for k, c, e in steps if k == "run" and e][:3] == [
        ".venv/bin/retrainctl check", ".venv/bin/retrainctl check", '.venv/bin/retrainctl check --dry-run; echo "exit $?"']
    assert masked(["iris  no  evaluated 23s ago (check_interval 300s)  wait  not evaluated"]) == [
        "iris no evaluated <N>s ago (check_interval <AGE>) wait not evaluated"]


def config_snippets():
    """(page:line, mapping) of every ```yaml block of the docs that is a piece of a retrainctl config
    (its top-level keys are config keys), to be checked by `retrainctl config`."""
    from retrainctl.config.keys import TOP

    top = {k.name for k in TOP}
    for page in PAGES:
        text = (REPO / page).read_text()
        for match in re.finditer(r"^```yaml\n(.*?)^```$", text, flags=re.M | re.S):
            value = yaml.safe_load(match.group(1))
            if isinstance(value, dict) and value and set(value) <= top:
                yield f"{page}:{text[:match.start()].count(chr(10)) + 1}", value


SNIPPETS = list(config_snippets())


def test_the_docs_show_config_pieces():
    assert {where.split(":")[0] for where, _ in SNIPPETS} >= {"docs/configuration.md", "docs/data.md",
                                                             "docs/report-and-notifications.md"}


@pytest.mark.parametrize("where,snippet", SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_config_pieces_in_the_docs_are_valid(where, snippet, demo):
    """Each piece, put in the demo config in place of the sections it names, is a config that
    `retrainctl config` accepts (secrets it names by variable are set)."""
    path = demo / "etc" / "retrainctl.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(snippet)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", RETRAINCTL_WEBHOOK_SECRET="s3cret")
    done = subprocess.run(["retrainctl", "--config", str(path), "config"], cwd=demo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{where}: {done.stderr}"
