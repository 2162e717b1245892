"""Quiet entries (observe.quiet): a check that leaves every segment of an entry settled remembers
their outcomes in quiet.json; the next `check` and `status` answer that entry from it without
observing a segment, until the config, the data, a record of the entry, the model store's folder
or the clock (an age trigger) says otherwise, and then they evaluate in full and answer as if
there had been no mark."""
import json
import shutil
import time

import pandas as pd
import pytest

from retrainctl.commands.check import check
from retrainctl.config.load import load_config
from retrainctl.observe.observer import Observer
from retrainctl.state.log import StateLog
from tests.conftest import IRIS
from tests.test_segments import MIN_ROWS, Shop


@pytest.fixture
def shop(tmp_path, monkeypatch):
    shop = Shop(tmp_path / "proj")
    shop.observed = []
    observe = Observer.observe

    def counting(self, model, *args, **kwargs):
        shop.observed.append(model.name)
        return observe(self, model, *args, **kwargs)

    monkeypatch.setattr(Observer, "observe", counting)
    shop.checked()  # trains the big stores
    return shop


def checked(shop, *args):
    """(the check's --json outcomes by model, the models it observed)"""
    shop.observed.clear()
    outcomes = shop.checked(*args)
    return outcomes, list(shop.observed)


def mark(shop):
    return json.loads((shop.state_dir / "quiet.json").read_text())["entries"].get("sales")


def test_a_settled_entry_answers_from_its_mark_as_a_full_evaluation_would(shop):
    full, observed = checked(shop)
    assert sorted(observed) == sorted(full) and len(full) == 8  # nothing due: evaluated, then marked
    assert {o["action"] for o in full.values()} == {"none", "hold"}
    assert mark(shop)["segments"] == sorted(n.split(":")[1] for n in full)
    quiet, observed = checked(shop)
    assert observed == [] and quiet == full
    text = shop.cli("check")
    assert text.exit_code == 0 and text.stdout.splitlines()[-1].split() == ["sales", "8", "5", "0", "0", "0", "3", "0", "0"]
    every = shop.cli("check", "-v").stdout.splitlines()
    assert [line.split()[0] for line in every[1:]] == sorted(full) and shop.observed == []
    status = shop.cli("status")
    assert shop.observed == [] and status.exit_code == 0
    (shop.state_dir / "quiet.json").unlink()
    assert shop.cli("status").stdout == status.stdout  # the same counts (and the oldest age) in full
    assert len(shop.observed) == 8


def test_each_change_wakes_the_entry_and_the_full_answer_follows(shop):
    checked(shop)
    assert checked(shop)[1] == []
    # a record of one of its segments (an operator's pause)
    assert shop.cli("pause", "sales:s001").exit_code == 0
    outcomes, observed = checked(shop)
    assert len(observed) == 8 and outcomes["sales:s001"]["action"] == "none"
    assert checked(shop)[1] == []
    # the data: a partition that holds rows of two stores
    shop.write_month(4, shop.frames[3][shop.frames[3]["store"].isin(["s000", "s002"])])
    outcomes, observed = checked(shop, "--dry-run")  # only the stores whose rows changed are looked at
    assert sorted(observed) == ["sales:s000", "sales:s002"] == sorted(n for n, o in outcomes.items() if o["due"])
    assert outcomes == checked(shop, "--dry-run", "sales")[0]  # as a full evaluation (named) answers
    checked(shop)  # trains them: the entry is not settled
    assert len(checked(shop)[1]) == 8
    assert checked(shop)[1] == []
    # a model folder removed by hand
    shutil.rmtree(shop.model_dir / "sales:s003")
    outcomes, observed = checked(shop, "--dry-run")
    assert len(observed) == 8 and [n for n, o in outcomes.items() if o["due"]] == ["sales:s003"]
    assert outcomes["sales:s003"]["due_reasons"][0]["trigger_type"] == "initial"
    checked(shop)
    checked(shop)
    assert checked(shop)[1] == []
    # the config
    shop.set_model("sales", retry_backoff_seconds=61)
    assert len(checked(shop)[1]) == 8
    assert checked(shop)[1] == []


def test_the_clock_wakes_it_when_a_segment_model_grows_too_old(shop):
    checked(shop)
    assert checked(shop)[1] == []
    config = load_config(str(shop.config_path))
    soon = check(config, dry_run=True, clock=lambda: time.time() + 23 * 3600)  # max_model_age_hours: 24
    assert not any(o.due for o in soon.outcomes) and shop.observed == []
    later = check(config, dry_run=True, clock=lambda: time.time() + 25 * 3600)
    assert len(shop.observed) == 8
    aged = [o for o in later.outcomes if o.reasons and o.reasons[0].trigger_type == "model_age"]
    assert len(aged) == 5 and {o.held for o in aged} == {"unchanged"}  # the same data: recorded, not refitted


