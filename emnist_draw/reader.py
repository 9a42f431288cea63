"""Reading strings: a number, a word or a code written in one go -> text, per character.

The single-character `Recognizer` reads a candidate; this module decides which ink makes the
candidates. No fixed rule segments real writing (an i's dot written after the next letter, a
t's bar, tight spacing, a tall capital next to a small letter), so it proposes several:

1. The ink is cut into primitives: pen strokes, or an image's runs of inked columns, cut
   where the cut network (emnist_draw.cuts) sees two touching characters meet.
2. Sorted by their horizontal centre, every run of 1..MAX_PARTS neighbouring primitives that has
   no wide empty gap inside is a candidate character (a segmentation graph over the primitives).
3. A candidate whose geometry alone says it is plainly not one character is dropped (the gate,
   emnist_draw.segmentation); the others are preprocessed by the one function a single character
   goes through and read in one batch by the CNN.
4. A beam search over the graph picks the best path and class sequence: per character the
   classifier's log probability and the log odds that the candidate is one whole character
   (emnist_draw.segmentation, a small learned model: a stroke of an H is not, nor are two
   letters together), for the whole string the language model's prior (emnist_draw.language:
   numbers, words, codes, free text), and the caller's hints (`charset`, a `pattern` like
   "LLDDD", a word list). The n best paths are the alternatives.
5. EMNIST-balanced merges the cases of 15 letters (c o s u v w x z ...); their case is set from
   the string: its type (a word with a lowercase-only letter is lowercase) and the heights (a
   merged letter as tall as the capitals beside it is upper case).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from emnist_draw import cuts
from emnist_draw.data import MERGED_LETTERS
from emnist_draw.deadline import check_time
from emnist_draw.known import Known, primitives as known_primitives
from emnist_draw.language import TYPES, LanguageModel, State, default as default_language
from emnist_draw.preprocess import InkError, image_to_ink, normalize, parse_strokes, strokes_to_input
from emnist_draw.recognizer import Recognizer, display_label
from emnist_draw.segmentation import (WholeCharacter, baseline, default as default_whole, features,
                                      gate, with_confidence)
from emnist_draw.status import Ink, judge, widest_gap

# The most primitives one character is made of: E and # are four strokes.
MAX_PARTS = 4
# Scoring constants, chosen on the UNIPEN tune writers' composed and printed strings
# (bench/read_strings.py --part tune --fit); the measure writers are never used for this.
CHARACTER_BONUS = 2.5      # per character: without it, merging two characters into one wins
# ... in a picture, whose pieces come from cuts, not pen lifts: there the common error is touching
# letters merged into one (read as an M or a W) where each extra character costs the language
# model about 3.6-3.9 (log 36 or 47 in a code or a mix). Tune writers' 1,800 pictures (seeds 0-2):
# 77.2% exact at 2.5, 78.1% at 3.0, 78.3% at 3.5 (at 2.5 and 3.5: spaced ones 1,041 and 1,043
# right, touching ones 349 and 366).
IMAGE_CHARACTER_BONUS = 3.5
WHOLE_WEIGHT = 0.5         # x the log odds that a candidate is one whole character
TINY_SIZE = 0.22           # below this fraction of the line's height (and width): a dot or a fragment
MAX_GAP = 0.3              # an empty gap wider than this (x line height) splits characters
MAX_WIDTH = 1.6            # no candidate of several primitives is wider (x line height)
# ... counting only its primitives that are not bars (lower than BAR_HEIGHT x line height) where
# it has others: a 5's flag or an F's or T's top drawn long reaches past the rest, and the
# character was never a candidate (a 5 read "51", an F "tc"). Tune writers' 1,200 composed
# strings: numbers 193 -> 195 of 200 (with the digits hint 196 -> 198), capitals 169 -> 172,
# none fewer; 1,221 real strings and 1,200 pictures alike (+1); candidates +5% (+2% on real ink).
BAR_HEIGHT = 0.25
# A candidate of several primitives whose geometry alone (emnist_draw.segmentation's gate) puts
# its odds of being one whole character under e^GATE is neither rendered nor read: a quarter to a
# third of a string's candidates, whose rendering and reading are most of a read's time. Tune
# writers' 2,621 strings (composed, real numbers and words): 2,266 right with every candidate,
# 2,265 at -10, 2,263 at -8 or -9; reads 31-33% faster at -8 (17-22% at -10).
GATE = -8.0
WORD_BONUS = 4.0           # a reading that is one of the caller's words
LM_WEIGHT = 1.0            # x log P(string) of the language model (emnist_draw.language)
# A space between words: the search may put one at a gap between primitives, at the odds the gap
# gives (below) and the language model's (a line of words is words of the list one after the
# other). The log odds are SPACE_ODDS . (gap / line height, log(gap / the string's usual gap), 1),
# a logistic fitted on the tune writers' gaps over 0.1 line heights (SPACE_MIN_GAP; a narrower
# one is no space): in 417 printed lines the widest gaps, as many as the line has spaces, and in
# 4,909 words and 600 composed strings none (bench/read_strings.py --part tune --fit-spaces).
# Only gaps whose log odds pass SPACE_FLOOR are offered: each doubles the paths the beam weighs.
# On 200 other tune lines: 58 read right (spaces aside) with spaces only shown at wide gaps, 94
# with them chosen (spaces right 19 -> 78); at floors of -6 / -4.5 / -3 / -2, 94 / 95 / 94 / -
# right, a 20-character read 15% / 7% / 3% / 3% slower than with no spaces offered; 1,965 real
# words and 821 real numbers read alike.
SPACE_ODDS = (4.11, 4.66, -6.91)
SPACE_MIN_GAP = 0.1
SPACE_FLOOR = -3.0
# The classes of each candidate the search tries, the CNN's likeliest first. Real writing is
# sloppier than isolated characters, and a word's right letter is at times the CNN's 5th-10th guess
# (the language model knows the word). Tune writers at 4 / 6 / 8 / 10 / 12: 1,965 real words
# 1,409 / 1,444 / 1,466 / 1,483 / - right, another 400 306 / 318 / 327 / 329 / 331, 821 real
# numbers 723 / 733 / 736 / 736 / 737; 200 composed made-up words 168 / 164 / 163 / 162 / 160
# (more classes let the n-gram respell them), the other 1,000 composed strings 868 / 869 / 869 /
# 869 / 868; a read 25-35% slower at 10 than at 4.
CANDIDATE_CLASSES = 10
# Digits, capitals and b d f h t reach the line's top: one of these classes whose top is below
# it by more than TALL_DROP_FREE line heights pays TALL_DROP per line height beyond (an x-height
# o beside an f is no 0, an x-height n no N). On the tune writers' 1,200 composed strings (seeds
# 1 and 2): made-up words 151 -> 160 of 200, mixes 147 -> 151, other kinds and 821 real numbers
# unchanged, 400 real words 297 -> 298; a weight of 6-10 starts to cost real numbers, a free
# drop of 0.1-0.25 reads alike.
TALL_DROP = 3.0
TALL_DROP_FREE = 0.15
# g and q reach below the baseline (the median bottom of the primitives): one that reaches less
# than DESCENT_MIN line heights below it pays DESCENT_W per line height short (a 9 on the line is
# no q). Tune writers: 821 real numbers 717 -> 720, 1,200 composed strings: codes +1, mixes +2;
# at 8 instead of 3 (with the mix type and the n-gram's floor): real numbers 722 -> 724, codes
# +2, mixes +1, and the 2,266 real words with a g or q read alike (1,455); at 15 or 25 composed
# strings gain 10-12 but those real words lose 5-9 (their g and q descend less than composed ones).
DESCENT_W = 8.0
DESCENT_MIN = 0.2
# EMNIST-balanced's "L" is L or l, one class; its shape tells them apart, which the class cannot
# say: a capital L has a foot, an l is a bar. A candidate narrower than BAR_ASPECT x its height
# read as "L" is an l to the language model, so a capital string (a code, an UPPER word) reads
# its bar as a 1 or an I. Tune writers' isolated characters, width / height: L 5th percentile 0.46
# (0.6% under 0.3), l median 0.30, 1 0.32. Their 1,200 composed strings (seeds 1, 2): codes 150 ->
# 153 of 200, made-up words and mixes one fewer each; 1,965 real words and 821 numbers alike.
# The bars it turns away from L in codes mostly become 1 where an I was written: a bare bar is
# either, 1/36 each.
BAR_ASPECT = 0.3
PATTERN_MISFIT = 8.0       # a pattern's reading this much worse than the free one: no fit
# Classes per character weighed in its string's context (top_k): its likeliest few and the one
# read, so that its reading is its first alternative (each costs a rescoring of the string).
CONTEXT_CLASSES = 4
BEAM = 12
# With a pattern the beam keeps readings of every length apart (see _pruned); all lengths
# together keep at most this many, so a long pattern over many primitives stays linear.
PATTERN_BEAM = 48
# Bounds on what one read may cost, checked before the work: at most this many primitives
# (the API's limit on strokes; an image's column runs are held to it too), so at most
# ~MAX_PARTS x MAX_PRIMITIVES candidates are rendered and read.
MAX_PRIMITIVES = 100
# Candidates go through the model this many at a time: ONNX Runtime keeps the memory of the
# largest batch it ran, and ~400 at once left a worker at 60 MB more for good.
READ_BATCH = 32
# Candidates whose render and logits are kept between reads (each ~1 KB): enough for the strings
# a few writers are writing at once on one worker.
RECENT = 4096
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


class _Recent:
    """The renders and logits of the last RECENT candidates, by their strokes' content: the page
    sends every stroke again after each new one, and most candidates are the last read's."""

    def __init__(self, size: int = 0):
        self.size = size or RECENT
        self.items: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.lock = threading.Lock()  # reads run in worker threads

    def get(self, key: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: bytes, value: tuple[np.ndarray, np.ndarray]) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@dataclass
