"""The language model: a prior over strings of EMNIST-balanced classes (emnist_draw/language.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import emnist_draw.language as language
from emnist_draw.language import TYPES, WORDS_FILE, default, load_words
from emnist_draw.reader import balanced_form


@pytest.fixture(scope="module")
def model():
    return default()


def score(model, text: str) -> float:
    return model.score(balanced_form(text))


def posterior(model, text: str) -> dict[str, float]:
    state = model.start
    for label in balanced_form(text):
        state = model.advance(state, label)
    return model.posterior(model.finish(state))


def best_type(model, text: str) -> str:
    types = posterior(model, text)
    return max(types, key=types.get)


def test_the_shipped_word_list_is_compact_lower_case_and_frequency_weighted():
    assert WORDS_FILE.stat().st_size < 1_000_000
    words, counts = load_words()
    assert len(words) > 30_000 and all(w.isascii() and w.isalpha() and w.islower() for w in words)
    frequency = dict(zip(words, counts))
    assert frequency["the"] > frequency["house"] > frequency["yellow"] > frequency["zebra"]


def test_words_in_every_form_beat_their_misreadings(model):
    # The misreadings the digit/letter switch cost and a lexicon of lower-case words let through.
    assert score(model, "YELLOW") > score(model, "YEIIOW") + 5
    assert score(model, "Yellow") > score(model, "Ye11ow") + 5
    assert score(model, "house") > score(model, "hovse") + 5
    assert best_type(model, "YELLOW") == "WORD" and best_type(model, "house") == "word"
    assert best_type(model, "Garden") == "Word"


def test_strings_no_list_holds_are_still_possible(model):
    assert best_type(model, "2024") == "number"
    # Capitals and digits: a code (or anything at all), never a number, word or text.
    assert best_type(model, "AB12C") in ("code", "any") and best_type(model, "R2D2") in ("code", "any")
    assert posterior(model, "AB12C")["code"] > 0.3
    assert best_type(model, "blorf") in ("text", "word")  # made-up, spelled like English
    # The same in lower case is a mix; a string of both cases of unmerged letters fits only
    # "any", and is far less likely than the same classes in one case.
    assert best_type(model, "x7k2b") == "mix" and best_type(model, "3fa9c") == "mix"
    assert best_type(model, "aB3x") == "any"
    assert score(model, "ZAREMU") > score(model, "zaREmu") + 3
    assert score(model, "5f2aqc") > score(model, "5F2aqc") + 3
    # A pronounceable made-up word is likelier than letters no word is spelled with.
    assert score(model, "blorf") > score(model, "qxzjv")
    assert all(math.isfinite(score(model, s)) for s in ("aB3x", "QXRT", "7", "zzzzzz"))


def test_a_line_is_words_one_after_the_other(model):
    """A space ends a word as the string's end does: two listed words with a space between them
    are likelier than the same letters as one string, and a listed word cut by a space less
    likely than whole; a number or a code pays nothing for a space."""
    line = balanced_form("happydays")
    assert model.score(line, spaces=[5]) > model.score(line) + 5
    assert model.score(balanced_form("garden"), spaces=[3]) < score(model, "garden") - 5
    assert model.score("2024", spaces=[2]) == pytest.approx(model.score("2024"))
    assert model.score("AB12C", spaces=[2]) == pytest.approx(model.score("AB12C"), abs=0.01)


def test_the_letter_model_generalises_to_words_it_never_saw(model, monkeypatch):
    """Mixed with the uniform, the n-gram spells words held out of its table better (fewer nats
    a letter) than alone, and no letter after any context costs more than log(27 / weight)."""
    assert model.ngram.min() >= language.NGRAM_UNIFORM / 27 * (1 - 1e-6)
    words, _ = load_words()
    held_out, rest = words[::10], [w for i, w in enumerate(words) if i % 10]

    def nats_a_letter(table) -> float:
        costs = []
        for word in held_out:
            context = language._START_CONTEXT  # the 3 symbols before, as the model's states keep it
            for symbol in [language._ALPHABET.index(c) for c in word] + [26]:
                costs.append(-math.log(table[context, symbol]))
                context = (context * 27 + symbol) % language._CONTEXTS
        return float(np.mean(costs))

    mixed = nats_a_letter(language._ngram_table(rest))
    monkeypatch.setattr(language, "NGRAM_UNIFORM", 0.0)
    alone = nats_a_letter(language._ngram_table(rest))
    assert 1.5 < mixed < alone - 0.002


def test_the_prior_is_incremental_and_each_type_normalised(model):
    # advance then finish is the whole string's score, prefix by prefix.
    state = model.start
    for label in balanced_form("Garden"):
        state = model.advance(state, label)
    assert model.finish(state).total == pytest.approx(score(model, "Garden"))
    # The n-gram's next-symbol distributions sum to one.
    assert np.allclose(model.ngram.sum(1), 1.0)
    # The text type pays each letter's n-gram probability after the 3 symbols before it (the
    # start padded), and the end's: the states' running context is that of the letters.
    text = TYPES.index("text")
    symbols = [language._ALPHABET.index(c) for c in "zebra"] + [26]
    padded = [26, 26, 26] + symbols
    expected = sum(math.log(model.ngram[(padded[i] * 27 + padded[i + 1]) * 27 + padded[i + 2],
                                        padded[i + 3]]) for i in range(len(symbols)))
    ended = model.finish(_walk(model, "zebra")).logp[text] - model.start.logp[text]
    assert ended == pytest.approx(expected, abs=1e-9)
    # The word type's probabilities of all words sum to one (the list's frequencies).
    words = model.words[:300]
    total = sum(math.exp(model.finish(_walk(model, w)).logp[TYPES.index("word")]
                         - model.start.logp[TYPES.index("word")]) for w in words)
    assert total == pytest.approx(sum(model.counts[:300]) / model.cumulative[-1], rel=1e-6)


def _walk(model, word):
    state = model.start
    for label in balanced_form(word):
        state = model.advance(state, label)
    return state


def test_the_list_is_loaded_on_the_first_read_not_at_start_up():
    code = ("import json; from emnist_draw.server.app import create_app; "
            "from emnist_draw import language; create_app(); "
            "print(json.dumps(language.default.cache_info().currsize))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == 0
