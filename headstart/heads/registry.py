"""The head registry: every head is a scikit-learn estimator built from named parameters.

A parameter given as a list, or as ``{logspace: [a, b, n]}`` (``10**linspace(a, b, n)``) or
``{linspace: [a, b, n]}``, is a grid: the head is fitted on train for each value and the one with the best
val accuracy wins (:mod:`headstart.heads.selection`).

>>> sorted(list_heads())
['knn', 'logreg', 'ncm', 'svm']
>>> resolve_params("knn", {"k": [5, 20]})[1]
{'k': [5, 20]}
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from headstart.heads.knn import KNNClassifier
from headstart.heads.ncm import NearestClassMean

__all__ = [
    "HeadError",
    "HeadType",
    "build_head",
    "expand_grid",
    "get_head",
    "list_heads",
    "register_head",
    "resolve_params",
]


class HeadError(ValueError):
    """An unknown head or parameter; the message lists the valid ones."""


@dataclass(frozen=True)
class HeadType:
    """A kind of head: its defaults, how to build it, and whether its fit depends on a seed."""

    name: str
    description: str
    defaults: Mapping[str, Any]
    build: Callable[[Mapping[str, Any], int], Any]
    randomized: bool = False
    sweep: Callable[..., list[float]] | None = field(default=None, repr=False)


_HEADS: dict[str, HeadType] = {}


def register_head(head: HeadType) -> HeadType:
    if head.name in _HEADS:
        raise HeadError(f"head '{head.name}' is registered twice")
    _HEADS[head.name] = head
    return head


def list_heads() -> dict[str, HeadType]:
    return dict(_HEADS)


def get_head(name: str) -> HeadType:
    try:
        return _HEADS[name]
    except KeyError:
        raise HeadError(f"unknown head '{name}'; known heads: {', '.join(sorted(_HEADS))}") from None


def expand_grid(value: Any, where: str = "") -> list[Any] | None:
    """The values of a grid parameter, or ``None`` for a plain value."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise HeadError(f"{where} is an empty list; give a value or a non-empty grid")
        return list(value)
    if isinstance(value, Mapping):
        if len(value) == 1 and next(iter(value)) in ("logspace", "linspace"):
            kind, args = next(iter(value.items()))
            if not (isinstance(args, (list, tuple)) and len(args) == 3):
                raise HeadError(f"{where}: {kind} takes [start, stop, num], got {args!r}")
            points = np.linspace(float(args[0]), float(args[1]), int(args[2]))
            return [float(v) for v in (10.0**points if kind == "logspace" else points)]
        raise HeadError(f"{where} must be a value, a list or {{logspace: [a, b, n]}}, got {dict(value)!r}")
    return None


def resolve_params(name: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Split ``params`` (over the head's defaults) into fixed values and grids; unknown keys are errors."""
    head = get_head(name)
    unknown = sorted(set(params) - set(head.defaults))
    if unknown:
        raise HeadError(
            f"head '{name}' has no parameter(s) {', '.join(unknown)}; its parameters: "
            f"{', '.join(f'{k} (default {v!r})' for k, v in head.defaults.items())}"
        )
    fixed, grid = {}, {}
    for key, value in {**head.defaults, **params}.items():
        values = expand_grid(value, f"heads.{name}.{key}")
        if values is None:
            fixed[key] = value
        elif len(values) == 1:
            fixed[key] = values[0]
        else:
            grid[key] = values
    return fixed, grid


def grid_points(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def build_head(name: str, params: Mapping[str, Any], seed: int = 0) -> Any:
    """An unfitted estimator of head ``name`` with fixed ``params``."""
    head = get_head(name)
    try:
        return head.build({**head.defaults, **params}, seed)
    except (TypeError, ValueError) as err:
        raise HeadError(f"head '{name}' cannot be built with {dict(params)}: {err}") from err


# ---- the built-in heads ------------------------------------------------------------------------------


def _knn(p: Mapping[str, Any], seed: int) -> KNNClassifier:
    return KNNClassifier(
        k=int(p["k"]),
        metric=p["metric"],
        weighting=p["weighting"],
        temperature=float(p["temperature"]),
        index=p["index"],
        nlist=None if p["nlist"] in (None, "auto") else int(p["nlist"]),
        nprobe=None if p["nprobe"] in (None, "auto") else int(p["nprobe"]),
        pq_m=None if p.get("pq_m") in (None, "auto") else int(p["pq_m"]),
    )


def _logreg(p: Mapping[str, Any], seed: int) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=float(p["C"]), max_iter=int(p["max_iter"]), tol=float(p["tol"]))),
        ]
    )


def _svm(p: Mapping[str, Any], seed: int) -> Pipeline:
    if p["kernel"] == "linear":
        clf: Any = LinearSVC(C=float(p["C"]), max_iter=int(p["max_iter"]), random_state=seed)
    elif p["kernel"] == "rbf":
        gamma = p["gamma"] if isinstance(p["gamma"], str) else float(p["gamma"])
        clf = SVC(kernel="rbf", C=float(p["C"]), gamma=gamma, max_iter=-1, random_state=seed)
    else:
        raise ValueError(f"svm kernel must be 'linear' or 'rbf', got {p['kernel']!r}")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def _ncm(p: Mapping[str, Any], seed: int) -> NearestClassMean:
    return NearestClassMean(temperature=float(p["temperature"]))


register_head(
    HeadType(
        "knn",
        "faiss k-NN, cosine by default, DINO temperature-weighted votes (k=20, T=0.07)",
        {
            "k": 20,
            "metric": "cosine",
            "weighting": "temperature",
            "temperature": 0.07,
            "index": "flat",
            "nlist": None,
            "nprobe": None,
            "pq_m": None,
        },
        _knn,
    )
)
register_head(
    HeadType(
        "logreg",
        "L-BFGS multinomial logistic regression on standardised features, C swept on val",
        {"C": {"logspace": [-6, 5, 45]}, "max_iter": 1000, "tol": 1e-4},
        _logreg,
    )
)
register_head(
    HeadType(
        "svm",
        "SVM on standardised features (linear by default, or rbf), C (and gamma) chosen on val",
        {"kernel": "linear", "C": {"logspace": [-4, 2, 7]}, "gamma": "scale", "max_iter": 5000},
        _svm,
        randomized=True,
    )
)
register_head(
    HeadType("ncm", "nearest class mean on L2-normalised features (the few-shot baseline)", {"temperature": 0.1}, _ncm)
)
