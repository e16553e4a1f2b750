"""What runs inside Ray's workers for the Ray engine (:mod:`headstart.features.ray_engine`).

``work_items`` (on the driver) cuts the images to embed into the local engine's batches, a few per work item;
``decode_batches`` reads and decodes them with the local reader's code, one output row per batch; ``Embedder``
(actors) runs each batch through the local engine's forward pass. On GPUs ``decode_batches`` runs as CPU tasks
beside the GPU actors; on CPUs the actors decode their own work items (``decode=`` kwargs), so that each CPU
reads, decodes and embeds, as a forward worker of the local engine does, and no pixel crosses the object store.
Rows cross the object store as bytes and JSON, so nothing depends on Ray's tensor extension types.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from pyarrow import fs

from headstart.data.tables import read_prepared_images
from headstart.features.forward import Forward, select_device
from headstart.features.reader import Batch, ImageDataset, Item, collate, items_of

__all__ = ["UNIT_IMAGES", "Embedder", "decode_batches", "work_items"]

UNIT_IMAGES = 64  # images per work item (whole batches): a few seconds of one CPU, so the last ones end together


def work_items(
    prepared: pd.DataFrame, todo: list[str], batch_size: int, prepared_path: str | None, workers: int = 1
) -> list[dict]:
    """The local engine's batches (sorted ids, ``batch_size`` at a time), a few per work item, and at least one
    work item for each of ``workers`` where there are batches enough."""
    items = items_of(prepared, todo)
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    per_unit = max(1, min(UNIT_IMAGES // batch_size, -(-len(batches) // workers)))
    units = []
    for u in range(0, len(batches), per_unit):
        unit = []
        for batch in batches[u : u + per_unit]:
            # with the prepared table on shared storage, the workers read the bytes themselves
            unit.append([(item.id, item.path, None if prepared_path else item.image,
                          item.image is not None and bool(prepared_path)) for item in batch])  # fmt: skip
        units.append({"unit": len(units), "batches": pickle.dumps(unit), "source": prepared_path or ""})
    return units



def decode_batches(
    units: dict[str, np.ndarray], transform: Any, max_pixels: int, reduce_to: int | None = None
) -> dict[str, list]:
    """CPU task: read and decode the images of some batches; one output row per batch (the local reader's code)."""
    out: dict[str, list] = {"ids": [], "pixels": [], "dtype": [], "shape": [], "failures": [], "decode_seconds": []}
    for batch in _decoded(units, transform, max_pixels, reduce_to):
        pixels = batch.pixels.numpy() if batch.pixels is not None else np.zeros((0,), np.float32)
        out["ids"].append(json.dumps(batch.ids))
        out["pixels"].append(np.ascontiguousarray(pixels).tobytes())  # 8-bit for split presets: 4x fewer bytes
        out["dtype"].append(pixels.dtype.str)
        out["shape"].append(json.dumps(list(pixels.shape)))
        out["failures"].append(json.dumps(batch.failures))
        out["decode_seconds"].append(batch.decode_seconds)
    return out


def _decoded(units: Mapping[str, Any], transform: Any, max_pixels: int, reduce_to: int | None) -> Iterator[Batch]:
    """The batches of some work items, read and decoded as the local reader does."""
    for blob, source in zip(units["batches"], units["source"], strict=True):
        batches = pickle.loads(blob)
        wanted = [i for rows in batches for i, _, _, read in rows if read]
        stored = read_prepared_images(str(source), wanted) if wanted else {}
        for rows in batches:
            items = [Item(i, path, stored.get(i) if read else image) for i, path, image, read in rows]
            dataset = ImageDataset([_fetch(item) for item in items], transform, max_pixels, reduce_to)
            yield collate([dataset[k] for k in range(len(dataset))])


def _fetch(item: Item) -> Item:
    """An image on object storage (``s3://...``) is read through pyarrow's filesystems, then decoded as bytes."""
    if item.image is not None or item.path is None or "://" not in item.path:
        return item
    try:
        filesystem, where = fs.FileSystem.from_uri(item.path)
        with filesystem.open_input_stream(where) as stream:
            return Item(item.id, item.path, stream.read())
    except (OSError, ValueError):
        return item  # the decoder reports it as unreadable, with the path


class Embedder:
    """Actor: the truncated backbone, run on each batch by the local engine's forward pass (one thread on a CPU,
    padded to ``rows``, on ``device``: ``cpu`` or ``cuda``). With ``decode`` (``decode_batches``' keyword
    arguments) it takes work items and decodes them itself; without, the rows of ``decode_batches``."""

    def __init__(  # noqa: PLR0913
        self, extractor: Any, keys: Mapping, precision: str, rows: int, finish: Any = None, device: str = "cpu",
        decode: Mapping[str, Any] | None = None,
    ) -> None:
        import ray

        self.forward = Forward(extractor, keys, select_device(device), precision, rows, finish)
        self.forward.enter_worker()
        self.decode = dict(decode) if decode is not None else None
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list]:
        self.forward.enter_worker()  # Ray may call from another thread than the constructor's
        out: dict[str, list] = {
            "ids": [], "failures": [], "vectors": [], "layers": [], "node": [], "seconds": [], "decode_seconds": []
        }  # fmt: skip
        for ids, pixels, failures, decoding in self._batches(rows):
            got: dict[str, np.ndarray] = {}
            seconds = 0.0
            if ids:
                got, seconds = self.forward(pixels)
            out["ids"].append(json.dumps(ids))
            out["failures"].append(failures)
            out["vectors"].append(b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in got.values()))
            out["layers"].append(json.dumps([[key, int(a.shape[1])] for key, a in got.items()]))
            out["node"].append(self.node)
            out["seconds"].append(seconds)
            out["decode_seconds"].append(decoding)
        return out

    def _batches(self, rows: dict[str, np.ndarray]) -> Iterator[tuple[list[str], Any, str, float]]:
        """``(ids, pixels, failures as JSON, decoding seconds)`` per batch: decoded here, or as ``decode_batches``
        sent them."""
        if self.decode is not None:
            for batch in _decoded(rows, **self.decode):
                yield batch.ids, batch.pixels, json.dumps(batch.failures), batch.decode_seconds
            return
        for ids, pixels, dtype, shape, failures, seconds in zip(
            rows["ids"], rows["pixels"], rows["dtype"], rows["shape"], rows["failures"], rows["decode_seconds"],
            strict=True,
        ):
            array = np.frombuffer(pixels, dtype=np.dtype(dtype)).reshape(json.loads(shape))
            yield json.loads(ids), torch.from_numpy(array.copy()), failures, float(seconds)
