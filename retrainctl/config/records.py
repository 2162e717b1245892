"""The validated config as frozen records, one class per declared section (config/keys.py): each
class lists its keys as annotated fields for readers and the type checker, and `declared` checks
them against the declaration and takes every default from it, so a key is still declared once.
Also the training spec, the one description of a model's training that a fit receives."""
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, dataclass_transform

from ..base.errors import UsageError
from ..core.segment_names import SEPARATOR, parse_name
from . import keys

# metric name -> (task it applies to, higher is better)
METRICS = {
    "accuracy": ("classification", True),
    "f1_macro": ("classification", True),
    "r2": ("regression", True),
    "rmse": ("regression", False),
    "mae": ("regression", False),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2"}

_EMPTY: dict[str, Any] = {"dict": {}, "named": {}, "list": ()}  # what an unset key of these types holds
_records: dict[int, type] = {}  # id(keys tuple) -> the record class declared for it

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def declared(declaration: tuple[keys.Key, ...]) -> Callable[[type[T]], type[T]]:
    """Class decorator: a frozen dataclass whose fields are the declared keys, in their order,
    after the class's own fields without a default and before those with one. The class must
    annotate exactly the declared keys (checked here, at import); their defaults come from the
    declaration."""
    def wrap(cls: type[T]) -> type[T]:
        annotations = dict(cls.__dict__.get("__annotations__", {}))
        own = [n for n in annotations if n not in {k.name for k in declaration}]
        listed = [n for n in annotations if n not in own]
        names = [k.name for k in declaration]
        if listed != names:
            raise TypeError(f"{cls.__name__} must annotate the keys {names} in that order, not {listed}")
        for key in declaration:
            setattr(cls, key.name, _field(key))
        head = {n: annotations[n] for n in own if n not in cls.__dict__}
        tail = {n: annotations[n] for n in own if n in cls.__dict__}
        cls.__annotations__ = {**head, **{n: annotations[n] for n in names}, **tail}
        record = dataclass(frozen=True)(cls)
        _records[id(declaration)] = record
        return record
    return wrap


def _field(key: keys.Key) -> Any:
    """The dataclass field of a declared key: its default as the attribute holds it."""
    if key.type in ("section", "list", "named", "dict"):
        return field(default_factory=lambda: build(key, key.default, None))
    return field(default=build(key, key.default, None))


def build(key: keys.Key, value: Any, base_dir: str | None) -> Any:
    """A validated YAML value (or the key's default) as the attribute holds it."""
    if key.type == "section":
        return build_record(key.keys, value or {}, base_dir)
    if value is None:
        return _EMPTY.get(key.type)
    if key.type == "list":
        return tuple(build_record(key.keys, item, base_dir) for item in value)
    if key.path and base_dir is not None:
        return resolve(base_dir, value)
    if key.convert:
        return key.convert(value)
    return dict(value) if key.type == "dict" else value


def build_record(declaration: tuple[keys.Key, ...], data: Mapping[str, Any], root: str | None, /,
                 **given: Any) -> Any:
    """The record of a section (or list item): its declared keys built, `given` ones as passed
    (positional-only parameters, since `base_dir` is a field too)."""
    values = {k.name: build(k, data.get(k.name, k.default), root) for k in declaration if k.name not in given}
    return _records[id(declaration)](**values, **given)


_NO_KEYS: dict[str, Any] = {}


def default_record(cls: type[T]) -> T:
    """The record of a declared section with every key at its default (declared() set them)."""
    return cls(**_NO_KEYS)


def resolve(base: str, path: str) -> str:
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


@declared(keys.CSV)
class CsvOptions:
    """How a model's CSV files are read, everywhere they are read (fingerprint, fit, eval, drift)."""

    delimiter: str
    encoding: str
    quotechar: str

    @property
    def text_encoding(self) -> str:
        """The codec to decode with: UTF-8 files often start with a byte-order mark, which must
        not become part of the first column's name."""
        return "utf-8-sig" if self.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else self.encoding


@declared(keys.POLICY)
class RetrainingConfig:
    """When and how often a model is retrained; the seed's field names and defaults come first."""

    check_interval: int
    min_data_size: int
    max_model_age_hours: float
    performance_threshold: float
    enable_auto_retraining: bool
    keep_versions: int
    test_size: float
    holdout: str
    random_state: int
    train_timeout_seconds: float
    max_memory_mb: int | None
    max_retries: int
    retry_backoff_seconds: float
    promotion_tolerance: float
    min_eval_rows: int
    drift_threshold: float
    quality_alpha: float
    drift_share: float
    drift_features: list[str] | None
    drift_exclude: list[str] | None
    drift_thresholds: dict[str, float] | None
    csv: CsvOptions
    drift_action: str
    # The Python API's hook, not a config key.
    notification_callback: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TrainingSpec:
    """What a fit needs to know about a model, whatever it runs on (a child process, a Dask
    worker): plain, picklable values, built from the config by ModelConfig.training_spec only."""

    name: str
    target: str
    task: str
    metric: str
    features: tuple[str, ...] | None
    estimator: str | None
    trainer: str | None
    params: Mapping[str, Any]
    test_size: float
    random_state: int
    csv: CsvOptions
    feature_types: Mapping[str, str]
    holdout: str = "random"
    time_column: str | None = None
    min_data_size: int = 1
    segment_by: tuple[str, ...] = ()        # the entry's key columns (read as text, never features)
    segment: tuple[str | None, ...] = ()    # a segment model's key values: the fit keeps only its rows

    def with_features(self, features: list[str] | tuple[str, ...] | None) -> "TrainingSpec":
        return dataclasses.replace(self, features=tuple(features) if features else None)


@declared(keys.MODEL)
class ModelConfig:
    name: str
    data_path: str
    target: str
    task: str
    features: tuple[str, ...] | None
    estimator: str | None
    trainer: str | None
    params: dict[str, Any]
    metric: str
    eval_path: str | None
    drift_path: str | None
    feature_types: dict[str, str]
    time_column: str | None
    segment_by: tuple[str, ...] | None
    min_segment_rows: int | None
    max_segments: int | None
    segment_fallback: str | None
    policy: RetrainingConfig = field(default_factory=lambda: default_record(RetrainingConfig))
    # A segment model (config.segments.segment_model): the entry it belongs to and its key values.
    entry: str | None = None
    segment: tuple[str | None, ...] = ()

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric][1]

    @property
    def csv(self) -> CsvOptions:
        return self.policy.csv

    @property
    def segment_limit(self) -> int:
        return self.max_segments or keys.MAX_SEGMENTS

    def for_segment(self, key: str) -> "ModelConfig":
        """The model of one segment of this entry (`key`: its name after `<entry>:`), which has
        the entry's config under its own name. Built by copying the record's fields, not by
        dataclasses.replace: an entry may have tens of thousands of segments."""
        name = f"{self.name}{SEPARATOR}{key}"
        self.config_hash  # noqa: B018 - computed on the entry once, copied to each segment below
        seg = object.__new__(ModelConfig)
        seg.__dict__.update(self.__dict__, name=name, entry=self.name, segment=parse_name(name)[1])
        return seg

    def training_spec(self) -> TrainingSpec:
        return TrainingSpec(name=self.name, target=self.target, task=self.task, metric=self.metric,
                            features=tuple(self.features) if self.features else None, estimator=self.estimator,
                            trainer=self.trainer, params=dict(self.params), test_size=self.policy.test_size,
                            random_state=self.policy.random_state, csv=self.csv,
                            feature_types=dict(self.feature_types), holdout=self.policy.holdout,
                            time_column=self.time_column, min_data_size=self.policy.min_data_size,
                            segment_by=tuple(self.segment_by or ()), segment=self.segment)

    @property
    def config_hash(self) -> str:
        """A fingerprint of training_config(): what metadata.json and the records remember.
        Computed once per entry: its segments share it (see training_config)."""
        found = self.__dict__.get("_config_hash")
        if found is None:
            import hashlib
            import json

            found = hashlib.sha256(json.dumps(self.training_config(), sort_keys=True).encode()).hexdigest()[:16]
            self.__dict__["_config_hash"] = found
        return found

    def training_config(self) -> dict[str, Any]:
        """What shapes the model a fit makes, as plain data: a change to any of it is a
        `config_change` (the live version's is in its metadata.json). The same for every segment
        of an entry (the segment's values are not in it), so it is built once per entry and
        copied with it by for_segment (a check of ten thousand segments built it 20,000 times)."""
        found = self.__dict__.get("_training_config")
        if found is None:
            found = self.__dict__["_training_config"] = self._training_config()
        return dict(found)

    def _training_config(self) -> dict[str, Any]:
        spec = self.training_spec()
        return {"estimator": spec.estimator, "trainer": spec.trainer, "params": dict(spec.params),
                "features": list(spec.features) if spec.features else None, "target": spec.target,
                "task": spec.task, "csv": dataclasses.asdict(spec.csv), "feature_types": dict(spec.feature_types),
                "test_size": spec.test_size, "random_state": spec.random_state, "holdout": spec.holdout,
                "time_column": spec.time_column,
                # only where set: a model without it keeps the hash its live version remembers
                **({"segment_by": list(spec.segment_by)} if spec.segment_by else {})}


