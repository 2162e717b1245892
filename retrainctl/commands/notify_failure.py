"""`retrainctl notify-failure UNIT`: tell the webhooks, chat URLs and notify.command that a
systemd unit failed (run by an OnFailure= unit, which passes what happened as MONITOR_*
variables)."""
import logging
import os
import time
from collections.abc import Mapping

from ..config.records import Config
from ..publish.notify import Delivery, Notifier, notify_command, unit_failure_event
from .shell import Clock

log = logging.getLogger(__name__)

JOURNAL_TIMEOUT = 5.0


def notify_failure(config: Config, unit: str, environ: Mapping[str, str] | None = None,
                   clock: Clock = time.time) -> list[Delivery]:
    """Delivery problems are logged, never raised; returns the webhooks' Delivery list."""
    environ = os.environ if environ is None else environ
    Notifier.check_secrets(config.notify)
    event = unit_failure_event(unit, dict(environ), _journal_tail(environ.get("MONITOR_INVOCATION_ID")), clock())
    state_dir = config.state_dir if os.path.isdir(config.state_dir) else None
    results = Notifier.from_config(config.notify, state_dir=state_dir, clock=clock).send([event])
    notify_command(event, config.notify.command, config.notify.timeout_seconds)
    return results


def _journal_tail(invocation_id: str | None, lines: int = 20) -> list[str]:
    """The failed run's last log lines from the journal; none when there is no invocation id
    or journalctl cannot give them in time (the alert matters more than its detail)."""
    import subprocess

    if not invocation_id:
        return []
    try:
        done = subprocess.run(["journalctl", "-q", "-o", "cat", "-n", str(lines), f"_SYSTEMD_INVOCATION_ID={invocation_id}"],
                              capture_output=True, timeout=JOURNAL_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("journalctl: no log lines for the failed run: %s", exc)
        return []
    if done.returncode != 0:
        return []
    return done.stdout.decode(errors="replace").splitlines()[-lines:]
