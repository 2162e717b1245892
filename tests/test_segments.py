"""Many models from one entry (`segment_by`), through the command: each store of an order history is
a model `sales:<store>` with its own versions, records, triggers, pause and rollback; only the
stores whose rows changed retrain; a store that closes keeps its model (`no data`); a store that
opens gets its first model; small stores are skipped; one store's failed fit fails only it."""
import json
import os
import shutil
import sys

import pandas as pd
import pytest

from tests.conftest import IRIS, REPO, Project, base_config

sys.path.insert(0, str(REPO / "bench"))
from generate import orders, write_month  # noqa: E402

MIN_ROWS = 60
SALES = {"data_path": "data/sales/", "segment_by": ["store"], "min_segment_rows": MIN_ROWS, "min_data_size": 20,
         "promotion_tolerance": 1.0,
         "target": "units", "task": "regression", "features": ["price", "temp"],
         "estimator": "sklearn.linear_model.Ridge"}


class Shop(Project):
    """A project whose one entry `sales` is split by store: three months of orders from eight
    stores of skewed sizes, as monthly partitions in Parquet, CSV and gzipped CSV."""

    def __init__(self, root):
        super().__init__(root)
        self.frames = orders(months=4, rows_per_month=300, stores=8, seed=4)
        for month, frame in enumerate(self.frames[:3], 1):
            self.write_month(month, frame)
        self.write_config(base_config(sales=dict(SALES)))

    def write_month(self, month, frame):
        fmt = {1: "parquet", 2: "csv", 3: "csv.gz"}.get(month, "csv")
        path = write_month(frame, self.root / "data" / "sales", month, fmt=fmt)
        os.utime(path, (1_700_000_000 + month, 1_700_000_000 + month))  # not "just written"
        return path

    def write_recent(self):
        """data/eval.csv (labelled) and data/recent.csv (inputs): the fourth month's rows of every
        store, store s000's from a month where prices jumped and how they drive units flipped.
        Returns (those rows, the broken month of every store)."""
        broken = orders(months=4, rows_per_month=300, stores=8, seed=4, break_months=(4,))[3]
        normal = self.frames[3]
        recent = pd.concat([broken[broken["store"] == "s000"], normal[normal["store"] != "s000"]])
        recent.to_csv(self.root / "data" / "eval.csv", index=False)
        recent.drop(columns="units").to_csv(self.root / "data" / "recent.csv", index=False)
        return recent, broken

    def rows(self):
        return pd.concat(self.frames[:3])["store"].value_counts()

    def checked(self, *args):
        result = self.cli("check", "--json", *args)
        assert result.exit_code in (0, 3), result.output
        return {m["model_name"]: m for m in json.loads(result.stdout)["models"]}


@pytest.fixture
def shop(tmp_path):
    return Shop(tmp_path / "proj")


def test_check_trains_each_store_once_and_skips_the_small_ones(shop):
    result = shop.run("check", "--json")
    assert result.returncode == 0, result.stderr
    outcomes = {m["model_name"]: m for m in json.loads(result.stdout)["models"]}
    counts = shop.rows()
    big, small = sorted(counts[counts >= MIN_ROWS].index), sorted(counts[counts < MIN_ROWS].index)
    assert big and small
    assert sorted(outcomes) == [f"sales:{s}" for s in sorted(counts.index)]
    for store in big:
        assert outcomes[f"sales:{store}"]["result"].startswith("promoted v1"), outcomes[f"sales:{store}"]
        assert shop.current_version(f"sales:{store}") == 1
    for store in small:
        out = outcomes[f"sales:{store}"]
        assert (out["action"], out["held"], out["failed"]) == ("hold", "too_few_rows", False)
        assert out["note"] == f"segment has only {counts[store]} rows, min_segment_rows is {MIN_ROWS}"
        assert not (shop.model_dir / f"sales:{store}").exists()
    # one record per trained store, none for a skipped one
    assert sorted(e["model_name"] for e in shop.history()) == [f"sales:{s}" for s in big]
    # every store trained on its own rows, in one fit process (it imported scikit-learn once)
    metas = [json.loads((shop.model_dir / f"sales:{s}" / "v1" / "metadata.json").read_text()) for s in big]
    labelled = pd.concat(shop.frames[:3]).dropna(subset=["units"])["store"].value_counts()
    assert [m["rows"] for m in metas] == [labelled[s] for s in big]
    assert len({m["fit_pid"] for m in metas}) == 1
    again = shop.checked("--dry-run")
    assert {o["action"] for o in again.values()} == {"none", "hold"}


