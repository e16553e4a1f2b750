"""Decoding images safely: every image becomes 8-bit RGB or a clear :class:`UnreadableImage`.

Readable-but-unusual modes are converted (CMYK, palette, 16-bit and float grey, LA/RGBA); EXIF
orientation is applied; files that are not images, are truncated or would decompress to more than
``max_pixels`` pixels raise :class:`UnreadableImage` with the reason.

Reduced decoding (``reduce_to``): a JPEG is decoded by libjpeg at the smallest DCT scale (1/2, 1/4, 1/8) that
keeps its shorter side at least ``reduce_to`` pixels, which for a phone photo skips most of the decoding work
(benchmarks/photos.py measures it). Only JPEG has such scaling; PNG, TIFF, WebP and the rest are decoded in full.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from headstart.errors import UserError

__all__ = [
    "DECODE_MARGIN", "DEFAULT_MAX_PIXELS", "UnreadableImage", "decode_image", "encode_png", "is_jpeg", "reduce_target"
]

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default limit (about 0.25 GB of RGB): larger images are refused

# A JPEG is reduced only while its shorter side stays >= this many times the resize target, so the weights'
# antialiased resize still shrinks it at least 2x. On real photographs with MobileNetV2, reducing to the target
# itself changed some top-1 classes; with the 2x margin none changed (benchmarks/photos.py measures it).
DECODE_MARGIN = 2


def reduce_target(resize_size: object) -> int | None:
    """The ``reduce_to`` of :func:`decode_image` for a preprocessing that resizes to ``resize_size`` (an int
    shorter side); ``None`` (decode in full) for any other resize.

    >>> reduce_target(256), reduce_target([224, 224])
    (512, None)
    """
    return resize_size * DECODE_MARGIN if isinstance(resize_size, int) and not isinstance(resize_size, bool) else None


class UnreadableImage(UserError, ValueError):
    """An image file could not be turned into pixels; the message says why."""


def decode_image(
    source: bytes | str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, reduce_to: int | None = None
) -> Image.Image:
    """Open ``source`` (bytes or a path) as an 8-bit RGB PIL image.

    With ``reduce_to``, a JPEG whose shorter side is at least twice ``reduce_to`` is decoded at a reduced
    scale whose shorter side is still ``>= reduce_to`` (the size the caller resizes to next); EXIF orientation
    is applied after, to the smaller image (a rotation keeps the shorter side the shorter side).

    >>> decode_image(encode_png(np.zeros((8, 8), np.uint8))).mode
    'RGB'
    """
    if max_pixels > (Image.MAX_IMAGE_PIXELS or 0) * 2:
        Image.MAX_IMAGE_PIXELS = max_pixels  # the user raised the limit on purpose: let PIL follow
    try:
        stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")
    except FileNotFoundError as err:
        raise UnreadableImage(f"file not found: {source}") from err
    except OSError as err:
        raise UnreadableImage(f"cannot open: {err}") from err
    with stream, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(stream)
            width, height = image.size
            if width * height > max_pixels:
                raise UnreadableImage(
                    f"{width}x{height} pixels is more than max_image_pixels={max_pixels} "
                    "(a decompression bomb or a huge scan); raise embed.max_image_pixels "
                    "if it is genuine"
                )
            if reduce_to is not None and image.format == "JPEG":
                # libjpeg picks the largest 1/a (a in 8, 4, 2, 1) with a <= min(w, h) // reduce_to, and
                # rounds the scaled size up: the shorter side stays >= reduce_to.
                image.draft(None, (reduce_to, reduce_to))
            image.load()
        except UnreadableImage:
            raise
        except UnidentifiedImageError as err:
            raise UnreadableImage("not an image file PIL can identify") from err
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise UnreadableImage(f"decompression bomb: {err} Raise embed.max_image_pixels if it is genuine") from err
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise UnreadableImage(f"cannot decode: {err}") from err
        return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the pixels
        pass
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: PIL's convert("RGB") clips at 255; rescale the real range instead.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() <= 65535 else float(array.max())
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        lo, hi = float(array.min()), float(array.max())
        scaled = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
        image = Image.fromarray((scaled * 255.0 + 0.5).astype(np.uint8), mode="L")
    elif mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def is_jpeg(source: bytes | str | Path) -> bool:
    """Whether ``source`` (bytes or a path) starts like a JPEG file (its SOI marker), whatever its name.

    >>> is_jpeg(encode_png(np.zeros((8, 8), np.uint8)))
    False
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:3]) == _JPEG_SOI
    try:
        with open(source, "rb") as handle:
            return handle.read(3) == _JPEG_SOI
    except OSError:
        return False


_JPEG_SOI = b"\xff\xd8\xff"


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 grey (H, W) or RGB (H, W, 3) array as PNG bytes."""
    if array.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8 pixels, got {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
