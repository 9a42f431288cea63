"""What people write: a prior over strings, for the string reader's search.

A string is one of several competing types, each a probability model over strings:

- number: digits, each 1/10;
- word, Word, WORD: a word of a frequency-weighted English list (emnist_draw/models/
  english-words.txt.gz, from the wordfreq package) in lower, Capitalized or UPPER form;
- text, Text, TEXT: free letters (made-up words, names), a character 4-gram with Witten-Bell
  backoff trained on the same list's words, mixed with the uniform distribution (a spelling
  English never uses must still read), in the same three forms;
- code: capitals and digits mixed (AB12C, R2D2), each 1/36;
- mix: the same in lower case (x7k2b, 3fa9c), each 1/36;
- any: anything EMNIST-balanced can spell, each 1/47 (aB3x): rare, so a string of both cases
  of unmerged letters ("zaREmu") needs clear ink to beat "ZAREMU".

A string's prior is the mixture sum over types of P(type) P(string | type), kept per type as the
search goes so that every prefix has an exact score (`advance`, `finish`) and no type is pruned
away before its string ends. The type weights are fitted on the UNIPEN tune writers
(bench/read_strings.py --fit). Classes are EMNIST-balanced's: a merged letter ("C": c or C) fits
either case, an unmerged one ("a", "A") only its own.

Build the shipped list (needs `pip install wordfreq==3.1.1`, a build-time tool only):
    .venv/bin/python -m emnist_draw.language build

The list's frequencies are wordfreq's data (Robyn Speer, wordfreq 3.1.1), which is licensed CC
BY-SA 4.0: english-words.txt.gz is shared under that licence, with that attribution (the code
under the project's).
"""

from __future__ import annotations

import bisect
import gzip
import math
import operator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from emnist_draw.data import MERGED_LETTERS

WORDS_FILE = Path(__file__).parent / "models" / "english-words.txt.gz"
TYPES = ("number", "word", "Word", "WORD", "text", "Text", "TEXT", "code", "mix", "any")
# Each type's prior weight, fitted on the tune writers' composed and real strings (see the
# module docstring); they need not sum to 1 (the search compares strings, not absolute
# probabilities), and they are renormalized.
TYPE_WEIGHTS = {"number": 0.25, "word": 0.5, "Word": 0.1, "WORD": 0.06, "text": 0.15,
                "Text": 0.2, "TEXT": 0.1, "code": 0.075, "mix": 0.15, "any": 0.01}
_FORMS = {"word": "lower", "Word": "capitalized", "WORD": "upper",
          "text": "lower", "Text": "capitalized", "TEXT": "upper"}
_NGRAM_ORDER = 4                      # 3 letters of context
# The n-gram is mixed with the uniform distribution at this weight, so a spelling English never
# uses still costs at most log(27 / NGRAM_UNIFORM) a letter. Chosen on 5,000 of the list's words
# held out of a table built from the rest: 2.077 nats a letter against 2.082 unmixed (2.095 at
# 0.1). Order 3 gives 2.275 nats, 5 gives 1.946 with a table 27 times larger (57 MB).
NGRAM_UNIFORM = 0.05
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_END, _START = 26, 26                 # symbol 26: the end (as a next symbol), the start (in context)
_CONTEXTS = 27 ** (_NGRAM_ORDER - 1)
_START_CONTEXT = _CONTEXTS - 1        # the start symbol in every place of the context
NEG = -math.inf
_WORD_TYPES = tuple(TYPES.index(t) for t in ("word", "Word", "WORD"))
_TEXT_TYPES = tuple(TYPES.index(t) for t in ("text", "Text", "TEXT"))


@dataclass(frozen=True)
class State:
    """A prefix as the model sees it: per type its log probability so far, the letters (lower
    case; None once a non-letter came), the word list's range of words that start so, and the
    n-gram's context (its last 3 letters)."""
    logp: tuple[float, ...]
    letters: str | None = ""
    lo: int = 0
    hi: int = -1      # -1: the whole list (set on the first letter)
    length: int = 0
    context: int = _START_CONTEXT

    def __post_init__(self) -> None:
        # The search asks each state's total, and looks states up by value (many paths reach one
        # prefix, and once only the "any" type is left every prefix of a length is the same
        # state), many times each: both are computed once, here.
        object.__setattr__(self, "total", _logsumexp(self.logp))  # log sum P(type) P(prefix | type)
        object.__setattr__(self, "_hash", hash((self.logp, self.letters, self.lo, self.hi,
                                                self.length, self.context)))

    def __hash__(self) -> int:
        return self._hash


