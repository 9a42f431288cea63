"""Checkpoint -> ONNX model + metadata JSON, refusing to write a model that disagrees with torch.

Works for checkpoints of `emnist-draw train` and of the original demo
(`torch.save({'model_state_dict': ...})`, exported with `--arch seed`).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emnist_draw import preprocess
from emnist_draw.calibration import calibrate
from emnist_draw.data import BALANCED_CLASSES, EmnistFileError, build_pool, find_file
from emnist_draw.evaluate import classification_report
from emnist_draw.model import CNN, n_parameters, preset_config
from emnist_draw.recognizer import Recognizer, sha256_file, to_input

PARITY_TOLERANCE = 1e-3  # max |logit difference|; float32 kernels differ in summation order
# int8 rounds every weight and activation: its logits move, so parity asks that it read (almost)
# every image as the float model does.
INT8_MIN_AGREEMENT = 0.98
CALIBRATION_IMAGES = 2000  # training images whose activation ranges set the int8 scales


def load_checkpoint(path: str | Path, arch: str | None = None) -> tuple[CNN, dict]:
    """The model of a checkpoint, in eval mode, and the checkpoint's other entries."""
    # weights_only: a checkpoint is data, never code to run, even one a user hands us.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "model_state_dict" not in state:
        raise ValueError(f"{path}: no 'model_state_dict' in the checkpoint")
    weights = state["model_state_dict"]
    preset = arch or state.get("preset")
    if preset is None:
        raise ValueError(f"{path}: the checkpoint does not name its preset; pass --arch (seed?)")
    last = max((k for k in weights if k.startswith("classifier.") and k.endswith(".weight")),
               key=lambda k: int(k.split(".")[1]))
    model = CNN(weights[last].shape[0], preset)
    model.load_state_dict(weights)
    return model.eval(), {k: v for k, v in state.items() if k != "model_state_dict"}


def as_convolutions(model: CNN) -> CNN:
    """A copy of model with its transposed conv as the ordinary conv it equals (same outputs).

    With stride 1, a transposed conv is a conv with the kernel flipped and its in/out channels
    swapped. ONNX Runtime runs Conv through its blocked (NCHWc) kernels and fuses the batch
    norm and ReLU into it, but not ConvTranspose: that one layer was a fifth of `medium`'s time.
    """
    model = copy.deepcopy(model)
    for i, layer in enumerate(model.decoder):
        if isinstance(layer, nn.ConvTranspose2d) and layer.stride == (1, 1) and (
                layer.output_padding == (0, 0) and layer.groups == 1 and layer.dilation == (1, 1)):
            k = layer.kernel_size
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, k,
                             padding=(k[0] - 1 - layer.padding[0], k[1] - 1 - layer.padding[1]),
                             bias=layer.bias is not None)
            with torch.no_grad():
                conv.weight.copy_(layer.weight.transpose(0, 1).flip(2, 3))
                if layer.bias is not None:
                    conv.bias.copy_(layer.bias)
            model.decoder[i] = conv
    return model.eval()


def parity_images(data_dir: str | Path | None, n: int = 512) -> np.ndarray:
    """Real validation images where the data is here; random ink otherwise."""
    try:
        images, _ = build_pool(data_dir).val
        return images[np.random.default_rng(0).choice(len(images), n, replace=False)]
    except (EmnistFileError, TypeError):
        return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def data_checksums(data_dir: str | Path) -> dict[str, str]:
    """sha256 of the files the pool is built from, so a retrain can prove it used the same data."""
    paths = [find_file(data_dir, split, "test", kind)
             for split in ("byclass", "bymerge") for kind in ("images", "labels")]
    return {p.name: sha256_file(p) for p in paths}


