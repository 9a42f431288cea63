"""Metrics: balanced accuracy, per-class recall, the most confused pairs, a confusion-matrix image.

Balanced accuracy (mean per-class recall) is the headline figure: on the official balanced test
set (400 images per class) it equals plain accuracy, so it is comparable with published results,
while on data with natural class frequencies plain accuracy would mostly measure the digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from emnist_draw.calibration import calibration_report, grouped


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    return np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: str | list[str],
                          top_pairs: int = 10) -> dict:
    """The figures as a JSON-ready dict. Classes absent from y_true are left out of the mean."""
    n = len(classes)
    cm = confusion_matrix(y_true, y_pred, n)
    support = cm.sum(1)
    present = support > 0
    recall = np.divide(np.diag(cm), support, out=np.zeros(n), where=present)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pairs = np.dstack(np.unravel_index(np.argsort(off, axis=None)[::-1], off.shape))[0]
    confused = [{"true": classes[t], "predicted": classes[p], "count": int(off[t, p])}
                for t, p in pairs[:top_pairs] if off[t, p] > 0]
    return {
        "balanced_accuracy": round(float(recall[present].mean()), 5) if present.any() else 0.0,
        "accuracy": round(float(np.trace(cm) / max(1, cm.sum())), 5),
        "images": int(cm.sum()),
        "per_class_recall": {classes[i]: round(float(recall[i]), 4) for i in range(n) if present[i]},
        "most_confused": confused,
    }


def confusion_image(y_true: np.ndarray, y_pred: np.ndarray, classes: str | list[str],
                    path: str | Path, cell: int = 14) -> None:
    """A PNG of the row-normalised confusion matrix: true classes down, predictions across.

    The scale is logarithmic so the rare confusions, which are the interesting ones, show.
    """
    n = len(classes)
    cm = confusion_matrix(y_true, y_pred, n).astype(float)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    shade = np.clip(1 + np.log10(np.maximum(rates, 1e-3)) / 3, 0, 1)  # 0.1% -> 0, 100% -> 1
    margin = 2 * cell
    img = Image.new("RGB", (margin + n * cell, margin + n * cell), "white")
    draw = ImageDraw.Draw(img)
    for t in range(n):
        for p in range(n):
            if cm[t, p]:
                level = int(255 * (1 - shade[t, p]))
                color = (level, level, 255) if t == p else (255, level, level)
                x, y = margin + p * cell, margin + t * cell
                draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=color)
        draw.text((cell // 2, margin + t * cell), classes[t], fill="black")
        draw.text((margin + t * cell + 3, cell // 2), classes[t][0], fill="black")  # no room for "Cc"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


# ------------------------------------------------------------------ the evaluate command


def class_chars(chars: str, case_merged: bool) -> set[str]:
    """The characters a class stands for; balanced-style splits list a merged letter once."""
    from emnist_draw.data import MERGED_LETTERS

    out = set(chars)
    if case_merged:
        out |= {c.swapcase() for c in chars if c.lower() in MERGED_LETTERS}
    return out


def common_classes(split_classes: list[str], split_case_merged: bool,
                   model_classes: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Classes in which a split's labels and a model's answers can be compared.

    Two characters share a class when either scheme puts them in one class: letters' "Aa"
    joins the model's "A" and "a"; byclass's "c" and "C" join in the model's merged "C".
    Returns the class names and lookup tables for the split's labels and the model's outputs.
    """
    parent: dict[str, str] = {}

    def root(c: str) -> str:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    model_sets = [class_chars(c, True) for c in model_classes]
    split_sets = [class_chars(c, split_case_merged) for c in split_classes]
    for chars in model_sets + split_sets:
        first, *rest = sorted(chars) or [""]
        for c in rest:
            parent[root(c)] = root(first)
    roots = sorted({root(c) for chars in model_sets for c in chars})
    names = ["".join(sorted(c for c in parent if root(c) == r)) for r in roots]
    index = {r: i for i, r in enumerate(roots)}
    to_group = lambda sets: np.array([index.get(root(min(s)), -1) if s else -1 for s in sets])
    return names, to_group(split_sets), to_group(model_sets)


def evaluate_command(args) -> dict:
    """`emnist-draw evaluate`: figures of a model on one data set, as one JSON-ready dict."""
    from emnist_draw import data
    from emnist_draw.recognizer import Recognizer

    recognizer = Recognizer(args.model)
    split = args.split or "balanced"
    if args.images or args.labels:
        if not args.images:
            raise SystemExit("emnist-draw evaluate: --labels needs --images")
        if str(args.images).endswith(".npz"):  # the partial slices: official orientation
            arrays = np.load(args.images)
            images = np.ascontiguousarray(arrays["images"].transpose(0, 2, 1))
            labels = arrays["labels"].astype(np.int64)
        elif args.labels:
            images, labels = data.load_pair(args.images, args.labels)
        else:
            raise SystemExit("emnist-draw evaluate: --images needs --labels (or an .npz)")
        name = str(args.images)
    elif args.split:
        images, labels = data.load_split(args.data_dir, args.split, args.part)
        name = f"emnist-{args.split}-{args.part}"
    else:
        images, labels = data.build_pool(args.data_dir).val
        name = "pool validation part"

    # An image the model was trained on says nothing about how well it reads new ones.
    overlap = "not checked: the pool files are not in --data-dir"
    try:
        train_images, _ = data.build_pool(args.data_dir).train
        seen = set(data.pixel_digests(train_images).tolist())
        fresh = np.array([d not in seen for d in data.pixel_digests(images).tolist()], dtype=bool)
        overlap = int((~fresh).sum())
        images, labels = images[fresh], labels[fresh]
    except data.EmnistFileError:
        pass

    if (Path(args.data_dir) / f"emnist-{split}-mapping.txt").is_file():
        split_classes = data.load_mapping(args.data_dir, split)
    elif split in ("balanced", "bymerge"):
        split_classes = list(data.BALANCED_CLASSES)  # built in, so no data files are needed
    else:
        raise SystemExit(f"emnist-draw evaluate: emnist-{split}-mapping.txt is not in --data-dir")
    names, split_lut, model_lut = common_classes(split_classes, split in ("balanced", "bymerge"),
                                                 recognizer.classes)
    if labels.size and (labels.max() >= len(split_lut) or split_lut[labels].min() < 0):
        raise SystemExit(f"emnist-draw evaluate: labels outside the {split} classes; "
                         "pass the right --split")
    truth = split_lut[labels]
    # Probabilities as served (calibrated, the charset's softmax), summed into the classes the
    # labels tell apart: the confidence is that of the answer the figures score.
    probs = grouped(recognizer.probabilities(images, args.charset), model_lut, len(names))
    predicted = probs.argmax(1)
    if args.confusion:
        confusion_image(truth, predicted, names, args.confusion)
    calibration = calibration_report(probs.max(1), predicted == truth)
    return {"model": recognizer.name, "data": name, "charset": args.charset,
            "excluded_train_overlap": overlap, **classification_report(truth, predicted, names),
            "ece": calibration["ece"], "mean_confidence": calibration["mean_confidence"],
            "temperature": recognizer.temperature}
