"""The settings of one head, defined once: params.yaml and the CLI both build a :class:`HeadSpec`.

``kind`` is a registered head (``headstart heads``); ``params`` override its defaults, and a list or
``{logspace: [a, b, n]}`` is a grid chosen on val. The registry checks the parameters
(:func:`headstart.heads.registry.check_params`); this module only holds the type and imports nothing heavy.

>>> spec = HeadSpec("knn_l2", "knn", {"metric": "l2", "k": [5, 20]})
>>> spec.params["k"]
(5, 20)
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HeadSpec", "freeze"]


def freeze(value: Any) -> Any:
    """``value`` with every mapping made read-only and every list a tuple, recursively."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain (YAML- and JSON-ready) copy of a frozen value: dicts and lists again."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class HeadSpec:
    """A named head: its registered ``kind`` and its parameters (frozen; grids stay grids)."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", freeze(dict(self.params)))
