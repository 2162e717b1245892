"""The README stays a short landing page, and every relative link in it and in docs/ resolves."""
import re

from conftest import REPO

MAX_README_LINES = 160
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def pages():
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_readme_is_a_short_landing_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES
    assert lines[2:4] == [
        "    make run     # creates .venv, installs retrainctl, runs `retrainctl check` on the bundled iris and housing data",
        "    make test    # creates .venv if needed, installs test deps, runs the whole test suite"]


def test_every_relative_link_resolves():
    broken = []
    for page in pages():
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert broken == []


def test_the_link_check_sees_the_links():
    """The check above can fail: it finds the README's links into docs/, a broken one included."""
    targets = LINK.findall((REPO / "README.md").read_text())
    assert "docs/commands.md" in targets and "docs/guarantees.md" in targets
    assert LINK.findall("see [x](docs/nowhere.md#a) and [y](https://example.org)") == [
        "docs/nowhere.md#a", "https://example.org"]
