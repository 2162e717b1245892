"""Config discovery, defaults merging, path resolution and validation errors (file + key path, exit 2)."""
import os

import pytest
import yaml

from retrainctl.base.errors import ConfigError
from retrainctl.config.load import find_config, load_config, parse_config
from retrainctl.config.records import RetrainingConfig
from tests.conftest import IRIS, base_config


def write(tmp_path, data, name="retrainctl.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_defaults_merge_and_paths_resolve_against_base_dir(tmp_path):
    (tmp_path / "etc").mkdir()
    cfg = base_config(iris=dict(IRIS, check_interval=42))
    cfg["defaults"] = {"max_model_age_hours": 1.5}
    c = load_config(write(tmp_path / "etc", cfg))
    m = c.models["iris"]
    assert m.policy.check_interval == 42
    assert m.policy.max_model_age_hours == 1.5
    assert m.policy.min_data_size == 100  # the seed default survives
    assert c.base_dir == str(tmp_path)
    assert m.data_path == str(tmp_path / "data/raw/iris.csv")
    assert c.state_dir == str(tmp_path / "var/state")


def test_seed_defaults():
    r = RetrainingConfig()
    assert (r.check_interval, r.min_data_size, r.max_model_age_hours, r.performance_threshold,
            r.enable_auto_retraining) == (300, 100, 24, 0.05, True)


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    local = write(tmp_path / "etc", base_config(iris=IRIS))
    other = write(tmp_path, base_config(iris=IRIS), "other.yaml")
    assert find_config(environ={}) == local
    assert find_config(environ={"RETRAINCTL_CONFIG": other}) == other
    assert find_config("x.yaml", environ={"RETRAINCTL_CONFIG": other}) == str(tmp_path / "x.yaml")


def test_no_config_anywhere(tmp_path, monkeypatch):
    import retrainctl.config.load as load

    monkeypatch.chdir(tmp_path)
    # The system-wide path moved into tmp_path: a config installed on this machine does not count.
    monkeypatch.setattr(load, "SEARCH_PATH", ["./etc/retrainctl.yaml", str(tmp_path / "system" / "retrainctl.yaml")])
    with pytest.raises(ConfigError, match=r"no config file: pass --config FILE, set \$RETRAINCTL_CONFIG, or "
                                          r"create \./etc/retrainctl\.yaml or .*/system/retrainctl\.yaml$"):
        find_config(environ={})


BAD = [
    ({"modles": {}}, "modles: unknown key 'modles'; did you mean 'models'?"),
    ({"models": {}}, "models: no models configured"),
    ({"models": {"iris": dict(IRIS, data_pth="x")}}, "models.iris.data_pth: unknown key 'data_pth'; did you mean 'data_path'?"),
    ({"defaults": {"chek_interval": 3}, "models": {"iris": IRIS}},
     "defaults.chek_interval: unknown key 'chek_interval'; did you mean 'check_interval'?"),
    ({"models": {"iris": dict(IRIS, min_data_size=0)}}, "models.iris.min_data_size: must be >= 1, got 0"),
    ({"models": {"iris": dict(IRIS, max_model_age_hours=-1)}}, "models.iris.max_model_age_hours: must be > 0, got -1"),
    ({"defaults": {"performance_threshold": 1.5}, "models": {"iris": IRIS}},
     "defaults.performance_threshold: must be between 0 and 1, got 1.5"),
    ({"models": {"iris": dict(IRIS, train_timeout_seconds=float("inf"))}},
     "models.iris.train_timeout_seconds: must be a finite number, got inf"),
    ({"models": {"iris": dict(IRIS, train_timeout_seconds=1e9)}},
     "models.iris.train_timeout_seconds: must be more than 0 and at most 604800, got 1000000000.0"),
    ({"models": {"iris": dict(IRIS, max_memory_mb=10**14)}}, "models.iris.max_memory_mb: must be between 16 and"),
    ({"notify": {"timeout_seconds": float("inf")}, "models": {"iris": IRIS}},
     "notify.timeout_seconds: must be a finite number, got inf"),
    ({"notify": {"webhooks": {"url": "http://h/"}}, "models": {"iris": IRIS}},
     "notify.webhooks: must be a list of mappings, got {'url': 'http://h'}"),
    ({"notify": {"webhooks": [{"url": "ftp://example.org/x"}]}, "models": {"iris": IRIS}},
     "notify.webhooks[0].url: must be an http:// or https:// URL, got 'ftp://example.org/***'"),
    ({"notify": {"webhooks": [{"secret_env": "S"}]}, "models": {"iris": IRIS}}, "notify.webhooks[0].url: is required"),
    ({"notify": {"webhooks": [{"url": "http://h/", "event": ["failure"]}]}, "models": {"iris": IRIS}},
     "notify.webhooks[0].event: unknown key 'event'; did you mean 'events'?"),
    ({"notify": {"webhooks": [{"url": "http://h/", "events": ["failures"]}]}, "models": {"iris": IRIS}},
     "notify.webhooks[0].events: must list events among: success, failure, rejected, skipped, interrupted, "
     "drift, performance, paused, resumed, rolled_back, unit_failed, got ['failures']"),
    ({"notify": {"webhooks": [{"url": "http://h/", "secret_env": "A", "secret_file": "/b"}]}, "models": {"iris": IRIS}},
     "notify.webhooks[0]: give secret_env or secret_file, not both"),
    ({"notify": {"apprise": ["slack"]}, "models": {"iris": IRIS}},
     "notify.apprise: must be apprise URLs such as slack://... or mailto://..., got ['slack']"),
    ({"notify": {"apprise_events": ["drfit"]}, "models": {"iris": IRIS}}, "notify.apprise_events: must list events"),
    ({"models": {"iris": dict(IRIS, check_interval="5m")}}, "models.iris.check_interval: must be an integer, got '5m'"),
    ({"models": {"iris": dict(IRIS, enable_auto_retraining="yes please")}},
     "models.iris.enable_auto_retraining: must be true or false, got 'yes please'"),
    ({"models": {"iris": dict(IRIS, metric="acuracy")}}, "models.iris.metric: unknown metric 'acuracy'; did you mean 'accuracy'?"),
    ({"models": {"iris": dict(IRIS, metric="rmse")}}, "models.iris.metric: 'rmse' is a regression metric but task is classification"),
    ({"models": {"iris": dict(IRIS, task="clustering")}}, "models.iris.task: must be one of: classification, regression, got 'clustering'"),
    ({"models": {"iris": {k: v for k, v in IRIS.items() if k != "target"}}}, "models.iris.target: is required"),
    ({"models": {"iris": dict(IRIS, trainer="a.b:c")}},
     "models.iris.estimator: set exactly one of 'estimator' (a scikit-learn class path) or 'trainer' (module:function)"),
    ({"models": {"iris": dict(IRIS, features=["Species"])}}, "models.iris.features: lists the target column 'Species'"),
    ({"models": {"bad name!": IRIS}}, "models.bad name!: model names use letters"),
    ({"models": {"iris": "data.csv"}}, "models.iris: must be a mapping"),
    ("- just\n- a list\n", "(top level): must be a mapping"),
    ("models:\n  iris: [\n", "YAML syntax error (line 3, column 1)"),
]


@pytest.mark.parametrize("data,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_invalid_configs_name_file_and_key(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_import_validation_names_the_key(tmp_path):
    from retrainctl.fit.task import validate_models

    bad_cls = parse_config(yaml.safe_dump({"models": {"iris": dict(IRIS, estimator="sklearn.tree.DecisionTreeClassifer")}}), "c.yaml")
    with pytest.raises(ConfigError, match=r"^c.yaml: models.iris.estimator: 'sklearn.tree' has no 'DecisionTreeClassifer'; did you mean 'DecisionTreeClassifier'\?$"):
        validate_models(bad_cls)
    bad_mod = parse_config(yaml.safe_dump({"models": {"iris": dict(IRIS, estimator="sklearn.nope.Tree")}}), "c.yaml")
    with pytest.raises(ConfigError, match=r"^c.yaml: models.iris.estimator: cannot import module 'sklearn.nope'"):
        validate_models(bad_mod)
    bad_value = parse_config(yaml.safe_dump({"models": {"iris": dict(IRIS, params={"max_depth": -3})}}), "c.yaml")
    with pytest.raises(ConfigError, match=r"^c.yaml: models.iris.params: The 'max_depth' parameter of "
                                          r"DecisionTreeClassifier must be"):
        validate_models(bad_value)
    bad_params = parse_config(yaml.safe_dump({"models": {"iris": dict(IRIS, params={"depth": 3})}}), "c.yaml")
    with pytest.raises(ConfigError, match=r"^c.yaml: models.iris.params: .*unexpected keyword argument 'depth'"):
        validate_models(bad_params)


def test_webhooks_and_apprise_are_read(tmp_path):
    cfg = base_config(iris=IRIS)
    cfg["notify"] = {"webhooks": [{"url": "https://h/x", "secret_file": "hook.secret", "events": ["drift"]},
                                  {"url": "http://h/y"}],
                     "apprise": ["json://localhost/"]}
    config = load_config(write(tmp_path, cfg))
    notify = config.notify
    first, second = notify.webhooks
    assert (first.url, first.secret_file, first.events) == ("https://h/x", os.path.join(config.base_dir, "hook.secret"),
                                                           ("drift",))
    assert (second.secret_env, second.secret_file) == (None, None)
    assert second.events == ("success", "failure", "rejected", "skipped", "interrupted")
    assert notify.apprise == ("json://localhost/",) and notify.apprise_events == second.events


def test_missing_and_unreadable_config(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found$"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"is a directory, not a config file$"):
        load_config(str(tmp_path))


@pytest.mark.parametrize("text, message", [
    ("state_dir: a\nmodels: {}\nstate_dir: b\n", "duplicate key 'state_dir' (line 3, column 1)"),
    ("models:\n  iris: {data_path: a.csv, target: y, task: regression, estimator: x.Y}\n"
     "  iris: {data_path: b.csv, target: y, task: regression, estimator: x.Y}\n", "duplicate key 'iris' (line 3, column 3)"),
    ("models: {m: {data_path: a.csv, target: y, target: z, task: regression, estimator: x.Y}}\n",
     "duplicate key 'target' (line 1, column 43)"),
])
def test_duplicate_keys_are_errors(tmp_path, text, message):
    """PyYAML keeps the last of two equal keys; a config that says two things must not pass."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}; a key may appear once per mapping"


def test_yaml_merge_keys_still_work(tmp_path):
    text = ("defaults: &d {check_interval: 60}\n"
            "models:\n  iris:\n    <<: *d\n    data_path: a.csv\n    target: y\n    task: regression\n"
            "    estimator: sklearn.linear_model.Ridge\n")
    assert load_config(write(tmp_path, text)).models["iris"].policy.check_interval == 60


def _declared_keys(declaration):
    for key in declaration:
        yield key
        yield from _declared_keys(key.keys)


def test_docs_reference_is_generated_from_the_declaration():
    """docs/configuration.md's key tables are `make docs` output: a key added, removed or changed in
    config_keys.py without regenerating them fails here."""
    from retrainctl.config import reference as config_docs

    assert config_docs.current(config_docs.DOC.read_text()) == config_docs.render(), \
        "docs/configuration.md is stale: run `make docs` (python -m retrainctl.config.reference)"


def test_reference_has_one_row_per_declared_key():
    from retrainctl.config import reference as config_docs
    from retrainctl.config import keys as config_keys

    rows = [line for line in config_docs.render().splitlines() if line.startswith("| `")]
    declared = {id(k): k for k in _declared_keys(config_keys.TOP)}
    assert sorted(row.split("`")[1] for row in rows) == sorted(k.name for k in declared.values())
    assert "| `max_parallel` | integer | 1 | >= 1; only with `type: local` | fits at a time |" in rows
    assert "| `data_path` | path | required |  | CSV file with a header row |" in rows


def test_every_declared_key_is_a_field_and_printed_by_config(tmp_path):
    """The record classes and `retrainctl config` come from the same declaration."""
    import dataclasses

    from retrainctl.config import keys as config_keys
    from retrainctl.config.load import effective
    from retrainctl.config.records import Config, ExecutorConfig, ModelConfig

    for cls, declaration in ((Config, config_keys.TOP), (RetrainingConfig, config_keys.POLICY),
                             (ModelConfig, config_keys.MODEL), (ExecutorConfig, config_keys.EXECUTOR)):
        names = [f.name for f in dataclasses.fields(cls)]
        assert [n for n in names if n in {k.name for k in declaration}] == [k.name for k in declaration]
    eff = effective(load_config(write(tmp_path, base_config(iris=IRIS))))
    assert list(eff) == ["config_file"] + [k.name for k in config_keys.TOP]
    assert list(eff["defaults"]) == [k.name for k in config_keys.POLICY]
    assert list(eff["mlflow"]) == [k.name for k in config_keys.MLFLOW]
    assert eff["umask"] == "0027" and eff["executor"] == {"type": "local", "max_parallel": 1,
                                                          "connect_timeout_seconds": 10.0}


def test_nested_sections_and_lists_of_mappings_validate_per_item(tmp_path):
    """What later keys such as `csv: {delimiter, ...}` and `notify.webhooks: [{url, ...}]` need."""
    import pickle

    from retrainctl.config import keys
    from retrainctl.config import load as config
    from retrainctl.config.keys import Key, Rule
    from retrainctl.config.records import CsvOptions, build

    one_secret = Rule(lambda d: not (d.get("secret_env") and d.get("secret_file")),
                      "set only one of 'secret_env' or 'secret_file'", "")
    declaration = (Key("csv", "section", keys=keys.CSV), Key("webhooks", "list", rule=one_secret, keys=keys.WEBHOOK))

    class Rec:
        def __init__(self, checked):
            self.csv = build(declaration[0], checked.get("csv"), str(tmp_path))
            self.webhooks = build(declaration[1], checked.get("webhooks"), str(tmp_path))

    def check(data):
        v = config._Validator("c.yaml")
        return Rec(v.section(data, declaration, "x"))

    rec = check({"csv": {"delimiter": ";"},
                 "webhooks": [{"url": "https://h", "secret_file": "s", "events": ["failure"]}]})
    assert (rec.csv.delimiter, rec.csv.encoding) == (";", "utf-8")
    assert type(rec.csv) is CsvOptions and pickle.loads(pickle.dumps(rec.csv)) == rec.csv
    assert [(w.url, w.secret_file, w.events) for w in rec.webhooks] == [
        ("https://h", str(tmp_path / "s"), ("failure",))]
    assert check({}).webhooks == () and check({}).csv.delimiter == ","
    for data, message in [
        ({"csv": {"delimter": ";"}}, "x.csv.delimter: unknown key 'delimter'; did you mean 'delimiter'?"),
        ({"csv": {"delimiter": 1}}, "x.csv.delimiter: must be a string, got 1"),
        ({"webhooks": {"url": "https://h"}}, "x.webhooks: must be a list of mappings, got {'url': 'https://h'}"),
        ({"webhooks": [{"url": "https://h"}, {"events": ["failure"]}]}, "x.webhooks[1].url: is required"),
        ({"webhooks": ["https://h"]}, "x.webhooks[0]: must be a mapping"),
        ({"webhooks": [{"url": "ftp://h"}]}, "x.webhooks[0].url: must be an http:// or https:// URL, got 'ftp://h'"),
        ({"webhooks": [{"url": "https://h", "secret_env": "E", "secret_file": "f"}]},
         "x.webhooks[0]: set only one of 'secret_env' or 'secret_file'"),
    ]:
        with pytest.raises(ConfigError) as err:
            check(data)
        assert str(err.value) == f"c.yaml: {message}"
