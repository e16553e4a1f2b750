"""Chunk sources: a table's row groups (:class:`TableChunks`) or arrays in memory (:class:`ArrayChunks`) served one
chunk at a time, and the scores of a fitted head over every chunk of one.

A chunk source has ``len(source)`` and ``source.read(i) -> (X, y)``; the streaming heads
(:mod:`headstart.heads.stream`, :mod:`headstart.heads.knn_head`) and the streamed protocol
(:mod:`headstart.heads.evaluate_stream`) read every table through one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data.tables import read_embedding_metadata, read_row_group, row_groups
from headstart.heads.metrics import class_scores

__all__ = [
    "CHUNK_ROWS",
    "ArrayChunks",
    "TableChunks",
    "chunks",
    "stream_accuracy",
    "stream_predictions",
    "stream_scores",
]

CHUNK_ROWS = 4096


class ArrayChunks:
    """Arrays in memory, served in chunks of ``rows`` like a table's row groups."""

    def __init__(self, X: np.ndarray, y: np.ndarray, rows: int = CHUNK_ROWS) -> None:
        self.X, self.y, self.rows = X, np.asarray(y), rows

    def __len__(self) -> int:
        return -(-len(self.X) // self.rows)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.X[i * self.rows : (i + 1) * self.rows], self.y[i * self.rows : (i + 1) * self.rows]


class TableChunks:
    """The row groups of an embedding table (a file or a directory of shards), keeping ``splits`` only.

    Chunks read are kept in memory up to ``keep_bytes`` (256 MB by default), so a table that fits is read from
    disk once however many passes a fit makes; beyond that, every pass reads the chunks again.
    """

    def __init__(self, path: str | Path, splits: Sequence[str] | None = None, keep_bytes: int = 256 << 20) -> None:
        self.path = Path(path)
        self.splits = list(splits) if splits is not None else None
        self.dim = int(read_embedding_metadata(path)["dim"])
        self.groups = row_groups(path)
        self.keep_bytes = keep_bytes
        self._kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._kept_bytes = 0

    def __len__(self) -> int:
        return len(self.groups)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._kept:
            return self._kept[i]
        frame, X = read_row_group(*self.groups[i], self.dim, self.splits)
        chunk = X, frame["label"].to_numpy(dtype=object).astype(str)
        if self._kept_bytes + X.nbytes <= self.keep_bytes:
            self._kept[i] = chunk
            self._kept_bytes += X.nbytes
        return chunk


def chunks(source: Any, order: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The non-empty chunks of ``source``, in ``order`` (all of them, in turn, by default)."""
    for i in order if order is not None else range(len(source)):
        X, y = source.read(i)
        if len(X):
            yield X, y


def stream_scores(estimator: Any, source: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """True labels, predicted labels, per-class scores (float32, ``estimator.classes_`` order) and the mean
    log-loss of ``estimator`` over every chunk of ``source`` (a class never seen in training scores as zero)."""
    classes = estimator.classes_
    truth, predicted, scores, loss = [], [], [], 0.0
    for X, y in chunks(source):
        proba = class_scores(estimator, X)
        column = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
        picked = np.where(classes[column] == y, proba[np.arange(len(y)), column], 0.0)
        loss += float(-np.log(np.clip(picked, 1e-15, None)).sum())
        truth.append(np.asarray(y))
        predicted.append(classes[np.argmax(proba, axis=1)])
        scores.append(proba.astype(np.float32))
    if not truth:
        return np.array([]), np.array([]), np.zeros((0, len(classes)), np.float32), 0.0
    y_true = np.concatenate(truth)
    return y_true, np.concatenate(predicted), np.concatenate(scores), loss / len(y_true)


def stream_predictions(estimator: Any, source: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """True labels, predicted labels and the mean log-loss of ``estimator`` over every chunk of ``source`` (the
    labels of a table that does not fit in memory do: one small string per row)."""
    y_true, y_pred, _, loss = stream_scores(estimator, source)
    return y_true, y_pred, loss


def stream_accuracy(estimator: Any, source: Any) -> tuple[float, float]:
    """Accuracy and mean log-loss of ``estimator`` over every chunk of ``source``."""
    y_true, y_pred, loss = stream_predictions(estimator, source)
    return (float(np.mean(y_true == y_pred)), loss) if len(y_true) else (0.0, 0.0)
