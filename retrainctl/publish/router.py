"""The pyfunc of an entry's registered model (`segment_by`): it routes each input row to the
current pipeline of its own segment, by the values of the `segment_by` columns.

MLflow loads it through `loader_module` (this module, so the serving environment needs retrainctl
installed: `mlflow models serve --env-manager local` where retrainctl is). The model version holds
only a manifest (MANIFEST): each segment's key values, store version and checksum, and where its
pipeline was uploaded, in this round's run or an earlier one (publish/tracking.py). Loading fetches
each pipeline once and checks its checksum."""
import hashlib
import io
import json
import os
from typing import Any

from ..core.segment_names import SEPARATOR, parse_name

MANIFEST = "segments.json"
PER_FILE = 32  # fetch a run's pipelines one by one up to this many, else its whole folder at once


def _load_pyfunc(data_path: str) -> "SegmentRouter":
    """MLflow's entry point (`loader_module`): the router of the manifest in `data_path`."""
    path = os.path.join(data_path, MANIFEST) if os.path.isdir(data_path) else data_path
    with open(path) as fh:
        manifest = json.load(fh)
    return SegmentRouter(manifest, fetch(manifest))


def fetch(manifest: dict[str, Any]) -> dict[str, Any]:
    """{segment name: its pipeline}, each downloaded from the tracking server's artifacts (through
    MLflow's tracking URI) and checked against the manifest's checksum."""
    import tempfile

    import joblib
    from mlflow.artifacts import download_artifacts

    by_run: dict[str, list[str]] = {}
    for name, seg in manifest["segments"].items():
        by_run.setdefault(seg["run_id"], []).append(name)
    pipelines = {}
    with tempfile.TemporaryDirectory(prefix="retrainctl-router-") as tmp:
        for run_id, names in by_run.items():
            folder = os.path.join(tmp, run_id)
            local: dict[str, str] = {}
            if len(names) > PER_FILE:
                got = download_artifacts(run_id=run_id, artifact_path="pipelines", dst_path=folder)
                for name in names:
                    local[name] = os.path.join(got, manifest["segments"][name]["path"].removeprefix("pipelines/"))
            else:
                for name in names:
                    local[name] = download_artifacts(run_id=run_id, artifact_path=manifest["segments"][name]["path"],
                                                     dst_path=os.path.join(folder, name))
            for name in names:
                seg = manifest["segments"][name]
                with open(local[name], "rb") as fh:
                    data = fh.read()
                if hashlib.sha256(data).hexdigest() != seg["sha256"]:
                    raise ValueError(f"{name} v{seg['version']}: runs:/{run_id}/{seg['path']} does not match "
                                     f"its checksum in the manifest; not serving it")
                pipelines[name] = joblib.load(io.BytesIO(data))
    return pipelines


def artifact_path(name: str, version: int) -> str:
    """Where a segment's version is uploaded in a run: `pipelines/<value>[/<value>]/v<N>.joblib`
    (encoded values use only letters, digits, `.`, `_`, `-` and `~`)."""
    return "/".join(["pipelines", *name.split(SEPARATOR)[1:], f"v{version}.joblib"])


class SegmentRouter:
    """Predicts each row with its own segment's pipeline, one call per segment present, rows in
    their input order. A row of a segment the manifest does not hold goes to the `fallback`
    segment when one is set, else the whole call is refused naming its values (MLflow's
    INVALID_PARAMETER_VALUE: HTTP 400 from `mlflow models serve`)."""

    def __init__(self, manifest: dict[str, Any], pipelines: dict[str, Any]) -> None:
        self.entry = manifest["entry"]
        self.segment_by = list(manifest["segment_by"])
        self.fallback = manifest.get("fallback")
        self.pipelines = {parse_name(name)[1]: model for name, model in pipelines.items()}
        self.fallback_model = pipelines.get(self.fallback) if self.fallback else None

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [c for c in self.segment_by if c not in frame.columns]
        if missing:
            raise _refused(f"{self.entry}: input has no segment_by column {', '.join(map(repr, missing))} "
                                 f"(columns: {', '.join(map(str, frame.columns))})")
        keys = [tuple(None if _missing(v) or v == "" else str(v) for v in row)
                for row in frame[self.segment_by].itertuples(index=False, name=None)]
        groups: dict[tuple[str | None, ...], list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        unknown = [key for key in groups if key not in self.pipelines]
        if unknown and self.fallback_model is None:
            shown = "; ".join(", ".join(f"{c}={v!r}" for c, v in zip(self.segment_by, key)) for key in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            why = (f"its fallback {self.fallback} has no model" if self.fallback else "no segment_fallback is set")
            raise _refused(f"{self.entry}: no model for {shown}{more} ({len(self.pipelines)} segments known; "
                                 f"{why})")
        out: list[Any] = [None] * len(keys)
        for key, rows in groups.items():
            model = self.pipelines.get(key) or self.fallback_model
            assert model is not None  # refused above
            for i, value in zip(rows, model.predict(frame.iloc[rows])):
                out[i] = value
        return np.asarray(out) if len(out) else np.asarray([])


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):
        return False


def _refused(message: str) -> Exception:
    """MLflow's error for a bad request (imported here: the controller never imports MLflow)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)
