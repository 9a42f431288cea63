"""Reading strings: a number, a word or a code written in one go -> text, per character.

The single-character `Recognizer` reads a candidate; this module decides which ink makes the
candidates. No fixed rule segments real writing (an i's dot written after the next letter, a
t's bar, tight spacing, a tall capital next to a small letter), so it proposes several:

1. The ink is cut into primitives: pen strokes, or an image's runs of inked columns.
2. Sorted by their horizontal centre, every run of 1..MAX_PARTS neighbouring primitives that has
   no wide empty gap inside is a candidate character (a segmentation graph over the primitives).
3. All candidates are preprocessed by the one function a single character goes through and
   read in one batch by the CNN.
4. A beam search over the graph picks the best path and class sequence: the classifier's log
   probability, a cost for ink too small to be a character on its own (a dot, a fragment), a
   cost for switching between digits and letters (so "2O24" reads "2024"), and the caller's
   hints (`charset`, a `pattern` like "LLDDD", a word list). The n best paths are the
   alternatives.
5. EMNIST-balanced merges the cases of 15 letters (c o s u v w x z ...); their case is set from
   the string: a word with a lowercase-only letter is lowercase, and a merged letter as tall as
   the capitals beside it is upper case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from emnist_draw.data import MERGED_LETTERS
from emnist_draw.known import Known, primitives as known_primitives
from emnist_draw.preprocess import InkError, image_to_ink, normalize, parse_strokes, strokes_to_input
from emnist_draw.recognizer import Recognizer, display_label
from emnist_draw.status import Ink, judge

# The most primitives one character is made of: E and # are four strokes.
MAX_PARTS = 4
# Scoring constants, chosen on the UNIPEN tune writers' printed words (bench/read_strings.py
# --part tune); the measure writers are never used for this.
CHARACTER_BONUS = 3.0      # per character: without it, merging two characters into one wins
TINY_COST = 6.0            # a candidate this small is a dot or a fragment, not a character
TINY_SIZE = 0.22           # ... below this fraction of the line's height (and width)
KIND_SWITCH_COST = 4.0     # digit <-> letter within a string
OVERLAP_COST = 10.0        # x (share of the narrower one's width) two neighbours overlap
MAX_GAP = 0.3              # an empty gap wider than this (x line height) splits characters
MAX_WIDTH = 1.6            # no candidate of several primitives is wider (x line height)
WORD_BONUS = 4.0           # a reading that is one of the caller's words
LEXICON_BONUS = 3.0        # ... or an English word (english_lexicon)
SPACE_GAP = 0.6            # a gap this wide (x line height, and 2.5x the usual gap) is a space
CANDIDATE_CLASSES = 4      # classes per candidate considered by the search
BEAM = 12
# For the case of merged letters: unmerged classes whose height is the capitals' (B, d, h ...)
# or the lowercase x-height (a, e, n, r), and the merged letters whose case shows in height.
TALL_UNMERGED = set("ABDEFGHNQRTbdfht")
X_HEIGHT_UNMERGED = set("aenr")
X_HEIGHT_MERGED = set("cmosuvwxz")
PATTERN_KINDS = {"D": "digit", "L": "letter", "?": None}


@dataclass
class Character:
    prediction: str
    display: str
    top_k: list[tuple[str, str, float]]  # (label, display, probability)
    parts: list[int]                     # indices of the primitives: strokes, or column runs
    box: tuple[float, float, float, float]
    status: str = "ok"                   # emnist_draw.status: ok, ambiguous, unsure, not_a_character
    ambiguous_with: list[str] = field(default_factory=list)  # display labels, the answer first


@dataclass
class Reading:
    text: str
    characters: list[Character]
    alternatives: list[tuple[str, float]] = field(default_factory=list)  # (text, log score)


@dataclass
class _Primitive:
    box: np.ndarray  # x0, y0, x1, y1


@dataclass(order=True)
class _Hypothesis:
    score: float
    steps: tuple = ()  # ((first, end, class index), ...) along the path


class StringReader:
    """Reads strings with a Recognizer; one instance serves any number of requests."""

    def __init__(self, recognizer: Recognizer, lexicon: Iterable[str] | None = None):
        """`lexicon`: words a reading is preferred to be (default: english_lexicon())."""
        self.recognizer = recognizer
        self.lexicon = {balanced_form(w) for w in (english_lexicon() if lexicon is None else lexicon)}
        self.classes = recognizer.classes
        self.is_digit = np.array([c.isdigit() for c in self.classes])

    def read_strokes(self, strokes: Sequence, charset: str = "all", top_k: int = 3,
                     pattern: str | None = None, words: Sequence[str] | None = None,
                     n_best: int = 5, known: Sequence[Known] = ()) -> Reading:
        """Strokes in writing order ([x, y] points, y down, any units). `known`: characters the
        writer confirmed, (stroke indices, label): each is kept as exactly that (emnist_draw.known)."""
        points = parse_strokes(strokes)
        kept = [i for i, s in enumerate(strokes) if len(s)]  # parse_strokes drops empty ones
        groups, fixed = known_primitives(kept, known, self.classes)
        boxes = [np.r_[np.min([points[i].min(0) for i in g], 0), np.max([points[i].max(0) for i in g], 0)]
                 for g in groups]

        def render(parts: Sequence[int]) -> np.ndarray:
            return strokes_to_input([points[i] for p in parts for i in groups[p]])

        reading = self._read(boxes, render, charset, top_k, pattern, words, n_best, fixed)
        for character in reading.characters:
            character.parts = sorted(kept[i] for p in character.parts for i in groups[p])
        return reading

    def read_image(self, image: bytes | Image.Image, charset: str = "all", top_k: int = 3,
                   pattern: str | None = None, words: Sequence[str] | None = None,
                   n_best: int = 5) -> Reading:
        """An image of one line of characters (either polarity). Characters must not touch:
        the primitives are runs of columns with ink, so touching ones read as one."""
        return self.read_ink(image_to_ink(image), charset, top_k, pattern, words, n_best)

    def read_ink(self, ink: np.ndarray, charset: str = "all", top_k: int = 3,
                 pattern: str | None = None, words: Sequence[str] | None = None,
                 n_best: int = 5) -> Reading:
        """The ink of a line image as preprocess.image_to_ink leaves it (white on black)."""
        inked = ink.any(0)
        edges = np.flatnonzero(np.diff(np.r_[False, inked, False]))
        runs = list(zip(edges[::2], edges[1::2]))
        boxes = []
        for x0, x1 in runs:
            rows = np.flatnonzero(ink[:, x0:x1].any(1))
            boxes.append(np.array([x0, rows[0], x1, rows[-1] + 1], dtype=float))

        def render(parts: Sequence[int]) -> np.ndarray:
            return normalize(ink[:, runs[parts[0]][0]:runs[parts[-1]][1]])

        return self._read(boxes, render, charset, top_k, pattern, words, n_best)

    # ------------------------------------------------------------------ the search

    def _read(self, boxes: list[np.ndarray], render: Callable[[Sequence[int]], np.ndarray],
              charset: str, top_k: int, pattern: str | None, words: Sequence[str] | None,
              n_best: int, fixed: dict[int, int] | None = None) -> Reading:
        """`fixed`: primitives the writer confirmed -> their class (see emnist_draw.known)."""
        allowed = self.recognizer.allowed(charset)
        kinds = _pattern_kinds(pattern)
        order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0] + boxes[i][2]) / 2)
        sorted_boxes = np.array([boxes[i] for i in order])
        everything = np.r_[sorted_boxes[:, :2].min(0), sorted_boxes[:, 2:].max(0)]
        line_height = max(float(everything[3] - everything[1]), 1e-9)

        spans = _candidate_spans(sorted_boxes, line_height)
        fixed = fixed or {}
        # A confirmed character is a candidate of its own, never part of a larger one.
        spans = [(a, b) for a, b in spans if b - a == 1 or all(order[k] not in fixed for k in range(a, b))]
        images = np.stack([render([order[k] for k in range(a, b)]) for a, b in spans])
        logits = self.recognizer.logits(images)
        known_class = {n: fixed[order[a]] for n, (a, b) in enumerate(spans) if b - a == 1 and order[a] in fixed}
        for n, c in known_class.items():  # certain: probability 1, status ok, in any context
            logits[n] = -50.0
            logits[n, c] = 50.0
        # The search's costs were tuned against the model's own softmax; what is shown, and
        # judged, is the calibrated one (the same numbers as /api/predict).
        log_probs = np.log(np.maximum(self.recognizer.softmax(logits, charset, calibrated=False),
                                      1e-12))
        probs = self.recognizer.softmax(logits, charset)
        span_index = {span: n for n, span in enumerate(spans)}
        span_boxes = {span: _union(sorted_boxes[span[0]:span[1]]) for span in spans}
        costs = [0.0 if n in known_class else _fragment_cost(span_boxes[span], line_height)
                 for n, span in enumerate(spans)]
        ranked = np.argsort(-probs, axis=1, kind="stable")
        # A pattern asks for a kind at each place: the best classes of each kind, not only the
        # best overall (a 0 read as O, Q, D, U first still offers its 0 where a digit is due).
        choices = {None: ranked[:, :CANDIDATE_CLASSES]}
        if kinds is not None:
            for kind, members in (("digit", self.is_digit), ("letter", ~self.is_digit)):
                choices[kind] = np.array([row[members[row]][:CANDIDATE_CLASSES] for row in ranked])
        hinted = {balanced_form(w) for w in words} if words else set()

        beams: list[list[_Hypothesis]] = [[] for _ in range(len(order) + 1)]
        beams[0] = [_Hypothesis(0.0)]
        for start in range(len(order)):
            for hyp in _pruned(beams[start], per_length=kinds is not None):
                position = len(hyp.steps)
                if kinds is not None and position >= len(kinds):
                    continue
                for end in range(start + 1, min(start + MAX_PARTS, len(order)) + 1):
                    n = span_index.get((start, end))
                    if n is None:
                        continue
                    options = choices[kinds[position] if kinds else None][n]
                    for c in ((known_class[n],) if n in known_class else options):
                        if not allowed[c] and n not in known_class:
                            continue
                        score = hyp.score + log_probs[n, c] + CHARACTER_BONUS - costs[n]
                        if hyp.steps:
                            a, b, previous = hyp.steps[-1]
                            if self.is_digit[previous] != self.is_digit[c]:
                                score -= KIND_SWITCH_COST
                            score -= OVERLAP_COST * _overlap(span_boxes[(a, b)],
                                                             span_boxes[(start, end)], line_height)
                        beams[end].append(_Hypothesis(score, hyp.steps + ((start, end, c),)))
        finals = beams[-1]
        if kinds is not None:
            finals = [h for h in finals if len(h.steps) == len(kinds)]
            if not finals:
                raise InkError(f"no reading of {len(kinds)} characters fits the ink and the pattern "
                               f"{pattern!r}: check its length and kinds")
        # Case and spaces are decided for the best few only: a word list compares balanced
        # forms, which need neither.
        finals = [_Hypothesis(h.score + self._word_bonus(self._plain(h.steps), hinted), h.steps)
                  for h in finals]
        finals.sort(reverse=True)
        best = finals[0]
        alternatives, seen = [], set()
        for hyp in finals[:4 * n_best]:
            text = self._text(hyp.steps, span_boxes, line_height)
            if text not in seen:
                seen.add(text)
                alternatives.append((text, round(float(hyp.score), 3)))
            if len(alternatives) == n_best:
                break
        best_text = alternatives[0][0]
        characters = []
        letters = best_text.replace(" ", "")
        chosen = [c for _, _, c in best.steps]
        for position, ((a, b, c), shown) in enumerate(zip(best.steps, letters)):
            n = span_index[(a, b)]
            top = np.argsort(-probs[n], kind="stable")[:min(top_k, int(allowed.sum()))]
            box = span_boxes[(a, b)]
            status, alike = judge(self._in_context(logits[n], chosen, position, charset),
                                  self.classes, images[n], Ink(tiny=costs[n] > 0))
            characters.append(Character(
                prediction=self.classes[c], display=shown,
                top_k=[(self.classes[i], display_label(self.classes[i]), float(probs[n, i])) for i in top],
                parts=sorted(order[k] for k in range(a, b)),
                box=tuple(float(v) for v in box), status=status,
                ambiguous_with=[display_label(self.classes[i]) for i in alike]))
        return Reading(best_text, characters, alternatives)

    def _in_context(self, logits: np.ndarray, chosen: list[int], position: int,
                    charset: str) -> np.ndarray:
        """A character's probabilities as its string leaves them: among digits only when it and
        all the others are digits, letters only when all are letters. The 0 of "2024" is then no
        "0 or O?" (the string settled it), while a 1 in "AB1C" still is."""
        others = [self.is_digit[c] for i, c in enumerate(chosen) if i != position]
        same_kind = all(kind == self.is_digit[chosen[position]] for kind in others)
        if charset == "all" and others and same_kind:  # an "O" amid digits stays in question
            charset = "digits" if others[0] else "letters"
        return self.recognizer.softmax(logits[None], charset)[0]

    def _word_bonus(self, plain: str, hinted: set[str]) -> float:
        if plain in hinted:
            return WORD_BONUS
        return LEXICON_BONUS if len(plain) > 2 and plain in self.lexicon else 0.0

    def _plain(self, steps: tuple) -> str:
        return "".join(self.classes[c] for _, _, c in steps)

    def _text(self, steps: tuple, span_boxes: dict, line_height: float) -> str:
        """The path's characters with the merged letters' case decided and spaces at wide gaps."""
        labels = [self.classes[c] for _, _, c in steps]
        spans = [span_boxes[(a, b)] for a, b, _ in steps]
        heights = np.array([s[3] - s[1] for s in spans])
        shown = [_case(i, labels, heights) for i in range(len(labels))]
        gaps = np.array([spans[i][0] - spans[i - 1][2] for i in range(1, len(spans))])
        # A space is a gap far wider than the string's usual one between characters.
        usual = float(np.median(gaps[gaps > 0])) if (gaps > 0).sum() >= 3 else 0.0
        space = max(SPACE_GAP * line_height, 2.5 * usual) if usual else line_height
        text = shown[0] if shown else ""
        for i in range(1, len(shown)):
            text += (" " if gaps[i - 1] > space else "") + shown[i]
        return text


def _case(i: int, labels: list[str], heights: np.ndarray) -> str:
    """The case of a merged letter (EMNIST-balanced's "C" is C or c) from its neighbours."""
    label = labels[i]
    if not (label.isupper() and label.lower() in MERGED_LETTERS):
        return label
    letters = [j for j, l in enumerate(labels) if l.isalpha()]
    if any(labels[j].islower() for j in letters):  # a lowercase-only letter: a lowercase word
        # ... with a capital only at its start, and only where the case shows in the height.
        if i != letters[0] or label.lower() not in X_HEIGHT_MERGED:
            return label.lower()
        tall = [heights[j] for j in letters if labels[j] in TALL_UNMERGED]
        small = [heights[j] for j in letters if labels[j] in X_HEIGHT_UNMERGED]
        if tall:
            return label if heights[i] >= 0.8 * np.median(tall) else label.lower()
        if small:
            return label if heights[i] >= 1.4 * np.median(small) else label.lower()
        return label.lower()
    if any(labels[j] in TALL_UNMERGED for j in letters):  # capitals and no lowercase: "SOX"
        return label
    # Merged letters only ("cow", "SOX"): x-height letters beside tall ones (k, l) are small.
    tall = [heights[j] for j in letters if labels[j].lower() in "kl"]
    if tall and label.lower() in X_HEIGHT_MERGED and heights[i] < 0.75 * max(tall):
        return label.lower()
    return label


@lru_cache(maxsize=1)
def english_lexicon() -> frozenset[str]:
    """English words, from the english-words package's GCIDE list (lower case, letters only)."""
    from english_words import get_english_words_set

    # Letters only: the list also holds "28", "1st" and "b52", which would pull digits into words.
    return frozenset(w for w in get_english_words_set(["gcide"], lower=True) if w.isalpha())


def _pruned(hypotheses: list[_Hypothesis], per_length: bool) -> list[_Hypothesis]:
    """The BEAM best; with a pattern, the BEAM best of each length, so that the pattern's
    length is never pruned away by shorter or longer readings that score better."""
    if not per_length:
        return sorted(hypotheses, reverse=True)[:BEAM]
    by_length: dict[int, list[_Hypothesis]] = {}
    for hyp in hypotheses:
        by_length.setdefault(len(hyp.steps), []).append(hyp)
    return [h for group in by_length.values() for h in sorted(group, reverse=True)[:BEAM]]


def _pattern_kinds(pattern: str | None) -> list[str | None] | None:
    if pattern is None:
        return None
    if not pattern or any(ch not in PATTERN_KINDS for ch in pattern.upper()):
        raise ValueError(f"pattern {pattern!r}: use D for a digit, L for a letter and ? for either,"
                         " e.g. 'LLDDD'")
    return [PATTERN_KINDS[ch] for ch in pattern.upper()]


def _candidate_spans(boxes: np.ndarray, line_height: float) -> list[tuple[int, int]]:
    """Runs [a, b) of x-sorted primitives that could be one character."""
    spans = []
    for a in range(len(boxes)):
        for b in range(a + 1, min(a + MAX_PARTS, len(boxes)) + 1):
            if b - a > 1:
                part = boxes[a:b]
                width = part[:, 2].max() - part[:, 0].min()
                if width > MAX_WIDTH * line_height or _widest_gap(part) > MAX_GAP * line_height:
                    break
            spans.append((a, b))
    return spans


def _fragment_cost(box: np.ndarray, line_height: float) -> float:
    """Ink this small is a dot or a fragment, not a character on its own."""
    return TINY_COST if max(box[2] - box[0], box[3] - box[1]) < TINY_SIZE * line_height else 0.0


def _union(boxes: np.ndarray) -> np.ndarray:
    return np.r_[boxes[:, :2].min(0), boxes[:, 2:].max(0)]


def _overlap(left: np.ndarray, right: np.ndarray, line_height: float) -> float:
    """How much two characters' x-extents overlap, as a share of the narrower one: pieces of
    one character overlap, neighbouring characters rarely do."""
    shared = min(left[2], right[2]) - max(left[0], right[0])
    narrower = max(min(left[2] - left[0], right[2] - right[0]), 0.1 * line_height)
    return max(float(shared), 0.0) / narrower


def _widest_gap(boxes: np.ndarray) -> float:
    """The widest empty horizontal stretch inside the union of the boxes' x-extents."""
    intervals = sorted(zip(boxes[:, 0], boxes[:, 2]))
    reach, gap = intervals[0][1], 0.0
    for x0, x1 in intervals[1:]:
        gap = max(gap, x0 - reach)
        reach = max(reach, x1)
    return float(gap)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the character error count of a reading."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


_TO_BALANCED = str.maketrans(MERGED_LETTERS, MERGED_LETTERS.upper(), " \t\n")


def balanced_form(text: str) -> str:
    """Text as EMNIST-balanced classes compare it: no spaces, the merged letters' case ignored."""
    return text.translate(_TO_BALANCED)
