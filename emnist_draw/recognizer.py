"""Inference on ONNX Runtime: no torch in the serving process.

A model is an .onnx file plus a .json of metadata beside it (classes, input scaling, figures,
the sha256 of the .onnx); `Recognizer` checks the file against that checksum before serving it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort

from emnist_draw.data import MERGED_LETTERS

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = "emnist-balanced-medium"
CHARSETS = ("all", "digits", "letters")


class ModelFileError(RuntimeError):
    """The model file is missing, damaged, or does not match its metadata."""


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """A shipped model's name (see emnist_draw/models) or the path of an .onnx file."""
    name_or_path = name_or_path or DEFAULT_MODEL
    shipped = MODELS_DIR / f"{name_or_path}.onnx"
    path = shipped if shipped.is_file() else Path(name_or_path)
    if not path.is_file():
        names = sorted(p.stem for p in MODELS_DIR.glob("emnist-*.onnx"))  # not cuts.onnx
        raise ModelFileError(f"{path}: no such model file; shipped models: {', '.join(names) or 'none'}")
    return path


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Recognizer:
    def __init__(self, model: str | Path | None = None, threads: int = 1,
                 calibration: bool = True):
        """calibration=False ignores the metadata's temperature (1): for `calibrate`, which
        replaces it."""
        self.path = resolve_model(model)
        meta_path = self.path.with_suffix(".json")
        try:
            self.metadata = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise ModelFileError(f"{meta_path}: missing or unreadable model metadata ({e})") from e
        self.classes: list[str] = _checked_classes(self.metadata, meta_path)
        _check_fields(self.metadata, meta_path)
        self._temperature = _checked_temperature(self.metadata, meta_path) if calibration else 1.0
        expected = self.metadata.get("onnx_sha256")
        if expected and sha256_file(self.path) != expected:
            raise ModelFileError(
                f"{self.path}: checksum does not match {meta_path.name}; the file is damaged or "
                "was replaced: reinstall the package or export the model again")
        options = ort.SessionOptions()
        # One thread per request is fastest for a model this small; scale with processes.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for bad files
            raise ModelFileError(f"{self.path}: not a loadable ONNX model ({e})") from e
        self.input_name = self.session.get_inputs()[0].name
        self._check_against_metadata(meta_path)

    def _check_against_metadata(self, meta_path: Path) -> None:
        """One blank image through the model: it must take (N, 1, 28, 28) and answer one score
        per class the metadata names. Found here, at load, a mismatch is one clear message (and
        exit status 2) instead of a numpy broadcasting error on the first request, in every
        worker."""
        try:
            blank = to_input(np.zeros((1, 28, 28), np.uint8))
            out = self.session.run(None, {self.input_name: blank})
        except Exception as e:  # onnxruntime's own errors: wrong input name, rank or type
            raise ModelFileError(f"{self.path}: the model does not read a batch of 28x28 images "
                                 f"shaped (N, 1, 28, 28) ({str(e).splitlines()[0]})") from e
        shape = tuple(np.shape(out[0]))
        if shape != (1, len(self.classes)):
            raise ModelFileError(
                f"{self.path}: the model answers {shape[-1] if shape else 0} scores per image "
                f"(output shape {shape} for one image) but {meta_path.name} names "
                f"{len(self.classes)} classes; the two files do not belong together: export the "
                "model again, or put the matching .json beside it")

    @property
    def name(self) -> str:
        return self.metadata.get("name", self.path.stem)

    def logits(self, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """(N, 28, 28) uint8 upright images, white ink on black -> (N, classes) logits."""
        images = np.asarray(images)
        out = [self.session.run(None, {self.input_name: to_input(images[i:i + batch_size])})[0]
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def allowed(self, charset: str = "all") -> np.ndarray:
        """Which classes a character set admits, as a boolean mask over self.classes."""
        if charset not in CHARSETS:
            raise ValueError(f"unknown charset {charset!r}; choose one of: {', '.join(CHARSETS)}")
        digits = np.array([c.isdigit() for c in self.classes])
        return {"all": np.ones_like(digits), "digits": digits, "letters": ~digits}[charset]

    @property
    def temperature(self) -> float:
        """Divides the logits before the softmax so that probabilities are calibrated
        (emnist_draw/calibration.py); 1 for a model exported before calibration existed."""
        return self._temperature

    def probabilities(self, images: np.ndarray, charset: str = "all",
                      calibrated: bool = True) -> np.ndarray:
        """Softmax over the classes of the charset only: restricting the answer renormalises it."""
        return self.softmax(self.logits(images), charset, calibrated)

    def softmax(self, logits: np.ndarray, charset: str = "all",
                calibrated: bool = True) -> np.ndarray:
        scaled = logits / (self.temperature if calibrated else 1.0)
        masked = np.where(self.allowed(charset), scaled, -np.inf)
        exp = np.exp(masked - masked.max(1, keepdims=True))
        return exp / exp.sum(1, keepdims=True)

    def top_k(self, images: np.ndarray, k: int = 5,
              charset: str = "all") -> list[list[tuple[str, float]]]:
        """The k most likely classes of each (28, 28) image, with their probabilities."""
        probs = self.probabilities(images, charset)
        k = min(k, int(self.allowed(charset).sum()))
        best = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.classes[i], float(p[i])) for i in row] for p, row in zip(probs, best)]


