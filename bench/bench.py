"""`make bench`: how close retrainctl runs to the machine's limits, as ratios measured side by
side in the same run (absolute times vary between machines; the ratios should not).

    .venv/bin/python bench/bench.py [--runs N] [--rows 1,2,...] [--quick] [--keep]

Builds everything in a temporary folder: projects with the bundled data, a 1 GiB CSV made by
repeating housing rows, configs with 10 and 1,000 models, state logs with 1,000 and 1,000,000
events. Every row alternates its two commands run by run and reports the medians, their ratio
against the target, and the peak RSS of each command (from wait4, so a training child counts).
Prints a Markdown table, ready for the README's Performance section.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "raw"
PYTHON = sys.executable
RETRAINCTL = str(Path(PYTHON).parent / "retrainctl")
# The fingerprint cache trusts a file only once its mtime is this old (same-tick rewrites).
RACY_SECONDS = 2.1
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # GNU time, for peak RSS

IRIS = {"data_path": "data/iris.csv", "target": "Species", "task": "classification",
        "features": ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"],
        "estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"random_state": 0}}
HOUSING = {"data_path": "data/housing.csv", "target": "median_house_value", "task": "regression",
           "estimator": "sklearn.linear_model.Ridge"}


# --- measuring ----------------------------------------------------------------------------------

def run(cmd, expect=(0,)):
    """Run one command; its wall time in seconds."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        _expect(cmd, proc.returncode, expect, err)
    return wall


def peak_rss(cmd, expect=(0,)):
    """Peak RSS in MB of one run of the command (the largest of it and its children), measured by
    GNU time: a child forked from this (big) Python process would report our pages as its own."""
    with tempfile.NamedTemporaryFile() as out, tempfile.TemporaryFile() as err:
        if TIME:
            proc = subprocess.run([TIME, "-f", "%M", "-o", out.name, *cmd], stdout=subprocess.DEVNULL, stderr=err)
            _expect(cmd, proc.returncode, expect, err)
            return int(open(out.name).read().split()[-1]) / 1024
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        _expect(cmd, os.waitstatus_to_exitcode(status), expect, err)
        return usage.ru_maxrss / 1024


def _expect(cmd, code, expect, err):
    if code not in expect:
        err.seek(0)
        sys.exit(f"bench: {' '.join(map(str, cmd))} exited {code} (expected {expect}):\n"
                 + err.read().decode(errors="replace")[-2000:])


class Row:
    def __init__(self, number, name, target):
        self.number, self.name, self.target = number, name, target
        self.a, self.b, self.a_rss, self.b_rss = [], [], 0.0, 0.0

    def measure(self, a, b, runs, before=None, expect_a=(0,), expect_b=(0,)):
        """Alternate commands a and b (which goes first alternates too), with `before(i)` ahead of
        each pair; then one more run of each under GNU time for its peak RSS."""
        for i in range(runs):
            if before:
                before(i)
            if i % 2 == 0:
                self.a.append(run(a, expect_a))
                self.b.append(run(b, expect_b))
            else:
                self.b.append(run(b, expect_b))
                self.a.append(run(a, expect_a))
        if before:
            before(runs)
        self.a_rss, self.b_rss = peak_rss(a, expect_a), peak_rss(b, expect_b)
        return self

    def cells(self):
        a, b = statistics.median(self.a), statistics.median(self.b)
        ratio = a / b
        ok = ratio <= self.target
        return [str(self.number), self.name, f"{a:.3f} s", f"{b:.3f} s", f"{ratio:.2f}", f"<= {self.target:g}",
                "PASS" if ok else "MISS", f"{self.a_rss:.0f} / {self.b_rss:.0f} MB"], ok


class Floor(Row):
    """A measured lower bound, shown for context: no target of its own."""

    def __init__(self, number, name):
        super().__init__(number, name, float("inf"))

    def cells(self):
        cells, _ = super().cells()
        return cells[:5] + ["-", "floor", cells[7]], True


class RssRatio(Row):
    """The peak RSS of a measured row against its baseline's, with a target of its own."""

    def __init__(self, number, name, target, row):
        super().__init__(number, name, target)
        self.a_rss, self.b_rss = row.a_rss, row.b_rss

    def cells(self):
        ratio = self.a_rss / self.b_rss
        ok = ratio <= self.target
        return [str(self.number), self.name, f"{self.a_rss:.0f} MB", f"{self.b_rss:.0f} MB", f"{ratio:.2f}",
                f"<= {self.target:g}", "PASS" if ok else "MISS", "-"], ok


class Check:
    """A plain threshold (no baseline), e.g. peak memory."""

    def __init__(self, number, name, value, unit, target):
        self.number, self.name, self.value, self.unit, self.target = number, name, value, unit, target

    def cells(self):
        ok = self.value <= self.target
        return [str(self.number), self.name, f"{self.value:.3g} {self.unit}", "-", "-",
                f"<= {self.target:g} {self.unit}", "PASS" if ok else "MISS", "-"], ok


# --- building the projects ------------------------------------------------------------------------

def project(root, models, **top):
    import yaml

    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    config = {"base_dir": "..", "state_dir": "var/state", "model_dir": "var/models",
              "defaults": {"check_interval": 0, "min_data_size": 50}, **top, "models": models}
    path = root / "etc" / "retrainctl.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def with_textfile(config):
    """A copy of the config that also writes the metrics textfile after every run."""
    return with_keys(config, "textfile.yaml", textfile_path="var/metrics.prom")


