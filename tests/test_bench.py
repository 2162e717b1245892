"""`make bench` is not run by the suite (minutes, and timing belongs there, not in tests); this
keeps the script itself working: its arguments, and one quick row end to end."""
import subprocess

import pytest

from conftest import BIN, REPO

BENCH = [str(BIN / "python"), str(REPO / "bench" / "bench.py")]


@pytest.mark.parametrize("args, message", [
    (["--rows", "13"], "argument --rows: expected row numbers from 1 to 12, comma-separated (e.g. 1,6), got '13'"),
    (["--rows", "1,,2"], "argument --rows: expected row numbers from 1 to 12, comma-separated (e.g. 1,6), got '1,,2'"),
    (["--runs", "0"], "argument --runs: expected a whole number of at least 1, got '0'"),
])
def test_bad_arguments(args, message):
    proc = subprocess.run(BENCH + args, capture_output=True, text=True, cwd="/")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == f"bench.py: error: {message}"


def test_row_1_end_to_end():
    proc = subprocess.run(BENCH + ["--quick", "--rows", "1", "--runs", "1"], capture_output=True, text=True,
                          cwd="/", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr  # 1 only if the row misses its target on a loaded machine
    [row] = [line for line in proc.stdout.splitlines() if line.startswith("| 1 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "no-op `check` (2 models, nothing due) / `python -c pass`"
    assert cells[5] == "<= 6" and cells[6] in ("PASS", "MISS")
    assert float(cells[2].removesuffix(" s")) > 0 and float(cells[4]) > 0
