"""Train the string reader's whole-character model (emnist_draw.segmentation), tune writers only.

    .venv/bin/python -m emnist_draw.train_segmentation          # ~4 min on 2 cores

Examples are the reader's own candidates (every run of 1-4 neighbouring strokes it would read),
labelled whole when their strokes are exactly one character's, from two sources of the UNIPEN
tune writers (the measure writers are never seen):
- real printed words and numbers whose characters UNIPEN segments (category 3);
- composed strings of every kind (numbers, words, codes, made-up words, capitals, mixes) from
  their isolated characters, spaced from overlapping to wide (emnist_draw.composed), as strokes
  and as pictures of a line (the reader's image primitives: runs of inked columns).
A fifth of the real words' writers, and composed strings of another seed, are held out: training
stops where their log loss is lowest, and their figures are written into the model's file.
The same candidates train the gate (segmentation.GEOMETRY only: what is known before the CNN
reads a candidate), which decides which candidates the reader renders at all; both are trained
on every candidate, none gated.
"""

from __future__ import annotations

import argparse
import gzip
import json
import zlib
from datetime import date
from pathlib import Path

import numpy as np

from emnist_draw.composed import composed_strings, line_image
from emnist_draw.preprocess import image_to_ink
from emnist_draw.reader import StringReader
from emnist_draw.recognizer import Recognizer
from emnist_draw.segmentation import FEATURES, GATE_FILE, GEOMETRY, MODEL_FILE, WholeCharacter
from emnist_draw.unipen import DEFAULT_WORDS_FILE, writer_part

# Composed strings are spaced in these capital heights, each as likely: pieces of touching and
# overlapping characters must be told apart as well as those of well spaced ones.
TRAINING_SPACINGS = {"overlapping": -0.05, "touching": 0.0, "tight": 0.03, "normal": 0.25,
                     "wide": 0.45}
# An image candidate is one whole character when it holds this share of its ink, and the ink of
# others is at most the rest of what it holds.
IMAGE_WHOLE = 0.9
HIDDEN = 32
HELD_OUT_PERCENT = 20


