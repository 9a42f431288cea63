"""UNIPEN pen-drawn characters: how well the model reads what people draw.

Data: UNIPEN train_r01_v07 (Guyon et al., 1994; CC BY 4.0 re-release,
doi:10.5281/zenodo.1195803), 101,108 isolated characters 0-9 A-Z a-z by 318 writers, as
strokes with y growing downwards; quality "OK" marks the hand-checked ones.

The writers are split once, for everyone, by the sha256 of the writer id: about 30% of them
form the "measure" part, which nothing may be tuned or trained on; the rest form the "tune"
part, free for tuning preprocessing and for training.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .calibration import calibration_report
from .data import BALANCED_CLASSES, DEFAULT_DATA_DIR, to_balanced, write_idx
from .preprocess import strokes_to_input

if TYPE_CHECKING:
    from .recognizer import Recognizer

DEFAULT_UNIPEN_FILE = DEFAULT_DATA_DIR.parent / "unipen" / "unipen-r01-v07-chars.jsonl.gz"
PARTS = ("measure", "tune")
QUALITIES = ("OK", "all")
MEASURE_PERCENT = 30
GROUPS = ("digits", "upper", "lower")


@dataclass(frozen=True)
class Sample:
    char: str  # as written: case kept, so "c" and "C" are told apart in the per-group figures
    writer: str  # "unipen/<contributor>/<id>"
    quality: str
    strokes: list

    @property
    def label(self) -> int:
        """The balanced class (upper and lower case merged for c i j k l m o p s u v w x y z)."""
        return to_balanced(self.char)

    @property
    def contributor(self) -> str:
        return contributor(self.writer)

    @property
    def group(self) -> str:
        return "digits" if self.char.isdigit() else "upper" if self.char.isupper() else "lower"


def contributor(writer: str) -> str:
    """The institution that recorded a writer: "aga" in "unipen/aga/amywldrp"."""
    return writer.split("/")[1]


def writer_part(writer: str) -> str:
    """'measure' or 'tune': fixed by the writer id's hash, so no writer is in both."""
    bucket = int(hashlib.sha256(writer.encode()).hexdigest()[:8], 16) % 100
    return "measure" if bucket < MEASURE_PERCENT else "tune"


def load_samples(part: str | None = None, quality: str = "all",
                 path: str | Path = DEFAULT_UNIPEN_FILE) -> tuple[Sample, ...]:
    """The samples of one part ('measure', 'tune', or None for both), in file order.

    Cached per process: parsing the whole file takes seconds, and evaluation, tests and the
    README picture all come back for it.
    """
    if part not in (*PARTS, None):
        raise ValueError(f"unknown part {part!r}; choose one of: {', '.join(PARTS)}")
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; choose one of: {', '.join(QUALITIES)}")
    return _load(part, quality, Path(path).resolve())


@lru_cache(maxsize=8)
def _load(part: str | None, quality: str, path: Path) -> tuple[Sample, ...]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the UNIPEN characters file is not there (see ../shared/data)")
    samples = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            # Cheap text checks first: parsing the JSON of every line dominates the load time.
            if quality == "OK" and '"OK"' not in line:
                continue
            if part is not None and (writer := _writer_in(line)) and writer_part(writer) != part:
                continue
            row = json.loads(line)
            if part is not None and writer_part(row["writer"]) != part:
                continue
            if quality == "OK" and row["quality"] != "OK":
                continue
            samples.append(Sample(row["char"], row["writer"], row["quality"], row["strokes"]))
    return tuple(samples)


def _writer_in(line: str) -> str | None:
    """The writer id read off the raw JSON line, or None if it is not written plainly."""
    head, found, rest = line.partition('"writer":"')
    return rest.partition('"')[0] if found else None


