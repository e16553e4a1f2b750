"""The head registry: every head is a scikit-learn estimator built from declared, checked parameters.

A parameter given as a list, or as ``{logspace: [a, b, n]}`` (``10**linspace(a, b, n)``) or
``{linspace: [a, b, n]}``, is a grid: the head is fitted on train for each value and the one with the best
val accuracy wins (:mod:`headstart.heads.selection`). Each :class:`HeadType` declares its parameters
(:class:`Param`: default and allowed values) and the hooks the rest of headstart asks it for, so no caller
checks a head's name: ``sweep`` (a fast way through its grid), ``adapt`` (how it moves to a new domain) and
``probe`` (the linear probe fine-tuning starts from, for heads that are one). The built-in heads are in
:mod:`headstart.heads.builtin`.

>>> sorted(list_heads())
['knn', 'logreg', 'logreg_stream', 'ncm', 'svm']
>>> resolve_params("knn", {"k": [5, 20]})[1]
{'k': [5, 20]}
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, localcontext
from typing import Any

import numpy as np

from headstart.errors import UserError
from headstart.heads.builtin import BUILTIN_HEADS
from headstart.heads.params import SELECT_BY_PARAM, HeadType, Param

__all__ = [
    "HeadError",
    "HeadType",
    "Param",
    "SELECT_BY_PARAM",
    "build_head",
    "check_params",
    "expand_grid",
    "get_head",
    "grid_points",
    "list_heads",
    "register_head",
    "resolve_params",
]


class HeadError(UserError, ValueError):
    """An unknown head or parameter; the message lists the valid ones."""


_HEADS: dict[str, HeadType] = {}


def register_head(head: HeadType) -> HeadType:
    """Register ``head``; every head gets ``select_by`` (the val metric of its grid choices) unless it declares it."""
    if head.name in _HEADS:
        raise HeadError(f"head '{head.name}' is registered twice")
    if "select_by" not in head.params:
        head = replace(head, params={**head.params, "select_by": SELECT_BY_PARAM})
    _HEADS[head.name] = head
    return head


for _builtin in BUILTIN_HEADS:
    register_head(_builtin)


def list_heads() -> dict[str, HeadType]:
    return dict(_HEADS)


def get_head(name: str, where: str = "") -> HeadType:
    """The head type ``name``; ``where`` (a dotted key or a flag) goes into the message of an unknown one."""
    try:
        return _HEADS[name]
    except KeyError:
        at = f"{where}: " if where else ""
        raise HeadError(f"{at}unknown head '{name}'; known heads: {', '.join(sorted(_HEADS))}") from None


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
            if not isinstance(args[2], int) or isinstance(args[2], bool) or args[2] < 1:
                raise HeadError(f"{where}: {kind}'s num must be an integer >= 1, got {args[2]!r}")
            points = np.linspace(float(args[0]), float(args[1]), int(args[2])).tolist()
            return [_exp10(v) for v in points] if kind == "logspace" else points
        raise HeadError(f"{where} must be a value, a list or {{logspace: [a, b, n]}}, got {dict(value)!r}")
    return None


def _exp10(v: float) -> float:
    """``10 ** v`` correctly rounded, so a logspace grid has the same values on every machine (neither numpy's
    vectorised power nor the C library's ``pow`` promises that: a C that moved by one ulp could win a tie)."""
    with localcontext() as ctx:
        ctx.prec = 40
        return float(Decimal(10) ** Decimal(v))


def _key(where: str, key: str) -> str:
    return f"{where} {key}" if where.startswith("-") else f"{where}.{key}"  # a CLI flag, or a dotted key


def check_params(name: str, params: Mapping[str, Any], where: str | None = None) -> None:
    """Check ``params`` of head ``name`` against what it declares; ``where`` is the dotted key of the head."""
    head = get_head(name, where or "")
    where = where or f"heads.{name}"
    for key, value in params.items():
        if key not in head.params:
            known = ", ".join(f"{k} (default {p.default!r})" for k, p in head.params.items())
            raise HeadError(
                f"{_key(where, key)}: {value!r} is not a parameter of head '{name}'; its parameters: {known}"
            )
        param = head.params[key]
        for v in [value] if key == "select_by" else expand_grid(value, _key(where, key)) or [value]:
            try:
                ok = param.check(v)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise HeadError(f"{_key(where, key)} must be {param.allowed}, got {v!r}")


def resolve_params(
    name: str, params: Mapping[str, Any], where: str | None = None
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Split ``params`` (over the head's defaults) into fixed values and grids; bad keys or values are errors."""
    check_params(name, params, where)
    head = get_head(name)
    fixed, grid = {}, {}
    for key, value in {**head.defaults, **params}.items():
        if key == "select_by":  # how the grid is chosen, never a grid itself
            fixed[key] = value
            continue
        values = expand_grid(value, _key(where or f"heads.{name}", key))
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
