"""How well a model reads pen-drawn characters: UNIPEN samples through strokes_to_input.

    .venv/bin/python bench/unipen_eval.py                      # both parts, checked samples
    .venv/bin/python bench/unipen_eval.py --part measure --quality all --model path/to.onnx
    .venv/bin/python bench/unipen_eval.py --picture docs/emnist-vs-unipen.png
    .venv/bin/python bench/unipen_eval.py --digit-errors docs/unipen-digit-errors.png

Prints one JSON object per part. Report the "measure" part; the "tune" part is the one that
preprocessing was (and training may be) tuned on, so its figures are optimistic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from emnist_draw.data import DEFAULT_DATA_DIR, load_balanced_labels, load_split, to_balanced  # noqa: E402
from emnist_draw.recognizer import Recognizer  # noqa: E402
from emnist_draw.unipen import PARTS, QUALITIES, evaluate_unipen, load_samples, render  # noqa: E402

PICTURE_CHARS = "0234579ABEGKMRabdeghnqt"


def picture(path: Path, chars: str = PICTURE_CHARS, rows: int = 3, zoom: int = 2) -> None:
    """A grid: per character, EMNIST images on top and rendered UNIPEN samples below."""
    images, labels = load_split(DEFAULT_DATA_DIR, "bymerge", "test")
    images, labels = load_balanced_labels(DEFAULT_DATA_DIR, "bymerge", images, labels)
    drawn = load_samples("tune", "OK")  # the part free for anyone to look at and tune on
    rng = np.random.default_rng(0)
    columns = []
    for char in chars:
        emnist = images[rng.choice(np.flatnonzero(labels == to_balanced(char)), rows, replace=False)]
        candidates = [s for s in drawn if s.char == char]
        unipen = render([candidates[i] for i in rng.choice(len(candidates), rows, replace=False)])
        columns.append(np.concatenate([*emnist, np.full((6, 28), 80, np.uint8), *unipen]))
    cell, label_w, head_h = 28 * zoom, 150, 30
    gap = 4
    grid = Image.new("L", (label_w + len(chars) * (cell + gap), head_h + 2 * rows * cell + 6 * zoom), 255)
    font = ImageFont.load_default(size=18)
    draw = ImageDraw.Draw(grid)
    for i, (char, column) in enumerate(zip(chars, columns)):
        x = label_w + i * (cell + gap)
        tile = Image.fromarray(column).resize((cell, column.shape[0] * zoom), Image.Resampling.NEAREST)
        grid.paste(tile, (x, head_h))
        draw.text((x + cell // 2, head_h // 2), char, fill=0, font=font, anchor="mm")
    draw.text((8, head_h + rows * cell // 2), "EMNIST", fill=0, font=font, anchor="lm")
    draw.text((8, head_h + rows * cell + 6 * zoom + rows * cell // 2), "UNIPEN, drawn", fill=0,
              font=font, anchor="lm")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, optimize=True)


def digit_errors(path: Path, model: str | None = None, zoom: int = 3) -> int:
    """The measure part's digits misread with the digits-only set, as the model saw them.

    Each tile is captioned "truth>answer"; returns how many there are.
    """
    recognizer = Recognizer(model)
    samples = [s for s in load_samples("measure", "OK") if s.group == "digits"]
    images = render(samples)
    # The page's and the API's digits-only answer: the same code path.
    answers = [best[0][0] for best in recognizer.top_k(images, 1, "digits")]
    wrong = [(i, answer) for i, answer in enumerate(answers) if answer != samples[i].char]
    cell, gap, caption_h = 28 * zoom, 6, 26
    grid = Image.new("L", (max(1, len(wrong)) * (cell + gap) + gap, cell + caption_h + gap), 255)
    draw, font = ImageDraw.Draw(grid), ImageFont.load_default(size=18)
    for k, (i, answer) in enumerate(wrong):
        x = gap + k * (cell + gap)
        grid.paste(Image.fromarray(images[i]).resize((cell, cell), Image.Resampling.NEAREST), (x, gap))
        draw.text((x + cell // 2, gap + cell + caption_h // 2), f"{samples[i].char}>{answer}",
                  fill=0, font=font, anchor="mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, optimize=True)
    return len(wrong)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=(*PARTS, "both"), default="both")
    parser.add_argument("--quality", choices=QUALITIES, default="OK",
                        help="OK: the hand-checked samples only; all: also the unchecked ones")
    parser.add_argument("--model", default=None, help="a shipped model's name or an .onnx path")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate this many samples, spread evenly over the part")
    parser.add_argument("--picture", type=Path, default=None,
                        help="instead of measuring, draw EMNIST vs rendered UNIPEN to this PNG")
    parser.add_argument("--digit-errors", type=Path, default=None, metavar="PNG",
                        help="instead of measuring, draw the measure digits misread (digits-only)")
    args = parser.parse_args(argv)
    if args.digit_errors:
        print(json.dumps({"digits_misread": digit_errors(args.digit_errors, args.model)}))
        return
    if args.picture:
        picture(args.picture)
        return
    recognizer = Recognizer(args.model)
    parts = PARTS if args.part == "both" else (args.part,)
    results = {part: evaluate_unipen(recognizer, part, args.quality, args.limit) for part in parts}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
