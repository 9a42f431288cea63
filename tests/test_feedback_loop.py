"""The whole loop: corrections posted to a live server, exported as idx files, and read by a
tiny fine-tuning run (`emnist-draw train --extra ... --init ...`)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import torch

from emnist_draw import store
from emnist_draw.data import BALANCED_CLASSES, load_pair
from emnist_draw.model import CNN

from app_helpers import live_server

POOL_IMAGES = 256  # --limit: a tiny run; the point is that it reads the corrections
LABELS = "7zQ3ab"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emnist_draw.cli", *args], capture_output=True,
                          text=True, timeout=900)


def test_corrections_are_exported_and_fine_tune_a_model(tmp_path):
    data = tmp_path / "data"
    sqlite_only = {store.DATABASE_URL_ENV: ""}
    with live_server("--data-dir", str(data), env=sqlite_only) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        for i, label in enumerate(LABELS):
            stroke = [[20 + 5 * i, 10], [50, 90 - 4 * i], [80, 15]]
            r = client.post("/api/feedback", json={"strokes": [stroke], "label": label,
                                                   "predicted": "1"})
            assert r.status_code == 201, r.text

    export = cli("feedback", "export", "--out", str(tmp_path / "export"), "--data-dir", str(data))
    assert export.returncode == 0, export.stderr
    files = json.loads(export.stdout)
    assert files["count"] == len(LABELS)
    images, labels = load_pair(files["images"], files["labels"])
    assert [BALANCED_CLASSES[y] for y in labels] == [c if c in BALANCED_CLASSES else c.upper()
                                                    for c in LABELS]
    assert all(img.any() for img in images)

    # Any checkpoint of `emnist-draw train` works as --init; fresh weights keep the test quick.
    init = tmp_path / "init.pt"
    torch.save({"model_state_dict": CNN(len(BALANCED_CLASSES), "small").state_dict()}, init)
    out = tmp_path / "finetune"
    train = cli("train", "--extra", files["images"], "--init", str(init), "--out", str(out),
                "--limit", str(POOL_IMAGES), "--val-limit", "200", "--epochs", "1",
                "--batch-size", "64", "--threads", "1", "--no-augment")
    assert train.returncode == 0, train.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_images"] == POOL_IMAGES + len(LABELS)  # the corrections were read
    assert metrics["config"]["extra"] == [files["images"]]
    assert np.isfinite(metrics["history"][0]["train_loss"])
