"""Trainers for the executor tests, importable by the controller, its fit processes and Dask
workers (the tests put this folder on their PYTHONPATH)."""
import os
import time


def slow_tree(X, y, params):
    """A decision tree that takes its time: waits while `hold_file` exists (at most
    `max_seconds`), sleeps `sleep` seconds, waits at a barrier with the other fits (`barrier_dir`),
    and notes when it ran and whether the barrier was met in `trace_dir`."""
    from sklearn.tree import DecisionTreeClassifier

    started = time.time()
    deadline = time.monotonic() + params.get("max_seconds", 60)
    hold = params.get("hold_file")
    while hold and os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(params.get("sleep", 0))
    met = _barrier(params["barrier_dir"], params["barrier_count"], params.get("barrier_seconds", 5)) \
        if params.get("barrier_dir") else None
    model = DecisionTreeClassifier(random_state=0).fit(X, y)
    if params.get("trace_dir"):
        with open(os.path.join(params["trace_dir"], f"{os.getpid()}-{started}"), "w") as fh:
            fh.write(f"{started} {time.time()} {os.getpid()} {met}\n")
    return model


def _barrier(folder, count, seconds):
    """Check in, then wait up to `seconds` for `count` fits to have checked in: True when they
    all did, i.e. this many fits were running at the same time."""
    with open(os.path.join(folder, f"{os.getpid()}-{time.time()}"), "w"):
        pass
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(os.listdir(folder)) >= count:
            return True
        time.sleep(0.02)
    return False


_fits_here = 0  # fits this process has run (a Dask worker runs many)


def held_ridge(X, y, params):
    """Ridge on the imputed inputs. The process's fit number `hold_at` (1-based) notes the
    process's pid in `holding_dir` and waits while `hold_file` exists (at most `max_seconds`):
    a worker stopped in the middle of a batch."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    global _fits_here
    _fits_here += 1
    if _fits_here == params["hold_at"]:
        with open(os.path.join(params["holding_dir"], str(os.getpid())), "w"):
            pass
        deadline = time.monotonic() + params.get("max_seconds", 60)
        while os.path.exists(params["hold_file"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    return make_pipeline(SimpleImputer(), Ridge()).fit(X, y)
