"""The command line: parse, call one library function, format the result. Errors from the
library are turned into exit codes here and only here."""
import functools
import json
import logging
import os
import sys

import click

from . import schemas
from .base.version import __version__

from .base import logsetup
from .base.errors import RetrainctlError, UsageError

log = logging.getLogger("retrainctl")


class Failure(click.ClickException):
    """A library error on its way out, with the exit code its class documents."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class


class JsonError(click.ClickException):
    """An error of a command run with --json: a JSON object on stdout ({"error", "exit_code",
    "schema"}), and on stderr what the error prints without --json."""

    def __init__(self, cause: click.ClickException) -> None:
        super().__init__(cause.format_message())
        self.cause = cause
        self.exit_code = cause.exit_code  # type: ignore[misc]  # click declares it on the class

    def show(self, file=None):
        click.echo(json.dumps({"schema": schemas.VERSIONS["error"], "error": self.message,
                               "exit_code": self.exit_code}, indent=2))
        self.cause.show(file)


# ctx.meta keys: the command line's words, and the parsed --json flag once a command has parsed it.
ARGV_META = "retrainctl.argv"
JSON_META = "retrainctl.json"


def _wants_json(meta, argv):
    """The command's --json flag where parsing got that far; else whether `--json` is on the
    command line (a usage error: an unknown option, a missing argument, an unknown command)."""
    flag = meta.get(JSON_META)
    return flag if flag is not None else "--json" in argv


class RetrainctlGroup(click.Group):
    def make_context(self, info_name, args, parent=None, **extra):
        argv = list(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:  # a usage error in the global options
            if _wants_json({}, argv):
                raise JsonError(exc) from None
            raise
        ctx.meta[ARGV_META] = argv
        return ctx

    def invoke(self, ctx):
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:
            if _wants_json(ctx.meta, ctx.meta.get(ARGV_META, ())):
                raise JsonError(exc) from None
            raise

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RetrainctlError as exc:
            if _verbose(ctx):
                import traceback

                traceback.print_exc()
            raise Failure(str(exc), exc.exit_code) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise Failure("interrupted", 130) from None
        except Exception as exc:
            if _verbose(ctx):
                import traceback

                traceback.print_exc()
            raise Failure(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", 1) from None


def _verbose(ctx):
    return bool(ctx.obj and ctx.obj.verbose > 0)


class Context:
    def __init__(self, config_path, verbose, log_format):
        self.config_path = config_path
        self.verbose = verbose
        self.log_format = log_format
        self._config = None
        self.observed = None  # what a check observed of each model, for the metrics export

    def config(self):
        if self._config is None:
            from .config.load import load_config

            self._config = load_config(self.config_path)
            os.umask(self._config.umask)  # state and model files get no world access
            if self._config.log_file:
                try:
                    logsetup.add_file(self._config.log_file, self.log_format)
                except OSError as exc:
                    raise Failure(f"{self._config.log_file}: cannot open log_file: {exc.strerror}", 2) from None
        return self._config


pass_ctx = click.make_pass_decorator(Context)


def _remember_json(ctx, param, value):
    ctx.meta[JSON_META] = value
    return value


# Eager: the flag is known before any other parameter of the command can fail (a missing MODEL).
json_option = click.option("--json", "as_json", is_flag=True, is_eager=True, callback=_remember_json,
                           help="Print the result as JSON on stdout (errors too).")


def _model_names(ctx, param, incomplete):
    """Shell completion of a model name: the names in the config (the --config given on the
    command line, else the usual lookup) that start with `incomplete`, leaving out those already
    named. None when the config cannot be read: completion never prints into the shell."""
    import warnings

    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from .config.load import load_config

            names = list(load_config(ctx.find_root().params.get("config_path")).models)
    except Exception:  # whatever is wrong with the config, `retrainctl config` says it, not a Tab
        return []
    finally:
        logging.disable(previous)
    given = set(ctx.params.get(param.name) or ()) if param.nargs == -1 else set()
    return [name for name in names if name.startswith(incomplete) and name not in given]


models_argument = click.argument("models", nargs=-1, metavar="[MODEL]...", shell_complete=_model_names)
model_argument = click.argument("model", shell_complete=_model_names)


def model_option(help):
    return click.option("--model", "model", metavar="MODEL", shell_complete=_model_names, help=help)


def exports_metrics(command):
    """Push / write the metrics (pushgateway.url, textfile_path) after the command, whatever its
    exit code; not after a dry run, which promises no side effects."""
    @functools.wraps(command)
    def wrapper(obj, *args, **kwargs):
        try:
            return command(obj, *args, **kwargs)
        finally:
            config = obj._config
            if config is not None and not kwargs.get("dry_run") and (config.pushgateway.url or config.textfile_path):
                from .publish.metrics import export_after_run  # imported only when there is something to export

                export_after_run(config, observed=obj.observed)
    return wrapper


def _emit_json(output, obj):
    """An output's JSON, led by the version of its shape (retrainctl/schemas/<output>.json)."""
    click.echo(json.dumps({"schema": schemas.VERSIONS[output], **obj}, indent=2, default=str))


