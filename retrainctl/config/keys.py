"""Every config key, declared once: its type, default, allowed values and one line of help.

load.py derives the validation and the `config` output from these tuples, records.py the
defaults of its record classes, reference.py the reference tables in docs/configuration.md.
Plain data (and the enums of core/records.py): a no-op `check` loads it.
"""
import re
from collections.abc import Callable
from typing import Any

from ..core import records

# Key and Rule are plain classes, not dataclasses or named tuples: building one of those costs
# about a millisecond, and this module is on the path of every `check`.


class Rule:
    """A check on a value of the right type; `message` follows the key path in the error, `doc`
    goes in the reference's 'allowed' column."""

    __slots__ = ("check", "message", "doc")

    def __init__(self, check: Callable[[Any], bool], message: str, doc: str) -> None:
        self.check, self.message, self.doc = check, message, doc


def ge(n: float) -> Rule:
    return Rule(lambda v: v >= n, f"must be >= {n}", f">= {n}")


def gt(n: float) -> Rule:
    return Rule(lambda v: v > n, f"must be > {n}", f"> {n}")


def between(lo: float, hi: float) -> Rule:
    return Rule(lambda v: lo <= v <= hi, f"must be between {lo} and {hi}", f"{lo} to {hi}")


def seconds(most: float) -> Rule:
    return Rule(lambda v: 0 < v <= most, f"must be more than 0 and at most {most:g}", f"> 0, <= {most:g}")


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, f"must be one of: {', '.join(choices)}",
                ", ".join(f"`{c}`" for c in choices))


def non_empty(message: str) -> Rule:
    return Rule(lambda v: len(v) > 0, message, "not empty")


HOLDOUT_SHARE = Rule(lambda v: 0 < v < 1, "must be a share of the rows between 0 and 1 (exclusive), e.g. 0.2; "
                    "not a row count", "0 to 1, exclusive")
# Fewest rows a holdout may have: the promotion gate compares a candidate and the live model on
# it, and the performance test takes its score as the baseline; on fewer rows one row's luck
# decides both. A fit whose test_size x labelled rows comes to less fails as a data error.
MIN_HOLDOUT_ROWS = 10

# The YAML types, and how an error names them ("must be an integer, got '5m'").
# `section`: a mapping whose own keys are declared; `list`: a list of such mappings;
# `named`: a mapping of names to such mappings (models); `dict`: a free-form mapping.
TYPES = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
         "strlist": "a list of strings", "dict": "a mapping", "section": "a mapping",
         "named": "a mapping", "list": "a list of mappings"}


class Key:
    """One config key. `rule` on a `list` checks each item, after the item's own keys."""

    __slots__ = ("name", "type", "default", "help", "rule", "nullable", "required", "path", "keys",
                 "only_with", "convert", "show", "show_null", "doc_default")

    def __init__(self, name: str, type: str, default: Any = None, help: str = "", rule: Rule | None = None, *,
                 nullable: bool = False,    # null is a valid value (and means: not set)
                 required: bool = False,
                 path: bool = False,        # a file path, resolved against base_dir
                 keys: tuple["Key", ...] = (),  # the declared keys of a section, list item or named entry
                 only_with: tuple[str, Any] | tuple[()] = (),  # (sibling key, value): the key applies only then
                 convert: Callable[[Any], Any] | None = None,  # YAML value -> the attribute's value
                 show: Callable[[Any], Any] | None = None,     # attribute value -> what `config` prints
                 show_null: bool = False,   # `config` prints it even when null, where nulls are left out
                 doc_default: str | None = None) -> None:  # the default as the reference says it
        assert type in TYPES and bool(keys) == (type in ("section", "list", "named")), name
        self.name, self.type, self.default, self.help, self.rule = name, type, default, help, rule
        self.nullable, self.required, self.path, self.keys, self.only_with = nullable, required, path, keys, only_with
        self.convert, self.show, self.show_null, self.doc_default = convert, show, show_null, doc_default

    def __repr__(self) -> str:
        return f"Key({self.name!r}, {self.type!r})"


