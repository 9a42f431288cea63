"""Ink -> the model's 28x28 input, made the way EMNIST made its images.

EMNIST (Cohen et al. 2017) turned each 128x128 NIST image into 28x28 by: a Gaussian blur
(sigma 1), a crop to the character's bounding box, centring it in a square frame that keeps
the aspect ratio, a 2-pixel border, bicubic downsampling, and scaling intensities to 0-255.
`normalize` does those steps for any greyscale array; strokes, images and the old demo's
784 pixels all reach it, so the page, the API, evaluation and tests see one pipeline.

Everything returned is upright (row 0 is the top of the character), white ink on black, uint8.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

SIZE = 28
# In EMNIST images the ink's bounding box spans 24 of the 28 pixels (median, at 12% of the
# peak intensity): the 2-pixel border on each side.
INK_SIZE = 24
# Work at 4x the output, near NIST's 128 pixels, so EMNIST's sigma-1 blur means the same here.
WORK_SIZE = 4 * SIZE
BLUR_SIGMA = 1.0
# Pixels above this fraction of the peak make the character's bounding box. Chosen by the
# round trip of 1,500 EMNIST test images through the pixels path: median error per pixel
# 4.5 grey levels at 0.05, 6.2 at 0.08, 7.5 at 0.12, 10 at 0.16 (lower gains nothing, as
# NOISE_THRESHOLD clears those pixels anyway).
ROI_THRESHOLD = 0.05
# Images and pixels only: below this fraction of the peak is paper texture or JPEG noise.
NOISE_THRESHOLD = 0.05
# ... and below this many standard deviations of the border's noise above the paper (a robust
# estimate: 1.4826 x the median absolute deviation). A photo's sensor noise is a few grey levels
# everywhere; left in, it inks every column of a line (one run: nothing read; 0 of 200 pictures
# of composed strings with noise of 6 grey levels, blur and JPEG, 67% with this floor against
# 74% clean). Clean images (EMNIST's, the page's) have no such noise: nothing changes for them.
NOISE_SIGMAS = 5.0
# A floor above this many grey levels is no paper noise: ink or a pattern crosses the border (a
# comb of 1-pixel lines has half its border inked), and the floor is not used.
MAX_NOISE_FLOOR = 100.0
# Pen width as a fraction of the ink's longer side. Chosen on the UNIPEN "tune" writers
# (3,000 checked samples) against 30,000 EMNIST images: at 0.125 the rendered characters
# match EMNIST's mean intensity (43.9 vs 44.3), ink fraction above 127 (0.177 vs 0.168) and
# stroke thickness (2 * ink area / ink perimeter: 2.23 vs 2.38 pixels). The provisional
# model's accuracy is flat from 0.10 to 0.21 (70.1-70.9%) and lower for thinner pens (69.3%
# at 0.08, 67.5% at 0.06), so the statistics decide.
STROKE_WIDTH = 0.125
# Strokes are drawn at this many pixels along the longer side, 4x supersampled, then reduced.
RENDER_SIZE = 96
SUPERSAMPLE = 4


class InkError(ValueError):
    """The input holds no ink or cannot be read; the message says what to fix."""


def normalize(gray: np.ndarray) -> np.ndarray:
    """White ink on black, any size, any scale -> the (28, 28) uint8 EMNIST-style image."""
    g = np.asarray(gray, dtype=np.float32)
    if g.ndim != 2 or g.size == 0:
        raise InkError(f"expected a 2-D greyscale image, got shape {g.shape}")
    if not np.isfinite(g).all():
        raise InkError("the image holds NaN or infinite values")
    g = np.clip(g, 0, None)
    peak = float(g.max())
    if peak <= 0:
        raise InkError("the canvas is empty: draw a character")
    g = g / peak

    rows = np.flatnonzero((g > ROI_THRESHOLD).any(1))
    cols = np.flatnonzero((g > ROI_THRESHOLD).any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # Square frame around the box's centre, sized so the longer side fills INK_SIZE of SIZE:
    # a "1" stays a thin bar in the middle, a "-" a flat one, as in EMNIST.
    frame = max(bottom - top, right - left) * SIZE / INK_SIZE
    y0, x0 = (top + bottom - frame) / 2, (left + right - frame) / 2
    # Cut out the frame, padding with background where it overhangs the image (Pillow's resize
    # box must lie inside the image); never more than the frame, whatever the image's size.
    iy0, ix0 = math.floor(y0), math.floor(x0)
    iy1, ix1 = math.ceil(y0 + frame), math.ceil(x0 + frame)
    h, w = g.shape
    cut = np.pad(g[max(iy0, 0):iy1, max(ix0, 0):ix1],
                 ((max(-iy0, 0), max(iy1 - h, 0)), (max(-ix0, 0), max(ix1 - w, 0))))
    box = (x0 - ix0, y0 - iy0, x0 - ix0 + frame, y0 - iy0 + frame)
    work = Image.fromarray(cut, mode="F").resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BICUBIC,
                                                 box=box)
    blur_and_shrink = _blur_and_shrink()
    small = np.clip(blur_and_shrink @ np.asarray(work) @ blur_and_shrink.T, 0, None)
    return np.round(small * (255 / small.max())).astype(np.uint8)


def strokes_to_input(strokes: Sequence[Sequence[Sequence[float]]],
                     canvas_size: tuple[float, float] | None = None) -> np.ndarray:
    """Pen strokes (lists of [x, y] points, y grows downwards, any units) -> (28, 28) uint8.

    The pen width is a fixed fraction of the ink's bounding box, so the result does not depend
    on the canvas or the tablet's units; `canvas_size` is accepted for API compatibility only.
    (A pen fixed to the writer's scale, which would make small characters bolder, read UNIPEN
    no better: 71.3% vs 71.1% on 3,000 tuning samples.) A single point is drawn as a disc.
    """
    del canvas_size  # the ink's own bounding box sets the scale (see STROKE_WIDTH)
    points = parse_strokes(strokes)
    longest = float(np.ptp(np.concatenate(points), axis=0).max())
    return normalize(_draw(points, STROKE_WIDTH * longest))


def image_to_input(image: bytes | Image.Image) -> np.ndarray:
    """An image of a character (PNG, JPEG, WebP, ...; either polarity; alpha) -> (28, 28) uint8."""
    return normalize(image_to_ink(image))


def image_to_ink(image: bytes | Image.Image) -> np.ndarray:
    """An image (either polarity; alpha) -> its ink as a float array, white on black, with the
    background and faint noise removed: what `normalize` takes, for one character or a line."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            image = Image.open(io.BytesIO(bytes(image)))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise InkError(f"not an image: send PNG, JPEG or WebP ({e})") from e
    elif not isinstance(image, Image.Image):
        raise InkError(f"not an image: send PNG, JPEG or WebP bytes, got {type(image).__name__}")
    return _gray_to_ink(_flatten(image))


