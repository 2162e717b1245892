"""Tell someone about a retraining event: the Python callback and/or an external command that
receives the event as JSON on stdin. A failing or hanging notifier never fails the retrain."""
import json
import logging

log = logging.getLogger(__name__)


def notify(record, callback=None, command=None, timeout=10.0):
    if callback is not None:
        try:
            callback(record["model_name"], record["status"], record.get("duration"),
                     **{k: v for k, v in record.items() if k not in ("model_name", "status", "duration")})
        except Exception as exc:
            log.warning("notification_callback failed for %s: %s: %s", record["model_name"], type(exc).__name__, exc)
    if command:
        from . import child

        try:
            code, err = child.run_command(command, json.dumps(record, default=str).encode(), timeout)
        except child.Timeout:
            log.warning("notify command %s timed out after %gs", command[0], timeout)
        except OSError as exc:
            log.warning("notify command %s could not run: %s", command[0], exc.strerror or exc)
        else:
            if code != 0:
                err = err.decode(errors="replace").strip().splitlines()
                log.warning("notify command %s exited %d%s", command[0], code, f": {err[-1]}" if err else "")
