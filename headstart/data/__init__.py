"""Datasets (built-in, image folders, manifests), splits, and the Parquet tables with their IO.

This package never imports torch or a backbone.
"""

from headstart.data.builtin import BUILTIN_DATASETS, DatasetNotFound
from headstart.data.images import UnreadableImage, decode_image
from headstart.data.prepare import DatasetError, prepare_dataset
from headstart.data.sources import SourceError, scan_source, source_kind
from headstart.data.splits import assign_splits, few_shot_indices
from headstart.data.tables import (
    EmbeddingTable,
    EmbeddingWriter,
    TableError,
    load_embeddings,
    read_embedding_metadata,
    read_failures,
    read_prepared,
    write_failures,
    write_prepared,
)

__all__ = [
    "BUILTIN_DATASETS",
    "DatasetError",
    "DatasetNotFound",
    "EmbeddingTable",
    "EmbeddingWriter",
    "SourceError",
    "TableError",
    "UnreadableImage",
    "assign_splits",
    "decode_image",
    "few_shot_indices",
    "load_embeddings",
    "prepare_dataset",
    "read_embedding_metadata",
    "read_failures",
    "read_prepared",
    "scan_source",
    "source_kind",
    "write_failures",
    "write_prepared",
]
