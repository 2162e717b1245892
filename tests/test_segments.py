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
    whole = shop.cli("train", "sales")
    assert whole.exit_code == 2 and whole.stderr.startswith("Error: 'sales' stands for 8 models; name one of them")


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
