"""Find, parse and validate the YAML config; merge `defaults:` into each model and make paths absolute.

Pure Python and PyYAML only: a `check` with nothing to do must not import the ML stack.
"""
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from .errors import ConfigError

SEARCH_PATH = ("./etc/retrainctl.yaml", "/etc/retrainctl/retrainctl.yaml")
ENV_VAR = "RETRAINCTL_CONFIG"

# metric name -> (task it applies to, higher is better)
METRICS = {
    "accuracy": ("classification", True),
    "f1_macro": ("classification", True),
    "r2": ("regression", True),
    "rmse": ("regression", False),
    "mae": ("regression", False),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}
TASKS = ("classification", "regression")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# What a column can be declared as in `feature_types` (training.build_pipeline says what each becomes).
FEATURE_TYPES = ("numeric", "categorical", "datetime", "text", "id", "drop")


@dataclass(frozen=True)
class CsvOptions:
    """How a model's CSV files are read, everywhere they are read (fingerprint, fit, eval, drift)."""

    delimiter: str = ","
    encoding: str = "utf-8"
    quotechar: str = '"'

    @property
    def text_encoding(self):
        """The codec to decode with: UTF-8 files often start with a byte-order mark, which must
        not become part of the first column's name."""
        return "utf-8-sig" if self.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else self.encoding


@dataclass(frozen=True)
class RetrainingConfig:
    """When and how often a model is retrained; the seed's field names and defaults come first."""

    check_interval: int = 300
    min_data_size: int = 100
    max_model_age_hours: float = 24.0
    performance_threshold: float = 0.05
    enable_auto_retraining: bool = True
    notification_callback: Optional[Callable] = field(default=None, compare=False, repr=False)
    keep_versions: int = 5
    test_size: float = 0.2
    random_state: int = 0
    train_timeout_seconds: float = 3600.0
    max_memory_mb: Optional[int] = None
    max_retries: int = 5
    retry_backoff_seconds: float = 300.0
    promotion_tolerance: float = 0.02
    min_eval_rows: int = 30
    drift_threshold: float = 0.2
    csv: CsvOptions = field(default_factory=CsvOptions)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    data_path: str
    target: str
    task: str
    metric: str
    features: Optional[tuple] = None
    estimator: Optional[str] = None
    trainer: Optional[str] = None
    params: dict = field(default_factory=dict)
    policy: RetrainingConfig = field(default_factory=RetrainingConfig)
    eval_path: Optional[str] = None     # recent labelled rows for the performance trigger
    drift_path: Optional[str] = None    # recent unlabelled inputs for the drift trigger
    feature_types: dict = field(default_factory=dict)  # column -> one of FEATURE_TYPES

    @property
    def higher_is_better(self):
        return METRICS[self.metric][1]

    @property
    def csv(self):
        return self.policy.csv

    def training_spec(self):
        """The plain-data description a training task needs (picklable, no paths but the data's)."""
        return {
            "name": self.name,
            "target": self.target,
            "task": self.task,
            "metric": self.metric,
            "features": list(self.features) if self.features else None,
            "estimator": self.estimator,
            "trainer": self.trainer,
            "params": dict(self.params),
            "test_size": self.policy.test_size,
            "random_state": self.policy.random_state,
            "csv": dataclasses.asdict(self.csv),
            "feature_types": dict(self.feature_types),
        }


@dataclass(frozen=True)
class NotifyConfig:
    command: Optional[tuple] = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: Optional[str] = None
    required: bool = False
    enabled: bool = True
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class PushgatewayConfig:
    url: Optional[str] = None
    job: str = "retrainctl"
    instance: Optional[str] = None        # grouping key; None = the host name
    timeout_seconds: float = 5.0
    username: Optional[str] = None
    password_env: Optional[str] = None    # name of the variable holding the password, never the password
    password_file: Optional[str] = None


@dataclass(frozen=True)
class ExecutorConfig:
    """Where fits run: child processes on this host (`local`) or a Dask cluster (`dask`)."""

    type: str = "local"
    max_parallel: int = 1
    address: Optional[str] = None
    connect_timeout_seconds: float = 10.0
    tls_ca_file: Optional[str] = None
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    # controller path prefix -> the path or fsspec URL prefix under which workers see the same files
    data_path_map: dict = field(default_factory=dict)

    def worker_path(self, path):
        """The data path as the workers see it: the longest matching `data_path_map` prefix swapped."""
        for prefix in sorted(self.data_path_map, key=len, reverse=True):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return self.data_path_map[prefix].rstrip("/") + path[len(prefix.rstrip("/")):]
        return path


