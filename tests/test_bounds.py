"""Issue 21: every request's cost is bounded whatever its shape, and heavy work stays off the event
loop. Work done is counted (candidates rendered, beam sizes, model batches, reads), never timed;
the server's own CPU time, read from /proc, only with bounds many times what the work needs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from emnist_draw import reader as reader_module
from emnist_draw.deadline import DEADLINE
from emnist_draw.preprocess import parse_strokes
from emnist_draw.reader import MAX_PARTS, MAX_PRIMITIVES, PATTERN_BEAM, READ_BATCH, StringReader
from emnist_draw.server.predictor import SEVERAL_MAX_PARTS, Predictor
from emnist_draw.status import strokes_ink
from emnist_draw.unipen import load_written

from app_helpers import clearly_read_unipen, live_server

DOTS = [[[i, (i * 37) % 100]] for i in range(100)]  # 100 one-point strokes, wide and scattered


def comb_png(width: int, height: int, step: int = 2) -> bytes:
    """Black 1-pixel columns every `step` pixels on white: one run of inked columns per step."""
    pixels = np.full((height, width), 255, np.uint8)
    pixels[:, ::step] = 0
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", optimize=True)
    return out.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def zigzags(n: int = 100, points: int = 100) -> list:
    """The worst legal strokes for the reader: n touching strokes of many points side by side, so
    that every run of 1..MAX_PARTS of them is a candidate character."""
    t = np.linspace(0, 1, points)
    return [np.c_[i * 10 + 12 * t, 50 + 40 * np.sin(6 * np.pi * t)].round(1).tolist()
            for i in range(n)]


class Counting:
    """Counts what a read does: candidates rendered, the widest beam expanded, model batches."""

    def __init__(self, monkeypatch, reader: StringReader):
        self.rendered, self.widest_beam, self.batches = 0, 0, []
        # Nothing reused from earlier reads (the reader keeps recent candidates' renders).
        monkeypatch.setattr(reader, "recent", reader_module._Recent())
        checked, pruned = reader_module._checked, reader_module._pruned
        logits = reader.recognizer.logits

        def counting_checked(render, parts):
            image = checked(render, parts)
            self.rendered += 1
            return image

        def counting_pruned(*args):
            kept = pruned(*args)
            self.widest_beam = max(self.widest_beam, len(kept))
            return kept

        def counting_logits(images, batch_size=1024):
            self.batches.append(min(len(images), batch_size))
            return logits(images, batch_size)

        monkeypatch.setattr(reader_module, "_checked", counting_checked)
        monkeypatch.setattr(reader_module, "_pruned", counting_pruned)
        monkeypatch.setattr(reader.recognizer, "logits", counting_logits)


# --------------------------------------------------------------------------- the engine


def test_the_worst_legal_strokes_cost_a_bounded_read(reader, monkeypatch):
    count = Counting(monkeypatch, reader)
    try:
        reading = reader.read_strokes(zigzags(), pattern="?" * MAX_PRIMITIVES)
        assert len(reading.characters) == MAX_PRIMITIVES
    except ValueError as e:  # the ink reads far better as fewer characters: said so, a 422
        assert "pattern" in str(e)
    # Every candidate is a run of 1..MAX_PARTS primitives: at most that many per primitive.
    assert 0 < count.rendered <= MAX_PARTS * MAX_PRIMITIVES
    # The pattern keeps readings of each length apart, but not without bound (it grew with the
    # square of the primitives: 12 per length, ~1,200 a node).
    assert count.widest_beam <= PATTERN_BEAM
    # The model takes the candidates a few at a time: its buffers stay at the size of one batch.
    assert max(count.batches) <= READ_BATCH


def test_an_image_of_too_many_column_runs_is_refused_before_any_work(reader, monkeypatch):
    count = Counting(monkeypatch, reader)
    with pytest.raises(ValueError, match=f"at most {MAX_PRIMITIVES}"):
        reader.read_image(comb_png(2 * MAX_PRIMITIVES + 8, 64))
    assert count.rendered == 0
    # The most runs that are read: every candidate rendered once, no more.
    reading = reader.read_image(comb_png(2 * MAX_PRIMITIVES, 64))
    assert len(reading.characters) >= 1
    assert count.rendered <= MAX_PARTS * MAX_PRIMITIVES


def test_a_pattern_longer_than_the_ink_has_parts_is_refused_before_reading(reader, monkeypatch):
    count = Counting(monkeypatch, reader)
    with pytest.raises(ValueError, match="only 2 separate parts"):
        reader.read_strokes([[[0, 0], [0, 10]], [[5, 0], [5, 10]]], pattern="LLL")
    assert count.rendered == 0


def test_the_reader_stops_at_the_requests_deadline(reader, monkeypatch):
    count = Counting(monkeypatch, reader)
    token = DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(TimeoutError):
            reader.read_strokes(zigzags())
    finally:
        DEADLINE.reset(token)
    assert count.rendered == 0


# --------------------------------------------------------------------------- /api/predict's "several?"


@pytest.fixture(scope="module")
def predictor():
    return Predictor()


@pytest.fixture()
def reads(predictor, monkeypatch):
    """Every string read /api/predict's status asks for, and whether it ran on an event loop."""
    calls = []
    read_strokes, read_ink = predictor.reader.read_strokes, predictor.reader.read_ink

    def on_loop() -> bool:
        try:
            asyncio.get_running_loop()
            return True
        except RuntimeError:
            return False

    def counting_strokes(*args, **kwargs):
        calls.append(("strokes", on_loop()))
        return read_strokes(*args, **kwargs)

    def counting_ink(*args, **kwargs):
        calls.append(("image", on_loop()))
        return read_ink(*args, **kwargs)

    monkeypatch.setattr(predictor.reader, "read_strokes", counting_strokes)
    monkeypatch.setattr(predictor.reader, "read_ink", counting_ink)
    return calls


