"""Decoding: unusual modes are converted; broken files raise UnreadableImage with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.data.images import UnreadableImage, decode_image
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
