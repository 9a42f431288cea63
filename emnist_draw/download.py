"""Download the official NIST EMNIST archive and extract one split from it, verified.

Every `.gz` is checked against the official sha256 before it gets its real name, so a
damaged download or a wrong mirror can never be mistaken for the official data.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from emnist_draw.data import PARTS, SPLITS, EmnistFileError

ARCHIVE_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
ARCHIVE_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"
ARCHIVE_NAME = "gzip.zip"
ARCHIVE_FOLDER = "gzip/"  # the official zip keeps its members in this folder

# file name -> (sha256, bytes) of the official archive members, as in ../shared/data/README.md.
OFFICIAL_SHA256: dict[str, tuple[str, int]] = {
    "emnist-balanced-test-images-idx3-ubyte.gz": ("117fc12b015e37ea98bfb2cbba3f77c3782c056cdbd219b87abfc8661d7135db", 4714707),
    "emnist-balanced-test-labels-idx1-ubyte.gz": ("a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd", 13504),
    "emnist-balanced-train-images-idx3-ubyte.gz": ("74295e75e4e9fa2c102147460ee7eb763653d5132d883a84fb88932bfb8d2db4", 28207740),
    "emnist-balanced-train-labels-idx1-ubyte.gz": ("b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed", 80618),
    "emnist-byclass-test-images-idx3-ubyte.gz": ("5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd", 28908322),
    "emnist-byclass-test-labels-idx1-ubyte.gz": ("501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a", 81839),
    "emnist-byclass-train-images-idx3-ubyte.gz": ("9e21987f03a6eb8b870187e785883ddad96947299587908f1a7ec2ca0f4be5f0", 173367313),
    "emnist-byclass-train-labels-idx1-ubyte.gz": ("f7ef403d48dc18a89dae0d83d11ee69cecb6e1c12c3a961d03712e495c02a8fa", 491603),
    "emnist-bymerge-test-images-idx3-ubyte.gz": ("5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683", 28905295),
    "emnist-bymerge-test-labels-idx1-ubyte.gz": ("8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35", 79351),
    "emnist-bymerge-train-images-idx3-ubyte.gz": ("39bf8c68037dad40db35348895f7e4e056e8c0a005ab78869c9fbc2c96e947be", 173375281),
    "emnist-bymerge-train-labels-idx1-ubyte.gz": ("2c47293b9e62d6abf6ad05fbf67e40baa32adfd380b8d7b44dcc35534b64e1f1", 476444),
    "emnist-digits-test-images-idx3-ubyte.gz": ("20ebe43509264f7639d37c835a3f0b009e90b29e00a099a03101abe1644a3f63", 9908519),
    "emnist-digits-test-labels-idx1-ubyte.gz": ("bad1834c45d5988e270b99d43b13edc3fd898f658ffbc2caf2846ef27f7b05b0", 19960),
    "emnist-digits-train-images-idx3-ubyte.gz": ("f7c95004d14d81af89522e67d8f0c781dfb3bd544181c81bfe1eb6b41c35b726", 59515779),
    "emnist-digits-train-labels-idx1-ubyte.gz": ("6638a6ff5fe2eefd9cca2471995b46c82986b8e4b2a70d2f5ce8e05d7edb319e", 113859),
    "emnist-letters-test-images-idx3-ubyte.gz": ("50f0e93d75b99b463e9760b8345866f22587fa2c2fba472730a5ba09c693412d", 5039157),
    "emnist-letters-test-labels-idx1-ubyte.gz": ("924955c31fe7fd809b7303b5c0141282955f4b8390c74cdfd5d80435e0f4b4cb", 144),
    "emnist-letters-train-images-idx3-ubyte.gz": ("6288f418a917e007bf5fddb823a2dc7a5c6a35031401b93292a539cb12bd881f", 30804864),
    "emnist-letters-train-labels-idx1-ubyte.gz": ("9759af91ea6bccdf07a6040fd085861f2ec88e37f7c3f5760f6feb57106fbe5c", 79283),
    "emnist-mnist-test-images-idx3-ubyte.gz": ("b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6", 2484884),
    "emnist-mnist-test-labels-idx1-ubyte.gz": ("bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca", 5144),
    "emnist-mnist-train-images-idx3-ubyte.gz": ("5f9942f441031c0f1f2e4d162059fd6e19ea808b34c328b6d16cab0ed24c78f2", 14873795),
    "emnist-mnist-train-labels-idx1-ubyte.gz": ("00c6d3c2342fdffb1711e0b5656cac4ce5862d2826399d383a9bac07d612e9f8", 29480),
}

CHUNK = 1 << 20
TIMEOUT_S = 60  # per socket operation: a stalled connection fails instead of hanging forever
USER_AGENT = "emnist-draw (python urllib)"  # some servers refuse urllib's default agent
STAMP_NAME = ".emnist-draw-verified.json"
_OFFICIAL_URLS = {ARCHIVE_URL, ARCHIVE_URL.replace("https://", "http://", 1)}


def default_cache_dir() -> Path:
    """Where the archive (and, without --data-dir, the extracted files) are kept."""
    return Path(os.environ.get("EMNIST_DRAW_CACHE") or Path.home() / ".cache" / "emnist-draw")


def split_files(split: str, parts: tuple[str, ...] = PARTS) -> list[str]:
    """The names of a split's official files: images and labels of each part, then the mapping."""
    if split not in SPLITS or not parts or any(p not in PARTS for p in parts):
        raise ValueError(f"unknown split {split} {parts}; splits: {', '.join(SPLITS)}; "
                         "parts: train, test")
    names = [f"emnist-{split}-{part}-{kind}-ubyte.gz"
             for part in parts for kind in ("images-idx3", "labels-idx1")]
    return names + [f"emnist-{split}-mapping.txt"]


