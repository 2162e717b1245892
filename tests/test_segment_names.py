"""Segment model names (`<entry>:<value>[:<value>]`): reversible, collision-free, safe as folder
names and in shell globs; and the config keys that declare segments."""
import string

import pytest
from hypothesis import given, strategies as st

from retrainctl.core.segment_names import (MISSING, decode_value, encode_value, entry_key, entry_of, is_pattern,
                                           parse_name, segment_name)
from tests.conftest import base_config

values = st.one_of(st.none(), st.text(max_size=30))


@given(st.lists(values, min_size=1, max_size=3))
def test_a_name_gives_back_its_key_values(keys):
    name = segment_name("sales", keys)
    entry, back = parse_name(name)
    assert entry == "sales"
    assert back == tuple(None if v == "" else v for v in keys)  # the empty text is the missing value


@given(values, values)
def test_two_values_never_share_a_name(a, b):
    same = (a or None) == (b or None)
    assert (encode_value(a) == encode_value(b)) == same


@given(st.text(max_size=30))
def test_an_encoded_value_is_safe_as_a_folder_name_and_in_a_glob(value):
    encoded = encode_value(value)
    assert set(encoded) <= set(string.ascii_letters + string.digits + "._-~")
    assert not is_pattern(encoded) and "/" not in encoded and ":" not in encoded


def test_plain_values_are_kept_and_others_are_spelled_out():
    assert segment_name("sales", ["s0042"]) == "sales:s0042"
    assert segment_name("sales", ["s0042", "toys"]) == "sales:s0042:toys"
    assert encode_value("New York") == "New~20York"
    assert encode_value("a:b") == "a~3Ab"
    assert encode_value("~NA") == "~7ENA"  # the text "~NA" is not the missing value
    assert encode_value("Zürich") == "Z~C3~BCrich"
    assert encode_value(None) == encode_value("") == MISSING == "~NA"
    assert decode_value("~NA") is None
    assert (entry_of("sales:s1:toys"), entry_key("sales:s1:toys")) == ("sales", "s1:toys")


@pytest.mark.parametrize("part", ["a b", "~4", "~zz", "~na", "x~"])
def test_a_part_no_value_encodes_to_is_refused(part):
    with pytest.raises(ValueError, match="not an encoded segment value"):
        decode_value(part)


SALES = {"data_path": "data/raw/sales.csv", "target": "units", "task": "regression",
         "estimator": "sklearn.linear_model.Ridge", "segment_by": ["store"], "min_segment_rows": 30}


@pytest.mark.parametrize("changes, message", [
    ({"segment_by": ["units"]}, "models.sales.segment_by: lists the target column 'units'"),
    ({"segment_by": []}, "models.sales.segment_by: must list at least one column, got []"),
    ({"segment_by": ["store", "store"]}, "models.sales.segment_by: names 'store' twice"),
    ({"features": ["store", "price"]},
     "models.sales.segment_by: lists 'store', which is also a feature (a segment's key is the same on all of "
     "its rows)"),
    ({"time_column": "store"}, "models.sales.segment_by: lists the time_column 'store'"),
    ({"min_segment_rows": 0}, "models.sales.min_segment_rows: must be >= 1, got 0"),
    ({"max_segments": 0}, "models.sales.max_segments: must be >= 1, got 0"),
    ({"segment_by": None}, "models.sales.min_segment_rows: applies only with segment_by"),
], ids=["target", "empty", "twice", "feature", "time", "min-rows", "max", "without"])
def test_bad_segment_keys_are_config_errors(project, changes, message):
    assert project.config_error(models={"sales": {**SALES, **changes}}) == message


def test_segment_keys_in_the_effective_config(project):
    project.write_config(base_config(sales=dict(SALES)))
    result = project.cli("config", "--model", "sales")
    assert result.exit_code == 0, result.output
    assert "  segment_by:\n    - store\n    min_segment_rows: 30\n" in result.output
    assert "max_segments" not in result.output  # not set: the default, 100000


def test_a_model_without_segment_by_keeps_its_config_hash(tmp_path):
    """segment_by joins the training config only where set: the live versions of every other
    model remember a hash without it, and must not all look changed (config_change)."""
    from retrainctl.config.load import parse_config

    plain = dict(SALES)
    del plain["segment_by"], plain["min_segment_rows"]
    config = parse_config(__import__("yaml").safe_dump(base_config(sales=plain, seg=dict(SALES))),
                          str(tmp_path / "r.yaml"))
    assert "segment_by" not in config.models["sales"].training_config()
    assert config.models["seg"].training_config()["segment_by"] == ["store"]
    segment = config.models["seg"].for_segment("New~20York")
    assert (segment.name, segment.entry, segment.segment) == ("seg:New~20York", "seg", ("New York",))
    assert segment.training_spec().segment == ("New York",) and segment.config_hash == config.models["seg"].config_hash
