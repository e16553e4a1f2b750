"""Image folders for the embedding benchmarks, generated once into ``.headstart/bench`` (git-ignored).

Small images: each 28x28 Fashion-MNIST garment (read by headstart's own IDX reader where `headstart datasets` finds it; scikit-learn's
8x8 digits when they are absent) is upscaled, coloured and composited at a random place and scale on a noisy
colour gradient, so files are neither tiny nor trivially compressible; 3 in 4 are JPEG (quality 90), 1 in 4 PNG.
A folder of N images (``root/<class>/<file>``) is made of hard links to the first N generated files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from _report import idx_dataset, mib, usable_cores

FMNIST_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def shapes() -> tuple[str, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(name, grey shapes, labels, class names): Fashion-MNIST when present, else scikit-learn's digits."""
    try:
        images, labels = idx_dataset("fashion-mnist")
        return "fashion-mnist", images, labels, FMNIST_CLASSES
    except SystemExit:
        pass
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * 255 / 16).astype(np.uint8)
    return "digits", images, digits.target, tuple(f"digit-{i}" for i in range(10))


def file_name(index: int) -> str:
    return f"{index:06d}.png" if index % 4 == 3 else f"{index:06d}.jpg"


def render(shape: np.ndarray, index: int, size: int) -> Any:
    """One RGB image: the shape, coloured, at a random place and scale on a noisy colour gradient."""
    from PIL import Image

    rng = np.random.default_rng(index)
    top, bottom = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    background = np.rot90(np.broadcast_to(top + (bottom - top) * ramp, (size, size, 3)), k=rng.integers(0, 4))
    side = int(size * rng.uniform(0.55, 1.0))
    mask = np.asarray(Image.fromarray(shape).resize((side, side), Image.BICUBIC), dtype=np.float32) / 255.0
    y, x = rng.integers(0, size - side + 1, size=2)
    alpha = np.zeros((size, size, 1), np.float32)
    alpha[y : y + side, x : x + side, 0] = np.clip(mask * 1.4, 0.0, 1.0)
    shade = np.zeros((size, size, 1), np.float32)
    shade[y : y + side, x : x + side, 0] = mask
    foreground = rng.uniform(0, 255, size=3).astype(np.float32) * (0.35 + 0.65 * shade)
    pixels = background * (1.0 - alpha) + foreground * alpha + rng.normal(0.0, 6.0, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), mode="RGB")


def _render_job(job: tuple[np.ndarray, int, int, str]) -> int:
    shape, index, size, target = job
    image = render(shape, index, size)
    tmp = f"{target}.{os.getpid()}.tmp"
    image.save(tmp, format="PNG", compress_level=6) if target.endswith(".png") else image.save(
        tmp, format="JPEG", quality=90
    )
    os.replace(tmp, target)
    return os.path.getsize(target)


def small_folder(data_dir: Path, count: int, size: int, tag: str = "") -> Path:
    """An image folder ``root/<class>/<file>`` of ``count`` generated images of ``size`` px (made once).

    ``tag`` names a separate copy (new inodes, so nothing is in the page cache from an earlier run)."""
    name, images, labels, classes = shapes()
    if count > len(images) * 8:
        raise SystemExit(f"at most {len(images) * 8} images can be made from {name}, asked for {count}")
    base = data_dir / f"{name}-{size}px"
    root = base / f"n{count}{tag}"
    marker = root.with_name(root.name + ".complete")
    if marker.is_file() and root.is_dir():
        return root
    pool_dir = base / "pool"
    pool_dir.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(count) if not (pool_dir / file_name(i)).is_file()]
    if todo:
        print(f"generating {len(todo)} images of {size}x{size} px in {pool_dir} ...", end=" ", flush=True)
        start = time.perf_counter()
        jobs = [(images[i % len(images)], i, size, str(pool_dir / file_name(i))) for i in todo]
        with Pool(max(1, usable_cores())) as pool:
            sizes = list(pool.imap_unordered(_render_job, jobs, chunksize=64))
        print(f"{time.perf_counter() - start:.1f} s, {mib(sum(sizes)) * 1024 / len(sizes):.0f} KiB per file")
    if root.exists():
        shutil.rmtree(root)
    for label in classes:
        (root / label).mkdir(parents=True)
    for i in range(count):
        source, target = pool_dir / file_name(i), root / classes[labels[i % len(images)]] / file_name(i)
        if tag:
            shutil.copyfile(source, target)
        else:
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
    marker.write_text(json.dumps({"images": count, "size": size}))
    return root


def folder_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def describe_folder(root: Path) -> str:
    from PIL import Image

    files = folder_files(root)
    sizes = [p.stat().st_size for p in files]
    jpg = sum(p.suffix.lower() in (".jpg", ".jpeg") for p in files)
    with Image.open(files[0]) as first:
        width, height = first.size
    return (
        f"{len(files)} files in {root} ({jpg} JPEG, {len(files) - jpg} PNG, {width}x{height} px, "
        f"{mib(sum(sizes)):.0f} MiB, {sum(sizes) / len(sizes) / 1024:.0f} KiB per file)"
    )
