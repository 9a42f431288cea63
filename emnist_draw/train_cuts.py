"""Train the image reader's cut network (emnist_draw.cuts), tune writers only.

    .venv/bin/python -m emnist_draw.train_cuts          # ~25 min on 2 cores

Examples are pictures of strings composed from the UNIPEN tune writers' isolated characters
(emnist_draw.composed), spaced from overlapping to wide, each character's ink drawn alone too.
Between each two neighbouring characters the target is the straight cut that misassigns least
ink (the left one's ink right of it plus the right one's left of it); the band columns within
one of it are labelled "cut". Pictures of another seed are held out: training keeps the epoch
with the lowest held-out loss, and their figures (how many joins inside a run get a cut, how
many cuts fall elsewhere) are written beside the model.
"""

from __future__ import annotations

import argparse
import json
import warnings
from datetime import date
from pathlib import Path

import numpy as np

from emnist_draw.composed import composed_strings, line_image
from emnist_draw.cuts import MODEL_FILE, ROWS, THRESHOLD, Cuts, band
from emnist_draw.preprocess import image_to_ink
from emnist_draw.reader import inked_runs
from emnist_draw.train_segmentation import TRAINING_SPACINGS

CROP = 160    # band columns per training example (about 5 line heights)
NEAR = 1      # band columns each side of the best cut that count as the cut
FOUND = 2     # a cut this many band columns from a join finds it (held-out figures)
PENS = (0.04, 0.1)  # pen widths (x the capitals' height) of the pictures, each as likely


def best_cuts(masks: list[np.ndarray]) -> list[int]:
    """Between each two characters neighbouring by their ink's centre: the column that
    misassigns least of their ink."""
    columns = [m.sum(0).astype(float) for m in masks]
    centres = [np.average(np.arange(len(c)), weights=c) for c in columns]
    order = np.argsort(centres)
    cuts = []
    for a, b in zip(order[:-1], order[1:]):
        left, right = columns[a], columns[b]
        cost = left.sum() - np.r_[0, np.cumsum(left)[:-1]] + np.r_[0, np.cumsum(right)[:-1]]
        lo, hi = np.flatnonzero(left)[0], np.flatnonzero(right)[-1] + 1
        cuts.append(int(lo + np.argmin(cost[lo:hi])))
    return cuts


def examples(count: int, seed: int, part: str = "tune",
             pens: tuple[float, float] = PENS) -> list[tuple]:
    """(ink, band, labels per band column, the best cuts in ink columns) of `count` pictures of
    the part's writers (training: "tune" only), their pens drawn from the range `pens`."""
    out = []
    pens = np.random.default_rng(seed).uniform(*pens, size=count)
    for (_, _, _, strokes, owners), pen in zip(composed_strings(
            count, part, seed=seed, with_owners=True, spacings=TRAINING_SPACINGS), pens):
        ink = image_to_ink(line_image(strokes, pen=pen))
        cuts = best_cuts([np.asarray(line_image(strokes, only=o, pen=pen)) < 128 for o in owners])
        small, factor = band(ink)
        labels = np.zeros(small.shape[1], np.float32)
        for cut in cuts:
            at = int(cut / factor)
            labels[max(at - NEAR, 0):at + NEAR + 1] = 1
        out.append((ink, small, labels, cuts))
    return out


