import json
import subprocess
import sys

import numpy as np
from PIL import Image

from emnist_draw.data import load_split


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


def test_predict_names_the_file_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "predict",
                          str(tmp_path / "notes.txt")], capture_output=True, text=True)
    assert out.returncode == 1 and "notes.txt" in out.stderr and "Traceback" not in out.stderr
