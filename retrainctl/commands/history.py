"""`retrainctl history`: retraining and operator records, newest first."""
from ..config.records import Config
from ..core.records import Record
from ..state.log import StateLog


def history(config: Config, model: str | None = None, limit: int | None = 20) -> list[Record]:
    """Retraining and operator records (optionally one model's), newest first; `limit` 0 or None: all."""
    if model is not None:
        config.model(model)
    return StateLog(config.state_dir).history(model, limit)