def pixels_to_input(pixels: Sequence[float]) -> np.ndarray:
    """784 values 0-255, row-major 28x28 upright, white ink on black -> (28, 28) uint8.

    The values go through the same path as images: a small drawing in a corner comes out
    centred and scaled like EMNIST.
    """
    try:
        values = np.asarray(pixels, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise InkError(f"pixels must be 784 numbers from 0 to 255 ({e})") from e
    if values.size != SIZE * SIZE:
        raise InkError(f"pixels must be 784 values from 0 to 255, got {values.size}")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        bad = values[~(np.isfinite(values) & (values >= 0) & (values <= 255))][0]
        raise InkError(f"pixels must be 784 values from 0 to 255, got {bad:g}")
    return normalize(_gray_to_ink(values.reshape(SIZE, SIZE)))


# ---------------------------------------------------------------- helpers


def parse_strokes(strokes: Sequence) -> list[np.ndarray]:
    """Strokes as arrays of [x, y] points; empty strokes dropped, bad ones refused."""
    if strokes is None or len(strokes) == 0:
        raise InkError("the canvas is empty: draw a character")
    points = []
    for i, stroke in enumerate(strokes):
        try:
            xy = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InkError(f"stroke {i}: points must be [x, y] numbers ({e})") from e
        if xy.size == 0:
            continue  # a pen-down with no movement recorded: nothing to draw
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise InkError(f"stroke {i}: each point must be [x, y], got shape {xy.shape}")
        if not np.isfinite(xy).all():
            raise InkError(f"stroke {i}: coordinates must be finite numbers")
        points.append(xy)
    if not points:
        raise InkError("the canvas is empty: draw a character")
    return points


def _draw(points: list[np.ndarray], pen: float) -> np.ndarray:
    """Strokes drawn antialiased with a round pen `pen` units wide; the ink's longer side
    becomes RENDER_SIZE pixels. A lone dot (no extent) becomes a disc."""
    everything = np.concatenate(points)
    low, high = everything.min(0), everything.max(0)
    longest = float((high - low).max())
    # A span of a few subnormal numbers (1e-320) would scale to infinity: that ink is a dot.
    if longest > 0 and math.isfinite(RENDER_SIZE * SUPERSAMPLE / longest):
        scale = RENDER_SIZE * SUPERSAMPLE / longest
    else:  # normalize scales the disc up anyway: any size will do
        scale, pen = RENDER_SIZE * SUPERSAMPLE * STROKE_WIDTH, 1.0
    pen_px = max(pen * scale, 1.0)
    width, height = ((high - low) * scale + 2 * pen_px).astype(int) + 2
    canvas = Image.new("L", (int(width), int(height)), 0)
    draw = ImageDraw.Draw(canvas)
    r = pen_px / 2
    for stroke in points:
        # As Python floats: the same numbers as numpy's, but the loop below is 40% faster.
        xy = ((stroke - low) * scale + pen_px).tolist()
        if len(xy) > 1:
            draw.line([tuple(p) for p in xy], fill=255, width=max(round(pen_px), 1))
        # Discs at every point give round caps and joins, which Pillow's lines lack.
        for x, y in xy:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    # Box-averaging the supersampled pixels antialiases the edges.
    return np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32)


