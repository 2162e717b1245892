"""Where models pickled by retrainctl 0.1 look for their column transformers (`ToNumeric`,
`DateParts`): they live in retrainctl.data.features now; unpickling such a model imports them
from here."""
from .data.features import DateParts, ToNumeric

__all__ = ["DateParts", "ToNumeric"]