def test_the_shape_settles_several_characters_without_reading_where_it_can(predictor, reads):
    one_stroke = [np.c_[np.linspace(0, 100, 50), np.full(50, 10.0)]]  # wide, but one stroke
    assert not predictor.ink(one_stroke).several
    assert predictor.ink(parse_strokes(DOTS)).several  # more parts than two characters have
    assert len(DOTS) > SEVERAL_MAX_PARTS
    narrow = parse_strokes([[[0, 0], [0, 100]], [[2, 0], [2, 100]]])
    assert not predictor.ink(narrow).several
    assert reads == []


def test_wide_ink_of_a_few_strokes_is_read_once(predictor, reads, recognizer):
    four, two = clearly_read_unipen(recognizer, "42")
    from emnist_draw.unipen import compose
    strokes, _ = compose([four, two], gap=0.3)
    assert predictor.ink(parse_strokes(strokes)).several
    assert [kind for kind, _ in reads] == ["strokes"]


def test_an_image_of_many_separate_parts_is_several_characters(app_client):
    client, _ = app_client
    # Ten bars side by side, a small image (decoded on the event loop): more parts than two
    # characters have, so several characters without a read.
    r = client.post("/api/predict", json={"image": data_url(comb_png(40, 20, step=4))})
    assert r.status_code == 200 and r.json()["status"] == "several_characters", r.text


def test_a_tap_without_a_canvas_is_not_a_character():
    for tap in ([[[50, 50]]], [[[50, 50], [51, 50]]], [[[50, 50], [52, 51], [53, 52]]]):
        assert strokes_ink(parse_strokes(tap)).tiny, tap
    # Two points far apart are a stroke, whatever the units: "1" drawn as one line.
    assert not strokes_ink(parse_strokes([[[10, 10], [10, 90]]])).tiny


# --------------------------------------------------------------------------- the app, in process


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from emnist_draw.server.app import create_app

    app = create_app(data_dir=tmp_path_factory.mktemp("data"), rate_limit=0)
    with TestClient(app) as client:
        yield client, app


def test_predicts_string_reads_run_off_the_event_loop(app_client, predictor, monkeypatch,
                                                      recognizer):
    client, app = app_client
    from emnist_draw.unipen import compose

    calls = []
    import emnist_draw.server.predictor as predictor_module

    real = predictor_module.StringReader.read_strokes

    def recording(self, *args, **kwargs):
        try:
            asyncio.get_running_loop()
            calls.append("event loop")
        except RuntimeError:
            calls.append("thread")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(predictor_module.StringReader, "read_strokes", recording)
    strokes, _ = compose(clearly_read_unipen(recognizer, "42"), gap=0.3)
    r = client.post("/api/predict", json={"strokes": strokes})
    assert r.status_code == 200 and r.json()["status"] == "several_characters"
    assert calls == ["thread"]


def test_a_batch_checks_its_deadline_between_the_items_ink_facts(app_client, monkeypatch):
    client, app = app_client
    import emnist_draw.server.app as app_module

    decoded = app_module.batch_to_inputs
    counted = []

    def decode_then_run_out_of_time(body):
        images = decoded(body)
        DEADLINE.set(time.monotonic() - 1)  # the thread's own context: this request only
        return images

    monkeypatch.setattr(app_module, "batch_to_inputs", decode_then_run_out_of_time)
    monkeypatch.setattr(Predictor, "ink", lambda self, *a, **k: counted.append(1))
    body = [{"strokes": [[[0, 0], [50, 0]], [[60, 0], [110, 5]]]}] * 64
    r = client.post("/api/predict/batch", json=body)
    assert r.status_code == 503, r.text
    assert counted == []


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server():
    with live_server("--rate-limit", "0") as url:
        yield url


