"""A small digits collection with planted faults: label flips in train and re-saved copies of test images in
train, written as PNG/JPEG files with a manifest (path, label, split), as a user's own data would be."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Planted:
    manifest: Path
    flipped: set[str]                # paths of train images given a wrong label
    copies: set[tuple[str, str]]     # (test original, train copy) paths


def resaved(pixels: np.ndarray, quality: int = 85) -> Image.Image:
    """A near-copy as tools make them: resized down and back up, re-encoded as JPEG."""
    image = Image.fromarray(pixels)
    side = image.width
    smaller = image.resize((side * 3 // 4, side * 3 // 4), Image.Resampling.BILINEAR).resize((side, side))
    buffer = io.BytesIO()
    smaller.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def plant_digits(root: Path, per_class: int = 60, flip: float = 0.05, copies: int = 10, size: int = 32,
                 seed: int = 0) -> Planted:  # fmt: skip
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    rows, flipped, pairs = [], set(), set()
    chosen = np.concatenate([rng.choice(np.flatnonzero(digits.target == c), per_class, replace=False)
                             for c in range(10)])  # fmt: skip
    rng.shuffle(chosen)
    splits = np.array(["train"] * 6 + ["val"] * 1 + ["test"] * 3)[np.arange(len(chosen)) % 10]
    images = {}
    for n, (i, split) in enumerate(zip(chosen, splits)):
        pixels = np.asarray(Image.fromarray(np.rint(digits.images[i] * 255 / 16).astype(np.uint8))
                            .resize((size, size), Image.Resampling.BILINEAR))  # fmt: skip
        path = root / "images" / f"{n:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        images[str(path)] = pixels
        rows.append([str(path), str(digits.target[i]), split])
    train = [r for r in rows if r[2] == "train"]
    for r in (train[j] for j in rng.choice(len(train), round(flip * len(train)), replace=False)):
        r[1] = str((int(r[1]) + rng.integers(1, 10)) % 10)
        flipped.add(r[0])
    test = [r for r in rows if r[2] == "test"]
    for k, r in enumerate(test[j] for j in rng.choice(len(test), copies, replace=False)):
        copy = root / "images" / f"copy_{k:03d}.jpg"
        resaved(images[r[0]]).save(copy, format="JPEG", quality=95)
        rows.append([str(copy), r[1], "train"])
        pairs.add((r[0], str(copy)))
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "split"], *rows])
    return Planted(manifest, flipped, pairs)