@declared(keys.WEBHOOK)
class WebhookConfig:
    url: str
    secret_env: str | None
    secret_file: str | None
    events: tuple[str, ...]


@declared(keys.NOTIFY)
class NotifyConfig:
    command: tuple[str, ...] | None
    timeout_seconds: float
    webhooks: tuple[WebhookConfig, ...]
    apprise: tuple[str, ...] | None
    apprise_events: tuple[str, ...]


@declared(keys.MLFLOW)
class MlflowConfig:
    tracking_uri: str | None
    required: bool
    enabled: bool
    timeout_seconds: float
    log_report: bool


@declared(keys.PUSHGATEWAY)
class PushgatewayConfig:
    url: str | None
    job: str
    instance: str | None
    timeout_seconds: float
    username: str | None
    password_env: str | None
    password_file: str | None


@declared(keys.METRICS)
class MetricsConfig:
    per_segment: bool


@declared(keys.EXECUTOR)
class ExecutorConfig:
    """Where fits run: child processes on this host (`local`) or a Dask cluster (`dask`)."""

    type: str
    max_parallel: int
    address: str | None
    connect_timeout_seconds: float
    tls_ca_file: str | None
    tls_cert: str | None
    tls_key: str | None
    data_path_map: dict[str, str]

    def worker_path(self, path: str) -> str:
        """The data path as the workers see it: the longest matching `data_path_map` prefix swapped."""
        for prefix in sorted(self.data_path_map, key=len, reverse=True):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return self.data_path_map[prefix].rstrip("/") + path[len(prefix.rstrip("/")):]
        return path


