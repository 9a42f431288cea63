import gzip
import shutil
import time

import numpy as np
import pytest

from emnist_draw.data import write_idx as data_write_idx
from emnist_draw.data import (BALANCED_CLASSES, EmnistFileError, load_mapping, load_pair,
                              load_split, pixel_digests, read_idx, to_balanced, validation_mask)


def write_idx(path, array: np.ndarray, magic: int) -> None:
    """An idx file with any magic number, to test how readers treat wrong ones."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_official_file_reads_upright(data_dir):
    images, labels = load_split(data_dir, "mnist", "test")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(labels.tolist()) == set(range(10))
    # A "1" is a vertical stroke: upright, its mean image is taller than wide; transposed, wider.
    ones = images[labels == 1].mean(0) > 60
    rows, cols = np.flatnonzero(ones.any(1)), np.flatnonzero(ones.any(0))
    assert np.ptp(rows) > 1.5 * np.ptp(cols)  # 21 vs 11 pixels
    # A "7" has its bar at the top.
    sevens = images[labels == 7].mean(0)
    assert sevens[3:10].sum() > 1.5 * sevens[18:25].sum()


def test_written_idx_files_read_back(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    images_path = data_write_idx(tmp_path / "i-idx3-ubyte.gz", images.transpose(0, 2, 1))
    labels = data_write_idx(tmp_path / "l-idx1-ubyte", np.arange(5))
    back_images, back_labels = load_pair(images_path, labels)
    assert np.array_equal(back_images, images) and np.array_equal(back_labels, np.arange(5))
    # Same arrays, same bytes (no timestamp in the gzip header): checksums in metadata mean something.
    time.sleep(1.1)
    again = data_write_idx(tmp_path / "again" / "i-idx3-ubyte.gz", images.transpose(0, 2, 1))
    assert again.read_bytes() == images_path.read_bytes()


def test_raw_and_gz_files_read_the_same(data_dir, tmp_path):
    raw = tmp_path / "emnist-mnist-test-labels-idx1-ubyte"
    with gzip.open(data_dir / "emnist-mnist-test-labels-idx1-ubyte.gz") as f:
        raw.write_bytes(f.read())
    assert np.array_equal(read_idx(raw), read_idx(data_dir / "emnist-mnist-test-labels-idx1-ubyte.gz"))


def test_truncated_file_is_named_and_explained(data_dir, tmp_path):
    with gzip.open(data_dir / "emnist-mnist-test-labels-idx1-ubyte.gz") as f:
        body = f.read()
    cut = tmp_path / "labels-idx1-ubyte"
    cut.write_bytes(body[:-100])
    with pytest.raises(EmnistFileError, match="truncated.*10000 items"):
        read_idx(cut)


def test_cut_off_gzip_is_explained(data_dir, tmp_path):
    cut = tmp_path / "emnist-mnist-test-images-idx3-ubyte.gz"
    cut.write_bytes((data_dir / cut.name).read_bytes()[:100_000])
    with pytest.raises(EmnistFileError, match="cannot decompress"):
        read_idx(cut)


def test_wrong_magic_and_wrong_shape_are_rejected(tmp_path):
    write_idx(tmp_path / "a", np.zeros((3, 28, 28)), magic=0x00000802)
    with pytest.raises(EmnistFileError, match="magic number"):
        read_idx(tmp_path / "a")
    write_idx(tmp_path / "b", np.zeros((3, 32, 32)), magic=0x00000803)
    with pytest.raises(EmnistFileError, match="32x32"):
        read_idx(tmp_path / "b")


def test_images_and_labels_of_different_lengths(tmp_path):
    write_idx(tmp_path / "images", np.zeros((3, 28, 28)), magic=0x00000803)
    write_idx(tmp_path / "labels", np.zeros(4), magic=0x00000801)
    with pytest.raises(EmnistFileError, match="3 images but .* 4 labels"):
        load_pair(tmp_path / "images", tmp_path / "labels")


def test_split_with_the_wrong_count_is_rejected(data_dir, tmp_path):
    write_idx(tmp_path / "emnist-digits-test-images-idx3-ubyte.gz", np.zeros((5, 28, 28)), 0x803)
    write_idx(tmp_path / "emnist-digits-test-labels-idx1-ubyte.gz", np.zeros(5), 0x801)
    with pytest.raises(EmnistFileError, match="has 5 items, the official file has 40000"):
        load_split(tmp_path, "digits", "test")
    with pytest.raises(EmnistFileError, match="emnist-draw data download --split letters"):
        load_split(tmp_path, "letters", "test")


def test_mappings(data_dir):
    assert "".join(load_mapping(data_dir, "balanced")) == BALANCED_CLASSES
    letters = load_mapping(data_dir, "letters")
    assert letters[0] == "" and letters[1] == "Aa" and letters[26] == "Zz"
    byclass = load_mapping(data_dir, "byclass")
    assert len(byclass) == 62 and byclass[36] == "a"
    assert to_balanced("c") == to_balanced("C") == BALANCED_CLASSES.index("C")
    assert to_balanced("a") != to_balanced("A")
    with pytest.raises(KeyError):
        to_balanced("?")


def test_pool_is_deduplicated_and_split_by_class(pool):
    assert len(pool.labels) == 216_168
    assert len(set(pixel_digests(pool.images).tolist())) == 216_168
    counts = np.bincount(pool.labels, minlength=47)
    val_counts = np.bincount(pool.labels[pool.is_val], minlength=47)
    assert counts.min() > 0 and len(counts) == 47
    assert np.all(val_counts >= 100)
    assert np.all(np.abs(val_counts - np.maximum(100, 0.1 * counts)) <= 1)
    train_x, _ = pool.train
    assert not set(pixel_digests(train_x[:5000]).tolist()) & set(pixel_digests(pool.val[0]).tolist())


def test_validation_part_does_not_depend_on_file_order():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 3, 3000)
    digests = pixel_digests(images)
    order = rng.permutation(3000)
    first = set(digests[validation_mask(digests, labels)].tolist())
    second = set(digests[order][validation_mask(digests[order], labels[order])].tolist())
    expected = sum(max(100, round(0.1 * n)) for n in np.bincount(labels))
    assert first == second and len(first) == expected
