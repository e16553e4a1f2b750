"""Fine-tuning data: the embed engine's own image dataset (``features/reader.py``), labels by image id, and
augmentation that is seeded per image.

Unreadable images are skipped the way the engine skips them (the loader's batches leave them out, with the
reason), so there is no separate decoding pass. Augmentation draws from torch's generator inside
``torch.random.fork_rng``, seeded from ``(seed, epoch, index)``: the same images get the same changes whatever
the number of workers, and the caller's global random state is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from headstart.data.images import DEFAULT_MAX_PIXELS
from headstart.errors import SettingsError
from headstart.features.reader import Batch, ImageDataset, Item, collate

__all__ = ["SPLITS", "TextLoader", "TrainingImages", "augmentation", "labelled_batches", "make_loaders"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def augmentation() -> Callable[[Any], Any]:
    """Light: small shifts, rotations, scale and lighting changes; no flips (they change digits and text)."""
    return v2.Compose(
        [
            v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
        ]
    )


class _Then:
    """``transform(augment(image))``, picklable for worker processes."""

    def __init__(self, augment: Callable[[Any], Any], transform: Callable[[Any], torch.Tensor]) -> None:
        self.augment, self.transform = augment, transform

    def __call__(self, image: Any) -> torch.Tensor:
        return self.transform(self.augment(image))


class TrainingImages(ImageDataset):
    """:class:`ImageDataset` over one split's rows, with their labels and optional augmentation (seeded per
    image and epoch). Item ids are row positions, so a label belongs to a row even if an image repeats."""

    def __init__(
        self,
        frame: pd.DataFrame,
        labels: Mapping[str, int],
        transform: Callable[[Any], torch.Tensor],
        augment: Callable[[Any], Any] | None = None,
        seed: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.augment = augment
        super().__init__(_items(frame), transform if augment is None else _Then(augment, transform), max_pixels)
        self.targets = [labels[label] for label in frame["label"]]
        self.seed = seed
        self.warned = False  # about unreadable images, once
        self.epoch = 0  # the training loop sets it before each pass (workers get a fresh copy each epoch)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor | None, str | None, float]:
        if self.augment is None:
            return super().__getitem__(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index)
            return super().__getitem__(index)


def _items(frame: pd.DataFrame) -> list[Item]:
    def none(value: Any) -> Any:
        return None if value is None or (isinstance(value, float) and value != value) else value

    image = frame["image"] if "image" in frame.columns else [None] * len(frame)
    return [Item(str(n), none(p), none(b)) for n, (p, b) in enumerate(zip(frame["path"], image, strict=True))]


class _Texts:
    """One split's text items and their labels (what :func:`labelled_batches` reads)."""

    def __init__(self, frame: pd.DataFrame, labels: Mapping[str, int]) -> None:
        self.items = _items(frame)
        self.targets = [labels[label] for label in frame["label"]]
        self.warned = False
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)


class TextLoader:
    """The batches of one split's texts as the text backbone forms them for embedding (texts of one token
    length together); train's are shuffled, seeded by ``(seed, epoch)``."""

    def __init__(self, batches: Callable[..., Any], frame: pd.DataFrame, labels: Mapping[str, int],
                 batch_size: int, seed: int | None) -> None:  # fmt: skip
        self.dataset = _Texts(frame, labels)
        self.batches = batches(self.dataset.items, batch_size, seed=seed)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Any:
        self.batches.epoch = self.dataset.epoch
        return iter(self.batches)


def make_loaders(
    prepared: pd.DataFrame,
    classes: list[str],
    transform: Callable[[Any], torch.Tensor],
    *,
    batch_size: int,
    num_workers: int,
    augment: bool,
    seed: int,
    text_batches: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """One loader per split of the items whose label the probe knows; train is shuffled with a seeded
    generator and augmented (if ``augment``). Texts (``text_batches``: the text backbone's batching) are
    batched by token length, never augmented."""
    labels = {c: i for i, c in enumerate(classes)}
    frame = prepared[prepared["label"].isin(labels)]
    loaders: dict[str, Any] = {}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        train = split == "train"
        if text_batches is not None:
            loaders[split] = TextLoader(text_batches, part, labels, batch_size, seed if train else None)
            continue
        dataset = TrainingImages(part, labels, transform, augmentation() if train and augment else None, seed=seed)
        loaders[split] = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            num_workers=num_workers,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(seed + SPLITS.index(split)),
        )
    if not len(loaders["train"].dataset) or not len(loaders["val"].dataset):
        raise SettingsError(
            "fine-tuning needs train and val items; give the dataset a val split (datasets.<name>.split.val, "
            "--val)"
        )
    return loaders


def labelled_batches(loader: Any) -> Any:
    """``(inputs, labels)`` per batch; unreadable items are left out (logged on the first pass)."""
    dataset = loader.dataset
    for batch in loader:
        batch: Batch
        if batch.failures and not dataset.warned:
            item = dataset.items[int(batch.failures[0][0])]
            log.warning("fine-tuning leaves out unreadable items, e.g. %s: %s", item.path, batch.failures[0][1])
            dataset.warned = True
        if batch.pixels is None:
            continue
        yield batch.pixels, torch.tensor([dataset.targets[int(i)] for i in batch.ids], dtype=torch.long)