def verify_file(path: str | Path) -> None:
    """Raise EmnistFileError unless the file has the official sha256 and size of its name."""
    path = Path(path)
    if path.name not in OFFICIAL_SHA256:
        raise EmnistFileError(f"{path}: not the name of an official EMNIST .gz file")
    expected_sha, expected_size = OFFICIAL_SHA256[path.name]
    if not path.is_file():
        raise EmnistFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size != expected_size:  # cheap, and catches the usual cut-off download
        raise EmnistFileError(f"{path}: {size} bytes, the official file has {expected_size}; "
                              "download it again")
    with open(path, "rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != expected_sha:
        raise EmnistFileError(f"{path}: sha256 {actual}, the official file's is {expected_sha}; "
                              "download it again")


def download_archive(url: str, dest: str | Path) -> Path:
    """Download url (http(s), file:// or a local path) to dest, complete or not at all."""
    url, dest = _as_url(url), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    md5, received, total = hashlib.md5(), 0, None
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, \
                open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f"downloading {dest.name}") as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        # urllib returns a short body without complaint when the server hangs up early.
        if total is not None and received != total:
            raise EmnistFileError(f"{url}: the download stopped after {received} of {total} "
                                  "bytes; try again")
        # Only the NIST original has a known md5: a mirror or a test archive may differ.
        if url in _OFFICIAL_URLS and md5.hexdigest() != ARCHIVE_MD5:
            raise EmnistFileError(f"{url}: the download's md5 is {md5.hexdigest()}, the official "
                                  f"archive's is {ARCHIVE_MD5}; try again")
        os.replace(part, dest)
    except urllib.error.HTTPError as e:
        raise EmnistFileError(f"{url}: HTTP error {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise EmnistFileError(f"{url}: cannot download ({e.reason})") from e
    except (OSError, http.client.HTTPException) as e:
        raise EmnistFileError(f"{url}: the download failed after {received} bytes ({e}); "
                              "try again") from e
    finally:
        part.unlink(missing_ok=True)  # never leave half a file behind, even on Ctrl-C
    return dest


def extract_split(archive: str | Path, split: str, dest_dir: str | Path,
                  parts: tuple[str, ...] = PARTS) -> list[Path]:
    """Extract a split's .gz files (sha256-verified) and its mapping from the NIST zip."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    names = split_files(split, parts)
    if not archive.is_file():
        raise EmnistFileError(f"{archive}: no such file")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise EmnistFileError(f"{archive}: not a readable zip archive ({e}); delete it and "
                              "download it again") from e
    with zf:
        members = {info.filename.removeprefix(ARCHIVE_FOLDER): info
                   for info in zf.infolist() if not info.is_dir()}
        missing = [name for name in names if name not in members]
        if missing:
            raise EmnistFileError(f"{archive}: has no {', '.join(missing)} (looked at the top "
                                  f"and under {ARCHIVE_FOLDER}); is it the EMNIST gzip.zip?")
        dest_dir.mkdir(parents=True, exist_ok=True)
        stamp = _read_stamp(dest_dir)
        paths = []
        for name in names:
            path = _extract_member(zf, members[name], dest_dir / name, archive)
            if name in OFFICIAL_SHA256:
                stamp[name] = _fingerprint(path)
            paths.append(path)
        _write_stamp(dest_dir, stamp)
    return paths


def fetch_split(split: str, data_dir: str | Path | None = None, url: str | None = None,
                archive: str | Path | None = None,
                parts: tuple[str, ...] = PARTS) -> list[Path]:
    """The verified files of a split in data_dir (default: the cache), fetched if needed.

    Uses `archive` if given, else the archive kept in the cache, else downloads it from `url`
    (default: NIST). The downloaded archive stays in the cache so other splits need no
    second download.
    """
    names = split_files(split, parts)
    data_dir = Path(data_dir) if data_dir is not None else default_cache_dir()
    if _already_verified(data_dir, names):
        return [data_dir / name for name in names]
    if archive is None:
        archive = default_cache_dir() / ARCHIVE_NAME
        if not archive.is_file():
            download_archive(url or ARCHIVE_URL, archive)
    return extract_split(archive, split, data_dir, parts)


# ---------------------------------------------------------------- helpers


def _as_url(url_or_path: str) -> str:
    if urllib.parse.urlsplit(url_or_path).scheme.lower() in ("http", "https", "ftp", "file"):
        return url_or_path
    return Path(url_or_path).resolve().as_uri()  # also right for C:\... paths on Windows


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path,
                    archive: Path) -> Path:
    """Copy one member to a temporary name, check it, and only then give it its real name."""
    tmp = target.with_name(target.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with zf.open(info) as src, open(tmp, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        if target.name in OFFICIAL_SHA256:
            expected_sha, expected_size = OFFICIAL_SHA256[target.name]
            if (digest.hexdigest(), size) != (expected_sha, expected_size):
                raise EmnistFileError(
                    f"{target.name} in {archive} is not the official file: sha256 "
                    f"{digest.hexdigest()} ({size} bytes), expected {expected_sha} "
                    f"({expected_size} bytes); the archive is damaged or not the official one: "
                    f"delete {archive} and download it again"
                )
        os.replace(tmp, target)
    except (zipfile.BadZipFile, EOFError) as e:  # zipfile's CRC check found a damaged member
        raise EmnistFileError(f"{target.name} in {archive} is damaged ({e}); delete {archive} "
                              "and download it again") from e
    finally:
        tmp.unlink(missing_ok=True)
    return target


# Hashing ~170 MB takes seconds, so a file is hashed once; after that, the same size and
# mtime in this stamp (beside the files) count as verified.


def _fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": OFFICIAL_SHA256[path.name][0]}


def _read_stamp(directory: Path) -> dict:
    try:
        stamp = json.loads((directory / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _write_stamp(directory: Path, stamp: dict) -> None:
    tmp = directory / (STAMP_NAME + ".part")
    try:
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True))
        os.replace(tmp, directory / STAMP_NAME)
    except OSError:
        pass  # a read-only folder (a shared copy): the files are simply hashed again next time


def _already_verified(data_dir: Path, names: list[str]) -> bool:
    """Whether every file is there and official; a file that fails is extracted again."""
    stamp, changed = _read_stamp(data_dir), False
    for name in names:
        path = data_dir / name
        if not path.is_file():
            return False
        if name not in OFFICIAL_SHA256 or stamp.get(name) == _fingerprint(path):
            continue
        try:
            verify_file(path)
        except EmnistFileError:
            return False
        stamp[name], changed = _fingerprint(path), True
    if changed:
        _write_stamp(data_dir, stamp)
    return True
