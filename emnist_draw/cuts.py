"""Where touching characters meet in a picture of a line: the image reader's learned cuts.

A picture has no strokes, so the reader's primitives are runs of inked columns, and characters
that touch (tightly written, or a pen wider than the gap) are one run. Their joins are often
two vertical edges side by side, as inked as any column of a letter, so no column profile finds
them. This small fully convolutional network looks at the line's band (its ink resampled to
ROWS pixels high) and says, for each column, how likely the best straight cut between two
characters lies there. The reader cuts runs at its confident peaks; a cut too many is harmless
(the search reads up to 4 pieces as one character, and the whole-character model knows pieces),
a cut too few leaves two characters unreadable.

It is trained on pictures of strings composed from the UNIPEN tune writers' characters, where
each character's ink, and so the column that misassigns least of it, is known
(`python -m emnist_draw.train_cuts`); it ships as ONNX and runs in ONNX Runtime.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

MODEL_FILE = Path(__file__).parent / "models" / "cuts.onnx"
ROWS = 32             # the band's height: the line's ink resampled to this many pixels
THRESHOLD = 0.2       # a peak this likely is a cut: on 600 tune pictures, flat from 0.1 to 0.5
PEAK_RADIUS = 4       # band columns (1/8 of a line height) a peak must top on each side
MARGIN = 2            # band columns kept clear of a run's ends: a sliver is no character
# A band longer than this (128 line heights; a 30-character line is about 25) is not cut: the
# network's work grows with it, and so long a line is read as its runs are.
MAX_COLUMNS = 4096


def band(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """The line's ink rows resampled to ROWS high, the aspect kept, scaled to [0, 1]; and how
    many ink columns one band column spans."""
    rows = np.flatnonzero(ink.any(1))
    strip = np.asarray(ink[rows[0]:rows[-1] + 1], dtype=np.float32)
    height, width = strip.shape
    columns = max(1, round(width * ROWS / height))
    small = np.asarray(Image.fromarray(strip, mode="F").resize((columns, ROWS),
                                                                Image.Resampling.BOX))
    return small / max(float(small.max()), 1e-9), width / columns


class Cuts:
    """The trained network: a band (1, 1, ROWS, W) -> a logit per column (1, W)."""

    def __init__(self, path: str | Path = MODEL_FILE):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the CNN's: scale with processes
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def probabilities(self, small: np.ndarray) -> np.ndarray:
        """How likely each band column is where two characters meet."""
        logits = self.session.run(None, {"band": small[None, None].astype(np.float32)})[0][0]
        return 1 / (1 + np.exp(-logits))

    def cut(self, ink: np.ndarray, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The runs of inked columns [x0, x1), each cut where characters meet in it."""
        small, factor = band(ink)
        if small.shape[1] > MAX_COLUMNS:
            return runs
        likely = self.probabilities(small)
        # A cut is a column likelier than every other within PEAK_RADIUS of it.
        padded = np.pad(likely, PEAK_RADIUS)
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * PEAK_RADIUS + 1)
        peaks = np.flatnonzero((likely >= THRESHOLD) & (likely == windows.max(1)))
        at = np.round((peaks + 0.5) * factor).astype(int)
        out = []
        for x0, x1 in runs:
            inside = at[(at > x0 + MARGIN * factor) & (at < x1 - MARGIN * factor)]
            bounds = [x0, *np.unique(inside).tolist(), x1]
            out += zip(bounds[:-1], bounds[1:])
        return out


@lru_cache(maxsize=1)
def default() -> Cuts:
    """The shipped network, loaded on the first picture read."""
    return Cuts()
