"""How often the status refuses real characters and accepts non-characters (issue: readings a
person can trust). Every answer goes through the server's own path: Predictor.ink for the
strokes' shape, the calibrated softmax, emnist_draw.status.judge.

Real characters: UNIPEN's writers drawn on a 300x300 pad at 40-90% of its side (tune: what the
thresholds were chosen on; measure: never tuned on), and the pool's validation images, read as
an upload is (its blot check, and whether it holds several). Non-characters, made here: taps
(1-3 points), dots (a small spiral), dense random scribbles, and 2-4 real characters side by
side (as strokes, and drawn into images as a photo of them would be). The made ones come from
one seed for tuning (--seed 1) and another for measuring (the default, 2).

    .venv/bin/python bench/status.py [--samples 2000] [--seed 2] [--json PATH]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw

import benchlib
from emnist_draw import data, unipen
from emnist_draw.preprocess import image_to_ink, normalize, parse_strokes, strokes_to_input
from emnist_draw.server.predictor import Predictor

PAD = 300.0
REFUSED = {"not_a_character", "several_characters"}


def on_pad(strokes, fraction: float) -> list:
    """Strokes scaled so that their longer side is `fraction` of the pad, in its middle."""
    points = np.concatenate([np.asarray(s, float) for s in strokes])
    low, high = points.min(0), points.max(0)
    scale = fraction * PAD / max(float((high - low).max()), 1e-9)
    return [((np.asarray(s, float) - (low + high) / 2) * scale + PAD / 2).tolist() for s in strokes]


def tap(rng) -> list:
    centre = rng.uniform(50, 250, 2)
    return [[(centre + rng.normal(0, 0.7, 2)).tolist() for _ in range(rng.integers(1, 4))]]


def dot(rng) -> list:
    centre, radius, n = rng.uniform(50, 250, 2), rng.uniform(1, 6), rng.integers(6, 30)
    angle, r = np.cumsum(rng.uniform(0.3, 1.0, n)), radius * rng.uniform(0.2, 1, n)
    return [np.c_[centre[0] + r * np.cos(angle), centre[1] + r * np.sin(angle)].tolist()]


def scribble(rng) -> list:
    n, size = rng.integers(40, 200), rng.uniform(60, 250)
    walk = np.cumsum(rng.normal(0, size / 6, (n, 2)), 0)
    walk = np.clip(walk - walk.mean(0), -size / 2, size / 2) + PAD / 2
    cuts = np.sort(rng.choice(np.arange(2, n - 2), rng.integers(0, 3), replace=False))
    return [part.tolist() for part in np.split(walk, cuts)]


def side_by_side(rng, samples) -> list:
    chosen = [samples[i] for i in rng.choice(len(samples), rng.integers(2, 5))]
    strokes, _ = unipen.compose(chosen, gap=rng.uniform(0.1, 0.5))
    return on_pad(strokes, 0.9)


def line_image(strokes) -> Image.Image:
    """Strokes drawn dark on white, 120 pixels high: a photo or scan of the same ink."""
    points = np.concatenate([np.asarray(s, float) for s in strokes])
    low, scale = points.min(0), 120 / max(float(np.ptp(points[:, 1])), 1e-9)
    size = np.ceil(np.ptp(points, 0) * scale + 40).astype(int)
    image = Image.new("L", tuple(size), 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line([tuple((np.asarray(p) - low) * scale + 20) for p in stroke], fill=0, width=8,
                  joint="curve")
    return image


def image_statuses(predictor: Predictor, images: list[Image.Image]) -> Counter:
    """Images as an upload is read: the ink, its input, and whether it holds several."""
    inks = [image_to_ink(image) for image in images]
    answers = predictor.predict(np.stack([normalize(ink) for ink in inks]),
                                [(5, "all", False)] * len(inks),
                                [predictor.image_ink(ink) for ink in inks])
    return Counter(a.status for a in answers)


def statuses(predictor: Predictor, drawings: list) -> Counter:
    images = np.stack([strokes_to_input(d) for d in drawings])
    inks = [predictor.ink(parse_strokes(d), (PAD, PAD)) for d in drawings]
    answers = predictor.predict(images, [(5, "all", False)] * len(images), inks)
    return Counter(a.status for a in answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000, help="per kind of ink")
    parser.add_argument("--seed", type=int, default=2, help="1 made the tuning set")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    predictor = Predictor()
    n = args.samples
    real = {part: unipen.load_samples(part, "OK") for part in unipen.PARTS}
    pick = lambda samples: [samples[i] for i in rng.choice(len(samples), n, replace=False)]
    kinds = {f"UNIPEN {part} characters": [on_pad(s.strokes, rng.uniform(0.4, 0.9))
                                           for s in pick(real[part])] for part in unipen.PARTS}
    kinds |= {"taps": [tap(rng) for _ in range(n)], "dots": [dot(rng) for _ in range(n)],
              "scribbles": [scribble(rng) for _ in range(n)],
              "2-4 characters (measure writers)": [side_by_side(rng, real["measure"])
                                                   for _ in range(n)]}
    table = {name: statuses(predictor, drawings) for name, drawings in kinds.items()}
    images, _ = data.build_pool(data.DEFAULT_DATA_DIR).val
    table["pool validation images, as uploads"] = image_statuses(
        predictor, [Image.fromarray(image) for image in images])
    table["2-4 characters as images (measure writers)"] = image_statuses(
        predictor, [line_image(side_by_side(rng, real["measure"])) for _ in range(n)])
    result = {name: {"n": sum(c.values()), "refused": round(sum(c[s] for s in REFUSED)
                                                             / sum(c.values()), 4), **c}
              for name, c in table.items()}
    for name, row in result.items():
        rest = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("n", "refused"))
        print(f"{name:44s} n={row['n']:6d} refused {100 * row['refused']:5.1f}%  ({rest})")
    benchlib.write_json(args.json, {"seed": args.seed, "kinds": result})


if __name__ == "__main__":
    main()
