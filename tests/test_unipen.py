"""UNIPEN measurement: the fixed writer split, the class mapping, the report's shape."""

import sys
from pathlib import Path

import numpy as np
import pytest

from emnist_draw.data import BALANCED_CLASSES, MERGED_LETTERS
from emnist_draw.recognizer import Recognizer, sha256_file
from emnist_draw.unipen import (GROUPS, Sample, contributor, evaluate_unipen, load_samples,
                                writer_part)


def test_writer_split_is_disjoint_and_stable():
    measure, tune = load_samples("measure", "OK"), load_samples("tune", "OK")
    measure_writers, tune_writers = {s.writer for s in measure}, {s.writer for s in tune}
    assert not measure_writers & tune_writers
    assert all(writer_part(w) == "measure" for w in measure_writers)
    # Pinned: changing the split would silently mix measured writers into tuning.
    assert (len(measure), len(measure_writers)) == (7124, 33)
    assert (len(tune), len(tune_writers)) == (22544, 104)
    assert writer_part("unipen/aga/amywldrp") == writer_part("unipen/aga/amywldrp")
    hashed = [writer_part(f"unipen/x/w{i}") for i in range(2000)]
    assert 0.27 < hashed.count("measure") / len(hashed) < 0.33


def test_loading_is_cached_and_checked():
    assert load_samples("measure", "OK") is load_samples("measure", "OK")
    with pytest.raises(ValueError, match="part"):
        load_samples("train")
    with pytest.raises(ValueError, match="quality"):
        load_samples("measure", "good")


def test_class_mapping_merges_the_right_letters():
    label = lambda char: Sample(char, "unipen/aga/x", "OK", []).label  # noqa: E731
    for letter in MERGED_LETTERS:
        assert label(letter) == label(letter.upper()) == BALANCED_CLASSES.index(letter.upper())
    for letter in "abdefghnqrt":
        assert label(letter) != label(letter.upper())
        assert BALANCED_CLASSES[label(letter)] == letter
    assert [label(d) for d in "0123456789"] == list(range(10))
    assert {s.group for s in load_samples("measure", "OK")} == set(GROUPS)
    assert contributor("unipen/aga/amywldrp") == "aga"


def test_evaluation_report():
    report = evaluate_unipen(Recognizer(), "measure", "OK", limit=300)
    assert report["samples"] == 300 and report["part"] == "measure"
    for key in ("accuracy", "balanced_accuracy"):
        assert 0.4 < report[key] <= 1  # ~0.7 for the provisional model; chance is 0.02
    groups = report["groups"]
    assert set(groups) == set(GROUPS) and sum(g["samples"] for g in groups.values()) == 300
    assert all(g["samples"] > 30 for g in groups.values())  # spread over the part, not its start
    assert sum(c["samples"] for c in report["contributors"].values()) == 300
    assert sum(c["samples"] for c in report["per_class"].values()) == 300
    assert len(report["per_class"]) == report["classes_present"] > 40
    assert report["digits_only"]["samples"] == groups["digits"]["samples"]
    assert report["letters_only"]["samples"] == groups["upper"]["samples"] + groups["lower"]["samples"]
    # Restricting the answer to the right kind of character can only help.
    assert report["digits_only"]["accuracy"] >= groups["digits"]["accuracy"]
    for restricted in ("digits_only", "letters_only"):
        figure = report[restricted]
        wrong = round(figure["samples"] * (1 - figure["accuracy"]))
        assert sum(figure["wrong_by_writer"].values()) == wrong
        assert all(w.startswith("unipen/") for w in figure["wrong_by_writer"])
    assert 0 < report["render_ms_per_sample"] < 50
    # Served probabilities: confident (calibrated well above the raw ~0.78), not over-sure.
    assert 0 < report["ece"] < 0.1 and 0.85 < report["mean_confidence"] < 1
    assert np.isclose(report["accuracy"], sum(
        g["samples"] * g["accuracy"] for g in groups.values()) / 300, atol=1e-3)


# What the shipped model's stage 2 trained on, in brief: per image, the ink's sum and its first
# moments (see ink_moments), with the sha256 of the idx file they were taken from. Written by
# `python tests/test_unipen.py IMAGES_IDX` from the file `make train` rendered.
TRAINED_INK = Path(__file__).parent / "fixtures" / "unipen-tune-ok-ink-moments.npz"


def ink_moments(images: np.ndarray) -> np.ndarray:
    """(N, 3) int64: each image's ink sum and its sums weighted by row and by column. One pixel
    one grey level off moves them by at most 1, 27 and 27; a moved or redrawn character by far
    more."""
    ink = images.astype(np.int64)
    rows = np.arange(images.shape[1])
    return np.stack([ink.sum((1, 2)), (ink.sum(2) * rows).sum(1), (ink.sum(1) * rows).sum(1)], 1)


def test_tune_writers_export_as_training_data(tmp_path):
    from emnist_draw.data import load_pair
    from emnist_draw.unipen import export_idx, load_samples, render

    samples = load_samples("tune", "OK")
    images_path, labels_path = export_idx(tmp_path, quality="OK")
    # The name pattern `train --extra` uses to find the labels beside the images.
    assert str(labels_path) == str(images_path).replace("images-idx3", "labels-idx1")
    images, labels = load_pair(images_path, labels_path)
    assert len(images) == len(samples) and labels.tolist() == [s.label for s in samples]
    assert np.array_equal(images[:50], render(samples[:50]))  # upright, as drawn

    # `make train` must rebuild the shipped model from the same inputs: the ink rendered now is
    # the ink its stage 2 was trained on (a preprocessing change that alters it needs stage 2
    # rerun and the models re-exported, as the README's Training section says).
    trained_on = {Path(name).name: digest for stage in Recognizer().metadata["training"]["stages"]
                  for name, digest in stage["extra_sha256"].items()}
    reference = np.load(TRAINED_INK)
    assert trained_on == {images_path.name: str(reference["sha256"])}, f"{TRAINED_INK} is stale"
    if sha256_file(images_path) == reference["sha256"]:
        return  # byte for byte, as on the machine that trained it
    # Byte for byte only with the same OpenBLAS kernel: the float32 products of
    # preprocess.normalize round differently in a few pixels with each. Measured against the
    # training ink (made with the SkylakeX kernel; Cooperlake's is identical) by rendering the
    # 22,544 images with each OPENBLAS_CORETYPE on one machine: Haswell (AVX2, what Zen CPUs get)
    # 87 images differ, SandyBridge (AVX) 93, each in one pixel by one grey level. Allowed here:
    # 1% of the images, each by 2 grey levels in all.
    moved = np.abs(ink_moments(images) - reference["moments"]).max(1)
    assert (moved > 0).mean() <= 0.01 and moved.max() <= 2 * images.shape[1], (
        f"{(moved > 0).sum()} of {len(images)} images differ from the ink the shipped model trained "
        f"on (up to {moved.max()} in a moment): the UNIPEN ink renders differently (a change in "
        "emnist_draw/preprocess.py, or in Pillow's or numpy's arithmetic): `make train` would no "
        "longer reproduce the shipped model; rerun stage 2 and re-export (see README, Training)")


if __name__ == "__main__":  # after `make train`: record what stage 2 trained on
    from emnist_draw.data import load_pair

    images_file = Path(sys.argv[1])
    TRAINED_INK.parent.mkdir(exist_ok=True)
    images = load_pair(images_file, str(images_file).replace("images-idx3", "labels-idx1"))[0]
    np.savez_compressed(TRAINED_INK, sha256=sha256_file(images_file),
                        moments=ink_moments(images).astype(np.int32))  # 5.4e6 at most