@declared(keys.TOP)
class Config:
    path: str
    base_dir: str
    state_dir: str
    model_dir: str
    log_file: str | None
    umask: int
    textfile_path: str | None
    state_log_rotate_mb: float | None
    mlflow: MlflowConfig
    pushgateway: PushgatewayConfig
    metrics: MetricsConfig
    notify: NotifyConfig
    executor: ExecutorConfig
    defaults: RetrainingConfig
    models: dict[str, ModelConfig]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def file_digest(self) -> str | None:
        """SHA-256 of the config file's bytes as they are now, read once per process (the
        validation cache and the quiet entries key on it); None when it cannot be read."""
        if "_file_digest" not in self.__dict__:
            import hashlib

            try:
                with open(self.path, "rb") as fh:
                    self.__dict__["_file_digest"] = hashlib.sha256(fh.read()).hexdigest()
            except OSError:
                self.__dict__["_file_digest"] = None
        return self.__dict__["_file_digest"]

    @property
    def state_log_rotate_bytes(self) -> int | None:
        """events.jsonl is rotated (renamed whole) once it reaches this size; None: never."""
        return int(self.state_log_rotate_mb * (1 << 20)) if self.state_log_rotate_mb else None

    def model(self, name: str) -> ModelConfig:
        try:
            return self.models[name]
        except KeyError:
            raise unknown_model(self, name) from None


def close_match(word: str, choices: Any) -> list[str]:
    """[the closest valid name] or []: the did-you-mean of an error message (difflib is
    imported only when there is an error to explain)."""
    import difflib

    return difflib.get_close_matches(word, list(choices), n=1)


def unknown_model(config: Config, name: str) -> UsageError:
    hint = close_match(name, config.models)
    msg = f"model '{name}' is not configured in {config.path}"
    if hint:
        msg += f"; did you mean '{hint[0]}'?"
    elif config.models:
        msg += f" (configured: {', '.join(sorted(config.models))})"
    return UsageError(msg)
