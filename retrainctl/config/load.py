"""Find, parse and validate the YAML config; merge `defaults:` into each model and make paths
absolute, giving the records of config/records.py.

Pure Python and PyYAML only: a `check` with nothing to do must not import the ML stack.
"""
import dataclasses
import math
import os
import re
from typing import Any

from ..base.errors import ConfigError
from . import keys
from .records import (DEFAULT_METRIC, METRICS, CsvOptions, build, default_record,
                      build_record, close_match, resolve)

SEARCH_PATH = ("./etc/retrainctl.yaml", "/etc/retrainctl/retrainctl.yaml")
ENV_VAR = "RETRAINCTL_CONFIG"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _type_ok(kind, value):
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str) and value != ""
    if kind == "strlist":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, dict)


class _Validator:
    def __init__(self, path):
        self.path = path

    def fail(self, keypath, message):
        raise ConfigError(f"{self.path}: {keypath}: {message}")

    def section(self, data, declaration, prefix):
        """Check one mapping against its declared keys, nested sections and lists included;
        returns it with values converted. A `named` mapping's entries are left to the caller."""
        if not isinstance(data, dict):
            self.fail(prefix or "(top level)", "must be a mapping")
        schema = {k.name: k for k in declaration}
        out = {}
        for name, value in data.items():
            keypath = f"{prefix}.{name}" if prefix else str(name)
            key = schema.get(name)
            if key is None:
                hint = close_match(str(name), schema)
                self.fail(keypath, f"unknown key '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
            out[name] = self.value(key, value, keypath)
        for key in declaration:
            if key.required and out.get(key.name) is None:
                self.fail(f"{prefix}.{key.name}", "is required")
            if key.only_with and out.get(key.name) is not None:
                sibling, wanted = key.only_with
                if out.get(sibling, schema[sibling].default) != wanted:
                    self.fail(f"{prefix}.{key.name}", f"applies only to {sibling}: {wanted}")
        return out

    def value(self, key, value, keypath):
        if value is None:
            if key.nullable:
                return None
            self.fail(keypath, f"must be {keys.TYPES[key.type]}, not empty")
        if not _type_ok(key.type, value):
            self.fail(keypath, f"must be {keys.TYPES[key.type]}, got {value!r}")
        if key.type == "list":
            return [self.item(key, item, f"{keypath}[{i}]") for i, item in enumerate(value)]
        if key.rule is not None and not key.rule.check(value):
            self.fail(keypath, f"{key.rule.message}, got {value!r}")
        if key.type == "float":
            return float(value)
        if key.type == "section":
            return self.section(value, key.keys, keypath)
        return value

    def item(self, key, data, keypath):
        """One mapping of a list; the list key's rule checks each of them (e.g. 'only one of')."""
        item = self.section(data, key.keys, keypath)
        if key.rule is not None and not key.rule.check(item):
            self.fail(keypath, key.rule.message)
        return item


def find_config(explicit=None, environ=None):
    """The config path: --config, else $RETRAINCTL_CONFIG, else the search path."""
    environ = os.environ if environ is None else environ
    if explicit:
        return os.path.abspath(explicit)
    if environ.get(ENV_VAR):
        return os.path.abspath(environ[ENV_VAR])
    for candidate in SEARCH_PATH:
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    raise ConfigError(
        f"no config file: pass --config FILE, set ${ENV_VAR}, or create {' or '.join(SEARCH_PATH)}"
    )


def read_config_text(path):
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None


def load_config(path=None, environ=None):
    """Find, read, parse and validate the config; raises ConfigError naming the file and key."""
    path = find_config(path, environ)
    text = read_config_text(path)
    return parse_config(text, path)


class _DuplicateKey(Exception):
    pass


def _loader(yaml):
    """A safe loader that refuses a key given twice in one mapping (YAML says keys are unique;
    PyYAML would silently keep the last). libyaml's parser when PyYAML was built with it:
    several times faster on a big config."""
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class says so
                    continue
                if duplicate:
                    mark = key_node.start_mark
                    raise _DuplicateKey(f"duplicate key {key!r} (line {mark.line + 1}, column {mark.column + 1}); "
                                        f"a key may appear once per mapping")
            return super().construct_mapping(node, deep)

    return Loader


def parse_config(text, path):
    import yaml

    try:
        data = yaml.load(text, Loader=_loader(yaml))
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"{path}: cannot parse YAML: {exc}") from None
    if data is None:
        data = {}
    v = _Validator(path)
    top = v.section(data, keys.TOP, "")
    config_dir = os.path.dirname(os.path.abspath(path))
    base_dir = resolve(config_dir, top.get("base_dir", "."))
    defaults = build(keys.section(keys.TOP, "defaults"), top.get("defaults"), base_dir)
    if (top.get("defaults") or {}).get("csv"):
        defaults = dataclasses.replace(defaults, csv=_csv(v, top["defaults"]["csv"], "defaults.csv", default_record(CsvOptions)))

    models_raw = top.get("models") or {}
    if not models_raw:
        v.fail("models", "no models configured")
    models = {}
    for name, mdata in models_raw.items():
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            v.fail(f"models.{name}", "model names use letters, digits, '.', '_' and '-' and start with a letter or digit")
        models[name] = _model(v, name, mdata, defaults, base_dir)

    _check_pushgateway(v, top.get("pushgateway") or {})
    _check_executor(v, top.get("executor") or {})
    return build_record(keys.TOP, top, base_dir, path=path, base_dir=base_dir, defaults=defaults, models=models,
                         executor=_executor(top.get("executor") or {}, base_dir), raw=data)


