"""A fitted estimator as JSON plus numpy arrays, and back, without pickle: loading never runs code.

An estimator is written as a tree: plain values stay JSON; numpy arrays go into an ``.npz`` archive (read
back with ``allow_pickle=False``) and are named in the tree; objects are written as their class name and
their ``__getstate__`` dict. On loading, a class must be on an explicit list of trusted types (the heads'
estimators), or loading stops with an error; objects are rebuilt with ``cls.__new__`` and ``__setstate__``,
never by calling anything the file names. The archive has fixed timestamps, so the same model gives the same
bytes.

Why not ``skops.io``, the library made for this: importing it walks every scikit-learn module to build its
trusted-type list, and through scikit-learn's array-API shim imports torch. That is 3.3-3.8 s more in every
process that saves or loads a head (``python -X importtime -c "import skops.io"``; ``benchmarks/persist_import.py``
compares it side by side), paid by each of the pipeline's fit stages and by every ``headstart predict``, and it
would put torch into the heads layer, which never imports it. Its archives also name entries after Python
object ids and stamp them with the time, so the same head would need rewriting to give the same bytes.
"""

from __future__ import annotations

import importlib
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from headstart.errors import UserError

__all__ = ["TRUSTED_TYPES", "UnsafeModelError", "decode", "encode", "read_arrays", "trust_type", "write_arrays"]

TRUSTED_TYPES: set[str] = {
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.svm._classes.SVC",
    "headstart.heads.knn.KNNClassifier",
    "headstart.heads.ncm.NearestClassMean",
    "headstart.heads.ivf.BatchedIVF",
    "headstart.heads.stream.StreamingLinearProbe",
}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class UnsafeModelError(UserError, ValueError):
    """A saved model names a type that is not trusted, or holds something that cannot be saved safely."""


def trust_type(cls: type) -> type:
    """Allow instances of ``cls`` in saved heads (for a head registered outside headstart); returns ``cls``."""
    TRUSTED_TYPES.add(f"{cls.__module__}.{cls.__qualname__}")
    return cls


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as a JSON-ready tree; its arrays are added to ``arrays`` under the names the tree uses."""
    if value is None or isinstance(value, (bool, int, float, str)) and type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.generic):
        return {"scalar": _array(np.asarray(value), arrays)}
    if isinstance(value, np.ndarray):
        return {"array": _array(value, arrays)}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [encode(v, arrays) for v in value]}
    if isinstance(value, Mapping):
        return {"dict": [[encode(k, arrays), encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, type):
        if _name(value) not in TRUSTED_TYPES:
            raise UnsafeModelError(f"cannot save the type {_name(value)}: not among the trusted types")
        return {"type": _name(value)}
    if isinstance(value, slice):
        return {"slice": [encode(v, arrays) for v in (value.start, value.stop, value.step)]}
    name = _name(type(value))
    if name not in TRUSTED_TYPES:
        raise UnsafeModelError(f"cannot save a {name}: not among the trusted types (see trust_type)")
    state = value.__getstate__() if hasattr(value, "__getstate__") else vars(value)
    if not isinstance(state, dict):
        raise UnsafeModelError(f"cannot save a {name} safely (its state is not a dict)")
    return {"object": name, "state": encode(state, arrays)}


def decode(tree: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Rebuild what :func:`encode` wrote, creating only objects of :data:`TRUSTED_TYPES`."""
    if not isinstance(tree, dict):
        return tree
    if set(tree) == {"object", "state"}:
        cls = _trusted(tree["object"])
        obj = cls.__new__(cls)
        state = decode(tree["state"], arrays)
        if hasattr(obj, "__setstate__"):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj
    if len(tree) != 1:
        raise UnsafeModelError(f"unknown entry {sorted(tree)} in a saved head")
    kind, body = next(iter(tree.items()))
    if kind == "scalar":
        return arrays[body][()]
    if kind == "array":
        return arrays[body]
    if kind in ("list", "tuple"):
        items = [decode(v, arrays) for v in body]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {decode(k, arrays): decode(v, arrays) for k, v in body}
    if kind == "type":
        return _trusted(body)
    if kind == "slice":
        return slice(*(decode(v, arrays) for v in body))
    raise UnsafeModelError(f"unknown entry {sorted(tree)} in a saved head")


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _trusted(name: str) -> type:
    if name not in TRUSTED_TYPES:
        raise UnsafeModelError(
            f"the saved head names type {name}, which is not among the trusted types; "
            "if it is yours, call headstart.heads.persist.trust_type(cls) before loading"
        )
    module, _, qualname = name.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _array(value: np.ndarray, arrays: dict[str, np.ndarray]) -> str:
    if value.dtype.hasobject:
        if not all(isinstance(v, str) for v in value.ravel()):
            raise UnsafeModelError("cannot save an array of Python objects safely (only of strings)")
        value = value.astype(str)
    key = f"a{len(arrays)}"
    arrays[key] = value
    return key


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """An ``.npz`` that ``np.load`` reads, with fixed timestamps (same arrays, same bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[key]), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME), buffer.getvalue())


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
