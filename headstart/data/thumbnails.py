"""The pixels an audit looks at: each row's image (from its file, or from a prepared table's bytes), a
perceptual hash of it, and a small PNG thumbnail for a page.

The hash is imagehash's 64-bit DCT hash (``phash``), the signature de-duplication tools compare: re-saving,
resizing and JPEG re-compression move it by a few bits, a different picture by about half of them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
from PIL import Image

from headstart.data.images import UnreadableImage, decode_image

__all__ = ["THUMBNAIL_SIDE", "perceptual_hash", "row_images", "thumbnail_png"]

THUMBNAIL_SIDE = 96


def row_images(frame: pd.DataFrame, stored: Mapping[str, bytes | None] | None = None) -> Iterator[Image.Image | None]:
    """Each row's image as RGB, in row order: ``stored[id]`` (a prepared table's bytes) when given, else the file
    at ``path``; ``None`` for a text row or an image that cannot be read any more."""
    texts = frame["text"].notna().to_numpy() if "text" in frame.columns else None
    for i, (item_id, path) in enumerate(zip(frame["id"], frame["path"])):
        if texts is not None and texts[i]:
            yield None
            continue
        source: Any = (stored or {}).get(item_id) or (path if isinstance(path, str) and path else None)
        try:
            yield decode_image(source) if source is not None else None
        except UnreadableImage:
            yield None


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT hash of ``image`` as an unsigned integer."""
    import imagehash  # the audit extra

    return int(str(imagehash.phash(image, hash_size=8)), 16)


def thumbnail_png(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """``image`` scaled so its longer side is ``side`` (small images enlarged with sharp pixels), as PNG bytes."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS
    buffer = io.BytesIO()
    image.resize(size, resample).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