def render(samples: Sequence[Sample]) -> np.ndarray:
    """(N, 28, 28) uint8 model inputs, drawn exactly as the page's strokes are."""
    return np.stack([strokes_to_input(s.strokes) for s in samples]) if samples else (
        np.zeros((0, 28, 28), np.uint8))


def export_idx(out_dir: str | Path, part: str = "tune", quality: str = "OK",
               path: str | Path = DEFAULT_UNIPEN_FILE) -> tuple[Path, Path]:
    """Render a part's samples into an EMNIST-style idx pair (balanced labels) for `train --extra`.

    Only the "tune" writers belong in training; the "measure" writers stay unseen.
    """
    samples = load_samples(part, quality, path)
    stem = Path(out_dir) / f"unipen-{part}-{quality.lower()}"
    images = write_idx(f"{stem}-images-idx3-ubyte.gz", render(samples).transpose(0, 2, 1))
    labels = write_idx(f"{stem}-labels-idx1-ubyte.gz", np.array([s.label for s in samples]))
    return images, labels


def evaluate_unipen(recognizer: Recognizer, part: str = "measure", quality: str = "OK",
                    limit: int | None = None, path: str | Path = DEFAULT_UNIPEN_FILE) -> dict:
    """Accuracy of a Recognizer on UNIPEN samples rendered with strokes_to_input.

    `limit` takes that many samples spread evenly over the part. Returns a JSON-ready dict:
    samples, writers, accuracy, balanced_accuracy (mean recall over the classes present),
    groups (digits / upper / lower by the character as written), per_class, contributors,
    digits_only (digit samples, answer restricted to digits), letters_only (letter samples,
    answer restricted to letters), and render_ms_per_sample; each figure with its count.
    """
    samples = load_samples(part, quality, path)
    if limit is not None and limit < len(samples):
        # Evenly spaced, not the first ones: the file is ordered by writer and by character.
        samples = tuple(samples[i] for i in np.linspace(0, len(samples) - 1, limit).astype(int))
    if not samples:
        raise ValueError(f"no UNIPEN samples in part {part!r} with quality {quality!r}")
    start = time.perf_counter()
    images = render(samples)
    render_ms = (time.perf_counter() - start) * 1000 / len(samples)

    logits = recognizer.logits(images)
    # Answers are class indices of the recognizer; map the truth into its class list.
    classes = list(recognizer.classes)
    truth = np.array([classes.index(BALANCED_CLASSES[s.label]) for s in samples])
    predicted = logits.argmax(1)
    correct = predicted == truth
    confidence = recognizer.softmax(logits).max(1)
    groups = np.array([s.group for s in samples])
    contributors = np.array([s.contributor for s in samples])
    writers = np.array([s.writer for s in samples])

    def restricted(charset: str, members: np.ndarray) -> dict:
        # The page's digits-only / letters-only modes: the answer is the best allowed class.
        masked = np.where(recognizer.allowed(charset), logits[members], -np.inf)
        right = masked.argmax(1) == truth[members]
        # A few writers' styles can make most of the errors: say whose they are.
        wrong_by_writer = Counter(writers[members][~right].tolist())
        return _figure(right) | {"wrong_by_writer": dict(wrong_by_writer.most_common())}

    return {
        "model": getattr(recognizer, "name", None),
        "part": part,
        "quality": quality,
        "samples": len(samples),
        "writers": len({s.writer for s in samples}),
        "accuracy": _round(correct.mean()),
        # Of the probabilities as served (calibrated); 15 bins, see emnist_draw/calibration.py
        "ece": calibration_report(confidence, correct)["ece"],
        "mean_confidence": _round(confidence.mean()),
        "balanced_accuracy": _round(np.mean([correct[truth == c].mean() for c in np.unique(truth)])),
        "classes_present": int(len(np.unique(truth))),
        "groups": {g: _figure(correct[groups == g]) for g in GROUPS},
        "per_class": {classes[c]: _figure(correct[truth == c]) for c in np.unique(truth)},
        "contributors": {c: _figure(correct[contributors == c]) for c in sorted(set(contributors))},
        "digits_only": restricted("digits", groups == "digits"),
        "letters_only": restricted("letters", groups != "digits"),
        "render_ms_per_sample": round(render_ms, 3),
    }


