"""Issue 16's HTTP defects (D1-D9, D17), each kept as a regression test against the real server.

The servers are `emnist-draw serve` child processes on loopback (tests/app_helpers.live_server);
connection-level cases use raw sockets. Every loop is bounded; time is asserted only as the
generous liveness bounds the issue itself asks for (a refusal within seconds, not 30 s; /healthz
within a second under load, here given three).
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from emnist_draw.server.schemas import MAX_IMAGE_PIXELS, MAX_JSON_VALUES

from app_helpers import live_server

JSON = "application/json"
HEADER_TIMEOUT_S = 5  # workers.HEADER_TIMEOUT_S, the deadline for a request head
KEEP_ALIVE_S = 5  # security.KEEP_ALIVE_S
SLACK_S = 5  # on a busy 2-core machine a timer may fire late; 30 s (the old behaviour) is far off


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # The default request timeout (30 s): what the old code waited before cutting anything off.
    with live_server("--data-dir", str(tmp_path_factory.mktemp("data"))) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def _connect(url: str, timeout: float = 40) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def _read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer (head and a Content-Length body), or what came before the server closed."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head, re.I)
        if sep and length and len(body) >= int(length.group(1)):
            break
    return data


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server hangs up within `seconds` (what it sends meanwhile is dropped)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _healthz_seconds(url: str) -> float:
    started = time.monotonic()
    with httpx.Client(timeout=30) as c:
        assert c.get(f"{url}/healthz").status_code == 200
    return time.monotonic() - started


# ------------------------------------------------------------------ D1, D2: JSON budget


def test_d1_two_content_types_are_refused_before_parsing(server):
    # FastAPI reads the first header (JSON); the budget once looked at the last (text/plain) and
    # let 700,000 keys through: 422 after 5-6 s, /healthz blocked as long, 1.1 GB resident.
    body = b'{"pixels": [' + b"0," * (2 * MAX_JSON_VALUES) + b"0]}"
    with _connect(server) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        head, _, answer = _read_answer(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"2 Content-Type headers" in answer


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "", "x/json"])
def test_d1_the_budget_applies_whatever_the_media_type(client, content_type):
    body = b'{"pixels": [' + b"0," * (2 * MAX_JSON_VALUES) + b"0]}"
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/api/predict", content=body, headers=headers)
    assert r.status_code == 413, r.text[:300]


def test_d2_many_unknown_keys_are_refused_unparsed(client, server):
    # 249,000 unknown keys, inside the value budget: 1.05-1.66 s of pydantic errors and +350 MB.
    body = ("{" + ",".join(f'"k{i}":0' for i in range(249_000)) + "}").encode()
    stop, worst = threading.Event(), [0.0]

    def probe() -> None:
        while not stop.is_set():
            worst[0] = max(worst[0], _healthz_seconds(server))

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        answers = [client.post("/api/predict", content=body, headers={"content-type": JSON})
                   for _ in range(3)]
    finally:
        stop.set()
        prober.join()
    assert [r.status_code for r in answers] == [413] * 3, answers[0].text[:300]
    assert "object keys" in answers[0].json()["detail"]
    assert worst[0] < 2.0, worst  # the issue asks for 1 s; margin for a shared machine


def test_d2_a_valid_batch_is_inside_the_key_budget(client):
    item = {"strokes": [[[0, 0], [9, 9]]], "canvas": {"width": 10, "height": 10}, "top_k": 2,
            "charset": "all", "return_input": False}
    r = client.post("/api/predict/batch", json=[item] * 64)
    assert r.status_code == 200, r.text[:300]


# ------------------------------------------------------------------ D17: chunk-heavy images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _image(fmt: str, size: tuple[int, int] = (28, 28)) -> bytes:
    image = Image.new("L", size)
    image.paste(255, (size[0] // 3, 2, size[0] // 2, size[1] - 2))  # a "1"
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def png_of_empty_text_chunks(n: int = 150_000) -> bytes:
    """A 28x28 PNG carrying n empty tEXt chunks (2 MiB): ~230 ms of Pillow's Python per request."""
    plain = _image("PNG")
    return plain[:33] + _png_chunk(b"tEXt", b"") * n + plain[33:]  # right after IHDR


def jpeg_of_comments(n: int = 150_000) -> bytes:
    plain = _image("JPEG")
    return plain[:2] + b"\xff\xfe\x00\x02" * n + plain[2:]  # empty COM segments after SOI


@pytest.mark.parametrize("make", [png_of_empty_text_chunks, jpeg_of_comments],
                         ids=["PNG tEXt", "JPEG COM"])
