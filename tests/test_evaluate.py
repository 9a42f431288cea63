import json
import subprocess
import sys

import numpy as np
from PIL import Image

from emnist_draw.data import BALANCED_CLASSES, load_mapping
from emnist_draw.evaluate import classification_report, common_classes, confusion_image
from tests.test_data import write_idx


def test_report_figures_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2])
    r = classification_report(y_true, y_pred, "abcd")
    assert r["balanced_accuracy"] == round((3 / 4 + 1 / 2 + 1) / 3, 5)  # "d" is absent: not averaged
    assert r["accuracy"] == 0.8 and r["images"] == 10
    assert r["per_class_recall"] == {"a": 0.75, "b": 0.5, "c": 1.0}
    assert r["most_confused"] == [{"true": "b", "predicted": "a", "count": 1},
                                  {"true": "a", "predicted": "b", "count": 1}] or \
        r["most_confused"] == [{"true": "a", "predicted": "b", "count": 1},
                               {"true": "b", "predicted": "a", "count": 1}]


def test_common_classes_across_label_schemes(data_dir):
    model = list(BALANCED_CLASSES)
    names, split_lut, model_lut = common_classes(load_mapping(data_dir, "letters"), False, model)
    a = names.index("Aa")
    assert split_lut[1] == a and model_lut[model.index("A")] == a and model_lut[model.index("a")] == a
    names, split_lut, model_lut = common_classes(load_mapping(data_dir, "byclass"), False, model)
    assert len(names) == 47
    byclass = load_mapping(data_dir, "byclass")
    assert split_lut[byclass.index("c")] == split_lut[byclass.index("C")] == model_lut[model.index("C")]
    assert split_lut[byclass.index("a")] != split_lut[byclass.index("A")]
    names, split_lut, model_lut = common_classes(model, True, model)
    assert names[12] == "Cc" and np.array_equal(split_lut, model_lut)


def test_confusion_image(tmp_path):
    y = np.arange(47).repeat(3)
    confusion_image(y, np.roll(y, 1), BALANCED_CLASSES, tmp_path / "cm.png")
    assert Image.open(tmp_path / "cm.png").size == (14 * 49, 14 * 49)


def run_evaluate(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "evaluate", "--json", *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1  # one JSON line, for scripts
    return json.loads(lines[0])


def test_evaluate_an_idx_pair_and_an_official_split(data_dir, tmp_path):
    from emnist_draw.data import load_split

    images, labels = load_split(data_dir, "mnist", "test")
    # Our own idx pair, balanced numbering (digits are classes 0-9), stored transposed like EMNIST.
    write_idx(tmp_path / "images-idx3-ubyte", images[:500].transpose(0, 2, 1), 0x803)
    write_idx(tmp_path / "labels-idx1-ubyte", labels[:500], 0x801)
    pair = run_evaluate("--images", str(tmp_path / "images-idx3-ubyte"),
                        "--labels", str(tmp_path / "labels-idx1-ubyte"),
                        "--confusion", str(tmp_path / "cm.png"))
    assert pair["images"] + pair["excluded_train_overlap"] == 500
    assert pair["balanced_accuracy"] > 0.6 and (tmp_path / "cm.png").is_file()
    official = run_evaluate("--split", "mnist", "--part", "test")
    # Images the model trained on are left out, so the figure speaks of unseen writing only.
    assert official["excluded_train_overlap"] > 1000
    assert official["images"] + official["excluded_train_overlap"] == 10_000
    assert set(official["per_class_recall"]) == set("0123456789")
    # Calibrated, and read as a digits set reads: confident and right alike.
    digits = run_evaluate("--split", "mnist", "--part", "test", "--charset", "digits")
    assert digits["charset"] == "digits" and digits["temperature"] < 1
    assert digits["accuracy"] > official["accuracy"] and digits["ece"] < 0.02
    assert abs(digits["mean_confidence"] - digits["accuracy"]) < 0.02


def test_evaluate_rejects_labels_of_the_wrong_scheme(data_dir, tmp_path):
    write_idx(tmp_path / "i", np.zeros((3, 28, 28)), 0x803)
    write_idx(tmp_path / "l", np.array([0, 1, 60]), 0x801)
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "evaluate", "--images",
                          str(tmp_path / "i"), "--labels", str(tmp_path / "l")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "--split" in out.stderr
