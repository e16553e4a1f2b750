"""Saving fitted heads with the provenance of the embeddings they were fitted on, and checking it on use.

A saved head is ``MODEL_DIR/model.joblib``: a dict with the estimator, the head kind and parameters, the
classes and the embedding table's provenance. Loading it runs pickled code, so load only heads you trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import sklearn

from headstart._files import atomic_path
from headstart.errors import UserError

__all__ = ["HEAD_FORMAT", "HeadBundle", "ProvenanceMismatch", "check_provenance", "load_head", "save_head"]

HEAD_FORMAT = "headstart-head-v1"
MODEL_FILE = "model.joblib"
# The provenance keys that decide whether two embedding tables live in the same space.
_IDENTITY = ("backbone", "weights", "weights_sha256", "node", "pooling", "precision", "preprocessing", "dim")


class ProvenanceMismatch(UserError, ValueError):
    """Embeddings from a different backbone/layer/preprocessing than the head was fitted on."""


@dataclass(frozen=True)
class HeadBundle:
    estimator: Any
    head: str
    name: str
    params: dict[str, Any]
    classes: list[str]
    provenance: dict[str, Any]
    path: Path

    def check(self, provenance: Mapping[str, Any], source: str) -> None:
        check_provenance(self.provenance, provenance, fitted_where=str(self.path), given_where=source)


def _describe(p: Mapping[str, Any]) -> str:
    return (
        f"{p.get('backbone')} {p.get('weights')} node {p.get('node')} pooling {p.get('pooling')}, dim {p.get('dim')}"
        f", {p.get('precision')}, {p.get('image_size') or (p.get('preprocessing') or {}).get('crop_size')} px"
    )


def check_provenance(
    fitted: Mapping[str, Any], given: Mapping[str, Any], *, fitted_where: str = "", given_where: str = "the embeddings"
) -> None:
    """Raise :class:`ProvenanceMismatch` naming both sides if ``given`` is not the space ``fitted`` knows."""
    differ = [k for k in _IDENTITY if fitted.get(k) != given.get(k)]
    if differ:
        raise ProvenanceMismatch(
            f"{given_where} has embeddings of {_describe(given)}, but the head {fitted_where} was fitted on "
            f"{_describe(fitted)} (they differ in: {', '.join(differ)}). Embed with the head's backbone settings "
            "(`headstart predict` does this itself) or fit a head on these embeddings (`headstart fit`)"
        )


def save_head(
    model_dir: str | Path,
    estimator: Any,
    *,
    head: str,
    name: str,
    params: Mapping[str, Any],
    classes: list[str],
    provenance: Mapping[str, Any],
) -> Path:
    """Write ``model_dir/model.joblib`` atomically and return its path."""
    path = Path(model_dir) / MODEL_FILE
    bundle = {
        "format": HEAD_FORMAT,
        "estimator": estimator,
        "head": head,
        "name": name,
        "params": dict(params),
        "classes": list(classes),
        "provenance": dict(provenance),
        "sklearn": sklearn.__version__,
    }
    with atomic_path(path) as tmp:
        joblib.dump(bundle, tmp)
    return path


def load_head(model: str | Path) -> HeadBundle:
    """Load a head saved by :func:`save_head` (give the model directory or the .joblib file)."""
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no fitted head at {model}: expected {path} (written by `headstart fit` or the "
            "fit stage, under models/<dataset>/<backbone>/<head>/<layer>/)"
        )
    bundle = joblib.load(path)
    if not isinstance(bundle, dict) or bundle.get("format") != HEAD_FORMAT:
        raise ValueError(f"{path} is not a headstart head (format {HEAD_FORMAT})")
    return HeadBundle(
        estimator=bundle["estimator"],
        head=bundle["head"],
        name=bundle["name"],
        params=bundle["params"],
        classes=bundle["classes"],
        provenance=bundle["provenance"],
        path=path,
    )
