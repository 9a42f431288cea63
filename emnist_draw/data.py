"""EMNIST files: read and verify the official idx files, label maps, and the training pool.

The official files store every 28x28 image transposed; everything this module returns is
upright (row 0 is the top of the character), so nothing downstream has to remember that.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("balanced", "byclass", "bymerge", "letters", "digits", "mnist")
PARTS = ("train", "test")

# Official image counts, so a file from the wrong split or a cut-off download is caught by name.
OFFICIAL_COUNTS = {
    ("balanced", "train"): 112_800, ("balanced", "test"): 18_800,
    ("byclass", "train"): 697_932, ("byclass", "test"): 116_323,
    ("bymerge", "train"): 697_932, ("bymerge", "test"): 116_323,
    ("letters", "train"): 124_800, ("letters", "test"): 20_800,
    ("digits", "train"): 240_000, ("digits", "test"): 40_000,
    ("mnist", "train"): 60_000, ("mnist", "test"): 10_000,
}

# The 47 classes of the balanced (and bymerge) split, in label order. Upper and lower case are
# merged for the 15 letters whose shapes differ only in size: c i j k l m o p s u v w x y z.
BALANCED_CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"
MERGED_LETTERS = "cijklmopsuvwxyz"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "emnist"

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


class EmnistFileError(ValueError):
    """A data file is missing, truncated or not what its name says."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (raw or .gz) exactly as stored: (N,) labels or (N, 28, 28) images."""
    path = Path(path)
    if not path.is_file():
        raise EmnistFileError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for cut-off or corrupt archives
        raise EmnistFileError(f"{path}: cannot decompress ({e}); download the file again") from e
    if len(raw) < 8:
        raise EmnistFileError(f"{path}: {len(raw)} bytes is too short to be an idx file")
    magic = int.from_bytes(raw[:4], "big")
    if magic == IDX_LABELS_MAGIC:
        shape = (int.from_bytes(raw[4:8], "big"),)
    elif magic == IDX_IMAGES_MAGIC:
        if len(raw) < 16:
            raise EmnistFileError(f"{path}: image header cut off")
        shape = tuple(int.from_bytes(raw[o:o + 4], "big") for o in (4, 8, 12))
        if shape[1:] != (28, 28):
            raise EmnistFileError(f"{path}: images are {shape[1]}x{shape[2]}, EMNIST's are 28x28")
    else:
        raise EmnistFileError(
            f"{path}: magic number {magic:#010x} is not an idx label (0x00000801) or image "
            "(0x00000803) file of unsigned bytes"
        )
    header = 4 + 4 * len(shape)
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise EmnistFileError(
            f"{path}: {what}: header declares {shape[0]} items ({expected} bytes), file has "
            f"{len(raw)} bytes; download the file again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write uint8 labels (N,) or images (N, 28, 28) as an idx file (.gz when the name says so).

    Images are written as given: pass them transposed (`images.transpose(0, 2, 1)`) to store
    them the way the official files do, so that load_pair returns them upright.
    """
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same arrays give the same bytes, so a checksum can say two files are one
    with (gzip.GzipFile(path, "wb", mtime=0) if path.suffix == ".gz" else open(path, "wb")) as f:
        f.write(header + array.tobytes())
    return path


def find_file(data_dir: str | Path, split: str, part: str, kind: str) -> Path:
    """The path of an official file, .gz or raw; kind is 'images' or 'labels'."""
    stem = f"emnist-{split}-{part}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem + ".gz", stem):
        if (Path(data_dir) / name).is_file():
            return Path(data_dir) / name
    raise EmnistFileError(
        f"{Path(data_dir) / (stem + '.gz')}: not found; run `emnist-draw data download --split "
        f"{split}` or point --data-dir at the folder that holds the official files"
    )


def load_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file: upright uint8 images and int64 labels."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise EmnistFileError(f"{images_path} / {labels_path}: expected an images and a labels file")
    if len(images) != len(labels):
        raise EmnistFileError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    return np.ascontiguousarray(images.transpose(0, 2, 1)), labels.astype(np.int64)


def load_split(data_dir: str | Path, split: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Upright images and labels of one official split, checked against the official count."""
    if split not in SPLITS or part not in PARTS:
        raise ValueError(f"unknown split {split}-{part}; splits: {', '.join(SPLITS)}; parts: train, test")
    images, labels = load_pair(find_file(data_dir, split, part, "images"),
                               find_file(data_dir, split, part, "labels"))
    if len(labels) != OFFICIAL_COUNTS[split, part]:
        raise EmnistFileError(
            f"emnist-{split}-{part} has {len(labels)} items, the official file has "
            f"{OFFICIAL_COUNTS[split, part]}; download it again"
        )
    return images, labels


def load_mapping(data_dir: str | Path, split: str) -> list[str]:
    """Class index -> character(s). Letters map to both cases ("Aa"); the index is the label."""
    path = Path(data_dir) / f"emnist-{split}-mapping.txt"
    if not path.is_file():
        raise EmnistFileError(f"{path}: not found")
    mapping: dict[int, str] = {}
    for line in path.read_text().splitlines():  # the official files have CRLF endings
        if line.strip():
            index, *codes = (int(v) for v in line.split())
            mapping[index] = "".join(chr(c) for c in codes)
    # The letters split numbers its classes from 1, the others from 0.
    return [mapping.get(i, "") for i in range(max(mapping) + 1)]


def to_balanced(chars: str) -> int:
    """The balanced class index of a character (either case of a merged letter)."""
    if chars in BALANCED_CLASSES:
        return BALANCED_CLASSES.index(chars)
    if chars.lower() in MERGED_LETTERS:
        return BALANCED_CLASSES.index(chars.upper())
    raise KeyError(f"{chars!r} is not one of the 47 EMNIST-balanced classes")


def label_map_to_balanced(mapping: list[str]) -> np.ndarray:
    """An array that turns a split's labels into balanced labels (-1 where there is no class)."""
    lut = np.full(len(mapping), -1, dtype=np.int64)
    for index, chars in enumerate(mapping):
        if chars:
            lut[index] = to_balanced(chars[0])
    return lut


def load_balanced_labels(data_dir: str | Path, split: str, images: np.ndarray,
                         labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images of a case-sensitive or balanced-style split (byclass, bymerge, balanced, digits,
    mnist) with their labels turned into the 47 balanced classes; unmapped labels are dropped.

    Splits that merge more than balanced does (letters' "Aa") have no balanced label:
    evaluate.common_classes compares those.
    """
    balanced = label_map_to_balanced(load_mapping(data_dir, split))[labels]
    keep = balanced >= 0
    return images[keep], balanced[keep]


# ---------------------------------------------------------------- the training pool


@dataclass
class Pool:
    """byclass-test + bymerge-test, deduplicated by pixels, in the 47 balanced classes."""

    images: np.ndarray  # (N, 28, 28) uint8, upright
    labels: np.ndarray  # (N,) int64, balanced classes
    is_val: np.ndarray  # (N,) bool: the fixed, stratified validation part

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images[~self.is_val], self.labels[~self.is_val]

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.images[self.is_val], self.labels[self.is_val]


VAL_FRACTION = 0.1
VAL_MIN_PER_CLASS = 100  # so the rarest classes' recall is not measured on a handful of images


def pixel_digests(images: np.ndarray) -> np.ndarray:
    """A 128-bit digest per image: dedup key and the basis of the validation split."""
    return np.array([hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in images],
                    dtype="S16")


def validation_mask(digests: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per class, the images with the smallest digests: the same split whatever the file order."""
    is_val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = max(VAL_MIN_PER_CLASS, round(VAL_FRACTION * len(members)))
        is_val[members[np.argsort(digests[members])[:n_val]]] = True
    return is_val


def build_pool(data_dir: str | Path = DEFAULT_DATA_DIR) -> Pool:
    images, labels = [], []
    for split in ("byclass", "bymerge"):
        split_images, split_labels = load_split(data_dir, split, "test")
        split_images, split_labels = load_balanced_labels(data_dir, split, split_images, split_labels)
        images.append(split_images)
        labels.append(split_labels)
    images, labels = np.concatenate(images), np.concatenate(labels)
    digests = pixel_digests(images)
    _, first, inverse = np.unique(digests, return_index=True, return_inverse=True)
    if np.any(labels[first][inverse] != labels):
        raise EmnistFileError("byclass-test and bymerge-test disagree on the label of an image")
    first.sort()  # keep file order: byclass first, then what bymerge adds
    images, labels, digests = images[first], labels[first], digests[first]
    return Pool(images, labels, validation_mask(digests, labels))