OCTAL = Rule(lambda v: re.match(r"^0?[0-7]{3}$", v) is not None, "must be an octal string such as \"0027\"",
             "octal string")
URL = Rule(lambda v: v.startswith(("http://", "https://")), "must be an http:// or https:// URL", "http(s) URL")
SCHEDULER = Rule(lambda v: "://" in v, "must be a scheduler URL such as tcp://host:8786", "scheduler URL")
PATH_MAP = Rule(lambda v: all(isinstance(k, str) and k and isinstance(t, str) and t for k, t in v.items()),
                "must map path prefixes to path or URL prefixes (strings)", "path prefix: path or URL prefix")

TASKS = ("classification", "regression")
MAX_SEGMENTS = 100_000  # max_segments when not set
EXECUTOR_TYPES = ("local", "dask")

# What a column can be declared as in `feature_types` (features.py says what each becomes).
FEATURE_TYPES = ("numeric", "calendar", "categorical", "datetime", "text", "id", "drop")


def _ascii_codec(name: str) -> bool:
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


ONE_CHAR = Rule(lambda v: len(v) == 1 and v not in "\r\n", "must be a single character (not a line break)",
                "one character")
ASCII_CODEC = Rule(_ascii_codec, "must be an ASCII-compatible encoding Python knows, such as utf-8, cp1252 or latin-1",
                   "ASCII-compatible codec")
FEATURE_TYPE_MAP = Rule(lambda v: all(isinstance(k, str) and t in FEATURE_TYPES for k, t in v.items()),
                        f"must map column names to one of: {', '.join(FEATURE_TYPES)}",
                        "column: " + " / ".join(FEATURE_TYPES))

# How a model's CSV files are read, everywhere they are read (fingerprint, fit, eval, drift).
CSV = (
    Key("delimiter", "str", ",", "field separator", ONE_CHAR),
    Key("encoding", "str", "utf-8", "text encoding, e.g. `cp1252` (utf-8 skips a byte-order mark)", ASCII_CODEC),
    Key("quotechar", "str", '"', "quote character (must differ from the delimiter)", ONE_CHAR),
)

