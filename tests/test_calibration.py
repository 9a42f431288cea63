"""Calibrated confidence: the temperature, the expected calibration error, and the shipped models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from emnist_draw.calibration import (calibration_report, fit_temperature, reliability_diagram,
                                     softmax)
from emnist_draw.recognizer import MODELS_DIR, ModelFileError, Recognizer, sha256_file


def test_fit_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20_000, 10))
    # Labels drawn from softmax(logits / 0.5): the model's logits are twice too flat.
    cumulative = softmax(logits, 0.5).cumsum(1)
    labels = (rng.random((len(logits), 1)) > cumulative).sum(1)
    assert fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.05)


def test_expected_calibration_error_by_hand():
    # Ten answers at 95%, nine right: one bin, |0.9 - 0.95|; ten at 55%, five right: |0.5 - 0.55|.
    confidence = np.r_[np.full(10, 0.95), np.full(10, 0.55)]
    correct = np.r_[np.arange(10) < 9, np.arange(10) < 5]
    report = calibration_report(confidence, correct)
    assert report["ece"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert report["mean_confidence"] == pytest.approx(0.75) and report["accuracy"] == 0.7
    assert [b["images"] for b in report["bins"]] == [10, 10]


def test_shipped_models_are_calibrated_on_the_validation_part(pool):
    images, labels = pool.val
    images, labels = images[::4], labels[::4]
    for name in ("emnist-balanced-medium", "emnist-balanced-medium-int8"):
        recognizer = Recognizer(name)
        assert 0.3 < recognizer.temperature < 1  # the raw output is under-confident
        logits = recognizer.logits(images)
        raw, served = softmax(logits), recognizer.probabilities(images)
        assert (raw.argmax(1) == served.argmax(1)).all()  # the same answers, other confidences
        right = served.argmax(1) == labels
        before = calibration_report(raw.max(1), right)
        after = calibration_report(served.max(1), right)
        assert before["ece"] > 0.1 and after["ece"] < 0.025, (name, before["ece"], after["ece"])


def test_calibrate_command_writes_the_temperature_into_a_models_metadata(tmp_path, data_dir):
    for suffix in (".onnx", ".json"):
        shutil.copy(MODELS_DIR / f"emnist-balanced-medium{suffix}", tmp_path / f"m{suffix}")
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["calibration"]["temperature"] = 0  # unusable: refused at load, and calibrate repairs it
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="calibrate"):
        Recognizer(tmp_path / "m.onnx")
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "calibrate",
                          str(tmp_path / "m.onnx"), "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    fitted = json.loads(out.stdout)
    assert fitted["ece_after"] < fitted["ece_before"]
    recognizer = Recognizer(tmp_path / "m.onnx")  # still passes its checksum
    assert recognizer.temperature == pytest.approx(fitted["temperature"])
    assert recognizer.metadata["onnx_sha256"] == sha256_file(tmp_path / "m.onnx")


def test_reliability_diagram_is_a_picture(tmp_path):
    report = calibration_report(np.linspace(0.3, 1, 200), np.arange(200) % 3 > 0)
    reliability_diagram({"a": report, "b": report}, tmp_path / "r.png")
    assert Image.open(tmp_path / "r.png").size[0] > 300
