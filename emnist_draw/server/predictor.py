"""The model as the API serves it: loaded and warmed once, answers in the API's terms."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emnist_draw.preprocess import parse_strokes, strokes_to_input
from emnist_draw.reader import MAX_PARTS, StringReader, column_runs
from emnist_draw.recognizer import Recognizer, display_label
from emnist_draw.server.schemas import Guess, Prediction
from emnist_draw.status import Ink, image_ink, judge, strokes_ink

# Wide ink of more primitives (strokes, an image's column runs) than two characters can be made of
# is several characters without reading it: a reading can only say so, and it would cost one
# candidate per run of primitives.
SEVERAL_MAX_PARTS = 2 * MAX_PARTS


class Predictor:
    def __init__(self, model: str | Path | None = None):
        started = time.perf_counter()
        self.recognizer = Recognizer(model)
        # One reader for /api/read and for telling /api/predict that it was sent several.
        self.reader = StringReader(self.recognizer)
        self.warm()
        self.load_ms = 1000 * (time.perf_counter() - started)

    @property
    def name(self) -> str:
        return self.recognizer.name

    def warm(self) -> None:
        # ONNX Runtime sizes its buffers on the first run; paying for that here, on a real drawing,
        # makes the first request as fast as the next.
        strokes = [[[10, 10], [10, 90]], [[0, 20], [10, 10]]]
        image = strokes_to_input(strokes, canvas_size=(100, 100))
        self.predict(image[None], [(5, "all", True)], [self.ink(parse_strokes(strokes), (100, 100))])
        self.predict(np.stack([image, image]), [(5, "all", False), (5, "digits", False)])

    def needs_reading(self, facts: Ink, parts: int) -> bool:
        """Whether only the string reader can tell if the ink is several characters: wide ink of
        2..SEVERAL_MAX_PARTS primitives. That read (at most ~26 candidates) belongs off the event
        loop; everything else is settled by the shape alone (see several)."""
        return self.several(facts, parts) is None

    @staticmethod
    def several(facts: Ink, parts: int) -> bool | None:
        """Several characters, when the shape tells: never for narrow ink, a dot, a scribble or
        ink whose parts all cross each other; always for wide ink of more primitives than two
        characters are made of. None: read it."""
        if not (facts.wide and facts.apart) or facts.tiny or facts.scribble:
            return False
        return True if parts > SEVERAL_MAX_PARTS else None

    def ink(self, points: Sequence[np.ndarray], canvas: tuple[float, float] | None = None,
            facts: Ink | None = None) -> Ink:
        """What parsed strokes' shape says (emnist_draw.status; `facts`: strokes_ink's, where the
        caller has them already); wide ink is read as a string where that can change the answer,
        so that "42" on the one-character pad is answered "several characters", not "H"."""
        facts = facts or strokes_ink(points, canvas)
        several = self.several(facts, len(points))
        if several is None:
            several = len(self.reader.read_strokes(points).characters) > 1
        return dataclasses.replace(facts, several=several)

    def image_ink(self, ink: np.ndarray, facts: Ink | None = None) -> Ink:
        """The same for an image's ink (inputs.decode_ink), its primitives the column runs."""
        facts = facts or image_ink(ink)
        several = self.several(facts, column_runs(ink))
        if several is None:
            several = len(self.reader.read_ink(ink).characters) > 1
        return dataclasses.replace(facts, several=several)

    def predict(self, images: np.ndarray, options: list[tuple[int, str, bool]],
                inks: Sequence[Ink | None] | None = None) -> list[Prediction]:
        """images: (N, 28, 28) uint8; options: per image (top_k, charset, return_input);
        inks: per image, its shape facts where it came as strokes."""
        answers: list[Prediction | None] = [None] * len(images)
        inks = inks or [None] * len(images)
        classes = self.recognizer.classes
        # One model run per character set in the batch: the set changes the softmax, not the logits.
        for charset in dict.fromkeys(charset for _, charset, _ in options):
            rows = [i for i, (_, c, _) in enumerate(options) if c == charset]
            probs = self.recognizer.probabilities(images[rows], charset)
            allowed = int(self.recognizer.allowed(charset).sum())
            for row, p in zip(rows, probs):
                k, _, with_input = options[row]
                best = np.argsort(-p, kind="stable")[:min(k, allowed)]
                top = [Guess(label=classes[i], display=display_label(classes[i]),
                             probability=float(p[i])) for i in best]
                status, alike = judge(p, classes, images[row], inks[row] or Ink())
                answers[row] = Prediction(
                    prediction=top[0].label, top_k=top, model=self.name, charset=charset,
                    status=status, ambiguous_with=[display_label(classes[i]) for i in alike] or None,
                    input=images[row].reshape(-1).tolist() if with_input else None)
        return answers  # type: ignore[return-value]