def _checked_classes(metadata: object, meta_path: Path) -> list[str]:
    """The metadata's "classes": a list of distinct one-character strings, or a ModelFileError
    that says what is wrong (not a KeyError or TypeError from deep inside serving)."""
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{meta_path}: the model metadata must be a JSON object, not a "
                             f"{type(metadata).__name__}; export the model again")
    classes = metadata.get("classes")
    problem = None
    if not isinstance(classes, list) or not classes:
        problem = f"is {json.dumps(classes)[:40]}" if "classes" in metadata else "is missing"
    elif not all(isinstance(c, str) and len(c) == 1 for c in classes):
        bad = next(c for c in classes if not (isinstance(c, str) and len(c) == 1))
        problem = f"holds {json.dumps(bad)[:40]}, not a one-character string"
    elif len(set(classes)) != len(classes):
        problem = "names a class twice"
    if problem:
        raise ModelFileError(f'{meta_path}: "classes" {problem}; it must list the model\'s '
                             'classes in output order as one-character strings, e.g. '
                             '["0", "1", ..., "A", ...]: export the model again')
    return list(classes)


# The other fields something reads (the server shows them, compares the checksum as text), and
# the JSON type each must have where it is present.
FIELD_TYPES = {"name": str, "onnx_sha256": str, "parameters": int, "validation": dict,
               "input": dict, "calibration": dict}
JSON_TYPE = {str: "a string", int: "an integer", dict: "an object", float: "a number"}


def _check_fields(metadata: dict, meta_path: Path) -> None:
    for key, kind in FIELD_TYPES.items():
        value = metadata.get(key)
        if key in metadata and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ModelFileError(f'{meta_path}: "{key}" must be {JSON_TYPE[kind]}, not '
                                 f"{_shown(value)}; export the model again")


def _checked_temperature(metadata: dict, meta_path: Path) -> float:
    """The calibration temperature: 1 where the model has none (exported before calibration
    existed), else a number in calibration.TEMPERATURE_RANGE. Checked here because a bad one
    corrupts every answer: 0 or NaN makes every probability NaN (read as class "0"), a negative
    one inverts the ranking, 1e308 makes every class equally likely."""
    from emnist_draw.calibration import TEMPERATURE_RANGE  # numpy only

    if "calibration" not in metadata:
        return 1.0
    value = metadata["calibration"].get("temperature")
    low, high = TEMPERATURE_RANGE
    if (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high):
        return float(value)
    raise ModelFileError(
        f'{meta_path}: "calibration.temperature" must be a number from {low:g} to {high:g}, not '
        f"{_shown(value) if 'temperature' in metadata['calibration'] else 'missing'}; run "
        f"`emnist-draw calibrate {meta_path.with_suffix('.onnx')}` to fit it again")


def _shown(value: object) -> str:
    """A JSON value as the file holds it, briefly (NaN as NaN: json.loads reads it)."""
    return json.dumps(value)[:40]


def display_label(cls: str) -> str:
    """EMNIST-balanced has one class for 'C' and 'c'; say so rather than claim the upper case."""
    return f"{cls} / {cls.lower()}" if cls.isupper() and cls.lower() in MERGED_LETTERS else cls


def to_input(images_uint8: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [-1, 1], the scaling used in training."""
    return (images_uint8.astype(np.float32)[:, None] / 127.5 - 1).astype(np.float32)
