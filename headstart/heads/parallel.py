"""The protocol's independent fits (grid points without a sweep, few-shot subsets) in worker processes, and the
one thread every fit runs its numerical libraries on.

Each fit is seeded and runs alone in its process, so the results are the same as one after another: processes,
not threads, because liblinear (the linear SVM) draws from one global random generator that concurrent fits in
one process would share. A fit on fewer than :data:`MIN_VALUES` numbers (rows x width) is done in this process:
starting a worker (it imports scikit-learn) costs more than such fits take. Whether a protocol uses workers
depends only on the data's shape, the number of fits and the cores, never on timings.

Every fit and prediction, here or in a worker, runs BLAS and OpenMP (scikit-learn's, faiss's) on one thread
(:func:`single_threaded`): a sum split over threads adds in another order, so the same fit gave other bits with
two threads than with one (the logreg head on digits), and the number of threads a library takes follows the
cores. Parallelism comes from the worker processes instead.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from headstart.heads.metrics import class_scores
from headstart.heads.scoring import val_score

__all__ = ["MIN_VALUES", "fit_predict", "fit_val_score", "run", "single_threaded", "workers"]

MIN_VALUES = 250_000  # digits' 1,000 train rows x 256 pixel values and up; not 1,000 x 96
MAX_WORKERS = 8

F = TypeVar("F", bound=Callable[..., Any])


def single_threaded(function: F) -> F:
    """``function`` with BLAS and OpenMP limited to one thread while it runs, so its bits do not depend on the
    cores."""

    @functools.wraps(function)
    def pinned(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(limits=1):
            return function(*args, **kwargs)

    return pinned  # type: ignore[return-value]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def workers(tasks: int, X: np.ndarray, quick: bool = False) -> int:
    """Worker processes for ``tasks`` fits on data like ``X`` (the train split) of a head whose fits are
    ``quick`` or not (k-NN, class means: never worth a worker); 1 means this process."""
    if tasks < 2 or quick or X.size < MIN_VALUES:
        return 1
    return max(1, min(_cores(), tasks, MAX_WORKERS))


def run(function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], jobs: int) -> Iterator[Any]:
    """``function(*call)`` for every call, in order, on ``jobs`` worker processes (``1``: here, one by one)."""
    if jobs <= 1:
        return (function(*call) for call in calls)
    return iter(Parallel(n_jobs=jobs, backend="loky", return_as="generator")(delayed(function)(*c) for c in calls))


def _fit(build: Callable[..., Any], params: Mapping[str, Any], seed: int, X: np.ndarray, y: np.ndarray) -> Any:
    estimator = build(params, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    return estimator


@single_threaded
def fit_predict(
    build: Callable[..., Any], params: Mapping[str, Any], seed: int, X: np.ndarray, y: np.ndarray, X_test: np.ndarray
) -> np.ndarray:
    """Fit a head on ``X, y`` and predict ``X_test`` (a few-shot run)."""
    return _fit(build, params, seed, X, y).predict(X_test)


@single_threaded
def fit_val_score(
    build: Callable[..., Any],
    params: Mapping[str, Any],
    seed: int,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    metric: str,
) -> float:
    """Fit a head on train and score it on val by ``metric`` (one grid point)."""
    estimator = _fit(build, params, seed, X, y)
    proba = class_scores(estimator, X_val) if metric == "log_loss" else None
    return val_score(metric, y_val, estimator.predict(X_val), proba, estimator.classes_)