def _table(headers, rows):
    rows = [["-" if v is None or v == "" else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _age(seconds):
    if seconds is None:
        return None
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"


def _due(due, held):
    """`yes`, `no`, or why a model a trigger fires for is held (backoff, paused, ...)."""
    return "yes" if due else held or "no"


def _why(reasons, note="", alert=""):
    """The triggers that fire; else a quality signal that only alerts; else the note."""
    return ",".join(r.trigger_type for r in reasons) or alert or note


@click.group(cls=RetrainctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RETRAINCTL_CONFIG", show_envvar=True,
              type=click.Path(readable=False), metavar="FILE",
              help="Config file. Default: ./etc/retrainctl.yaml, then /etc/retrainctl/retrainctl.yaml.")
@click.option("-v", "--verbose", count=True, help="More log output; shows tracebacks.")
@click.option("-q", "--quiet", count=True, help="Less log output (-q warnings, -qq errors only).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="RETRAINCTL_LOG_FORMAT", show_envvar=True, help="Format of the log lines on stderr.")
@click.version_option(__version__, prog_name="retrainctl")
@click.pass_context
def main(ctx, config_path, verbose, quiet, log_format):
    """Keep scikit-learn models fresh: decide which models are due, retrain them, record every
    event, export metrics. Run `retrainctl check` from a timer or cron."""
    logsetup.setup(verbose - quiet, log_format)
    ctx.obj = Context(config_path, verbose, log_format)


@main.command()
@models_argument
@click.option("-n", "--dry-run", is_flag=True, help="Decide and report, but train and record nothing; exit 3 if any model is due.")
@click.option("-v", "--verbose", "every", is_flag=True,
              help="A line per segment, not only per-entry counts (failed segments, and due ones in a dry "
                   "run, are always listed).")
@json_option
@pass_ctx
@exports_metrics
def check(obj, models, dry_run, every, as_json):
    """Evaluate every trigger of every model (or the named ones) and retrain those that are due.

    Exit codes: 0 done (nothing due, or every due retrain finished); 1 a retrain or data file
    failed; 2 usage or config error; 3 with --dry-run, at least one model is due."""
    from .commands.check import check as run_check

    report = run_check(obj.config(), models, dry_run=dry_run)
    obj.observed = report.observed
    if as_json:
        _emit_json("check", {"dry_run": dry_run, "exit_code": report.exit_code,
                             "models": [o.to_dict() for o in report.outcomes]})
    else:
        _outcomes(report.outcomes, every, dry_run)
    sys.exit(report.exit_code)


def _outcomes(outcomes, every, dry_run=False):
    """The table of a check's (or a train's) outcomes: a line per declared model, and per entry
    the counts of its segments, naming those that failed, whose performance or drift is
    signalled, or (dry run) that are due; `every`: a line per segment instead of counts."""
    from .core.outcomes import check_counts
    from .core.records import QUALITY_TRIGGERS

    counts = [] if every else check_counts(outcomes)
    shown = [o for o in outcomes if not counts or ":" not in o.model_name or o.failed
             or (dry_run and o.due) or o.alert or any(r.trigger_type in QUALITY_TRIGGERS for r in o.reasons)]
    if shown or not counts:
        click.echo(_table(["MODEL", "DUE", "WHY", "ACTION", "RESULT"],
                          [[o.model_name, _due(o.due, o.held), _why(o.reasons, o.note, o.alert), o.action,
                            o.result] for o in shown]))
    if counts:
        click.echo(("\n" if shown else "") + _entries(counts, "trained"))


def _entries(counts, extra):
    """Per-entry counts of segments (core.outcomes.EntryCounts); `extra`: `trained` (check) or
    `oldest` (status)."""
    header = ["ENTRY", "SEGMENTS", "UP TO DATE", "DUE", extra.upper(), "FAILED", "SKIPPED", "PAUSED", "NO DATA"]
    return _table(header, [[c.entry, c.segments, c.up_to_date, c.due,
                           c.trained if extra == "trained" else _age(c.oldest_model_age_seconds),
                           c.failed, c.skipped, c.paused, c.no_data] for c in counts])


@main.command()
@model_argument
@click.option("--reason", metavar="TEXT", help="Why; goes into the history record.")
@click.option("--force", is_flag=True, help="Promote the new model even if the promotion gate would reject it.")
@click.option("-v", "--verbose", "every", is_flag=True,
              help="With an entry or a glob: a line per segment, not only per-entry counts.")
@json_option
@pass_ctx
@exports_metrics
def train(obj, model, reason, force, every, as_json):
    """Retrain MODEL now (trigger `manual`), even when automatic retraining is paused or disabled.
    An entry with segment_by retrains all of its segments, a quoted glob ('sales:s00*') those it
    matches, fitted together as `check` fits them.

    Exits 1 when no candidate was produced (bad data, too few rows, already being trained); for
    several models, when any of them failed."""
    from .commands.train import train as run_train, train_many

    config = obj.config()
    if not _several(config, model):
        out = run_train(config, model, reason=reason, force=force)
        if as_json:
            _emit_json("train", out.to_dict())
        else:
            click.echo(f"{out.model_name}: {out.result}")
        sys.exit(1 if out.failed else 0)
    outcomes = train_many(config, [model], reason=reason, force=force)
    code = 1 if any(o.failed for o in outcomes) else 0
    if as_json:
        _emit_json("train", {"exit_code": code, "models": [o.to_dict() for o in outcomes]})
    else:
        _outcomes(outcomes, every)
    sys.exit(code)


def _several(config, name):
    """Whether `name` may stand for several models: an entry with segment_by, or a glob."""
    from .core.segment_names import is_pattern

    declared = config.models.get(name)
    return is_pattern(name) or (declared is not None and bool(declared.segment_by))


main.add_command(train, "trigger")


def _where(executing):
    """`dask:tcp://10.0.0.7:40123`, `local:hostname`, or `dask:queued` for a fit waiting its turn."""
    if not executing:
        return None
    return f"{executing['executor']}:{executing['where'] or executing['state']}"


@main.command()
@models_argument
@json_option
@pass_ctx
def status(obj, models, as_json):
    """One row per model: data rows, data changed?, version, age, due and why, last event,
    failures in a row, training now?"""
    from .commands.status import overview
    from .commands.status import status as run_status
    from .core.outcomes import EntryCounts

    if as_json:
        _emit_json("status", {"models": [r.to_dict() for r in run_status(obj.config(), models)]})
        return
    counts: list[EntryCounts] = []
    if models:  # named: a line per segment
        rows = run_status(obj.config(), models)
    else:  # a line per declared model and per entry, its segments counted
        rows, counts = overview(obj.config())
    table = []
    for r in rows:
        last = r.last_event
        last_text = f"{last.status} {last.trigger_time or ''}".strip() if last is not None else None
        table.append([
            r.model_name, r.data_rows if r.data_error is None else "error",
            {True: "yes", False: "no", None: None}[r.data_changed],
            f"v{r.model_version}" if r.model_version else None, _age(r.model_age_seconds),
            _due(r.due, r.held), _why(r.due_reasons, r.note, r.alert) or None,
            "paused" if r.paused else None, last_text, r.failures_in_row,
            "yes" if r.training_now else "no", _where(r.executing),
        ])
    if table or not counts:
        click.echo(_table(["MODEL", "ROWS", "CHANGED", "VERSION", "AGE", "DUE", "WHY", "PAUSED", "LAST EVENT",
                           "FAILS", "TRAINING", "WHERE"], table))
    if counts:
        click.echo(("\n" if table else "") + _entries(counts, "oldest"))
    for r in rows:
        if r.new_files:  # a data set's partitions the current model was not trained on
            shown = r.new_files[:5]
            click.echo(f"{r.model_name}: {len(r.new_files)} of {r.data_files} files new since "
                       f"v{r.model_version}: {', '.join(shown)}{', ...' if len(r.new_files) > 5 else ''}")
        for warning in r.column_warnings:  # what training left out without being asked (ids, free text)
            click.echo(f"{r.model_name}: v{r.model_version}: {warning}")
        for problem in (r.data_error, r.model_integrity if r.model_integrity != "ok" else None):
            if problem:
                click.echo(f"{r.model_name}: {problem}", err=True)


@main.command()
@model_option("Only this model's events.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="How many events (0: all).")
@json_option
@pass_ctx
def history(obj, model, limit, as_json):
    """Retraining and operator events, newest first."""
    from .commands.history import history as run_history

    events = run_history(obj.config(), model, limit)
    if as_json:
        _emit_json("history", {"history": [e.to_dict() for e in events]})
        return
    click.echo(_table(["TIME", "MODEL", "TRIGGER", "STATUS", "VERSION", "SCORE", "DURATION", "DESCRIPTION"], [
        [e.trigger_time, e.model_name, e.trigger_type, e.status, f"v{e.version}" if e.version else None,
         f"{e.score:.4g}" if e.score is not None else None, f"{e.duration:.1f}s", e.error or e.description]
        for e in events]))


@main.command("config")
@model_option("Only this model's effective settings.")
@pass_ctx
def config_cmd(obj, model):
    """Print the effective config (defaults merged, paths resolved) as YAML; exit 2 if it is invalid."""
    import yaml

    from .commands.config import show

    click.echo(yaml.safe_dump(show(obj.config(), model), sort_keys=False), nl=False)


def _pause_command(paused):
    word = "paused" if paused else "resumed"

    @models_argument
    @pass_ctx
    @exports_metrics
    def command(obj, models):
        from .commands.pause import set_paused

        for name, changed in set_paused(obj.config(), models, paused):
            click.echo(f"{name}: {word}" if changed else f"{name}: already {word}")

    command.__doc__ = ("Stop automatic retraining of the named models (all when none named); "
                       "`train` still works. Recorded in history." if paused else
                       "Restart automatic retraining of the named models (all when none named). Recorded in history.")
    return command


main.command("pause")(_pause_command(True))
main.command("resume")(_pause_command(False))


class VersionType(click.ParamType):
    """A store version as the tables show it (`v3`) or as a number (`3`)."""

    name = "version"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip()
        digits = text[1:] if text[:1] in ("v", "V") else text
        if not digits.isdecimal() or int(digits) < 1:
            self.fail(f"expected a version such as 3 or v3, got {value!r}", param, ctx)
        return int(digits)


@main.command()
@model_argument
@click.option("--to", "to", type=VersionType(), metavar="VERSION", help="Version to make current: 3 or v3.")
@json_option
@pass_ctx
@exports_metrics
def rollback(obj, model, to, as_json):
    """Make the previous promoted version (or --to VERSION) of MODEL current again. An entry with
    segment_by rolls back each of its segments that has an earlier promoted version, a quoted
    glob those it matches; exit 1 if any of them could not be rolled back."""
    from .commands.rollback import rollback as run_rollback, rollback_many

    config = obj.config()
    if not _several(config, model):
        event = run_rollback(config, model, to)
        if as_json:
            _emit_json("rollback", event.to_dict())
        else:
            click.echo(f"{model}: {event.description}")
        return
    if to is not None:
        raise UsageError(f"--to names a version of one model; '{model}' may stand for several (versions are per "
                         f"segment): name the segment")
    done = rollback_many(config, [model])
    code = 1 if any(r.failed for r in done) else 0
    if as_json:
        _emit_json("rollback", {"exit_code": code, "models": [r.to_dict() for r in done]})
    else:
        for r in done:
            if r.event is not None:
                click.echo(f"{r.model_name}: {r.event.description}")
            elif r.failed:
                click.echo(f"{r.model_name}: not rolled back: {r.error}")
        kept = sum(1 for r in done if r.event is None and not r.failed)
        click.echo(f"{model}: {sum(1 for r in done if r.event)} of {len(done)} rolled back"
                   + (f"; {kept} had nothing to roll back to" if kept else "")
                   + (f"; {sum(r.failed for r in done)} failed" if code else ""))
    sys.exit(code)


@main.command("metrics")
@click.option("--push", "push", is_flag=True, help="PUT the metrics to pushgateway.url (job and instance from the config).")
@click.option("--textfile", type=click.Path(dir_okay=False), metavar="PATH",
              help="Write them atomically to PATH (ending in .prom) for node_exporter's textfile collector.")
@pass_ctx
def metrics_cmd(obj, push, textfile):
    """Print the Prometheus exposition of the current state, or push it, or write it to a file.

    With --push or --textfile nothing is printed; a failed push or write exits 1."""
    from .commands.metrics import metrics_command

    text = metrics_command(obj.config(), push=push, textfile=textfile)
    if text is not None:
        click.echo(text.decode(), nl=False)


@main.command("report")
@models_argument
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="html", show_default=True,
              help="html: one self-contained page; md: Markdown for a pull request or a CI job summary.")
@click.option("--output", type=click.Path(dir_okay=False), metavar="PATH",
              help="Write the page to PATH (atomically) instead of stdout.")
@pass_ctx
def report_cmd(obj, models, fmt, output):
    """A page per model (all when none named): score per version, the last decision and its gate,
    drift, recent performance, a timeline of events. Without names it opens on an overview of
    every model and entry, worst first; an entry with segment_by gets one section of its
    segments (counts, scores, the worst, a table of all), a segment (sales:s0042) a page of its
    own. Exit 2 for an unknown model."""
    from .commands.report import write

    text = write(obj.config(), models, fmt, output)
    if text is not None:
        click.echo(text, nl=not text.endswith("\n"))


@main.command("notify-failure")
@click.argument("unit")
@pass_ctx
def notify_failure_cmd(obj, unit):
    """Report that systemd UNIT failed to the webhooks, chat URLs and notify.command (run by
    retrainctl-notify-failure@.service from OnFailure=; reads systemd's MONITOR_* variables).

    Exits 0 even when a delivery fails (it is logged); 2 for a config error."""
    from .commands.notify_failure import notify_failure

    notify_failure(obj.config(), unit)
