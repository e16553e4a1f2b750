"""Domain shift: what a head trained on one domain does on another, and what adapting costs.

For each head, four training regimes, each scored on the source's test split and on the target's test split:

``source only``      trained on source train+val
``target only``      trained on target train+val
``source + target``  trained on both
``source -> target`` trained on the source, then adapted to the target: logistic regression and the linear SVM
                     continue from the source weights for ``adapt_steps`` epochs of SGD on the target (log
                     loss and hinge loss, the same regularisation as the head), k-NN adds the target's
                     vectors to its index, nearest class mean moves its means to the target's.

The last regime shows how much of the source domain is forgotten. Test splits are never trained on: every
regime trains on train (and val for selection) splits only, and the two domains' test sets are checked to share
no image with any training set.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from headstart.errors import UserError
from headstart.heads import parallel
from headstart.heads.evaluate import SplitData
from headstart.heads.registry import build_head, get_head, resolve_params
from headstart.heads.selection import select

__all__ = ["REGIMES", "TransferError", "check_disjoint", "transfer_table"]

REGIMES = ("source only", "target only", "source + target", "source -> target")


class TransferError(UserError, ValueError):
    """The two datasets cannot be compared (different labels, or shared images between train and test)."""


def _stack(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([p for p in parts if len(p)])


def _train(
    kind: str,
    params: Mapping[str, Any],
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    fixed, grid = resolve_params(kind, params)
    best = select(kind, fixed, grid, X_tr, y_tr, X_val, y_val, seed).best
    estimator = build_head(kind, best, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(_stack(X_tr, X_val), _stack(y_tr, y_val))
    return estimator, best


def _adapt(
    kind: str, estimator: Any, best: Mapping[str, Any], X: np.ndarray, y: np.ndarray, steps: int, seed: int
) -> Any | None:
    adapt = get_head(kind).adapt
    if adapt is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return adapt(copy.deepcopy(estimator), best, X, y, steps, seed)


def _accuracy(estimator: Any, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(estimator.predict(X) == y))


def check_disjoint(source_ids: Mapping[str, Sequence[str]], target_ids: Mapping[str, Sequence[str]]) -> None:
    """No image of either test split may be in any training data (train or val) of either domain."""
    train = set(source_ids["train"]) | set(source_ids["val"]) | set(target_ids["train"]) | set(target_ids["val"])
    for domain, ids in (("source", source_ids), ("target", target_ids)):
        shared = train & set(ids["test"])
        if shared:
            raise TransferError(
                f"{len(shared)} image(s) of the {domain} test split are also training images "
                f"(e.g. id {sorted(shared)[0]}); the regimes would not be tested on unseen data"
            )


@parallel.single_threaded
def transfer_table(
    source: SplitData,
    target: SplitData,
    heads: Sequence[tuple[str, str, Mapping[str, Any]]],
    *,
    adapt_steps: int = 1,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per head and regime: ``head, regime, source_test, target_test, train_images``."""
    if set(source.classes) != set(target.classes):
        raise TransferError(
            f"source and target need the same labels; source has {sorted(source.classes)[:10]}, "
            f"target {sorted(target.classes)[:10]}"
        )
    rows = []
    for name, kind, params in heads:
        src, best = _train(kind, params, source.X_train, source.y_train, source.X_val, source.y_val, seed)
        tgt, _ = _train(kind, params, target.X_train, target.y_train, target.X_val, target.y_val, seed)
        both, _ = _train(
            kind,
            params,
            _stack(source.X_train, target.X_train),
            _stack(source.y_train, target.y_train),
            _stack(source.X_val, target.X_val),
            _stack(source.y_val, target.y_val),
            seed,
        )
        adapted = _adapt(
            kind,
            src,
            best,
            _stack(target.X_train, target.X_val),
            _stack(target.y_train, target.y_val),
            adapt_steps,
            seed,
        )
        n_src = len(source.y_train) + len(source.y_val)
        n_tgt = len(target.y_train) + len(target.y_val)
        for regime, model, n in zip(
            REGIMES, (src, tgt, both, adapted), (n_src, n_tgt, n_src + n_tgt, n_src + n_tgt), strict=True
        ):
            rows.append(
                {
                    "head": name,
                    "regime": regime,
                    "train_images": n,
                    "source_test": None if model is None else _accuracy(model, source.X_test, source.y_test),
                    "target_test": None if model is None else _accuracy(model, target.X_test, target.y_test),
                }
            )
    return rows
