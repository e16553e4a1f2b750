"""The evaluation protocol of :mod:`headstart.heads.evaluate`, on a table read one row group at a time.

For heads that can fit chunk by chunk (``logreg_stream``; ``knn`` with ``index: ivfpq``: a head type's
``stream_fit`` hook), on tables that need not fit in memory. The steps and the record are the same as in memory:

1. Selection: each grid point fitted on the train split's chunks and scored on the val split's, by the head's
   ``select_by`` metric (``log_loss`` from the streamed mean log-loss).
2. Full data: refitted on train+val and scored on the test split's chunks, once per seed for seeded heads.
3. Few-shot: the n-per-class subsets are drawn from the train labels exactly as in memory (the same rows for
   the same seed), gathered in one pass over train, and fitted in memory: they are small. ``all`` streams.

The classes without a train, val or test image are left out as in memory: every chunk read drops their rows.

What stays in memory is one chunk of embeddings, the labels, ids and splits of every row (short strings), and the
test split's predictions and per-class scores (rows x classes float32), which the test metrics and intervals need.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart._progress import ProgressFactory, null_progress
from headstart.data.splits import few_shot_indices
from headstart.data.tables import read_columns, read_embedding_metadata
from headstart.heads import parallel
from headstart.heads._checks import check_classes
from headstart.heads.evaluate import HeadEvaluation, assemble, evaluable_classes, few_shot_run, unlabelled
from headstart.heads.intervals import test_intervals
from headstart.heads.metrics import classification_metrics
from headstart.heads.registry import HeadError, get_head, grid_points, resolve_params
from headstart.heads.scoring import resolve_select_by, val_score
from headstart.heads.selection import Selection, check_val_split
from headstart.heads.chunks import ArrayChunks, TableChunks, stream_scores

__all__ = ["StreamedTable", "evaluate_head_stream"]


class StreamedTable:
    """An embedding table as chunk sources per split, with the ids, labels and splits of every row in memory;
    the rows of the classes the protocol leaves out (``left_out``) are in none of them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.provenance = read_embedding_metadata(path)
        frame = read_columns(path, ["id", "label", "split"])
        if frame["label"].isna().any():
            raise unlabelled(f"the embedding table {path}")
        split = frame["split"].to_numpy()
        labels = frame["label"].to_numpy(dtype=object).astype(str)
        self.left_out = evaluable_classes(labels, split, f"the embedding table {path}")
        kept = ~np.isin(labels, list(self.left_out))
        self.ids = {name: frame["id"].to_numpy()[(split == name) & kept] for name in ("train", "val", "test")}
        self.labels = {name: labels[(split == name) & kept] for name in ("train", "val", "test")}

    def chunks(self, *splits: str) -> Any:
        """The rows of ``splits``, one split after the other (as the in-memory protocol stacks train and val)."""
        parts = [TableChunks(self.path, [name]) for name in splits]
        if self.left_out:
            parts = [_Without(part, list(self.left_out)) for part in parts]
        return parts[0] if len(parts) == 1 else _Stacked(parts)

    @property
    def classes(self) -> np.ndarray:
        return np.unique(np.concatenate(list(self.labels.values())))

    def train_rows(self, wanted: np.ndarray) -> np.ndarray:
        """The embeddings of the train split's rows at positions ``wanted`` (sorted), in one pass."""
        source, out, offset, taken = self.chunks("train"), [], 0, 0
        for i in range(len(source)):
            X, _ = source.read(i)
            stop = offset + len(X)
            hits = wanted[(wanted >= offset) & (wanted < stop)]
            if len(hits):
                out.append(X[hits - offset])
                taken += len(hits)
            offset = stop
            if taken == len(wanted):
                break
        return np.concatenate(out) if out else np.zeros((0, int(self.provenance["dim"])), dtype=np.float32)