@dataclass(frozen=True)
class Config:
    path: str
    base_dir: str
    state_dir: str
    model_dir: str
    models: dict
    defaults: RetrainingConfig = field(default_factory=RetrainingConfig)
    log_file: Optional[str] = None
    umask: int = 0o027
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    pushgateway: PushgatewayConfig = field(default_factory=PushgatewayConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    textfile_path: Optional[str] = None
    state_log_rotate_mb: Optional[float] = 256.0
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def state_log_rotate_bytes(self):
        """events.jsonl is rotated (renamed whole) once it reaches this size; None: never."""
        return int(self.state_log_rotate_mb * (1 << 20)) if self.state_log_rotate_mb else None

    def model(self, name):
        try:
            return self.models[name]
        except KeyError:
            raise unknown_model(self, name) from None


def unknown_model(config, name):
    from .errors import UsageError

    hint = _close_match(name, config.models)
    msg = f"model '{name}' is not configured in {config.path}"
    if hint:
        msg += f"; did you mean '{hint[0]}'?"
    elif config.models:
        msg += f" (configured: {', '.join(sorted(config.models))})"
    return UsageError(msg)


def _close_match(word, choices):
    """[the closest valid name] or []: the did-you-mean of an error message (difflib is
    imported only when there is an error to explain)."""
    import difflib

    return difflib.get_close_matches(word, list(choices), n=1)


# --- schema -------------------------------------------------------------------------------------
# Each rule: (kind, check, message). kinds: int, float, bool, str, strlist, dict, any.


def _ge(n):
    return (lambda v: v >= n), f"must be >= {n}"


def _gt(n):
    return (lambda v: v > n), f"must be > {n}"


def _between(lo, hi):
    return (lambda v: lo <= v <= hi), f"must be between {lo} and {hi}"


def _seconds(most):
    return (lambda v: 0 < v <= most), f"must be more than 0 and at most {most:g}"


_open_unit = ((lambda v: 0 < v < 1), "must be between 0 and 1 (exclusive)")

POLICY_SCHEMA = {
    "check_interval": ("int", _ge(0)),
    "min_data_size": ("int", _ge(1)),
    "max_model_age_hours": ("float", _gt(0)),
    "performance_threshold": ("float", _between(0, 1)),
    "enable_auto_retraining": ("bool", None),
    "keep_versions": ("int", _ge(1)),
    "test_size": ("float", _open_unit),
    "random_state": ("int", _ge(0)),
    "train_timeout_seconds": ("float", _seconds(7 * 86400)),
    "max_memory_mb": ("int?", _between(16, 1 << 30)),
    "max_retries": ("int", _ge(0)),
    "retry_backoff_seconds": ("float", _ge(0)),
    "promotion_tolerance": ("float", _between(0, 1)),
    "min_eval_rows": ("int", _ge(1)),
    "drift_threshold": ("float", _gt(0)),
    "csv": ("dict", None),
}
MODEL_SCHEMA = {
    "data_path": ("str", None),
    "target": ("str", None),
    "task": ("str", ((lambda v: v in TASKS), f"must be one of: {', '.join(TASKS)}")),
    "features": ("strlist?", ((lambda v: len(v) > 0), "must list at least one column")),
    "estimator": ("str?", None),
    "trainer": ("str?", None),
    "params": ("dict", None),
    "metric": ("str?", None),
    "eval_path": ("str?", None),
    "drift_path": ("str?", None),
    "feature_types": ("dict", ((lambda v: all(isinstance(k, str) and t in FEATURE_TYPES for k, t in v.items())),
                               f"must map column names to one of: {', '.join(FEATURE_TYPES)}")),
    **POLICY_SCHEMA,
}
REQUIRED_MODEL_KEYS = ("data_path", "target", "task")
TOP_SCHEMA = {
    "base_dir": ("str", None),
    "state_dir": ("str", None),
    "model_dir": ("str", None),
    "log_file": ("str?", None),
    "umask": ("str", ((lambda v: re.match(r"^0?[0-7]{3}$", v) is not None), "must be an octal string such as \"0027\"")),
    "mlflow": ("dict", None),
    "pushgateway": ("dict", None),
    "notify": ("dict", None),
    "executor": ("dict", None),
    "textfile_path": ("str?", None),
    "defaults": ("dict", None),
    "models": ("dict", None),
    "state_log_rotate_mb": ("float?", _gt(0)),
}
MLFLOW_SCHEMA = {"tracking_uri": ("str?", None), "required": ("bool", None), "enabled": ("bool", None),
                 "timeout_seconds": ("float", _between(1, 3600))}
PUSHGATEWAY_SCHEMA = {
    "url": ("str?", ((lambda v: v.startswith(("http://", "https://"))), "must be an http:// or https:// URL")),
    "job": ("str", None),
    "instance": ("str?", None),
    "timeout_seconds": ("float", _seconds(3600)),
    "username": ("str?", None),
    "password_env": ("str?", None),
    "password_file": ("str?", None),
}
NOTIFY_SCHEMA = {
    "command": ("strlist?", ((lambda v: len(v) > 0), "must name a program")),
    "timeout_seconds": ("float", _seconds(3600)),
}

EXECUTOR_TYPES = ("local", "dask")
EXECUTOR_SCHEMA = {
    "type": ("str", ((lambda v: v in EXECUTOR_TYPES), f"must be one of: {', '.join(EXECUTOR_TYPES)}")),
    "max_parallel": ("int", _ge(1)),
    "address": ("str?", ((lambda v: "://" in v), "must be a scheduler URL such as tcp://host:8786")),
    "connect_timeout_seconds": ("float", _seconds(3600)),
    "tls_ca_file": ("str?", None),
    "tls_cert": ("str?", None),
    "tls_key": ("str?", None),
    "data_path_map": ("dict", ((lambda v: all(isinstance(k, str) and k and isinstance(t, str) and t
                                              for k, t in v.items())),
                               "must map path prefixes to path or URL prefixes (strings)")),
}
_LOCAL_ONLY = ("max_parallel",)
_DASK_ONLY = ("address", "connect_timeout_seconds", "tls_ca_file", "tls_cert", "tls_key", "data_path_map")



def _ascii_codec(name):
    """Known to Python and ASCII-compatible: rows are counted on the raw bytes by their newlines
    and quote characters, which UTF-16 and the like would spell differently."""
    import codecs

    ascii_text = bytes(range(32, 127)) + b"\t\r\n"
    try:
        if codecs.lookup(name).name == "utf-8-sig":
            return True
        return ascii_text.decode("ascii").encode(name) == ascii_text
    except (LookupError, UnicodeError, ValueError, TypeError):
        return False


_one_char = ((lambda v: len(v) == 1 and v not in "\r\n"), "must be a single character (not a line break)")
CSV_SCHEMA = {
    "delimiter": ("str", _one_char),
    "encoding": ("str", (_ascii_codec, "must be an ASCII-compatible encoding Python knows, such as utf-8, cp1252 or latin-1")),
    "quotechar": ("str", _one_char),
}

_TYPE_NAMES = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
               "strlist": "a list of strings", "dict": "a mapping"}


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
    if kind == "dict":
        return isinstance(value, dict)
    raise AssertionError(kind)