def quantize_int8(float_model: Path, out: Path, data_dir: str | Path | None) -> dict:
    """out = float_model with int8 weights and activations (ONNX Runtime's static QDQ
    quantization), its scales calibrated on training images of the pool."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images, _ = build_pool(data_dir).train  # an EmnistFileError says where the data should be
    pick = np.random.default_rng(0).choice(len(images), CALIBRATION_IMAGES, replace=False)
    batches = iter([{"image": to_input(images[pick[i:i + 100]])}
                    for i in range(0, CALIBRATION_IMAGES, 100)])

    class Calibration(CalibrationDataReader):
        def get_next(self) -> dict | None:
            return next(batches, None)

    prepared = out.with_suffix(".prepared.onnx")
    quant_pre_process(str(float_model), str(prepared))  # shapes and folding, as the docs advise
    try:
        quantize_static(str(prepared), str(out), Calibration(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True)
    finally:
        prepared.unlink(missing_ok=True)
    return {"method": "static, QDQ: int8 weights per channel, uint8 activations "
                      "(onnxruntime.quantization)",
            "calibration": f"{CALIBRATION_IMAGES} pool training images (seed 0)"}


def export(checkpoint: str | Path, out: str | Path, arch: str | None = None,
           data_dir: str | Path | None = None, command: str | None = None,
           int8: bool = False) -> dict:
    """Write out (.onnx) and its metadata (.json); returns the metadata. int8: a quantized model,
    about 1.5x faster on a CPU core, a little less accurate (the metadata says how much)."""
    model, state = load_checkpoint(checkpoint, arch)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    float_out = out.with_suffix(".float.onnx") if int8 else out
    with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter needs no onnxscript and handles this plain CNN.
        torch.onnx.export(as_convolutions(model), (torch.zeros(1, 1, 28, 28),), str(float_out),
                          dynamo=False, input_names=["image"], output_names=["logits"],
                          opset_version=17,
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    quantization = None
    if int8:
        try:
            quantization = quantize_int8(float_out, out, data_dir)
        finally:
            float_out.unlink()

    n_classes = model.classifier[-1].out_features
    classes = state.get("classes") or (BALANCED_CLASSES if n_classes == 47 else
                                       [str(i) for i in range(n_classes)])
    metadata = {
        "name": out.stem,
        "preset": model.preset,
        "architecture": preset_config(model.preset),
        "parameters": n_parameters(model),
        "classes": list(classes),
        "input": {"shape": [1, 28, 28], "orientation": "upright (the idx files are transposed)",
                  "ink": "white (255) on black (0)", "scaling": "x / 127.5 - 1"},
        "preprocessing": {name.lower(): getattr(preprocess, name) for name in (
            "INK_SIZE", "BLUR_SIGMA", "ROI_THRESHOLD", "NOISE_THRESHOLD", "STROKE_WIDTH")},
        "onnx_bytes": out.stat().st_size,
    }
    if quantization:
        metadata["quantization"] = quantization
    out.with_suffix(".json").write_text(json.dumps(metadata, indent=1))  # lets Recognizer load it

    images = parity_images(data_dir)
    with torch.no_grad():
        expected = model(torch.from_numpy(to_input(images))).numpy()
    got = Recognizer(out).logits(images)
    max_diff = float(np.abs(expected - got).max())
    agree = float((expected.argmax(1) == got.argmax(1)).mean())
    if (agree < INT8_MIN_AGREEMENT) if int8 else (max_diff > PARITY_TOLERANCE or agree < 1):
        out.unlink()
        out.with_suffix(".json").unlink()
        raise RuntimeError(f"ONNX and torch disagree: max |diff| {max_diff:.2e}, "
                           f"top-1 agreement {agree:.4f}; nothing written")
    metadata["parity"] = {"images": len(images), "max_abs_logit_diff": max_diff,
                          "top1_agreement": agree}

    if data_dir is not None and n_classes == 47:
        try:
            val_x, val_y = build_pool(data_dir).val
            report = classification_report(val_y, Recognizer(out).logits(val_x).argmax(1), classes)
            metadata["validation"] = {"set": "pool validation part (see emnist_draw/data.py)",
                                      **{k: report[k] for k in ("balanced_accuracy", "accuracy", "images")}}
            metadata["data_sha256"] = data_checksums(data_dir)
        except EmnistFileError:
            pass  # exported where the data is not: the metadata says less, the model is the same
    stage = state
    while "config" in stage:  # a fine-tuned model: record every stage, last first
        extra = [p for p in stage["config"].get("extra", []) if Path(p).is_file()]
        metadata.setdefault("training", {"command": command, "stages": []})["stages"].append(
            {"config": stage["config"], "epochs": stage.get("epoch"), "history": stage.get("history"),
             # extra data (UNIPEN ink, corrections) is made by commands; its checksum says it
             # was made the same way
             "extra_sha256": {p: sha256_file(p) for p in extra}})
        init = stage["config"].get("init")
        stage = load_checkpoint(init)[1] if init and Path(init).is_file() else {}
    metadata["onnx_sha256"] = sha256_file(out)
    out.with_suffix(".json").write_text(json.dumps(metadata, indent=1))
    if "validation" in metadata:  # the pool is at hand: calibrate on its validation part
        metadata["calibration"] = calibrate(out, data_dir)
    return {k: metadata[k] for k in ("name", "parameters", "onnx_bytes", "parity")
            } | {"validation": metadata.get("validation")}
