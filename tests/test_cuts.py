"""The cut network (emnist_draw.cuts): where touching characters meet in pictures of lines of
writers it never saw, what that does for reading them, its bounded work, and its training."""

from __future__ import annotations

import numpy as np
import pytest

from emnist_draw import cuts, reader as reader_module
from emnist_draw.composed import composed_strings, line_image
from emnist_draw.reader import balanced_form
from emnist_draw.train_cuts import examples, export, figures, fit

pytest.importorskip("torch")  # the training test; the others need only ONNX Runtime


@pytest.mark.parametrize("pen", [0.06, 0.1])
def test_it_finds_where_touching_characters_meet_on_unseen_writers(pen):
    """Pictures of 200 strings composed from the measure writers' characters, spaced from
    overlapping to wide, drawn with the bench's pen (6% of the capitals' height) and a wider one.
    Of the joins inside a run of inked columns (characters that touch or overlap, which the runs
    alone never cut): the share with a cut near the best one, and the cuts near no join.
    Measured: 93.8% and 0.11 a character; 91.6% and 0.16 at the wider pen. A profile of the
    columns' ink found the joins of 7-29% of touching strings."""
    found = figures(cuts.default(), examples(200, seed=7, part="measure", pens=(pen, pen)))
    assert found["joins_in_runs"] > 300
    assert found["joins_found"] > 0.88
    assert found["extra_cuts_per_character"] < 0.3


def test_touching_strings_read_from_pictures(reader):
    """Tightly written strings of the measure writers, as pictures: their characters touch, so
    uncut they read 0% (every run of inked columns was one primitive). Measured: 53 of 88."""
    strings = [s for s in composed_strings(300, "measure", seed=8) if s[2] == "tight"]
    exact = [balanced_form(reader.read_image(line_image(strokes)).text) == balanced_form(text)
             for _, text, _, strokes in strings]
    assert len(exact) > 60 and np.mean(exact) >= 0.4


def test_spaced_strings_are_not_cut_into_more_than_a_character_holds(reader):
    """Well spaced strings keep every character within MAX_PARTS pieces, so cutting costs them
    nothing they could read before."""
    for _, text, spacing, strokes, owners in composed_strings(60, "measure", seed=9,
                                                              with_owners=True):
        if spacing != "normal":
            continue
        graph, runs = reader.image_candidates(
            reader_module.image_to_ink(line_image(strokes)))
        assert len(runs) <= reader_module.MAX_PARTS * len(text)


def test_a_line_too_long_for_the_network_is_read_as_its_runs(monkeypatch):
    """The network's work grows with the band: a line longer than MAX_COLUMNS band columns is
    not looked at (its runs are its primitives), and every line it looks at is at most that."""
    seen = []
    probabilities = cuts.Cuts.probabilities
    monkeypatch.setattr(cuts.Cuts, "probabilities",
                        lambda self, small: seen.append(small.shape) or probabilities(self, small))
    long_line = np.zeros((4, 4 * cuts.MAX_COLUMNS // cuts.ROWS + 8), np.float32)
    long_line[:, 1:-1] = 1.0
    runs = [(1, long_line.shape[1] - 1)]
    assert cuts.default().cut(long_line, runs) == runs and seen == []
    longest = np.zeros((32, cuts.MAX_COLUMNS), np.float32)
    longest[:, 1:-1] = 1.0
    cuts.default().cut(longest, [(1, cuts.MAX_COLUMNS - 1)])
    assert seen == [(cuts.ROWS, cuts.MAX_COLUMNS)]


def test_training_on_real_files_makes_a_network_the_reader_loads(tmp_path):
    """The training path end to end, small: pictures of the tune writers' strings -> labels ->
    the network -> ONNX that `Cuts` loads and runs on a line of any length."""
    train, check = examples(48, seed=5), examples(12, seed=6)
    net, info = fit(train, check, epochs=2)
    export(net, tmp_path / "cuts.onnx")
    loaded = cuts.Cuts(tmp_path / "cuts.onnx")
    for ink, small, labels, best in check[:3]:
        likely = loaded.probabilities(small)
        assert likely.shape == labels.shape and ((0 <= likely) & (likely <= 1)).all()
    assert info["epochs"] in (1, 2)
    assert set(figures(loaded, check)) >= {"joins_found", "extra_cuts_per_character"}