class LanguageModel:
    """The mixture prior over strings of EMNIST-balanced classes; one per process (`default`)."""

    def __init__(self, words: Sequence[str], counts: Sequence[float],
                 weights: dict[str, float] | None = None):
        order = np.argsort(np.array(words, dtype=object), kind="stable")
        self.words = [words[i] for i in order]
        self.counts = np.asarray(counts, float)[order]
        self.cumulative = np.r_[0.0, np.cumsum(self.counts)]
        self.ngram = _ngram_table(self.words)
        self.set_weights(weights or TYPE_WEIGHTS)

    def set_weights(self, weights: dict[str, float]) -> None:
        total = sum(weights[t] for t in TYPES)
        self.weights = dict(weights)
        self.start = State(tuple(math.log(weights[t] / total) if weights[t] > 0 else NEG
                                 for t in TYPES))

    # ---------------------------------------------------------------- the incremental score

    def advance(self, state: State, label: str) -> State:
        """The state after one more character of class `label` ("3", "A", "a", "C" = c or C)."""
        logp = list(map(operator.add, state.logp, _steps(label, state.length == 0)))
        letters, lo, hi, context = None, 0, 0, _START_CONTEXT
        if label.isalpha() and state.letters is not None:
            code = _ALPHABET.index(label.lower())
            letters = state.letters + _ALPHABET[code]
            lo, hi = self._range(state, letters)
            word_step = (math.log(self._mass(lo, hi) / self._mass(*self._span(state)))
                         if hi > lo else NEG)
            _add_to_forms(logp, word_step, math.log(self.ngram[state.context, code]))
            context = (state.context * 27 + code) % _CONTEXTS
        return State(tuple(logp), letters, lo, hi, state.length + 1, context)

    def finish(self, state: State) -> State:
        """The state with the string ended: a word must be a whole word of the list, text
        pays its n-gram's end."""
        if state.length == 0:
            return State(tuple(NEG for _ in state.logp), state.letters, state.lo, state.hi, 0,
                         state.context)
        return State(self._word_ended(state), state.letters, state.lo, state.hi, state.length,
                     state.context)

    def space(self, state: State) -> State:
        """The state after a space: a line of words is words of the list, or free text, one
        after the other; each word ends as a string does and the next starts afresh. What is
        no word (a number, a code) goes on as before."""
        letters = "" if state.letters is not None else None
        return State(self._word_ended(state), letters, 0, -1, state.length, _START_CONTEXT)

    def _word_ended(self, state: State) -> tuple[float, ...]:
        """Each type's log probability with the prefix's last word ended."""
        logp = list(state.logp)
        lo, hi = self._span(state)
        whole = (state.letters is not None and hi > lo and self.words[lo] == state.letters)
        word_end = math.log(self.counts[lo] / self._mass(lo, hi)) if whole else NEG
        text_end = (math.log(self.ngram[state.context, _END])
                    if state.letters is not None else NEG)
        _add_to_forms(logp, word_end, text_end)
        return tuple(logp)

    def score(self, labels: Sequence[str], spaces: Sequence[int] = ()) -> float:
        """log P(string) of a whole string of classes, with a space before each position in
        `spaces`."""
        return self.finish(self.walk(self.start, labels, spaces)).total

    def walk(self, state: State, labels: Sequence[str], spaces: Sequence[int] = (),
             position: int = 0) -> State:
        """The state after `labels`, the first of them at `position` of the string, with a
        space before each position in `spaces`."""
        for i, label in enumerate(labels, position):
            state = self.advance(self.space(state) if i in spaces else state, label)
        return state

    def posterior(self, state: State) -> dict[str, float]:
        """P(type | string) of a finished state."""
        total = state.total
        return {t: (math.exp(v - total) if v != NEG else 0.0) for t, v in zip(TYPES, state.logp)}

    # ---------------------------------------------------------------- the word list's ranges

    def _span(self, state: State) -> tuple[int, int]:
        return (0, len(self.words)) if state.hi < 0 else (state.lo, state.hi)

    def _range(self, state: State, letters: str) -> tuple[int, int]:
        lo, hi = self._span(state)
        if hi <= lo:
            return 0, 0
        return (bisect.bisect_left(self.words, letters, lo, hi),
                bisect.bisect_left(self.words, letters + "{", lo, hi))  # "{" follows "z"

    def _mass(self, lo: int, hi: int) -> float:
        return self.cumulative[hi] - self.cumulative[lo]


def _case_fits(label: str, form: str, first: bool) -> bool:
    """Whether a class can be a letter of a string written in `form`, first or later. A merged
    class ("C": c or C) fits either case; given in lower case ("l": its shape says so), only
    its own."""
    if label.lower() in MERGED_LETTERS and label.isupper():
        return True
    upper = form == "upper" or (form == "capitalized" and first)
    return label.isupper() == upper


