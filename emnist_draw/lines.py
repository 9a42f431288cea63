"""Writing on several lines: the strokes grouped into rows, each row read as a string.

The string reader reads one line: it orders the ink left to right, so "123" written above "456"
interleaves into nonsense ("bzi"). Rows are found from the strokes' boxes alone, before any
reading, the way a line holds together: neighbours along it share their heights.

1. The writing's character height is the median height of its tall strokes. Strokes at least
   ANCHOR of it tall and not flat (bars) are anchors; dots, bars and commas follow a row.
2. Anchors are linked to their next NEIGHBOURS in x order when their heights overlap by SHARED
   of the shorter one (a "p" beside an "h", a sloping baseline), or when one sits on the other
   (a Y's stem under its V). Linked anchors are one row (union-find).
3. Rows without a stroke of FULL character height (a stray dot, a detached bar) and rows whose
   centres are less than ROW_STEP apart (two words of one line far apart) are merged into the
   nearest; every other stroke joins the row whose band is nearest to its centre, and a
   confirmed character's strokes stay in one row.

Cost: sorting the strokes, then NEIGHBOURS links per anchor; at most MAX_LINES rows are read,
together costing what one line of the same strokes would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from emnist_draw.known import Known
from emnist_draw.reader import Character, Reading, StringReader

MAX_LINES = 5      # more rows than this is a page, not a line of input: refused
TALL = 0.5         # x the tallest stroke: the strokes the character height is measured on
ANCHOR = 0.1       # x the character height: a stroke this tall links (a point does not)
NEIGHBOURS = 12    # anchors compared with each anchor, in x order
SHARED = 0.3       # neighbours sharing this share of the shorter one's height are one line
TOUCH = 0.1        # x the character height: a box this close above another (x overlapping)
FULL = 0.7         # x the character height: a row holds at least one stroke this tall
ROW_STEP = 0.6     # x the character height: rows whose centres are closer are one row


@dataclass
class Line:
    text: str
    characters: list[int]  # indices into the whole reading's characters
    strokes: list[int]     # indices into the request's strokes
    box: tuple[float, float, float, float]


@dataclass
class LinesReading:
    reading: Reading       # the whole text (lines joined by "\n"), characters line by line
    lines: list[Line] = field(default_factory=list)


def stroke_boxes(strokes: Sequence) -> dict[int, np.ndarray]:
    """x0, y0, x1, y1 of each non-empty stroke, by its index."""
    return {i: np.r_[np.min(s, 0), np.max(s, 0)].astype(float)
            for i, s in enumerate(strokes) if len(s)}


def split_rows(boxes: dict[int, np.ndarray],
               together: Sequence[Sequence[int]] = ()) -> list[list[int]]:
    """The strokes' indices in rows, top to bottom (one row for writing on one line).
    `together`: groups of strokes that must share a row (confirmed characters)."""
    index = np.array(sorted(boxes), dtype=int)
    if len(index) < 2:
        return [index.tolist()]
    b = np.array([boxes[i] for i in index])
    heights = b[:, 3] - b[:, 1]
    centres = (b[:, 1] + b[:, 3]) / 2
    if heights.max() <= 0:
        return [index.tolist()]
    height = float(np.median(heights[heights >= TALL * heights.max()]))
    anchors = np.flatnonzero(heights >= ANCHOR * height)
    if len(anchors) < 2:
        return [index.tolist()]
    anchors = anchors[np.argsort((b[anchors, 0] + b[anchors, 2]) / 2, kind="stable")]
    parent = {int(a): int(a) for a in anchors}

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for k, i in enumerate(anchors):
        for j in anchors[k + 1:k + 1 + NEIGHBOURS]:
            if _linked(b[i], b[j], height):
                parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for a in anchors:
        groups.setdefault(root(int(a)), []).append(int(a))
    rows = sorted(groups.values(), key=lambda row: float(np.median(centres[row])))
    full = [row for row in rows if (heights[row] >= FULL * height).any()]
    rows = full or [list(anchors)]
    merged = [rows[0]]
    for row in rows[1:]:
        if np.median(centres[row]) - np.median(centres[merged[-1]]) < ROW_STEP * height:
            merged[-1] = merged[-1] + row
        else:
            merged.append(row)
    bands = np.array([[np.median(b[row, 1]), np.median(b[row, 3])] for row in merged])
    # Every stroke to the nearest band (distance 0 inside it); the rows' anchors stay put.
    row_of = np.argmin(np.maximum(bands[None, :, 0] - centres[:, None], 0)
                       + np.maximum(centres[:, None] - bands[None, :, 1], 0), axis=1)
    for r, row in enumerate(merged):
        row_of[row] = r
    position = {int(i): k for k, i in enumerate(index)}
    for group in together:
        members = [position[i] for i in group if i in position]
        if members:
            row_of[members] = np.bincount(row_of[members]).argmax()
    return [index[row_of == r].tolist() for r in range(len(merged)) if (row_of == r).any()]


def _linked(a: np.ndarray, b: np.ndarray, height: float) -> bool:
    """Two anchors of one line: their heights overlap, or one sits on the other."""
    shared = min(a[3], b[3]) - max(a[1], b[1])
    if shared >= SHARED * min(a[3] - a[1], b[3] - b[1]):
        return True
    beside = min(a[2], b[2]) - max(a[0], b[0]) >= 0
    return beside and -shared <= TOUCH * height


def read_lines(reader: StringReader, strokes: Sequence, known: Sequence[Known] = (),
               pattern: str | None = None, n_best: int = 5, **options) -> LinesReading:
    """Strokes in writing order, read row by row. `pattern` for several rows is one per row,
    separated by newlines ("DDD\\nDDD"). Character strokes stay indices into `strokes`."""
    boxes = stroke_boxes(strokes)
    rows = split_rows(boxes, [k for k, _ in known])
    if len(rows) > MAX_LINES:
        raise ValueError(f"the strokes are on {len(rows)} lines; at most {MAX_LINES} are read at "
                         "once: write fewer lines, or send them in separate reads")
    patterns = pattern.split("\n") if pattern is not None else [None] * len(rows)
    if len(patterns) != len(rows):
        raise ValueError(f"the strokes are on {len(rows)} lines and the pattern has "
                         f"{len(patterns)}: give one pattern per line, separated by a newline "
                         f"(e.g. {chr(10).join(['DDD'] * len(rows))!r})")
    if len(rows) == 1:  # one line: exactly the string reader's answer
        reading = reader.read_strokes(strokes, known=known, pattern=pattern, n_best=n_best,
                                      **options)
        everything = range(len(reading.characters))
        return LinesReading(reading, [_line(reading, everything, rows[0], boxes)])
    readings = []
    for row, row_pattern in zip(rows, patterns):
        local = {stroke: k for k, stroke in enumerate(row)}
        row_known = [([local[i] for i in indices], label) for indices, label in known
                     if any(i in local for i in indices)]
        reading = reader.read_strokes([strokes[i] for i in row], known=row_known,
                                      pattern=row_pattern, n_best=n_best, **options)
        for character in reading.characters:
            character.parts = [row[k] for k in character.parts]
        readings.append(reading)
    characters: list[Character] = [c for r in readings for c in r.characters]
    lines, first = [], 0
    for reading, row in zip(readings, rows):
        lines.append(_line(reading, range(first, first + len(reading.characters)), row, boxes))
        first += len(reading.characters)
    text = "\n".join(r.text for r in readings)
    return LinesReading(Reading(text, characters, _alternatives(readings, n_best)), lines)


def _line(reading: Reading, characters: range, row: list[int], boxes: dict) -> Line:
    ink = np.array([boxes[i] for i in row]) if row else np.zeros((1, 4))
    return Line(reading.text, list(characters), list(row),
                tuple(float(v) for v in np.r_[ink[:, :2].min(0), ink[:, 2:].max(0)]))


def _alternatives(readings: list[Reading], n_best: int) -> list[tuple[str, float]]:
    """Whole readings: every line's best, and each line's other readings with the rest at
    their best (a line's score adds to the others')."""
    best = [r.alternatives[0] if r.alternatives else (r.text, 0.0) for r in readings]
    total = sum(score for _, score in best)
    found = {"\n".join(t for t, _ in best): total}
    for n, reading in enumerate(readings):
        for text, score in reading.alternatives[1:]:
            texts = [t for t, _ in best]
            texts[n] = text
            found.setdefault("\n".join(texts), total - best[n][1] + score)
    ranked = sorted(found.items(), key=lambda item: -item[1])[:n_best]
    return [(text, round(float(score), 3)) for text, score in ranked]
