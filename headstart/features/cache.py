"""The per-image embedding cache that makes the embed stage resumable.

Layout: ``<cache_dir>/<base fingerprint>/`` holds ``meta.json`` (what the fingerprint stands for) and
append-only *segment* files, one per run. A segment is a sequence of records, one per batch::

    magic "HSE1" | header_len u32 | payload_len u64 | header_crc32 u32 | payload_crc32 u32 | header | payload

The JSON header lists the batch's image ids, its layers ``[["node|pooling", dim], ...]`` and the images that
failed (``[[id, error], ...]``); the payload is the float32 vectors, layer after layer. Each record is written
with one ``write`` call. A run killed at any moment (``kill -9`` included) leaves at worst a torn last record,
which the next scan detects by its length and checksum and ignores, so every completed batch survives.
Entries are keyed by image content id: an image seen in any dataset is embedded once per backbone setting.
Managing the cache (info, prune, clear): :mod:`headstart.features.cache_admin`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from headstart._files import atomic_path, disk_full, fault_point
from headstart.errors import UserError

__all__ = ["SEGMENTS", "CacheError", "EmbeddingCache", "SegmentWriter", "holds_vectors", "hold_lock", "layer_key"]

log = logging.getLogger(__name__)

_MAGIC = b"HSE1"
_PREFIX = struct.Struct("<4sIQII")
_LRU_RECORDS = 32
SEGMENTS = "seg-*.hse"  # an entry's segment files, under <cache_dir>/<fingerprint>/


class CacheError(UserError, RuntimeError):
    """The cache is damaged in a way that cannot be skipped; the message says which file to delete."""


def holds_vectors(root: str | Path) -> bool:
    """Whether the cache under ``root`` holds a segment of any fingerprint (anything but a first run)."""
    return any(Path(root).glob(f"*/{SEGMENTS}"))


def layer_key(node: str, pooling: str) -> str:
    return f"{node}|{pooling}"


@dataclass(frozen=True)
class _Record:
    segment: Path
    payload_offset: int
    payload_len: int
    payload_crc: int
    ids: tuple[str, ...]
    layers: tuple[tuple[str, int], ...]


class EmbeddingCache:
    """Read and append embeddings of one base fingerprint.

    >>> cache = EmbeddingCache(".headstart/cache", "0a1b2c", meta={"backbone": "mobilenet_v2"})  # doctest: +SKIP
    >>> todo = cache.missing(ids, ["features.13|avg"])                                           # doctest: +SKIP
    """

    def __init__(self, root: str | Path, fingerprint: str, meta: Mapping[str, Any] | None = None) -> None:
        self.dir = Path(root) / fingerprint
        self.dir.mkdir(parents=True, exist_ok=True)
        self._meta = dict(meta) if meta is not None else None
        meta_path = self.dir / "meta.json"
        if meta is not None and not meta_path.exists():
            with atomic_path(meta_path) as tmp:
                tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        self._records: list[_Record] = []
        self._where: dict[str, dict[str, tuple[int, int]]] = {}
        self._failures: dict[str, str] = {}
        self._dims: dict[str, int] = {}
        self._payloads: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.torn: list[str] = []
        self.scan()

    # ---- reading -------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        return sorted(self.dir.glob(SEGMENTS))

    def scan(self) -> None:
        """(Re)build the index from the segment files; torn or corrupt tails are skipped."""
        for part in (self._records, self._where, self._dims, self._failures, self._payloads, self.torn):
            part.clear()
        for segment in self.segments():
            with open(segment, "rb") as handle:
                self._scan_segment(segment, handle, os.fstat(handle.fileno()).st_size)

    def _scan_segment(self, segment: Path, handle: BinaryIO, size: int) -> None:
        position = 0
        while position < size:
            prefix = handle.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                self.torn.append(f"{segment.name}@{position}")
                return
            magic, header_len, payload_len, header_crc, payload_crc = _PREFIX.unpack(prefix)
            header_bytes = handle.read(header_len) if magic == _MAGIC else b""
            end = position + _PREFIX.size + header_len + payload_len
            if (
                magic != _MAGIC
                or len(header_bytes) < header_len
                or zlib.crc32(header_bytes) != header_crc
                or end > size
            ):
                self.torn.append(f"{segment.name}@{position}")
                return  # a torn or damaged tail: everything before it is good
            header = json.loads(header_bytes)
            record = _Record(
                segment,
                position + _PREFIX.size + header_len,
                payload_len,
                payload_crc,
                tuple(header["ids"]),
                tuple((k, int(d)) for k, d in header["layers"]),
            )
            index = len(self._records)
            self._records.append(record)
            for key, dim in record.layers:
                self._dims.setdefault(key, dim)
                where = self._where.setdefault(key, {})
                for row, item_id in enumerate(record.ids):
                    where.setdefault(item_id, (index, row))
            for item_id, error in header.get("failures", []):
                self._failures.setdefault(item_id, error)
            handle.seek(end)
            position = end

    def has(self, item_id: str, keys: Iterable[str]) -> bool:
        return all(item_id in self._where.get(key, {}) for key in keys)

    def failure(self, item_id: str) -> str | None:
        return self._failures.get(item_id)

    def missing(self, ids: Iterable[str], keys: Sequence[str]) -> list[str]:
        """Sorted unique ids that lack any of ``keys`` and have not failed before."""
        return sorted({i for i in ids if i not in self._failures and not self.has(i, keys)})

    def dim(self, key: str) -> int | None:
        return self._dims.get(key)

    def contents(self) -> tuple[tuple[str, ...], int, int]:
        """``(layer keys, images, records)`` as of the last :meth:`scan`."""
        return tuple(sorted(self._dims)), len({i for where in self._where.values() for i in where}), len(self._records)

    def vectors(self, key: str, ids: Sequence[str]) -> np.ndarray:
        """The cached vectors of ``ids`` for layer ``key``, stacked in the order of ``ids``."""
        where = self._where.get(key, {})
        dim = self.dim(key)
        if dim is None:
            raise KeyError(f"no embeddings for layer {key} in {self.dir}")
        out = np.empty((len(ids), dim), dtype=np.float32)
        for i, item_id in enumerate(ids):
            record_index, row = where[item_id]
            out[i] = self._payload(record_index)[key][row]
        return out

    def _payload(self, index: int) -> dict[str, np.ndarray]:
        if index in self._payloads:
            self._payloads.move_to_end(index)
            return self._payloads[index]
        record = self._records[index]
        with open(record.segment, "rb") as handle:
            handle.seek(record.payload_offset)
            data = handle.read(record.payload_len)
        if len(data) != record.payload_len or zlib.crc32(data) != record.payload_crc:
            raise CacheError(
                f"cache segment {record.segment} is damaged (payload checksum mismatch); delete that "
                "file and run again: only the images it held are embedded again"
            )
        arrays, offset, n = {}, 0, len(record.ids)
        for key, dim in record.layers:
            arrays[key] = np.frombuffer(data, dtype="<f4", count=n * dim, offset=offset).reshape(n, dim)
            offset += n * dim * 4
        self._payloads[index] = arrays
        if len(self._payloads) > _LRU_RECORDS:
            self._payloads.popitem(last=False)
        return arrays

    # ---- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One process at a time embeds into this fingerprint; a second waits, then :meth:`scan` finds the first
        one's work. The lock goes with the process (``kill -9`` included); ``cache prune`` takes it too."""
        with hold_lock(self.dir, wait=True):
            if self._meta is not None and not (self.dir / "meta.json").exists():  # `cache prune` removed it
                with atomic_path(self.dir / "meta.json") as tmp:
                    tmp.write_text(json.dumps(self._meta, indent=2, sort_keys=True))
            yield

    def open_segment(self) -> SegmentWriter:
        name = f"seg-{time.time_ns():020d}-{os.getpid()}.hse"
        return SegmentWriter(self.dir / name)


