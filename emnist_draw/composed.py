"""Strings written with real writers' isolated characters, for measuring the string reader and
training its whole-character model (emnist_draw.segmentation).

Real multi-character ink with its characters known is scarce (UNIPEN has 12,810 segmented words,
and few codes or made-up words), so strings of every kind people write are also composed: the
isolated UNIPEN characters of one writer (where one wrote them all) laid on one baseline at their
kind's height (unipen.compose), some tightly spaced. The stroke indices of each character are
known, so each candidate of the reader is known to be one whole character or not.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from emnist_draw.language import load_words
from emnist_draw.unipen import compose, load_samples

SPACINGS = {"normal": 0.25, "tight": 0.03}


KINDS = ("number", "word", "code", "made-up", "capitals", "mix")
# The goal's three kinds (numbers, words, codes) and the harder ones no list holds.
TIGHT_SHARE = 0.3


def _word_pool(size: int = 5000) -> list[str]:
    """Common words: the language model's list's most frequent words of 3-8 letters."""
    words, counts = load_words()
    ranked = sorted(zip(counts, words), reverse=True)
    return [w for _, w in ranked if 3 <= len(w) <= 8][:size]


def _made_up(rng, known: set[str]) -> str:
    """A pronounceable word that is not in the list: consonant-vowel syllables ("blorf")."""
    onsets = ["b", "bl", "br", "d", "dr", "f", "fl", "g", "gr", "k", "l", "m", "n", "p", "pr",
              "r", "s", "st", "t", "tr", "v", "z"]
    while True:
        word = "".join(onsets[rng.integers(len(onsets))] + "aeiou"[rng.integers(5)]
                       for _ in range(rng.integers(2, 4)))
        word += "" if rng.random() < 0.5 else "nrstlkf"[rng.integers(7)]
        if word not in known and len(word) <= 9:
            return word


def make_text(kind: str, rng, pool: list[str], known: set[str]) -> str:
    """One string of a kind, as people write it (with case)."""
    upper, lower, digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"
    pick = lambda chars, n: "".join(chars[i] for i in rng.integers(len(chars), size=n))  # noqa: E731
    if kind == "number":
        return pick(digits, int(rng.integers(4, 9)))
    if kind in ("word", "made-up"):
        word = pool[rng.integers(len(pool))] if kind == "word" else _made_up(rng, known)
        form = rng.random()
        return word if form < 0.5 else word.capitalize() if form < 0.75 else word.upper()
    if kind == "code":  # AB12C, R2D2, 7KX9: capitals and digits, at least one of each
        while True:
            text = pick(upper + digits, int(rng.integers(4, 7)))
            if any(c.isdigit() for c in text) and any(c.isalpha() for c in text):
                return text
    if kind == "capitals":
        return pick(upper, int(rng.integers(3, 7)))
    while True:  # mix: lower-case letters and digits
        text = pick(lower + digits, int(rng.integers(4, 7)))
        if any(c.isdigit() for c in text) and any(c.isalpha() for c in text):
            return text


def composed_strings(count: int, part: str = "measure", seed: int = 0,
                     with_owners: bool = False,
                     spacings: dict[str, float] | None = None) -> list[tuple]:
    """(kind, text, spacing, strokes): `count` strings, the kinds in turn, written with the part's
    writers' isolated characters (one writer per string where one wrote all its characters);
    `with_owners` adds, per character, the indices of its strokes. The spacing is tight for
    TIGHT_SHARE of them, else normal (SPACINGS), or any of `spacings`, each as likely."""
    rng = np.random.default_rng(seed)
    by_writer = defaultdict(lambda: defaultdict(list))
    for sample in load_samples(part, "OK"):
        by_writer[sample.writer][sample.char].append(sample)
    writers = sorted(by_writer)
    pool = _word_pool()
    known = set(load_words()[0])
    out = []
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        text = make_text(kind, rng, pool, known)
        fits = [w for w in writers if all(by_writer[w][c] for c in text)]
        pools = [by_writer[fits[rng.integers(len(fits))]]] if fits else [by_writer[w] for w in writers]
        chars = []
        for c in text:
            options = [s for p in pools for s in p[c]]
            chars.append(options[rng.integers(len(options))])
        if spacings:
            spacing = sorted(spacings)[rng.integers(len(spacings))]
        else:
            spacing = "tight" if rng.random() < TIGHT_SHARE else "normal"
        strokes, owners = compose(chars, gap=(spacings or SPACINGS)[spacing])
        out.append((kind, text, spacing, strokes, owners) if with_owners else
                   (kind, text, spacing, strokes))
    return out


def line_image(strokes: list, cap_height: float = 100.0,
               only: Sequence[int] | None = None, pen: float = 0.06) -> Image.Image:
    """The strokes drawn black on white, as a scan or a photo of the line would show them: a pen
    `pen` of the capitals' height wide, a margin of half of it. `only`: draw just these strokes,
    in the frame of all of them (one character's ink where it lies in the line's picture)."""
    points = np.concatenate([np.asarray(s, float) for s in strokes])
    low, high = points.min(0), points.max(0)
    pen, margin = pen * cap_height, 0.5 * cap_height
    width, height = (high - low + 2 * margin).astype(int) + 1
    image = Image.new("L", (int(width), int(height)), 255)
    draw = ImageDraw.Draw(image)
    for k, stroke in enumerate(strokes):
        if only is not None and k not in only:
            continue
        xy = [tuple(p) for p in (np.asarray(stroke, float) - low + margin)]
        if len(xy) > 1:
            draw.line(xy, fill=0, width=round(pen), joint="curve")
        for x, y in (xy[0], xy[-1]):
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=0)
    return image


def photographed(picture: Image.Image, rng: np.random.Generator, blur: float = 1.2,
                 noise: float = 6.0, quality: int = 60) -> bytes:
    """A picture as a phone photo shows it: blurred (`blur` pixels), on grey paper at less
    contrast, with sensor noise (`noise` grey levels), saved as a JPEG of `quality`."""
    gray = np.asarray(picture.convert("L").filter(ImageFilter.GaussianBlur(blur)), np.float32)
    gray = np.clip(0.8 * gray + 30 + rng.normal(0, noise, gray.shape), 0, 255)
    out = io.BytesIO()
    Image.fromarray(gray.astype(np.uint8)).save(out, "JPEG", quality=quality)
    return out.getvalue()