def test_d17_an_image_of_many_chunks_is_refused_from_their_count(client, server, make):
    body = json.dumps({"image": base64.b64encode(make()).decode()})
    r = client.post("/api/predict", content=body, headers={"content-type": JSON})
    assert r.status_code == 422, r.text[:300]
    assert "more than 1,024" in r.json()["detail"]
    # A real file of the same kinds still reads.
    for fmt in ("PNG", "JPEG"):
        body = json.dumps({"image": base64.b64encode(_image(fmt, (200, 200))).decode()})
        assert client.post("/api/predict", content=body,
                           headers={"content-type": JSON}).status_code == 200


# ------------------------------------------------------------------ D3, D4: heavy work


def test_d3_a_batch_of_large_images_is_refused_before_decoding(client, server):
    # 64 WebP images of 4096x4096 took 3.9-22 s (three at once: all 503 at 30 s, then ~19 s more
    # of CPU); now their pixels are summed from the headers first.
    image = Image.new("L", (4096, 4096))
    image.paste(255, (1800, 400, 2300, 3700))
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=10)
    item = {"image": base64.b64encode(buf.getvalue()).decode()}
    started = time.monotonic()
    r = client.post("/api/predict/batch", json=[item] * 64)
    assert r.status_code == 422, r.text[:300]
    assert "pixels in all" in r.json()["detail"] and "per batch" in r.json()["detail"]
    assert time.monotonic() - started < 5
    # Two such images are still one batch (the per-batch budget is two at the single limit).
    assert MAX_IMAGE_PIXELS == 4096 * 4096
    r = client.post("/api/predict/batch", json=[item] * 2)
    assert r.status_code == 200, r.text[:300]


def test_d3_a_batch_past_its_deadline_stops_between_items():
    from emnist_draw.server.inputs import batch_to_inputs
    from emnist_draw.server.schemas import PredictRequest
    from emnist_draw.deadline import DEADLINE

    reqs = [PredictRequest(strokes=[[[0, 0], [9, 9]]])] * 3
    assert len(batch_to_inputs(reqs)) == 3
    token = DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(TimeoutError):
            batch_to_inputs(reqs)
    finally:
        DEADLINE.reset(token)


def test_d4_healthz_answers_under_a_flood_of_batches(server):
    # 45 concurrent batches of 64 x 300-point strokes kept /healthz waiting 7.3-7.9 s (Docker's
    # HEALTHCHECK allows 4 s). Heavy work now takes turns; liveness must stay within a second
    # (here three, for a shared machine).
    t = np.linspace(0, 2 * np.pi, 300)
    stroke = np.stack([50 + 40 * np.cos(t), 50 + 40 * np.sin(t)], 1).round(1).tolist()
    body = json.dumps([{"strokes": [stroke]}] * 64).encode()
    worst, statuses = 0.0, []
    with httpx.Client(base_url=server, timeout=60, limits=httpx.Limits(max_connections=50)) as c:
        def send(_: int) -> int:
            return c.post("/api/predict/batch", content=body,
                          headers={"content-type": JSON}).status_code

        with ThreadPoolExecutor(45) as pool:
            futures = [pool.submit(send, i) for i in range(45)]
            time.sleep(0.5)  # the flood is on its way
            for _ in range(20):
                worst = max(worst, _healthz_seconds(server))
                if all(f.done() for f in futures):
                    break
                time.sleep(0.2)
            statuses = [f.result() for f in futures]
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    assert worst < 3.0, worst


def test_d4_past_the_work_limit_a_request_is_a_503_with_retry_after():
    import asyncio

    from emnist_draw.server.security import WorkLimit

    release = asyncio.Event()
    entered = 0

    async def app(scope, receive, send):  # a route that reads its body, then works a while
        nonlocal entered
        await receive()
        entered += 1
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def call(limit: WorkLimit) -> int:
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):
            sent.append(message)

        await limit({"type": "http", "method": "POST", "path": "/api/predict", "headers": []},
                    receive, send)
        start = sent[0]
        if start["status"] == 503:
            assert (b"retry-after", b"1") in start["headers"]
        return start["status"]

    async def main() -> list[int]:
        limit = WorkLimit(app, active=1, waiting=1)
        tasks = [asyncio.create_task(call(limit)) for _ in range(3)]
        for _ in range(100):
            await asyncio.sleep(0.01)
            if tasks[2].done():
                break
        assert entered == 1  # one at work, one waiting for its turn, the third refused
        release.set()
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == [200, 200, 503]


# ------------------------------------------------------------------ D5, D6: connections


