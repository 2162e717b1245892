"""`retrainctl report [MODEL...]`: the report page, as HTML or Markdown."""
import time

from ..base.fsutil import atomic_write
from ..config.records import Config, ModelConfig
from ..core.segment_names import entry_of, is_segment_name
from ..publish import report
from .shell import Clock, select


def write(config: Config, names: tuple[str, ...] | list[str] | None = None, fmt: str = "html",
          output: str | None = None, clock: Clock = time.time) -> str | None:
    """The page as text, or written to `output` (atomically, so a CI job or a web server never
    serves half a page) and None. Without names it opens on the overview of every model and entry;
    an entry with segment_by named (or, without names, configured) is one section of its own, a
    segment or a glob is a model's section. An unknown model is a UsageError before anything is read."""
    models, entries = split(config, names)
    text = report.page(config, models, fmt, clock, entries, overview=not names)
    if output is None:
        return text
    atomic_write(output, text, mode=0o644)
    return None


def split(config: Config, names: tuple[str, ...] | list[str] | None) -> tuple[list[ModelConfig],
                                                                               dict[str, list[ModelConfig]]]:
    """(the models shown one by one, {entry with segment_by: its segments}) that `names` stand for."""
    named = list(dict.fromkeys(names or ()))
    whole = [n for n in named if (m := config.models.get(n)) is not None and m.segment_by]
    if not named:
        whole = [m.name for m in config.models.values() if m.segment_by]
        named = [m.name for m in config.models.values() if not m.segment_by]
    else:
        named = [n for n in named if n not in whole]
    models = select(config, named) if named else []
    entries: dict[str, list[ModelConfig]] = {n: [] for n in whole}
    for m in select(config, whole) if whole else []:
        entries[entry_of(m.name) if is_segment_name(m.name) else m.name].append(m)
    return models, entries
