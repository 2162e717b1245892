"""The config: every key declared once (keys.py), the validated records and the training spec
(records.py), finding, parsing and validating the YAML (load.py), and the generated reference
(reference.py)."""
