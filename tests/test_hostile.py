"""Property-based hostile input: random YAML at the config loader, random bytes and CSV shapes
at the data loader. The only outcomes are a valid config or a ConfigError (exit 2), and a model
or a DataError / recorded failure (exit 1); never a traceback, never a changed `current`."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataclasses

from retrainctl.base.errors import ConfigError, DataError
from retrainctl.config import keys
from retrainctl.config.load import parse_config
from retrainctl.config.records import Config, CsvOptions, TrainingSpec
from retrainctl.data.read import load_frame
from tests.conftest import IRIS

TOP_KEYS = {k.name for k in keys.TOP}
MODEL_KEYS = {k.name for k in keys.MODEL + keys.POLICY}
KEYS = st.sampled_from(sorted(TOP_KEYS | MODEL_KEYS | {"iris", "x"}))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(KEYS | st.text(max_size=6), inner, max_size=4)),
                      max_leaves=12)


def assert_config_or_config_error(text):
    try:
        cfg = parse_config(text, "hostile.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("hostile.yaml: ")
        assert "\n" not in str(exc).strip() or "YAML" in str(exc)
    else:
        assert isinstance(cfg, Config) and cfg.models


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_documents(doc):
    assert_config_or_config_error(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(MODEL_KEYS)), VALUES, max_size=8))
def test_random_model_sections(model):
    assert_config_or_config_error(yaml.safe_dump({"models": {"m": dict(IRIS, **model)}}))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text):
    assert_config_or_config_error(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_as_yaml(data):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert_config_or_config_error(text)


SPEC = TrainingSpec(name="m", target="y", task="classification", metric="accuracy", features=None,
                    estimator="sklearn.tree.DecisionTreeClassifier", trainer=None, params={}, test_size=0.2,
                    random_state=0, csv=CsvOptions(), feature_types={})
CELLS = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["", "a", "b", "NA", '"q,uo"', "\t", "é"]), st.text(max_size=4))


@st.composite
def csv_documents(draw):
    ncols = draw(st.integers(0, 4))
    header = draw(st.lists(st.sampled_from(["y", "a", "b", "c", "", "y"]), min_size=ncols, max_size=ncols))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=ncols + 1), max_size=30))
    sep = draw(st.sampled_from([",", ";"]))
    return (sep.join(header) + "\n" + "\n".join(sep.join(r) for r in rows)).encode()


def assert_frame_or_data_error(raw, task):
    spec = dataclasses.replace(SPEC, task=task)
    try:
        X, y = load_frame(raw, "hostile.csv", spec)
    except DataError as exc:
        assert str(exc).startswith("hostile.csv: ")
    else:
        assert len(X) == len(y) > 0 and "y" not in X.columns


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_documents(), st.sampled_from(["classification", "regression"]))
def test_random_csv_shapes(raw, task):
    assert_frame_or_data_error(raw, task)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_as_csv(raw):
    assert_frame_or_data_error(raw, "classification")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.one_of(csv_documents(), st.binary(max_size=400)))
def test_hostile_data_through_the_command(project, raw):
    """The whole path: fingerprint, child fit, record. Exit 0 with a model, or exit 1 with a
    recorded failure or skip, and the live model untouched either way."""
    if project.current_version("iris") is None:
        assert project.cli("train", "iris").exit_code == 0
    live = (project.model_dir / "iris" / "v1" / "model.joblib").read_bytes()
    before = project.current_version("iris")
    project.set_model("iris", target="y", features=None, min_data_size=1)
    project.data("iris").write_bytes(raw)
    try:
        r = project.cli("train", "iris")
        assert r.exit_code in (0, 1), r.output
        assert "Traceback" not in r.output
        last = project.history()[-1]
        if r.exit_code == 1:
            assert last["status"] in ("failure", "skipped") and last["error"]
            assert project.current_version("iris") == before
        else:
            assert last["status"] in ("success", "rejected")
        assert (project.model_dir / "iris" / "v1" / "model.joblib").read_bytes() == live
    finally:
        project.set_model("iris", **{k: IRIS.get(k) for k in ("target", "features")}, min_data_size=50)
