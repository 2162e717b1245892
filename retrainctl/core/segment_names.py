"""The names of segment models: `<entry>:<value>[:<value>...]`, one value per `segment_by` column,
stable across runs and reversible to the key values (docs/many-models.md, "Names").

A value is kept as written where it uses only letters, digits, `.`, `_` and `-`; any other
character (each byte of its UTF-8) is written `~XX` (two upper-case hex digits), so a name is
safe as a folder name and in a shell glob, and two values never share a name. A missing value
(an empty CSV cell, a null) is `~NA`, which no encoded text can spell (`~` is always followed by
two hex digits there); the empty text is the missing value too. Pure: no files, no imports."""
import re
from collections.abc import Iterable

SEPARATOR = ":"
MISSING = "~NA"
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]")
_PLAIN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_ENCODED = re.compile(r"^(?:[A-Za-z0-9_.\-]|~[0-9A-F]{2})+$")
MAX_NAME = 200  # a model's store folder and lock file are named after it


def encode_value(value: str | None) -> str:
    """A key value as it appears in a segment name (None and "" are the missing value)."""
    if value is None or value == "":
        return MISSING
    if all(_PLAIN.match(c) for c in value):
        return value
    return "".join(chr(b) if b in _PLAIN_BYTES else f"~{b:02X}" for b in value.encode("utf-8"))


def decode_value(text: str) -> str | None:
    """The key value a name part stands for (None: missing); ValueError for a part no value encodes to."""
    if text == MISSING:
        return None
    if not _ENCODED.match(text):
        raise ValueError(f"not an encoded segment value: {text!r}")
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "~":
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(text[i]))
            i += 1
    return out.decode("utf-8")


def segment_name(entry: str, values: Iterable[str | None]) -> str:
    """`entry:v1[:v2...]` for the key values of one segment, in `segment_by` order."""
    return SEPARATOR.join([entry, *map(encode_value, values)])


def parse_name(name: str) -> tuple[str, tuple[str | None, ...]]:
    """(entry, key values) of a segment name; ValueError where it is not one."""
    entry, sep, rest = name.partition(SEPARATOR)
    if not sep:
        raise ValueError(f"not a segment name (no '{SEPARATOR}'): {name!r}")
    return entry, tuple(decode_value(part) for part in rest.split(SEPARATOR))


def is_segment_name(name: str) -> bool:
    return SEPARATOR in name


def entry_of(name: str) -> str:
    """The entry a (segment) model name belongs to: the name itself for a declared model."""
    return name.partition(SEPARATOR)[0]


def entry_key(name: str) -> str:
    """The part of a segment name after `<entry>:` (its key, as segment_index spells it)."""
    return name.partition(SEPARATOR)[2]


def is_pattern(name: str) -> bool:
    """A shell glob selecting segments (`sales:s00*`); encoded names never hold these characters."""
    return any(c in name for c in "*?[")
