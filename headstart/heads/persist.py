"""Saving fitted heads with the provenance of the embeddings they were fitted on, and checking it on use.

A saved head is a model directory: ``model.json`` (the head kind, name and parameters, the classes and the
embedding table's provenance: plain JSON a person can read) and ``model.skops`` (the fitted estimator, in
:mod:`skops.io`'s format: a zip of a JSON schema and ``.npy`` arrays, loaded without pickle). Loading runs no code
from the files: every type the schema names must be one of scikit-learn's, numpy's and the builtins that skops
trusts, or one of :data:`TRUSTED_TYPES`; anything else is refused before an object is built. A faiss index travels
inside its estimator's state as faiss's bytes in a ``uint8`` array (:meth:`KNNClassifier.__getstate__
<headstart.heads.knn.KNNClassifier.__getstate__>`), so the directory has no side files.

skops names the arrays of an archive after the objects' ``id()`` and stamps each entry with the time of the write;
:func:`save_head` renames them in schema order and fixes the timestamps, so that the same head gives the same
bytes. Importing :mod:`skops.io` imports every scikit-learn module (to list the estimators it trusts) and with
them torch where it is installed, so it is imported in :func:`save_head` and :func:`load_head` only.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sklearn

from headstart._files import atomic_path, write_json
from headstart.errors import UserError

__all__ = [
    "HEAD_FORMAT",
    "TRUSTED_TYPES",
    "HeadBundle",
    "ProvenanceMismatch",
    "UnsafeModelError",
    "check_provenance",
    "load_head",
    "save_head",
    "trust_type",
]

HEAD_FORMAT = "headstart-head-v3"
MODEL_FILE = "model.json"
ESTIMATOR_FILE = "model.skops"
# The types a saved head may hold beyond those skops trusts itself (scikit-learn's estimators, numpy, builtins):
# the heads' own estimators. skops rebuilds them with ``cls.__new__`` and ``__setstate__``.
TRUSTED_TYPES: set[str] = {
    "headstart.heads.ivf.BatchedIVF",
    "headstart.heads.knn.KNNClassifier",
    "headstart.heads.ncm.NearestClassMean",
    "headstart.heads.stream.StreamingLinearProbe",
}
# The provenance keys that decide whether two embedding tables live in the same space.
_IDENTITY = ("backbone", "weights", "weights_sha256", "node", "pooling", "precision", "preprocessing", "dim")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ProvenanceMismatch(UserError, ValueError):
    """Embeddings from a different backbone/layer/preprocessing than the head was fitted on."""


class UnsafeModelError(UserError, ValueError):
    """A saved head names a type that is not trusted, or holds something that cannot be saved safely."""


def trust_type(cls: type) -> type:
    """Allow instances of ``cls`` in saved heads (for a head registered outside headstart); returns ``cls``."""
    TRUSTED_TYPES.add(f"{cls.__module__}.{cls.__qualname__}")
    return cls


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
    """Write the head into ``model_dir`` (``model.skops`` and ``model.json``) and return the JSON file's path.

    Only an estimator that :func:`load_head` will load is written (its types are trusted). The same head gives
    the same bytes. Write into a folder made by :func:`headstart._files.atomic_dir` to replace a whole model
    directory at once.
    """
    import skops
    import skops.io as sio

    model_dir = Path(model_dir)
    try:
        data = sio.dumps(estimator)
    except TypeError as err:  # skops's UnsupportedTypeException
        raise UnsafeModelError(f"cannot save the {name} head's {type(estimator).__name__} safely: {err}") from err
    refused = _untrusted(sio.get_untrusted_types(data=data))
    if refused:
        raise UnsafeModelError(
            f"cannot save the {name} head: {', '.join(refused)} not among the trusted types "
            "(see headstart.heads.persist.trust_type)"
        )
    with atomic_path(model_dir / ESTIMATOR_FILE) as tmp:
        tmp.write_bytes(_same_bytes(data))
    bundle = {
        "format": HEAD_FORMAT,
        "estimator": ESTIMATOR_FILE,
        "head": head,
        "name": name,
        "params": dict(params),
        "classes": list(classes),
        "provenance": dict(provenance),
        "sklearn": sklearn.__version__,
        "skops": skops.__version__,
    }
    write_json(model_dir / MODEL_FILE, bundle)
    return model_dir / MODEL_FILE


def load_head(model: str | Path) -> HeadBundle:
    """Load a head saved by :func:`save_head` (give the model directory or its ``model.json``); loading runs no
    code from the files."""
    import skops.io as sio

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
        data = (folder / ESTIMATOR_FILE).read_bytes()
        refused = _untrusted(sio.get_untrusted_types(data=data))
        if refused:
            raise UnsafeModelError(
                f"{folder / ESTIMATOR_FILE} names {', '.join(refused)}, not among the trusted types; "
                "if it is yours, call headstart.heads.persist.trust_type(cls) before loading"
            )
        estimator = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as err:
        if isinstance(err, UnsafeModelError):
            raise
        raise ProvenanceMismatch(
            f"{path} is not a readable headstart head ({HEAD_FORMAT}: {err}); fit it again with `headstart fit`"
        ) from err
    return HeadBundle(
        estimator=estimator,
        head=bundle["head"],
        name=bundle["name"],
        params=bundle["params"],
        classes=bundle["classes"],
        provenance=bundle["provenance"],
        path=path,
    )


def _untrusted(types: list[str]) -> list[str]:
    return sorted(set(types) - TRUSTED_TYPES)


def _same_bytes(data: bytes) -> bytes:
    """skops's archive with its entries named in schema order and fixed timestamps: the same head, the same bytes.

    The archive's own ``id()``-based names (its files and the ``__id__`` that marks one object shared by two
    attributes) are renumbered in the order the schema first names them, which keeps which entries are shared.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        files = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    renamed: dict[str, str] = {}
    ids: dict[int, int] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                value = ids.setdefault(value, len(ids))
            elif key == "file" and value in files:
                value = renamed.setdefault(value, f"{len(renamed)}{Path(value).suffix}")
            out[key] = walk(value)
        return out

    schema = walk(schema)
    if len(renamed) != len(files):
        raise RuntimeError(f"skops wrote entries its schema does not name: {sorted(set(files) - set(renamed))}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo("schema.json", date_time=_ZIP_TIME), json.dumps(schema, indent=2))
        for old, new in renamed.items():
            archive.writestr(zipfile.ZipInfo(new, date_time=_ZIP_TIME), files[old])
    return buffer.getvalue()