def test_a_new_partition_makes_only_its_stores_due(shop):
    shop.checked()
    touched = shop.frames[3][shop.frames[3]["store"].isin(["s000", "s002"])]
    shop.write_month(4, touched)
    result = shop.cli("check", "--dry-run", "--json")
    assert result.exit_code == 3, result.output
    due = {m["model_name"]: m for m in json.loads(result.stdout)["models"] if m["due"]}
    assert sorted(due) == ["sales:s000", "sales:s002"]
    assert due["sales:s000"]["due_reasons"][0]["trigger_type"] == "data_change"
    text = shop.cli("check", "--dry-run").stdout.splitlines()  # the due segments named, the rest counted
    assert [line.split()[:3] for line in text[1:3]] == [["sales:s000", "yes", "data_change"],
                                                        ["sales:s002", "yes", "data_change"]]
    assert text[-1].split() == ["sales", "8", "3", "2", "0", "0", "3", "0", "0"]
    shop.checked()
    assert shop.current_version("sales:s000") == shop.current_version("sales:s002") == 2
    assert shop.current_version("sales:s001") == 1
    assert [e["trigger_type"] for e in shop.history("sales:s002")] == ["initial", "data_change"]


def test_a_store_that_closes_keeps_its_model_and_one_that_opens_gets_one(shop):
    shop.checked()
    # s001 closes: its rows are gone from every partition; a new store s900 opens in month 4
    for month, frame in enumerate(shop.frames[:3], 1):
        shop.write_month(month, frame[frame["store"] != "s001"])
    opened = shop.frames[3].head(120).assign(store="s900")
    shop.write_month(4, opened)
    outcomes = shop.checked()
    assert outcomes["sales:s001"]["action"] == "none" and outcomes["sales:s001"]["note"] == "no data"
    assert outcomes["sales:s900"]["due_reasons"][0]["trigger_type"] == "initial"
    assert outcomes["sales:s900"]["result"].startswith("promoted v1")
    assert not any(o["failed"] for o in outcomes.values())
    assert shop.current_version("sales:s001") == 1
    status = shop.cli("status", "--json", "sales:s001")
    row = json.loads(status.stdout)["models"][0]
    assert (row["no_data"], row["model_version"], row["entry"], row["segment"]) == (True, 1, "sales", {"store": "s001"})
    assert [e["status"] for e in shop.history("sales:s001")] == ["success"]  # no failure, no page


def test_segment_names_in_every_command(shop):
    shop.checked()
    unknown = shop.cli("train", "sales:s0001")
    assert unknown.exit_code == 2
    assert unknown.stderr == ("Error: segment 'sales:s0001' is not in the data of 'sales' nor in its history; "
                              "did you mean 'sales:s001'?\n")
    paused = shop.cli("pause", "sales:s00[01]")
    assert paused.stdout == "sales:s000: paused\nsales:s001: paused\n"
    assert shop.cli("pause", "sales:x*").stderr == "Error: no configured model or segment matches 'sales:x*'\n"
    trained = shop.cli("train", "sales:s002", "--force", "--reason", "new promo calendar")
    assert trained.stdout.startswith("sales:s002: promoted v2"), trained.output
    back = shop.cli("rollback", "sales:s002")
    assert back.exit_code == 0, back.output
    assert shop.current_version("sales:s002") == 1
    history = shop.cli("history", "--model", "sales:s002", "--json")
    assert [e["status"] for e in json.loads(history.stdout)["history"]] == ["rolled_back", "success", "success"]
    status = json.loads(shop.cli("status", "--json", "sales").stdout)["models"]
    assert [r["model_name"] for r in status] == [f"sales:{s}" for s in sorted(shop.rows().index)]
    assert [r["paused"] for r in status[:3]] == [True, True, False]


