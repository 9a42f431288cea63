"""Expected calibration error (15 bins) of the served probabilities on every data set there is,
and the reliability diagram in docs/reliability.png.

The pool's validation part is where the temperature was fitted; the NIST sets (other writers:
the train slices; the test slices share the pool's writers) and UNIPEN's measure writers were
never tuned on. A digits or letters set is also scored as the page reads it with that character
set: at 47 classes its errors are mostly look-alikes of the other kind (a letters set's "O" read
"0"), which no calibration can know are absent.

    .venv/bin/python bench/calibration.py [--model NAME] [--diagram docs/reliability.png] [--json PATH]
"""

from __future__ import annotations

import argparse

import numpy as np

import benchlib
from emnist_draw import data, unipen
from emnist_draw.calibration import calibration_report, grouped, reliability_diagram
from emnist_draw.data import BALANCED_CLASSES
from emnist_draw.evaluate import common_classes
from emnist_draw.recognizer import Recognizer


def report(recognizer: Recognizer, images, truth, lut, n_groups, charset="all") -> dict:
    probs = grouped(recognizer.probabilities(images, charset), lut, n_groups)
    return calibration_report(probs.max(1), probs.argmax(1) == truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--diagram", default=None, help="write the reliability diagram here")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    recognizer = Recognizer(args.model)
    identity = np.arange(len(recognizer.classes))
    pool = data.build_pool(data.DEFAULT_DATA_DIR)
    images, labels = pool.val
    results = {"pool validation part (fitted on)": report(recognizer, images, labels, identity, 47)}
    seen = set(data.pixel_digests(pool.train[0]).tolist())
    for path in sorted((data.DEFAULT_DATA_DIR / "partial").glob("*.npz")):
        arrays = np.load(path)
        images = np.ascontiguousarray(arrays["images"].transpose(0, 2, 1))
        fresh = np.array([d not in seen for d in data.pixel_digests(images).tolist()])
        split, part = path.name.split("-")[1:3]
        names, split_lut, model_lut = common_classes(
            data.load_mapping(data.DEFAULT_DATA_DIR, split), False, recognizer.classes)
        truth = split_lut[arrays["labels"].astype(int)[fresh]]
        charset = "letters" if split == "letters" else "digits"
        for chosen in ("all", charset):
            results[f"NIST {split} {part} ({fresh.sum()}), charset {chosen}"] = report(
                recognizer, images[fresh], truth, model_lut, len(names), chosen)
    samples = unipen.load_samples("measure", "OK")
    truth = np.array([recognizer.classes.index(BALANCED_CLASSES[s.label]) for s in samples])
    results["UNIPEN measure writers"] = report(recognizer, unipen.render(samples), truth, identity, 47)
    for name, r in results.items():
        print(f"{name:48s} ECE {100 * r['ece']:5.2f}%  confidence {r['mean_confidence']:.4f}  "
              f"accuracy {r['accuracy']:.4f}")
    benchlib.write_json(args.json, {"model": recognizer.name, "temperature": recognizer.temperature,
                                    **{k: {m: r[m] for m in ("ece", "mean_confidence", "accuracy")}
                                       for k, r in results.items()}})
    if args.diagram:
        picked = {k: r for k, r in results.items() if k.startswith(("pool", "UNIPEN"))
                  or ("train" in k and "charset all" not in k and "mnist" not in k)}
        reliability_diagram(picked, args.diagram)


if __name__ == "__main__":
    main()
