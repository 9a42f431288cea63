"""Training speed from the runs' own records: images per second and the wall time to a target
balanced accuracy, read from runs/*/metrics.json (no training is started).

    .venv/bin/python bench/training_stats.py [--target 0.902] [--runs runs/medium runs/medium-ink runs/medium-finetune]

The shipped model's metadata records the same per-epoch figures for the stages that made it;
they are printed too (runs/ may since hold other trainings). The stages are taken in the order
given (the recipe of `make train`: stage 2 starts from stage 1's weights), so the time to the
target adds up the epochs of the earlier stages. An epoch's `seconds` is its wall time as the
training loop measured it (training plus the validation pass), on the machine that trained it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import benchlib

from emnist_draw.recognizer import resolve_model  # noqa: E402

DEFAULT_RUNS = ("runs/medium", "runs/medium-ink", "runs/medium-finetune")
ORIGINAL_ACCURACY = 0.902  # the original demo's reported balanced accuracy


def from_runs(names: list[str]) -> list[dict[str, Any]]:
    stages = []
    for name in names:
        metrics = json.loads((benchlib.ROOT / name / "metrics.json").read_text())
        stages.append({"name": name, "history": metrics["history"],
                       "train_images": metrics.get("train_images"),
                       "batch": metrics.get("config", {}).get("batch_size"),
                       "processes": metrics.get("processes", 1)})
    return stages


def from_model() -> list[dict[str, Any]]:
    """The stages recorded in the shipped model's metadata (written by `emnist-draw export`)."""
    meta = json.loads(resolve_model().with_suffix(".json").read_text())
    stages = meta.get("training", {}).get("stages", [])[::-1]  # recorded last stage first
    return [{"name": f"shipped model, stage {i + 1} ({st['config'].get('out')})",
             "history": st["history"], "train_images": None,
             "batch": st["config"].get("batch_size"), "processes": None}
            for i, st in enumerate(stages)]


def report(title: str, stages: list[dict[str, Any]], target: float) -> dict[str, Any]:
    rows, epochs = [], []
    elapsed = 0.0
    for st in stages:
        history = st["history"]
        ips = sorted(h["images_per_second"] for h in history)
        best = max(history, key=lambda h: h["val_balanced_accuracy"])
        rows.append([st["name"], len(history), st["train_images"] or "-", st["batch"],
                     st["processes"] or "-", benchlib.median(ips), ips[0], ips[-1],
                     sum(h["seconds"] for h in history) / 60, best["val_balanced_accuracy"] * 100,
                     best["epoch"]])
        for h in history:
            elapsed += h["seconds"]
            epochs.append({"run": st["name"], "epoch": h["epoch"], "elapsed_s": elapsed,
                           "balanced_accuracy": h["val_balanced_accuracy"],
                           "images_per_second": h["images_per_second"]})
    reached = next((e for e in epochs if e["balanced_accuracy"] >= target), None)
    best = max(epochs, key=lambda e: e["balanced_accuracy"])
    print(benchlib.table(
        f"{title} (images/s over each epoch's wall time)",
        ["stage", "epochs", "train images", "batch", "processes", "images/s (median epoch)",
         "min", "max", "wall minutes", "best balanced acc. %", "at epoch"], rows))
    if reached:
        print(f"{target:.1%} balanced accuracy reached after {reached['elapsed_s'] / 60:.1f} "
              f"minutes of training ({reached['run']}, epoch {reached['epoch']})")
    else:
        print(f"{target:.1%} balanced accuracy NOT reached: the best is "
              f"{best['balanced_accuracy']:.2%} ({best['run']}, epoch {best['epoch']}) after "
              f"{best['elapsed_s'] / 60:.1f} minutes; all stages took {elapsed / 60:.1f} minutes")
    thresholds = sorted({0.85, 0.88, 0.89, 0.895, 0.90, target})
    print(benchlib.table(
        "Wall time to a balanced accuracy (stages in order, minutes)",
        ["balanced accuracy", "minutes", "stage", "epoch"],
        [[f"{t:.1%}"] + ([e["elapsed_s"] / 60, e["run"], e["epoch"]] if e else ["not reached", "", ""])
         for t in thresholds
         for e in [next((e for e in epochs if e["balanced_accuracy"] >= t), None)]]))
    return {"reached": reached, "best": best, "total_s": elapsed, "epochs": epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS))
    parser.add_argument("--target", type=float, default=ORIGINAL_ACCURACY,
                        help="balanced accuracy to reach (default: the original's 0.902)")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    print(benchlib.machine_line(m))
    out: dict[str, Any] = {"machine": m, "target": args.target}
    if all((benchlib.ROOT / r / "metrics.json").is_file() for r in args.runs):
        out["runs"] = report("Training runs: " + " then ".join(args.runs), from_runs(args.runs),
                             args.target)
    else:
        print("\n(no runs/*/metrics.json here: " + ", ".join(args.runs) + ")")
    stages = from_model()
    if stages:
        print("\nThe same from the shipped model's own record (its .json; the runs/ folders may "
              "hold later trainings):")
        out["shipped_model"] = report("Shipped model's training", stages, args.target)
    benchlib.write_json(args.json, out)


if __name__ == "__main__":
    main()