def test_one_stores_failed_fit_fails_only_that_store(shop):
    frame = shop.frames[0]
    frame.loc[frame["store"] == "s003", "units"] = None  # no labels at all in one month...
    for month in (2, 3):
        other = shop.frames[month - 1]
        other.loc[other["store"] == "s003", "units"] = None  # ... nor in the others
        shop.write_month(month, other)
    shop.write_month(1, frame)
    result = shop.cli("check", "--json")
    assert result.exit_code == 1
    outcomes = {m["model_name"]: m for m in json.loads(result.stdout)["models"]}
    assert outcomes["sales:s003"]["failed"] and "every row lacks the target 'units'" in outcomes["sales:s003"]["result"]
    assert [o for o in outcomes if outcomes[o]["failed"]] == ["sales:s003"]
    assert shop.current_version("sales:s000") == shop.current_version("sales:s004") == 1


def test_a_partition_without_the_key_column_is_one_data_error(shop):
    shop.write_month(4, shop.frames[3].drop(columns="store"))
    result = shop.cli("check")
    assert result.exit_code == 1
    part = shop.root / "data" / "sales" / "month=2025-04" / "part-0.csv"
    message = f"{part}: segment_by column 'store' not found (columns: order_id, ts, promo, price, temp, year, units, late)"
    assert result.stdout.splitlines()[1].split()[:3] == ["sales", "no", message.split()[0]]
    assert [(e["model_name"], e["error"]) for e in shop.history()] == [("sales", message)]
    assert shop.cli("check").exit_code == 1 and len(shop.history()) == 1  # recorded once


def test_more_segments_than_max_segments_is_a_data_error(shop):
    shop.set_model("sales", max_segments=5)
    result = shop.cli("check", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)["models"]
    assert [(m["model_name"], m["note"]) for m in out] == [
        ("sales", f"{shop.root}/data/sales: 8 segments by store, more than max_segments (5) of model 'sales'")]



def test_fits_share_a_process_and_one_that_kills_it_fails_alone(project):
    """Models due in the same run are fitted one after another in one process (one import of
    scikit-learn); a fit that takes its process down is that model's `crashed` failure, and the
    next fit gets a fresh process."""
    models = {name: dict(IRIS, estimator=None, trainer=f"tests.slowfit:{how}")
              for name, how in (("a", "fit"), ("b", "exit_hard"), ("c", "fit"), ("d", "fit"))}
    project.write_config(base_config(**models))
    result = project.run("check", "--json", env={"PYTHONPATH": str(REPO)})  # the trainers of tests/slowfit.py
    assert result.returncode == 1, result.stderr
    outcomes = {m["model_name"]: m for m in json.loads(result.stdout)["models"]}
    assert [outcomes[n]["failed"] for n in "abcd"] == [False, True, False, False]
    assert outcomes["b"]["event"]["error_type"] == "crashed"
    pids = {n: json.loads((project.model_dir / n / "v1" / "metadata.json").read_text())["fit_pid"] for n in "acd"}
    assert pids["c"] == pids["d"] != pids["a"]


