"""Stable content ids: the same bytes give the same id on every machine and in every run."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["content_id", "file_id"]

_DIGEST_BYTES = 16  # 128-bit blake2b, printed as 32 hex digits


def content_id(data: bytes, prefix: str = "") -> str:
    """The id of an in-memory image: blake2b-128 of ``prefix`` and ``data``.

    >>> content_id(b"")
    'cae66941d9efbd404e4d88758ea67670'
    """
    digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    if prefix:
        digest.update(prefix.encode() + b"\0")
    digest.update(data)
    return digest.hexdigest()


def file_id(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """The id of an image file: the same as ``content_id(path.read_bytes())``, read in chunks."""
    digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