class Candidates:
    """The segmentation graph of some ink as the search sees it: the primitives sorted by their
    horizontal centre, and every run [a, b) of them that could be one character, rendered and
    read by the CNN."""
    order: list[int]       # primitive indices (strokes, column runs), left to right
    boxes: np.ndarray      # their boxes (x0, y0, x1, y1) in that order
    line_height: float
    spans: list[tuple[int, int]]
    images: np.ndarray     # each span's 28x28 input
    logits: np.ndarray     # the CNN's logits for each
    geometry: np.ndarray   # each one's segmentation.features before the CNN read it
    columns: bool = False  # the primitives are an image's column runs, not strokes

    def features(self) -> np.ndarray:
        """Each candidate's inputs to the whole-character model (emnist_draw.segmentation)."""
        return with_confidence(self.geometry, self.logits)


@dataclass(order=True)
class _Hypothesis:
    score: float
    steps: tuple = ()  # ((first, end, class index), ...) along the path
    language: State | None = field(default=None, compare=False)  # the prefix's prior
    spaces: tuple = field(default=(), compare=False)  # the steps a space comes before


class StringReader:
    """Reads strings with a Recognizer; one instance serves any number of requests."""

    def __init__(self, recognizer: Recognizer, language: LanguageModel | None = None,
                 whole: WholeCharacter | None = None, every_candidate: bool = False):
        """`language`: the prior over strings (default: emnist_draw.language.default(), loaded
        on the first read, not at start-up: most requests read one character); `whole`: the
        whole-character model (default: emnist_draw.segmentation's shipped one);
        `every_candidate`: no GATE, every run of primitives is read (what the segmentation models
        are trained on)."""
        self.recognizer = recognizer
        self.every_candidate = every_candidate
        self._language = language
        self._whole = whole
        self.classes = recognizer.classes
        self.is_digit = np.array([c.isdigit() for c in self.classes])
        self.is_tall = self.is_digit | np.isin(self.classes, sorted(TALL_UNMERGED))
        self.is_descender = np.isin(self.classes, ["g", "q"])
        self.bar_class = list(self.classes).index("L")
        self.recent = _Recent()

    def read_strokes(self, strokes: Sequence, charset: str = "all", top_k: int = 3,
                     pattern: str | None = None, words: Sequence[str] | None = None,
                     n_best: int = 5, known: Sequence[Known] = ()) -> Reading:
        """Strokes in writing order ([x, y] points, y down, any units). `known`: characters the
        writer confirmed, (stroke indices, label): each is kept as exactly that (emnist_draw.known)."""
        kept, groups, fixed, boxes, render, key = self._stroke_primitives(strokes, known)
        reading = self._read(boxes, render, charset, top_k, pattern, words, n_best, fixed,
                             key=key)
        for character in reading.characters:
            character.parts = sorted(kept[i] for p in character.parts for i in groups[p])
        return reading

    def read_image(self, image: bytes | Image.Image, charset: str = "all", top_k: int = 3,
                   pattern: str | None = None, words: Sequence[str] | None = None,
                   n_best: int = 5) -> Reading:
        """An image of one line of characters (either polarity). The primitives are runs of
        columns with ink, cut where touching characters meet (emnist_draw.cuts)."""
        return self.read_ink(image_to_ink(image), charset, top_k, pattern, words, n_best)

    def read_ink(self, ink: np.ndarray, charset: str = "all", top_k: int = 3,
                 pattern: str | None = None, words: Sequence[str] | None = None,
                 n_best: int = 5) -> Reading:
        """The ink of a line image as preprocess.image_to_ink leaves it (white on black)."""
        _, boxes, render = _column_runs(ink)
        return self._read(boxes, render, charset, top_k, pattern, words, n_best, columns=True)

    # ------------------------------------------------------------------ the search

    def _read(self, boxes: list[np.ndarray], render: Callable[[Sequence[int]], np.ndarray],
              charset: str, top_k: int, pattern: str | None, words: Sequence[str] | None,
              n_best: int, fixed: dict[int, int | None] | None = None,
              read: dict | None = None, columns: bool = False,
              key: Callable[[Sequence[int]], bytes] | None = None) -> Reading:
        """`fixed`: primitives the writer confirmed -> their class, or None where only the
        grouping is confirmed (see emnist_draw.known); `columns`: the primitives are an image's
        column runs, not strokes; `key`: what a candidate's render depends on, to reuse the
        renders of earlier reads (strokes only)."""
        if len(boxes) > MAX_PRIMITIVES:
            raise InkError(f"{len(boxes)} strokes: at most {MAX_PRIMITIVES} can be read at once")
        allowed = self.recognizer.allowed(charset)
        kinds = _pattern_kinds(pattern)
        if kinds is not None and len(kinds) > len(boxes):
            raise ValueError(f"the pattern {pattern!r} asks for {len(kinds)} characters, but the "
                             f"ink has only {len(boxes)} separate parts: write the string, or "
                             "shorten the pattern")
        # Read without the pattern too: a pattern far shorter (or longer) than what the ink
        # reads as would otherwise be met by merging characters ("LLL" on YELLOW: "HHW").
        read = {} if read is None else read  # the candidates, gated, rendered and read once
        free = (self._read(boxes, render, charset, 1, None, words, 1, fixed, read, columns, key)
                if kinds else None)
        fixed = fixed or {}
        graph = self._candidates(boxes, render, fixed, read, columns, key)
        order, sorted_boxes, line_height = graph.order, graph.boxes, graph.line_height
        spans, images, logits = graph.spans, graph.images, graph.logits.copy()
        known_class = {n: fixed[order[a]] for n, (a, b) in enumerate(spans)
                       if b - a == 1 and fixed.get(order[a]) is not None}  # None: class read
        for n, c in known_class.items():  # certain: probability 1, status ok, in any context
            logits[n] = -50.0
            logits[n, c] = 50.0
        # The search's costs were tuned against the model's own softmax; what is shown, and
        # judged, is the calibrated one (the same numbers as /api/predict). The search weighs a
        # charset's classes by their share of all 47, not renormalized: a 5's flag alone reads
        # as no digit, and renormalized it would be a confident "0" beside the rest of the 5.
        log_probs = np.log(np.maximum(self.recognizer.softmax(logits, "all", calibrated=False),
                                      1e-12))
        probs = self.recognizer.softmax(logits, charset)
        span_index = {span: n for n, span in enumerate(spans)}
        span_boxes = {span: _union(sorted_boxes[span[0]:span[1]]) for span in spans}
        tiny = [n not in known_class and _tiny(span_boxes[span], line_height)
                for n, span in enumerate(spans)]
        # How likely each candidate is one whole character (emnist_draw.segmentation); a
        # confirmed one is, and has no rival grouping.
        whole = self.whole.log_odds(graph.features())
        whole[list(known_class)] = 0.0
        ranked = np.argsort(-probs, axis=1, kind="stable")
        # Where a candidate sits in the line, which the CNN cannot see (each is scaled to its own
        # box): a class that reaches the top or below the baseline, where the ink does not.
        line_top = float(sorted_boxes[:, 1].min())
        drop = np.array([(span_boxes[span][1] - line_top) / line_height for span in spans])
        height_cost = -TALL_DROP * np.maximum(drop - TALL_DROP_FREE, 0.0)[:, None] * self.is_tall
        line_base = baseline(sorted_boxes)
        descent = np.array([(span_boxes[span][3] - line_base) / line_height for span in spans])
        height_cost -= DESCENT_W * np.maximum(DESCENT_MIN - descent, 0.0)[:, None] * self.is_descender
        height_cost[list(known_class)] = 0.0
        # A pattern asks for a kind at each place: the best classes of each kind, not only the
        # best overall (a 0 read as O, Q, D, U first still offers its 0 where a digit is due).
        choices = {None: ranked[:, :CANDIDATE_CLASSES].tolist()}
        if kinds is not None:
            for kind, members in (("digit", self.is_digit), ("letter", ~self.is_digit)):
                choices[kind] = [row[members[row]][:CANDIDATE_CLASSES].tolist() for row in ranked]
        hinted = {balanced_form(w) for w in words} if words else set()

        bonus = IMAGE_CHARACTER_BONUS if columns else CHARACTER_BONUS
        beams: list[list[_Hypothesis]] = [[] for _ in range(len(order) + 1)]
        language = self.language
        # The prior of a prefix with one more class; per read, as many paths share prefixes.
        advance = lru_cache(maxsize=None)(language.advance)
        label = self._shape_labels(spans, span_boxes)

        # The inner loop's numbers as Python lists: indexing NumPy arrays one number at a time
        # costs more than the arithmetic.
        whole_odds, allowed_classes = whole.tolist(), allowed.tolist()
        class_log_probs, class_costs = log_probs.tolist(), height_cost.tolist()
        space_odds = _space_log_odds(sorted_boxes, line_height)
        beams[0] = [_Hypothesis(0.0, (), language.start)]
        for start in range(len(order)):
            check_time()
            if start in space_odds:  # each path here goes on with a space and without
                beams[start] = [*_spaced(beams[start], *space_odds[start], language)]
            expanding = _pruned(beams[start], None if kinds is None else len(kinds),
                                len(order) - start)
            beams[start] = []
            for hyp in expanding:  # (the node's other paths freed: only the pruned go on)
                position = len(hyp.steps)
                if kinds is not None and position >= len(kinds):
                    continue
                for end in range(start + 1, min(start + MAX_PARTS, len(order)) + 1):
                    n = span_index.get((start, end))
                    if n is None:
                        continue
                    base = hyp.score + bonus + WHOLE_WEIGHT * whole_odds[n]
                    options = choices[kinds[position] if kinds else None][n]
                    for c in ((known_class[n],) if n in known_class else options):
                        if not allowed_classes[c] and n not in known_class:
                            continue
                        state = advance(hyp.language, label(n, c))
                        score = (base + class_log_probs[n][c] + class_costs[n][c]
                                 + LM_WEIGHT * (state.total - hyp.language.total))
                        if score > -np.inf:
                            beams[end].append(_Hypothesis(score, hyp.steps + ((start, end, c),),
                                                          state, hyp.spaces))
        finals = beams[-1]
        if kinds is not None:
            finals = [h for h in finals if len(h.steps) == len(kinds)]
            if not finals:
                raise InkError(f"no reading of {len(kinds)} characters fits the ink and the pattern "
                               f"{pattern!r}: check its length and kinds")
        # The string's end (a word must be whole), and the caller's words. Case and spaces are
        # decided for the best few only: a word list compares balanced forms, which need neither.
        finals = [_Hypothesis(h.score + LM_WEIGHT * (ended.total - h.language.total)
                              + (WORD_BONUS if self._plain(h.steps) in hinted else 0.0),
                              h.steps, ended, h.spaces)
                  for h in finals for ended in [language.finish(h.language)]]
        finals.sort(key=_rank, reverse=True)
        best = finals[0]
        if free is not None and len(free.characters) != len(kinds) \
                and free.alternatives[0][1] - best.score > PATTERN_MISFIT:
            raise ValueError(f"the ink reads as {len(free.characters)} characters "
                             f"({free.text!r}), and the pattern {pattern!r} asks for {len(kinds)}: "
                             "give a pattern of the string's length")
        alternatives, seen = [], set()
        for hyp in finals[:4 * n_best]:
            text = self._text(hyp.steps, [label(span_index[(a, b)], c) for a, b, c in hyp.steps],
                              span_boxes, hyp.spaces, hyp.language)
            if text not in seen:
                seen.add(text)
                alternatives.append((text, round(float(hyp.score), 3)))
            if len(alternatives) == n_best:
                break
        best_text = alternatives[0][0]
        characters = []
        letters = best_text.replace(" ", "")
        chosen = [c for _, _, c in best.steps]
        path = [span_index[(a, b)] for a, b, _ in best.steps]
        in_context = self._in_context(chosen, path, probs[path], allowed, height_cost[path],
                                      label, best.spaces)
        for position, ((a, b, c), shown) in enumerate(zip(best.steps, letters)):
            n = span_index[(a, b)]
            context = in_context[position]
            top = np.argsort(-context, kind="stable")[:min(top_k, int(allowed.sum()))]
            box = span_boxes[(a, b)]
            status, alike = judge(context, self.classes, images[n], Ink(tiny=tiny[n]))
            characters.append(Character(
                prediction=self.classes[c], display=shown,
                top_k=[(self.classes[i], display_label(self.classes[i]), float(context[i]))
                       for i in top],
                parts=sorted(order[k] for k in range(a, b)),
                box=tuple(float(v) for v in box), status=status,
                ambiguous_with=[display_label(self.classes[i]) for i in alike]))
        return Reading(best_text, characters, alternatives)

    def candidates(self, strokes: Sequence) -> Candidates:
        """The segmentation graph of strokes (no hints), with `order` as indices into `strokes`:
        what the whole-character model is trained and measured on."""
        kept, _, _, boxes, render, key = self._stroke_primitives(strokes)
        graph = self._candidates(boxes, render, {}, {}, key=key)
        graph.order = [kept[i] for i in graph.order]  # no known characters: one stroke each
        return graph

    def _stroke_primitives(self, strokes: Sequence, known: Sequence[Known] = ()) -> tuple:
        """The search's primitives of strokes: (kept: the request index of each parsed stroke,
        groups: the parsed strokes of each primitive, fixed: known primitives' classes, their
        boxes, the render of a run of primitives, and the key of what that render depends on)."""
        points = parse_strokes(strokes)
        kept = [i for i, s in enumerate(strokes) if len(s)]  # parse_strokes drops empty ones
        groups, fixed = known_primitives(kept, known, self.classes)
        boxes = [np.r_[np.min([points[i].min(0) for i in g], 0), np.max([points[i].max(0) for i in g], 0)]
                 for g in groups]

        def render(parts: Sequence[int]) -> np.ndarray:
            return strokes_to_input([points[i] for p in parts for i in groups[p]])

        def key(parts: Sequence[int]) -> bytes:  # what the render depends on: the points
            digest = hashlib.blake2b(digest_size=16)
            for i in (i for p in parts for i in groups[p]):
                digest.update(len(points[i]).to_bytes(4, "little"))
                digest.update(points[i].tobytes())
            return digest.digest()

        return kept, groups, fixed, boxes, render, key

    def image_candidates(self, ink: np.ndarray) -> tuple[Candidates, list[tuple[int, int]]]:
        """The segmentation graph of a line image's ink, and its primitives' column ranges."""
        runs, boxes, render = _column_runs(ink)
        return self._candidates(boxes, render, {}, {}, columns=True), runs

    def _candidates(self, boxes: list[np.ndarray], render: Callable[[Sequence[int]], np.ndarray],
                    fixed: dict[int, int | None], read: dict, columns: bool = False,
                    key: Callable[[Sequence[int]], bytes] | None = None) -> Candidates:
        order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0] + boxes[i][2]) / 2)
        sorted_boxes = np.array([boxes[i] for i in order])
        everything = _union(sorted_boxes)
        line_height = max(float(everything[3] - everything[1]), 1e-9)
        spans = _candidate_spans(sorted_boxes, line_height)
        # A confirmed character is a candidate of its own, never part of a larger one.
        spans = [(a, b) for a, b in spans if b - a == 1 or all(order[k] not in fixed for k in range(a, b))]
        proposed = tuple(spans)
        if proposed not in read:  # a pattern's read takes the free read's candidates
            rows = features(sorted_boxes, spans, line_height, columns=columns)
            if not self.every_candidate:  # a single primitive always stays: every path needs it
                odds = gate().log_odds(rows)
                keep = [n for n, (a, b) in enumerate(spans) if b - a == 1 or odds[n] >= GATE]
                spans, rows = [spans[n] for n in keep], rows[keep]
            parts = [[order[k] for k in range(a, b)] for a, b in spans]
            keys = [key(p) for p in parts] if key else [None] * len(parts)
            found = [self.recent.get(k) if k else None for k in keys]
            missing = [n for n, f in enumerate(found) if f is None]
            if missing:
                images = np.stack([_checked(render, parts[n]) for n in missing])
                logits = self.recognizer.logits(images, batch_size=READ_BATCH)
                for n, image, row in zip(missing, images, logits):
                    found[n] = image.copy(), row.copy()  # not views that keep the batch alive
                    if keys[n]:
                        self.recent.put(keys[n], found[n])
            read[proposed] = (spans, rows, np.stack([f[0] for f in found]),
                              np.stack([f[1] for f in found]))
        spans, rows, images, logits = read[proposed]
        return Candidates(order, sorted_boxes, line_height, spans, images, logits, rows, columns)

    def _in_context(self, chosen: list[int], path: list[int], probs: np.ndarray,
                    allowed: np.ndarray, costs: np.ndarray, label: Callable[[int, int], str],
                    spaces: tuple) -> np.ndarray:
        """Each character's calibrated probabilities as its string leaves them: a class's
        probability times the language model's for the string with that class in its place
        (as the search weighed it, with its `costs` per class: a short capital's), over the
        character's CONTEXT_CLASSES likeliest classes, which keep their share. The 0 of "2024"
        is then no "0 or O?" (the string settled it), and a character's first alternative is
        the one the string reads. `path`: the characters' candidates, `label`: a candidate's
        class as the search gave it to the language model (_shape_labels); `spaces`: the
        characters a space comes before."""
        language = self.language
        labels = [label(n, c) for n, c in zip(path, chosen)]
        prefixes = [language.start]
        for position, read_label in enumerate(labels):
            prefixes.append(language.walk(prefixes[-1], [read_label], spaces, position))
        whole = language.finish(prefixes[-1]).total
        out = probs.copy()
        for position, row in enumerate(probs):
            check_time()
            ranked = [int(i) for i in np.argsort(-row, kind="stable") if allowed[i]]
            candidates = list(dict.fromkeys([chosen[position], *ranked[:CONTEXT_CLASSES]]))
            change = np.zeros(len(candidates))
            for k, c in enumerate(candidates[1:], 1):
                state = language.walk(prefixes[position], [label(path[position], c)], spaces,
                                      position)
                state = language.walk(state, labels[position + 1:], spaces, position + 1)
                change[k] = language.finish(state).total - whole
            # The search's log probabilities are the calibrated ones x temperature.
            weights = row[candidates] * np.exp((LM_WEIGHT * change + costs[position, candidates])
                                               / self.recognizer.temperature)
            out[position, candidates] = weights / max(weights.sum(), 1e-300) * row[candidates].sum()
        return out

    @property
    def whole(self) -> WholeCharacter:
        return self._whole if self._whole is not None else default_whole()

    @property
    def language(self) -> LanguageModel:
        return self._language if self._language is not None else default_language()

    def _shape_labels(self, spans: list[tuple[int, int]],
                      span_boxes: dict) -> Callable[[int, int], str]:
        """label(candidate, class): the class as the language model is given it, "l" for the
        "L" of a candidate as narrow as a bar (BAR_ASPECT): lower case only."""
        bars = {n for n, span in enumerate(spans) for x0, y0, x1, y1 in [span_boxes[span]]
                if x1 - x0 < BAR_ASPECT * (y1 - y0)}
        classes, bar_class = self.classes, self.bar_class
        return lambda n, c: "l" if c == bar_class and n in bars else classes[c]

    def _plain(self, steps: tuple) -> str:
        return "".join(self.classes[c] for _, _, c in steps)

    def _text(self, steps: tuple, labels: list[str], span_boxes: dict, spaces: tuple,
              ended: State) -> str:
        """The path's characters with the merged letters' case decided and a space before each
        of `spaces`. `labels`: the steps' classes as _shape_labels gives them (a bar's "L" is
        an l)."""
        spans = [span_boxes[(a, b)] for a, b, _ in steps]
        heights = _rise(labels, spans)
        posterior = self.language.posterior(ended)
        lower, capital = _form(labels, heights, posterior)
        shown = [_case(i, labels, heights, lower, capital) for i in range(len(labels))]
        return "".join((" " if i in spaces else "") + char for i, char in enumerate(shown))