def with_keys(config, name="changed.yaml", **top):
    """A copy of the config (beside it, as `name`) with these top-level keys set."""
    import yaml

    data = yaml.safe_load(Path(config).read_text())
    data.update(top)
    path = Path(config).with_name(name)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def age(path, seconds=3600):
    """Data written an hour ago, as a timer finds it (a file younger than RACY_SECONDS is re-hashed)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def small_housing(dest, every=40):
    lines = (DATA / "housing.csv").read_text().splitlines(keepends=True)
    dest.write_text(lines[0] + "".join(lines[1::every]))


def rc(config, *args):
    return [RETRAINCTL, "-q", "--config", config, *args]


def noop_project(root, quick=False):
    """Two small models, trained, nothing due: the everyday timer run. With `quick` (the
    harness's own test), trained without MLflow: a no-op check never touches it either way."""
    config = project(root, {"iris": dict(IRIS), "housing": dict(HOUSING)}, **({"mlflow": {"enabled": False}} if quick else {}))
    shutil.copy(DATA / "iris.csv", root / "data" / "iris.csv")
    small_housing(root / "data" / "housing.csv")
    for f in (root / "data").iterdir():
        age(f)
    run(rc(config, "check"))
    run(rc(config, "check"))  # warm: fingerprint cache, validation cache, summary
    return config


def big_csv(path, size=1 << 30):
    """~1 GiB of housing rows: one block of real rows written over and over (seconds, not minutes)."""
    lines = (DATA / "housing.csv").read_bytes().split(b"\n")
    header, block = lines[0] + b"\n", b"\n".join(line for line in lines[1:] if line) + b"\n"
    with open(path, "wb") as fh:
        fh.write(header)
        for _ in range(max(1, (size - len(header)) // len(block))):
            fh.write(block)
    age(path)


def many_models(root, n, template_project):
    """n models, each on its own small CSV, each with a current model: a copy of a real trained
    model whose metadata names that file's hash, and a success event in the log, as `check`
    would have left them."""
    import blake3

    models = {}
    src = Path(template_project) / "var" / "models" / "iris"
    version = os.readlink(src / "current")
    meta = json.loads((src / version / "metadata.json").read_text())
    model_bytes = (src / version / "model.joblib").read_bytes()
    iris = (DATA / "iris.csv").read_bytes()
    events = []
    now = time.time()
    for i in range(n):
        name = f"m{i:04d}"
        data = iris + f"5.{i % 10},3.{i % 7},1.{i % 5},0.{i % 3},Iris-setosa\n".encode()
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "data" / f"{name}.csv").write_bytes(data)
        age(root / "data" / f"{name}.csv")
        models[name] = dict(IRIS, data_path=f"data/{name}.csv")
        folder = root / "var" / "models" / name / "v1"
        folder.mkdir(parents=True)
        (folder / "model.joblib").write_bytes(model_bytes)
        digest = blake3.blake3(data).hexdigest()
        m = dict(meta, model_name=name, version=1, data_hash=digest, trained_at_ts=now,
                 rows=meta["rows"] + 1)
        (folder / "metadata.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
        os.symlink("v1", root / "var" / "models" / name / "current")
        events.append({"model_name": name, "trigger_type": "initial", "status": "success", "version": 1,
                       "trigger_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)),
                       "duration": 0.5, "data_hash": digest, "description": "no current model",
                       "metric": "accuracy", "score": meta.get("score"), "error": None, "error_type": None,
                       "attempt_id": f"{i:016x}", "promoted": True})
    (root / "var" / "state").mkdir(parents=True)
    with open(root / "var" / "state" / "events.jsonl", "w") as fh:
        fh.writelines(json.dumps(e, sort_keys=True) + "\n" for e in events)
    config = project(root, models)
    run(rc(config, "check"))  # validates 1,000 estimators once, hashes every file once
    run(rc(config, "check"))
    return config


EVENT = ('{{"attempt_id": "{a:016x}", "data_hash": "{h:064x}", "description": "data file changed: data/{m}.csv", '
         '"duration": 1.25, "error": {e}, "error_type": {et}, "metric": "{metric}", "model_name": "{m}", '
         '"rows": 149, "score": {s}, "status": "{st}", "trigger_time": "{t}", "trigger_type": "data_change", '
         '"version": {v}}}\n')
# One cycle of a model's life: (status, error, error_type, attempt within the cycle); a `started`
# record and its outcome share their attempt id, as real ones do.
PATTERN = [("started", "null", "null", 0), ("success", "null", "null", 0),
           ("skipped", '"too few rows"', '"too_few_rows"', 1),
           ("started", "null", "null", 2), ("failure", '"fit failed: bad input"', '"fit_error"', 2),
           ("started", "null", "null", 3), ("rejected", "null", "null", 3),
           ("started", "null", "null", 4), ("success", "null", "null", 4)]


def long_history(config_root, n):
    """Replace the log of a trained project by n events: years of synthetic history for its two
    models, then the real events of their training (so the fold ends where the store is)."""
    state = Path(config_root) / "var" / "state"
    real = (state / "events.jsonl").read_bytes()
    start = time.time() - 3 * 365 * 86400
    real_count = real.count(b"\n")
    cycles = (n - real_count) // len(PATTERN)  # whole cycles: no attempt is left open
    with open(state / "events.jsonl", "wb") as fh:
        lines = []
        for i in range(n - real_count):
            # the few events short of n after the whole cycles: skips
            st, e, et, attempt = PATTERN[i % len(PATTERN)] if i < cycles * len(PATTERN) else PATTERN[2]
            cycle = i // len(PATTERN)
            m = ("iris", "housing")[cycle % 2]
            lines.append(EVENT.format(a=cycle * 5 + attempt, h=cycle, e=e, et=et, m=m, metric="accuracy" if m == "iris" else "r2",
                                      s=0.9, st=st, v=cycle + 1,
                                      t=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start + i * 90))))
            if len(lines) == 50000:
                fh.write("".join(lines).encode())
                lines = []
        fh.write("".join(lines).encode())
        fh.write(real)
    for cache in ("summary.json",):
        try:
            os.unlink(state / cache)
        except FileNotFoundError:
            pass


# --- rows -----------------------------------------------------------------------------------------

ROWS = range(1, 14)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def row_numbers(text):
    try:
        wanted = {int(r) for r in text.split(",")}
    except ValueError:
        wanted = set()
    if not wanted or not wanted <= set(ROWS):
        raise argparse.ArgumentTypeError(f"expected row numbers from {ROWS[0]} to {ROWS[-1]}, comma-separated "
                                         f"(e.g. 1,6), got {text!r}")
    return wanted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=9, help="runs per command for the fast rows (default 9)")
    parser.add_argument("--rows", type=row_numbers, default=set(ROWS), help="which rows to run, e.g. 1,6 (default all)")
    parser.add_argument("--quick", action="store_true", help="smaller data (64 MiB, 100 models, 100,000 events, 1,000 "
                        "segments): a smoke test")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    wanted = args.rows
    runs = args.runs
    big_size = (64 << 20) if args.quick else (1 << 30)
    n_models, n_events = (100, 100_000) if args.quick else (1000, 1_000_000)

    tmp = Path(tempfile.mkdtemp(prefix="retrainctl-bench-"))
    rows, infos = [], []
    began = time.monotonic()
    try:
        noop = noop_project(tmp / "noop", args.quick)
        if 1 in wanted:
            rows.append(Row(1, "no-op `check` (2 models, nothing due) / `python -c pass`", 6).measure(
                rc(noop, "check"), [PYTHON, "-c", "pass"], runs))

        if wanted & {2, 3}:
            big_root = tmp / "big"
            big = project(big_root, {"iris": dict(IRIS), "big": dict(HOUSING, data_path="data/big.csv")})
            shutil.copy(DATA / "iris.csv", big_root / "data" / "iris.csv")
            age(big_root / "data" / "iris.csv")
            csv = big_root / "data" / "big.csv"
            t = time.monotonic()
            big_csv(csv, big_size)
            size = csv.stat().st_size
            infos.append(f"{size / (1 << 30):.2f} GiB CSV written in {time.monotonic() - t:.1f} s")
            run(rc(big, "check", "--dry-run"), expect=(3,))  # `big` has no model yet: due (initial)
            with open(csv, "rb") as fh:  # a digit in the middle, rewritten before each run
                fh.seek(size // 2)
                chunk = fh.read(4096)
            spot = size // 2 + next(i for i, c in enumerate(chunk) if chr(c).isdigit())

            def change(i):
                fd = os.open(csv, os.O_RDWR)
                try:
                    digit = b"%d" % ((int(os.pread(fd, 1, spot)) + 1) % 10)
                    os.pwrite(fd, digit, spot)
                finally:
                    os.close(fd)
                time.sleep(RACY_SECONDS)  # changed, not hashed yet, old enough to be cached once hashed

            if 2 in wanted:
                rows.append(Row(2, f"`check --dry-run` on a newly changed {size / (1 << 30):.2g} GiB CSV / `md5sum`", 0.4)
                            .measure(rc(big, "check", "--dry-run"), ["md5sum", str(csv)], max(3, runs // 2),
                                     before=change, expect_a=(3,)))
            if 3 in wanted:
                run(rc(big, "check", "--dry-run"), expect=(3,))
                rows.append(Row(3, "the same file unchanged, `check --dry-run` again / no-op `check`", 1.2).measure(
                    rc(big, "check", "--dry-run"), rc(noop, "check"), runs, expect_a=(3,)))

        if 4 in wanted:
            t = time.monotonic()
            many = many_models(tmp / "many", n_models, tmp / "noop")
            few = many_models(tmp / "few", 10, tmp / "noop")
            infos.append(f"{n_models}-model project built and first checked in {time.monotonic() - t:.1f} s")
            rows.append(Row(4, f"no-op `check` with {n_models:,} models / with 10", 3).measure(
                rc(many, "check"), rc(few, "check"), runs))

        if 5 in wanted:
            t = time.monotonic()
            shutil.copytree(tmp / "noop", tmp / "events-big", symlinks=True)
            shutil.copytree(tmp / "noop", tmp / "events-small", symlinks=True)
            long_history(tmp / "events-big", n_events)
            long_history(tmp / "events-small", 1000)
            logsize = (tmp / "events-big" / "var" / "state" / "events.jsonl").stat().st_size
            infos.append(f"{n_events:,}-event log ({logsize / (1 << 20):.0f} MiB) written in {time.monotonic() - t:.1f} s")
            many_cfg = str(tmp / "events-big" / "etc" / "retrainctl.yaml")
            few_cfg = str(tmp / "events-small" / "etc" / "retrainctl.yaml")
            wall = run(rc(many_cfg, "status"))
            rss = peak_rss(rc(many_cfg, "status"))
            infos.append(f"summary.json rebuilt from the whole {n_events:,}-event log by the first `status`: "
                         f"{wall:.1f} s; peak RSS of a `status` after it {rss:.0f} MB")
            run(rc(few_cfg, "status"))
            rows.append(Row(5, f"`status` with {n_events:,} events / with 1,000", 1.5).measure(
                rc(many_cfg, "status"), rc(few_cfg, "status"), runs))
            rows.append(Row(5, f"`history --limit 20` with {n_events:,} events / with 1,000", 1.5).measure(
                rc(many_cfg, "history", "--limit", "20"), rc(few_cfg, "history", "--limit", "20"), runs))
            checks = Row(5, f"no-op `check` with {n_events:,} events / with 1,000", 1.5).measure(
                rc(many_cfg, "check"), rc(few_cfg, "check"), runs)
            rows.append(checks)
            rows.append(Check(5, f"peak RSS of `check` with {n_events:,} events", checks.a_rss, "MB", 100))
            # The same with metrics exported after the run (textfile; a push reads the same state).
            many_tf, few_tf = with_textfile(many_cfg), with_textfile(few_cfg)
            run(rc(many_tf, "check"))
            run(rc(few_tf, "check"))
            rows.append(Row(5, f"no-op `check` writing the metrics textfile, {n_events:,} events / 1,000", 1.5).measure(
                rc(many_tf, "check"), rc(few_tf, "check"), runs))

        if 6 in wanted:
            train_root = tmp / "train"
            train_cfg = project(train_root, {"housing": dict(HOUSING, data_path="data/housing.csv",
                                                             estimator="sklearn.ensemble.HistGradientBoostingRegressor",
                                                             params={"random_state": 0})})
            shutil.copy(DATA / "housing.csv", train_root / "data" / "housing.csv")
            age(train_root / "data" / "housing.csv")
            run(rc(train_cfg, "train", "housing"))  # warm-up: validation cache, the first version
            out = str(train_root / "bare.joblib")
            row = Row(6, "`train housing` / a bare script fitting the same pipeline + joblib.dump", 1.3)
            rows.append(row.measure(rc(train_cfg, "train", "housing", "--force"),
                                    [PYTHON, str(REPO / "bench" / "bare_fit.py"), str(train_root / "data" / "housing.csv"),
                                     out], max(3, runs // 2)))
            infos.append("row 6: MLflow tracking " + mlflow_state(train_cfg))
            # Against what a user would hand-write instead: fit, log, register and alias the same
            # pipeline in one script (bench/mlflow_fit.py, its own embedded sqlite store).
            rows.append(Row(6, "the same `train housing` (embedded MLflow) / a script fitting, logging, registering, "
                               "aliasing it by hand", 1.0).measure(
                rc(train_cfg, "train", "housing", "--force"),
                [PYTHON, str(REPO / "bench" / "mlflow_fit.py"), str(train_root / "data" / "housing.csv"),
                 HOUSING["target"], "sqlite:///" + str(train_root / "by-hand.db"), "housing"],
                max(3, runs // 2)))
            # What tracking cannot get under while it finishes before `train` returns: the
            # tracking process has to import MLflow with the libraries that load the model.
            rows.append(Floor(6, "floor: `import mlflow.sklearn, pandas, sklearn.ensemble` alone / the bare script").measure(
                [PYTHON, "-c", "import mlflow.sklearn, pandas, sklearn.ensemble"],
                [PYTHON, str(REPO / "bench" / "bare_fit.py"), str(train_root / "data" / "housing.csv"), out],
                max(3, runs // 2)))
            # The same without MLflow: what retrainctl itself adds (child process, hashing, store, records).
            bare_root = tmp / "train-no-mlflow"
            bare_cfg = project(bare_root, {"housing": dict(HOUSING, data_path="data/housing.csv",
                                                           estimator="sklearn.ensemble.HistGradientBoostingRegressor",
                                                           params={"random_state": 0})}, mlflow={"enabled": False})
            shutil.copy(DATA / "housing.csv", bare_root / "data" / "housing.csv")
            age(bare_root / "data" / "housing.csv")
            run(rc(bare_cfg, "train", "housing"))
            rows.append(Row(6, "the same `train housing` with `mlflow.enabled: false` / the bare script", 1.3).measure(
                rc(bare_cfg, "train", "housing", "--force"),
                [PYTHON, str(REPO / "bench" / "bare_fit.py"), str(bare_root / "data" / "housing.csv"), out],
                max(3, runs // 2)))

        if 7 in wanted:
            infos.append(dask_row())

        if 8 in wanted:
            rows += million_rows(tmp / "million", 50_000 if args.quick else 1_000_000, max(3, runs // 3), infos)

        if 9 in wanted:
            data_set_rows(tmp, rows, infos, runs, big_size)

        if 10 in wanted:
            segment_rows(tmp, rows, infos, runs, args.quick)

        if 11 in wanted:
            metrics_rows(tmp, rows, infos, args.quick)
        if 12 in wanted:
            segment_mlflow_row(tmp, rows, infos, runs, args.quick)
        if 13 in wanted:
            report_rows(tmp, rows, infos, runs, args.quick)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print_report(rows, infos, time.monotonic() - began, runs)
    return 0 if all(r.cells()[1] for r in rows) else 1


def million_csv(path, n):
    """n rows x 20 numeric features and a target: a block of distinct random rows written over and
    over (formatting a million rows one by one would take longer than the fits)."""
    import numpy as np

    rng = np.random.default_rng(0)
    block = min(n, 50_000)
    X = rng.normal(size=(block, 20))
    y = X[:, :5] @ np.arange(1, 6) + 3 * np.sin(X[:, 5]) + rng.normal(scale=0.5, size=block)
    rows = "".join(",".join(f"{v:.5g}" for v in row) + "\n" for row in np.column_stack([X, y])).encode()
    with open(path, "wb") as fh:
        fh.write((",".join(f"f{i}" for i in range(20)) + ",target\n").encode())
        for _ in range(n // block):
            fh.write(rows)
    age(path)


def million_rows(root, n, runs, infos):
    """Row 8: `train` on n rows x 20 features (HistGradientBoostingRegressor) against hand-written
    scripts: the bare one with MLflow off, one doing MLflow's part by hand with it on."""
    model = {"data_path": "data/million.csv", "target": "target", "task": "regression",
             "estimator": "sklearn.ensemble.HistGradientBoostingRegressor", "params": {"random_state": 0}}
    off_cfg = project(root / "off", {"million": dict(model)}, mlflow={"enabled": False})
    on_cfg = project(root / "on", {"million": dict(model)})
    data = root / "off" / "data" / "million.csv"
    t = time.monotonic()
    million_csv(data, n)
    os.link(data, root / "on" / "data" / "million.csv")
    infos.append(f"row 8: {n:,}-row CSV ({data.stat().st_size / (1 << 20):.0f} MiB) written in {time.monotonic() - t:.1f} s")
    for cfg in (off_cfg, on_cfg):
        run(rc(cfg, "train", "million"))  # warm-up: validation cache, the first version
    # The measured trainings are --force: on the same data and config a plain `train` would stop at
    # "unchanged" (a retrain would only copy the live version) without fitting anything.
    bare = [PYTHON, str(REPO / "bench" / "bare_fit.py"), str(data), str(root / "bare.joblib"), "target"]
    by_hand = [PYTHON, str(REPO / "bench" / "mlflow_fit.py"), str(data), "target",
               "sqlite:///" + str(root / "by-hand.db"), "million"]
    off = Row(8, f"`train` {n:,} rows x 20 features, `mlflow.enabled: false` / the bare script", 1.15).measure(
        rc(off_cfg, "train", "million", "--force"), bare, runs)
    rss = off.a_rss / off.b_rss
    on = Row(8, "the same `train` with the embedded MLflow / a script logging, registering, aliasing it by hand",
             0.85).measure(rc(on_cfg, "train", "million", "--force"), by_hand, runs)
    meta = json.loads((root / "off" / "var" / "models" / "million" / "current" / "metadata.json").read_text())
    phases = ", ".join(f"{k} {v:g} s" for k, v in meta.get("phase_seconds", {}).items())
    infos.append(f"row 8: the training task's phases (last run, MLflow off): {phases}")
    return [off, Check(8, "peak RSS of that `train` / the bare script's", rss, "x", 1.3), on]


def partitioned(root, n, fmt, rows_per_part, jitter=False):
    """n daily partitions of housing rows, Hive style (date=.../part-0000.csv|parquet), plus the
    _SUCCESS marker Spark leaves, written an hour ago; returns the partition size in bytes.
    `jitter`: every number moved by a relative 0.1 % (seeded), so that no two rows repeat and
    Parquet compresses them as little as it would real measurements."""
    import numpy as np
    import pandas as pd

    df = pd.read_csv(DATA / "housing.csv")
    reps = -(-rows_per_part // len(df))
    block = pd.concat([df] * reps, ignore_index=True).head(rows_per_part)
    numeric = list(block.select_dtypes(include="number").columns)
    size = 0
    for day in range(n):
        folder = root / f"date=2025-{1 + day // 31 % 12:02d}-{1 + day % 31:02d}-{day:03d}"
        folder.mkdir(parents=True)
        path = folder / f"part-0000.{fmt}"
        part = block.sample(frac=1.0, random_state=day)  # the partitions differ, as real ones do
        if jitter:
            noise = np.random.default_rng(day).normal(1.0, 0.001, size=(len(part), len(numeric)))
            part[numeric] = part[numeric].to_numpy() * noise
        if fmt == "parquet":
            part.to_parquet(path, index=False)
        else:
            part.to_csv(path, index=False)
        age(path)
        size += path.stat().st_size
    (root / "_SUCCESS").write_text("")
    return size // n


def data_set_rows(tmp, rows, infos, runs, big_size):
    """Row 9: data sets of 365 daily partitions (issue 16), and training on a Parquet set."""
    # 9a: one new CSV partition. The performance trigger would score the model on it (that is
    # its job, with pandas and scikit-learn); min_eval_rows keeps it out of this measurement.
    sets = tmp / "sets"
    csv_cfg = project(sets / "csv", {"housing": dict(HOUSING, data_path="data/events", min_eval_rows=10**9)},
                      mlflow={"enabled": False})
    part_size = partitioned(sets / "csv" / "data" / "events", 365, "csv", 600)
    run(rc(csv_cfg, "check"))
    run(rc(csv_cfg, "check"))
    one_cfg = project(sets / "one", {"housing": dict(HOUSING, data_path="data/housing.csv")}, mlflow={"enabled": False})
    sample = sets / "one" / "data" / "housing.csv"
    shutil.copy(next((sets / "csv" / "data" / "events").glob("*/part-0000.csv")), sample)
    age(sample)
    run(rc(one_cfg, "check"))
    run(rc(one_cfg, "check"))
    infos.append(f"row 9: 365 partitions of {part_size / 1024:.0f} KiB each (600 housing rows)")
    new_part = sets / "csv" / "data" / "events"

    def add_partition(i):
        folder = new_part / f"date=2026-01-01-new{i:03d}"
        folder.mkdir()
        shutil.copy(sample, folder / "part-0000.csv")
        time.sleep(RACY_SECONDS)  # hashed by the next run, old enough to be cached then

    rows.append(Row(9, "`check --dry-run`, 365 CSV partitions + 1 new / no-op `check` + `md5sum` of one partition", 1.2)
                .measure(rc(csv_cfg, "check", "--dry-run"),
                         ["sh", "-c", f"{' '.join(rc(one_cfg, 'check'))} && md5sum {sample} >/dev/null"],
                         runs, before=add_partition, expect_a=(3,)))

    # 9b: the unchanged set of 365 Parquet partitions (cached: nothing imported, no file read).
    pq_cfg = project(sets / "pq", {"housing": dict(HOUSING, data_path="data/events")}, mlflow={"enabled": False})
    partitioned(sets / "pq" / "data" / "events", 365, "parquet", 600)
    run(rc(pq_cfg, "check"))
    run(rc(pq_cfg, "check"))
    rows.append(Row(9, "no-op `check`, unchanged 365 Parquet partitions / no-op `check` on one file", 2).measure(
        rc(pq_cfg, "check"), rc(one_cfg, "check"), runs))

    # 9c: training on a Parquet set of about `big_size` on disk, against a bare pandas script.
    train_root = sets / "train"
    params = {"random_state": 0, "max_iter": 20}
    train_cfg = project(train_root, {"housing": dict(HOUSING, data_path="data/events", params=params,
                                                     estimator="sklearn.ensemble.HistGradientBoostingRegressor")},
                        mlflow={"enabled": False})
    per_part = 10_000
    for _ in range(2):  # Parquet's bytes per row: from a small partition, then from one of the real size
        per_part = int(big_size / 16 * per_part / partitioned(tmp / "probe", 1, "parquet", per_part, jitter=True))
        shutil.rmtree(tmp / "probe")
    n_rows = per_part * 16
    partitioned(train_root / "data" / "events", 16, "parquet", per_part, jitter=True)
    total = sum(p.stat().st_size for p in (train_root / "data" / "events").glob("*/*.parquet"))
    infos.append(f"row 9: training set of {n_rows:,} rows in 16 Parquet files, {total / (1 << 20):.0f} MiB")
    run(rc(train_cfg, "train", "housing"))
    training = Row(9, "`train housing` on the Parquet set / bare `pandas.read_parquet` + same pipeline", 1.2)
    rows.append(training.measure(rc(train_cfg, "train", "housing", "--force"),
                         [PYTHON, str(REPO / "bench" / "bare_fit.py"), str(train_root / "data" / "events"),
                          str(train_root / "bare.joblib"), "median_house_value",
                          str(params["max_iter"])], max(3, runs // 2)))
    rows.append(RssRatio(9, "peak RSS of that `train housing` / of the bare script", 1.2, training))


def segment_rows(tmp, rows, infos, runs, quick):
    """Row 10: many models from one entry (bench/segments_bench.py)."""
    import segments_bench as sb

    one_root = tmp / "one-model"
    one = project(one_root, {"iris": dict(IRIS)}, mlflow={"enabled": False})
    shutil.copy(DATA / "iris.csv", one_root / "data" / "iris.csv")
    age(one_root / "data" / "iris.csv")
    run(rc(one, "check"))
    run(rc(one, "check"))

    n = 1_000 if quick else 10_000
    t = time.monotonic()
    fleet_root = tmp / "fleet"
    fleet = sb.fleet(fleet_root, project, run, rc, age, stores=n)
    infos.append(f"row 10: {n:,} trained stores (3 monthly partitions, skewed sizes) built in {time.monotonic() - t:.0f} s")
    noop = Row(10, f"no-op `check`, {n:,} segments / no-op `check`, one model", 3).measure(
        rc(fleet, "check"), rc(one, "check"), runs)
    rows.append(noop)
    rows.append(Check(10, f"wall of that no-op `check` with {n:,} segments", statistics.median(noop.a), "s", 1.0))
    rows.append(Check(10, f"peak RSS of that no-op `check` with {n:,} segments", noop.a_rss, "MB", 200))
    status = Row(10, f"`status`, {n:,} segments / no-op `check`, one model", 3).measure(
        rc(fleet, "status"), rc(one, "check"), runs)
    rows.append(status)
    rows.append(Check(10, f"wall of that `status` with {n:,} segments", statistics.median(status.a), "s", 1.0))
    rows.append(Check(10, f"peak RSS of that `status` with {n:,} segments", status.a_rss, "MB", 200))

    touched = [f"s{i:05d}" for i in range(100, 150)]
    new = fleet_root / "data" / "sales" / "month=2025-04" / "part-0.csv"
    new.parent.mkdir()

    def new_partition(i):  # rows of the same 50 stores, other rows each time: hashed anew by each run
        part = sb.store_rows(n, 2, seed=100 + i, month=4)
        part[part["store"].isin(touched)].to_csv(new, index=False)
        time.sleep(RACY_SECONDS)

    new_partition(-1)
    out = subprocess.run(rc(fleet, "check", "--dry-run", "--json"), capture_output=True, text=True)
    due = sorted(m["model_name"] for m in json.loads(out.stdout)["models"] if m["due"])
    if out.returncode != 3 or due != [f"sales:{s}" for s in touched]:
        sys.exit(f"bench: row 10: the dry run after a partition of 50 stores named {len(due)} due: {due[:5]}...")
    import shlex

    read = [PYTHON, "-c", f"import pandas; pandas.read_csv({str(new)!r})"]
    rows.append(Row(10, f"`check --dry-run` after a partition touching 50 of {n:,} segments (names exactly those) / "
                        "no-op `check`, one model + pandas reading the partition", 2).measure(
        rc(fleet, "check", "--dry-run"), ["sh", "-c", f"{shlex.join(rc(one, 'check'))} && {shlex.join(read)}"], runs,
        before=new_partition, expect_a=(3,)))
    shutil.rmtree(fleet_root)

    first_root = tmp / "first"
    first, data = sb.first_training(first_root, project, age, stores=200 if quick else 1_000)
    slow = max(3, runs // 3)
    training = Row(10, f"first `check` of {200 if quick else 1_000:,} segments x 500 rows (2 fit processes) / bare "
                       "read + groupby + fit per group", 1.3)
    fresh = sb.FreshState(first_root)
    rows.append(training.measure(rc(first, "check"), [PYTHON, str(REPO / "bench" / "bare_segments.py"), str(data),
                                                       str(first_root / "bare")], slow, before=fresh))
    fresh.done()
    rows.append(RssRatio(10, "peak RSS of that first `check` / of the bare script", 1.5, training))
    declared_root = tmp / "declared"
    declared, folder = sb.declared(declared_root, project, age, n=60 if quick else 300)
    fresh = sb.FreshState(declared_root)
    rows.append(Row(10, f"first `check` of {60 if quick else 300} declared models / bare loop over their files", 1.3)
                .measure(rc(declared, "check"), [PYTHON, str(REPO / "bench" / "bare_segments.py"), str(folder),
                                                 str(declared_root / "bare")], slow, before=fresh))
    fresh.done()


def metrics_rows(tmp, rows, infos, quick):
    """Row 11: the metrics exposition (what is pushed to the Pushgateway or written for the
    textfile collector) of an entry with 10,000 trained segments, bench/segments_bench.py's fleet:
    per entry by default, under 1 MB; with `metrics.per_segment: true`, for information."""
    import segments_bench as sb

    n = 1_000 if quick else 10_000
    t = time.monotonic()
    fleet = sb.fleet(tmp / "metrics-fleet", project, run, rc, age, stores=n)
    infos.append(f"row 11: {n:,} trained stores built in {time.monotonic() - t:.0f} s")

    def exposition(config):
        began = time.monotonic()
        proc = subprocess.run(rc(config, "metrics"), capture_output=True)
        if proc.returncode != 0:
            sys.exit(f"bench: row 11: `retrainctl metrics` exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
        body = proc.stdout
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        return len(body), series, time.monotonic() - began

    size, series, seconds = exposition(fleet)
    rows.append(Check(11, f"metrics body, {n:,} trained segments, default config (per entry)", size / 1e6, "MB", 1.0))
    infos.append(f"row 11: per entry: {size:,} bytes, {series} series; `retrainctl metrics` took {seconds:.1f} s")
    size, series, seconds = exposition(with_keys(fleet, metrics={"per_segment": True}))
    infos.append(f"row 11: with `metrics.per_segment: true`: {size / 1e6:.1f} MB, {series:,} series; "
                 f"`retrainctl metrics` took {seconds:.1f} s")
    shutil.rmtree(tmp / "metrics-fleet")
def report_rows(tmp, rows, infos, runs, quick):
    """Row 13: the report of many models. `report` of 300 declared small models (the overview, a
    section each, no charts) against a no-op `check` of them, and its wall against the 5 s goal;
    beside it `report sales` of a 10,000-segment entry (the fleet of bench/segments_bench.py)
    against `status sales` (what it reads), and the size of both pages."""
    import segments_bench as sb

    n_declared, n_segments = (100, 1_000) if quick else (300, 10_000)
    t = time.monotonic()
    declared = many_models(tmp / "report-declared", n_declared, tmp / "noop")
    infos.append(f"row 13: {n_declared} declared models built in {time.monotonic() - t:.0f} s")
    page = tmp / "report-declared" / "report.html"
    whole = Row(13, f"`report` of {n_declared} declared models / no-op `check` of them", 2).measure(
        rc(declared, "report", "--output", str(page)), rc(declared, "check"), runs)
    rows.append(whole)
    rows.append(Check(13, f"wall of that `report` of {n_declared} declared models", statistics.median(whole.a), "s", 5))
    t = time.monotonic()
    fleet = sb.fleet(tmp / "report-fleet", project, run, rc, age, stores=n_segments)
    infos.append(f"row 13: {n_segments:,} trained stores built in {time.monotonic() - t:.0f} s")
    entry_page = tmp / "report-fleet" / "sales.html"
    # The entry's page reads what `status` reads (one status row per segment) and adds the page.
    entry = Row(13, f"`report sales`, {n_segments:,} segments / `status sales`", 1.5).measure(
        rc(fleet, "report", "sales", "--output", str(entry_page)), rc(fleet, "status", "sales"), runs)
    rows.append(entry)
    rows.append(Check(13, f"size of the page of {n_segments:,} segments", entry_page.stat().st_size / (1 << 20), "MiB", 8))
    infos.append(f"row 13: page sizes: {n_declared} declared models {page.stat().st_size / (1 << 20):.2f} MiB, "
                 f"{n_segments:,} segments {entry_page.stat().st_size / (1 << 20):.2f} MiB")
    shutil.rmtree(tmp / "report-fleet")
def segment_mlflow_row(tmp, rows, infos, runs, quick):
    """Row 12: the first `check` of an entry's segments with MLflow (the embedded sqlite store, as
    row 6) against the same check with MLflow off: one run for the round, every segment's pipeline
    uploaded once, one registered routing model (publish/entry_registry.py)."""
    import segments_bench as sb
    import yaml

    n = 200 if quick else 1_000
    root = tmp / "segments-mlflow"
    off, _ = sb.first_training(root, project, age, stores=n)
    data = yaml.safe_load(Path(off).read_text())
    data.update(state_dir="var-mlflow/state", model_dir="var-mlflow/models",
                mlflow={"enabled": True, "timeout_seconds": 600, "log_report": False})
    on = str(Path(off).with_name("mlflow.yaml"))
    Path(on).write_text(yaml.safe_dump(data, sort_keys=False))

    def fresh(_):  # nothing trained; the MLflow database stays, as it would between rounds
        shutil.rmtree(root / "var", ignore_errors=True)
        shutil.rmtree(root / "var-mlflow" / "models", ignore_errors=True)
        for item in (root / "var-mlflow" / "state").iterdir():
            if item.name not in ("mlflow.db", "mlartifacts"):
                shutil.rmtree(item) if item.is_dir() else item.unlink()

    run(rc(on, "check"))  # creates the database (MLflow's migrations: once per installation)
    row = Row(12, f"first `check` of {n:,} segments x 500 rows with MLflow (embedded sqlite) / with MLflow off", 1.5)
    rows.append(row.measure(rc(on, "check"), rc(off, "check"), max(3, runs // 3), before=fresh))
    uploads = sum(1 for _ in (root / "var-mlflow" / "state" / "mlartifacts").rglob("*.joblib"))
    infos.append(f"row 12: {uploads:,} pipeline files uploaded over {max(3, runs // 3) + 2} rounds of {n:,} segments")


def mlflow_state(config):
    """Whether the last `train` was tracked in MLflow: its history record or model metadata name a run."""
    out = subprocess.run(rc(config, "history", "--json", "--limit", "1"), capture_output=True, text=True)
    record = (json.loads(out.stdout)["history"] or [{}])[0] if out.returncode == 0 else {}
    root = Path(config).parents[1] / "var" / "models" / "housing"
    meta = json.loads((root / "current" / "metadata.json").read_text()) if (root / "current").exists() else {}
    keys = sorted(k for k in {**record, **meta} if "mlflow" in k)
    return f"on ({', '.join(keys)} recorded)" if keys else "off (no MLflow run recorded by this build's `train`)"


def dask_row():
    """The row bench/dask_bench.py adds, when it is there and Dask is installed."""
    script = REPO / "bench" / "dask_bench.py"
    if not script.exists():
        return "row 7 (Dask): bench/dask_bench.py is not in this tree"
    out = subprocess.run([PYTHON, str(script), "--json", "--rows", "models"], capture_output=True, text=True)
    if out.returncode != 0:
        return f"row 7 (Dask): skipped: {(out.stderr.strip().splitlines() or ['failed'])[-1]}"
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return (f"row 7 (Dask): {row['row']}: local {row['local_seconds']} s, dask {row['dask_seconds']} s, "
            f"speed-up {row['ratio']}x (higher is better)")


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def print_report(rows, infos, seconds, runs):
    header = ["#", "benchmark", "measured", "baseline", "ratio", "target", "result", "peak RSS"]
    print(f"Machine: {machine()}")
    print(f"Load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}; "
          f"medians of {runs} runs (rows 2, 6 and 9's training: {max(3, runs // 2)}; row 8 and row 10's "
          f"trainings: {max(3, runs // 3)}); "
          f"{seconds:.0f} s in all\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        cells, _ = row.cells()
        print("| " + " | ".join(cells) + " |")
    print()
    for info in infos:
        print(f"- {info}")


if __name__ == "__main__":
    sys.exit(main())