class _Stacked:
    """Chunk sources one after the other."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = list(parts)
        self.where = [(p, i) for p in self.parts for i in range(len(p))]

    def __len__(self) -> int:
        return len(self.where)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        part, j = self.where[i]
        return part.read(j)


class _Without:
    """A chunk source without the rows of some classes."""

    def __init__(self, source: Any, classes: Sequence[str]) -> None:
        self.source, self.classes = source, classes

    def __len__(self) -> int:
        return len(self.source)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        X, y = self.source.read(i)
        keep = ~np.isin(y, self.classes)
        return (X, y) if keep.all() else (X[keep], y[keep])


def _select(head: str, fixed: dict[str, Any], grid: dict[str, list[Any]], table: StreamedTable, seed: int) -> Selection:
    kind = get_head(head)
    metric = resolve_select_by(str(fixed.get("select_by", "auto")), table.labels["train"])
    fixed = {**fixed, "select_by": metric} if "select_by" in fixed else dict(fixed)
    if not check_val_split(head, grid, len(table.labels["val"])):
        return Selection(best=dict(fixed), metric=metric)
    start = time.perf_counter()
    points, values, losses, previous = grid_points(grid) if grid else [{}], [], [], None
    for point in points:
        previous = kind.stream_fit({**fixed, **point}, table.chunks("train"), seed, previous)
        y_true, y_pred, proba, loss = stream_scores(previous, table.chunks("val"))
        score = -loss if metric == "log_loss" else val_score(metric, y_true, y_pred, proba, previous.classes_)
        values.append(score)
        losses.append(loss)
    best = min(range(len(points)), key=lambda i: (-values[i], losses[i], i))  # ties: the lower val log-loss
    return Selection(
        best={**fixed, **points[best]},
        scores=[(p, float(v)) for p, v in zip(points, values, strict=True)],
        seconds=time.perf_counter() - start,
        metric=metric,
    )


@parallel.single_threaded
def evaluate_head_stream(
    head: str,
    params: dict[str, Any],
    path: str | Path,
    *,
    seeds: int = 5,
    few_shot: Sequence[int | str] = (1, 2, 5, 10, 20, "all"),
    seed: int = 0,
    progress: ProgressFactory = null_progress,
) -> tuple[HeadEvaluation, StreamedTable]:
    """The protocol of :func:`headstart.heads.evaluate.evaluate_head` for a streaming head on the table at
    ``path``; returns the evaluation and the table (its test ids and provenance)."""
    kind = get_head(head)
    if kind.stream_fit is None:
        raise HeadError(f"head '{head}' cannot fit chunk by chunk; it needs its table in memory")
    fixed, grid = resolve_params(head, params)
    table = StreamedTable(path)
    check_classes(table.labels["train"], f"the train split of {path}")
    selection = _select(head, fixed, grid, table, seed)
    best = selection.best
    seed_list = [seed + s for s in range(seeds if kind.randomized else 1)]
    subsets = {
        (n, s): few_shot_indices(table.labels["train"], int(n), s)
        for n in few_shot
        if n != "all"
        for s in (seed + i for i in range(seeds))
    }
    wanted = np.unique(np.concatenate(list(subsets.values()))) if subsets else np.zeros(0, dtype=np.int64)
    rows = table.train_rows(wanted)
    few_runs = sum(len(seed_list) if n == "all" else seeds for n in few_shot)
    bar = progress(total=len(seed_list) + few_runs, desc=f"fit {head} (streaming)", unit="fit")
    y_test = table.labels["test"]
    try:
        per_seed, first = [], None
        for s in seed_list:
            start = time.perf_counter()
            estimator = kind.stream_fit(best, table.chunks("train", "val"), s, None)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            y_true, y_pred, scores, _ = stream_scores(estimator, table.chunks("test"))
            predict_seconds = time.perf_counter() - start
            result = classification_metrics(y_true, y_pred, scores, estimator.classes_)
            result.update(fit_seconds=fit_seconds, predict_ms_per_image=1000 * predict_seconds / max(len(y_true), 1))
            per_seed.append(result)
            if first is None:
                first = (estimator, y_pred, scores)
                tested = test_intervals(y_true, y_pred, scores, estimator.classes_, result)
            bar.update(1)
        few = []
        for n in few_shot:
            for s in seed_list if n == "all" else [seed + i for i in range(seeds)]:
                if n == "all":
                    source, count = table.chunks("train"), len(table.labels["train"])
                else:
                    idx = subsets[(n, s)]
                    position = np.searchsorted(wanted, idx)
                    source, count = ArrayChunks(rows[position], table.labels["train"][idx]), len(idx)
                estimator = kind.stream_fit(best, source, s, None)
                _, few_pred, _, _ = stream_scores(estimator, table.chunks("test"))
                few.append(few_shot_run(n, s, y_test, few_pred, count))
                bar.update(1)
    finally:
        bar.close()
    assert first is not None
    evaluation = assemble(head, selection, per_seed, first, tested, few, table.classes, y_test, table.left_out)
    return evaluation, table