@contextlib.contextmanager
def hold_lock(directory: Path, wait: bool) -> Iterator[bool]:
    """Hold ``directory``'s lock (yields True); without ``wait``, yields False if another process holds it.

    ``headstart cache prune`` deletes a folder, lock file included, under the lock; a process that was waiting
    then finds its lock file gone from disk and takes the new one, in the folder made again.
    """
    while True:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                log.info("another headstart process is using %s; waiting for it to finish", directory)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(directory / ".lock").st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue  # deleted while we waited: take the new one
            try:
                yield True
                return
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class SegmentWriter:
    """Appends one record per batch to a new segment file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self.records = 0

    def append(
        self, ids: Sequence[str], arrays: Mapping[str, np.ndarray], failures: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Write one record: ``arrays[key]`` is ``(len(ids), dim)`` float32."""
        if not ids and not failures:
            return
        layers = []
        chunks = []
        for key, array in arrays.items():
            array = np.ascontiguousarray(array, dtype="<f4")
            if array.shape[0] != len(ids):
                raise ValueError(f"layer {key}: {array.shape[0]} vectors for {len(ids)} ids")
            layers.append([key, int(array.shape[1])])
            chunks.append(array.tobytes())
        header = json.dumps(
            {"ids": list(ids), "layers": layers, "failures": [list(f) for f in failures]}, separators=(",", ":")
        ).encode()
        payload = b"".join(chunks)
        record = _PREFIX.pack(_MAGIC, len(header), len(payload), zlib.crc32(header), zlib.crc32(payload))
        if self._handle is None:
            self._handle = open(self.path, "ab", buffering=0)
        end = self._handle.tell()
        view = memoryview(record + header + payload)
        try:
            while view:  # one write call in practice; a kill leaves a whole record or a torn tail
                view = view[self._handle.write(view) :]
        except OSError as err:
            with contextlib.suppress(OSError):  # drop the torn record (a later scan would skip it anyway)
                os.ftruncate(self._handle.fileno(), end)
            kept = f"the {self.records} batches written before are kept and the next run resumes after them"
            full = disk_full(err, self.path, kept=kept)
            if full is not None:
                raise full from err
            raise
        self.records += 1
        fault_point()

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                os.fsync(handle.fileno())
            except OSError as err:
                full = disk_full(err, self.path, kept="finished batches are kept and the next run resumes")
                if full is not None:
                    raise full from err
                raise
            finally:
                handle.close()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
