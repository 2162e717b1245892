"""`retrainctl config [--model M]`: the effective config, after the checks only imports can make,
with nothing in it that may be a secret."""
import re
from typing import Any

from ..base.secrets import redact, redact_text
from ..config.load import effective
from ..config.records import Config
from ..fit.task import validate_models

# Estimator or trainer parameters whose name says they hold a credential: their value is hidden.
SECRET_PARAM = re.compile(r"pass(word|wd|phrase)?|secret|token|credential|api[-_]?key|private[-_]?key|auth",
                          re.IGNORECASE)
HIDDEN = "***"


def show(config: Config, model: str | None = None) -> dict[str, Any]:
    """The effective config as plain data (defaults merged, paths absolute, secrets redacted);
    ConfigError where an estimator, its params or a trainer cannot work."""
    validate_models(config)
    return redacted(effective(config, model))


def redacted(value: Any, key: str = "", in_params: bool = False) -> Any:
    """`value` as `config` prints it: every URL, wherever it is (a webhook, the Pushgateway, the
    tracking URI, an argv item, a parameter), as logs show it (base.secrets.redact: no userinfo,
    path or query); apprise URLs as their scheme alone (their host may be the token); and under
    `params`, the value of a key named like a credential (`password`, `api_key`, `token`...)."""
    if isinstance(value, dict):
        return {k: HIDDEN if in_params and SECRET_PARAM.search(str(k)) and v is not None
                else redacted(v, str(k), in_params or k == "params") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v, key, in_params) for v in value]
    if isinstance(value, str):
        return redact(value, host=False) if key == "apprise" else redact_text(value)
    return value
