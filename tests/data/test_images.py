"""Decoding: unusual modes are converted; broken files raise UnreadableImage with the reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headstart.data.images import UnreadableImage, decode_image, encode_png, is_jpeg
from tests.conftest import broken_files


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, Path]:
    return broken_files(tmp_path)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated", "cannot decode"),
        ("empty", "not an image file"),
        ("text", "not an image file"),
        ("bomb", "decompression bomb"),
    ],
)
def test_broken_images_raise_with_the_reason(broken: dict[str, Path], name: str, reason: str) -> None:
    with pytest.raises(UnreadableImage, match=reason):
        decode_image(broken[name])


def test_cmyk_becomes_rgb(broken: dict[str, Path]) -> None:
    image = decode_image(broken["cmyk"])
    assert image.mode == "RGB" and image.size == (40, 40)


def test_16_bit_grey_is_rescaled_not_clipped(broken: dict[str, Path]) -> None:
    pixels = np.asarray(decode_image(broken["grey16"]))
    assert pixels.shape == (40, 40, 3)
    assert 0 < pixels.mean() < 255 and pixels.max() > 200 and len(np.unique(pixels)) > 50


def test_bytes_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match="file not found"):
        decode_image(tmp_path / "nope.png")
    with pytest.raises(UnreadableImage, match="not an image"):
        decode_image(b"\x00\x01")


def test_our_own_pixel_limit_names_the_setting(broken: dict[str, Path]) -> None:
    with pytest.raises(UnreadableImage, match="40x40 pixels is more than max_image_pixels=1000"):
        decode_image(broken["cmyk"], max_pixels=1000)


def _jpeg(width: int, height: int, seed: int = 0, orientation: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    exif = image.getexif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(
    "size, expected",
    [
        ((4032, 3024), (504, 378)),  # 1/8: the shorter side 378 >= 256
        ((600, 513), (300, 257)),  # just above twice the target: 1/2 still keeps 257 >= 256
        ((700, 511), (700, 511)),  # 1/2 would give 255.5 < 256: decoded in full
        ((300, 260), (300, 260)),
    ],
)
def test_a_jpeg_is_decoded_reduced_only_as_far_as_the_target_allows(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    image = decode_image(_jpeg(*size), reduce_to=256)
    assert image.size == expected
    assert min(image.size) >= 256


def test_reduced_decoding_applies_the_exif_rotation_after_scaling() -> None:
    data = _jpeg(1600, 1200, orientation=6)  # stored landscape, shown portrait
    assert decode_image(data).size == (1200, 1600)
    assert decode_image(data, reduce_to=256).size == (300, 400)


def test_reduced_decoding_leaves_png_in_full_and_full_decoding_is_unchanged(tmp_path: Path) -> None:
    png = encode_png(np.random.default_rng(1).integers(0, 256, (1200, 1600, 3), dtype=np.uint8))
    assert decode_image(png, reduce_to=256).size == (1600, 1200)
    data = _jpeg(1600, 1200)
    assert np.array_equal(np.asarray(decode_image(data)), np.asarray(decode_image(data, reduce_to=None)))
    reduced = np.asarray(decode_image(data, reduce_to=256), dtype=np.float64)
    assert reduced.shape == (300, 400, 3)
    path = tmp_path / "photo.png"  # a JPEG with the wrong name is still a JPEG
    path.write_bytes(data)
    assert is_jpeg(path) and is_jpeg(data) and not is_jpeg(png) and not is_jpeg(tmp_path / "missing.jpg")
