"""`emnist-draw feedback export` on rows it cannot turn into examples: stored before labels and
segments were checked, or by another writer. Each is skipped and named with its reason, never a
traceback and never a wrong class; the store refuses such rows when they are written."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import insert

from emnist_draw import store
from emnist_draw.data import BALANCED_CLASSES, load_pair
from emnist_draw.preprocess import strokes_to_input

INPUT = np.arange(784, dtype=np.uint8).reshape(28, 28)
# Three strokes: a "1", a "2" and a "C".
INK = {"strokes": [[[10, 10], [10, 90]], [[40, 10], [70, 10], [40, 90], [75, 90]],
                   [[110, 10], [90, 50], [110, 90]]]}
COMMON = {"model_name": "m", "model_sha256": "0" * 64, "charset": "all"}


def row(label: str, **kw) -> dict:
    return {"created_at": datetime.now(timezone.utc), "label": label, "predicted": "4",
            "ink_kind": "strokes", "ink": {"strokes": [[[1, 2], [3, 4]]]},
            "input": INPUT.tobytes(), **COMMON, **kw}


def string_row(labels: str, segments, ink=INK) -> dict:
    return {"created_at": datetime.now(timezone.utc), "read": "1ZL", "text": labels,
            "labels": labels, "segments": segments,
            "characters": len(segments) if isinstance(segments, list) else 0, "ink": ink,
            **COMMON}


@pytest.fixture
def data_dir(tmp_path):
    """A real SQLite store, migrated as the server migrates it."""
    folder = tmp_path / "data"
    store.upgrade(store.database_url(folder))
    return folder


def put(folder, table, *rows) -> list[int]:
    """Rows written straight into the database, past every check of the app and the store."""
    engine = store.make_engine(store.database_url(folder))
    try:
        with engine.begin() as conn:
            return [conn.execute(insert(table).values(**r)).inserted_primary_key[0] for r in rows]
    finally:
        engine.dispose()


def export(folder, out) -> dict:
    done = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "feedback", "export",
                           "--out", str(out), "--data-dir", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_rows_that_are_no_example_are_skipped_and_named(data_dir, tmp_path):
    good = put(data_dir, store.corrections, row("7"), row("c"))
    bad = put(data_dir, store.corrections, row("é"), row(""), row("AB"),
              row("7", input=b"\x00" * 100))
    good_string, = put(data_dir, store.string_corrections, string_row("12C", [[0], [1], [2]]))
    bad_strings = put(data_dir, store.string_corrections,
                      string_row("12C", [[0], [1], [99]]),  # names a stroke the ink lacks
                      string_row("AB", [[0, 1]]),  # two labels, one segment
                      string_row("1é", [[0], [1]]),
                      string_row("", []),
                      string_row("12", [[0], ["1"]]),
                      string_row("1", [[0]], ink={"strokes": [[["x", 1]]]}),
                      string_row("1", [[0]], ink={"image": "data:,"}))
    summary = export(data_dir, tmp_path / "out")

    reasons = {(s["table"], s["id"]): s["reason"] for s in summary["skipped"]}
    assert summary["skipped_count"] == len(reasons) == len(bad) + len(bad_strings)
    assert set(reasons) == ({("corrections", i) for i in bad}
                            | {("string_corrections", i) for i in bad_strings})
    assert reasons[("corrections", bad[0])] == (
        'label "\\u00e9" is not one of the 47 EMNIST-balanced classes')
    assert 'label ""' in reasons[("corrections", bad[1])]
    assert 'label "AB"' in reasons[("corrections", bad[2])]
    assert "100 bytes" in reasons[("corrections", bad[3])]
    assert reasons[("string_corrections", bad_strings[0])] == (
        "segments[2] names stroke 99, but the ink has strokes 0 to 2")
    assert "1 segments for 2 labels" in reasons[("string_corrections", bad_strings[1])]
    assert "labels[1]" in reasons[("string_corrections", bad_strings[2])]
    assert 'labels ""' in reasons[("string_corrections", bad_strings[3])]
    assert 'stroke "1"' in reasons[("string_corrections", bad_strings[4])]
    assert "cannot be drawn" in reasons[("string_corrections", bad_strings[5])]
    assert "no list of strokes" in reasons[("string_corrections", bad_strings[6])]

    # What is exported is exactly the good rows, each with its own class.
    images, labels = load_pair(summary["images"], summary["labels"])
    assert summary["count"] == len(labels) == len(good) + 3 and summary["from_strings"] == 3
    assert [BALANCED_CLASSES[i] for i in labels] == ["7", "C", "1", "2", "C"]
    assert np.array_equal(images[0], INPUT)
    assert np.array_equal(images[4], strokes_to_input([INK["strokes"][2]]))
    assert good_string


@pytest.mark.parametrize("label", ["é", "", "AB", "?", "ß"])
def test_the_store_refuses_a_label_that_is_no_class(data_dir, label):
    engine = store.make_engine(store.database_url(data_dir))
    try:
        with pytest.raises(store.Unusable, match="not one of the 47"):
            store.add_correction(engine, store.Correction(label=label, predicted="4", ink=INK,
                                                          input=INPUT, **COMMON))
        if len(label) == 1:  # a string's labels: one class per character
            with pytest.raises(store.Unusable, match=r"labels\[1\]: .* not one of the 47"):
                store.add_string_correction(engine, store.StringCorrection(
                    read="", text="1" + label, labels="1" + label, ink=INK, segments=None,
                    **COMMON))
        assert store.count_corrections(engine)["count"] == 0
    finally:
        engine.dispose()


def test_the_store_refuses_segments_that_name_no_stroke(data_dir):
    engine = store.make_engine(store.database_url(data_dir))
    try:
        for labels, segments, why in [("12C", [[0], [1], [99]], "names stroke 99"),
                                      ("AB", [[0, 1]], "1 segments for 2 labels"),
                                      ("1", [[]], "not a list of strokes")]:
            with pytest.raises(store.Unusable, match=why):
                store.add_string_correction(engine, store.StringCorrection(
                    read="", text=labels, labels=labels, ink=INK, segments=segments, **COMMON))
        assert store.count_corrections(engine)["strings"] == 0
    finally:
        engine.dispose()