def _flatten(image: Image.Image) -> np.ndarray:
    """Greyscale float array; transparency is filled with the colour opposite to the ink."""
    image = image.convert("RGBA") if image.mode in ("P", "PA", "LA", "RGBa", "La") or (
        "transparency" in image.info) else image
    if image.mode == "RGBA":
        rgba = np.asarray(image, dtype=np.float32)
        alpha = rgba[..., 3] / 255
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        opaque = alpha > 0.5
        if opaque.all():
            return gray
        # Ink drawn on a transparent canvas: its colour decides the background. Dark ink
        # (the usual canvas export: black strokes, transparent elsewhere) goes onto white.
        ink = gray[opaque] if opaque.any() else gray
        background = 255.0 if np.median(ink) < 128 else 0.0
        return gray * alpha + background * (1 - alpha)
    return np.asarray(image.convert("L"), dtype=np.float32)


def _gray_to_ink(gray: np.ndarray) -> np.ndarray:
    """Fix polarity, drop the background and faint noise."""
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    background = float(np.median(border))
    # Ink is the minority of the border: a light border means dark ink on light paper.
    if background > 127:
        gray, background, border = 255 - gray, 255 - background, 255 - border
    noise_floor = NOISE_SIGMAS * 1.4826 * float(np.median(np.abs(border - background)))
    if noise_floor > MAX_NOISE_FLOOR:
        noise_floor = 0.0
    ink = np.clip(gray - background, 0, None)
    peak = float(ink.max())
    if peak < max(255 * NOISE_THRESHOLD, noise_floor):
        raise InkError("the image is blank: no ink found (draw a darker or thicker character)")
    ink[ink < max(peak * NOISE_THRESHOLD, noise_floor)] = 0
    return ink


@lru_cache(maxsize=1)
def _blur_and_shrink() -> np.ndarray:
    """The (SIZE, WORK_SIZE) matrix B with B @ work @ B.T == downsample(blur(work)).

    Both steps are linear and separable, so they are built once, by running them on the unit
    vectors, and a request costs two small matrix products (5x faster than doing the steps).
    The blur: EMNIST's Gaussian, zero padding (the frame's border is background anyway). The
    downsampling: Pillow's bicubic, which widens its kernel with the scale (antialiased) as
    MATLAB's imresize that EMNIST used does.
    """
    radius = max(1, math.ceil(3 * BLUR_SIGMA))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-x ** 2 / (2 * BLUR_SIGMA ** 2))
    blurred = np.stack([np.convolve(unit, kernel / kernel.sum(), mode="same")
                        for unit in np.eye(WORK_SIZE)]).astype(np.float32)
    columns = [np.asarray(Image.fromarray(row[None, :], mode="F")
                          .resize((SIZE, 1), Image.Resampling.BICUBIC))[0] for row in blurred]
    return np.stack(columns, axis=1)