def test_status_and_check_sum_up_each_entry_and_list_segments_when_asked(shop):
    shop.config["models"]["iris"] = dict(IRIS)
    shop.write_config()
    first = shop.cli("check")
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[:2] == ["MODEL  DUE  WHY      ACTION  RESULT", lines[1]] and lines[1].startswith("iris   yes  initial")
    assert lines[3:] == ["ENTRY  SEGMENTS  UP TO DATE  DUE  TRAINED  FAILED  SKIPPED  PAUSED  NO DATA",
                         "sales  8         0           5    5        0       3        0       0"]
    assert shop.cli("pause", "sales:s001").exit_code == 0
    status = shop.cli("status").stdout.splitlines()
    assert status[-2].split() == ["ENTRY", "SEGMENTS", "UP", "TO", "DATE", "DUE", "OLDEST", "FAILED", "SKIPPED",
                                  "PAUSED", "NO", "DATA"]
    row = status[-1].split()
    assert row[:4] == ["sales", "8", "5", "0"] and row[5:] == ["0", "3", "1", "0"]
    assert status[1].startswith("iris ")
    every = shop.cli("check", "-v").stdout.splitlines()
    assert [line.split()[0] for line in every[1:]] == [*[f"sales:{s}" for s in sorted(shop.rows().index)], "iris"]
    named = shop.cli("status", "sales").stdout.splitlines()
    assert [line.split()[0] for line in named[1:]] == [f"sales:{s}" for s in sorted(shop.rows().index)]
    history = json.loads(shop.cli("history", "--model", "sales", "--json", "--limit", "0").stdout)["history"]
    assert sorted({e["model_name"] for e in history}) == ["sales:s000", "sales:s001", "sales:s002", "sales:s003",
                                                          "sales:s004"]


def test_performance_and_drift_run_on_each_stores_own_rows(shop):
    """eval_path and drift_path hold rows of every store; in store s000's rows prices jumped and
    how they drive units flipped. Only s000's performance and drift fire, on its own rows (a
    signal while its training data is unchanged, as for any model); the other stores' tests pass
    on theirs, a store with too few rows is not judged; when s000's new rows arrive it retrains
    once, and the evidence it answered does not retrain it again."""
    recent, broken = shop.write_recent()
    shop.checked()
    shop.set_model("sales", eval_path="data/eval.csv", drift_path="data/recent.csv")
    outcomes = shop.checked("--dry-run")
    assert not any(out["due"] for out in outcomes.values())  # no new training data: a signal, not a retrain
    s000 = outcomes["sales:s000"]
    assert ([r["trigger_type"] for r in s000["due_reasons"]], s000["held"]) == (["performance"], "unchanged")
    assert s000["alert"] == "drift alert: price, price:range"
    signalled = [n for n, o in outcomes.items()
                 if o["alert"] or {r["trigger_type"] for r in o["due_reasons"]} & {"performance", "drift"}]
    assert signalled == ["sales:s000"]
    text = shop.cli("check").stdout.splitlines()  # the segment with a signal is named, the rest counted
    assert [line.split()[:3] for line in text[1:2]] == [["sales:s000", "unchanged", "performance"]]
    rows = {r["model_name"]: r for r in json.loads(shop.cli("status", "--json", "sales").stdout)["models"]}
    own = recent["store"].value_counts()
    s000, s002 = rows["sales:s000"], rows["sales:s002"]
    labelled = recent.dropna(subset=["units"])["store"].value_counts()
    assert (s000["eval_source"], s000["eval_rows"]) == ("data/eval.csv [s000]", labelled["s000"])
    assert (s000["degraded"], s000["drifted"], s000["drift_rows"]) == (True, True, own["s000"])
    assert sorted(s000["drifted_features"]) == ["price", "price:range"]
    assert (s002["eval_source"], s002["degraded"], s002["drifted"]) == ("data/eval.csv [s002]", False, False)
    assert (s002["eval_rows"], s002["drift_rows"]) == (labelled["s002"], own["s002"])
    small = rows["sales:s007"]  # a store with too few rows of its own is not judged
    assert own["s007"] < 30 and small["degraded"] is None and small["drifted"] is None
    cache = json.loads((shop.state_dir / "quality.json").read_text())
    assert {"sales:s000", "sales:s002"} <= set(cache)
    for role in ("eval", "drift"):
        index = json.loads((shop.state_dir / "segment-index" / f"sales@{role}.json").read_text())
        assert sorted(index["set"]["segments"]) == sorted(own.index)
    # s000's new rows arrive: it retrains, on data_change and its performance evidence, once
    shop.write_month(4, broken[broken["store"] == "s000"])
    due = {n: o for n, o in shop.checked("--dry-run").items() if o["due"]}
    assert sorted(due) == ["sales:s000"]
    assert [r["trigger_type"] for r in due["sales:s000"]["due_reasons"]] == ["data_change", "performance"]
    shop.checked()
    assert [(e["trigger_type"], e["status"]) for e in shop.history("sales:s000")] == [
        ("initial", "success"), ("performance", "skipped"), ("data_change", "success")]
    assert {e["model_name"] for e in shop.history()} == {f"sales:s00{i}" for i in range(5)}  # no other store's
    assert not any(o["due"] for o in shop.checked("--dry-run").values())  # answered: no retrain loop
    # an eval file without the key column: a note on each segment, not a failed check
    recent.drop(columns="store").to_csv(shop.root / "data" / "eval.csv", index=False)
    assert shop.cli("check").exit_code == 0
    row = json.loads(shop.cli("status", "--json", "sales:s002").stdout)["models"][0]
    assert row["quality_notes"] == [f"performance: {shop.root}/data/eval.csv: segment_by column 'store' not found "
                                    f"(columns: order_id, ts, promo, price, temp, year, units, late)"]


