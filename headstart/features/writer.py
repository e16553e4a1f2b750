"""Assembling the final tables from the cache, streaming, in the order of the prepared index (by id).

Memory stays flat whatever the dataset size: rows go out in fixed row groups, and only the cache records
that the current row group needs are held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from headstart._files import atomic_path
from headstart.data.tables import ROW_GROUP_ROWS, ShardedEmbeddingWriter, write_failures
from headstart.features.cache import EmbeddingCache

__all__ = ["TableOut", "assemble_tables"]


@dataclass(frozen=True)
class TableOut:
    """One embedding table to write: the cache key of its layer, its path and its provenance.

    ``rows_per_shard``: a larger table becomes a directory of shards (``None``: about 256 MB per shard);
    ``engine``: information about the run kept beside the provenance (not for the local engine).
    """

    key: str
    path: Path
    dim: int
    provenance: Mapping[str, Any]
    rows_per_shard: int | None = None
    engine: Mapping[str, Any] | None = None


def assemble_tables(
    prepared: pd.DataFrame,
    cache: EmbeddingCache,
    tables: Sequence[TableOut],
    failures_path: Path | None,
    failures_provenance: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """Write every table in ``tables`` (and the failures table); returns the failure rows."""
    keys = [t.key for t in tables]
    extra = [c for c in prepared.columns if c not in ("id", "label", "split", "path", "image")]
    labelled = not prepared["label"].isna().all()
    failures: list[dict[str, Any]] = []
    # Every table and the failures table are written to temporaries first; only when all of them are complete
    # are they renamed into place (on leaving the stack), so a failure midway leaves every previous table as it was.
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(
                ShardedEmbeddingWriter(
                    t.path, t.dim, t.provenance, t.rows_per_shard, t.engine, labelled=labelled, extra=extra
                )
            )
            for t in tables
        ]
        failures_tmp = stack.enter_context(atomic_path(failures_path)) if failures_path is not None else None
        for start in range(0, len(prepared), ROW_GROUP_ROWS):
            chunk = prepared.iloc[start : start + ROW_GROUP_ROWS]
            ok_ids, ok_rows, ok_at = [], [], []
            for at, row in enumerate(chunk[["id", "label", "split", "path"]].itertuples(index=False)):
                path = None if pd.isna(row.path) else row.path
                if cache.has(row.id, keys):
                    ok_ids.append(row.id)
                    ok_rows.append((None if pd.isna(row.label) else row.label, row.split, path))
                    ok_at.append(at)
                else:
                    error = cache.failure(row.id)
                    if error is None:
                        raise RuntimeError(
                            f"image {path or row.id} is neither embedded nor failed in {cache.dir}; "
                            "this is a bug in headstart"
                        )
                    label = None if pd.isna(row.label) else row.label
                    failures.append({"id": row.id, "label": label, "split": row.split, "path": path, "error": error})
            if not ok_ids:
                continue
            labels, splits, paths = (list(col) for col in zip(*ok_rows, strict=True))
            values = {c: [None if pd.isna(v) else str(v) for v in chunk[c].iloc[ok_at]] for c in extra}
            for table, writer in zip(tables, writers, strict=True):
                writer.write(ok_ids, labels, splits, paths, cache.vectors(table.key, ok_ids), extra=values)
        for writer in writers:
            writer.finish()
        if failures_tmp is not None:
            write_failures(failures_tmp, failures, failures_provenance)
    return failures
