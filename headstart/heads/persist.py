"""Saving fitted heads with the provenance of the embeddings they were fitted on, and checking it on use.

A saved head is ``MODEL_DIR/model.json`` (the head kind and parameters, the classes, the embedding table's
provenance and the estimator's state) with its arrays in ``MODEL_DIR/model.npz``. Loading it runs no code
from the files (:mod:`headstart.heads._state`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sklearn

from headstart._files import atomic_path, write_json
from headstart.errors import UserError
from headstart.heads._state import UnsafeModelError, decode, encode, read_arrays, trust_type, write_arrays

__all__ = [
    "HEAD_FORMAT",
    "HeadBundle",
    "ProvenanceMismatch",
    "UnsafeModelError",
    "check_provenance",
    "load_head",
    "save_head",
    "trust_type",
]

HEAD_FORMAT = "headstart-head-v2"
MODEL_FILE = "model.json"
ARRAYS_FILE = "model.npz"
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
    """Write the head into ``model_dir`` (``model.json`` and ``model.npz``) and return the JSON file's path.

    Nothing in the files is code: :func:`load_head` rebuilds the estimator from trusted types only. The same
    head gives the same bytes. Write into a folder made by :func:`headstart._files.atomic_dir` to replace a
    whole model directory at once.
    """
    model_dir = Path(model_dir)
    arrays: dict[str, Any] = {}
    bundle = {
        "format": HEAD_FORMAT,
        "estimator": encode(estimator, arrays),
        "head": head,
        "name": name,
        "params": dict(params),
        "classes": list(classes),
        "provenance": dict(provenance),
        "sklearn": sklearn.__version__,
    }
    with atomic_path(model_dir / ARRAYS_FILE) as tmp:
        write_arrays(tmp, arrays)
    write_json(model_dir / MODEL_FILE, bundle)
    return model_dir / MODEL_FILE


def load_head(model: str | Path) -> HeadBundle:
    """Load a head saved by :func:`save_head` (give the model directory or its ``model.json``); loading runs no
    code from the files."""
    path = Path(model)
    folder = path.parent if path.is_file() or path.suffix == ".json" else path
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no fitted head at {model}: expected {folder / MODEL_FILE} (written by `headstart fit` or the "
            "fit stage, under models/<dataset>/<backbone>/<head>/<layer>/)"
        )
    try:
        bundle = json.loads(path.read_text())
        if not isinstance(bundle, dict) or bundle.get("format") != HEAD_FORMAT:
            raise ValueError(f"format {bundle.get('format') if isinstance(bundle, dict) else None!r}")
        bundle["estimator"] = decode(bundle["estimator"], read_arrays(folder / ARRAYS_FILE))
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        if isinstance(err, UnsafeModelError):
            raise UnsafeModelError(f"{path}: {err}") from err
        raise ProvenanceMismatch(
            f"{path} is not a readable headstart head ({HEAD_FORMAT}: {err}); fit it again with `headstart fit`"
        ) from err
    return HeadBundle(
        estimator=bundle["estimator"],
        head=bundle["head"],
        name=bundle["name"],
        params=bundle["params"],
        classes=bundle["classes"],
        provenance=bundle["provenance"],
        path=path,
    )
