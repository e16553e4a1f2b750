"""Embed data that is already in memory (PIL images, image files, texts), as sentence-transformers'
``model.encode(...)`` does, through the same engine, preprocessing, cache and fingerprint as ``headstart embed``.

>>> enc = Encoder("mobilenet_v2", layer="features.13")                    # doctest: +SKIP
>>> X = enc.encode([PIL.Image.open("cat.png"), "photos/dog/1.jpg"])        # doctest: +SKIP
>>> X.shape, X.dtype, enc.provenance["fingerprint"]                       # doctest: +SKIP
((2, 96), dtype('float32'), '...')

Each item is one of: a ``PIL.Image.Image`` (taken as it is, stored losslessly as PNG, so its pixels are what the
backbone sees), a ``pathlib.Path`` or a ``str`` naming an image file (decoded as ``headstart embed`` decodes it),
or any other ``str``: a text, for a text backbone. The vectors are the bits that an embedding table of the same
items holds: the engine runs the same batches, padded the same way.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from headstart.data.hashing import content_id, file_id
from headstart.data.sources import IMAGE_EXTENSIONS
from headstart.data.tables import load_embeddings
from headstart.data.text import text_id
from headstart.errors import UserError
from headstart.features.defaults import (
    DEFAULT_BACKBONE,
    DEFAULT_CACHE_DIR,
    DEFAULT_LAYER,
    DEFAULT_POOLING,
    DEFAULT_PRECISION,
    PRETRAINED,
    backbone_spec,
)
from headstart.features.engine import embed
from headstart.features.spec import BackboneSpec, EmbedOptions

__all__ = ["EncodeError", "Encoder", "items_frame"]

Item = Any  # a PIL image, a path to an image file, or a text


class EncodeError(UserError, ValueError):
    """An item cannot be encoded (an unreadable image, an empty text, an object of another type)."""


class Encoder:
    """A backbone cut at one layer, for items in memory: ``encode(items) -> (len(items), dim)`` float32.

    The arguments are those of :func:`headstart.embed`, with the same defaults
    (:mod:`headstart.features.defaults`); ``options`` are :class:`~headstart.features.EmbedOptions` fields
    (``batch_size``, ``num_workers``, ``device``). Items already in the per-image cache (``cache_dir``; ``None``
    for a throw-away one) are not embedded again. The model is loaded by each :meth:`encode` that has something
    to compute, so give it many items at once.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        weights: str | None = PRETRAINED,
        layer: str = DEFAULT_LAYER,
        pooling: str = DEFAULT_POOLING,
        image_size: int | None = None,
        resize_size: int | None = None,
        precision: str = DEFAULT_PRECISION,
        cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
        **options: Any,
    ) -> None:
        spec = backbone_spec(backbone, weights=weights, layers=(layer,), pooling=pooling, image_size=image_size,
                             resize_size=resize_size, precision=precision)  # fmt: skip
        self._setup(spec, EmbedOptions(cache_dir=cache_dir, **options))

    def _setup(self, spec: BackboneSpec, options: EmbedOptions) -> None:
        self.spec = spec
        self.options = options
        self.provenance: dict[str, Any] | None = None  # that of the last encode(): node, dim, fingerprint, ...

    @classmethod
    def from_spec(cls, spec: BackboneSpec, options: EmbedOptions = EmbedOptions()) -> Encoder:
        """An encoder for a spec already built (one layer, one pooling): a head's or a table's own settings."""
        encoder = cls.__new__(cls)
        encoder._setup(spec, options)
        return encoder

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint of the last :meth:`encode` (the one an embedding table of the same items records)."""
        return None if self.provenance is None else self.provenance["fingerprint"]

    def __repr__(self) -> str:
        s = self.spec
        return f"Encoder({s.arch!r}, weights={s.weights!r}, layer={s.layers[0]!r}, pooling={s.pooling!r})"

    def encode(self, items: Item | Sequence[Item]) -> np.ndarray:
        """The vectors of ``items`` (one item or a list), in their order: a C-contiguous float32 array."""
        listed = [items] if isinstance(items, (str, Path, Image.Image)) else list(items)
        if not listed:
            raise EncodeError("encode() was given no items; give PIL images, image paths or texts")
        frame = items_frame(listed)
        prepared = frame.sort_values(["id", "path"], kind="stable", na_position="first").reset_index(drop=True)
        with tempfile.TemporaryDirectory(prefix="headstart-encode-") as tmp:
            out = Path(tmp) / "encoded.parquet"
            result = embed(prepared, self.spec, single_file=out, options=self.options, dataset={"name": "encode"})
            if result.failures:
                bad = result.failures[0]
                where = frame.index[frame["id"] == bad["id"]][0]
                raise EncodeError(f"item {where} ({_describe(listed[where])}) cannot be encoded: {bad['error']}")
            table = load_embeddings(out)
        self.provenance = dict(table.provenance)
        row_of = {item_id: i for i, item_id in enumerate(table.frame["id"])}
        return np.ascontiguousarray(table.X[[row_of[i] for i in frame["id"]]], dtype=np.float32)


def items_frame(items: Sequence[Item]) -> pd.DataFrame:
    """A prepared-like frame (``id, label, split, path, text, image``) of in-memory items, in their order."""
    rows = []
    for n, item in enumerate(items):
        if isinstance(item, Image.Image):
            buffer = io.BytesIO()
            item.save(buffer, format="PNG")
            data = buffer.getvalue()
            rows.append((content_id(data), None, None, data))
        elif isinstance(item, Path) or (isinstance(item, str) and item.lower().endswith(IMAGE_EXTENSIONS)):
            if not Path(item).is_file():
                raise EncodeError(f"item {n}: image file {item} does not exist")
            rows.append((file_id(item), str(item), None, None))
        elif isinstance(item, str):
            if not item.strip():
                raise EncodeError(f"item {n} is an empty text")
            rows.append((text_id(item), None, item, item.encode("utf-8")))
        else:
            raise EncodeError(
                f"item {n} is a {type(item).__name__}; give PIL images, image paths (str or pathlib.Path) or texts"
            )
    frame = pd.DataFrame(rows, columns=["id", "path", "text", "image"])
    frame.insert(1, "label", None)
    frame.insert(2, "split", "")
    if frame["text"].isna().all():
        frame = frame.drop(columns="text")
    return frame[[c for c in ("id", "label", "split", "path", "image", "text") if c in frame.columns]]


def _describe(item: Item) -> str:
    if isinstance(item, Image.Image):
        return f"a {item.mode} image of {item.size[0]}x{item.size[1]}"
    text = str(item)
    return text if len(text) <= 60 else text[:57] + "..."
