"""Turn what a client sent (strokes, an image, pixels, the demo's string) into the 28x28 input.

The pixel work itself is emnist_draw.preprocess, the one place ink becomes model input; this module
decodes the transport (base64, data URLs, the demo's string) and refuses what is too big to decode.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct

import numpy as np
from PIL import Image, UnidentifiedImageError

from emnist_draw.preprocess import InkError, image_to_input, pixels_to_input, strokes_to_input
from emnist_draw.server.schemas import (MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE,
                                        N_PIXELS, PredictRequest)

IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "WEBP")  # MPO: how Pillow names many phone cameras' JPEGs
# Larger images are reduced to this many pixels on their longer side before preprocessing, which
# works on a 112-pixel frame around the ink anyway: a 4096x4096 image otherwise costs a second of
# CPU and half a gigabyte of float arrays per request.
WORK_SIDE = 1024
# Besides OSError, what Pillow raises for files it cannot make sense of: ValueError (e.g. a PNG
# text chunk that decompresses too far), SyntaxError and struct.error (broken headers),
# DecompressionBombError (over twice Pillow's own pixel limit, before ours is even checked).
_UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, IndexError, TypeError,
               struct.error, Image.DecompressionBombError)
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,", re.ASCII)


class InputError(ValueError):
    """The request's content cannot be read as a character (a 4xx, with the reason)."""


def request_to_input(req: PredictRequest) -> np.ndarray:
    if req.strokes is not None:
        canvas = (req.canvas.width, req.canvas.height) if req.canvas else None
        return strokes_to_input(req.strokes, canvas_size=canvas)
    if req.image is not None:
        return image_bytes_to_input(decode_base64_image(req.image))
    return pixels_to_input(req.pixels)


def decode_base64_image(text: str) -> bytes:
    """A data URL ("data:image/png;base64,...") or bare base64 -> the file's bytes."""
    text = text.strip()
    match = _DATA_URL.match(text)
    if match:
        text = text[match.end():]
    elif text.startswith("data:"):
        raise InputError("'image' is a data URL but not a base64 one; send data:image/png;base64,...")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"'image' is not valid base64 ({e}); send a data URL or base64 of a "
                         "PNG, JPEG or WebP file") from e
    return data


def image_bytes_to_input(data: bytes) -> np.ndarray:
    return decode_image(open_image(data))


def open_image(data: bytes) -> Image.Image:
    """The image file's header read and checked (format, size); its pixels not yet decoded."""
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    if not data:
        raise InputError("the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only: size is known before decoding
    except Image.DecompressionBombError as e:
        raise InputError(f"the image is over the limit of {MAX_IMAGE_PIXELS:,} pixels in all "
                         f"({e})") from e
    except _UNREADABLE as e:
        raise InputError("not an image: send a PNG, JPEG or WebP file") from e
    if image.format not in IMAGE_FORMATS:
        raise InputError(f"{image.format} images are not accepted; send PNG, JPEG or WebP")
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
        raise InputError(f"the image is {width}x{height} pixels; the limit is "
                         f"{MAX_IMAGE_PIXELS:,} pixels in all and {MAX_IMAGE_SIDE} on a side")
    return image


def decode_image(image: Image.Image) -> np.ndarray:
    """An image from open_image -> the 28x28 input (the costly part: decoding and preprocessing)."""
    image = load_image(image)
    try:
        return image_to_input(image)
    except InkError:
        raise
    except (ValueError, OSError) as e:  # a mode Pillow cannot convert: still the file's fault
        raise InputError(f"the {image.format} image cannot be read ({e})") from e


def load_image(image: Image.Image) -> Image.Image:
    """An image from open_image, its pixels decoded, its longer side at most WORK_SIDE."""
    try:
        image.draft(image.mode, (WORK_SIDE, WORK_SIDE))  # JPEG only: decode at 1/2, 1/4 or 1/8
        image.load()
        return _reduced(image)
    except _UNREADABLE as e:  # what PIL raises for a cut-off or corrupt file
        raise InputError(f"the {image.format} file is damaged or cut off ({e})") from e


def _reduced(image: Image.Image) -> Image.Image:
    """The image with its longer side at most WORK_SIDE pixels (box-averaged, so thin ink stays)."""
    if max(image.size) <= WORK_SIDE:
        return image
    # Resample colours, never palette indices or 1-bit values; the same conversions as
    # preprocess._flatten makes, so the result reads the same.
    if image.mode in ("P", "PA", "LA", "RGBa", "La") or "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("L")
    image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return image


def demo_string_to_input(body: str) -> np.ndarray:
    """The original demo's body: "[0,0,...]", 784 comma-separated integers 0-255."""
    items = body.strip().removeprefix("[").removesuffix("]").split(",")
    if len(items) != N_PIXELS:
        raise InputError(f"the string must hold {N_PIXELS} comma-separated integers (28x28), "
                         f"it holds {len(items)} items")
    values = []
    for i, item in enumerate(items):
        try:
            values.append(int(item))
        except ValueError:
            raise InputError(f"item {i} of the string is {item.strip()[:20]!r}, not an integer "
                             "0-255") from None
    return pixels_to_input(values)


__all__ = ["InkError", "InputError", "decode_base64_image", "decode_image",
           "demo_string_to_input", "image_bytes_to_input", "open_image", "request_to_input"]
