"""The key tables of docs/configuration.md, rendered from the declaration in config/keys.py.

`python -m retrainctl.config.reference` (or `make docs`) rewrites the generated block in place;
`--check` exits 1 when it is stale. tests/test_config.py fails on a stale block too.
"""
import sys
from pathlib import Path

from . import keys

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED: config reference (python -m retrainctl.config.reference) -->"
END = "<!-- END GENERATED -->"

_TYPE_DOCS = {"int": "integer", "float": "number", "bool": "boolean", "str": "string",
              "strlist": "list of strings", "dict": "mapping", "section": "mapping",
              "list": "list of mappings", "named": "mapping of names"}


def _default(key):
    if key.doc_default is not None:
        return key.doc_default
    if key.required:
        return "required"
    if key.type in ("section", "named"):
        return ""
    if key.default is None:
        return "none"
    if isinstance(key.default, bool):
        return str(key.default).lower()
    if isinstance(key.default, float):
        return f"{key.default:g}"
    return f"`{key.default}`" if isinstance(key.default, (str, dict)) else str(key.default)


def _allowed(key):
    parts = [key.rule.doc] if key.rule else []
    if key.only_with:
        parts.append("only with `{}: {}`".format(*key.only_with))
    return "; ".join(parts)


def _table(title, intro, declaration, shown):
    rows = [f"### {title}", "", intro, "", "| key | type | default | allowed | meaning |",
            "| --- | --- | --- | --- | --- |"]
    for key in declaration:
        if id(key) in shown:
            continue
        shown.add(id(key))
        kind = ("path" if key.path else _TYPE_DOCS[key.type]) + (" or null" if key.nullable else "")
        cells = (f"`{key.name}`", kind, _default(key), _allowed(key), key.help)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return rows + [""]


def render():
    """The generated block, markers included: one table per mapping, nested ones after their parent."""
    out: list[str] = [BEGIN, ""]
    shown: set[int] = set()
    queue: list[tuple[str, str, tuple[keys.Key, ...]]] = [("Top level", "Keys of the config file itself.", keys.TOP)]
    while queue:
        title, intro, declaration = queue.pop(0)
        repeated = [k.name for k in declaration if id(k) in shown]
        if repeated:
            intro += f" Also every key of `{_owner(repeated[0])}` above, which it overrides."
        fresh = [k for k in declaration if id(k) not in shown]  # a section shown above is not repeated
        out += _table(title, intro, declaration, shown)
        for key in fresh:
            if key.keys:
                path = title.strip("`") + "." if declaration is not keys.TOP else ""
                item = {"list": " (each item)", "named": " (each entry)"}.get(key.type, "")
                queue.append((f"`{path}{key.name}`{item}", key.help[:1].upper() + key.help[1:] + ".", key.keys))
    return "\n".join(out + [END])


def _owner(name):
    """The section a key was first shown in (for 'also every key of X')."""
    return next(k.name for k in keys.TOP if k.keys and any(s.name == name for s in k.keys))


def current(text):
    """The generated block as it stands in the document."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def main(argv):
    text = DOC.read_text()
    block = render()
    if current(text) == block:
        return 0
    if "--check" in argv:
        print(f"{DOC}: the config reference is stale; run: python -m retrainctl.config.reference", file=sys.stderr)
        return 1
    DOC.write_text(text.replace(current(text), block))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
