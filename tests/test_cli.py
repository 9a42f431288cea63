import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from emnist_draw.data import load_split
from emnist_draw.recognizer import MODELS_DIR


def test_predict_reads_image_files_either_polarity(data_dir, tmp_path):
    images, labels = load_split(data_dir, "mnist", "test")
    paths = []
    for i in range(20):
        # Dark ink on white, enlarged: what a scan or a screenshot looks like.
        path = tmp_path / f"{i}.png"
        Image.fromarray(255 - images[i] if i % 2 else images[i]).resize((140, 140)).save(path)
        paths.append(str(path))
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "predict", *paths,
                          "--charset", "digits", "--top-k", "3"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["file"] for a in answers] == paths
    assert all(len(a["top_k"]) == 3 and a["prediction"].isdigit() for a in answers)
    correct = np.mean([a["prediction"] == str(label) for a, label in zip(answers, labels)])
    assert correct >= 0.85
    # Read as digits, these are no look-alikes; a status that says so on the ones read surely.
    assert {a["status"] for a in answers} <= {"ok", "unsure"}
    assert all(a["status"] == "ok" for a in answers if a["top_k"][0]["probability"] > 0.5)


@pytest.mark.parametrize("command", [["predict", "x.png"], ["read", "x.png"], ["evaluate"],
                                     ["calibrate"]])
def test_a_missing_model_is_one_line_and_status_2(command, tmp_path):
    model = str(tmp_path / "nope.onnx")
    args = command + ([model] if command == ["calibrate"] else ["--model", model])
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", *args], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("emnist-draw: ") and "no such model file" in out.stderr


def test_predict_names_the_file_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "predict",
                          str(tmp_path / "notes.txt")], capture_output=True, text=True)
    assert out.returncode == 1 and "notes.txt" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "missing"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_a_damaged_model_naming_the_file_and_the_fix(tmp_path, damage, workers):
    shipped = MODELS_DIR / "emnist-balanced-medium.onnx"
    model = tmp_path / shipped.name
    shutil.copy(shipped.with_suffix(".json"), model.with_suffix(".json"))
    data = shipped.read_bytes()
    if damage == "truncated":
        model.write_bytes(data[:len(data) // 2])
    elif damage == "corrupt":
        model.write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "serve", "--model", str(model),
                          "--port", "0", "--workers", workers, "--data-dir", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    message = out.stderr.strip().splitlines()[-1]
    assert str(model) in message and "Traceback" not in out.stderr
    if damage == "missing":
        assert "no such model file" in message and "emnist-balanced-medium" in message
    else:
        assert "checksum does not match" in message and "reinstall" in message
