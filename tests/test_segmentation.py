"""The whole-character model (emnist_draw.segmentation): on real ink of writers it never saw, in
the reader's search, and its training on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emnist_draw import reader as reader_module
from emnist_draw.composed import composed_strings
from emnist_draw.reader import StringReader, balanced_form
from emnist_draw.segmentation import FEATURES, GEOMETRY, MODEL_FILE, WholeCharacter, default, gate
from emnist_draw.train_segmentation import _figures, examples, fit, segmented_words


@pytest.fixture(scope="module")
def every(recognizer):
    """A reader of every candidate, none gated: what the models are trained and measured on."""
    return StringReader(recognizer, every_candidate=True)


@pytest.fixture(scope="module")
def measure_words():
    """UNIPEN's printed strings of the measure writers with their characters segmented."""
    words = segmented_words("measure")
    return [(strokes, owners) for _, strokes, owners in words[::10]]


def test_it_tells_whole_characters_from_pieces_on_unseen_writers(every, measure_words):
    """Every candidate of 300 real strings of the measure writers: whole characters (their
    strokes exactly one character's) against fragments, merges and mixes. Measured: AUC 0.994,
    96.6% right at even odds; the rule it replaced (a size and an overlap cost) has no odds."""
    x, y = examples(every, measure_words)
    figures = _figures(default().log_odds(x), y)
    assert figures["candidates"] > 4000 and 0.2 < y.mean() < 0.5
    assert figures["auc"] > 0.97 and figures["accuracy"] > 0.92


def test_it_tells_whole_characters_in_pictures_of_lines(every):
    """Pictures of 120 composed strings of the measure writers (the image path: the primitives
    are runs of inked columns, cut where characters touch; a candidate whole when it holds 90% of
    one character's ink and little else). Measured: 1,255 candidates, AUC 0.984, 93.6% right at
    even odds (before the cuts, 780 candidates, none of them pieces of touching characters: AUC
    1.0)."""
    strings = [(s[3], s[4]) for s in composed_strings(120, "measure", seed=4, with_owners=True)]
    x, y = examples(every, strings, images=True)
    assert (x[:, FEATURES.index("columns")] == 1).all()
    figures = _figures(default().log_odds(x), y)
    assert figures["candidates"] > 1000 and figures["auc"] > 0.97 and figures["accuracy"] > 0.9


def test_the_strokes_of_a_capital_are_one_character_and_each_alone_is_not(every):
    """The multi-stroke characters (H, K, E, 4 ...) of the measure writers' codes and capitals:
    all their strokes together score higher than any one of them alone, and are whole. Measured
    234 and 238 of 244."""
    strings = [s for s in composed_strings(300, "measure", seed=3, with_owners=True)
               if s[0] in ("code", "capitals")]
    above_pieces = whole = count = 0
    for _, _, _, strokes, owners in strings:
        graph = every.candidates(strokes)
        odds = default().log_odds(graph.features())
        by_parts = {frozenset(graph.order[k] for k in range(a, b)): o
                    for (a, b), o in zip(graph.spans, odds)}
        for strokes_of_one in owners:
            if 2 <= len(strokes_of_one) <= 4:
                together = by_parts.get(frozenset(strokes_of_one), -np.inf)
                count += 1
                above_pieces += together > max(by_parts[frozenset([i])] for i in strokes_of_one)
                whole += together > 0
    assert count > 200 and above_pieces / count > 0.9 and whole / count > 0.9


def test_codes_and_capitals_of_unseen_writers(reader):
    """Codes and random capitals of the measure writers: 200 strings read with the
    learned score. Measured 71.5% exact (68% with 4 classes tried a candidate, 64.5% with the
    size and overlap costs the learned score replaced)."""
    strings = [s for s in composed_strings(600, "measure", seed=3) if s[0] in ("code", "capitals")]
    exact = [balanced_form(reader.read_strokes(strokes).text) == balanced_form(text)
             for _, text, _, strokes in strings]
    assert len(exact) == 200 and np.mean(exact) >= 0.62


def test_training_on_real_files_makes_a_model_the_reader_loads(every, tmp_path):
    """The training path end to end, small: composed strings of the tune writers -> examples ->
    the MLP -> a JSON the reader's loader takes, which separates the held-out candidates."""
    strings = [(s[3], s[4]) for s in composed_strings(60, "tune", seed=5, with_owners=True)]
    x, y = examples(every, strings[:48])
    x_check, y_check = examples(every, strings[48:])
    weights, info = fit(x, y, x_check, y_check, epochs=15)
    path = tmp_path / "whole.json"
    path.write_text(json.dumps({"features": list(FEATURES), **weights, **info}))
    model = WholeCharacter(path)
    assert _figures(model.log_odds(x_check), y_check)["auc"] > 0.9
    assert info["epochs"] <= 15


def test_a_model_for_other_features_is_refused_saying_what_to_do(tmp_path):
    data = json.loads(MODEL_FILE.read_text())
    data["features"][-1] = "a feature this code does not compute"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="retrain it"):
        WholeCharacter(path)


def test_the_shipped_model_says_what_it_was_trained_on():
    info = default().info
    assert info["features"] == list(FEATURES)
    assert info["held_out"]["auc"] > 0.97 and info["strings"]["real"] > 5000


def test_the_gate_keeps_whole_characters_and_skips_a_third_of_the_rest(every, measure_words):
    """The gate reads the geometry alone, before a candidate is rendered. On every candidate of
    300 real strings of the measure writers, those of several strokes it turns away (odds under
    e^GATE) hold almost no whole character. Measured: 1,698 of 5,785 candidates turned away
    (29%), none of the 1,798 whole ones among them."""
    x, y = examples(every, measure_words)
    assert set(gate().info["features"]) == set(GEOMETRY)
    turned_away = (gate().log_odds(x) < reader_module.GATE) & (x[:, FEATURES.index("parts")] > 1)
    assert turned_away.mean() > 0.2
    assert (turned_away & (y == 1)).sum() <= 0.003 * y.sum()


def test_a_gated_read_renders_fewer_candidates_and_reads_as_well(reader, every):
    """100 composed strings of the measure writers, all six kinds, read with the gate and
    without it: the same number right, within one, for a quarter fewer candidates rendered.
    Measured: 73 and 73 right, 1,263 and 1,691 candidates."""
    right, rendered = {}, {}
    for name, each in (("gated", reader), ("every", every)):
        right[name] = rendered[name] = 0
        for _, text, _, strokes in composed_strings(100, "measure", seed=8):
            each.recent.items.clear()
            right[name] += balanced_form(each.read_strokes(strokes).text) == balanced_form(text)
            rendered[name] += len(each.candidates(strokes).spans)
    assert abs(right["gated"] - right["every"]) <= 1
    assert rendered["gated"] < 0.85 * rendered["every"]