# Per model or under `defaults:`. The seed's five keys come first.
POLICY = (
    Key("check_interval", "int", 300, "seconds; a model is evaluated at most this often, across runs "
        "(a `--dry-run` and a missing data file are never held back by it)", ge(0)),
    Key("min_data_size", "int", 100, "rows required before training", ge(1)),
    Key("max_model_age_hours", "float", 24.0, "retrain when the live model is older", gt(0)),
    Key("performance_threshold", "float", 0.05, "relative degradation on recent labelled rows that triggers "
        "retraining", between(0, 1)),
    Key("enable_auto_retraining", "bool", True, "false: `check` never trains this model; `train` still does"),
    Key("keep_versions", "int", 5, "newest versions kept on disk, besides `current` and the newest promoted "
        "version before it (the rollback target), which are never pruned", ge(1)),
    Key("test_size", "float", 0.2, f"share of the labelled rows held out to score the model on; it must come "
        f"to at least {MIN_HOLDOUT_ROWS} rows, else the training fails as a data error", HOLDOUT_SHARE),
    Key("holdout", "str", "random", "`random`: a fixed random share of the rows; `latest`: the newest rows (by "
        "`time_column`, else the newest files of a data set, else the last rows of a file), so that the gate "
        "and the performance baseline score out of time", one_of("random", "latest")),
    Key("random_state", "int", 0, "salt of the holdout split", ge(0)),
    Key("train_timeout_seconds", "float", 3600.0, "a fit that takes longer is killed and recorded as a "
        "`timeout` failure", seconds(7 * 86400)),
    Key("max_memory_mb", "int", None, "address-space limit of a local fit process; exceeding it is a `memory` "
        "failure (native code that just exits under it is `crashed`, its message naming the limit)",
        between(16, 1 << 30), nullable=True),
    Key("max_retries", "int", 5, "automatic attempts per data hash after a failure", ge(0)),
    Key("retry_backoff_seconds", "float", 300.0, "first retry delay after a failure; doubles each time, capped "
        "at `max_model_age_hours`", ge(0)),
    Key("promotion_tolerance", "float", 0.02, "a candidate may be at most this much (relative) worse than the "
        "live model on the same holdout rows", between(0, 1)),
    Key("min_eval_rows", "int", 30, "rows needed before `performance` or `drift` may fire", ge(1)),
    Key("drift_threshold", "float", 0.2, "population stability index above which a feature counts as drifted "
        "(when its test is also significant)", gt(0)),
    Key("quality_alpha", "float", 0.01, "significance level of the performance and drift tests",
        Rule(lambda v: 0 < v < 0.5, "must be more than 0 and less than 0.5", "> 0, < 0.5")),
    Key("drift_share", "float", 0.0, "share of tested features that must drift for the model to count as "
        "drifted (0: any one; at least one always)", between(0, 1)),
    Key("drift_features", "strlist", None, "features the drift test covers (null: every feature the model uses)",
        non_empty("must list at least one feature"), nullable=True, convert=list, show=list),
    Key("drift_exclude", "strlist", None, "features the drift test leaves out", nullable=True, convert=list,
        show=list),
    Key("drift_thresholds", "dict", None, "feature -> PSI threshold overriding `drift_threshold`",
        Rule(lambda v: all(isinstance(k, str) and not isinstance(t, bool) and isinstance(t, (int, float)) and t > 0
                           for k, t in v.items()), "must map feature names to PSI thresholds > 0",
             "feature: PSI > 0"), nullable=True),
    Key("csv", "section", None, "how the model's CSV files are read; a model's keys override `defaults.csv` one by "
        "one", keys=CSV),
    Key("drift_action", "str", "alert", "`alert`: drift is a signal (status, metrics, notifications); "
        "`retrain`: it triggers a retrain", one_of("alert", "retrain")),
)

# Per model only; any POLICY key may be given beside them.
MODEL = (
    Key("data_path", "str", None, "CSV file with a header row", required=True, path=True),
    Key("target", "str", None, "column to predict", required=True),
    Key("task", "str", None, "what the model predicts", one_of(*TASKS), required=True),
    Key("features", "strlist", None, "columns to train on (list them to leave out ids such as iris' `Id`)",
        non_empty("must list at least one column"), nullable=True, convert=tuple, show=list, show_null=True,
        doc_default="every column but the target"),
    Key("estimator", "str", None, "dotted class path, e.g. `sklearn.ensemble.RandomForestClassifier` (or any "
        "class with `fit`/`predict`); set this or `trainer`", nullable=True),
    Key("trainer", "str", None, "instead of `estimator`: `package.module:function` for custom training code",
        nullable=True),
    Key("params", "dict", {}, "keyword arguments for the estimator (or passed to the trainer)"),
    Key("metric", "str", None, "`accuracy`, `f1_macro` (higher is better, classification); `r2` (higher), "
        "`rmse`, `mae` (lower is better, regression)", nullable=True, doc_default="`accuracy` / `r2`"),
    Key("eval_path", "str", None, "labelled recent rows (CSV, training schema) for the `performance` trigger; "
        "without it, rows appended to `data_path` since training", nullable=True, path=True),
    Key("drift_path", "str", None, "unlabelled recent inputs (CSV) for the `drift` trigger",
        nullable=True, path=True),
    Key("feature_types", "dict", {}, "what a column is, overriding what training infers: column -> `numeric`, "
        "`calendar` (a number such as a year or a week that moves on by design: used, never drift-tested), "
        "`categorical`, `datetime`, `text`, `id` or `drop`", FEATURE_TYPE_MAP),
    Key("time_column", "str", None, "the column that says when a row happened (a date, a time or a number): "
        "`holdout: latest` holds out the newest rows by it, and it is never drift-tested", nullable=True),
    Key("segment_by", "strlist", None, "one model per distinct value of these columns (per combination of "
        "several), named `<entry>:<value>[:<value>]`: see many-models.md", non_empty("must list at least one column"),
        nullable=True, convert=tuple, show=list),
    Key("min_segment_rows", "int", None, "with `segment_by`: a segment with fewer rows gets no model and is "
        "counted as skipped in `status` (no record, no notification)", ge(1), nullable=True,
        doc_default="none (only `min_data_size`)"),
    Key("max_segments", "int", None, "with `segment_by`: more distinct segments than this is a data error",
        ge(1), nullable=True, doc_default=f"`{MAX_SEGMENTS}`"),
    Key("segment_fallback", "str", None, "with `segment_by`: the segment (`<entry>:<value>`) whose model answers "
        "rows of a segment the registered MLflow model does not know; unset: such rows are an error naming "
        "their key values (see mlflow.md)", nullable=True, doc_default="none (an error)"),
)

