"""What a head declares: its parameters (:class:`Param`) and its hooks (:class:`HeadType`).

Each built-in head declares itself beside its estimator (:mod:`headstart.heads.knn_head`,
:mod:`headstart.heads.linear`, :mod:`headstart.heads.stream`, :mod:`headstart.heads.ncm`); the registry
(:mod:`headstart.heads.registry`) collects them.

>>> integer(20).check(5), integer(20).check(0), choice("a", "a", "b").allowed
(True, False, "one of 'a', 'b'")
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headstart.heads.scoring import SELECT_BY

__all__ = ["CLASS_WEIGHT", "SELECT_BY_PARAM", "HeadType", "Param", "choice", "class_weight", "integer", "positive"]


@dataclass(frozen=True)
class Param:
    """A head parameter: its default, a check of one value and the allowed values in words."""

    default: Any
    check: Callable[[Any], bool] = field(default=lambda value: True, repr=False)
    allowed: str = "any value"


def integer(default: Any, low: int = 1, *, none: bool = False) -> Param:
    """An integer ``>= low`` (with ``none``: also ``None`` or ``auto``)."""

    def check(v: Any) -> bool:
        if none and v in (None, "auto"):
            return True
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low

    return Param(default, check, f"an integer >= {low}" + (" or auto" if none else ""))


def positive(default: Any, *words: str) -> Param:
    """A number ``> 0``, or one of ``words``."""

    def check(v: Any) -> bool:
        if isinstance(v, str):
            return v in words
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0

    return Param(default, check, "a number > 0" + "".join(f" or {w}" for w in words))


def choice(default: Any, *values: str) -> Param:
    """One of ``values``."""
    return Param(default, lambda v: v in values, f"one of {', '.join(map(repr, values))}")


# balanced: each class weighs n / (n_classes x its count) in the loss (k-NN: in the votes), so a rare class
# counts as much as a common one; on balanced data the weights are all about 1
CLASS_WEIGHT = choice("balanced", "none", "balanced")
SELECT_BY_PARAM = choice("auto", *SELECT_BY)


def class_weight(params: Mapping[str, Any]) -> str | None:
    """The estimators' ``class_weight`` for a head's ``class_weight`` setting."""
    return "balanced" if params.get("class_weight", "none") == "balanced" else None


@dataclass(frozen=True)
class HeadType:
    """A kind of head: its parameters, how to build it, whether its fit depends on a seed, and its hooks.

    ``sweep(fixed, grid, X_train, y_train, X_val, y_val, metric)`` returns ``(points, val_scores, tiebreak)`` for
    a grid it has a fast path for (scores by :func:`headstart.heads.scoring.val_score` with ``metric``), else
    ``None`` (then every point is fitted). ``adapt(estimator, best, X, y, steps, seed)`` returns the
    source-trained estimator moved to target data ``X, y``, or ``None`` when it cannot adapt. ``probe(fixed,
    grid, X_train, y_train, X_val, y_val)`` returns ``(mean, scale, weight, bias, classes, choice,
    val_accuracy)``: the linear layer fine-tuning starts from (``None``: not a linear probe).
    ``stream_fit(params, source, seed, warm)`` fits on a chunk source (``len(source)``, ``source.read(i) -> (X,
    y)``) with one chunk in memory at a time (``warm``: the previous grid point's fit, or ``None``); a head with it
    whose ``streams(params)`` holds is evaluated on its table chunk by chunk, never loaded whole
    (:mod:`headstart.heads.evaluate_stream`).
    """

    name: str
    description: str
    params: Mapping[str, Param]
    build: Callable[[Mapping[str, Any], int], Any]
    randomized: bool = False
    sweep: Callable[..., Any] | None = field(default=None, repr=False)
    adapt: Callable[..., Any] | None = field(default=None, repr=False)
    probe: Callable[..., Any] | None = field(default=None, repr=False)
    stream_fit: Callable[..., Any] | None = field(default=None, repr=False)
    streams: Callable[[Mapping[str, Any]], bool] = field(default=lambda params: True, repr=False)
    quick: bool = False  # fits take milliseconds: never worth a worker process (headstart.heads.parallel)

    @property
    def defaults(self) -> dict[str, Any]:
        return {key: p.default for key, p in self.params.items()}

    def streaming(self, params: Mapping[str, Any]) -> bool:
        """Whether this head with ``params`` (over its defaults) is evaluated chunk by chunk."""
        return self.stream_fit is not None and bool(self.streams({**self.defaults, **params}))

    @property
    def linear_probe(self) -> bool:
        """Whether fine-tuning can start from this head (it is a linear layer on the features)."""
        return self.probe is not None