_LOWER_TYPES, _UPPER_TYPES = ("word", "Word", "text", "Text", "mix"), ("WORD", "TEXT", "code")


def _form(labels: list[str], heights: np.ndarray,
          posterior: dict[str, float] | None) -> tuple[bool, bool | None]:
    """(lower case?, first letter a capital? None: by its height) for a string's merged letters.
    The classes often settle it (an unmerged "a" or "E"), which the language model's type
    posterior says; else the heights (an x-height o beside a full-height B: "Box"); else the
    likelier type (all x-height merged letters: "cow" is a word, "COW" less often)."""
    lower_mass = sum(posterior[t] for t in _LOWER_TYPES) if posterior else None
    upper_mass = sum(posterior[t] for t in _UPPER_TYPES) if posterior else None
    letters = [j for j, l in enumerate(labels) if l.isalpha()]
    if any(labels[j].islower() for j in letters):
        lower = True
    elif posterior is not None and lower_mass < 1e-6 < upper_mass:
        lower = False
    else:
        # Capitals and digits (and k, l: ascenders) are full height, x-height letters are not.
        tall = [heights[j] for j, l in enumerate(labels)
                if l in TALL_UNMERGED or l.isdigit() or l in "KL"]
        small = [heights[j] for j in letters[1:] if labels[j].lower() in X_HEIGHT_MERGED]
        if tall and small:
            lower = float(np.median(small)) < 0.75 * float(np.median(tall))
        else:
            lower = posterior is not None and lower_mass > upper_mass
    capital = None
    if posterior is not None and lower:
        capitalized = posterior["Word"] + posterior["Text"]
        if capitalized < 1e-6 or capitalized > 1 - 1e-6:  # settled by the classes
            capital = capitalized > 0.5
    return lower, capital


