"""Property-based fuzzing of the whole API.

1. From its OpenAPI schema (schemathesis): every operation gets schema-valid and schema-breaking
   requests (bodies, form fields, types, sizes, methods); every answer must be a non-5xx that
   conforms to the schema: a documented status code, content type and body.
2. Ink the schema cannot describe (hypothesis): strokes with extreme, subnormal or repeated
   coordinates, real PNG/JPEG/WebP files of any size and mode, cut off or with flipped bytes;
   every answer must be a 200 with a well-formed reading or a 422 that says why.

The ASGI app is called in-process (schemathesis' recommended way for a FastAPI app), with the same
middleware as the served one. Deterministic and bounded (about a minute on 2 busy cores); the
failures it found are explicit regression tests in tests/test_security.py. More examples:
EMNIST_DRAW_FUZZ_EXAMPLES=300 pytest -s tests/test_fuzz.py (prints how many requests were sent).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import tempfile
import time
from collections import Counter

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from emnist_draw.server.app import create_app
from emnist_draw.server.schemas import MAX_COORDINATE

# Examples per operation for schemathesis, twice that for each ink test below.
MAX_EXAMPLES = int(os.environ.get("EMNIST_DRAW_FUZZ_EXAMPLES", "100"))
# A throw-away data folder: fuzzed corrections must not land in ./data. (schemathesis' fixture
# loader, which would allow tmp_path, does not work with this pytest.)
DATA_DIR = tempfile.TemporaryDirectory(prefix="emnist-draw-fuzz-")
APP = create_app(data_dir=DATA_DIR.name)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# Reproducible runs: the same inputs every time, and no example database written to .hypothesis.
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
# Every built-in check but positive_data_acceptance (a schema-valid request must get a 2xx):
# blank ink, a string that is not 784 integers, an `image` that is no image... are refused with
# 422 by design, and a JSON schema cannot say "holds ink".
schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])
INK_SETTINGS = settings(max_examples=2 * MAX_EXAMPLES, deadline=None, derandomize=True,
                        database=None, suppress_health_check=list(HealthCheck))
calls: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def summary():
    started = time.perf_counter()
    yield
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(calls.items()) if k.isdigit())
    print(f"\nfuzzed {sum(v for k, v in calls.items() if k.isdigit())} requests in "
          f"{time.perf_counter() - started:.0f} s ({statuses})")


class Client:
    """A blocking httpx client of the ASGI app: hypothesis' tests are plain functions."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(APP, raise_app_exceptions=False)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://fuzz")

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.loop.run_until_complete(self.http.post(path, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def client():
    c = Client()
    yield c
    c.close()


def count(status: int) -> None:
    calls[str(status)] += 1


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_answers_to_schema(case):
    response = case.call_and_validate()
    count(response.status_code)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text


def check_reading_or_reason(response) -> None:
    count(response.status_code)
    assert response.status_code in (200, 422), (response.status_code, response.text[:500])
    body = response.json()
    if response.status_code == 200:
        assert body["prediction"] == body["top_k"][0]["label"]
    else:
        assert isinstance(body["detail"], str) and body["detail"], body
        assert "Traceback" not in response.text


coordinates = st.one_of(
    st.floats(-MAX_COORDINATE, MAX_COORDINATE, allow_nan=False, allow_subnormal=True),
    st.integers(-int(MAX_COORDINATE), int(MAX_COORDINATE)),
    st.sampled_from([0.0, 5e-324, -5e-324, 1e-300, MAX_COORDINATE, -MAX_COORDINATE]))
points = st.lists(coordinates, min_size=2, max_size=2)
strokes = st.lists(st.lists(points, max_size=30), max_size=6)
canvases = st.none() | st.fixed_dictionaries({
    "width": st.floats(5e-324, MAX_COORDINATE, allow_subnormal=True),
    "height": st.floats(5e-324, MAX_COORDINATE, allow_subnormal=True)})


@INK_SETTINGS
@given(strokes=strokes, canvas=canvases, charset=st.sampled_from(["all", "digits", "letters"]))
def test_any_strokes_are_read_or_refused_with_a_reason(client, strokes, canvas, charset):
    body = {"strokes": strokes, "charset": charset, "top_k": 47}
    if canvas:
        body["canvas"] = canvas
    check_reading_or_reason(client.post("/api/predict", json=body))


@st.composite
def image_files(draw) -> bytes:
    """A real image file of any size, mode and format, sometimes cut off or with a byte changed."""
    width, height = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG", "WEBP"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Blank, noise, or a bright bar on a dark ground: the three kinds of content that matter.
    kind = draw(st.sampled_from(["blank", "noise", "bar"]))
    pixels = np.zeros((height, width), np.uint8)
    if kind == "noise":
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    elif kind == "bar":
        pixels[height // 4: 3 * height // 4 + 1, width // 3: width // 3 + max(1, width // 8)] = 255
    image = Image.fromarray(pixels).convert(mode)
    if fmt == "JPEG" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    if fmt == "WEBP" and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, fmt)
    data = bytearray(buf.getvalue())
    damage = draw(st.sampled_from(["none", "none", "cut", "flip"]))
    if damage == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == "flip":
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@INK_SETTINGS
@given(data=image_files() | st.binary(max_size=300), as_upload=st.booleans())
def test_any_image_file_is_read_or_refused_with_a_reason(client, data, as_upload):
    if as_upload:
        response = client.post("/api/predict/upload", files={"file": ("x", data, "image/png")})
    else:
        response = client.post("/api/predict", json={"image": base64.b64encode(data).decode()})
    check_reading_or_reason(response)
