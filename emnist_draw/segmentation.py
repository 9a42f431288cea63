"""Is a candidate one whole character? The string reader's learned segmentation score.

The reader proposes every run of 1-4 neighbouring primitives (strokes, or an image's column runs)
as a candidate character. Most are not one: a stroke of an H, a K's arm, two letters merged, a
letter with its neighbour's first stroke. This model says how likely a candidate is one whole
character, from what sets those apart: its size and place on the line (and how far its bottom
lies above the baseline: a 7's crossbar or an E's middle bar does), the empty gaps inside it,
how far the primitives just outside it overlap it (the other half of an H lies over it; the next
letter does not), and how sure the CNN is of what it reads there. It is a small MLP trained on
candidates of the UNIPEN tune writers' strings whose characters are known
(`python -m emnist_draw.train_segmentation`); its weights ship as JSON beside the CNN and run in
NumPy (no torch at serving).

The search adds `log_odds` (x WHOLE_WEIGHT in reader.py) to each character of a path, so a split
of an H into "IZ" pays for two candidates that are each unlikely to be whole, and a merge of two
letters for one that has a gap and a second shape inside it.

The gate is a second such model over the GEOMETRY alone, trained on the same candidates: known
before a candidate is rendered, it lets the reader skip the rendering and the CNN for runs of
primitives that are plainly not one character (reader.GATE): a quarter to a third of a string's
candidates.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from emnist_draw.status import widest_gap

MODEL_FILE = Path(__file__).parent / "models" / "whole-character.json"
GATE_FILE = Path(__file__).parent / "models" / "candidate-gate.json"
# How many primitives on each side are looked at for overlap: a character has at most 4.
NEIGHBOURS = 4
FEATURES = ("parts", "width", "height", "log_aspect", "top", "bottom", "gap_inside",
            "overlap_inside", "overlap_left", "overlap_right", "gap_left", "gap_right",
            "first", "last", "best_log_prob", "second_log_prob", "entropy", "columns",
            "rise")
# What the CNN says of a candidate; the rest (GEOMETRY) is known before it is rendered.
CONFIDENCE = ("best_log_prob", "second_log_prob", "entropy")
GEOMETRY = tuple(f for f in FEATURES if f not in CONFIDENCE)
_GEOMETRY_COLUMNS = [FEATURES.index(f) for f in GEOMETRY]
_CONFIDENCE_COLUMNS = [FEATURES.index(f) for f in CONFIDENCE]


def features(boxes: np.ndarray, spans: Sequence[tuple[int, int]], line_height: float,
             logits: np.ndarray | None = None, columns: bool = False) -> np.ndarray:
    """One row of FEATURES per candidate span [a, b) over the x-sorted primitive `boxes`
    (x0, y0, x1, y1), lengths in line heights; `logits`: the CNN's for each candidate, all 47
    classes, whatever a read's hints (its own uncalibrated probabilities are what it is sure
    of), or None before the CNN has read them (the CONFIDENCE columns are then NaN, and only the
    gate can read the rows); `columns`: the primitives are an image's column runs (which never
    overlap), not pen strokes."""
    n = len(boxes)
    top, bottom = boxes[:, 1].min(), boxes[:, 3].max()
    line_base = baseline(boxes)
    rows = np.full((len(spans), len(FEATURES)), np.nan)
    for row, (a, b) in enumerate(spans):
        part = boxes[a:b]
        box = np.r_[part[:, :2].min(0), part[:, 2:].max(0)]
        width, height = box[2] - box[0], box[3] - box[1]
        inside = max((_overlap(part[k], part[k + 1], line_height) for k in range(len(part) - 1)),
                     default=0.0)
        left = boxes[max(a - NEIGHBOURS, 0):a]
        right = boxes[b:min(b + NEIGHBOURS, n)]
        rows[row, _GEOMETRY_COLUMNS] = (
            b - a, width / line_height, height / line_height,
            np.log((width + 0.02 * line_height) / (height + 0.02 * line_height)),
            (box[1] - top) / line_height, (bottom - box[3]) / line_height,
            widest_gap(zip(part[:, 0], part[:, 2])) / line_height, inside,
            max((_overlap(box, other, line_height) for other in left), default=0.0),
            max((_overlap(box, other, line_height) for other in right), default=0.0),
            np.clip((box[0] - left[:, 2].max()) / line_height, -1, 1) if len(left) else 1.0,
            np.clip((right[:, 0].min() - box[2]) / line_height, -1, 1) if len(right) else 1.0,
            a == 0, b == n, columns, (line_base - box[3]) / line_height)
    if logits is not None:
        rows = with_confidence(rows, logits)
    return rows


def with_confidence(rows: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """`features` rows with their CONFIDENCE columns from the CNN's logits for each."""
    exp = np.exp(logits - logits.max(1, keepdims=True))
    log_probs = np.log(np.maximum(exp / exp.sum(1, keepdims=True), 1e-12))
    ranked = np.sort(log_probs, axis=1)
    entropy = -(np.exp(log_probs) * log_probs).sum(1)
    rows = rows.copy()
    rows[:, _CONFIDENCE_COLUMNS] = np.c_[ranked[:, -1], ranked[:, -2], entropy]
    return rows


def baseline(boxes: np.ndarray) -> float:
    """Where a line's characters stand: the median bottom of its primitives' boxes (x0, y0, x1,
    y1), as most primitives end on the baseline (a t's bar, an i's dot and a g's tail do not)."""
    return float(np.median(boxes[:, 3]))


def _overlap(one: np.ndarray, other: np.ndarray, line_height: float) -> float:
    """How much two boxes' x-extents overlap, as a share of the narrower one's width."""
    shared = min(one[2], other[2]) - max(one[0], other[0])
    narrower = max(min(one[2] - one[0], other[2] - other[0]), 0.1 * line_height)
    return max(float(shared), 0.0) / narrower


class WholeCharacter:
    """A trained model: some of FEATURES (its file names them), standardized -> a hidden layer
    (ReLU) -> log odds of whole. The whole-character model reads them all, the gate GEOMETRY."""

    def __init__(self, path: str | Path = MODEL_FILE):
        data = json.loads(Path(path).read_text())
        unknown = [f for f in data["features"] if f not in FEATURES]
        if unknown or len(data["features"]) != len(data["mean"]):
            raise ValueError(f"{path}: trained on features {data['features']}, this code computes "
                             f"{list(FEATURES)}: retrain it (python -m emnist_draw.train_segmentation)")
        self.columns = [FEATURES.index(f) for f in data["features"]]
        self.mean = np.asarray(data["mean"])
        self.scale = np.asarray(data["scale"])
        self.layers = [(np.asarray(w), np.asarray(b)) for w, b in data["layers"]]
        self.info = {k: v for k, v in data.items() if k not in ("mean", "scale", "layers")}

    def log_odds(self, rows: np.ndarray) -> np.ndarray:
        """log P(whole) / P(not whole) per row of `features`."""
        x = (rows[:, self.columns] - self.mean) / self.scale
        for k, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if k < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return x[:, 0]


@lru_cache(maxsize=1)
def default() -> WholeCharacter:
    """The shipped whole-character model, loaded once per process."""
    return WholeCharacter()


@lru_cache(maxsize=1)
def gate() -> WholeCharacter:
    """The shipped gate (GEOMETRY only), loaded once per process."""
    return WholeCharacter(GATE_FILE)