def test_train_and_rollback_an_entry_or_a_glob(shop):
    """`train sales` retrains every segment of the entry, fitted together in one process, the
    small ones skipped as a check skips them; `rollback` of a glob or of the entry rolls back each
    segment that has an earlier version; both print per-entry counts, and `--json` matches its
    schema."""
    import jsonschema

    def valid(output, text):
        data = json.loads(text)
        schema = json.loads((REPO / "retrainctl" / "schemas" / f"{output}.json").read_text())
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(data)) == []
        return data

    shop.checked()
    same = shop.cli("train", "sales", "--reason", "new promo calendar")  # nothing new: each would only copy itself
    assert same.exit_code == 0, same.output
    assert same.stdout.splitlines()[-1].split() == ["sales", "8", "0", "0", "0", "0", "3", "0", "0"]
    forced = shop.cli("train", "sales", "--force", "--reason", "new promo calendar", "--json")
    assert forced.exit_code == 0, forced.output
    outcomes = {m["model_name"]: m for m in valid("train", forced.stdout)["models"]}
    big = [f"sales:s00{i}" for i in range(5)]
    assert [n for n, o in outcomes.items() if o["result"].startswith("promoted v2")] == big
    assert [(o["held"], o["failed"], o["event"]) for n, o in outcomes.items() if n not in big] == [
        ("too_few_rows", False, None)] * 3
    assert outcomes["sales:s000"]["due_reasons"][0] == {"trigger_type": "manual", "description": "new promo calendar"}
    pids = {json.loads((shop.model_dir / n / "v2" / "metadata.json").read_text())["fit_pid"] for n in big}
    assert len(pids) == 1  # one fit process for the five
    assert [e["status"] for e in shop.history("sales:s001")] == ["success", "skipped", "success"]

    glob = shop.cli("rollback", "sales:s00[01]")
    assert glob.exit_code == 0, glob.output
    lines = glob.stdout.splitlines()
    assert [line.split(" by ")[0] for line in lines] == ["sales:s000: rolled back from v2 to v1",
                                                         "sales:s001: rolled back from v2 to v1",
                                                         "sales:s00[01]: 2 of 2 rolled back"]
    assert shop.current_version("sales:s000") == shop.current_version("sales:s001") == 1
    assert shop.cli("rollback", "sales", "--to", "1").stderr == (
        "Error: --to names a version of one model; 'sales' may stand for several (versions are per segment): "
        "name the segment\n")
    whole = shop.cli("rollback", "sales", "--json")
    assert whole.exit_code == 0, whole.output
    done = {m["model_name"]: m for m in valid("rollback", whole.stdout)["models"]}
    assert [n for n, m in done.items() if m["rolled_back"]] == ["sales:s002", "sales:s003", "sales:s004"]
    assert (done["sales:s002"]["version"], done["sales:s002"]["previous_version"]) == (1, 2)
    assert done["sales:s000"]["error"] == "sales:s000: no earlier promoted version on disk to roll back to (current is v1)"
    assert done["sales:s007"]["error"] == "sales:s007: no current model to roll back"
    assert not any(m["failed"] for m in done.values())
    assert all(shop.current_version(n) == 1 for n in big)
    text = shop.cli("rollback", "sales").stdout.splitlines()
    assert text == ["sales: 0 of 8 rolled back; 8 had nothing to roll back to"]
    # below min_data_size: among many, a recorded skip as in a check, not a failure
    shop.set_model("sales", min_data_size=int(shop.rows().max()) + 1)
    skipped = shop.cli("train", "sales", "--json")
    assert skipped.exit_code == 0, skipped.output
    outcomes = {m["model_name"]: m for m in json.loads(skipped.stdout)["models"]}
    assert {(o["action"], o["failed"]) for n, o in outcomes.items() if n in big} == {("skip", False)}
    assert shop.history("sales:s000")[-1]["status"] == "skipped"