MLFLOW = (
    Key("tracking_uri", "str", None, "where runs go; unset: `$MLFLOW_TRACKING_URI`, else "
        "`sqlite:///<state_dir>/mlflow.db`", nullable=True),
    Key("required", "bool", False, "true: a tracking failure fails the retrain and nothing is promoted"),
    Key("enabled", "bool", True, "false: no MLflow runs at all"),
    Key("timeout_seconds", "float", 30.0, "hard limit on MLflow's time per training or rollback", between(1, 3600)),
    Key("log_report", "bool", True, "attach the model's report page (`report.html`) to each training's run; "
        "another `timeout_seconds` at most, and a failure is only a warning"),
)

PUSHGATEWAY = (
    Key("url", "str", None, "Pushgateway to push the metrics to after every command; unset: no push", URL,
        nullable=True),
    Key("job", "str", "retrainctl", "the `job` grouping key"),
    Key("instance", "str", None, "the `instance` grouping key", nullable=True, doc_default="the host name"),
    Key("timeout_seconds", "float", 5.0, "per push", seconds(3600)),
    Key("username", "str", None, "basic auth user, with `password_env` or `password_file`", nullable=True),
    Key("password_env", "str", None, "name of the environment variable that holds the password (never the "
        "password itself)", nullable=True),
    Key("password_file", "str", None, "file that holds the password", nullable=True, path=True),
)

# Notification events (publish/notify.py sends them), named by core.records.NotifyEvent.
DEFAULT_EVENTS = tuple(str(e) for e in records.DEFAULT_EVENTS)
EVENTS = DEFAULT_EVENTS + tuple(str(e) for e in records.NotifyEvent if e not in records.DEFAULT_EVENTS)
EVENT_NAMES = Rule(lambda v: all(e in EVENTS for e in v), f"must list events among: {', '.join(EVENTS)}",
                   "event names, see report-and-notifications.md")

WEBHOOK = (
    Key("url", "str", None, "where the events are POSTed", URL, required=True),
    Key("secret_env", "str", None, "environment variable holding the signing secret", nullable=True),
    Key("secret_file", "str", None, "file holding the signing secret (white space stripped)", nullable=True,
        path=True),
    Key("events", "strlist", DEFAULT_EVENTS, "which events this endpoint receives", EVENT_NAMES, convert=tuple,
        show=list, doc_default="`success`, `failure`, `rejected`, `skipped`, `interrupted`"),
)

NOTIFY = (
    Key("command", "strlist", None, "argv list (no shell) run after every retraining event, the event as JSON "
        "on stdin (an entry's segments: one aggregate per entry and event per command)", non_empty("must name a program"), nullable=True, convert=tuple, show=list),
    Key("timeout_seconds", "float", 10.0, "a notifier that takes longer is killed and logged; it never fails "
        "the retrain", seconds(3600)),
    Key("webhooks", "list", None, "endpoints that receive events as signed JSON POSTs",
        Rule(lambda item: not (item.get("secret_env") and item.get("secret_file")),
             "give secret_env or secret_file, not both", "one secret at most"), keys=WEBHOOK),
    Key("apprise", "strlist", None, "apprise URLs (Slack, Teams, Matrix, mail...) that receive events as chat "
        "messages; needs `pip install 'retrainctl[notify]'`",
        Rule(lambda v: all("://" in u for u in v), "must be apprise URLs such as slack://... or mailto://...",
             "apprise URLs"), nullable=True, convert=tuple, show=list),
    Key("apprise_events", "strlist", DEFAULT_EVENTS, "which events the apprise URLs receive", EVENT_NAMES,
        convert=tuple, show=list, doc_default="as `webhooks[].events`"),
)

