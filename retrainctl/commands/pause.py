"""`retrainctl pause` / `resume`: stop or restart automatic retraining, recorded in the history."""
import time

from ..config.records import Config
from ..core.records import OPERATOR, Status
from ..retrain.recorder import Recorder
from .shell import Clock, operator, select


def set_paused(config: Config, names: tuple[str, ...] | list[str] | None, paused: bool,
               clock: Clock = time.time) -> list[tuple[str, bool]]:
    """Pause or resume automatic retraining; returns (model, changed) pairs."""
    recorder = Recorder(config)
    recorder.log.ensure_dir()
    results = []
    status_word = Status.PAUSED if paused else Status.RESUMED
    models = select(config, names)
    recorder.gather(models)  # one notification per entry for its segments
    try:
        for model in models:
            # Decided under the log's lock: concurrent pauses write one `paused` record between them.
            event = recorder.write(model, OPERATOR, status_word, clock(),
                                   f"automatic retraining {status_word} by {operator()}",
                                   unless=lambda st: st.paused == paused)
            results.append((model.name, event is not None))
    finally:
        recorder.flush()
    return results
