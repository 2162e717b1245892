"""The models a command works on: every declared model, and for an entry with `segment_by` each of
its segments (those in its data now, and those the state log knows whose rows are gone); and the
names an operator gives, resolved to them: a model, a segment, an entry standing for all of its
segments, or a shell glob (`'sales:s00*'`)."""
from collections.abc import Collection, Iterable
from fnmatch import fnmatchcase

from ..base.errors import DataError, UsageError
from ..config.records import Config, ModelConfig, close_match
from ..core.segment_names import entry_key, entry_of, is_pattern, is_segment_name
from .observer import Observer


class Fleet:
    """`known`: the model names the state log has records of (its fold's keys)."""

    def __init__(self, config: Config, observer: Observer, known: Iterable[str] = ()) -> None:
        self.config = config
        self.observer = observer
        self.known: dict[str, set[str]] = {}
        for name in known:
            if is_segment_name(name):
                self.known.setdefault(entry_of(name), set()).add(entry_key(name))
        self._of: dict[str, list[ModelConfig]] = {}

    def of(self, model: ModelConfig) -> list[ModelConfig]:
        """A declared model as itself; an entry as its segments, sorted by name; an entry whose
        segments cannot be discovered as itself alone (its observation carries the data error,
        recorded once rather than once per segment)."""
        if not model.segment_by:
            return [model]
        found = self._of.get(model.name)
        if found is None:
            try:
                keys = set(self.observer.segments(model).segments) | self.known.get(model.name, set())
            except DataError:
                found = [model]
            else:
                found = [model.for_segment(key) for key in sorted(keys)]
            self._of[model.name] = found
        return found

    def all(self, skip: Collection[str] = ()) -> list[ModelConfig]:
        return [m for entry in self.config.models.values() if entry.name not in skip for m in self.of(entry)]

    def select(self, names: Iterable[str] | None, skip: Collection[str] = ()) -> list[ModelConfig]:
        """The models `names` stand for, each once, in the order named (every model but those of
        the entries in `skip` when none is named). UsageError (exit 2) for a name that stands for
        nothing, with the closest one."""
        names = list(names or ())
        if not names:
            return self.all(skip)
        out: dict[str, ModelConfig] = {}
        for name in dict.fromkeys(names):
            for model in self._resolve(name):
                out.setdefault(model.name, model)
        return list(out.values())

    def _resolve(self, name: str) -> list[ModelConfig]:
        if is_pattern(name):
            matched = [m for m in self.all() if fnmatchcase(m.name, name)]
            if not matched:
                raise UsageError(f"no configured model or segment matches '{name}'")
            return matched
        entry = self.config.model(entry_of(name))
        if name == entry.name:
            return self.of(entry)
        if not entry.segment_by:
            raise UsageError(f"model '{entry.name}' has no segment_by, so '{name}' names no segment of it")
        segments = self.of(entry)
        found = [m for m in segments if m.name == name]
        if found:
            return found
        if segments == [entry]:  # its data cannot be read now: a segment the log knows is still one
            if entry_key(name) in self.known.get(entry.name, ()):
                return [entry.for_segment(entry_key(name))]
            raise UsageError(f"segment '{name}': the segments of '{entry.name}' cannot be listed: "
                             f"{self._error(entry)}")
        hint = close_match(name, [m.name for m in segments])
        raise UsageError(f"segment '{name}' is not in the data of '{entry.name}' nor in its history"
                         + (f"; did you mean '{hint[0]}'?" if hint else ""))

    def _error(self, entry: ModelConfig) -> str:
        try:
            self.observer.segments(entry)
        except DataError as exc:
            return str(exc)
        return "unknown error"


def segmented(config: Config) -> bool:
    """Whether any entry has segment_by (else every name is a declared model's)."""
    return any(m.segment_by for m in config.models.values())