def test_records_of_other_models_and_a_rotated_log(shop):
    shop.config["models"]["iris"] = dict(IRIS)
    shop.write_config()
    checked(shop)  # iris trains; the config changed, so sales is evaluated in full
    checked(shop)
    assert checked(shop)[1] == ["iris"]
    before = mark(shop)["log"]
    assert shop.cli("train", "iris").exit_code == 0
    assert checked(shop)[1] == ["iris"]  # a record of another model: still quiet, and the mark moves on
    assert mark(shop)["log"][2] > before[2]
    StateLog(str(shop.state_dir)).rotate()
    assert len(checked(shop)[1]) == 9  # another log file: evaluated in full once
    assert checked(shop)[1] == ["iris"]


def test_a_named_check_and_a_damaged_mark_evaluate_in_full(shop):
    checked(shop)
    assert checked(shop, "sales")[1] != []
    (shop.state_dir / "quiet.json").write_text("{not json")
    outcomes, observed = checked(shop)
    assert len(observed) == 8 and not any(o["due"] for o in outcomes.values())
    assert checked(shop)[1] == []


def test_rows_of_small_stores_are_looked_at_alone_and_join_the_mark(shop):
    checked(shop)
    assert checked(shop)[1] == []
    counts = shop.rows()
    small = sorted(counts[counts < MIN_ROWS].index)[0]
    month = shop.frames[3]
    rows = pd.concat([month[month["store"] == small].head(MIN_ROWS - 1 - counts[small]),
                      month.head(5).assign(store="s950")])  # still too small; and a new small store
    shop.write_month(4, rows)
    outcomes, observed = checked(shop)
    assert sorted(observed) == [f"sales:{small}", "sales:s950"]
    assert outcomes["sales:s950"]["held"] == "too_few_rows" and not any(o["due"] for o in outcomes.values())
    assert outcomes == checked(shop, "sales")[0]
    assert checked(shop) == (outcomes, [])  # both settled: one mark again, the whole entry quiet
    quiet = shop.cli("status").stdout
    assert shop.observed == [] and quiet.splitlines()[-1].split()[:2] == ["sales", "9"]
    (shop.state_dir / "quiet.json").unlink()
    assert shop.cli("status").stdout == quiet


def test_a_partial_check_tells_of_its_segments_out_of_the_whole_entry(shop, tmp_path):
    got = tmp_path / "told.jsonl"
    shop.config["notify"] = {"command": ["sh", "-c", f"cat >> {got}; echo >> {got}"]}
    shop.write_config()
    checked(shop)
    assert checked(shop)[1] == []
    shop.write_month(4, shop.frames[3][shop.frames[3]["store"].isin(["s000", "s002"])])
    got.write_text("")
    outcomes, observed = checked(shop)
    assert sorted(observed) == ["sales:s000", "sales:s002"]
    [told] = [json.loads(line) for line in got.read_text().splitlines() if line.strip()]
    assert (told["event"], told["count"], told["segments"], told["models"]) == (
        "success", 2, 8, ["sales:s000", "sales:s002"])
    assert told["description"] == "2 of 8 segments of sales retrained: sales:s000, sales:s002"


def test_the_metrics_of_a_quiet_entry_are_those_of_a_full_evaluation(shop):
    """The metrics after a check (textfile, push, `retrainctl metrics`) sum a quiet entry up from
    its mark: the same exposition, byte for byte, as observing every segment."""
    from retrainctl.publish.metrics import build_registry, exposition

    shop.cli("pause", "sales:s001")  # a paused segment: counted, and left out of the age clock
    checked(shop)
    assert checked(shop)[1] == []
    config = load_config(str(shop.config_path))
    now = time.time() + 3600
    shop.observed.clear()
    quiet = exposition(build_registry(config, clock=lambda: now))
    assert shop.observed == []
    (shop.state_dir / "quiet.json").unlink()
    full = exposition(build_registry(config, clock=lambda: now))
    assert len(shop.observed) == 8 and quiet == full
    assert b'retrainctl_segments{model_name="sales",state="paused"} 1.0' in quiet


def test_an_entry_whose_segments_cannot_be_listed_is_never_quiet(shop):
    """A partition without the segment_by column is a data error for the entry, every check:
    it is never remembered as a quiet entry of no segments."""
    checked(shop)
    assert checked(shop)[1] == []
    month = shop.frames[3].drop(columns="store")
    shop.write_month(4, month)
    for _ in range(3):
        result = shop.cli("check", "--json")
        assert result.exit_code == 1, result.output
        [out] = json.loads(result.stdout)["models"]
        assert out["model_name"] == "sales" and out["failed"] and "'store'" in out["note"]


def test_the_mark_of_an_entry_taken_out_of_the_config_is_dropped(shop):
    checked(shop)
    checked(shop)
    assert mark(shop) is not None
    shop.config["models"] = {"stores": shop.config["models"].pop("sales")}  # renamed
    shop.write_config()
    shop.cli("check", "--dry-run")
    marks = json.loads((shop.state_dir / "quiet.json").read_text())["entries"]
    assert "sales" not in marks and set(marks) <= {"stores"}
