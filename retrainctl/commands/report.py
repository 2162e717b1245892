"""`retrainctl report [MODEL...]`: the report page, as HTML or Markdown."""
import time

from ..base.fsutil import atomic_write
from ..config.records import Config
from ..publish import report
from .shell import Clock, select


def write(config: Config, names: tuple[str, ...] | list[str] | None = None, fmt: str = "html",
          output: str | None = None, clock: Clock = time.time) -> str | None:
    """The page as text, or written to `output` (atomically, so a CI job or a web server never
    serves half a page) and None. An unknown model is a UsageError before anything is read."""
    text = report.page(config, select(config, names), fmt, clock)
    if output is None:
        return text
    atomic_write(output, text, mode=0o644)
    return None
