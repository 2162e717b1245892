"""`retrainctl history`: retraining and operator records, newest first."""
from ..config.records import Config
from ..core.records import Record
from ..core.segment_names import entry_of, is_segment_name
from ..state.log import StateLog
from .shell import select


def history(config: Config, model: str | None = None, limit: int | None = 20) -> list[Record]:
    """Retraining and operator records (optionally one model's; an entry with segment_by: its
    segments'), newest first; `limit` 0 or None: all. A segment name is checked against the data
    and the log (observe.fleet), an entry's against the config alone."""
    entry = False
    if model is not None:
        entry = bool(config.model(entry_of(model)).segment_by) and not is_segment_name(model)
        if not entry:
            select(config, [model])
    return StateLog(config.state_dir).history(model, limit, segments=entry)
