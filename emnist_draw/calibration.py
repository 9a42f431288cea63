"""Confidence that means what it says: temperature scaling and expected calibration error.

Training flattens the model's output on purpose (label smoothing; the logit adjustment that
balances the classes), so its raw softmax is under-confident: a clean "7" at 75%. One constant,
the temperature, fitted on the pool's validation part, divides the logits before the softmax
(Guo et al., "On calibration of modern neural networks", 2017). It changes no ranking, so
accuracy is the same; it is kept in the model's metadata and applied by the recognizer, so the
page, the API and evaluation show the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    exp = np.exp(z)
    return exp / exp.sum(1, keepdims=True)


# The temperatures fit_temperature can find, and so the ones a model's metadata may hold: outside
# them the probabilities say nothing (1e308: every class 1/47) or overflow (0: NaN everywhere).
TEMPERATURE_RANGE = (1e-2, 1e2)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the labels.

    The NLL is convex in 1/T and its derivative is mean(E_p[z] - z_label), which rises with
    1/T: bisection on its sign finds the minimum without an optimiser library.
    """
    logits = np.asarray(logits, np.float64)
    target = logits[np.arange(len(labels)), labels]
    low, high = 1 / TEMPERATURE_RANGE[1], 1 / TEMPERATURE_RANGE[0]  # inverse temperatures
    for _ in range(60):
        mid = (low * high) ** 0.5
        gradient = ((softmax(logits * mid) * logits).sum(1) - target).mean()
        low, high = (mid, high) if gradient < 0 else (low, mid)
    return float(1 / (low * high) ** 0.5)


def calibration_report(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Expected calibration error over equal-width confidence bins (the usual 15), the mean
    confidence beside the accuracy, and the bins themselves for a reliability diagram."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            ece += members.mean() * gap
            table.append({"from": b / bins, "to": (b + 1) / bins, "images": int(members.sum()),
                          "confidence": round(float(confidence[members].mean()), 4),
                          "accuracy": round(float(correct[members].mean()), 4)})
    return {"ece": round(float(ece), 5), "mean_confidence": round(float(confidence.mean()), 5),
            "accuracy": round(float(correct.mean()), 5), "bins": table}


def reliability_diagram(reports: dict[str, dict], path: str | Path, size: int = 360) -> None:
    """A PNG: per data set, accuracy against confidence bin by bin; on the diagonal is calibrated."""
    colors = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
    margin, legend = 40, 18 * len(reports) + 10
    img = Image.new("RGB", (size + 2 * margin, size + 2 * margin + legend), "white")
    draw = ImageDraw.Draw(img)
    at = lambda c, a: (margin + c * size, margin + (1 - a) * size)
    draw.rectangle([at(0, 1), at(1, 0)], outline="black")
    draw.line([at(0, 0), at(1, 1)], fill=(160, 160, 160), width=1)
    for tick in range(0, 11, 2):
        draw.text((at(tick / 10, 0)[0] - 8, margin + size + 4), f"{tick / 10:.1f}", fill="black")
        draw.text((6, at(0, tick / 10)[1] - 6), f"{tick / 10:.1f}", fill="black")
    draw.text((margin, 12), "accuracy (up) against confidence (across), per bin", fill="black")
    for (name, report), color in zip(reports.items(), colors):
        # A bin of a handful of images is noise that would hide the shape of the rest.
        points = [at(b["confidence"], b["accuracy"]) for b in report["bins"] if b["images"] >= 30]
        draw.line(points, fill=color, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
    for i, ((name, report), color) in enumerate(zip(reports.items(), colors)):
        y = 2 * margin + size + 18 * i - 10
        draw.line([(margin, y + 6), (margin + 20, y + 6)], fill=color, width=3)
        draw.text((margin + 28, y), f"{name}: ECE {100 * report['ece']:.2f}%", fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def grouped(probabilities: np.ndarray, lut: np.ndarray, n_groups: int) -> np.ndarray:
    """Probabilities summed into the classes a data set's labels can tell apart (one column per
    group, lut: the group of each model class): a letters-only set scores "A" and "a" as one."""
    out = np.zeros((len(probabilities), n_groups))
    np.add.at(out.T, lut, probabilities.T)
    return out


def calibrate(model: str | Path, data_dir: str | Path) -> dict:
    """Fit the model's temperature on the pool's validation part and write it into the model's
    metadata (the .json beside the .onnx; the .onnx and its checksum are untouched)."""
    import json

    from emnist_draw.data import build_pool
    from emnist_draw.recognizer import Recognizer

    recognizer = Recognizer(model, calibration=False)  # the one it replaces may be unusable
    images, labels = build_pool(data_dir).val
    logits = recognizer.logits(images)
    temperature = fit_temperature(logits, labels)
    before, after = (softmax(logits, t) for t in (1.0, temperature))
    result = {"temperature": round(temperature, 5), "fitted_on": "pool validation part",
              "images": len(labels),
              "ece_before": calibration_report(before.max(1), before.argmax(1) == labels)["ece"],
              "ece_after": calibration_report(after.max(1), after.argmax(1) == labels)["ece"]}
    meta_path = recognizer.path.with_suffix(".json")
    metadata = json.loads(meta_path.read_text())
    metadata["calibration"] = result
    meta_path.write_text(json.dumps(metadata, indent=1))
    return result
