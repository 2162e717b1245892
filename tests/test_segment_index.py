"""Discovering an entry's segments: the distinct keys, each segment's rows and the hash of its own
rows, cached per file by content so that an unchanged file is never read again; Hive-style
folders answered from their names; the errors of bad data. And the fit of one segment."""
import sys

import pandas as pd
import pytest

from retrainctl.base.errors import DataError
from retrainctl.config.load import parse_config
from retrainctl.data import segment_index
from retrainctl.data.fingerprint import FingerprintCache
from tests.conftest import REPO, base_config

sys.path.insert(0, str(REPO / "bench"))
from generate import orders, write_month  # noqa: E402

SALES = {"target": "units", "task": "regression", "estimator": "sklearn.linear_model.Ridge",
         "features": ["price", "temp"], "segment_by": ["store"]}


def entry(tmp_path, data_path, **changes):
    import yaml

    (tmp_path / "etc").mkdir(exist_ok=True)
    cfg = base_config(sales=dict(SALES, data_path=data_path, **changes))
    path = tmp_path / "etc" / "retrainctl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = parse_config(path.read_text(), str(path))
    return config, config.models["sales"]


def discover(config, model):
    fp = FingerprintCache(config.state_dir)
    index = segment_index.discover(fp, config.state_dir, model)
    fp.save()
    return index


@pytest.fixture
def reads(monkeypatch):
    """The files discovery reads rows from, in order."""
    seen = []
    real = segment_index._read

    def counting(name, csv):
        seen.append(name.rsplit("/", 2)[-2:])
        return real(name, csv)

    monkeypatch.setattr(segment_index, "_read", counting)
    return seen


def old(path):
    """Backdate a file: one written in the last moments is not trusted by the stat cache yet."""
    import os

    os.utime(path, (1_700_000_000, 1_700_000_000))


def test_one_file_its_segments_and_only_the_changed_one_changes(tmp_path, reads):
    frame = pd.concat(orders(months=2, rows_per_month=300, stores=6, seed=3))
    data = tmp_path / "data" / "orders.csv"
    data.parent.mkdir()
    frame.to_csv(data, index=False)
    old(data)
    config, model = entry(tmp_path, "data/orders.csv")
    first = discover(config, model)
    counts = frame["store"].value_counts()
    assert {k: s.rows for k, s in first.segments.items()} == counts.to_dict()
    assert list(first.segments) == sorted(counts.index)
    assert first.fit_files(first.segments["s000"]) == [["", first.dataset.hash]]
    # one more order for store s003, at the end of the file
    extra = frame[frame["store"] == "s003"].tail(1).assign(units=99.0)
    pd.concat([frame, extra]).to_csv(data, index=False)
    old(data)
    second = discover(config, model)
    changed = sorted(k for k in second.segments if second.segments[k].hash != first.segments[k].hash)
    assert changed == ["s003"] and second.segments["s003"].rows == counts["s003"] + 1
    assert len(reads) == 2
    discover(config, model)  # nothing changed: the file is not read again
    assert len(reads) == 2


def test_a_new_partition_touches_only_its_stores_and_old_files_are_not_read_again(tmp_path, reads):
    frames = orders(months=3, rows_per_month=200, stores=8, seed=5)
    root = tmp_path / "data" / "orders"
    for month, frame in enumerate(frames[:2], 1):
        old(write_month(frame, root, month, fmt="parquet" if month == 1 else "csv"))
    config, model = entry(tmp_path, "data/orders/")
    before = discover(config, model)
    assert len(reads) == 2
    touched = frames[2][frames[2]["store"].isin(["s001", "s006"])]
    old(write_month(touched, root, 3, fmt="csv.gz"))
    after = discover(config, model)
    assert len(reads) == 3 and reads[-1] == ["month=2025-03", "part-0.csv.gz"]  # only the new file was read
    changed = sorted(k for k in after.segments if after.segments[k].hash != before.segments[k].hash)
    assert changed == ["s001", "s006"]
    assert [rel for rel, _ in after.segments["s006"].files] == [
        "month=2025-01/part-0.parquet", "month=2025-02/part-0.csv", "month=2025-03/part-0.csv.gz"]
    assert after.segments["s000"].files == before.segments["s000"].files
    # the Parquet partition's keys are spelled as the CSV partition's
    assert set(before.segments) == set(pd.concat(frames[:2])["store"])


