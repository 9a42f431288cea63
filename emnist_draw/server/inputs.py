"""Turn what a client sent (strokes, an image, pixels, the demo's string) into the 28x28 input.

The pixel work itself is emnist_draw.preprocess, the one place ink becomes model input; this module
decodes the transport (base64, data URLs, the demo's string) and refuses what is too big to decode.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np
from PIL import Image, UnidentifiedImageError

from emnist_draw.preprocess import InkError, image_to_input, pixels_to_input, strokes_to_input
from emnist_draw.server.schemas import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, N_PIXELS, PredictRequest

IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "WEBP")  # MPO: how Pillow names many phone cameras' JPEGs
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
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    if not data:
        raise InputError("the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only: size is known before decoding
    except (UnidentifiedImageError, OSError) as e:
        raise InputError("not an image: send a PNG, JPEG or WebP file") from e
    if image.format not in IMAGE_FORMATS:
        raise InputError(f"{image.format} images are not accepted; send PNG, JPEG or WebP")
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"the image is {width}x{height} pixels; the limit is "
                         f"{MAX_IMAGE_PIXELS:,} pixels in all")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as e:  # what PIL raises for a cut-off or corrupt file
        raise InputError(f"the {image.format} file is damaged or cut off ({e})") from e
    return image_to_input(image)


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


__all__ = ["InkError", "InputError", "decode_base64_image", "demo_string_to_input",
           "image_bytes_to_input", "request_to_input"]
