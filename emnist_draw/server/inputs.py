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
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from emnist_draw.preprocess import (InkError, image_to_ink, normalize, pixels_to_input,
                                   strokes_to_input)
from emnist_draw.server.schemas import (MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE,
                                        N_PIXELS, PredictRequest)
from emnist_draw.deadline import check_time

IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "WEBP")  # MPO: how Pillow names many phone cameras' JPEGs
# Larger images are reduced to this many pixels on their longer side before preprocessing, which
# works on a 112-pixel frame around the ink anyway: a 4096x4096 image otherwise costs a second of
# CPU and half a gigabyte of float arrays per request.
WORK_SIDE = 1024
MIN_WORK_SIDE = 32
# Besides OSError, what Pillow raises for files it cannot make sense of: ValueError (e.g. a PNG
# text chunk that decompresses too far), SyntaxError and struct.error (broken headers),
# DecompressionBombError (over twice Pillow's own pixel limit, before ours is even checked).
_UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, IndexError, TypeError,
               struct.error, Image.DecompressionBombError)
# Pixels one batch may decode in all (header sizes, summed before any is decoded): two images at
# the single-image limit. 64 images of 4096x4096 took 4-22 s of CPU; this is under a second.
MAX_BATCH_PIXELS = 2 * MAX_IMAGE_PIXELS
# Pillow walks a PNG's chunks and a JPEG's marker segments in Python, at ~1.5 us each, at open
# and again at load: 150,000 empty tEXt chunks in 2 MiB held the event loop ~230 ms. A real file
# has a handful, plus one IDAT per 8-64 KB of pixel data (at most ~260 in 2 MiB at libpng's 8 KB).
MAX_IMAGE_CHUNKS = 1024
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,", re.ASCII)


class InputError(ValueError):
    """The request's content cannot be read as a character (a 4xx, with the reason)."""


def request_to_input(req: PredictRequest) -> np.ndarray:
    if req.strokes is not None:
        return strokes_to_input(req.points)
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
    _check_chunks(data)
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


def _check_chunks(data: bytes) -> None:
    """Refuse a PNG or JPEG made of more than MAX_IMAGE_CHUNKS chunks or segments, walking at
    most that many (cheap: one length read per chunk, no data touched)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        step, pos, kind = _png_chunk, 8, "chunks"
    elif data.startswith(b"\xff\xd8"):
        step, pos, kind = _jpeg_segment, 2, "marker segments"
    else:
        return  # WebP's few RIFF chunks are read by libwebp, in C
    for _ in range(MAX_IMAGE_CHUNKS):
        if pos + 4 > len(data):
            return
        pos += step(data, pos)
    if pos + 4 <= len(data):
        raise InputError(f"the image file is made of more than {MAX_IMAGE_CHUNKS:,} {kind}; a "
                         "picture needs far fewer: save it again as a plain PNG or JPEG")


def _png_chunk(data: bytes, pos: int) -> int:
    """The length of the PNG chunk at pos (length, type, data, CRC); the rest after IEND."""
    if data[pos + 4:pos + 8] == b"IEND":
        return len(data)
    return 12 + struct.unpack_from(">I", data, pos)[0]


def _jpeg_segment(data: bytes, pos: int) -> int:
    """The length of the JPEG marker segment at pos; the rest from the first scan on (its
    entropy-coded data is read in C) or from anything that is not a marker (Pillow judges it)."""
    if data[pos] != 0xFF or data[pos + 1] == 0xDA:
        return len(data)
    if data[pos + 1] == 0xFF:  # a fill byte
        return 1
    if 0xD0 <= data[pos + 1] <= 0xD7 or data[pos + 1] == 0x01:  # markers without a length
        return 2
    return 2 + struct.unpack_from(">H", data, pos + 2)[0]


def decode_image(image: Image.Image) -> np.ndarray:
    """An image from open_image -> the 28x28 input (the costly part: decoding and preprocessing)."""
    return normalize(decode_ink(image))


def decode_ink(image: Image.Image) -> np.ndarray:
    """An image from open_image -> its ink, white on black (what normalize and the string
    reader take)."""
    image = load_image(image)
    try:
        return image_to_ink(image)
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
    # The shorter side is not reduced below MIN_WORK_SIDE (or its own size): an 8192x3 image of a
    # line would become 1024x1, every pixel of it a border pixel, and its ink the "background".
    scale = WORK_SIDE / max(image.size)
    width, height = (max(round(side * scale), min(side, MIN_WORK_SIDE)) for side in image.size)
    return image.resize((width, height), Image.Resampling.BOX)


def batch_to_inputs(reqs: Sequence[PredictRequest]) -> list[np.ndarray]:
    """A batch's inputs, in order. Images are opened first (headers only) so that the batch's
    pixels are counted before any is decoded; between items the request's deadline is checked,
    so a batch whose answer would be dropped stops (security.check_time)."""
    opened: dict[int, Image.Image] = {}
    pixels = 0
    for i, req in enumerate(reqs):
        if req.image is not None:
            try:
                opened[i] = open_image(decode_base64_image(req.image))
            except InputError as e:
                raise InputError(f"input {i}: {e}") from e
            pixels += opened[i].size[0] * opened[i].size[1]
    if pixels > MAX_BATCH_PIXELS:
        raise InputError(f"the batch's images hold {pixels:,} pixels in all; the limit is "
                         f"{MAX_BATCH_PIXELS:,} per batch: send large images one at a time, or "
                         "smaller ones")
    images = []
    for i, req in enumerate(reqs):
        check_time()
        try:
            images.append(decode_image(opened[i]) if i in opened else request_to_input(req))
        except ValueError as e:  # InkError, InputError, or anything else the input caused
            raise InputError(f"input {i}: {e}") from e
    return images


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


__all__ = ["InkError", "InputError", "MAX_BATCH_PIXELS", "batch_to_inputs",
           "decode_base64_image", "decode_image", "decode_ink",
           "demo_string_to_input", "image_bytes_to_input", "open_image", "request_to_input"]
