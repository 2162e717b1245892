"""The JSON Schema (draft 2020-12) of every `--json` output, shipped beside this file as
<output>.json, and the version of each output's shape that the output carries as `"schema": N`.

A version changes only with an incompatible change to its output (a key removed or renamed, a
type or a meaning changed); keys may be added without one. The files are generated from
build.py (`make docs`), which also writes the key reference in docs/json.md."""

VERSIONS = {"check": 1, "train": 1, "status": 1, "history": 1, "rollback": 1, "error": 1}
