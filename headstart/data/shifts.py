"""Domain shifts that turn a dataset into a shifted copy of itself (a transfer target).

A shift is a string in params.yaml, ``name[:argument]``, and shifts chain with ``+``:
``invert``, ``rotate:30``, ``blur:1.5``, ``noise:0.1`` (Gaussian, std as a fraction of 255, seeded by the
image), ``contrast:0.5``, ``grey`` and ``jpeg:30`` (re-compressed as a JPEG of that quality, 1-95). Example:
``shift: rotate:20+blur:0.8``. Shifts apply at the image's stored size (``blur`` is in pixels of that size).
The same shift of the same image gives the same pixels, so shifted copies are cached like any image.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from headstart.errors import UserError

__all__ = ["SHIFTS", "ShiftError", "parse_shift"]


class ShiftError(UserError, ValueError):
    """A shift string in params.yaml is not one headstart knows."""


def _invert(image: Image.Image, arg: float | None) -> Image.Image:
    return ImageOps.invert(image.convert("RGB") if image.mode not in ("L", "RGB") else image)


def _rotate(image: Image.Image, arg: float | None) -> Image.Image:
    return image.rotate(arg if arg is not None else 90.0, resample=Image.Resampling.BILINEAR, fillcolor=0)


def _blur(image: Image.Image, arg: float | None) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(arg if arg is not None else 1.0))


def _contrast(image: Image.Image, arg: float | None) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(arg if arg is not None else 0.5)


def _grey(image: Image.Image, arg: float | None) -> Image.Image:
    return image.convert("L")


def _noise(image: Image.Image, arg: float | None) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    seed = int.from_bytes(hashlib.blake2b(array.tobytes(), digest_size=8).digest(), "little")
    noisy = array + np.random.default_rng(seed).normal(0.0, 255.0 * (arg if arg is not None else 0.1), array.shape)
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8), mode=image.mode)


def _jpeg(image: Image.Image, arg: float | None) -> Image.Image:
    buffer = io.BytesIO()
    (image if image.mode in ("L", "RGB") else image.convert("RGB")).save(
        buffer, format="JPEG", quality=int(arg if arg is not None else 30)
    )
    out = Image.open(buffer)
    out.load()
    return out


SHIFTS: dict[str, Callable[[Image.Image, float | None], Image.Image]] = {
    "invert": _invert,
    "rotate": _rotate,
    "blur": _blur,
    "noise": _noise,
    "contrast": _contrast,
    "grey": _grey,
    "jpeg": _jpeg,
}
# arguments a shift refuses: (check, what it takes)
_LIMITS: dict[str, tuple[Callable[[float], bool], str]] = {
    "blur": (lambda v: v > 0, "a radius in pixels > 0"),
    "noise": (lambda v: v >= 0, "a standard deviation >= 0 (a fraction of 255)"),
    "contrast": (lambda v: v >= 0, "a factor >= 0 (1 leaves the image as it is)"),
    "jpeg": (lambda v: 1 <= v <= 95 and v == int(v), "a JPEG quality, an integer from 1 to 95"),
}


def parse_shift(spec: str) -> Callable[[Image.Image], Image.Image]:
    """Turn ``"rotate:30+blur:1"`` into a function of a PIL image.

    >>> from PIL import Image
    >>> parse_shift("invert")(Image.new("L", (2, 2), 10)).getpixel((0, 0))
    245
    """
    steps = []
    for part in spec.split("+"):
        name, _, arg = part.strip().partition(":")
        if name not in SHIFTS:
            raise ShiftError(
                f"unknown shift '{name}' in '{spec}'; known shifts: {', '.join(SHIFTS)} "
                "(name[:argument], chained with +)"
            )
        try:
            value = float(arg) if arg else None
        except ValueError:
            raise ShiftError(f"shift '{part}' has a non-numeric argument '{arg}'") from None
        if value is not None and name in _LIMITS and not _LIMITS[name][0](value):
            raise ShiftError(f"shift '{part}': {name} takes {_LIMITS[name][1]}, got {arg}")
        steps.append((SHIFTS[name], value))

    def apply(image: Image.Image) -> Image.Image:
        for fn, value in steps:
            image = fn(image, value)
        return image

    return apply
