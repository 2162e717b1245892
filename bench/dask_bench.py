"""Benchmark rows (`make bench-dask`), each one `retrainctl check` on a two-worker local Dask
cluster against the same check with `executor: local` and `max_parallel: 1`, printed as a ratio:

- `models`: sixteen declared models (random forests on iris);
- `segments`: the first training of 2,000 small store segments of one entry (80 orders each, a
  Ridge), built by bench/segments_bench.py: the fits go to the workers in batches (one task per
  batch); target: at least 1.6x.

    .venv/bin/python bench/dask_bench.py [--rows models,segments] [--models 16] [--segments 2000]
                                         [--workers 2] [--json]

Starts its own `dask scheduler` and workers on 127.0.0.1 (free ports) and stops them after.
The ratio counts both the parallel workers and their warm imports. Exit 1 when a row with a
target misses it."""
import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import segments_bench as sb
from bench import age, project

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEGMENTS_TARGET = 1.6  # the 2,000-segment row: dask at least this much faster

MODEL = {
    "data_path": "data/iris.csv",
    "target": "Species",
    "task": "classification",
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 100, "random_state": 0},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_check(root, n_models, executor):
    """Seconds one `check` takes to fit every model from a clean state."""
    for d in ("var", "etc"):
        shutil.rmtree(root / d, ignore_errors=True)
    (root / "etc").mkdir()
    # MLflow logging happens in the controller, the same for both executors: off, to compare where fits run.
    config = {"base_dir": "..", "executor": executor, "mlflow": {"enabled": False},
              "defaults": {"check_interval": 0, "min_data_size": 50},
              "models": {f"m{i:02d}": dict(MODEL) for i in range(n_models)}}
    path = root / "etc" / "retrainctl.yaml"
    path.write_text(yaml.safe_dump(config))
    return timed_check(str(path), f"check with {executor}")


def timed_check(config, what):
    """Seconds one `check` takes; exits the bench unless it promoted every model it trained."""
    started = time.monotonic()
    out = subprocess.run([str(BIN / "retrainctl"), "-q", "--config", config, "check", "--json"],
                         capture_output=True, text=True)
    seconds = time.monotonic() - started
    if out.returncode != 0:
        sys.exit(f"{what} failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}")
    results = [m["result"] for m in json.loads(out.stdout)["models"]]
    if not all(r.startswith("promoted") for r in results):
        sys.exit(f"{what}: not every model was promoted: {[r for r in results if not r.startswith('promoted')][:5]}")
    return seconds


def start_cluster(root, workers):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(root / "dask.log", "ab")
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT)]
    from distributed import Client

    client = Client(address, timeout=30, set_as_default=False)
    for _ in range(workers):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--host", "127.0.0.1", "--nthreads",
                                       "1", "--nworkers", "1", "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT))
    client.wait_for_workers(workers, timeout=60)
    # Warm the workers' imports once, as a long-running cluster would have them.
    client.run(lambda: __import__("sklearn.ensemble") and None)
    client.close()
    return address, procs


def stop(procs):
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def run_segments(config, executor):
    """Seconds the first `check` of the segment fleet takes with `executor`, from no state."""
    data = yaml.safe_load(Path(config).read_text())
    data["executor"] = executor
    Path(config).write_text(yaml.safe_dump(data, sort_keys=False))
    sb.fresh_state(Path(config).parents[1])(None)
    return timed_check(config, f"check of the segments with {executor}")


def models_row(root, n, workers):
    (root / "data").mkdir()
    shutil.copy(REPO / "data" / "raw" / "iris.csv", root / "data" / "iris.csv")
    local = run_check(root, n, {"type": "local", "max_parallel": 1})
    address, procs = start_cluster(root, workers)
    try:
        dask = run_check(root, n, {"type": "dask", "address": address})
    finally:
        stop(procs)
    return {"row": f"dask_{n}_models_{workers}_workers_vs_local_max_parallel_1",
            "local_seconds": round(local, 2), "dask_seconds": round(dask, 2), "ratio": round(local / dask, 2)}


def segments_row(root, n, workers):
    config, _ = sb.first_training(root, project, age, stores=n, rows_per_store=80, max_parallel=1)
    local = run_segments(config, {"type": "local", "max_parallel": 1})
    address, procs = start_cluster(root, workers)
    try:
        dask = run_segments(config, {"type": "dask", "address": address})
    finally:
        stop(procs)
    ratio = local / dask
    return {"row": f"dask_{n}_segments_{workers}_workers_vs_local_max_parallel_1",
            "local_seconds": round(local, 2), "dask_seconds": round(dask, 2), "ratio": round(ratio, 2),
            "target": SEGMENTS_TARGET, "result": "PASS" if ratio >= SEGMENTS_TARGET else "MISS"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="models,segments", help="which rows, comma-separated: models, segments")
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--segments", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print each row as a line of JSON")
    args = parser.parse_args()
    wanted = args.rows.split(",")
    if not wanted or set(wanted) - {"models", "segments"}:
        parser.error(f"argument --rows: expected models, segments or both, comma-separated, got {args.rows!r}")
    rows = []
    for name in wanted:
        with tempfile.TemporaryDirectory(prefix="retrainctl-bench-") as tmp:
            row = (models_row if name == "models" else segments_row)(
                Path(tmp), args.models if name == "models" else args.segments, args.workers)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            target = f"; target >= {row['target']}x: {row['result']}" if "target" in row else ""
            print(f"{row['row']}: local {row['local_seconds']:.1f}s, dask {row['dask_seconds']:.1f}s, "
                  f"ratio {row['ratio']:.2f}x (local / dask; higher is better){target}", flush=True)
    if any(row.get("result") == "MISS" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