def _check_pushgateway(v, push):
    secrets = [k for k in ("password_env", "password_file") if push.get(k)]
    if len(secrets) > 1:
        v.fail("pushgateway.password_file", "set only one of 'password_env' or 'password_file'")
    if secrets and not push.get("username"):
        v.fail("pushgateway.username", f"is required with '{secrets[0]}'")
    if push.get("username") and not secrets:
        v.fail("pushgateway.username", "needs a password: set 'password_env' or 'password_file'")


def _model(v, name, data, defaults, base_dir):
    prefix = f"models.{name}"
    m = v.section(data if data is not None else {}, keys.MODEL + keys.POLICY, prefix)
    if bool(m.get("estimator")) == bool(m.get("trainer")):
        v.fail(f"{prefix}.estimator", "set exactly one of 'estimator' (a scikit-learn class path) or 'trainer' (module:function)")
    if m.get("estimator") and not re.match(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", m["estimator"]):
        v.fail(f"{prefix}.estimator", f"must be a dotted class path such as sklearn.ensemble.RandomForestClassifier, got {m['estimator']!r}")
    if m.get("trainer") and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", m["trainer"]):
        v.fail(f"{prefix}.trainer", f"must look like package.module:function, got {m['trainer']!r}")
    metric = m.get("metric") or DEFAULT_METRIC[m["task"]]
    if metric not in METRICS:
        hint = close_match(metric, METRICS)
        v.fail(f"{prefix}.metric", f"unknown metric '{metric}'" + (f"; did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(METRICS)})"))
    if METRICS[metric][0] != m["task"]:
        v.fail(f"{prefix}.metric", f"'{metric}' is a {METRICS[metric][0]} metric but task is {m['task']}")
    features = m.get("features")
    if features and m["target"] in features:
        v.fail(f"{prefix}.features", f"lists the target column '{m['target']}'")
    feature_types = m.get("feature_types") or {}
    for column in feature_types:
        if column == m["target"]:
            v.fail(f"{prefix}.feature_types.{column}", "is the target column; only features have a type")
        if features and column not in features:
            v.fail(f"{prefix}.feature_types.{column}", f"is not one of the model's features ({', '.join(features)})")
    if m.get("time_column") is not None and m["time_column"] == m["target"]:
        v.fail(f"{prefix}.time_column", f"is the target column '{m['target']}'")
    _check_segments(v, prefix, m)
    policy = {k.name: build(k, m[k.name], base_dir) for k in keys.POLICY if k.name in m and k.name != "csv"}
    if "csv" in m:  # merged key by key over defaults.csv
        policy["csv"] = _csv(v, m["csv"], f"{prefix}.csv", defaults.csv)
    return build_record(keys.MODEL, m, base_dir, name=name, metric=metric,
                         policy=dataclasses.replace(defaults, **policy))


def _check_segments(v, prefix, m):
    """`segment_by` names key columns (not the target, a listed feature or the time column, each
    once); `min_segment_rows` and `max_segments` only go with it."""
    segment_by = m.get("segment_by")
    if not segment_by:
        for key in ("min_segment_rows", "max_segments"):
            if key in m:
                v.fail(f"{prefix}.{key}", "applies only with segment_by")
        return
    for column in segment_by:
        if column == m["target"]:
            v.fail(f"{prefix}.segment_by", f"lists the target column '{column}'")
        if column in (m.get("features") or ()):
            v.fail(f"{prefix}.segment_by", f"lists '{column}', which is also a feature (a segment's key is the "
                                           f"same on all of its rows)")
        if column == m.get("time_column"):
            v.fail(f"{prefix}.segment_by", f"lists the time_column '{column}'")
        if segment_by.count(column) > 1:
            v.fail(f"{prefix}.segment_by", f"names '{column}' twice")


def _csv(v, data, prefix, base):
    """A `csv:` section (already checked key by key) over `base`, the options it overrides."""
    options = dataclasses.replace(base, **{k.name: data[k.name] for k in keys.CSV if k.name in data})
    if options.delimiter == options.quotechar:
        v.fail(f"{prefix}.quotechar", "must differ from the delimiter")
    return options


def _check_executor(v, e):
    if e.get("type", "local") == "dask" and not e.get("address"):
        v.fail("executor.address", "is required with type: dask (e.g. tcp://scheduler:8786)")
    if bool(e.get("tls_cert")) != bool(e.get("tls_key")):
        v.fail("executor.tls_cert" if not e.get("tls_cert") else "executor.tls_key",
               "tls_cert and tls_key go together")


def _executor(e, base_dir):
    paths = {resolve(base_dir, k): t for k, t in e.get("data_path_map", {}).items()}
    return build_record(keys.EXECUTOR, e, base_dir, data_path_map=paths)



def _plain(record, declaration, hide=()):
    """A record as `config` prints it: declared keys in order, tuples as lists, nested records
    as mappings; values in `hide` are left out unless the key says otherwise."""
    out = {}
    for key in declaration:
        value = getattr(record, key.name)
        if key.type == "section":
            value = _plain(value, key.keys)
        elif key.type == "list":
            value = [_plain(item, key.keys) for item in value]
        elif key.show and value is not None:
            value = key.show(value)
        if value in hide and not key.show_null:
            continue
        out[key.name] = value
    return out


def effective(config, model=None):
    """The effective config as plain data (defaults merged, paths absolute), for `retrainctl config`."""
    def model_dict(m):
        return dict(_plain(m, keys.MODEL, hide=(None,)), **_plain(m.policy, keys.POLICY, hide=(None,)))

    if model is not None:
        return {"models": {model: model_dict(config.model(model))}}
    out = {"config_file": config.path}
    out.update(_plain(config, keys.TOP[:-3]))
    out["executor"] = _plain(config.executor, keys.EXECUTOR, hide=(None, {}))
    out["defaults"] = _plain(config.defaults, keys.POLICY)
    out["models"] = {name: model_dict(m) for name, m in config.models.items()}
    return out
