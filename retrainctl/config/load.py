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
from ..base.secrets import redact_text
from ..core.segment_names import parse_name
from . import keys
from .records import (DEFAULT_METRIC, METRICS, CsvOptions, build, default_record,
                      build_record, close_match, resolve)

SEARCH_PATH = ("./etc/retrainctl.yaml", "/etc/retrainctl/retrainctl.yaml")
ENV_VAR = "RETRAINCTL_CONFIG"
# Bounds on what a config may cost to load (docs/configuration.md): its size on disk, and its YAML
# nodes with every alias expanded. A megabyte of plain YAML holds about half a million nodes at
# most, so only aliases reach the second bound: an alias bomb (nested anchors, each used several
# times) is refused before it is built, instead of exhausting memory when something walks it.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 1_000_000
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MODEL_NAME_MAX = 100
# What YAML made of a key it did not read as a string, as an error names it ("YAML read the key
# 123 as a number").
_KINDS = {bool: "a boolean", int: "a number", float: "a number", type(None): "null (no value)"}


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
    def __init__(self, path, written=None):
        self.path = path
        self.written = written or {}  # (type, key) -> the text of a key YAML did not read as a string

    def fail(self, keypath, message):
        raise ConfigError(f"{self.path}: {keypath}: {message}")

    def key_text(self, key):
        """A key as the file spells it: `true`, not True; `1e3`, not 1000.0."""
        if isinstance(key, str):
            return key
        try:
            return self.written.get((type(key), key), str(key))
        except TypeError:
            return str(key)

    def typed_key(self, key):
        """What YAML read a key as when not as a string ('a number'), to say so in an error."""
        import datetime

        if isinstance(key, datetime.datetime):
            return "a timestamp"
        if isinstance(key, datetime.date):
            return "a date"
        return _KINDS.get(type(key), f"a {type(key).__name__}")

    def section(self, data, declaration, prefix):
        """Check one mapping against its declared keys, nested sections and lists included;
        returns it with values converted. A `named` mapping's entries are left to the caller."""
        if not isinstance(data, dict):
            self.fail(prefix or "(top level)", "must be a mapping")
        schema = {k.name: k for k in declaration}
        out = {}
        for name, value in data.items():
            text = self.key_text(name)
            keypath = f"{prefix}.{text}" if prefix else text
            key = schema.get(name)
            if key is None:
                hint = close_match(text, schema)
                self.fail(keypath, f"unknown key '{text}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
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
            self.fail(keypath, f"must be {keys.TYPES[key.type]}, got {_shown(value)}")
        if key.type == "list":
            return [self.item(key, item, f"{keypath}[{i}]") for i, item in enumerate(value)]
        if key.rule is not None and not key.rule.check(value):
            self.fail(keypath, f"{key.rule.message}, got {_shown(value)}")
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
            raw = fh.read(MAX_CONFIG_BYTES + 1)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        size_text = f" ({size} bytes)" if size > MAX_CONFIG_BYTES else ""  # a pipe has no size to tell
        raise ConfigError(f"{path}: the config file is larger than 1 MiB{size_text}, the limit for a config")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None


def load_config(path=None, environ=None):
    """Find, read, parse and validate the config; raises ConfigError naming the file and key."""
    path = find_config(path, environ)
    text = read_config_text(path)
    return parse_config(text, path)


class _Refused(Exception):
    """What the loader refuses beyond YAML syntax; its message follows the file name."""


def _children(node):
    if node.id == "mapping":
        return [part for pair in node.value for part in pair]
    return node.value if node.id == "sequence" else ()


def _check_expansion(root, limit):
    """Refuse a composed document that would hold more than `limit` nodes built, or a cycle.
    An alias is the very node its anchor marks, so the graph is small however often one is used;
    building it (and anything that walks the result, such as json.dumps) counts a node once per
    use. Sizes are summed bottom-up once per distinct node, so a bomb is measured in linear time."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path from the root: met again, it contains itself
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            open_nodes.discard(id(node))
            size[id(node)] = 1 + sum(size[id(child)] for child in _children(node))
            if size[id(node)] > limit:
                raise _Refused(f"YAML aliases expand the config past the limit of {limit} values (at line "
                               f"{node.start_mark.line + 1}): each use of an alias repeats all that its anchor "
                               f"holds")
        elif id(node) in open_nodes:
            raise _Refused(f"the YAML anchor at line {node.start_mark.line + 1} is used inside itself; a config "
                           f"cannot hold a recursive structure")
        elif id(node) not in size:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _loader(yaml):
    """A safe loader that refuses a key given twice in one mapping (YAML says keys are unique;
    PyYAML would silently keep the last) and a document too big once its aliases are expanded.
    libyaml's parser when PyYAML was built with it: several times faster on a big config."""
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):
        def __init__(self, stream):
            super().__init__(stream)
            self.written = {}

        def get_single_data(self):
            """PyYAML's own, with the composed node graph measured before anything is built."""
            node = self.get_single_node()
            if node is None:
                return None
            _check_expansion(node, MAX_CONFIG_NODES)
            return self.construct_document(node)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                    if not isinstance(key, str) and key_node.id == "scalar":
                        self.written[(type(key), key)] = key_node.value
                except TypeError:  # unhashable: the base class says so
                    continue
                if duplicate:
                    mark = key_node.start_mark
                    raise _Refused(f"duplicate key {key!r} (line {mark.line + 1}, column {mark.column + 1}); "
                                   f"a key may appear once per mapping")
            return super().construct_mapping(node, deep)

    return Loader


