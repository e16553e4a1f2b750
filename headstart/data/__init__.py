"""Datasets (built-in, image folders, manifests), splits, shifts, and the Parquet tables with their IO.

This package never imports a backbone (torch only to download MNIST when it is missing). Its names load on first
use, so a stage imports only the modules it needs.
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

_WHERE = {
    "BUILTIN_DATASETS": "builtin",
    "DatasetNotFound": "builtin",
    "UnreadableImage": "images",
    "decode_image": "images",
    "DatasetError": "sources",
    "prepare_dataset": "prepare",
    "SourceError": "sources",
    "scan_source": "sources",
    "source_kind": "sources",
    "assign_splits": "splits",
    "StatCache": "statcache",
    "few_shot_indices": "splits",
    "EmbeddingTable": "tables",
    "EmbeddingWriter": "tables",
    "TableError": "tables",
    "iter_embeddings": "tables",
    "load_embeddings": "tables",
    "read_embedding_metadata": "tables",
    "read_failures": "tables",
    "read_prepared": "tables",
    "write_failures": "tables",
    "write_prepared": "tables",
    "read_texts": "text",
    "scan_text_table": "text",
    "text_id": "text",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