def test_d5_an_unfinished_request_head_is_closed(server):
    # 200 connections that sent a request line and nothing more were all open after 60 s.
    socks = [_connect(server) for _ in range(20)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        for sock in socks:
            left = HEADER_TIMEOUT_S + SLACK_S - (time.monotonic() - started)
            assert _closed_within(sock, max(left, 0.1)), "a half-sent request head is still open"
        assert _healthz_seconds(server) < 3
    finally:
        for sock in socks:
            sock.close()


def _trickle_until_closed(sock: socket.socket, piece, seconds: float) -> bool:
    """Send piece(i) every 0.25 s for at most `seconds`; whether the server closed meanwhile."""
    for i in range(int(4 * seconds)):
        try:
            sock.sendall(piece(i))
        except OSError:
            return True
        if _closed_within(sock, 0.25):
            return True
    return False


def test_d5_a_trickled_head_does_not_reset_the_deadline(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        closed = _trickle_until_closed(sock, lambda i: b"X-%d: y\r\n" % i,  # a header line
                                       HEADER_TIMEOUT_S + SLACK_S)
        assert closed and time.monotonic() - started < HEADER_TIMEOUT_S + SLACK_S


CHUNKED_OVER_THE_LIMIT = (  # 8 MiB and 16 bytes, in two chunks: answered 413 once they arrive
    b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n800000\r\n" + b"0" * 0x800000 + b"\r\n"
    + b"10\r\n" + b"0" * 16 + b"\r\n")


def test_d5_a_body_trickled_after_the_answer_is_cut_off(server):
    # Answered 413, the client keeps sending its body: it was kept for 75 s and more.
    with _connect(server) as sock:
        sock.sendall(CHUNKED_OVER_THE_LIMIT)
        head = _read_answer(sock)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        started = time.monotonic()
        closed = _trickle_until_closed(sock, lambda i: b"10\r\n" + b"0" * 16 + b"\r\n",
                                       KEEP_ALIVE_S + SLACK_S)
        assert closed and time.monotonic() - started < KEEP_ALIVE_S + SLACK_S


def test_d5_an_idle_connection_after_a_chunked_413_is_closed(server):
    with _connect(server) as sock:
        sock.sendall(CHUNKED_OVER_THE_LIMIT)
        assert _read_answer(sock).startswith(b"HTTP/1.1 413")
        sock.sendall(b"0\r\n\r\n")  # the body's end, after the answer (it reset the timer): idle
        assert _closed_within(sock, KEEP_ALIVE_S + SLACK_S)


def test_d5_keep_alive_still_serves_a_second_request(server):
    with _connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_answer(sock).startswith(b"HTTP/1.1 200")


def test_d6_a_huge_chunk_size_is_refused_at_once(server):
    # fffffffffffffffffff (2**76 bytes) waited 30 s for the request timeout.
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n{")
        answer = _read_answer(sock)
        waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"body limit" in body
    assert waited < SLACK_S


# ------------------------------------------------------------------ D9: redirects


def test_d9_no_redirect_names_the_clients_host(client):
    r = client.get("/api/predict/", headers={"host": "evil.example"})
    assert "evil.example" not in r.headers.get("location", ""), r.headers
    assert r.status_code == 404
    r = client.post("/api/predict/", json={"strokes": [[[0, 0], [9, 9]]]},
                    headers={"host": "evil.example"})
    assert r.status_code == 404 and "location" not in r.headers


# ------------------------------------------------------------------ D7, D8: rate limit


def test_d7_d8_the_rate_limit_counts_every_loopback_request_and_no_forwarded_address(tmp_path):
    per_minute = 3
    with live_server("--rate-limit", str(per_minute), "--data-dir", str(tmp_path)) as url, \
            httpx.Client(base_url=url, timeout=30) as c:
        body = {"strokes": [[[0, 0], [9, 9]]]}
        # D7: the warm-up request spent one of 127.0.0.1's tokens (3 gave two requests).
        # D8: X-Forwarded-For from 127.0.0.1 named any client and escaped the limit.
        statuses = [c.post("/api/predict", json=body,
                           headers={"x-forwarded-for": f"10.0.0.{i}"}).status_code
                    for i in range(per_minute + 2)]
    assert statuses == [200] * per_minute + [429, 429], statuses


def test_d8_forwarded_addresses_are_trusted_only_from_configured_proxies(tmp_path):
    with live_server("--rate-limit", "1", "--forwarded-allow-ips", "127.0.0.1",
                     "--data-dir", str(tmp_path)) as url, httpx.Client(base_url=url) as c:
        body = {"strokes": [[[0, 0], [9, 9]]]}
        statuses = [c.post("/api/predict", json=body,
                           headers={"x-forwarded-for": f"10.0.0.{i}"}).status_code
                    for i in range(3)]
    assert statuses == [200] * 3  # behind a trusted proxy, each named client has its own bucket


def test_d8_the_rate_limit_table_stays_bounded_with_active_clients():
    from emnist_draw.server.security import RateLimit

    limit = RateLimit(app=None, per_minute=60, max_clients=100)
    table = limit.buckets
    for i in range(5_000):  # all within the minute: none idle enough to forget
        assert limit.take(f"10.0.{i // 256}.{i % 256}", now=i / 1000) == 0
        assert len(limit.buckets) <= 100
    assert limit.buckets is table  # updated in place, never rebuilt
    # The most recent clients keep their counts (4,999 is the last one: 59 tokens left).
    assert limit.buckets["10.0.19.135"][0] == pytest.approx(59)