def _figure(correct: np.ndarray) -> dict:
    return {"samples": int(correct.size), "accuracy": _round(correct.mean()) if correct.size else None}


def _round(x: float) -> float:
    return round(float(x), 4)


# ---------------------------------------------------------------- strings (words, numbers, lines)

DEFAULT_WORDS_FILE = DEFAULT_UNIPEN_FILE.with_name("unipen-r01-v07-words.jsonl.gz")


@dataclass(frozen=True)
class Written:
    """A word, number or line of text written in one go, with its label."""
    text: str
    writer: str
    category: str  # UNIPEN's: "3" segmented characters, "6" words, "7" words with digits, "8" text
    level: str     # "word" or "line"
    printed: bool | None  # separate characters (True), cursive or mixed (False), unknown (None)
    strokes: list

    @property
    def kind(self) -> str:
        """'number', 'word' or 'code' (letters and digits), by the label."""
        letters = self.text.replace(" ", "")
        return "number" if letters.isdigit() else "word" if letters.isalpha() else "code"


def load_written(part: str, path: str | Path = DEFAULT_WORDS_FILE) -> tuple[Written, ...]:
    """The strings of one part's writers whose labels EMNIST can spell: letters, digits and
    spaces only (no punctuation), at least two characters."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of: {', '.join(PARTS)}")
    return _load_written(part, Path(path).resolve())


@lru_cache(maxsize=2)
def _load_written(part: str, path: Path) -> tuple[Written, ...]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the UNIPEN words file is not there (see ../shared/data)")
    samples = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if (writer := _writer_in(line)) and writer_part(writer) != part:
                continue
            row = json.loads(line)
            text = row["text_fix"] or row["text"]
            if writer_part(row["writer"]) != part or len(text.replace(" ", "")) < 2:
                continue
            if not all(ch.isascii() and (ch.isalnum() or ch == " ") for ch in text):
                continue
            samples.append(Written(text, row["writer"], row["category"], row["level"],
                                   row["printed"], row["strokes"]))
    return tuple(samples)


# Where a character sits on the line, as fractions of the capital height: (top, bottom).
_X_HEIGHT, _DESCENT = 0.6, 0.35


def _extent(char: str) -> tuple[float, float]:
    if char.isdigit() or char.isupper() or char in "bdfhklt":
        return 0.0, 1.0
    if char in "gjpqy":
        return 1 - _X_HEIGHT, 1 + _DESCENT
    if char == "i":
        return 1 - _X_HEIGHT * 1.3, 1.0  # its dot rises above the x-height
    return 1 - _X_HEIGHT, 1.0


def compose(samples: Sequence[Sample], gap: float = 0.25,
            cap_height: float = 100.0) -> tuple[list, list[list[int]]]:
    """Isolated characters written side by side on one baseline, each scaled to where its kind
    sits (capitals and digits full height, x-height letters, descenders below the line), `gap`
    capital heights apart (negative: overlapping). Returns the strokes in writing order and,
    per character, the indices of its strokes."""
    strokes, owners, x = [], [], 0.0
    for sample in samples:
        top, bottom = _extent(sample.char)
        points = np.concatenate([np.asarray(s, float) for s in sample.strokes])
        low, high = points.min(0), points.max(0)
        scale = (bottom - top) * cap_height / max(high[1] - low[1], 1e-9)
        mine = []
        for s in sample.strokes:
            mine.append(len(strokes))
            strokes.append(((np.asarray(s, float) - low) * scale + [x, top * cap_height]).tolist())
        owners.append(mine)
        x += (high[0] - low[0]) * scale + gap * cap_height
    return strokes, owners
