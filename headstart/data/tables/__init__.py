"""The Parquet tables headstart writes, their schemas and their IO. No module outside this package touches Parquet.

Three tables:

``prepared``   one row per image of a dataset: ``id, label, split, path, image`` (``image`` holds PNG bytes
               for built-in array datasets; ``path`` points at the file otherwise). A text dataset's row has
               ``id, label, split, path (null), text, image`` (``image``: the text's UTF-8 bytes).
``embeddings`` one row per embedded image: ``id, label, split, path, embedding`` where ``embedding`` is a
               ``fixed_size_list<float32>[d]``; the provenance (backbone, weights, node, pooling,
               preprocessing, precision, versions) is JSON in the key-value metadata under ``headstart``.
               A large one is a directory of shards (:mod:`.shards`) that every reader takes like one file.
``failures``   one row per image that could not be embedded: ``id, label, split, path, error``.

An unlabelled collection (a plain image folder, a manifest without ``label``) has a null ``label`` in every
row (the column is nullable only in such tables). A manifest's extra columns (a patient or site id, ...) follow
``path`` as nullable text columns in the prepared and embedding tables; they never enter ids or fingerprints.
A text table carries its texts in a ``text`` column right after ``path`` (null for a dataset's texts,
``file:line`` for texts read from files), so every row can be read without the source at hand.

The modules, each depending only on those before it: :mod:`.schema` (schemas, metadata keys, shard names),
:mod:`.read`, :mod:`.write` (atomic, deterministic writes) and :mod:`.shards` (the sharded writer).

Example
-------
>>> frame, X, labels = load_embeddings("embeddings/digits/mobilenet_v2/features.13.parquet")  # doctest: +SKIP
>>> X.dtype, X.flags["C_CONTIGUOUS"], frame.attrs["headstart"]["node"]                      # doctest: +SKIP
(dtype('float32'), True, 'features.13')
"""

from __future__ import annotations

from headstart.data.tables.read import (
    EmbeddingTable,
    iter_embeddings,
    load_embeddings,
    read_columns,
    read_embedding_metadata,
    read_failures,
    read_manifest_columns,
    read_manifest_parquet,
    read_manifest_paths,
    read_prepared,
    read_prepared_images,
    read_row_group,
    row_groups,
)
from headstart.data.tables.schema import (
    ROW_GROUP_ROWS,
    SCHEMA_VERSION,
    SHARD_BYTES,
    TEXT_COLUMN,
    TableError,
    embedding_schema,
    failures_schema,
    prepared_schema,
    shard_files,
    shard_rows,
)
from headstart.data.tables.shards import ShardedEmbeddingWriter
from headstart.data.tables.write import EmbeddingWriter, write_failures, write_prepared

__all__ = [  # noqa: RUF022 (grouped by role)
    "ROW_GROUP_ROWS", "SCHEMA_VERSION", "SHARD_BYTES", "TEXT_COLUMN", "TableError", "embedding_schema",
    "failures_schema", "prepared_schema", "shard_files", "shard_rows",
    "EmbeddingTable", "load_embeddings", "read_embedding_metadata", "read_failures", "read_manifest_columns",
    "read_manifest_parquet",
    "read_manifest_paths", "read_prepared",
    "iter_embeddings", "read_columns", "read_prepared_images", "read_row_group", "row_groups",
    "EmbeddingWriter", "ShardedEmbeddingWriter", "write_failures", "write_prepared",
]  # fmt: skip
