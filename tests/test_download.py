"""Download and extraction against a real HTTP server on loopback, with real official files.

The extracted files are checked against the official sha256, so the test archive is built
from the official mnist-test files in ../shared/data/emnist (the smallest split part there).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from emnist_draw import download
from emnist_draw.data import EmnistFileError, load_pair

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "emnist"
IMAGES = "emnist-mnist-test-images-idx3-ubyte.gz"
LABELS = "emnist-mnist-test-labels-idx1-ubyte.gz"
MAPPING = "emnist-mnist-mapping.txt"
TEST_ONLY = ("test",)

pytestmark = pytest.mark.skipif(not (SHARED / IMAGES).is_file(),
                                reason=f"the official EMNIST files are not in {SHARED}")


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # stored: fast to build and read
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def official_members(prefix: str = "gzip/") -> dict[str, bytes]:
    return {prefix + name: (SHARED / name).read_bytes() for name in (IMAGES, LABELS, MAPPING)}


@pytest.fixture(scope="module")
def good_zip() -> bytes:
    return make_zip(official_members())


class Handler(BaseHTTPRequestHandler):
    """Serves server.routes: path -> (body, bytes actually sent); anything else is a 404."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404, "Not Found")
            return
        body, sent = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:sent])
        self.close_connection = True  # hang up: with sent < len(body), a cut-off download

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.routes, httpd.requests = {}, []
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache: nothing is ever written to ~/.cache."""
    monkeypatch.setenv("EMNIST_DRAW_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gzip.zip"


def official_names_in(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name in download.OFFICIAL_SHA256 or p.name.endswith(".part"))


def test_download_and_extract_over_http(server, good_zip, cache, tmp_path):
    server.routes["/gzip.zip"] = (good_zip, len(good_zip))
    data = tmp_path / "data"
    paths = download.fetch_split("mnist", data, url=server.url("/gzip.zip"), parts=TEST_ONLY)

    assert paths == [data / IMAGES, data / LABELS, data / MAPPING]
    images, labels = load_pair(data / IMAGES, data / LABELS)
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert (data / MAPPING).read_bytes() == (SHARED / MAPPING).read_bytes()
    assert (cache / "gzip.zip").is_file() and not (cache / "gzip.zip.part").exists()
    assert server.requests == ["/gzip.zip"]

    # Already there and verified: no second download.
    assert download.fetch_split("mnist", data, url=server.url("/gzip.zip"),
                                parts=TEST_ONLY) == paths
    assert server.requests == ["/gzip.zip"]

    # A file damaged after extraction (same size, new mtime) is noticed and extracted again
    # from the cached archive, still without a download.
    damaged = bytearray((data / IMAGES).read_bytes())
    damaged[1000] ^= 0xFF
    (data / IMAGES).write_bytes(damaged)
    os.utime(data / IMAGES, ns=(1, 1))
    download.fetch_split("mnist", data, url=server.url("/gzip.zip"), parts=TEST_ONLY)
    download.verify_file(data / IMAGES)
    assert server.requests == ["/gzip.zip"]


def test_default_data_dir_is_the_cache(server, good_zip, cache):
    server.routes["/gzip.zip"] = (good_zip, len(good_zip))
    paths = download.fetch_split("mnist", url=server.url("/gzip.zip"), parts=TEST_ONLY)
    assert paths == [cache / IMAGES, cache / LABELS, cache / MAPPING]


def test_tampered_member_fails_its_sha256(server, cache, tmp_path):
    # A valid zip whose images member differs from the official one by a byte (a bad mirror).
    members = official_members()
    images = bytearray(members["gzip/" + IMAGES])
    images[len(images) // 2] ^= 0x01
    members["gzip/" + IMAGES] = bytes(images)
    body = make_zip(members)
    server.routes["/gzip.zip"] = (body, len(body))
    data = tmp_path / "data"

    with pytest.raises(EmnistFileError) as e:
        download.fetch_split("mnist", data, url=server.url("/gzip.zip"), parts=TEST_ONLY)
    message = str(e.value)
    assert IMAGES in message and "sha256" in message and "download it again" in message
    assert download.OFFICIAL_SHA256[IMAGES][0] in message
    assert official_names_in(data) == []


def test_byte_flipped_in_transit_is_caught(server, good_zip, tmp_path):
    # The zip's own CRC catches a flipped byte before the sha256 check can.
    start = good_zip.find((SHARED / IMAGES).read_bytes()[:64])
    body = bytearray(good_zip)
    body[start + 5000] ^= 0x01
    server.routes["/gzip.zip"] = (bytes(body), len(body))
    data = tmp_path / "data"

    with pytest.raises(EmnistFileError, match="damaged.*download it again"):
        download.fetch_split("mnist", data, url=server.url("/gzip.zip"), parts=TEST_ONLY)
    assert official_names_in(data) == []


def test_truncated_download_leaves_nothing(server, good_zip, cache, tmp_path):
    server.routes["/gzip.zip"] = (good_zip, len(good_zip) // 2)
    data = tmp_path / "data"

    with pytest.raises(EmnistFileError, match=f"stopped after {len(good_zip) // 2} of "
                                              f"{len(good_zip)} bytes"):
        download.fetch_split("mnist", data, url=server.url("/gzip.zip"), parts=TEST_ONLY)
    assert list(cache.iterdir()) == []
    assert official_names_in(data) == []


def test_http_error_names_the_status(server, cache, tmp_path):
    with pytest.raises(EmnistFileError, match="HTTP error 404"):
        download.fetch_split("mnist", tmp_path / "data", url=server.url("/nothing.zip"),
                             parts=TEST_ONLY)
    assert server.requests == ["/nothing.zip"]
    assert list(cache.iterdir()) == []


def test_connection_refused(tmp_path):
    with pytest.raises(EmnistFileError, match="cannot download"):
        download.download_archive(closed_port_url(), tmp_path / "gzip.zip")
    assert list(tmp_path.iterdir()) == []


def test_local_archive_needs_no_server(good_zip, cache, tmp_path):
    archive = tmp_path / "gzip.zip"
    archive.write_bytes(good_zip)
    data = tmp_path / "data"
    paths = download.fetch_split("mnist", data, url=closed_port_url(), archive=archive,
                                 parts=TEST_ONLY)
    assert paths == [data / IMAGES, data / LABELS, data / MAPPING]
    for path in paths[:2]:
        download.verify_file(path)
    assert not cache.exists()  # the user's archive is used where it is, not copied


def test_members_without_the_gzip_folder(tmp_path):
    archive = tmp_path / "flat.zip"
    archive.write_bytes(make_zip(official_members(prefix="")))
    paths = download.extract_split(archive, "mnist", tmp_path / "data", parts=TEST_ONLY)
    assert [p.name for p in paths] == [IMAGES, LABELS, MAPPING]


@pytest.mark.parametrize("how", ["file-url", "path"])
def test_download_from_a_local_file(good_zip, tmp_path, how):
    source = tmp_path / "source.zip"
    source.write_bytes(good_zip)
    url = source.as_uri() if how == "file-url" else str(source)
    dest = download.download_archive(url, tmp_path / "out" / "gzip.zip")
    assert dest.read_bytes() == good_zip
    assert sorted(p.name for p in dest.parent.iterdir()) == ["gzip.zip"]


def test_a_full_split_needs_the_train_members(good_zip, tmp_path):
    # The command line fetches both parts: the test archive has no train files.
    archive = tmp_path / "gzip.zip"
    archive.write_bytes(good_zip)
    with pytest.raises(EmnistFileError) as e:
        download.fetch_split("mnist", tmp_path / "data", archive=archive)
    assert "emnist-mnist-train-images-idx3-ubyte.gz" in str(e.value)
    assert "emnist-mnist-train-labels-idx1-ubyte.gz" in str(e.value)


def test_not_a_zip(tmp_path):
    archive = tmp_path / "gzip.zip"
    archive.write_bytes(b"<html>not found</html>")
    with pytest.raises(EmnistFileError, match="not a readable zip"):
        download.extract_split(archive, "mnist", tmp_path / "data", parts=TEST_ONLY)


def test_files_already_there_are_used_without_download(tmp_path):
    # A copy, not ../shared itself: fetch_split writes its stamp beside the files it verified.
    data = tmp_path / "data"
    data.mkdir()
    for name in (IMAGES, LABELS, MAPPING):
        shutil.copy(SHARED / name, data / name)
    paths = download.fetch_split("mnist", data, url=closed_port_url(), parts=TEST_ONLY)
    assert paths == [data / IMAGES, data / LABELS, data / MAPPING]
    assert (data / download.STAMP_NAME).is_file()
    # With the stamp, and the url still unreachable, a second call is as quick as a stat.
    assert download.fetch_split("mnist", data, url=closed_port_url(), parts=TEST_ONLY) == paths


def test_verify_file(tmp_path):
    download.verify_file(SHARED / LABELS)

    changed = tmp_path / LABELS
    data = bytearray((SHARED / LABELS).read_bytes())
    data[-10] ^= 0x01
    changed.write_bytes(data)
    with pytest.raises(EmnistFileError, match="sha256"):
        download.verify_file(changed)

    changed.write_bytes(data[:-1])
    with pytest.raises(EmnistFileError, match="bytes"):
        download.verify_file(changed)

    other = tmp_path / "labels.gz"
    shutil.copy(SHARED / LABELS, other)
    with pytest.raises(EmnistFileError, match="not the name of an official"):
        download.verify_file(other)