class _Validator:
    def __init__(self, path):
        self.path = path

    def fail(self, keypath, message):
        raise ConfigError(f"{self.path}: {keypath}: {message}")

    def section(self, data, schema, prefix):
        """Check one mapping against a schema; returns it with values converted."""
        if not isinstance(data, dict):
            self.fail(prefix or "(top level)", "must be a mapping")
        out = {}
        for key, value in data.items():
            keypath = f"{prefix}.{key}" if prefix else str(key)
            if key not in schema:
                hint = _close_match(str(key), schema)
                self.fail(keypath, f"unknown key '{key}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
            kind, rule = schema[key]
            optional = kind.endswith("?")
            kind = kind.rstrip("?")
            if value is None:
                if optional:
                    out[key] = None
                    continue
                self.fail(keypath, f"must be {_TYPE_NAMES[kind]}, not empty")
            if not _type_ok(kind, value):
                self.fail(keypath, f"must be {_TYPE_NAMES[kind]}, got {value!r}")
            if rule is not None:
                check, message = rule
                if not check(value):
                    self.fail(keypath, f"{message}, got {value!r}")
            if kind == "float":
                value = float(value)
            out[key] = value
        return out


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
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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
    top = v.section(data, TOP_SCHEMA, "")

    config_dir = os.path.dirname(os.path.abspath(path))
    base_dir = _resolve(config_dir, top.get("base_dir", "."))

    defaults_raw = v.section(top.get("defaults") or {}, POLICY_SCHEMA, "defaults")
    if "csv" in defaults_raw:
        defaults_raw["csv"] = _csv(v, defaults_raw["csv"], "defaults.csv", CsvOptions())
    defaults = RetrainingConfig(**defaults_raw)

    models_raw = top.get("models") or {}
    if not models_raw:
        v.fail("models", "no models configured")
    models = {}
    for name, mdata in models_raw.items():
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            v.fail(f"models.{name}", "model names use letters, digits, '.', '_' and '-' and start with a letter or digit")
        models[name] = _model(v, name, mdata, defaults, base_dir)

    mlflow = MlflowConfig(**v.section(top.get("mlflow") or {}, MLFLOW_SCHEMA, "mlflow"))
    push = _pushgateway(v, top.get("pushgateway") or {}, base_dir)
    notify_raw = v.section(top.get("notify") or {}, NOTIFY_SCHEMA, "notify")
    if notify_raw.get("command"):
        notify_raw["command"] = tuple(notify_raw["command"])
    notify = NotifyConfig(**notify_raw)
    executor = _executor(v, top.get("executor") or {}, base_dir)
    log_file = top.get("log_file")
    return Config(
        path=path,
        base_dir=base_dir,
        state_dir=_resolve(base_dir, top.get("state_dir", "var/state")),
        model_dir=_resolve(base_dir, top.get("model_dir", "var/models")),
        models=models,
        defaults=defaults,
        log_file=_resolve(base_dir, log_file) if log_file else None,
        umask=int(top.get("umask", "0027"), 8),
        mlflow=mlflow,
        pushgateway=push,
        notify=notify,
        executor=executor,
        textfile_path=_resolve(base_dir, top["textfile_path"]) if top.get("textfile_path") else None,
        state_log_rotate_mb=top.get("state_log_rotate_mb", Config.state_log_rotate_mb),
        raw=data,
    )


def _pushgateway(v, data, base_dir):
    push = v.section(data, PUSHGATEWAY_SCHEMA, "pushgateway")
    secrets = [k for k in ("password_env", "password_file") if push.get(k)]
    if len(secrets) > 1:
        v.fail("pushgateway.password_file", "set only one of 'password_env' or 'password_file'")
    if secrets and not push.get("username"):
        v.fail("pushgateway.username", f"is required with '{secrets[0]}'")
    if push.get("username") and not secrets:
        v.fail("pushgateway.username", "needs a password: set 'password_env' or 'password_file'")
    if push.get("password_file"):
        push["password_file"] = _resolve(base_dir, push["password_file"])
    return PushgatewayConfig(**push)


def _model(v, name, data, defaults, base_dir):
    prefix = f"models.{name}"
    m = v.section(data if data is not None else {}, MODEL_SCHEMA, prefix)
    for key in REQUIRED_MODEL_KEYS:
        if key not in m or m[key] is None:
            v.fail(f"{prefix}.{key}", "is required")
    if bool(m.get("estimator")) == bool(m.get("trainer")):
        v.fail(f"{prefix}.estimator", "set exactly one of 'estimator' (a scikit-learn class path) or 'trainer' (module:function)")
    if m.get("estimator") and not re.match(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", m["estimator"]):
        v.fail(f"{prefix}.estimator", f"must be a dotted class path such as sklearn.ensemble.RandomForestClassifier, got {m['estimator']!r}")
    if m.get("trainer") and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", m["trainer"]):
        v.fail(f"{prefix}.trainer", f"must look like package.module:function, got {m['trainer']!r}")
    metric = m.get("metric") or DEFAULT_METRIC[m["task"]]
    if metric not in METRICS:
        hint = _close_match(metric, METRICS)
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
    policy_over = {k: m[k] for k in POLICY_SCHEMA if k in m}
    if "csv" in policy_over:  # merged key by key over defaults.csv
        policy_over["csv"] = _csv(v, m["csv"], f"{prefix}.csv", defaults.csv)
    policy = dataclasses.replace(defaults, **policy_over)
    return ModelConfig(
        name=name,
        data_path=_resolve(base_dir, m["data_path"]),
        target=m["target"],
        task=m["task"],
        metric=metric,
        features=tuple(features) if features else None,
        estimator=m.get("estimator"),
        trainer=m.get("trainer"),
        params=dict(m.get("params") or {}),
        policy=policy,
        eval_path=_resolve(base_dir, m["eval_path"]) if m.get("eval_path") else None,
        drift_path=_resolve(base_dir, m["drift_path"]) if m.get("drift_path") else None,
        feature_types=dict(feature_types),
    )


def _csv(v, data, prefix, base):
    options = v.section(data, CSV_SCHEMA, prefix)
    if options.get("delimiter", base.delimiter) == options.get("quotechar", base.quotechar):
        v.fail(f"{prefix}.quotechar", "must differ from the delimiter")
    return dataclasses.replace(base, **options)


def _executor(v, data, base_dir):
    e = v.section(data, EXECUTOR_SCHEMA, "executor")
    kind = e.get("type", "local")
    for key in _DASK_ONLY if kind == "local" else _LOCAL_ONLY:
        if e.get(key) is not None:
            v.fail(f"executor.{key}", f"applies only to type: {'dask' if kind == 'local' else 'local'}")
    if kind == "dask" and not e.get("address"):
        v.fail("executor.address", "is required with type: dask (e.g. tcp://scheduler:8786)")
    if bool(e.get("tls_cert")) != bool(e.get("tls_key")):
        v.fail("executor.tls_cert" if not e.get("tls_cert") else "executor.tls_key",
               "tls_cert and tls_key go together")
    for key in ("tls_ca_file", "tls_cert", "tls_key"):
        if e.get(key):
            e[key] = _resolve(base_dir, e[key])
    if "data_path_map" in e:
        e["data_path_map"] = {_resolve(base_dir, k): t for k, t in e["data_path_map"].items()}
    return ExecutorConfig(**e)


def _resolve(base, path):
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def effective(config, model=None):
    """The effective config as plain data (defaults merged, paths absolute), for `retrainctl config`."""
    def model_dict(m):
        d = {
            "data_path": m.data_path,
            "target": m.target,
            "task": m.task,
            "features": list(m.features) if m.features else None,
            "estimator": m.estimator,
            "trainer": m.trainer,
            "params": m.params,
            "metric": m.metric,
            "eval_path": m.eval_path,
            "drift_path": m.drift_path,
            "feature_types": m.feature_types or None,
        }
        d.update(_policy_dict(m.policy))
        return {k: v for k, v in d.items() if v is not None or k in ("features",)}

    if model is not None:
        return {"models": {model: model_dict(config.model(model))}}
    return {
        "config_file": config.path,
        "base_dir": config.base_dir,
        "state_dir": config.state_dir,
        "model_dir": config.model_dir,
        "log_file": config.log_file,
        "umask": f"{config.umask:04o}",
        "textfile_path": config.textfile_path,
        "state_log_rotate_mb": config.state_log_rotate_mb,
        "mlflow": dataclasses.asdict(config.mlflow),
        "pushgateway": dataclasses.asdict(config.pushgateway),
        "notify": {"command": list(config.notify.command) if config.notify.command else None,
                   "timeout_seconds": config.notify.timeout_seconds},
        "executor": {k: v for k, v in dataclasses.asdict(config.executor).items() if v not in (None, {})},
        "defaults": _policy_dict(config.defaults),
        "models": {name: model_dict(m) for name, m in config.models.items()},
    }


def _policy_dict(policy):
    return {k: dataclasses.asdict(getattr(policy, k)) if k == "csv" else getattr(policy, k) for k in POLICY_SCHEMA}


def redact(url):
    """A URL from the config without the password it might embed, for log lines and messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