def _rise(labels: list[str], spans: list[np.ndarray]) -> np.ndarray:
    """How far each character rises above the line's baseline: a capital P or Y rises to the
    capitals' height, a p or y only to the x-height (its tail is below the line)."""
    bottoms = np.array([s[3] for s in spans])
    on_line = [b for b, label in zip(bottoms, labels) if label not in "gqJPY"]
    line_base = float(np.median(on_line)) if on_line else float(bottoms.max())
    return np.array([line_base - s[1] for s in spans])


def _case(i: int, labels: list[str], heights: np.ndarray, lower: bool,
          capital: bool | None = None) -> str:
    """The case of a merged letter (EMNIST-balanced's "C" is C or c) in a string of the form
    `_form` found: upper case, or lower case with a capital only at its start, where its height
    shows it."""
    label = labels[i]
    if not (label.isupper() and label.lower() in MERGED_LETTERS) or not lower:
        return label
    letters = [j for j, l in enumerate(labels) if l.isalpha()]
    if i != letters[0]:
        return label.lower()
    if capital is not None:
        return label if capital else label.lower()
    if label.lower() in "ikl":  # as tall either way
        return label.lower()
    tall = [heights[j] for j in letters if labels[j] in TALL_UNMERGED or labels[j] in "KL"]
    small = [heights[j] for j in letters[1:]
             if labels[j] in X_HEIGHT_UNMERGED or labels[j].lower() in X_HEIGHT_MERGED]
    if tall:
        return label if heights[i] >= 0.8 * np.median(tall) else label.lower()
    if small:
        return label if heights[i] >= 1.4 * np.median(small) else label.lower()
    return label.lower()


