"""CSV as people write it: semicolons and cp1252, quoted fields spanning lines, id, date and
free-text columns, `feature_types`, and files that keep growing. The command runs in-process (a
subprocess would only add its imports and a config validation, ~2 s of CPU a run), except while
another thread writes the data file: that run is the installed command, a process of its own."""
import csv
import datetime
import io
import json
import os
import random
import threading
import time

import blake3
import joblib
import pandas as pd

from conftest import REPO

CITIES = ["München", "Zürich", "Köln", "Genève", "Besançon", "Malmö"]
WORDS = ("delivery was late but the product works fine would order again great value "
         "packaging damaged support answered quickly size runs small").split()
HEADER = ["customer_id", "signup_date", "city", "zip", "size", "comment", "price"]


def shop_rows(n, seed=0):
    """Rows like a shop's export: unique customer ids, ISO dates, a handful of cities, zip codes
    with leading zeros, free-text comments (some over two lines, with quotes and semicolons)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        city = rng.randrange(len(CITIES))
        size = rng.uniform(20, 200)
        comment = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        if rng.random() < 0.3:
            comment += '\nP.S.: "très bien"; merci'
        day = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(500))
        price = round(size * 1000 + city * 5000 + rng.gauss(0, 2000), 2)
        rows.append([f"C{rng.randrange(10 ** 9):09d}", day.isoformat(), CITIES[city], f"0{1000 + city}",
                     f"{size:.1f}", comment, f"{price:.2f}"])
    return rows


def write_shop(path, rows, delimiter=";", encoding="cp1252"):
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


SHOP = {
    "data_path": "data/raw/shop.csv",
    "target": "price",
    "task": "regression",
    "estimator": "sklearn.linear_model.Ridge",
    "csv": {"delimiter": ";", "encoding": "cp1252"},
    "feature_types": {"zip": "categorical"},
}


def shop_project(project, n=400, **changes):
    rows = shop_rows(n)
    write_shop(project.data("shop"), rows)
    model = dict(SHOP, **changes)
    project.config["models"] = {"shop": {k: v for k, v in model.items() if v is not None}}
    project.write_config()
    return rows


def metadata(project, name="shop"):
    return json.loads((project.model_dir / name / "current" / "metadata.json").read_text())


def status(project, name="shop"):
    done = project.cli("status", "--json", name)
    assert done.exit_code == 0, done.stderr
    return json.loads(done.stdout)["models"][0]


def test_a_european_export_trains_and_says_what_each_column_became(project):
    shop_project(project)
    raw = project.data("shop").read_bytes()
    assert raw.count(b"\n") > 500 and b"M\xfcnchen" in raw  # 400 rows on more lines; cp1252 bytes
    done = project.cli("train", "shop")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("shop: promoted v1")
    # Dropped by inference: said once each on the log.
    assert ("WARNING: shop: column 'customer_id' dropped: id-like (400 distinct values in 400 rows); "
            "to keep it, declare its type in feature_types") in done.stderr
    assert "WARNING: shop: column 'comment' dropped: free text" in done.stderr

    meta = metadata(project)
    assert (meta["rows"], meta["data_lines"]) == (400, 400)
    kinds = {c: (d["type"], d["source"], d["used"]) for c, d in meta["columns"].items()}
    assert kinds == {
        "customer_id": ("id", "inferred", False),
        "signup_date": ("datetime", "inferred", True),
        "city": ("categorical", "inferred", True),
        "zip": ("categorical", "feature_types", True),
        "size": ("numeric", "inferred", True),
        "comment": ("text", "inferred", False),
    }
    assert meta["columns"]["city"]["treatment"] == "one-hot, 6 value(s)"
    assert meta["columns"]["signup_date"]["treatment"] == "parsed as dates: year, month, day, weekday, hour"
    assert meta["columns"]["zip"]["dtype"] != "int64"  # read as written: "01000", not 1000

    row = status(project)
    assert (row["data_rows"], row["data_changed"], row["columns"]) == (400, False, meta["columns"])

    # The saved pipeline predicts from raw rows read the same way, dates and all.
    model = joblib.load(project.model_dir / "shop" / "current" / "model.joblib")
    frame = pd.read_csv(project.data("shop"), sep=";", encoding="cp1252", dtype={"zip": str})
    preds = model.predict(frame.drop(columns="price"))
    assert len(preds) == 400 and abs(preds[:50] - frame["price"][:50]).mean() < 10000

    config = project.cli("config", "--model", "shop")
    assert config.exit_code == 0, config.stderr
    assert "delimiter: ;" in config.stdout.replace("'", "") and "zip: categorical" in config.stdout


def test_feature_types_override_what_is_inferred(project):
    shop_project(project, feature_types={"zip": "numeric", "customer_id": "drop", "city": "drop",
                                         "signup_date": "categorical"})
    done = project.cli("train", "shop")
    assert done.exit_code == 0, done.stderr
    assert "customer_id" not in done.stderr  # declared: no warning
    cols = metadata(project)["columns"]
    assert {c: (d["type"], d["used"]) for c, d in cols.items()} == {
        "customer_id": ("drop", False), "signup_date": ("categorical", True), "city": ("drop", False),
        "zip": ("numeric", True), "size": ("numeric", True), "comment": ("text", False)}
    assert cols["city"]["treatment"] == "dropped (feature_types: drop)"
    assert cols["signup_date"]["treatment"].startswith("one-hot, the 31 most frequent of ")


def test_wrong_csv_options_fail_with_the_option_to_set(project):
    shop_project(project, csv=None)
    done = project.cli("train", "shop")
    assert done.exit_code == 1
    assert "cannot parse CSV: not utf-8 text (invalid continuation byte); " in done.stderr
    assert "set csv.encoding to the file's encoding, e.g. cp1252" in done.stderr
    assert "Traceback" not in done.stderr
    project.set_model("shop", csv={"encoding": "cp1252"})
    done = project.cli("train", "shop")
    assert done.exit_code == 1
    assert "one column named 'customer_id;signup_date;city;zip;size;comment;price': set csv.delimiter to ';'" in done.stderr
    project.set_model("shop", csv={"encoding": "utf-16"})
    assert project.cli("train", "shop").exit_code == 2


def test_many_distinct_strings_are_not_one_hot_encoded_densely(project):
    """20,000 unique customer ids and 3,000 street names: ids dropped, streets capped at 32 columns."""
    rng = random.Random(1)
    lines = ["customer,street,amount,spend"]
    for i in range(20000):
        amount = rng.uniform(1, 100)
        lines.append(f"cust-{rng.randrange(10 ** 12):012d},street {rng.randrange(3000)},{amount:.2f},{amount * 3:.2f}")
    project.data("big").write_text("\n".join(lines) + "\n")
    project.config["models"] = {"big": {"data_path": "data/raw/big.csv", "target": "spend", "task": "regression",
                                        "estimator": "sklearn.linear_model.Ridge"}}
    project.write_config()
    done = project.cli("train", "big")
    assert done.exit_code == 0, done.stderr
    cols = metadata(project, "big")["columns"]
    assert (cols["customer"]["type"], cols["street"]["type"]) == ("id", "categorical")
    assert cols["street"]["treatment"].startswith("one-hot, the 31 most frequent of 2,9")
    model = joblib.load(project.model_dir / "big" / "current" / "model.joblib")
    width = model.named_steps["preprocess"].transform(pd.read_csv(project.data("big")).head(5)).shape[1]
    assert width == 1 + 32


def test_drift_and_eval_files_are_read_with_the_same_options(project):
    """Drift is tested on the columns the model uses, as it uses them; not on ids, dates, text."""
    write_shop(project.data("recent"), shop_rows(120, seed=7))
    write_shop(project.data("labelled"), shop_rows(80, seed=8))
    shop_project(project, drift_path="data/raw/recent.csv", eval_path="data/raw/labelled.csv", min_eval_rows=30)
    assert project.cli("train", "shop").exit_code == 0
    meta = metadata(project)
    assert sorted(meta["reference"]) == ["city", "size", "zip"]
    assert meta["reference"]["zip"]["kind"] == "categorical"
    row = status(project)
    assert (row["drift_rows"], row["eval_rows"]) == (120, 80), row["quality_notes"]
    assert sorted(row["drift_psi"]) == ["city", "size", "zip"] and row["drifted"] is False
    assert row["eval_score"] is not None and row["quality_notes"] == []


def train_while(project, writer, env=None):
    """`train shop` through the installed command while `writer(stop)` runs on a thread."""
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(stop,), daemon=True)
    thread.start()
    try:
        return project.run("train", "shop", env=env)
    finally:
        stop.set()
        thread.join()


def test_a_file_appended_to_all_the_time_trains_on_the_decided_prefix(project):
    rows = shop_project(project)
    path = project.data("shop")
    extra = iter(shop_rows(100000, seed=3))

    def append_every_few_ms(stop):
        while not stop.is_set():
            buf = io.StringIO()
            csv.writer(buf, delimiter=";", lineterminator="\r\n").writerow(next(extra))
            with open(path, "ab") as fh:  # one write() per row, as a logger or an exporter does
                fh.write(buf.getvalue().encode("cp1252"))
            time.sleep(0.003)

    done = train_while(project, append_every_few_ms)
    assert done.returncode == 0, done.stderr
    meta = metadata(project)
    assert meta["data_grown"] is True
    final = path.read_bytes()
    assert meta["rows"] > len(rows)
    # The hash recorded is that of a prefix of the file ending at a row, with exactly the rows trained on.
    ends = [i + 1 for i in range(len(final)) if final[i:i + 1] == b"\n" and final[i - 1:i] == b"\r"]
    decided = [end for end in ends if blake3.blake3(final[:end]).hexdigest() == meta["data_hash"]]
    assert len(decided) == 1
    prefix = pd.read_csv(io.BytesIO(final[:decided[0]]), sep=";", encoding="cp1252")
    assert len(prefix) == meta["rows"] == meta["data_lines"]
    assert [e["status"] for e in project.history("shop")] == ["success"]


def test_a_file_rewritten_in_place_is_still_skipped_with_the_reason(project, tmp_path):
    """Rewritten (same size, other bytes) once the decision is recorded, before the fit reads it:
    the fit process's read waits for the rewrite (tests/hold_read), which a loaded machine could
    otherwise let come after the read."""
    shop_project(project)
    path = project.data("shop")
    spot = path.read_bytes().index(b"\r\nC") + 3  # the first digits of the first customer id
    log = project.state_dir / "events.jsonl"
    rewritten = tmp_path / "rewritten"

    def rewrite_after_the_decision(stop):
        while not stop.is_set():
            if log.exists() and b'"started"' in log.read_bytes():
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.pwrite(fd, b"99999999", spot)
                finally:
                    os.close(fd)
                rewritten.touch()
                return
            time.sleep(0.001)

    done = train_while(project, rewrite_after_the_decision,
                       env={"PYTHONPATH": str(REPO / "tests" / "hold_read"), "RETRAINCTL_TEST_HOLD_PATH": str(path),
                            "RETRAINCTL_TEST_HOLD_UNTIL": str(rewritten)})
    assert done.returncode == 1
    (event,) = project.history("shop")
    assert (event["status"], event["error_type"]) == ("skipped", "data_changed")
    assert event["error"].endswith("data changed after the decision to train (rewritten, not appended to); "
                                   "will retry on the next check")
    assert project.current_version("shop") is None


def test_inference_on_the_strings_users_write():
    """What each kind of column is taken for (in-process: the rules, not the command)."""
    from retrainctl.data import features

    n = 200
    frame = pd.DataFrame({
        "amount": [str(i * 1.5) if i % 50 else "?" for i in range(n)],   # numbers with a stray mark
        "when": [f"{1 + i % 28:02d}.03.2024 12:{i % 60:02d}" for i in range(n)],
        "ref": [f"R-{i:06d}" for i in range(n)],
        "note": [f"call back on day {i} about the order" for i in range(n)],
        "colour": ["red", "green", "blue", None] * (n // 4),
        "flag": [True, False] * (n // 2),
    })
    plans = features.plan(frame, {"ref": "categorical"})
    assert {c: (p.type, p.source) for c, p in plans.items()} == {
        "amount": ("numeric", "inferred"), "when": ("datetime", "inferred"), "ref": ("categorical", "feature_types"),
        "note": ("text", "inferred"), "colour": ("categorical", "inferred"), "flag": ("categorical", "inferred")}
    parts = features.DateParts().fit(frame[["when"]]).transform(frame[["when"]])
    assert parts[1].tolist() == [2024, 3, 2, 5, 12]  # Saturday 2 March 2024, 12:01
    assert features.ToNumeric().fit(frame[["amount"]]).transform(frame[["amount"]])["amount"].isna().sum() == 4
