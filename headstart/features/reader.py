"""Reading and decoding images in DataLoader workers, in parallel with the forward pass.

A broken image never stops the loader: its slot comes back as a failure with the reason, and the batch
carries on with the images that decoded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from headstart.data.images import UnreadableImage, decode_image

__all__ = ["Batch", "ImageDataset", "Item", "auto_workers", "collate", "cpu_cores", "items_of", "make_loader"]


@dataclass(frozen=True)
class Item:
    """One image to embed: its content id and either its file path or its encoded bytes."""

    id: str
    path: str | None
    image: bytes | None


def items_of(prepared: pd.DataFrame, ids: Sequence[str]) -> list[Item]:
    """The :class:`Item` of each of ``ids`` in a prepared table (its first row per id; ``image`` only where the
    table has that column)."""
    first = prepared.drop_duplicates("id").set_index("id")
    paths = dict(zip(first.index, first["path"], strict=True))  # not first.at[...] per image: 10x slower
    images = dict(zip(first.index, first["image"], strict=True)) if "image" in first.columns else {}
    return [Item(i, _none(paths[i]), _none(images.get(i))) for i in ids]


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


@dataclass
class Batch:
    ids: list[str]
    pixels: torch.Tensor | None
    failures: list[tuple[str, str]]
    decode_seconds: float


class ImageDataset(Dataset):
    """Decodes and preprocesses :class:`Item` s; returns ``(id, tensor | None, error | None, seconds)``.

    ``reduce_to``: decode JPEGs at a reduced scale whose shorter side stays at least this (the transform's
    resize); ``None`` decodes every image in full.
    """

    def __init__(
        self,
        items: Sequence[Item],
        transform: Callable[[Any], torch.Tensor],
        max_pixels: int,
        reduce_to: int | None = None,
    ) -> None:
        self.items = list(items)
        self.transform = transform
        self.max_pixels = max_pixels
        self.reduce_to = reduce_to

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor | None, str | None, float]:
        item = self.items[index]
        start = time.perf_counter()
        try:
            source = item.image if item.image is not None else item.path
            if source is None:
                raise UnreadableImage("neither a path nor image bytes")
            tensor = self.transform(decode_image(source, self.max_pixels, self.reduce_to))
            return item.id, tensor, None, time.perf_counter() - start
        except UnreadableImage as err:
            return item.id, None, str(err), time.perf_counter() - start
        except Exception as err:  # noqa: BLE001 - a transform failing on one odd image must not stop the run
            return item.id, None, f"{type(err).__name__}: {err}", time.perf_counter() - start


def collate(samples: list[tuple[str, torch.Tensor | None, str | None, float]]) -> Batch:
    ids = [s[0] for s in samples if s[1] is not None]
    tensors = [s[1] for s in samples if s[1] is not None]
    failures = [(s[0], s[2] or "unknown error") for s in samples if s[1] is None]
    return Batch(
        ids=ids,
        pixels=torch.stack(tensors) if tensors else None,
        failures=failures,
        decode_seconds=sum(s[3] for s in samples),
    )


def auto_workers(device: torch.device, batches: int) -> int:
    """Decoding worker processes feeding a GPU: up to 8, one core left to the main process.

    On a CPU, ``num_workers: auto`` is decided by measurement instead (:mod:`headstart.features.balance`).
    """
    cpus = _cpus()
    if batches <= 1:
        return 0
    if device.type == "cuda":
        return max(1, min(8, cpus - 1))
    return max(1, cpus // 8)


def cpu_cores() -> int:
    """The cores this process may run on."""
    return _cpus()


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_loader(dataset: ImageDataset, batch_size: int, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """Batches in dataset order (sorted by id), decoded by ``num_workers`` processes."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=4, persistent_workers=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        **kwargs,
    )
