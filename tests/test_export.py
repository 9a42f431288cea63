import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from emnist_draw.data import BALANCED_CLASSES, build_pool
from emnist_draw.download import OFFICIAL_SHA256
from emnist_draw.evaluate import classification_report
from emnist_draw.export import as_convolutions, export, load_checkpoint
from emnist_draw.model import CNN
from emnist_draw.recognizer import ModelFileError, Recognizer


def test_export_small_checkpoint_via_cli(tmp_path, data_dir):
    torch.manual_seed(0)
    torch.save({"model_state_dict": CNN(47, "small").state_dict(), "preset": "small"},
               tmp_path / "model.pt")
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "export", str(tmp_path / "model.pt"),
                          "--out", str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["classes"] == list(BALANCED_CLASSES) and meta["preset"] == "small"
    assert meta["parity"]["max_abs_logit_diff"] < 1e-3 and meta["parity"]["top1_agreement"] == 1
    assert meta["data_sha256"] == {k: OFFICIAL_SHA256[k][0] for k in meta["data_sha256"]}
    assert 0 <= meta["validation"]["balanced_accuracy"] < 0.2  # untrained: about chance

    recognizer = Recognizer(tmp_path / "m.onnx")
    model, _ = load_checkpoint(tmp_path / "model.pt")
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        expected = model(torch.from_numpy(images).unsqueeze(1).float() / 127.5 - 1).numpy()
    assert np.abs(recognizer.logits(images) - expected).max() < 1e-3
    ops = {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "Conv" in ops and "ConvTranspose" not in ops  # see as_convolutions

    # A damaged model file is refused at load time, naming the file and the fix.
    blob = bytearray((tmp_path / "m.onnx").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "m.onnx").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="m.onnx: checksum does not match"):
        Recognizer(tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match="no such model file"):
        Recognizer(tmp_path / "missing.onnx")


def test_transposed_conv_becomes_the_conv_it_equals():
    torch.manual_seed(0)
    for preset in ("small", "medium"):
        model = CNN(47, preset).eval()
        for layer in model.modules():  # batch-norm statistics as a trained model has them
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.uniform_(-1, 1)
                layer.running_var.uniform_(0.5, 2)
        converted = as_convolutions(model)
        assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in converted.modules())
        assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())  # a copy
        x = torch.randn(4, 1, 28, 28)
        with torch.no_grad():
            assert torch.allclose(model(x), converted(x), atol=1e-5)


def test_original_demo_checkpoint_exports_with_arch_seed(tmp_path):
    # The original demo saved exactly this: a dict with the state dict, nothing else.
    torch.manual_seed(0)
    torch.save({"model_state_dict": CNN(47, "seed").state_dict()}, tmp_path / "model.ckpt")
    with pytest.raises(ValueError, match="--arch"):
        load_checkpoint(tmp_path / "model.ckpt")
    summary = export(tmp_path / "model.ckpt", tmp_path / "seed.onnx", arch="seed")
    assert summary["parameters"] == 99_029_295
    assert summary["parity"]["top1_agreement"] == 1
    assert Recognizer(tmp_path / "seed.onnx").logits(np.zeros((2, 28, 28), np.uint8)).shape == (2, 47)


def test_shipped_model_reproduces_its_reported_figures(pool):
    recognizer = Recognizer()  # the default: the model shipped inside the package
    meta = recognizer.metadata
    assert recognizer.classes == list(BALANCED_CLASSES)
    assert meta["onnx_bytes"] < 5_000_000 and meta["parameters"] < 1_250_000
    assert meta["training"]["command"].startswith("emnist-draw train")
    assert meta["data_sha256"] == {k: OFFICIAL_SHA256[k][0] for k in meta["data_sha256"]}
    val_x, val_y = pool.val
    report = classification_report(val_y, recognizer.logits(val_x).argmax(1), BALANCED_CLASSES)
    # ONNX Runtime's fp32 kernels (AVX2, AVX-512) differ in the last bits of a logit (|logits| < 8
    # here), and no validation image is within 1e-4 of a tie (1 within 1e-3): the figure holds
    # to an image or two on any x86-64.
    assert abs(report["balanced_accuracy"] - meta["validation"]["balanced_accuracy"]) <= 2e-4
    # A regression guard, not the goal: the original demo reached 90.2% on the official balanced
    # test, and this model 90.07% on the pool's validation part (see README).
    assert report["balanced_accuracy"] > 0.90


def test_shipped_int8_model_reproduces_its_figures_and_reads_like_the_float_one(pool):
    int8, full = Recognizer("emnist-balanced-medium-int8"), Recognizer()
    meta = int8.metadata
    assert "int8" in meta["quantization"]["method"] and meta["onnx_bytes"] < full.metadata["onnx_bytes"] / 3
    assert meta["training"] == full.metadata["training"]  # the same weights, quantized
    val_x, val_y = pool.val
    got = int8.logits(val_x).argmax(1)
    report = classification_report(val_y, got, BALANCED_CLASSES)
    # int8 convolutions are summed differently by CPU: AVX-512 VNNI (where the figure was made)
    # sums exactly, as does the U8U8 path (session.x64quantprecision=1; 2x slower, so not
    # used); the AVX2 U8S8 kernel saturates pairs of products at 16 bits. Measured: 0.90182 here
    # with VNNI, with and without x64quantprecision; 0.8996 on an AVX2-only AMD EPYC (issue
    # 21): 0.0022 apart.
    assert abs(report["balanced_accuracy"] - meta["validation"]["balanced_accuracy"]) <= 0.004
    assert (got == full.logits(val_x).argmax(1)).mean() > 0.98
    assert report["balanced_accuracy"] > full.metadata["validation"]["balanced_accuracy"] - 0.005


def test_int8_export_refuses_a_model_that_reads_differently(tmp_path, data_dir):
    # An untrained model's logits are near ties, so int8 rounding changes many readings: the
    # parity check must refuse it and leave nothing behind.
    torch.manual_seed(0)
    torch.save({"model_state_dict": CNN(47, "small").state_dict(), "preset": "small"},
               tmp_path / "model.pt")
    with pytest.raises(RuntimeError, match="top-1 agreement"):
        export(tmp_path / "model.pt", tmp_path / "q.onnx", data_dir=data_dir, int8=True)
    assert list(tmp_path.iterdir()) == [tmp_path / "model.pt"]
