"""The type checker passes on the package (mypy.ini): run here, beside the other tests, so that
`make test` checks the types without a serial step of its own (`make typecheck` runs it alone)."""
import subprocess
import sys

from conftest import REPO


def test_the_type_checker_passes():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found in "), done.stdout
