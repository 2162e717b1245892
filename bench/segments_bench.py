"""Row 10 of `make bench`: many models (`segment_by`), against what a user would write instead.

- 10,000 store segments already trained, nothing changed: a no-op `check` (and `status`) against
  the no-op `check` of a project with one model; absolute wall and peak RSS too.
- One new monthly partition holding rows of 50 of those stores: `check --dry-run` names exactly
  those 50, against a no-op `check` of one model plus pandas reading that partition.
- The first training of 1,000 stores x 500 rows, one CSV: `check` against a bare script that reads
  it, groups it by store and fits the same pipeline per group in a loop (bench/bare_segments.py).
- The first training of 300 separately declared small models against the same bare loop over
  their 300 files.

The 10,000 trained stores are made the way many_models() in bench.py makes its 1,000 models: one
store trained for real, its version copied to every other store with that store's own data hash
(from the segment index a dry run builds), and a success record each; a dry run then checks that
nothing is due, so the copies are exactly what a real first check would have left.
"""
import json
import os
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["price", "temp"]
SEGMENT_MODEL = {"segment_by": ["store"], "target": "units", "task": "regression", "features": FEATURES,
                 "estimator": "sklearn.linear_model.Ridge", "min_data_size": 10, "min_segment_rows": 10}


def store_rows(stores, rows_per_store, seed, month=1, skew=False):
    """Orders of `stores` stores: `rows_per_store` rows each (with `skew`, a long tail: store i
    has about rows_per_store * 2 / (1 + i / 50) rows), a timestamp, an order id, a boolean promo,
    prices with gaps and labels missing for cancelled orders, in shuffled order."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    counts = np.full(stores, rows_per_store)
    if skew:
        counts = np.maximum(10, (rows_per_store * 2 / (1 + np.arange(stores) / 50)).astype(int))
    store = np.repeat([f"s{i:05d}" for i in range(stores)], counts)
    n = len(store)
    effect = np.repeat(rng.normal(0, 5, stores), counts)
    price = rng.normal(20, 4, n).round(2)
    promo = rng.random(n) < 0.2
    temp = (12 + rng.normal(0, 3, n)).round(1)
    units = (60 + effect - 1.2 * price + 8 * promo + 0.8 * temp + rng.normal(0, 6, n)).round(1)
    start = pd.Timestamp(2025, month, 1)
    frame = pd.DataFrame({"order_id": np.arange(n) + seed * 10_000_000,
                          "ts": (start + pd.to_timedelta(rng.uniform(0, 28 * 86400, n), unit="s")).strftime(
                              "%Y-%m-%dT%H:%M:%SZ"),
                          "store": store, "promo": promo, "price": price, "temp": temp, "units": units})
    frame.loc[rng.random(n) < 0.03, "price"] = np.nan
    frame.loc[rng.random(n) < 0.05, "units"] = np.nan
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def fleet(root, project, run, rc, age, stores=10_000, months=3):
    """A project whose entry `sales` has `stores` stores over `months` monthly CSV partitions (a
    skewed number of rows per store), every store with a current model and a success record, as
    a first check leaves them. Returns the config path."""
    folder = root / "data" / "sales"
    for month in range(1, months + 1):
        path = folder / f"month=2025-{month:02d}" / "part-0.csv"
        path.parent.mkdir(parents=True)
        store_rows(stores, 20, seed=month, month=month, skew=True).to_csv(path, index=False)
        age(path)
    config = project(root, {"sales": dict(SEGMENT_MODEL, data_path="data/sales/")}, mlflow={"enabled": False})
    run(rc(config, "train", "sales:s00000"))  # one real version: the template
    index = json.loads((root / "var" / "state" / "segment-index" / "sales.json").read_text())["set"]["segments"]
    models = root / "var" / "models"
    template = models / "sales:s00000" / "v1"
    meta = json.loads((template / "metadata.json").read_text())
    model_bytes = (template / "model.joblib").read_bytes()
    events = []
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))
    for i, (key, (n_rows, digest, _)) in enumerate(index.items()):
        name = f"sales:{key}"
        if name == "sales:s00000":
            continue
        version = models / name / "v1"
        version.mkdir(parents=True)
        (version / "model.joblib").write_bytes(model_bytes)
        m = dict(meta, model_name=name, data_hash=digest, trained_at_ts=now, attempt_id=f"{i:016x}")
        (version / "metadata.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
        os.symlink("v1", models / name / "current")
        events.append({"model_name": name, "trigger_type": "initial", "status": "success", "version": 1,
                       "trigger_time": stamp, "duration": 0.5, "data_hash": digest, "rows": n_rows,
                       "config_hash": meta.get("config_hash"), "description": "no current model",
                       "metric": "r2", "score": meta.get("score"), "error": None, "error_type": None,
                       "attempt_id": f"{i:016x}", "promoted": True})
    with open(root / "var" / "state" / "events.jsonl", "a") as fh:
        fh.writelines(json.dumps(e, sort_keys=True) + "\n" for e in events)
    run(rc(config, "check", "--dry-run"))  # exit 0: nothing due, so the copies are what a check would leave
    run(rc(config, "check"))
    run(rc(config, "check"))
    return config


def first_training(root, project, age, stores=1_000, rows_per_store=500, max_parallel=2):
    """(config, data file): `stores` stores x `rows_per_store` rows in one CSV, nothing trained;
    the fits use `max_parallel` processes (both cores of the bench machine)."""
    data = root / "data" / "sales.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    store_rows(stores, rows_per_store, seed=7).to_csv(data, index=False)
    age(data)
    config = project(root, {"sales": dict(SEGMENT_MODEL, data_path="data/sales.csv")}, mlflow={"enabled": False},
                     executor={"type": "local", "max_parallel": max_parallel})
    return config, data


def declared(root, project, age, n=300, rows=500, max_parallel=2):
    """(config, data folder): `n` separately declared models, one small CSV of one store each."""
    folder = root / "data" / "stores"
    folder.mkdir(parents=True)
    frame = store_rows(n, rows, seed=11)
    models = {}
    for key, part in frame.groupby("store"):
        path = folder / f"{key}.csv"
        part.drop(columns="store").to_csv(path, index=False)
        age(path)
        models[f"store_{key}"] = dict(SEGMENT_MODEL, data_path=f"data/stores/{key}.csv")
        for k in ("segment_by", "min_segment_rows"):
            models[f"store_{key}"].pop(k)
    config = project(root, models, mlflow={"enabled": False}, executor={"type": "local", "max_parallel": max_parallel})
    return config, folder


class FreshState:
    """Before each run of a first training, both sides start from nothing: retrainctl with no
    state and no models (root/var), the bare script with an empty output folder (root/bare). The
    previous run's files are moved aside, not deleted, and deleted by done() once the row is
    measured: on ext4 without a journal (this bench's machines), every file created within 30 s
    of a deletion walks past the inodes just freed (find_inode_bit skips recently deleted ones),
    so deleting a first training's ~5,000 files right before the next one would charge that run
    with the harness's own clean-up."""

    def __init__(self, root, outputs=("var", "bare")):
        self.root, self.outputs = root, outputs
        self.aside = root / "aside"
        self.count = 0

    def __call__(self, _):
        for name in self.outputs:
            if (self.root / name).exists():
                self.count += 1
                self.aside.mkdir(exist_ok=True)
                (self.root / name).rename(self.aside / f"{name}-{self.count}")

    def done(self):
        shutil.rmtree(self.aside, ignore_errors=True)


def fresh_state(root):
    """Before a first training, no state and no models (deleted at once)."""
    def before(_):
        shutil.rmtree(root / "var", ignore_errors=True)
    return before
