"""Corrections through the API (`POST /api/feedback`, `GET /api/feedback/stats`) against the real
server, on SQLite and on a real PostgreSQL server; what is stored is read back from the database.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from emnist_draw import store
from emnist_draw.data import BALANCED_CLASSES, load_pair, to_balanced
from emnist_draw.preprocess import image_to_input, pixels_to_input, strokes_to_input
from emnist_draw.server.schemas import MAX_BODY_BYTES

from app_helpers import live_server
from store_backends import Backend, module_backend, postgres  # noqa: F401 (fixtures)

SEVEN = [[[10, 10], [90, 10], [45, 95]]]  # ints, as a client may send them
CANVAS = {"width": 100, "height": 100}


@pytest.fixture(scope="module")
def served(module_backend: Backend):
    with live_server(*module_backend.serve_args, env=module_backend.env) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        yield client, module_backend


def stored(backend: Backend, correction_id: int) -> store.Correction:
    engine = backend.engine()
    found = [c for c in store.iter_corrections(engine) if c.id == correction_id]
    assert found, f"correction {correction_id} is not in the database"
    return found[0]


def stats(client: httpx.Client) -> dict:
    r = client.get("/api/feedback/stats")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_correction_is_stored_with_its_ink_input_and_model(served):
    client, backend = served
    model = client.get("/api/model").json()
    body = {"strokes": SEVEN, "canvas": CANVAS, "charset": "digits", "label": "z",
            "predicted": "7", "top_k": 3, "return_input": True}  # a predict body + the answer
    r = client.post("/api/feedback", json=body)
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["label"] == "Z"  # lower case of a merged letter is its class
    row = stored(backend, saved["id"])
    # The ink exactly as sent: the same JSON, ints still ints.
    assert json.dumps(row.ink, sort_keys=True) == json.dumps(
        {"strokes": SEVEN, "canvas": CANVAS}, sort_keys=True)
    assert row.ink_kind == "strokes"
    # The input is what the one preprocessing function makes of that ink.
    assert np.array_equal(row.input, strokes_to_input(SEVEN, canvas_size=(100, 100)))
    assert (row.label, row.predicted, row.charset) == ("Z", "7", "digits")
    assert (row.model_name, row.model_sha256) == (model["name"], model["onnx_sha256"])
    created = row.created_at  # SQLite gives back a naive time; it is UTC
    created = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=5)


def test_image_and_pixel_ink_are_kept_as_sent(served):
    client, backend = served
    image = np.zeros((60, 40), np.uint8)
    image[10:50, 18:23] = 255  # a "1", white on black
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = client.post("/api/feedback", json={"image": data_url, "label": "1", "predicted": "I"})
    assert r.status_code == 201, r.text
    row = stored(backend, r.json()["id"])
    assert row.ink == {"image": data_url} and row.ink_kind == "image"
    assert np.array_equal(row.input, image_to_input(buf.getvalue()))

    pixels = np.zeros(784, int)
    pixels[28 * 5 + 10:28 * 5 + 18] = 200  # a bar
    r = client.post("/api/feedback", json={"pixels": pixels.tolist(), "label": "T",
                                           "predicted": "t"})
    assert r.status_code == 201, r.text
    row = stored(backend, r.json()["id"])
    assert row.ink == {"pixels": pixels.tolist()} and row.ink_kind == "pixels"
    assert np.array_equal(row.input, pixels_to_input(pixels.tolist()))
    assert (row.label, row.predicted) == ("T", "t")  # "t" is a class of its own


def test_stats_count_corrections_per_label(served):
    client, _ = served
    before = stats(client)
    for label in ("7", "7", "x"):
        r = client.post("/api/feedback", json={"strokes": SEVEN, "label": label, "predicted": "1"})
        assert r.status_code == 201, r.text
    after = stats(client)
    assert after["count"] == before["count"] + 3
    assert after["labels"]["7"] == before["labels"].get("7", 0) + 2
    assert after["labels"]["X"] == before["labels"].get("X", 0) + 1
    assert sum(after["labels"].values()) == after["count"]
    assert list(after["labels"]) == sorted(after["labels"], key=BALANCED_CLASSES.index)


BAD = [  # (body, status, words the message must hold)
    ({"strokes": SEVEN, "label": "ä", "predicted": "7"}, 422, ["label", "not one of the 47"]),
    ({"strokes": SEVEN, "label": "AB", "predicted": "7"}, 422, ["label", "not one of the 47"]),
    ({"strokes": SEVEN, "label": "", "predicted": "7"}, 422, ["label"]),
    ({"strokes": SEVEN, "label": 7, "predicted": "7"}, 422, ["label", "string"]),
    ({"strokes": SEVEN, "predicted": "7"}, 422, ["label", "required"]),
    ({"strokes": SEVEN, "label": "7"}, 422, ["predicted", "required"]),
    ({"strokes": SEVEN, "label": "7", "predicted": "?"}, 422, ["predicted", "not one of the 47"]),
    ({"label": "7", "predicted": "1"}, 422, ["exactly one of 'strokes', 'image' or 'pixels'"]),
    ({"strokes": [], "label": "7", "predicted": "1"}, 422, ["empty"]),
    ({"strokes": [[[5, 5]]], "pixels": [0] * 784, "label": "7", "predicted": "1"}, 422,
     ["exactly one"]),
    ({"image": "data:image/png;base64,AAAA", "label": "7", "predicted": "1"}, 422,
     ["not an image"]),
    ({"pixels": [0] * 784, "label": "7", "predicted": "1"}, 422, ["blank"]),
    ({"strokes": SEVEN, "label": "7", "predicted": "1", "lable": "7"}, 422, ["lable", "unknown"]),
    ("[0,0,0]", 422, ["JSON object"]),
    ([1, 2], 422, ["JSON object"]),
]


def test_bad_corrections_get_a_clear_4xx_and_nothing_is_stored(served):
    client, _ = served
    before = stats(client)["count"]
    for body, status, words in BAD:
        r = client.post("/api/feedback", json=body)
        assert r.status_code == status, (body, r.text)
        detail = r.json()["detail"]
        assert all(w in detail for w in words), (body, detail)
    for raw, words in ((b"{not json", ["not valid JSON"]), (b"", ["body"])):
        r = client.post("/api/feedback", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422 and all(w in r.json()["detail"] for w in words), r.text
    r = client.post("/api/feedback", content=b"x" * (MAX_BODY_BYTES + 1),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert stats(client)["count"] == before


def run_cli(backend: Backend, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emnist_draw.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **backend.env})


def test_export_writes_the_corrections_as_emnist_idx_files(served, tmp_path):
    client, backend = served
    for label in ("A", "b", "c", "5"):
        r = client.post("/api/feedback", json={"strokes": SEVEN, "canvas": CANVAS, "label": label,
                                               "predicted": "7"})
        assert r.status_code == 201, r.text
    done = run_cli(backend, "feedback", "export", "--out", str(tmp_path / "out"),
                   *backend.serve_args)
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout)
    # The names `train --extra` pairs: the labels file is the images file's name with
    # "images-idx3" -> "labels-idx1".
    assert written["labels"] == written["images"].replace("images-idx3", "labels-idx1")
    assert written["images"].endswith(".gz")
    images, labels = load_pair(written["images"], written["labels"])  # as training reads them
    rows = list(store.iter_corrections(backend.engine()))
    assert written["count"] == len(rows) == len(labels) >= 4
    assert np.array_equal(images, np.stack([r.input for r in rows]))  # upright again
    assert labels.tolist() == [to_balanced(r.label) for r in rows]  # balanced numbering
    assert labels[-2] == BALANCED_CLASSES.index("C")


def test_db_upgrade_by_hand(served):
    _, backend = served
    for _ in range(2):  # the second finds the schema current and does nothing
        done = run_cli(backend, "db", "upgrade", *backend.serve_args)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["revision"] == "head"
    with backend.engine().connect() as conn:
        assert conn.execute(select(store.corrections.c.id).limit(1)).all()  # rows kept
