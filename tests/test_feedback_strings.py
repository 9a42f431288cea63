"""String corrections (`POST /api/feedback/read`) against the real server, on SQLite and on a real
PostgreSQL server: a real UNIPEN string read through `/api/read`, corrected with the strokes of
each of its characters, stored, counted and exported as one training image per character.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from emnist_draw import store
from emnist_draw.data import BALANCED_CLASSES, load_pair
from emnist_draw.preprocess import strokes_to_input
from emnist_draw.server.schemas import MAX_BODY_BYTES, MAX_STROKES
from emnist_draw.unipen import Written, load_written

from app_helpers import live_server
from store_backends import Backend, backend, module_backend, postgres  # noqa: F401 (fixtures)

SEVEN = [[[10, 10], [90, 10], [45, 95]]]
# Three strokes: "1", "2" and a "C"; ints, as a client may send them.
INK = [[[10, 10], [10, 90]], [[40, 10], [70, 10], [40, 90], [75, 90]],
       [[110, 10], [90, 50], [110, 90]]]
GOOD = {"strokes": INK, "canvas": {"width": 150, "height": 100}, "read": "1ZL", "text": "12c",
        "segments": [[0], [1], [2]]}


@pytest.fixture(scope="module")
def served(module_backend: Backend):
    with live_server(*module_backend.serve_args, env=module_backend.env) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        yield client, module_backend


def stats(client: httpx.Client) -> dict:
    r = client.get("/api/feedback/stats")
    assert r.status_code == 200, r.text
    return r.json()


def balanced(char: str) -> str:
    """The class a character is trained as, written out here rather than taken from the app."""
    return char if char in BALANCED_CLASSES else char.upper()


def misread_unipen(client: httpx.Client) -> tuple[Written, dict]:
    """A real printed UNIPEN string that /api/read splits into the right number of characters,
    one of them of several strokes, but reads wrong (so the correction is a real one), and its
    reading."""
    for sample in load_written("measure"):
        if not (sample.printed and " " not in sample.text and len(sample.strokes) <= MAX_STROKES
                and sum(map(len, sample.strokes)) <= 2000):
            continue
        r = client.post("/api/read", json={"strokes": sample.strokes})
        assert r.status_code == 200, r.text
        reading = r.json()
        classes = "".join(balanced(c) for c in reading["text"])
        if (len(reading["characters"]) == len(sample.text)
                and classes != "".join(balanced(c) for c in sample.text)  # not only its case
                and any(len(c["strokes"]) > 1 for c in reading["characters"])):
            return sample, reading
    pytest.fail("no UNIPEN string of the measure writers is read wrong with the right length")


def export(backend: Backend, out) -> dict:
    done = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "feedback", "export",
                           "--out", str(out), *backend.serve_args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **backend.env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_misread_unipen_string_becomes_one_example_per_character(served, tmp_path):
    client, backend = served
    model = client.get("/api/model").json()
    sample, reading = misread_unipen(client)
    segments = [c["strokes"] for c in reading["characters"]]
    before = stats(client)
    body = {"strokes": sample.strokes, "charset": "all", "read": reading["text"],
            "text": sample.text, "segments": segments}
    r = client.post("/api/feedback/read", json=body)
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["characters"] == len(sample.text) == len(segments)
    print(f"\nUNIPEN {sample.text!r} read as {reading['text']!r}: {len(segments)} characters, "
          f"strokes {segments}")

    after = stats(client)
    assert after["strings"] == before["strings"] + 1
    assert after["string_characters"] == before["string_characters"] + len(segments)
    assert (after["count"], after["labels"]) == (before["count"], before["labels"])

    row = next(s for s in store.iter_string_corrections(backend.engine()) if s.id == saved["id"])
    assert json.dumps(row.ink) == json.dumps({"strokes": sample.strokes})  # as sent
    assert (row.read, row.text, row.segments, row.charset) == (
        reading["text"], sample.text, segments, "all")
    assert row.labels == "".join(balanced(c) for c in sample.text)
    assert (row.model_name, row.model_sha256) == (model["name"], model["onnx_sha256"])
    assert row.created_at is not None

    # A single correction beside it: the two kinds share the idx files and their labels.
    single = client.post("/api/feedback", json={"strokes": SEVEN, "label": "7", "predicted": "1"})
    assert single.status_code == 201, single.text
    written = export(backend, tmp_path / "out")
    images, labels = load_pair(written["images"], written["labels"])  # as training reads them
    singles = list(store.iter_corrections(backend.engine()))
    strings = [s for s in store.iter_string_corrections(backend.engine()) if s.replaced_by is None]
    from_strings = sum(s.characters for s in strings)
    assert written["from_strings"] == from_strings >= len(segments)
    assert written["count"] == len(labels) == len(singles) + from_strings
    assert np.array_equal(images[:len(singles)], np.stack([c.input for c in singles]))
    assert labels[len(singles) - 1] == BALANCED_CLASSES.index("7")
    # This string's characters, where its row's turn comes: drawn from its strokes by the one
    # preprocessing function, labelled in the balanced numbering.
    start = len(singles) + sum(s.characters for s in strings if s.id < saved["id"])
    ours = slice(start, start + len(segments))
    expected = np.stack([strokes_to_input([sample.strokes[i] for i in segment])
                         for segment in segments])
    assert np.array_equal(images[ours], expected)
    assert labels[ours].tolist() == [BALANCED_CLASSES.index(balanced(c)) for c in sample.text]


def test_a_retyped_text_without_segments_is_kept_and_yields_no_examples(served, tmp_path):
    client, backend = served
    before = stats(client)
    exported = export(backend, tmp_path / "before")
    body = {"strokes": INK, "read": "1ZL", "text": "12 C4"}  # retyped: another length
    r = client.post("/api/feedback/read", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["characters"] == 0
    row = next(s for s in store.iter_string_corrections(backend.engine()) if s.id == r.json()["id"])
    assert (row.text, row.read, row.segments, row.labels) == ("12 C4", "1ZL", None, "12C4")
    assert row.ink == {"strokes": INK}
    after = stats(client)
    assert after["strings"] == before["strings"] + 1
    assert after["string_characters"] == before["string_characters"]
    again = export(backend, tmp_path / "after")
    assert (again["count"], again["from_strings"]) == (exported["count"], exported["from_strings"])


def test_spaces_are_no_characters_and_a_lower_case_is_its_class(served):
    client, backend = served
    body = {**GOOD, "text": " 1 2c ", "charset": "digits"}
    r = client.post("/api/feedback/read", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["characters"] == 3
    row = next(s for s in store.iter_string_corrections(backend.engine()) if s.id == r.json()["id"])
    assert (row.text, row.labels, row.charset) == (" 1 2c ", "12C", "digits")
    assert row.ink == {"strokes": INK, "canvas": {"width": 150, "height": 100}}
    # Strokes in no segment are fine (the reader drops tiny marks).
    r = client.post("/api/feedback/read", json={**GOOD, "text": "12", "segments": [[0], [2]]})
    assert r.status_code == 201 and r.json()["characters"] == 2, r.text


def test_a_pasted_text_with_unicode_spaces_is_read_as_spaces(served):
    client, backend = served
    # No-break space (what a page pastes), narrow no-break, ideographic, em, thin; full-width
    # "ｃ" is NFKC's "c" as before.
    for space in ("\u00a0", "\u202f", "\u3000", "\u2003", "\u2009"):
        r = client.post("/api/feedback/read", json={**GOOD, "text": f"1{space}2{space}ｃ"})
        assert r.status_code == 201, (space, r.text)
        saved = row(backend, r.json()["id"])
        assert (saved.text, saved.labels, saved.characters) == ("1 2 ｃ", "12C", 3)
    # What was read may hold what the reader answers: spaces, letters of either case.
    r = client.post("/api/feedback/read", json={**GOOD, "read": "1 z L"})
    assert r.status_code == 201 and row(backend, r.json()["id"]).read == "1 z L", r.text


def test_a_string_read_on_two_lines_can_be_corrected(served):
    # /api/read joins the lines of writing on several lines with "\n": the page sends that text.
    client, backend = served
    r = client.post("/api/feedback/read", json={**GOOD, "read": "1\nZL", "text": "1\n2C"})
    assert r.status_code == 201, r.text
    saved = row(backend, r.json()["id"])
    assert (saved.read, saved.text, saved.labels) == ("1\nZL", "1\n2C", "12C")
    # Any other control character still is not text anyone read.
    r = client.post("/api/feedback/read", json={**GOOD, "read": "1\tZL"})
    assert r.status_code == 422 and "U+0009" in r.text, r.text


def row(backend: Backend, correction_id: int) -> store.StringCorrection:
    return next(s for s in store.iter_string_corrections(backend.engine()) if s.id == correction_id)


def post(client: httpx.Client, body: dict) -> int:
    """The id of a string correction the server saved."""
    r = client.post("/api/feedback/read", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_second_character_corrected_replaces_the_first_correction(served, tmp_path):
    # "1ZL" read; the person corrects character 2 ("12L": the L still wrong, and labelled as if
    # right), then character 3 ("12C"), then retypes it whole to another length.
    client, backend = served
    before, exported = stats(client), export(backend, tmp_path / "before")
    first = post(client, {**GOOD, "text": "12L"})
    second = post(client, {**GOOD, "text": "12C", "replaces": first})
    assert (row(backend, first).replaced_by, row(backend, second).replaced_by) == (second, None)
    assert row(backend, second).text == "12C" and row(backend, first).text == "12L"  # both kept
    after = stats(client)
    assert after["strings"] == before["strings"] + 2
    assert after["strings_replaced"] == before["strings_replaced"] + 1
    assert after["string_characters"] == before["string_characters"] + 3  # "12C", not "12L" too
    written = export(backend, tmp_path / "after")
    assert written["from_strings"] == exported["from_strings"] + 3
    assert written["strings_replaced"] == exported["strings_replaced"] + 1
    images, labels = load_pair(written["images"], written["labels"])
    assert labels[-3:].tolist() == [BALANCED_CLASSES.index(c) for c in "12C"]  # the latest last
    assert np.array_equal(images[-1], strokes_to_input([INK[2]]))

    # A retyped text (no segments) replaces it as well: then this ink yields no examples at all.
    third = post(client, {**GOOD, "text": "12 C4", "segments": None, "replaces": second})
    assert row(backend, second).replaced_by == third
    assert stats(client)["string_characters"] == before["string_characters"]
    assert export(backend, tmp_path / "retyped")["from_strings"] == exported["from_strings"]


def test_replaces_that_cannot_be_is_a_clear_4xx_and_nothing_is_stored(served):
    client, _ = served
    first = post(client, GOOD)
    second = post(client, {**GOOD, "replaces": first})
    before = stats(client)
    refused = [  # (changes to GOOD, status, words the message must hold)
        # 422, not 404: /api/feedback/read is there; what the body names is not.
        ({"replaces": 10**9}, 422, [f"no string correction {10**9}", "leave replaces out"]),
        ({"replaces": second, "strokes": INK[:2], "text": "12", "segments": [[0], [1]]}, 422,
         ["replaces names a correction of other ink", f"string correction {second}"]),
        ({"replaces": second, "canvas": {"width": 300, "height": 200}}, 422, ["other ink"]),
        ({"replaces": first}, 409, [f"string correction {first} was already replaced by "
                                    f"{second}", f"replace {second}"]),
        ({"replaces": 0}, 422, ["replaces", "greater than or equal to 1"]),
        ({"replaces": "1"}, 422, ["replaces", "integer"]),
        ({"replaces": 2**63}, 422, ["replaces", "less than or equal to"]),  # not the driver's
    ]
    for changes, status, words in refused:
        r = client.post("/api/feedback/read", json={**GOOD, **changes})
        assert r.status_code == status, (changes, r.text[:500])
        detail = r.json()["detail"]
        assert all(w in str(detail) for w in words), (changes, detail)
    assert stats(client) == before
    assert post(client, {**GOOD, "replaces": second})  # the latest can be replaced


def test_two_corrections_replacing_the_same_one_at_once_one_wins(served):
    client, backend = served
    racers = 8
    for _ in range(3):
        old = post(client, GOOD)
        before = stats(client)
        start = threading.Barrier(racers)

        def race(n: int) -> httpx.Response:
            start.wait()
            return client.post("/api/feedback/read",
                               json={**GOOD, "text": f"1{n}C", "replaces": old})

        with ThreadPoolExecutor(racers) as pool:
            answers = list(pool.map(race, range(racers)))
        won = [r for r in answers if r.status_code == 201]
        assert len(won) == 1, [(r.status_code, r.text) for r in answers]
        winner = won[0].json()["id"]
        for r in answers:
            if r is not won[0]:
                assert r.status_code == 409, r.text
                assert f"already replaced by {winner}" in r.json()["detail"], r.text
        assert row(backend, old).replaced_by == winner
        after = stats(client)
        assert after["strings"] == before["strings"] + 1  # the losers were not kept
        assert after["strings_replaced"] == before["strings_replaced"] + 1


LONG = [[[12345.123456789012 + i, 23456.123456789012 + i] for i in range(1000)]] * 9
BAD = [  # (changes to GOOD, status, words the message must hold)
    ({"segments": [[0], [1], [3]]}, 422, ["segments[2] names stroke 3", "numbered 0 to 2"]),
    ({"segments": [[0], [-1], [2]]}, 422, ["segments[1] names stroke -1"]),
    ({"segments": [[0, 1], [1], [2]]}, 422, ["stroke 1 is in segments[0] and segments[1]"]),
    ({"segments": [[0], [1, 2]]}, 422, ["found 2 segments and 3 characters"]),
    ({"text": "12 c d"}, 422, ["found 3 segments and 4 characters"]),
    ({"segments": [[0], [], [1, 2]]}, 422, ["segments[1] is empty", "'2'"]),
    ({"strokes": [*INK, []], "segments": [[0], [1], [3]]}, 422, ["segments[2]", "no points"]),
    ({"segments": [[0], [1], [2.0]]}, 422, ["segments.2.0", "integer"]),
    ({"segments": [[0], [1], "2"]}, 422, ["segments.2"]),
    ({"text": "1ä3"}, 422, ["text", "position 1", "'ä'", "not one of the 47"]),
    ({"text": "12?"}, 422, ["text", "position 2", "'?'"]),
    ({"text": ""}, 422, ["text", "at least 1 character"]),
    ({"text": "   "}, 422, ["text", "only spaces"]),
    ({"text": "1" * 257}, 422, ["text", "at most 256"]),
    ({"read": "1" * 257}, 422, ["read", "at most 256"]),
    ({"read": None}, 422, ["read"]),
    ({"read": "1\x00ZL"}, 422, ["read", "position 1", "U+0000", "control character"]),
    ({"read": "1Z\rL"}, 422, ["read", "position 2", "U+000D", "control character"]),
    ({"read": "\x1b[31m1ZL"}, 422, ["read", "position 0", "U+001B"]),
    ({"read": "1Z\u202eL"}, 422, ["read", "U+202E", "invisible format character"]),
    ({"read": "1\ud800"}, 422, ["read", "unicode"]),  # pydantic refuses a lone surrogate
    ({"text": "12\tc"}, 422, ["text", "position 2", "not one of the 47"]),  # a tab is no space
    ({"text": None}, 422, ["text"]),
    ({"strokes": []}, 422, ["empty"]),
    ({"strokes": [[[1, 1]]] * (MAX_STROKES + 1)}, 422, ["strokes", f"at most {MAX_STROKES}"]),
    ({"strokes": [[[1, float("nan")]]]}, 422, []),  # sent as NaN, not JSON: refused either way
    ({"charset": "greek"}, 422, ["charset"]),
    ({"image": "data:image/png;base64,AAAA"}, 422, ["image", "unknown field"]),
    ({"strokes": LONG, "segments": [[0], [1], [2]]}, 413, ["at most 262,144"]),
]


def test_bad_string_corrections_get_a_clear_4xx_and_nothing_is_stored(served):
    client, _ = served
    before = stats(client)
    for changes, status, words in BAD:
        body = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
        content = json.dumps(body).encode()  # json.dumps writes NaN, which the API must refuse
        r = client.post("/api/feedback/read", content=content,
                        headers={"content-type": "application/json"})
        assert r.status_code == status, (changes, r.text[:500])
        detail = r.json()["detail"]
        assert all(w in detail for w in words), (changes, detail)
    r = client.post("/api/feedback/read", content=b"x" * (MAX_BODY_BYTES + 1),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert stats(client) == before


def test_the_endpoint_is_documented(served):
    client, _ = served
    operation = client.get("/openapi.json").json()["paths"]["/api/feedback/read"]["post"]
    assert operation["summary"] and "segments" in operation["description"]
    assert {"201", "409", "413", "422", "503", "507"} <= set(operation["responses"])
    schema = client.get("/openapi.json").json()["components"]["schemas"]["StringFeedbackRequest"]
    example = schema["examples"][0]
    # The example is a request the server takes.
    r = client.post("/api/feedback/read", json=example)
    assert r.status_code == 201 and r.json()["characters"] == len(example["segments"]), r.text


def test_string_corrections_count_against_the_quota(backend: Backend):
    # 0.2 MB, as for single corrections: on PostgreSQL the quota must measure both tables.
    with live_server(*backend.serve_args, "--feedback-quota-mb", "0.2", env=backend.env) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        body = {**GOOD, "strokes": [[[x, x % 7] for x in range(200)], *INK[1:]]}
        answers = []
        for _ in range(400):
            answers.append(client.post("/api/feedback/read", json=body).status_code)
            if answers[-1] != 201:
                break
        assert answers[-1] == 507 and 201 in answers, answers
        r = client.post("/api/feedback/read", json=body)
        assert r.status_code == 507 and "at its quota of 0.2 MB" in r.json()["detail"], r.text
        assert client.post("/api/predict", json={"strokes": SEVEN}).status_code == 200
        assert stats(client)["strings"] == answers.count(201)  # nothing refused was kept
        print(f"\n[{backend.name}] quota 0.2 MB: {answers.count(201)} string corrections, then 507")


def test_a_deleted_database_is_a_503_for_string_corrections(tmp_path):
    data = tmp_path / "data"
    with live_server("--data-dir", str(data), env={store.DATABASE_URL_ENV: ""}) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/api/feedback/read", json=GOOD).status_code == 201
        for f in data.iterdir():
            f.unlink()
        r = client.post("/api/feedback/read", json=GOOD)
        assert r.status_code == 503 and "deleted or replaced" in r.json()["detail"], r.text


def test_a_store_made_by_0001_is_upgraded_keeping_its_rows(backend: Backend):
    store.upgrade(backend.url, "0001")
    engine = backend.engine()
    assert "string_corrections" not in inspect(engine).get_table_names()
    single = store.Correction(label="A", predicted="4", charset="all", ink={"strokes": SEVEN},
                              input=np.zeros((28, 28), np.uint8), model_name="m",
                              model_sha256="0" * 64)
    store.add_correction(engine, single)
    store.upgrade(backend.url)  # to head: 0002
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == "0002"
        assert compare_metadata(context, store.metadata) == []  # migrations match store.py
    assert [c.label for c in store.iter_corrections(engine)] == ["A"]
    string = store.StringCorrection(read="1ZL", text="12c", labels="12C", charset="all",
                                    ink={"strokes": INK}, segments=[[0], [1], [2]],
                                    model_name="m", model_sha256="0" * 64)
    new_id = store.add_string_correction(engine, string)
    assert store.count_corrections(engine) == {"count": 1, "labels": {"A": 1}, "strings": 1,
                                               "strings_replaced": 0, "string_characters": 3}
    back = next(store.iter_string_corrections(engine))
    assert (back.id, back.segments, back.ink) == (new_id, [[0], [1], [2]], {"strokes": INK})
    # And back down: 0002's downgrade drops its own table only.
    command.downgrade(store.alembic_config(engine), "0001")
    assert "string_corrections" not in inspect(engine).get_table_names()
    assert [c.label for c in store.iter_corrections(engine)] == ["A"]


def test_a_dropped_string_table_is_refused_with_a_fix_that_works(backend: Backend):
    store.upgrade(backend.url)
    engine = backend.engine()
    store.add_correction(engine, store.Correction(
        label="A", predicted="4", charset="all", ink={"strokes": SEVEN},
        input=np.zeros((28, 28), np.uint8), model_name="m", model_sha256="0" * 64))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE string_corrections"))
    with pytest.raises(store.StoreError, match="lacks table string_corrections") as refused:
        store.upgrade(backend.url)
    fix = str(refused.value).split("(")[-1].split(";")[0]  # the SQL the message gives
    assert fix == "UPDATE alembic_version SET version_num = '0001'", str(refused.value)
    with engine.begin() as conn:
        conn.execute(text(fix))
    store.upgrade(backend.url)
    assert store.count_corrections(engine) == {"count": 1, "labels": {"A": 1}, "strings": 0,
                                               "strings_replaced": 0, "string_characters": 0}