def test_a_check_trusts_a_segments_brief_only_while_its_metadata_is_unchanged(shop):
    """A check reads each segment's live version from briefs.json (not ten thousand
    metadata.json files), trusted only while the version's metadata.json is unchanged."""
    shop.checked()
    big = [f"sales:s00{i}" for i in range(5)]
    assert shop.checked()["sales:s002"]["action"] == "none"
    briefs = json.loads((shop.state_dir / "briefs.json").read_text())
    assert briefs["sales:s002"]["key"][0] == 1 and set(briefs["sales:s002"]["brief"]) == {
        "data_hash", "trained_at_ts", "config_hash", "sha256"}
    meta_path = shop.model_dir / "sales:s002" / "v1" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, data_hash="0" * 32)))
    # named: a plain check would answer the settled entry from its quiet mark (tests/test_quiet.py),
    # which does not look inside the model folders
    due = {n: o for n, o in shop.checked("--dry-run", "sales").items() if o["due"]}
    assert [(n, o["due_reasons"][0]["trigger_type"]) for n, o in due.items()] == [("sales:s002", "data_change")]
    meta_path.write_text(json.dumps(meta))
    shop.set_model("sales", params={"alpha": 2.0})
    due = {n: o for n, o in shop.checked("--dry-run").items() if o["due"]}
    assert sorted(due) == big
    assert due["sales:s003"]["due_reasons"] == [{"trigger_type": "config_change",
                                                 "description": "config changed since v1: params"}]




def test_an_entrys_counts_put_every_segment_a_trigger_fires_for_under_due():
    """A segment whose performance trigger fires on unchanged data (held: `unchanged`) or whose
    entry has auto-retraining off (held: `disabled`) is due, as its DUE column says, not missing
    from every column of the entry's row; one too small is skipped, one in backoff failed."""
    from retrainctl.core.outcomes import status_counts
    from retrainctl.core.records import Action, Held
    from retrainctl.observe.status import SegmentCount

    def seg(held=None, due=False, failures=0, version=1, action=Action.NOTHING):
        return SegmentCount(entry="sales", due=due, held=held, action=action, paused=False, no_data=False,
                            failures_in_row=failures, model_version=version, model_age_seconds=60.0)

    [c] = status_counts([seg(), seg(held=Held.UNCHANGED, action=Action.HOLD),
                         seg(held=Held.DISABLED, action=Action.HOLD), seg(due=True, action=Action.TRAIN),
                         seg(held=Held.TOO_FEW_ROWS, version=None, action=Action.HOLD),
                         seg(held=Held.BACKOFF, failures=2, action=Action.HOLD)])
    assert (c.segments, c.up_to_date, c.due, c.skipped, c.failed) == (6, 1, 3, 1, 1)
