"""Custom trainers for the fault-injection tests (importable by the fit's child process)."""
import os
import time


def fit(X, y, params):
    """Sleep (so a test can kill us mid-fit), then fit a small tree on raw numeric columns."""
    from sklearn.tree import DecisionTreeClassifier

    marker = params.get("marker")
    if marker:
        open(marker, "w").write(str(os.getpid()))
    time.sleep(float(params.get("sleep", 0)))
    return DecisionTreeClassifier(random_state=0).fit(X.select_dtypes("number"), y)


def hog(X, y, params):
    """Allocate far more memory than max_memory_mb allows."""
    blob = bytearray(int(params["megabytes"]) << 20)
    return blob


def exit_hard(X, y, params):
    """What native code that cannot allocate often does: leave with a plain exit code."""
    os._exit(int(params.get("code", 1)))


def fill_disk(X, y, params):
    """Fill the tmpfs at params["disk"] (see the full_disk fixture) while fitting, so that the
    writes after the fit (the model's save, side files) meet a full disk."""
    from pathlib import Path

    from tests.conftest import Disk

    Disk(Path(params["disk"])).fill()
    return fit(X, y, {})
