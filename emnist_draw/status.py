"""How sure a reading is: one status per answer, from the calibrated probabilities and the ink.

    ok                  read; the confidence is what the probability says (see calibration.py)
    ambiguous           the leading candidates are EMNIST look-alikes (0/O, 1/I/L, ...): the
                        shape alone cannot settle it; a character set or the string around can
    unsure              low confidence, no look-alike to blame
    not_a_character     a tap, a dot, a scribble: refused, whatever the model would say of it
    several_characters  more than one character: /api/read reads strings

The model answers every image with some class, so refusing is the ink's business: a dot comes
out of preprocessing as a filled disc (read "O / o" at 61%), a scribble as a dense blot. The
thresholds were chosen on UNIPEN's tune writers and on non-characters made with one seed, and
measured on the measure writers and another seed (bench/status.py; docs/accuracy.md): they sit
where no real character of the tune part falls, not at the edge of the non-characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

STATUSES = ("ok", "ambiguous", "unsure", "not_a_character", "several_characters")
# The pairs the model confuses most on the pool's validation part and on UNIPEN's tune writers
# (emnist-draw evaluate --confusion): the same shape, told apart only by context.
LOOK_ALIKES = ("0O", "1IL", "2Z", "5S", "9gq", "6bG", "Ff", "Tt", "UV")
# Calibrated: below one half, the answer is more likely wrong than right.
UNSURE_BELOW = 0.5
# A look-alike runner-up with at least this probability makes the answer ambiguous. On the tune
# writers 7% of answers are then ambiguous and 61% of those right, against 98% of the "ok" ones;
# at 0.1 twice as many would be flagged for little (67% right), at 0.3 half (56%).
AMBIGUOUS_RUNNER_UP = 0.2
# Ink whose longer side is under this fraction of the canvas's shorter side is a tap or a dot
# (the tune part's characters, written on a pad, span 40-90% of it).
TINY_EXTENT = 0.04
# Without a canvas there is nothing to compare the ink's size with; a tap sent to the API is then
# told by what a mouse or finger leaves: a few points within a few units (pixels, as a page or a
# tablet reports them). Clients that send coordinates of a unit square send a canvas too.
DOT_POINTS = 4
DOT_UNITS = 3.0
# Pen travel over the ink's longer side: UNIPEN characters stay under 5.6 ("M", "m", "B"), a
# scribble goes over 6 in 97 of 100.
SCRIBBLE_TRAVEL = 6.0
# Mean brightness of the 28x28 input: characters stay under 0.30 when drawn from strokes and
# under 0.42 in EMNIST's scans; a point drawn as a disc is 0.48, a scribble often more.
DENSE_INK = 0.42
# Several characters are only looked for in ink at least this much wider than tall.
SEVERAL_ASPECT = 1.0


@dataclass(frozen=True)
class Ink:
    """What the ink's shape says, apart from what the model reads in it."""

    tiny: bool = False      # a tap or a dot on the canvas
    scribble: bool = False  # more pen travel than any character needs
    wide: bool = False      # wide enough to be several characters side by side ...
    apart: bool = False     # ... and parts of it apart, an empty column between them
    several: bool = False   # ... and the string reader reads more than one there


def strokes_ink(points: Sequence[np.ndarray], canvas: tuple[float, float] | None = None) -> Ink:
    """The shape facts of parsed strokes (preprocess.parse_strokes); `canvas`: (width, height)."""
    everything = np.concatenate(points)
    extent = np.ptp(everything, axis=0)
    longest = float(extent.max())
    travel = sum(float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) for p in points)
    if canvas is not None:
        tiny = longest < TINY_EXTENT * min(canvas)
    else:
        tiny = len(everything) <= DOT_POINTS and longest <= DOT_UNITS
    return Ink(tiny=tiny,
               scribble=longest > 0 and travel > SCRIBBLE_TRAVEL * longest,
               wide=bool(extent[0] >= SEVERAL_ASPECT * max(float(extent[1]), 1e-9)),
               apart=widest_gap([(p[:, 0].min(), p[:, 0].max()) for p in points]) > 0)


def image_ink(ink: np.ndarray) -> Ink:
    """The shape facts of an image's ink (preprocess.image_to_ink): only its width can be told."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if not rows.size:
        return Ink()
    return Ink(wide=bool(cols[-1] - cols[0] + 1 >= SEVERAL_ASPECT * (rows[-1] - rows[0] + 1)),
               apart=bool(len(cols) < cols[-1] - cols[0] + 1))


def widest_gap(spans: Iterable[tuple[float, float]]) -> float:
    """The widest empty stretch inside the union of (x0, x1) extents: characters side by side
    leave one, a character's own strokes (the bar of a 4, the dot of an i) cross each other's."""
    intervals = sorted(spans)
    reach, gap = intervals[0][1], 0.0
    for x0, x1 in intervals[1:]:
        gap = max(gap, x0 - reach)
        reach = max(reach, x1)
    return float(gap)


def judge(probabilities: np.ndarray, classes: Sequence[str], image: np.ndarray,
          ink: Ink = Ink()) -> tuple[str, list[int]]:
    """The status of one answer and, when ambiguous, the look-alike classes (indices, most
    likely first, the answer among them). `probabilities`: calibrated, over the classes;
    `image`: the (28, 28) uint8 input the model read."""
    if ink.tiny or ink.scribble or float(image.mean()) / 255 > DENSE_INK:
        return "not_a_character", []
    if ink.several:
        return "several_characters", []
    ranked = np.argsort(-probabilities, kind="stable")
    first, second = ranked[0], ranked[1]
    group = next((g for g in LOOK_ALIKES if classes[first] in g), "")
    if classes[second] in group and probabilities[second] >= AMBIGUOUS_RUNNER_UP:
        alike = [int(i) for i in ranked[:len(group)]
                 if classes[i] in group and probabilities[i] >= AMBIGUOUS_RUNNER_UP]
        return "ambiguous", alike
    if probabilities[first] < UNSURE_BELOW:
        return "unsure", []
    return "ok", []