_DASK = ("type", "dask")
EXECUTOR = (
    Key("type", "str", "local", "`local`: child processes on this host; `dask`: a Dask cluster",
        one_of(*EXECUTOR_TYPES)),
    Key("max_parallel", "int", 1, "fits at a time", ge(1), only_with=("type", "local")),
    Key("address", "str", None, "the scheduler, e.g. `tcp://scheduler:8786` (required with dask)", SCHEDULER,
        nullable=True, only_with=_DASK),
    Key("connect_timeout_seconds", "float", 10.0, "an unreachable scheduler, or no workers, fails the run after "
        "this", seconds(3600), only_with=_DASK),
    Key("tls_ca_file", "str", None, "CA bundle for `tls://` addresses", nullable=True, path=True,
        only_with=_DASK),
    Key("tls_cert", "str", None, "client certificate, with `tls_key`", nullable=True, path=True,
        only_with=_DASK),
    Key("tls_key", "str", None, "client key, with `tls_cert`", nullable=True, path=True,
        only_with=_DASK),
    Key("data_path_map", "dict", {}, "controller path prefix -> the path or fsspec URL prefix under which "
        "workers see the same files", PATH_MAP, only_with=_DASK),
)

METRICS = (
    Key("per_segment", "bool", False, "also export each segment of an entry with `segment_by` as a model of "
        "its own (`model_name=\"sales:s0042\"`); by default an entry's series are per entry, at a bounded "
        "number of series however many segments it has"),
)

# In the order `retrainctl config` prints them.
TOP = (
    Key("base_dir", "str", ".", "where relative paths start", doc_default="the config file's folder"),
    Key("state_dir", "str", "var/state", "`events.jsonl`, lock files, caches", path=True),
    Key("model_dir", "str", "var/models", "the versioned model store", path=True),
    Key("log_file", "str", None, "also append log lines to this file", nullable=True, path=True),
    Key("umask", "str", "0027", "file mode mask for everything retrainctl creates (quote it: YAML reads "
        "`0027` as a number)", OCTAL, convert=lambda v: int(v, 8), show=lambda v: f"{v:04o}",
        doc_default='`"0027"`'),
    Key("textfile_path", "str", None, "write the metrics for node_exporter's textfile collector after every "
        "command", nullable=True, path=True),
    Key("state_log_rotate_mb", "float", 256.0, "rotate `events.jsonl` by rename past this size (`null`: never)",
        gt(0), nullable=True),
    Key("mlflow", "section", help="MLflow tracking and registry", keys=MLFLOW),
    Key("pushgateway", "section", help="pushing the metrics to a Prometheus Pushgateway", keys=PUSHGATEWAY),
    Key("metrics", "section", help="what the Prometheus metrics describe", keys=METRICS),
    Key("notify", "section", help="who hears about events: a program, webhooks, chat", keys=NOTIFY),
    Key("executor", "section", help="where fits run", keys=EXECUTOR),
    Key("defaults", "section", help="any policy key, applied to every model unless it overrides", keys=POLICY),
    Key("models", "named", help="one entry per model, keyed by name (letters, digits, `.`, `_`, `-`; at most "
        "100 characters)",
        keys=MODEL + POLICY),
)


def section(declaration: tuple[Key, ...], name: str) -> Key:
    """The key `name` of a declaration (a section's own key, with its nested keys)."""
    return next(k for k in declaration if k.name == name)
