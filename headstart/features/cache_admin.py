"""The embedding cache as a managed thing: what it holds, which of it the current tables use, and pruning.

A cache folder holds one sub-folder per base fingerprint (:mod:`headstart.features.cache`). A fingerprint is
*in use* when an embedding table names it in its provenance (``base_fingerprint``): those are the vectors a
rerun of the embed stage would read again. Everything else (an old backbone setting, an old library version)
can only be reused by going back to that setting.

``prune`` and ``clear`` take each fingerprint's lock without waiting, so they never delete under a running
embed: a fingerprint in use by a running process is reported as busy and left alone.

>>> entries = cache_info(".headstart/cache", fingerprints_in_use())           # doctest: +SKIP
>>> prune(".headstart/cache", keep=fingerprints_in_use(), dry_run=True)       # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from headstart.data.tables import TableError, read_embedding_metadata
from headstart.features.cache import SEGMENTS, EmbeddingCache, hold_lock

__all__ = ["CacheEntry", "PruneResult", "cache_info", "clear", "fingerprints_in_use", "prune"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheEntry:
    """One fingerprint's folder in the cache."""

    fingerprint: str
    path: Path
    backbone: str
    weights: str
    layers: tuple[str, ...]
    images: int
    records: int
    bytes: int
    last_written: float | None  # seconds since the epoch; None when nothing was ever written
    in_use: bool

    def as_dict(self) -> dict[str, object]:
        written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.last_written)) if self.last_written else ""
        return {
            "fingerprint": self.fingerprint,
            "backbone": self.backbone,
            "weights": self.weights,
            "layers": list(self.layers),
            "images": self.images,
            "records": self.records,
            "bytes": self.bytes,
            "last_written": written,
            "in_use": self.in_use,
        }


@dataclass
class PruneResult:
    """What ``prune``/``clear`` removed (or would remove, with ``dry_run``), kept, and left because it was busy."""

    removed: list[CacheEntry] = field(default_factory=list)
    kept: list[CacheEntry] = field(default_factory=list)
    busy: list[CacheEntry] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(e.bytes for e in self.removed)


def fingerprints_in_use(tables: Sequence[str | Path] = (), root: str | Path = "embeddings") -> set[str]:
    """The base fingerprints named by embedding tables: ``tables`` (files or folders), or every table under ``root``.

    Files that are not embedding tables (failures tables, other Parquet files) are skipped.
    """
    found: set[str] = set()
    for path in _parquet_files(tables or [root]):
        try:
            provenance = read_embedding_metadata(path)
        except TableError:
            continue  # a failures table or a foreign file: it names no vectors
        if provenance.get("base_fingerprint"):
            found.add(provenance["base_fingerprint"])
    return found


def _parquet_files(items: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files += sorted(item.rglob("*.parquet"))
        elif item.is_file():
            files.append(item)
        elif item != Path("embeddings"):
            raise FileNotFoundError(f"{item} is neither an embedding table nor a folder of them")
    return files


def cache_info(cache_dir: str | Path, in_use: set[str] | None = None) -> list[CacheEntry]:
    """One entry per fingerprint folder under ``cache_dir``, newest first; ``in_use`` marks those the tables use."""
    root = Path(cache_dir)
    if not root.is_dir():
        return []
    folders = [f for f in sorted(root.iterdir()) if f.is_dir() and not f.name.startswith(("_", "."))]
    entries = [_entry(folder, in_use or set()) for folder in folders]  # not _resolved/ (features.resolved)
    return sorted(entries, key=lambda e: (-(e.last_written or 0), e.fingerprint))


def _entry(folder: Path, in_use: set[str]) -> CacheEntry:
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, ValueError):
        meta = {}
    files = [f for f in folder.iterdir() if f.is_file()]
    segments = sorted(folder.glob(SEGMENTS))
    layers, images, records = EmbeddingCache(folder.parent, folder.name).contents()  # reads, writes nothing
    return CacheEntry(
        fingerprint=folder.name,
        path=folder,
        backbone=str(meta.get("backbone", "?")),
        weights=str(meta.get("weights", "?")),
        layers=tuple(key.replace("|", " ") for key in layers),
        images=images,
        records=records,
        bytes=sum(f.stat().st_size for f in files),
        last_written=max((s.stat().st_mtime for s in segments), default=None),
        in_use=folder.name in in_use,
    )


def prune(
    cache_dir: str | Path,
    *,
    keep: set[str] | None = None,
    older_than_days: float | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Remove fingerprint folders: those not in ``keep`` (when given) and last written more than
    ``older_than_days`` ago (when given). At least one of the two must be given; ``clear`` removes all."""
    if keep is None and older_than_days is None:
        raise ValueError("say what to keep: the fingerprints in use, an age, or both (or clear the whole cache)")
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    result = PruneResult()
    for entry in cache_info(cache_dir, keep):
        stale = cutoff is None or (entry.last_written or 0) < cutoff
        if (keep is not None and entry.in_use) or not stale:
            result.kept.append(entry)
        else:
            _remove(entry, result, dry_run)
    return result


def clear(cache_dir: str | Path, *, dry_run: bool = False) -> PruneResult:
    """Remove every fingerprint folder (each under its lock; busy ones are left and reported), and the records of
    what backbone specs resolved to (``_resolved/``: a run without them loads the model once and writes them)."""
    result = PruneResult()
    for entry in cache_info(cache_dir):
        _remove(entry, result, dry_run)
    if not dry_run:
        shutil.rmtree(Path(cache_dir) / "_resolved", ignore_errors=True)
    return result


def _remove(entry: CacheEntry, result: PruneResult, dry_run: bool) -> None:
    with hold_lock(entry.path, wait=False) as held:
        if not held:
            log.warning("%s is being written by a running embed; left alone", entry.path)
            result.busy.append(entry)
            return
        result.removed.append(entry)
        if not dry_run:
            # under the lock: a waiting embed then finds its lock file gone and starts a fresh folder
            shutil.rmtree(entry.path)
