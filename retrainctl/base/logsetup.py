"""Logging to stderr (text or one JSON object per line) and optionally to a file."""
import errno
import json
import logging
import os
import sys
import time
from typing import Any

from .secrets import redact_text

_LEVELS = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and logging.getLogger().isEnabledFor(logging.DEBUG):
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class OneLineFormatter(logging.Formatter):
    """One line per event, as journald and cron mail expect; newlines in messages are folded."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


class LibraryUrls(logging.Filter):
    """Log lines of apprise, which writes a notification URL with its path (and a chat service's
    token may be its host): every URL in them shown as its scheme alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] == "apprise":
            record.msg, record.args = redact_text(record.getMessage(), host=False), ()
        return True


class JournalFormatter(logging.Formatter):
    """Prefixes each line with its syslog priority (`<3>`), which journald strips and records,
    so `journalctl -p warning` filters retrainctl's lines by level."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{self.inner.format(record)}"


def connected_to_journal(stream: Any) -> bool:
    """True when systemd connected `stream` to the journal: $JOURNAL_STREAM names its device:inode."""
    try:
        dev, ino = (int(part) for part in os.environ["JOURNAL_STREAM"].split(":"))
        st = os.fstat(stream.fileno())
    except (KeyError, ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup(verbosity: int = 0, fmt: str = "text", log_file: str | None = None) -> None:
    level = _LEVELS[max(-2, min(1, verbosity))]
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if fmt == "json" else OneLineFormatter("retrainctl: %(levelname)s: %(message)s")
    handler.setFormatter(JournalFormatter(formatter) if connected_to_journal(sys.stderr) else formatter)
    handler.addFilter(LibraryUrls())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("filelock", "urllib3", "alembic", "mlflow", "git", "apprise"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if log_file:
        add_file(log_file, fmt)


def add_file(path: str, fmt: str = "text") -> None:
    """Also append log lines to `path`, creating its folder as the state dir is created."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(folder) and not os.path.isdir(folder):  # makedirs would say "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), folder)
    os.makedirs(folder, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(LibraryUrls())
    logging.getLogger().addHandler(handler)