def server_cpu(url: str) -> float:
    """The CPU seconds so far of the process listening at url (the tests' own child)."""
    port = url.rsplit(":", 1)[1]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and port.encode() in cmd:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise AssertionError(f"no server process for {url}")


@pytest.mark.parametrize("path,body,status", [
    # 329 bytes that cost 8 s of CPU on the event loop (1024 runs of one column each).
    ("/api/predict", {"image": data_url(comb_png(1024, 64))}, 200),
    ("/api/read", {"image": data_url(comb_png(1024, 64))}, 422),
    ("/api/read", {"image": data_url(comb_png(1024, 1024))}, 422),
    ("/api/predict", {"strokes": DOTS}, 200),
    ("/api/predict/batch", [{"strokes": DOTS}] * 64, 200),
])
def test_small_hostile_bodies_cost_little(server, path, body, status):
    with httpx.Client(base_url=server, timeout=60) as client:
        before = server_cpu(server)
        r = client.post(path, json=body)
        assert r.status_code == status, r.text[:300]
        if status == 422:
            assert "runs of inked columns" in r.json()["detail"]
        # They took 3-25 s of CPU; a few hundredths now. A bound many times that, for slow CPUs.
        assert server_cpu(server) - before < 2.0


def test_an_upload_of_too_many_runs_with_the_longest_pattern_is_a_422(server):
    with httpx.Client(base_url=server, timeout=60) as client:
        before = server_cpu(server)
        r = client.post("/api/read/upload", files={"file": ("comb.png", comb_png(408, 64))},
                        data={"pattern": "?" * 100})
        assert r.status_code == 422 and "runs of inked columns" in r.json()["detail"]
        assert server_cpu(server) - before < 2.0


def test_form_integers_are_plain_digits(server):
    png = comb_png(20, 20, 20)
    with httpx.Client(base_url=server, timeout=60) as client:
        for path in ("/api/predict/upload", "/api/read/upload"):
            r = client.post(path, files={"file": ("x.png", png)}, data={"top_k": "5.0"})
            assert r.status_code == 422 and "digits 0-9" in r.text, (path, r.text)
            r = client.post(path, files={"file": ("x.png", png)}, data={"top_k": "3"})
            assert r.status_code == 200, (path, r.text)


def test_a_long_thin_image_keeps_its_line(server):
    pixels = np.full((3, 8192), 255, np.uint8)
    pixels[1] = 0  # a clear black line, 8192 pixels long
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post("/api/predict", json={"image": data_url(out.getvalue())})
        assert r.status_code == 200, r.text  # was 422 "the image is blank"


def test_a_tap_sent_without_a_canvas_is_not_a_character(server):
    with httpx.Client(base_url=server, timeout=60) as client:
        for tap in ([[[50, 50]]], [[[50, 50], [52, 51], [53, 52]]]):
            r = client.post("/api/predict", json={"strokes": tap})
            assert r.json()["status"] == "not_a_character", (tap, r.text)


def test_recent_candidates_are_not_rendered_again_and_their_memory_is_bounded(reader, monkeypatch):
    """The page sends every stroke again after each new one: a read after one more stroke
    renders only the candidates that stroke is in, the answer the same as a cold read's; the
    kept renders are at most RECENT, the oldest dropped first."""
    strokes = [s for s in load_written("measure") if s.printed and len(s.strokes) >= 8][0].strokes
    cold = Counting(monkeypatch, reader)
    first = reader.read_strokes(strokes)
    assert cold.rendered > 8
    warm = Counting(monkeypatch, reader)
    reader.read_strokes(strokes[:-1])
    before = warm.rendered
    again = reader.read_strokes(strokes)
    # Only runs of at most MAX_PARTS primitives that hold the last stroke are new.
    assert 0 < warm.rendered - before <= MAX_PARTS * (MAX_PARTS + 1) // 2
    assert again.text == first.text
    assert [c.top_k for c in again.characters] == [c.top_k for c in first.characters]
    small = reader_module._Recent(size=5)
    monkeypatch.setattr(reader, "recent", small)
    reader.read_strokes(strokes)
    assert len(small.items) == 5
    # Each kept render is its own small array, not a view that holds its read's whole batch.
    assert all(image.base is None and row.base is None for image, row in small.items.values())