def parse_config(text, path):
    import yaml

    loader = _loader(yaml)(text)  # as yaml.load does, keeping the loader for the keys' text
    try:
        data = loader.get_single_data()
    except _Refused as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"{path}: cannot parse YAML: {exc}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    v = _Validator(path, loader.written)
    if isinstance(data, dict):  # `x-` keys hold YAML anchors for templates (the Docker Compose convention)
        data = {k: value for k, value in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
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
        _check_model_name(v, name)
        models[name] = _model(v, name, mdata, defaults, base_dir)

    _check_pushgateway(v, top.get("pushgateway") or {})
    _check_executor(v, top.get("executor") or {})
    return build_record(keys.TOP, top, base_dir, path=path, base_dir=base_dir, defaults=defaults, models=models,
                         executor=_executor(top.get("executor") or {}, base_dir), raw=data)


def _check_model_name(v, name):
    text = v.key_text(name)
    keypath = "models." + (text if len(text) <= MODEL_NAME_MAX else text[:20] + "...")
    if not isinstance(name, str) and MODEL_NAME.match(text) and len(text) <= MODEL_NAME_MAX:
        v.fail(keypath, f"YAML read the key {text} as {v.typed_key(name)}; quote it to make it a model name: "
                        f"'{text}':")
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        v.fail(keypath, "model names use letters, digits, '.', '_' and '-' and start with a letter or digit")
    if len(name) > MODEL_NAME_MAX:
        v.fail(keypath, f"a model name has at most {MODEL_NAME_MAX} characters; this one has {len(name)}")


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
    _check_segments(v, prefix, m, name)
    policy = {k.name: build(k, m[k.name], base_dir) for k in keys.POLICY if k.name in m and k.name != "csv"}
    if "csv" in m:  # merged key by key over defaults.csv
        policy["csv"] = _csv(v, m["csv"], f"{prefix}.csv", defaults.csv)
    return build_record(keys.MODEL, m, base_dir, name=name, metric=metric,
                         policy=dataclasses.replace(defaults, **policy))


def _check_segments(v, prefix, m, name):
    """`segment_by` names key columns (not the target, a listed feature or the time column, each
    once); `min_segment_rows` and `max_segments` only go with it."""
    segment_by = m.get("segment_by")
    if not segment_by:
        for key in ("min_segment_rows", "max_segments", "segment_fallback"):
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
    fallback = m.get("segment_fallback")
    if fallback is not None:
        try:
            entry, values = parse_name(fallback)
        except ValueError:
            entry, values = "", ()
        if entry != name or len(values) != len(segment_by):
            v.fail(f"{prefix}.segment_fallback", f"must name a segment of '{name}' with {len(segment_by)} key "
                                                 f"value(s), e.g. '{name}:<value>'; got '{fallback}'")


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
        return _unshared({"models": {model: model_dict(config.model(model))}})
    out = {"config_file": config.path}
    out.update(_plain(config, keys.TOP[:-3]))
    out["executor"] = _plain(config.executor, keys.EXECUTOR, hide=(None, {}))
    out["defaults"] = _plain(config.defaults, keys.POLICY)
    out["models"] = {name: model_dict(m) for name, m in config.models.items()}
    return _unshared(out)


def _unshared(value):
    """Plain data in which no mapping or list appears twice: models share values with `defaults:`
    and with their templates, and PyYAML would print each shared one as an `&id001` anchor."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unshared(v) for v in value]
    return value


def _shown(value: Any) -> str:
    """A rejected value as an error message quotes it: a URL in it redacted, since a config's
    URLs may hold a password, a path or query token (`ftp://user:PASS@host/...`)."""
    return redact_text(repr(value))
