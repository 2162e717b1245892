"""Benchmark row: sixteen models fitted by one `retrainctl check` on a two-worker local Dask
cluster, against `executor: local` with `max_parallel: 1`, printed as a ratio.

    .venv/bin/python bench/dask_bench.py [--models 16] [--workers 2] [--json]

Starts its own `dask scheduler` and workers on 127.0.0.1 (free ports) and stops them after.
The ratio counts both the parallel workers and their warm imports: the local executor starts a
fresh child process (and imports scikit-learn) for every fit."""
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

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

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
    started = time.monotonic()
    out = subprocess.run([str(BIN / "retrainctl"), "-q", "--config", str(path), "check", "--json"],
                         capture_output=True, text=True)
    seconds = time.monotonic() - started
    if out.returncode != 0:
        sys.exit(f"check with {executor} failed (exit {out.returncode}): {out.stderr.strip()}")
    results = [m["result"] for m in json.loads(out.stdout)["models"]]
    if not all(r.startswith("promoted") for r in results):
        sys.exit(f"check with {executor}: not every model was promoted: {results}")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the row as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retrainctl-bench-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        shutil.copy(REPO / "data" / "raw" / "iris.csv", root / "data" / "iris.csv")
        local = run_check(root, args.models, {"type": "local", "max_parallel": 1})
        address, procs = start_cluster(root, args.workers)
        try:
            dask = run_check(root, args.models, {"type": "dask", "address": address})
        finally:
            stop(procs)
    row = {"row": f"dask_{args.models}_models_{args.workers}_workers_vs_local_max_parallel_1",
           "local_seconds": round(local, 2), "dask_seconds": round(dask, 2), "ratio": round(local / dask, 2)}
    if args.json:
        print(json.dumps(row))
    else:
        print(f"{row['row']}: local {local:.1f}s, dask {dask:.1f}s, ratio {local / dask:.2f}x "
              f"(local / dask; higher is better)")


if __name__ == "__main__":
    main()
