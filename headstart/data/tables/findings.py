"""The audit's finding tables (``duplicates``, ``label_issues``, ``outliers``): small frames of text and number
columns, written atomically with the same bytes for the same rows, and read back with their kind checked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from headstart._files import atomic_path
from headstart.data.tables.read import read_meta
from headstart.data.tables.schema import KIND_KEY, PROVENANCE_KEY, SCHEMA_VERSION, VERSION_KEY, TableError

__all__ = ["FINDINGS", "read_findings", "write_findings"]

FINDINGS = ("duplicates", "label_issues", "outliers")


def _field(name: str, dtype: Any) -> pa.Field:
    if pd.api.types.is_integer_dtype(dtype):
        return pa.field(name, pa.int64())
    if pd.api.types.is_float_dtype(dtype):
        return pa.field(name, pa.float64())
    return pa.field(name, pa.string())


def write_findings(path: str | Path, frame: pd.DataFrame, kind: str, metadata: Mapping[str, Any]) -> None:
    """Write one finding table (``kind`` in :data:`FINDINGS`) with ``metadata`` (the audit's settings) as JSON."""
    if kind not in FINDINGS:
        raise TableError(f"unknown finding table {kind!r}; one of {', '.join(FINDINGS)}")
    schema = pa.schema(
        [_field(name, frame[name].dtype) for name in frame.columns],
        metadata={
            KIND_KEY: kind.encode(),
            VERSION_KEY: SCHEMA_VERSION.encode(),
            PROVENANCE_KEY: json.dumps(dict(metadata), sort_keys=True, separators=(",", ":")).encode(),
        },
    )
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)


def read_findings(path: str | Path, kind: str) -> pd.DataFrame:
    """Read a finding table written by :func:`write_findings`; its metadata in ``frame.attrs["headstart"]``."""
    _, metadata = read_meta(Path(path), kind)
    frame = pq.read_table(path).to_pandas()
    frame.attrs["headstart"] = metadata
    return frame
