"""What runs inside Ray's workers for the Ray engine (:mod:`headstart.features.ray_engine`).

``work_items`` (on the driver) cuts the images to embed into the local engine's batches, a few per work item;
``decode_batches`` (CPU tasks) reads and decodes them with the local reader's code, one output row per batch;
``Embedder`` (actors) runs each batch through the local engine's forward pass. Rows cross the object store as bytes
and JSON, so nothing depends on Ray's tensor extension types.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from pyarrow import fs

from headstart.data.tables import read_prepared_images
from headstart.features.forward import Forward, select_device
from headstart.features.reader import ImageDataset, Item, collate

__all__ = ["UNIT_IMAGES", "Embedder", "decode_batches", "work_items"]

UNIT_IMAGES = 256  # images per read-and-decode task (whole batches)


def work_items(prepared: pd.DataFrame, todo: list[str], batch_size: int, prepared_path: str | None) -> list[dict]:
    """The local engine's batches (sorted ids, ``batch_size`` at a time), a few per work item."""
    first = prepared.drop_duplicates("id").set_index("id")
    has_image = "image" in first.columns
    per_unit = max(1, UNIT_IMAGES // batch_size)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    units = []
    for u in range(0, len(batches), per_unit):
        unit = []
        for ids in batches[u : u + per_unit]:
            rows = []
            for i in ids:
                path = _none(first.at[i, "path"])
                image = _none(first.at[i, "image"]) if has_image else None
                # with the prepared table on shared storage, the workers read the bytes themselves
                rows.append((i, path, None if prepared_path else image, image is not None and bool(prepared_path)))
            unit.append(rows)
        units.append({"unit": len(units), "batches": pickle.dumps(unit), "source": prepared_path or ""})
    return units


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def decode_batches(
    units: dict[str, np.ndarray], transform: Any, max_pixels: int, reduce_to: int | None = None
) -> dict[str, list]:
    """CPU task: read and decode the images of some batches; one output row per batch (the local reader's code)."""
    out: dict[str, list] = {"ids": [], "pixels": [], "dtype": [], "shape": [], "failures": [], "decode_seconds": []}
    for blob, source in zip(units["batches"], units["source"], strict=True):
        batches = pickle.loads(blob)
        wanted = [i for rows in batches for i, _, _, read in rows if read]
        stored = read_prepared_images(str(source), wanted) if wanted else {}
        for rows in batches:
            items = [Item(i, path, stored.get(i) if read else image) for i, path, image, read in rows]
            items = [_fetch(item) for item in items]
            dataset = ImageDataset(items, transform, max_pixels, reduce_to)
            batch = collate([dataset[k] for k in range(len(dataset))])
            pixels = batch.pixels.numpy() if batch.pixels is not None else np.zeros((0,), np.float32)
            out["ids"].append(json.dumps(batch.ids))
            out["pixels"].append(np.ascontiguousarray(pixels).tobytes())  # 8-bit for split presets: 4x fewer bytes
            out["dtype"].append(pixels.dtype.str)
            out["shape"].append(json.dumps(list(pixels.shape)))
            out["failures"].append(json.dumps(batch.failures))
            out["decode_seconds"].append(batch.decode_seconds)
    return out


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
    padded to ``rows``, on ``device``: ``cpu`` or ``cuda``)."""

    def __init__(  # noqa: PLR0913
        self, extractor: Any, keys: Mapping, precision: str, rows: int, finish: Any = None, device: str = "cpu"
    ) -> None:
        import ray

        self.forward = Forward(extractor, keys, select_device(device), precision, rows, finish)
        self.forward.enter_worker()
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, list]:
        self.forward.enter_worker()  # Ray may call from another thread than the constructor's
        out: dict[str, list] = {"ids": [], "failures": [], "vectors": [], "layers": [], "node": [], "seconds": []}
        for ids, pixels, dtype, shape in zip(rows["ids"], rows["pixels"], rows["dtype"], rows["shape"], strict=True):
            ids = json.loads(ids)
            got: dict[str, np.ndarray] = {}
            seconds = 0.0
            if ids:
                array = np.frombuffer(pixels, dtype=np.dtype(dtype)).reshape(json.loads(shape))
                got, seconds = self.forward(torch.from_numpy(array.copy()))
            out["ids"].append(json.dumps(ids))
            out["vectors"].append(b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in got.values()))
            out["layers"].append(json.dumps([[key, int(a.shape[1])] for key, a in got.items()]))
            out["node"].append(self.node)
            out["seconds"].append(seconds)
        out["failures"] = list(rows["failures"])
        return out
