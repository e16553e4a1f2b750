"""Shifts: the named image changes of a shifted dataset and of the robustness stage."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from headstart.data.prepare import shift_frame
from headstart.data.shifts import ShiftError, parse_shift


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), mode="RGB")


def test_jpeg_recompression_loses_detail_and_is_deterministic() -> None:
    image = _photo()
    low, high = parse_shift("jpeg:10")(image), parse_shift("jpeg:95")(image)
    error = [np.abs(np.asarray(x, dtype=float) - np.asarray(image, dtype=float)).mean() for x in (low, high)]
    assert error[0] > error[1] > 0  # quality 10 loses more than 95, and both lose something
    assert np.array_equal(np.asarray(parse_shift("jpeg:10")(image)), np.asarray(low))  # same image, same pixels
    assert low.size == image.size and low.mode == "RGB"
    buffer = io.BytesIO()
    parse_shift("jpeg:30")(image.convert("RGBA")).save(buffer, format="PNG")  # other modes become RGB first


def test_every_shift_keeps_the_size_and_noise_is_seeded_by_the_image() -> None:
    image = _photo()
    for spec in ("noise:0.03", "blur:1.0", "contrast:0.5", "rotate:15", "jpeg:30", "invert", "grey"):
        assert parse_shift(spec)(image).size == image.size, spec
    a, b = parse_shift("noise:0.1")(image), parse_shift("noise:0.1")(image)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(image))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("jpeg:0", "jpeg takes a JPEG quality, an integer from 1 to 95, got 0"),
        ("jpeg:30.5", "jpeg takes a JPEG quality"),
        ("blur:0", "blur takes a radius in pixels > 0"),
        ("noise:-1", "noise takes a standard deviation >= 0"),
        ("sharpen:2", "unknown shift 'sharpen'.*known shifts: invert, rotate, blur, noise, contrast, grey, jpeg"),
        ("rotate:x", "non-numeric argument 'x'"),
    ],
)
def test_bad_shifts_name_the_shift_and_what_it_takes(spec: str, message: str) -> None:
    with pytest.raises(ShiftError, match=message):
        parse_shift(spec)


def test_large_images_are_shifted_at_about_the_size_the_model_sees(tmp_path) -> None:
    from headstart.workflow.robustness import SHIFT_MARGIN, _input_side

    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (600, 900, 3), dtype=np.uint8)).save(big, quality=90)
    small = io.BytesIO()
    _photo().save(small, format="PNG")
    frame = pd.DataFrame(
        {"id": ["a", "b"], "label": ["x", "y"], "split": ["test"] * 2, "path": [str(big), None],
         "image": [None, small.getvalue()]}
    )  # fmt: skip
    out = shift_frame(frame, "noise:0.05", "t", max_side=128)
    sizes = [Image.open(io.BytesIO(b)).size for b in out["image"]]
    assert sizes == [(192, 128), (48, 32)]  # the photo reduced to a 128 px shorter side, the small one as stored
    assert list(shift_frame(frame, "noise:0.05", "t")["image"].map(lambda b: Image.open(io.BytesIO(b)).size)) == [
        (900, 600), (48, 32)
    ]  # fmt: skip
    from headstart.features.spec import BackboneSpec

    assert SHIFT_MARGIN * _input_side(BackboneSpec(arch="mobilenet_v2", image_size=64)) == 128
    assert _input_side(BackboneSpec(arch="mobilenet_v2")) == 256 and _input_side(
        BackboneSpec(arch="mobilenet_v2", image_size=224, resize_size=232)
    ) == 232