def network(channels: tuple[int, ...] = (16, 32, 48, 64)):
    """Conv blocks that halve the rows, not the columns, to 2 rows; then 1-D convolutions along
    the columns (a context of about a line height) to one logit per column."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c_in = [], 1
            for c_out in channels:
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 1))]
                c_in = c_out
            self.features = nn.Sequential(*layers)
            rows = ROWS >> len(channels)
            self.head = nn.Sequential(nn.Conv1d(c_in * rows, 64, 9, padding=4), nn.ReLU(),
                                      nn.Conv1d(64, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features(x)
            return self.head(f.flatten(1, 2))[:, 0]

    return Net()


def fit(train: list[tuple], check: list[tuple], epochs: int, seed: int = 0):
    """Adam on the log loss over random crops, the rate warmed up then annealed (one cycle);
    the epoch with the lowest held-out loss."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = network()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    batches = max(len(train) // 32, 1)  # per epoch
    # The rate decays to nothing: at a fixed rate the held-out loss wandered by 5% epoch to epoch.
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=epochs * batches,
                                                   pct_start=0.1)
    loss_of = torch.nn.BCEWithLogitsLoss(reduction="none")
    best = (float("inf"), None, 0)
    for epoch in range(epochs):
        net.train()
        for batch in np.array_split(rng.permutation(len(train)), batches):
            x = np.zeros((len(batch), 1, ROWS, CROP), np.float32)
            y, used = np.zeros((2, len(batch), CROP), np.float32)
            for n, i in enumerate(batch):
                small, labels = train[i][1], train[i][2]
                start = rng.integers(0, max(small.shape[1] - CROP, 0) + 1)
                piece = slice(start, start + CROP)
                width = small[:, piece].shape[1]
                x[n, 0, :, :width], y[n, :width], used[n, :width] = small[:, piece], labels[piece], 1
            optimizer.zero_grad()
            loss = (loss_of(net(torch.tensor(x)), torch.tensor(y)) * torch.tensor(used)).sum()
            (loss / used.sum()).backward()
            optimizer.step()
            schedule.step()
        net.eval()
        with torch.no_grad():
            total = sum(float(loss_of(net(torch.tensor(small)[None, None])[0],
                                      torch.tensor(labels)).sum()) for _, small, labels, _ in check)
        loss = total / sum(len(labels) for _, _, labels, _ in check)
        print(f"epoch {epoch + 1}: held-out loss {loss:.4f}", flush=True)
        if loss < best[0]:
            best = (loss, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
    net.load_state_dict(best[1])
    return net, {"held_out_log_loss": round(best[0], 4), "epochs": best[2] + 1}


def export(net, out: str | Path) -> None:
    import torch

    # dynamo=False: the TorchScript exporter needs no onnxscript (as emnist_draw.export).
    with warnings.catch_warnings():  # ... and announces its own deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, 1, ROWS, CROP),), str(out), dynamo=False,
                          input_names=["band"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"band": {3: "columns"}, "logits": {1: "columns"}})


def figures(cuts: Cuts, check: list[tuple]) -> dict:
    """Of the joins inside a run of inked columns (touching or overlapping characters), the
    share with a cut within FOUND band columns; the cuts that are near no join, per character;
    and the pictures whose every join inside a run was found."""
    joins = found = extra = characters = whole = 0
    for ink, small, _, best in check:
        runs = inked_runs(ink)
        made = [b for _, b in cuts.cut(ink, runs)][:-1]
        made = [x for x in made if all(x != b for _, b in runs)]  # cuts, not runs' own ends
        factor = ink.shape[1] / small.shape[1]
        inside = [c for c in best if any(a < c < b for a, b in runs)]
        hits = [any(abs(m - c) <= FOUND * factor for m in made) for c in inside]
        joins, found, whole = joins + len(inside), found + sum(hits), whole + all(hits)
        extra += sum(all(abs(m - c) > FOUND * factor for c in best) for m in made)
        characters += len(best) + 1
    return {"pictures": len(check), "joins_in_runs": joins,
            "joins_found": round(found / max(joins, 1), 4),
            "extra_cuts_per_character": round(extra / characters, 4),
            "pictures_all_found": round(whole / len(check), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=20000, help="composed pictures to train on")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--out", default=str(MODEL_FILE))
    args = parser.parse_args()
    train, check = examples(args.pictures, 20), examples(args.pictures // 10, 21)
    print(f"{len(train)} pictures to train on, {len(check)} held out", flush=True)
    net, info = fit(train, check, args.epochs)
    out = Path(args.out)
    export(net, out)
    data = {"trained": str(date.today()), "pictures": args.pictures, **info,
            "threshold": THRESHOLD, "held_out": figures(Cuts(out), check)}
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
