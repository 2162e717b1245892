"""Trainers for the executor tests, importable by the controller, its fit processes and Dask
workers (the tests put this folder on their PYTHONPATH)."""
import os
import time


def slow_tree(X, y, params):
    """A decision tree that takes its time: waits while `hold_file` exists (at most
    `max_seconds`), sleeps `sleep` seconds, and notes when it ran in `trace_dir`."""
    from sklearn.tree import DecisionTreeClassifier

    started = time.time()
    deadline = time.monotonic() + params.get("max_seconds", 60)
    hold = params.get("hold_file")
    while hold and os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(params.get("sleep", 0))
    model = DecisionTreeClassifier(random_state=0).fit(X, y)
    if params.get("trace_dir"):
        with open(os.path.join(params["trace_dir"], f"{os.getpid()}-{started}"), "w") as fh:
            fh.write(f"{started} {time.time()} {os.getpid()}\n")
    return model
