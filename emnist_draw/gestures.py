"""Scratch-out: a zigzag drawn over earlier ink erases it, before anything is read.

A stroke is a scratch when its shape is a zigzag and it lies over earlier strokes:

- it turns back many times along one axis (REVERSALS or more reversals of x or of y, each a
  retreat of at least TURN of the stroke's extent on that axis, so a wobble is no turn);
- its pen travel is long for its size (TRAVEL times its longer side or more);
- earlier strokes lie under it: at least COVERED of a stroke's points inside the scratch's
  box (grown by MARGIN) erases that stroke, when the ink under it is not a speck beside it
  (COVERS of its size); a zigzag over nothing is ink, not a gesture.

Characters turn back too (M, W, m, w, E, 3, 8), but rarely more than three times along one
axis, and a character's strokes do not cover its own earlier ones; the thresholds were chosen on
UNIPEN's tune writers' isolated characters (none taken for a scratch, tests/test_gestures.py).
Cost: one pass over each stroke's points, then one box test per earlier stroke (n^2 / 2 box
tests for n strokes, at most 100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np

REVERSALS = 5     # turns back along one axis: three passes over the ink and back
TURN = 0.35       # x the stroke's extent on that axis: a retreat this long is a turn
TRAVEL = 4.0      # x the stroke's longer side: the pen travel of a scratch
COVERED = 0.6     # share of a stroke's points under the scratch that erases it
MARGIN = 0.1      # x the scratch's size: its box grown by this on each side
COVERS = 0.25     # x the scratch's size: the ink under it is at least this large (not a speck)
MIN_POINTS = 8    # fewer points than this cannot draw a zigzag


@dataclass(frozen=True)
class Shape:
    reversals: int  # the larger of the turns along x and along y
    travel: float   # pen travel over the longer side of the box


def shape(points: np.ndarray) -> Shape:
    """The zigzag facts of one stroke ((N, 2) points)."""
    if len(points) < MIN_POINTS:
        return Shape(0, 0.0)
    low, high = points.min(0), points.max(0)
    size = float((high - low).max())
    if size <= 0:
        return Shape(0, 0.0)
    travel = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) / size
    turns = max(_turns(points[:, axis], TURN * float(high[axis] - low[axis])) for axis in (0, 1))
    return Shape(turns, travel)


def is_zigzag(s: Shape) -> bool:
    return s.reversals >= REVERSALS and s.travel >= TRAVEL


def scratched(strokes: Sequence, keep: Collection[int] = ()) -> list[int]:
    """Indices of the strokes erased, in order: each scratch stroke and the earlier strokes
    under it (strokes erased by an earlier scratch are gone already). `keep`: strokes that are
    never taken for a scratch (ones the writer confirmed as a character's)."""
    points = [np.asarray(s, dtype=float).reshape(-1, 2) for s in strokes]
    erased: set[int] = set()
    for i, p in enumerate(points):
        if i in keep or not len(p) or not is_zigzag(shape(p)):
            continue
        low, high = p.min(0), p.max(0)
        grow = MARGIN * float((high - low).max())
        low, high = low - grow, high + grow
        under = [j for j in range(i) if j not in erased and len(points[j])
                 and np.all((points[j] >= low) & (points[j] <= high), axis=1).mean() >= COVERED]
        if under and _size(np.concatenate([points[j] for j in under])) >= COVERS * _size(p):
            erased.update(under)
            erased.add(i)
    return sorted(erased)


def _size(points: np.ndarray) -> float:
    return float((points.max(0) - points.min(0)).max())


def _turns(values: np.ndarray, retreat: float) -> int:
    """How many times a coordinate turns back by at least `retreat`: after the running extreme
    of the current direction is left by that much (hysteresis, so a wobble is no turn)."""
    if retreat <= 0:
        return 0
    turns, direction, extreme = 0, 0, values[0]
    for v in values[1:]:
        if direction == 0:
            if abs(v - values[0]) >= retreat:
                direction, extreme = (1 if v > values[0] else -1), v
        elif (v - extreme) * direction > 0:
            extreme = v
        elif (extreme - v) * direction >= retreat:
            turns, direction, extreme = turns + 1, -direction, v
    return turns