def test_hive_folders_answer_without_reading_rows(tmp_path, reads):
    frame = pd.concat(orders(months=1, rows_per_month=300, stores=5, seed=2))
    root = tmp_path / "data" / "sales"
    for store, rows in frame.groupby("store"):
        folder = root / f"store={store}"
        folder.mkdir(parents=True)
        rows.drop(columns="store").to_csv(folder / "part-0.csv", index=False)
    odd = root / "store=New%20York"
    odd.mkdir()
    frame.head(3).drop(columns="store").to_csv(odd / "part-0.csv", index=False)
    config, model = entry(tmp_path, "data/sales/")
    index = discover(config, model)
    assert reads == []
    assert {k: s.rows for k, s in index.segments.items()} == {**frame["store"].value_counts().to_dict(),
                                                              "New~20York": 3}


def test_a_missing_key_value_is_its_own_segment(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text("store,price,temp,units\ns1,1,2,3\n,1,2,4\ns1,2,2,5\nNA,3,3,3\n")
    config, model = entry(tmp_path, str(data))
    assert {k: s.rows for k, s in discover(config, model).segments.items()} == {"s1": 2, "~NA": 2}


def test_a_key_column_missing_from_a_file_names_the_file_and_the_column(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.csv").write_text("store,price,temp,units\ns1,1,2,3\n")
    (root / "b.csv").write_text("shop,price,temp,units\ns1,1,2,3\n")
    config, model = entry(tmp_path, str(root))
    with pytest.raises(DataError) as err:
        discover(config, model)
    assert str(err.value) == f"{root}/b.csv: segment_by column 'store' not found (columns: shop, price, temp, units)"


def test_more_segments_than_max_segments_is_a_data_error(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text("store,price,temp,units\n" + "".join(f"s{i},1,2,3\n" for i in range(5)))
    config, model = entry(tmp_path, str(data), max_segments=4)
    with pytest.raises(DataError) as err:
        discover(config, model)
    assert str(err.value) == f"{data}: 5 segments by store, more than max_segments (4) of model 'sales'"
    config, model = entry(tmp_path, str(data), max_segments=5)
    assert len(discover(config, model).segments) == 5  # the cache written above answers, under the new limit


def test_the_fit_of_a_segment_trains_on_its_own_rows(tmp_path):
    from retrainctl.fit.task import run_task

    frames = orders(months=2, rows_per_month=300, stores=4, seed=9)
    root = tmp_path / "data" / "orders"
    for month, frame in enumerate(frames, 1):
        write_month(frame, root, month, fmt="parquet" if month == 1 else "csv")
    config, model = entry(tmp_path, "data/orders/")
    index = discover(config, model)
    seg = model.for_segment("s002")
    result = run_task(seg.training_spec(), model.data_path, index.segments["s002"].hash, None, None,
                      index.fit_files(index.segments["s002"]))
    rows = pd.concat(frames)
    assert result.metadata["rows"] == int(rows[rows["store"] == "s002"]["units"].notna().sum())
    assert result.data_hash == index.segments["s002"].hash
    assert result.metadata["features"] == ["price", "temp"]
    _, every_column = entry(tmp_path, "data/orders/", features=None)
    result = run_task(every_column.for_segment("s002").training_spec(), model.data_path, index.segments["s002"].hash,
                      None, None, index.fit_files(index.segments["s002"]))
    assert "store" not in result.metadata["features"]  # the key is the same on every row of a segment