def column_runs(ink: np.ndarray) -> int:
    """How many runs of inked columns an image's ink has (its primitives before the cuts)."""
    return len(inked_runs(ink))


def inked_runs(ink: np.ndarray) -> list[tuple[int, int]]:
    """The runs [x0, x1) of columns that hold ink, left to right."""
    edges = np.flatnonzero(np.diff(np.r_[False, ink.any(0), False])).tolist()
    return list(zip(edges[::2], edges[1::2]))


def _column_runs(ink: np.ndarray) -> tuple[list[tuple[int, int]], list[np.ndarray], Callable]:
    """An image's primitives: runs of inked columns, cut where characters touch; their column
    ranges, boxes, and the render of a span of them."""
    runs = inked_runs(ink)
    if len(runs) <= MAX_PRIMITIVES:  # else refused below, without running the cut network
        runs = cuts.default().cut(ink, runs)
    if len(runs) > MAX_PRIMITIVES:
        raise InkError(f"the image has {len(runs)} separate parts (runs of inked columns, cut "
                       f"where characters touch); at most {MAX_PRIMITIVES} can be read as one "
                       "line: send fewer characters, or an image with less noise")
    boxes = []
    for x0, x1 in runs:
        inked = np.flatnonzero(ink[:, x0:x1].any(1))
        boxes.append(np.array([x0, inked[0], x1, inked[-1] + 1], dtype=float))

    def render(parts: Sequence[int]) -> np.ndarray:
        return normalize(ink[:, runs[parts[0]][0]:runs[parts[-1]][1]])

    return runs, boxes, render


