"""The pixel signatures of a table's images, for the duplicate search (:mod:`.duplicates`): each image's 64-bit
perceptual hash and the low frequencies of its area-averaged grey thumbnail."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image

from headstart.data.tables import EmbeddingTable
from headstart.data.thumbnails import perceptual_hash, row_images
from headstart.heads.audit.duplicates import PIXEL_FREQUENCIES, PIXEL_SIDE, PixelSignatures, low_frequencies

__all__ = ["pixel_signatures"]


def pixel_signatures(table: EmbeddingTable, stored: Mapping[str, bytes | None] | None) -> PixelSignatures | None:
    """The signatures of ``table``'s images (``stored[id]`` bytes, else the file at ``path``); None when no row
    has an image (texts, or built-in images without their prepared table)."""
    hashes: list[int | None] = []
    low = np.zeros((len(table.frame), PIXEL_FREQUENCIES**2 - 1), dtype=np.float32)
    for i, image in enumerate(row_images(table.frame, stored)):
        hashes.append(perceptual_hash(image) if image is not None else None)
        if image is not None:
            grey = image.convert("L").resize((PIXEL_SIDE, PIXEL_SIDE), Image.Resampling.BOX)
            low[i] = low_frequencies(np.asarray(grey))
    return PixelSignatures(hashes, low) if any(h is not None for h in hashes) else None