def segmented_words(part: str = "tune", path: Path = DEFAULT_WORDS_FILE) -> list[tuple]:
    """(writer, strokes, owners) for UNIPEN's printed strings with their characters segmented
    (category 3) whose text is letters and digits: owners[k] holds character k's stroke indices
    (a stroke belongs to the character that has most of its points)."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if '"category":"3"' not in line:
                continue
            row = json.loads(line)
            text = row["text_fix"] or row["text"]
            if writer_part(row["writer"]) != part or not row["printed"] or not row["chars"] \
                    or not text.isascii() or not text.replace(" ", "").isalnum():
                continue
            points = np.zeros((len(row["strokes"]), len(row["chars"])))
            for k, char in enumerate(row["chars"]):
                for stroke, first, last in char["points"]:
                    points[stroke, k] += last - first + 1
            owners = [[] for _ in row["chars"]]
            for stroke in np.flatnonzero(points.sum(1)):
                owners[int(points[stroke].argmax())].append(int(stroke))
            out.append((row["writer"], row["strokes"], [o for o in owners if o]))
    return out


def examples(reader: StringReader, strings: list[tuple[list, list[list[int]]]],
             images: bool = False) -> tuple:
    """(features, whole?) of every candidate of each (strokes, owners); with `images`, of the
    candidates of a picture of the strokes (composed.line_image) instead."""
    rows, labels = [], []
    for strokes, owners in strings:
        if images:
            graph, whole = _image_candidates(reader, strokes, owners)
        else:
            graph = reader.candidates(strokes)
            characters = {frozenset(o) for o in owners}
            whole = [frozenset(graph.order[k] for k in range(a, b)) in characters
                     for a, b in graph.spans]
        rows.append(graph.features())
        labels += whole
    return np.concatenate(rows), np.array(labels, dtype=np.float32)


def _image_candidates(reader: StringReader, strokes: list, owners: list[list[int]]) -> tuple:
    """The candidates of a picture of the strokes, each whole when it holds nearly all of one
    character's ink (IMAGE_WHOLE) and little of any other's (where characters touch, their
    edges share columns)."""
    graph, runs = reader.image_candidates(image_to_ink(line_image(strokes)))
    mass = np.stack([(np.asarray(line_image(strokes, only=o)) < 128).sum(0) for o in owners])
    whole = []
    for a, b in graph.spans:
        lo = min(runs[graph.order[k]][0] for k in range(a, b))
        hi = max(runs[graph.order[k]][1] for k in range(a, b))
        held = mass[:, lo:hi].sum(1)
        k = int(held.argmax())
        whole.append(bool(held[k] >= IMAGE_WHOLE * mass[k].sum()
                          and held.sum() - held[k] <= (1 - IMAGE_WHOLE) * held.sum()))
    return graph, whole


def fit(x: np.ndarray, y: np.ndarray, x_check: np.ndarray, y_check: np.ndarray,
        epochs: int = 60, seed: int = 0) -> tuple[dict, dict]:
    """An MLP (one hidden layer) by Adam on the log loss; the epoch with the lowest held-out loss."""
    import torch  # training only: serving runs the weights in NumPy

    torch.manual_seed(seed)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    to_tensor = lambda a: torch.tensor((a - mean) / scale, dtype=torch.float32)  # noqa: E731
    xt, xc = to_tensor(x), to_tensor(x_check)
    yt, yc = torch.tensor(y), torch.tensor(y_check)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_of = torch.nn.BCEWithLogitsLoss()
    best = (float("inf"), None, 0)
    for epoch in range(epochs):
        for batch in torch.randperm(len(xt)).split(512):
            optimizer.zero_grad()
            loss_of(model(xt[batch])[:, 0], yt[batch]).backward()
            optimizer.step()
        with torch.no_grad():
            loss = float(loss_of(model(xc)[:, 0], yc))
        if loss < best[0]:
            best = (loss, [p.detach().numpy().copy() for p in model.parameters()], epoch)
    w1, b1, w2, b2 = best[1]
    weights = {"mean": mean.tolist(), "scale": scale.tolist(),
               "layers": [[w1.T.tolist(), b1.tolist()], [w2.T.tolist(), b2.tolist()]]}
    return weights, {"held_out_log_loss": round(best[0], 4), "epochs": best[2] + 1}


def _figures(log_odds: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy at even odds and the area under the ROC curve (rank statistic)."""
    ranks = np.argsort(np.argsort(log_odds)) + 1
    positives = y.sum()
    auc = (ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * (len(y) - positives))
    return {"candidates": int(len(y)), "whole": int(positives),
            "accuracy": round(float(((log_odds > 0) == (y == 1)).mean()), 4),
            "auc": round(float(auc), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--composed", type=int, default=3000, help="composed strings to train on")
    parser.add_argument("--pictures", type=int, default=1500,
                        help="composed strings to train on as pictures (line images)")
    parser.add_argument("--out", default=str(MODEL_FILE))
    parser.add_argument("--gate-out", default=str(GATE_FILE))
    parser.add_argument("--model", default=None, help="the CNN (default: the shipped one)")
    args = parser.parse_args()
    reader = StringReader(Recognizer(args.model), every_candidate=True)

    real = segmented_words("tune")
    held_out = lambda writer: zlib.crc32(writer.encode()) % 100 < HELD_OUT_PERCENT  # noqa: E731
    composed = lambda n, seed: [(s[3], s[4]) for s in composed_strings(  # noqa: E731
        n, "tune", seed=seed, with_owners=True, spacings=TRAINING_SPACINGS)]
    train = [(s, o) for w, s, o in real if not held_out(w)] + composed(args.composed, 10)
    check = [(s, o) for w, s, o in real if held_out(w)] + composed(args.composed // 5, 11)
    pictures = composed(args.pictures, 12)
    pictures_check = composed(args.pictures // 5, 13)
    x, y = map(np.concatenate, zip(examples(reader, train), examples(reader, pictures, True)))
    x_check, y_check = map(np.concatenate, zip(examples(reader, check),
                                               examples(reader, pictures_check, True)))
    print(f"{len(train)} strings and {len(pictures)} pictures, {len(y)} candidates "
          f"({int(y.sum())} whole) to train on; {len(check)} strings and {len(pictures_check)} "
          f"pictures, {len(y_check)} candidates held out", flush=True)
    for names, out in ((FEATURES, Path(args.out)), (GEOMETRY, Path(args.gate_out))):
        columns = [FEATURES.index(f) for f in names]
        weights, info = fit(x[:, columns], y, x_check[:, columns], y_check)
        data = {"features": list(names), **weights, "trained": str(date.today()),
                "cnn": reader.recognizer.name,
                "strings": {"real": len(real), "composed": args.composed, "pictures": args.pictures},
                **info}
        out.write_text(json.dumps(data) + "\n")
        model = WholeCharacter(out)  # its figures as the reader will load and run it
        data.update(train=_figures(model.log_odds(x), y),
                    held_out=_figures(model.log_odds(x_check), y_check))
        out.write_text(json.dumps(data) + "\n")
        print(out.name, json.dumps({k: data[k] for k in ("held_out_log_loss", "epochs", "train",
                                                         "held_out")}, indent=1))


if __name__ == "__main__":
    main()