def _checked(render: Callable[[Sequence[int]], np.ndarray], parts: Sequence[int]) -> np.ndarray:
    check_time()  # rendering is most of a read's cost: stop once nobody would get the answer
    return render(parts)


def _pruned(hypotheses: list[_Hypothesis], wanted: int | None,
            remaining: int) -> list[_Hypothesis]:
    """The BEAM best. With a pattern of `wanted` characters, readings of each length are kept
    apart, so that the pattern's length is never pruned away by shorter or longer readings that
    score better: only lengths that can still end at `wanted` over the `remaining` primitives,
    the best few of each, PATTERN_BEAM in all (it grew with the square of the primitives)."""
    if wanted is None:
        return heapq.nlargest(BEAM, hypotheses, key=_rank)
    by_length: dict[int, list[_Hypothesis]] = {}
    for hyp in hypotheses:
        if -(-remaining // MAX_PARTS) <= wanted - len(hyp.steps) <= remaining:
            by_length.setdefault(len(hyp.steps), []).append(hyp)
    keep = max(1, min(BEAM, PATTERN_BEAM // max(len(by_length), 1)))
    kept = [h for group in by_length.values() for h in heapq.nlargest(keep, group, key=_rank)]
    return heapq.nlargest(PATTERN_BEAM, kept, key=_rank)


def space_gaps(boxes: np.ndarray, line_height: float) -> tuple[list[int], np.ndarray]:
    """The gaps a space may fill, between the x-sorted primitives k - 1 and k: the ks, and each
    one's inputs to SPACE_ODDS (gap / line height, log(gap / the usual gap), 1)."""
    reach = np.maximum.accumulate(boxes[:, 2])[:-1]              # the furthest right ink before k
    following = np.minimum.accumulate(boxes[::-1, 0])[::-1][1:]  # the furthest left from k on
    gaps = following - reach
    usual = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else line_height
    at = np.flatnonzero(gaps > SPACE_MIN_GAP * line_height)
    inputs = np.c_[gaps[at] / line_height, np.log(gaps[at] / usual), np.ones(len(at))]
    return (at + 1).tolist(), inputs


def _space_log_odds(boxes: np.ndarray, line_height: float) -> dict[int, tuple[float, float]]:
    """Where a space may go: k -> (log P(space), log P(no space)), for the gaps whose log odds
    pass SPACE_FLOOR."""
    at, inputs = space_gaps(boxes, line_height)
    odds = {}
    for k, logit in zip(at, (inputs @ np.array(SPACE_ODDS)).tolist()):
        if logit > SPACE_FLOOR:
            odds[k] = (-math.log1p(math.exp(-logit)), -math.log1p(math.exp(logit)))
    return odds


def _spaced(hypotheses: list[_Hypothesis], with_space: float, without: float,
            language: LanguageModel) -> Iterator[_Hypothesis]:
    """Each hypothesis without a space next, and with one (the language model's word ends)."""
    for hyp in hypotheses:
        yield _Hypothesis(hyp.score + without, hyp.steps, hyp.language, hyp.spaces)
        spaced = language.space(hyp.language)
        yield _Hypothesis(hyp.score + with_space + LM_WEIGHT * (spaced.total - hyp.language.total),
                          hyp.steps, spaced, hyp.spaces + (len(hyp.steps),))


def _rank(hyp: _Hypothesis) -> tuple:
    """The order of hypotheses (their dataclass order) as a key, which sorts faster than the
    dataclass's generated comparisons."""
    return hyp.score, hyp.steps


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
                body = part[part[:, 3] - part[:, 1] >= BAR_HEIGHT * line_height]
                body = body if len(body) else part
                width = body[:, 2].max() - body[:, 0].min()
                gap = widest_gap(zip(part[:, 0], part[:, 2]))
                if width > MAX_WIDTH * line_height or gap > MAX_GAP * line_height:
                    break
            spans.append((a, b))
    return spans


def _tiny(box: np.ndarray, line_height: float) -> bool:
    """Ink this small is a dot or a fragment, not a character on its own."""
    return max(box[2] - box[0], box[3] - box[1]) < TINY_SIZE * line_height


def _union(boxes: np.ndarray) -> np.ndarray:
    return np.r_[boxes[:, :2].min(0), boxes[:, 2:].max(0)]


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
