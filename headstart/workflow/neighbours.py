"""`headstart neighbours`: the rows of an embedding table nearest to query images or to rows of its own.

A query image is embedded with the table's own backbone settings (from its provenance, as `predict` does for a
head), so it lives in the same space; a query that is an id of the table uses that row (and leaves it out of
its own answer). Works on unlabelled collections.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from headstart._progress import ProgressFactory, null_progress
from headstart.data.tables import load_embeddings
from headstart.errors import UserError
from headstart.features.spec import EmbedOptions
from headstart.heads.neighbours import nearest_rows
from headstart.heads.persist import ProvenanceMismatch, check_provenance
from headstart.workflow.predict import embed_images

__all__ = ["NeighboursError", "find_neighbours"]


class NeighboursError(UserError, ValueError):
    """A query is neither an image file nor an id of the table, or cannot be embedded."""


def find_neighbours(
    table_path: str | Path,
    queries: Sequence[str],
    k: int = 10,
    *,
    options: EmbedOptions = EmbedOptions(),
    progress: ProgressFactory = null_progress,
) -> pd.DataFrame:
    """``query, rank, id, path, similarity[, label]`` for the ``k`` nearest rows of each query, in query order."""
    if not queries:
        raise NeighboursError("give at least one --query (an image file or an id of the table)")
    table = load_embeddings(table_path)
    row_of = {item_id: i for i, item_id in reversed(list(enumerate(table.frame["id"])))}
    images = [q for q in queries if q not in row_of and Path(q).is_file()]
    unknown = [q for q in queries if q not in row_of and q not in images]
    if unknown:
        raise NeighboursError(
            f"query {unknown[0]!r} is neither an image file nor an id in {table_path}; give a path to an image "
            "or one of the table's ids (its `id` column)"
        )
    vectors = {}
    if images:
        embedded, failed = embed_images(images, table.provenance, options=options, progress=progress, purpose="query")
        if failed:
            raise NeighboursError(f"query image {failed[0]['path']} cannot be used: {failed[0]['error']}")
        try:
            check_provenance(table.provenance, embedded.provenance)
        except ProvenanceMismatch as err:  # cannot happen unless the backbone's code changed under the table
            raise NeighboursError(f"the query images embed differently from {table_path}: {err}") from err
        vectors = {path: embedded.X[i] for i, path in enumerate(embedded.frame["path"])}
    X = np.stack([table.X[row_of[q]] if q in row_of else vectors[q] for q in queries])
    exclude = [row_of.get(q) for q in queries]
    return nearest_rows(table, X, list(queries), k=k, exclude=exclude)