def _add_to_forms(logp: list[float], word: float, text: float) -> None:
    """Add the word list's step to the word types and the n-gram's to the text types, in place
    (a type already ruled out stays so)."""
    for types, step in ((_WORD_TYPES, word), (_TEXT_TYPES, text)):
        for t in types:
            if logp[t] != NEG:
                logp[t] += step


@lru_cache(maxsize=None)
def _steps(label: str, first: bool) -> tuple[float, ...]:
    """What one more character of class `label` adds to each type's log probability, but for
    the word list's and the n-gram's own steps: a type it cannot be part of gets -inf."""
    digit, letter = label.isdigit(), label.isalpha()
    merged = label.lower() in MERGED_LETTERS
    steps = []
    for name in TYPES:
        if name == "number":
            fits, cost = digit, math.log(10)
        elif name == "code":
            fits, cost = digit or label.isupper(), math.log(36)  # merged letters are upper too
        elif name == "mix":
            fits, cost = digit or not label.isupper() or merged, math.log(36)
        elif name == "any":
            fits, cost = True, math.log(47)
        else:
            fits, cost = letter and _case_fits(label, _FORMS[name], first), 0.0
        steps.append(-cost if fits else NEG)
    return tuple(steps)


def _ngram_table(words: Sequence[str]) -> np.ndarray:
    """P(next | the 3 symbols before), (27^3, 27): Witten-Bell interpolation of the 4-, 3-, 2-
    and 1-gram estimates down to the uniform one. Each word counts once: made-up words and
    names look like the spelling of words, not like the frequency of "the"."""
    text = "".join("{{{" + w + "|" for w in words)  # "{": start (code 26), "|": end (code 26 next)
    codes = np.frombuffer(text.encode(), np.uint8).astype(np.int64) - ord("a")
    codes[codes == ord("{") - ord("a")] = _START
    codes[codes == ord("|") - ord("a")] = _END
    # Every position that is a letter or an end, with the 3 symbols before it.
    targets = np.flatnonzero(np.frombuffer(text.encode(), np.uint8) != ord("{"))
    table = np.full(27, 1 / 27, np.float32)
    for order in range(1, _NGRAM_ORDER + 1):
        k = order - 1  # context length
        context = np.zeros(len(targets), np.int64)
        for j in range(k, 0, -1):
            context = context * 27 + codes[targets - j]
        # float32 and in place: the largest table is 27^3 x 27, built once per process.
        counts = np.bincount(context * 27 + codes[targets],
                             minlength=27 ** (k + 1)).reshape(27 ** k, 27).astype(np.float32)
        seen = counts.sum(1, keepdims=True)
        distinct = (counts > 0).sum(1, keepdims=True).astype(np.float32)
        # The lower order's estimate for each context: drop its oldest symbol.
        lower = table[np.arange(27 ** k) % (27 ** max(k - 1, 0))] if k else table[None]
        counts += distinct * lower
        counts /= np.maximum(seen + distinct, 1e-12)
        empty = seen[:, 0] == 0
        counts[empty] = lower[empty]
        table = counts
    return (1 - NGRAM_UNIFORM) * table + NGRAM_UNIFORM / 27


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == NEG:
        return NEG
    return top + math.log(sum([math.exp(v - top) for v in values]))  # exp(-inf) adds 0.0


def load_words(path: str | Path = WORDS_FILE) -> tuple[list[str], list[float]]:
    """The shipped list: one `word<TAB>count` a line (count per billion words)."""
    words, counts = [], []
    with gzip.open(path, "rt", encoding="ascii") as f:
        for line in f:
            word, count = line.split("\t")
            words.append(word)
            counts.append(float(count))
    return words, counts


@lru_cache(maxsize=1)
def default() -> LanguageModel:
    """The shipped model, built once per process on first use."""
    return LanguageModel(*load_words())


def build(out: str | Path = WORDS_FILE, size: int = 50_000) -> Path:
    """Write the shipped list from wordfreq's English list: its `size` most frequent words,
    letters only, lower case, with their frequency per billion words."""
    from wordfreq import top_n_list, word_frequency

    kept = {}
    for word in top_n_list("en", size):
        if word.isascii() and word.isalpha() and (len(word) > 1 or word in ("a", "i")):
            kept[word.lower()] = max(1, round(word_frequency(word, "en") * 1e9))
    out = Path(out)
    with gzip.GzipFile(out, "wb", mtime=0) as f:  # mtime 0: the same list, the same bytes
        f.write("".join(f"{w}\t{kept[w]}\n" for w in sorted(kept)).encode("ascii"))
    return out


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python -m emnist_draw.language build")
    path = build()
    print(f"{path}: {len(load_words(path)[0])} words, {path.stat().st_size} bytes")
