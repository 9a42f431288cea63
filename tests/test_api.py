"""The API, against the real server (`emnist-draw serve` in a child process)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from PIL import Image

from emnist_draw.data import load_split
from emnist_draw.preprocess import image_to_input, strokes_to_input
from emnist_draw.recognizer import Recognizer
from emnist_draw.server.schemas import MAX_BATCH, MAX_POINTS, MAX_STROKES

from app_helpers import CLEAR, clearly_read_unipen, live_server


@pytest.fixture(scope="module")
def client():
    with live_server() as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer()


@pytest.fixture(scope="module")
def mnist(data_dir, recognizer):
    """Clearly-read MNIST test digits (upright, white on black) and their labels."""
    images, labels = load_split(data_dir, "mnist", "test")
    images, labels = images[:200], labels[:200]
    probs = recognizer.probabilities(np.stack([image_to_input(png(x)) for x in images]))
    clear = np.flatnonzero((probs.argmax(1) == labels) & (probs.max(1) > CLEAR))[:6]
    assert len(clear) >= 4, "too few MNIST digits read clearly: is the shipped model right?"
    return images[clear], labels[clear]


@pytest.fixture(scope="module")
def drawn(recognizer):
    """Clearly-read UNIPEN characters (pen strokes by real writers), one per character."""
    return clearly_read_unipen(recognizer, "7A3bM")


def png(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_answer(answer: dict, k: int = 5) -> None:
    probs = [g["probability"] for g in answer["top_k"]]
    assert len(probs) == k
    assert probs == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1 + 1e-6
    assert answer["prediction"] == answer["top_k"][0]["label"]
    assert answer["model"] == "emnist-balanced-medium"


def test_health(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["model"] == "emnist-balanced-medium"


def test_strokes_of_real_writers(client, drawn):
    for sample in drawn:
        r = client.post("/api/predict", json={"strokes": sample.strokes, "return_input": True})
        assert r.status_code == 200, r.text
        answer = r.json()
        check_answer(answer)
        assert answer["prediction"] == sample.char
        # The server draws strokes exactly as the preprocessing module does: one pipeline.
        assert answer["input"] == strokes_to_input(sample.strokes).reshape(-1).tolist()


def test_strokes_in_canvas_pixels(client):
    # A "7" as the page sends it: CSS pixels of a 300 px pad, with the pad's size.
    seven = [[[60, 50], [240, 50], [200, 110], [150, 190], [120, 260]]]
    r = client.post("/api/predict", json={"strokes": seven, "canvas": {"width": 300, "height": 300},
                                          "top_k": 3})
    assert r.status_code == 200, r.text
    check_answer(r.json(), k=3)
    assert r.json()["prediction"] == "7"


def test_images_as_base64_and_data_url(client, mnist):
    for image, label in zip(*mnist):
        for payload in (b64(png(image)), "data:image/png;base64," + b64(png(image))):
            answer = client.post("/api/predict", json={"image": payload}).json()
            check_answer(answer)
            assert answer["prediction"] == str(label)
    # Dark ink on light paper, as a photo or a scan has it, in the other formats.
    image, label = mnist[0][0], mnist[1][0]
    for fmt, mime in (("JPEG", "jpeg"), ("WEBP", "webp")):
        url = f"data:image/{mime};base64," + b64(png(255 - image, fmt))
        assert client.post("/api/predict", json={"image": url}).json()["prediction"] == str(label)


def test_large_images_read_like_small_ones(client, mnist):
    # Small images decode on the event loop, large ones in a worker thread: same answers, same
    # errors either way.
    image, label = mnist[0][0], mnist[1][0]
    for side in (100, 1000):  # either side of the app's INLINE_IMAGE_PIXELS (512 x 512)
        photo = Image.fromarray(255 - image).resize((side, side), Image.Resampling.BILINEAR)
        data = png(np.asarray(photo), "JPEG")
        answer = client.post("/api/predict", json={"image": b64(data)}).json()
        assert answer["prediction"] == str(label)
        r = client.post("/api/predict", json={"image": b64(data[:len(data) // 2])})
        assert r.status_code == 422 and "damaged or cut off" in r.json()["detail"], r.text


def test_pixels(client, mnist):
    for image, label in zip(*mnist):
        answer = client.post("/api/predict", json={"pixels": image.reshape(-1).tolist()}).json()
        check_answer(answer)
        assert answer["prediction"] == str(label)


def test_original_demo_request(client, mnist):
    image, label = mnist[0][0], mnist[1][0]
    body = json.dumps(image.reshape(-1).tolist(), separators=(",", ":"))  # "[0,0,...]"
    for path in ("/api/predict", "/predict"):
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["prediction"] == str(label)
    # Without the brackets too.
    assert client.post("/api/predict", json=body[1:-1]).json()["prediction"] == str(label)


def test_multipart_upload(client, mnist):
    image, label = mnist[0][0], mnist[1][0]
    r = client.post("/api/predict/upload", files={"file": ("digit.png", png(image), "image/png")},
                    data={"top_k": "3", "charset": "digits", "return_input": "true"})
    assert r.status_code == 200, r.text
    answer = r.json()
    check_answer(answer, k=3)
    assert answer["prediction"] == str(label) and len(answer["input"]) == 784


def test_batch(client, mnist, drawn):
    items = [{"strokes": drawn[0].strokes}, {"image": b64(png(mnist[0][0]))},
             {"pixels": mnist[0][1].reshape(-1).tolist(), "charset": "letters", "top_k": 2}]
    r = client.post("/api/predict/batch", json=items)
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    assert [a["prediction"] for a in answers[:2]] == [drawn[0].char, str(mnist[1][0])]
    assert len(answers[2]["top_k"]) == 2 and answers[2]["prediction"].isalpha()


def test_charset_restricts_the_answer(client, drawn):
    letter = next(s for s in drawn if s.char.isalpha())
    answer = client.post("/api/predict", json={"strokes": letter.strokes, "charset": "digits",
                                               "top_k": 47}).json()
    assert answer["charset"] == "digits"
    assert len(answer["top_k"]) == 10 and all(g["label"].isdigit() for g in answer["top_k"])
    assert sum(g["probability"] for g in answer["top_k"]) == pytest.approx(1, abs=1e-4)
    digit = next(s for s in drawn if s.char.isdigit())
    answer = client.post("/api/predict", json={"strokes": digit.strokes, "charset": "letters"}).json()
    assert all(g["label"].isalpha() for g in answer["top_k"])


def test_return_input(client, drawn):
    answer = client.post("/api/predict", json={"strokes": drawn[0].strokes,
                                               "return_input": True}).json()
    assert len(answer["input"]) == 784 and all(0 <= v <= 255 for v in answer["input"])
    assert max(answer["input"]) == 255
    assert "input" not in client.post("/api/predict", json={"strokes": drawn[0].strokes}).json()


def test_merged_classes_are_labelled_with_both_cases(client):
    model = client.get("/api/model").json()
    assert model["display"]["C"] == "C / c" and model["display"]["A"] == "A"
    assert model["display"]["a"] == "a"


def test_model_info(client):
    model = client.get("/api/model").json()
    assert model["name"] == "emnist-balanced-medium" and len(model["classes"]) == 47
    assert model["charsets"] == ["all", "digits", "letters"]
    assert 0.5 < model["metrics"]["balanced_accuracy"] <= 1
    assert model["preprocessing"]["SIZE"] == 28
    assert model["limits"]["max_batch"] == MAX_BATCH
    assert model["version"]


def test_page_and_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="pad"' in page.text
    # Self-contained: everything the page loads comes from this server.
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "https://" not in r.text
    assert client.get("/openapi.json").json()["paths"]["/api/predict"]


def _big_png() -> str:
    return b64(png(np.zeros((5000, 5000), np.uint8)))


def _gif() -> str:
    buf = io.BytesIO()
    Image.new("L", (28, 28)).save(buf, "GIF")
    return b64(buf.getvalue())


ink = [[[0, 0], [10, 10]]]
BAD_JSON = {
    "not base64": ({"image": "%%%"}, "base64"),
    "not an image": ({"image": b64(b"hello, world")}, "not an image"),
    "a GIF": ({"image": _gif()}, "GIF"),
    "too many pixels": ({"image": _big_png()}, "pixels in all"),
    "image too big": ({"image": "A" * 3_000_000}, "image"),
    "blank image": ({"image": b64(png(np.zeros((28, 28), np.uint8)))}, "no ink"),
    "wrong pixel count": ({"pixels": [0] * 783}, "784"),
    "pixel over 255": ({"pixels": [0] * 783 + [256]}, "255"),
    "negative pixel": ({"pixels": [-1] + [0] * 783}, "greater than or equal to 0"),
    "blank pixels": ({"pixels": [0] * 784}, "no ink"),
    "empty strokes": ({"strokes": []}, "empty"),
    "strokes of no points": ({"strokes": [[], []]}, "empty"),
    "too many strokes": ({"strokes": [[[0, 0]]] * (MAX_STROKES + 1)}, "at most"),
    "too many points": ({"strokes": [[[0, 0]] * 2000] * (MAX_POINTS // 2000 + 1)}, "too many points"),
    "stroke too long": ({"strokes": [[[0, 0]] * 2001]}, "at most 2000"),
    "point of 3 numbers": ({"strokes": [[[0, 0, 0]]]}, "strokes.0.0"),
    "point not numbers": ({"strokes": [[["a", 0]]]}, "number"),
    "huge coordinate": ({"strokes": [[[1e300, 0]]]}, "strokes.0.0.0"),
    "unknown charset": ({"strokes": ink, "charset": "greek"}, "charset"),
    "top_k 0": ({"strokes": ink, "top_k": 0}, "top_k"),
    "top_k 48": ({"strokes": ink, "top_k": 48}, "top_k"),
    "no input": ({}, "exactly one"),
    "two inputs": ({"strokes": ink, "pixels": [0] * 784}, "exactly one"),
    "unknown field": ({"stroke": ink}, "unknown field"),
    "a list": ([1, 2, 3], "JSON object"),
    "demo string, too short": ("[0,0,0]", "784"),
    "demo string, not integers": ("[" + ",".join(["x"] * 784) + "]", "not an integer"),
    "demo string, out of range": ("[" + ",".join(["300"] * 784) + "]", "255"),
}


@pytest.mark.parametrize("body,needle", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_bad_json_input_is_a_4xx_that_says_why(client, body, needle):
    r = client.post("/api/predict", json=body)
    assert 400 <= r.status_code < 500, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and needle.lower() in detail.lower(), detail


BAD_RAW = {
    "not JSON": (b'{"strokes": [[[0, 0]', "not valid JSON"),
    "NaN": (b'{"strokes": [[[NaN, 0], [1, 1]]]}', "finite"),
    "Infinity": (b'{"pixels": [Infinity]}', "finite"),
    "no body": (b"", "body is required"),
}


@pytest.mark.parametrize("raw,needle", BAD_RAW.values(), ids=BAD_RAW.keys())
def test_bad_raw_body_is_a_4xx_that_says_why(client, raw, needle):
    r = client.post("/api/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert needle.lower() in r.json()["detail"].lower(), r.json()["detail"]


def test_body_too_large(client):
    r = client.post("/api/predict", content=b" " * (9 * 1024 * 1024),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        for _ in range(9):
            yield b" " * (1024 * 1024)

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_bad_uploads(client):
    r = client.post("/api/predict/upload", files={"file": ("x.png", b"not a png", "image/png")})
    assert r.status_code == 422 and "not an image" in r.json()["detail"]
    r = client.post("/api/predict/upload", files={"file": ("x.png", b"\0" * (3 << 20), "image/png")})
    assert r.status_code == 422 and "limit" in r.json()["detail"]
    r = client.post("/api/predict/upload", data={"charset": "all"})
    assert r.status_code == 422 and "file" in r.json()["detail"]


def test_bad_batches(client):
    r = client.post("/api/predict/batch", json=[{"strokes": ink}] * (MAX_BATCH + 1))
    assert r.status_code == 422 and f"at most {MAX_BATCH}" in r.json()["detail"]
    r = client.post("/api/predict/batch", json=[{"strokes": ink}, {"strokes": []}])
    assert r.status_code == 422 and "input 1" in r.json()["detail"]
    r = client.post("/api/predict/batch", json=[])
    assert r.status_code == 422 and "at least 1" in r.json()["detail"]


def test_the_server_never_imported_torch(client):
    # Last in the file: by now the server has answered every kind of request.
    assert client.get("/healthz").json()["torch_imported"] is False


def test_importing_the_app_imports_no_torch(tmp_path):
    code = ("import sys; from emnist_draw.server.app import create_app; "
            f"create_app(data_dir={str(tmp_path)!r}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serves_a_torch_checkpoint_converted_once(tmp_path):
    import torch  # the test's own checkpoint; the server must still never import torch

    from emnist_draw.model import CNN
    from emnist_draw.server.convert import cached_model

    checkpoint = tmp_path / "model.ckpt"
    torch.save({"model_state_dict": CNN(47, "seed").state_dict()}, checkpoint)  # the demo's format
    cache = tmp_path / "cache"
    # No EMNIST files in data_dir: a quick export, parity checked on random ink.
    model = cached_model(checkpoint, "seed", cache_dir=cache / "models", data_dir=tmp_path)
    converted_at = model.stat().st_mtime_ns
    with live_server("--checkpoint", str(checkpoint), "--arch", "seed",
                     env={"EMNIST_DRAW_CACHE": str(cache)}) as url:
        health = httpx.get(f"{url}/healthz").json()
        assert health == {"status": "ok", "model": model.stem, "torch_imported": False}
        r = httpx.post(f"{url}/api/predict", json={"strokes": ink})
        assert r.status_code == 200 and len(r.json()["top_k"]) == 5
    assert model.stat().st_mtime_ns == converted_at  # served from the cache, not converted again


def test_serves_the_shipped_int8_model_by_name():
    recognizer = Recognizer("emnist-balanced-medium-int8")
    sample, = clearly_read_unipen(recognizer, "7")
    with live_server("--model", "emnist-balanced-medium-int8") as url:
        model = httpx.get(f"{url}/api/model").json()
        assert model["name"] == "emnist-balanced-medium-int8"
        assert model["onnx_sha256"] == recognizer.metadata["onnx_sha256"]
        answer = httpx.post(f"{url}/api/predict", json={"strokes": sample.strokes}).json()
        assert answer["prediction"] == "7" and answer["model"] == "emnist-balanced-medium-int8"
