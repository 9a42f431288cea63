"""How well strings are read: UNIPEN's printed words, numbers and codes through StringReader.

    .venv/bin/python bench/read_strings.py --composed 600           # composed strings, by kind
    .venv/bin/python bench/read_strings.py --composed 600 --images  # ... and pictures of them
    .venv/bin/python bench/read_strings.py --composed 600 --images --pen 0.1  # ... a wider pen
    .venv/bin/python bench/read_strings.py --composed 600 --images --photo    # ... as photos
    .venv/bin/python bench/read_strings.py --part measure --limit 1000  # real UNIPEN strings
    .venv/bin/python bench/read_strings.py --part tune --composed 600  # what was tuned on
    .venv/bin/python bench/read_strings.py --speed                  # ms per string by length
    .venv/bin/python bench/read_strings.py --speed --images         # ms per picture of a line
    .venv/bin/python bench/read_strings.py --part tune --fit-spaces # reader.SPACE_ODDS

Exact-string rate and character error rate (edit distance / length), both on the balanced form
(no spaces; case ignored only for the 15 letters EMNIST-balanced merges), per kind of string,
for today's reader ("before": reader.py at git revision BEFORE, loaded beside the current one)
and the current one ("after"), in one run, with no hint; numbers also with the digits set.
--naive adds the naive way: strokes grouped once by overlapping x-extents, each group read on
its own with no context (what sending each group to /api/predict gives).

--composed N writes N strings with the part's writers' isolated characters (one writer per
string where one wrote all its characters), the kinds in turn: numbers (4-8 digits), common
words (the shipped list's 5,000 most frequent of 3-8 letters; half lower, a quarter Capitalized,
a quarter UPPER), codes (4-6 capitals and digits, both present: AB12C, R2D2, 7KX9), made-up
words (consonant-vowel syllables not in the list, the same three forms), random capitals (3-6)
and mixes (4-6 lower-case letters and digits, both present); 30% tightly spaced (0.03 capital
heights apart, else 0.25); seed 0. Real strings: UNIPEN's words file, printed samples (cursive
with --all-styles).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from emnist_draw import cuts  # noqa: E402
from emnist_draw.preprocess import image_to_ink, strokes_to_input  # noqa: E402
from emnist_draw.reader import (StringReader, balanced_form, edit_distance, inked_runs,  # noqa: E402
                                space_gaps)
from emnist_draw.recognizer import Recognizer  # noqa: E402
from emnist_draw.composed import KINDS, composed_strings, line_image, photographed  # noqa: E402
from emnist_draw.unipen import PARTS, load_samples, load_written  # noqa: E402

# Today's reader, before the language model: the "before" column of every figure.
BEFORE = "ba6edba"


def naive(recognizer: Recognizer, strokes: list, charset: str = "all") -> str:
    """One fixed grouping: strokes whose x-extents overlap are one character, read alone."""
    boxes = sorted((min(p[0] for p in s), max(p[0] for p in s), i)
                   for i, s in enumerate(strokes) if s)
    groups, reach = [], -np.inf
    for x0, x1, i in boxes:
        if x0 > reach:
            groups.append([])
        groups[-1].append(strokes[i])
        reach = max(reach, x1)
    images = np.stack([strokes_to_input(g) for g in groups])
    probs = recognizer.probabilities(images, charset)
    return "".join(recognizer.classes[i] for i in probs.argmax(1))


def evaluate(readers: dict, samples, with_naive: bool = False) -> dict:
    """Real strings: exact and CER per style, level and kind for each reader, no hint; numbers
    also with the digits set."""
    rows = defaultdict(lambda: defaultdict(list))
    recognizer = next(iter(readers.values())).recognizer
    for s in samples:
        truth = balanced_form(s.text)
        style = "printed" if s.printed else "cursive or unknown"
        key = f"{style} {s.level}s: {s.kind}s"
        runs = {}
        for name, reader in readers.items():
            runs[name] = reader.read_strokes(s.strokes).text
            if s.kind == "number":
                runs[f"{name}, digits"] = reader.read_strokes(s.strokes, charset="digits").text
        if with_naive:
            runs["naive"] = naive(recognizer, s.strokes)
            if s.kind == "number":
                runs["naive, digits"] = naive(recognizer, s.strokes, "digits")
        for name, text in runs.items():
            errors = edit_distance(balanced_form(text), truth)
            rows[key][name].append((errors == 0, errors, len(truth)))
    return {f"{key} | {name}": _figure(r) for key, runs in sorted(rows.items())
            for name, r in sorted(runs.items())}


def table(figures: dict) -> str:
    """The figures as a markdown table: a row per kind, exact / CER per reader."""
    keys = sorted(dict.fromkeys(k.split(" | ")[0] for k in figures), key=lambda k: ("," in k, k))
    runs = sorted(dict.fromkeys(k.split(" | ")[1] for k in figures),
                  key=lambda r: ("," in r, not r.startswith("before"), r))
    lines = ["| kind | strings | " + " | ".join(f"{r}: exact / CER" for r in runs) + " |",
             "|---|---|" + "---|" * len(runs)]
    for key in keys:
        cells = [figures.get(f"{key} | {r}") for r in runs]
        count = next(c["strings"] for c in cells if c)
        lines.append(f"| {key} | {count} | " + " | ".join(
            f"{100 * c['exact']:.1f}% / {100 * c['cer']:.1f}%" if c else "" for c in cells) + " |")
    return "\n".join(lines)


def composed(readers: dict, strings: list[tuple], images: bool = False, pen: float = 0.06,
             photo: bool = False) -> dict:
    """Exact and CER per kind (and per spacing) for each reader, no hint; numbers also with the
    digits set; with `images`, each string also read from a picture of it (line_image, its pen
    `pen` capital heights wide; with `photo`, as a phone photo shows it: composed.photographed)."""
    rows = defaultdict(list)
    rng = np.random.default_rng(0)
    for kind, text, spacing, strokes in strings:
        truth = balanced_form(text)
        picture = line_image(strokes, pen=pen) if images else None
        if picture is not None and photo:
            picture = photographed(picture, rng)
        for name, reader in readers.items():
            runs = {name: reader.read_strokes(strokes).text}
            if picture is not None:
                try:
                    runs[f"{name}, image"] = reader.read_image(picture).text
                except ValueError:  # e.g. more column runs than a read takes: nothing read
                    runs[f"{name}, image"] = ""
            if kind == "number":
                runs[f"{name}, digits"] = reader.read_strokes(strokes, charset="digits").text
            for run, got in runs.items():
                errors = edit_distance(balanced_form(got), truth)
                row = (errors == 0, errors, len(truth))
                rows[(kind, run)].append(row)
                rows[(f"{kind}, {spacing}", run)].append(row)
                if kind in ("number", "word", "code") and "digits" not in run:
                    rows[("numbers+words+codes", run)].append(row)
                elif "digits" not in run:
                    rows[("made-up+capitals+mix", run)].append(row)
                if run.endswith("image"):
                    rows[("all kinds", run)].append(row)
    return {f"{key} | {run}": _figure(r) for (key, run), r in sorted(rows.items())}


def _figure(r: list) -> dict:
    return {"strings": len(r), "exact": round(float(np.mean([e for e, _, _ in r])), 4),
            "cer": round(sum(n for _, n, _ in r) / sum(t for _, _, t in r), 4)}


def reader_before(recognizer: Recognizer, revision: str = BEFORE):
    """The string reader as it was at `revision` (today's, for the side-by-side figures), with
    the language model of that revision where it had one (the rest of the package is today's)."""
    import inspect
    import subprocess

    def load(name: str):
        shown = subprocess.run(["git", "show", f"{revision}:emnist_draw/{name}.py"], cwd=ROOT,
                               capture_output=True, text=True)
        if shown.returncode:
            return None
        module = types.ModuleType(f"{name}_before")
        module.__file__ = str(ROOT / "emnist_draw" / f"{name}.py")  # its data files are today's
        sys.modules[module.__name__] = module  # dataclasses look their module up there
        exec(compile(shown.stdout, f"{revision}:{name}.py", "exec"), module.__dict__)
        return module

    reader, language = load("reader"), load("language")
    if language is not None and "language" in inspect.signature(reader.StringReader).parameters:
        return reader.StringReader(recognizer, language=language.default())
    return reader.StringReader(recognizer)


def fit(reader: StringReader, strings: list[tuple], words: list, rounds: int = 1,
        grid: bool = True) -> dict:
    """The reader's weights on a grid (LM_WEIGHT, CHARACTER_BONUS, WHOLE_WEIGHT),
    then the language model's type weights one at a time (x0.5, x2), by half the mean exact rate
    over the composed kinds and half the exact rate of real printed words (composed strings alone
    favour a weak prior, real words a strong one); without `grid`, the type weights only, at the
    reader's constants. Run on the tune writers only (--part tune --fit)."""
    import itertools

    import emnist_draw.reader as module

    def score() -> float:
        figures = composed({"after": reader}, strings)
        kinds = float(np.mean([figures[f"{kind} | after"]["exact"] for kind in KINDS]))
        real = np.mean([balanced_form(reader.read_strokes(w.strokes).text) == balanced_form(w.text)
                        for w in words])
        return (kinds + float(real)) / 2

    names = ("LM_WEIGHT", "CHARACTER_BONUS", "WHOLE_WEIGHT")
    values_tried = ((0.75, 1.0, 1.25), (1.0, 2.5, 4.0), (0.25, 0.5, 0.75)) if grid else \
        tuple((getattr(module, name),) for name in names)
    best = (-1.0, None)
    for values in itertools.product(*values_tried):
        for name, value in zip(names, values):
            setattr(module, name, value)
        got = score()
        print(" ".join(f"{n} {v}" for n, v in zip(names, values)) + f": {got:.4f}", flush=True)
        best = max(best, (got, values))
    for name, value in zip(names, best[1]):
        setattr(module, name, value)
    language = reader.language
    weights = dict(language.weights)
    for _ in range(rounds):
        for name in weights:
            for factor in (0.5, 2.0):
                trial = dict(weights, **{name: weights[name] * factor})
                language.set_weights(trial)
                got = score()
                print(f"{name} x{factor}: {got:.4f}", flush=True)
                if got > best[0]:
                    best, weights = (got, best[1]), trial
    language.set_weights(weights)
    return {"exact": best[0], **dict(zip(names, best[1])),
            "TYPE_WEIGHTS": {k: round(v, 4) for k, v in weights.items()}}


def fit_spaces(strings: list) -> dict:
    """reader.SPACE_ODDS: a logistic regression of "this gap is a space" on reader.space_gaps'
    inputs, by Newton's method. A line's spaces are taken to be its widest gaps, as many as it
    has spaces; a word or a composed string has none. Tune writers only (--part tune)."""
    inputs, labels = [], []
    for text, strokes in strings:
        boxes = np.array(sorted((np.r_[np.min(s, 0), np.max(s, 0)] for s in map(np.asarray, strokes)
                                 if len(s)), key=lambda b: b[0] + b[2]))
        at, x = space_gaps(boxes, float(boxes[:, 3].max() - boxes[:, 1].min()))
        spaces = np.argsort(-x[:, 0])[:text.count(" ")]
        inputs.append(x)
        labels.append(np.isin(np.arange(len(at)), spaces))
    x, y = np.concatenate(inputs), np.concatenate(labels)
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + 1e-6 * np.eye(len(w))
        w += np.linalg.solve(hessian, x.T @ (y - p))
    return {"SPACE_ODDS": [round(float(v), 2) for v in w], "gaps": len(y), "spaces": int(y.sum())}


def speed(readers: dict, samples, repeats: int = 30) -> dict:
    """Median ms per read by string length (one thread) for each reader, beside one
    character's, in turns on the same strings: a cold read, and (for a reader that keeps recent
    candidates) a read after one more stroke, as the page reads while one writes."""
    reader = next(iter(readers.values()))
    by_length = defaultdict(list)
    for s in samples:
        if s.printed and s.kind != "code":
            by_length[len(balanced_form(s.text))].append(s)
    # The work of one /api/predict call on strokes, in the same run: preprocessing and the model.
    singles = load_samples(None, "OK")[:repeats * 10]
    times = []
    for sample in singles:
        start = time.perf_counter()
        reader.recognizer.probabilities(strokes_to_input(sample.strokes)[None])
        times.append(1000 * (time.perf_counter() - start))
    out = {"one character (/api/predict's work)": {"strings": len(singles),
                                                   "p50_ms": round(statistics.median(times), 2)}}
    for length in sorted(by_length):
        if length not in (2, 4, 6, 8, 10, 14, 20, 30) or not by_length[length]:
            continue
        picks = by_length[length][:repeats]
        times = defaultdict(list)
        for s in picks:
            for name, each in readers.items():
                if hasattr(each, "recent"):  # a cold read: nothing kept from earlier reads
                    each.recent.items.clear()
                start = time.perf_counter()
                each.read_strokes(s.strokes)
                times[name].append(1000 * (time.perf_counter() - start))
                if hasattr(each, "recent"):  # as the page reads: after one more stroke
                    each.recent.items.clear()
                    each.read_strokes(s.strokes[:-1])
                    start = time.perf_counter()
                    each.read_strokes(s.strokes)
                    times[f"{name}, one more stroke"].append(1000 * (time.perf_counter() - start))
        out[length] = {"strings": len(picks),
                       "strokes_p50": statistics.median(len(s.strokes) for s in picks),
                       **{f"p50_ms {name}": round(statistics.median(t), 2)
                          for name, t in times.items()}}
    return out


def image_speed(readers: dict, strings: list[tuple]) -> dict:
    """Median ms per read of pictures of composed strings (one thread) for each reader in turns,
    and of the cut network alone (emnist_draw.cuts: band, network, peaks) on the same pictures."""
    times = defaultdict(list)
    for _, text, _, strokes in strings:
        picture = line_image(strokes)
        for name, each in readers.items():
            if hasattr(each, "recent"):
                each.recent.items.clear()
            start = time.perf_counter()
            each.read_image(picture)
            times[name].append(1000 * (time.perf_counter() - start))
        ink = image_to_ink(picture)
        runs = inked_runs(ink)
        start = time.perf_counter()
        cuts.default().cut(ink, runs)
        times["the cut network alone"].append(1000 * (time.perf_counter() - start))
    return {"pictures": len(strings),
            "characters_p50": statistics.median(len(text) for _, text, _, _ in strings),
            **{f"p50_ms {name}": round(statistics.median(t), 2) for name, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=PARTS, default="measure")
    parser.add_argument("--limit", type=int, default=None, help="evenly spaced samples")
    parser.add_argument("--model", default=None)
    parser.add_argument("--all-styles", action="store_true", help="include cursive samples")
    parser.add_argument("--naive", action="store_true", help="also the naive grouping")
    parser.add_argument("--speed", action="store_true",
                        help="time reads by string length (with --images: pictures of them)")
    parser.add_argument("--composed", type=int, default=0, metavar="N",
                        help="read N strings composed from the part's writers' characters")
    parser.add_argument("--images", action="store_true",
                        help="--composed: also read each string from a picture of it")
    parser.add_argument("--pen", type=float, default=0.06,
                        help="--images: the pictures' pen width in capital heights")
    parser.add_argument("--photo", action="store_true",
                        help="--images: blurred, on grey paper, noisy, JPEG (as a phone shows them)")
    parser.add_argument("--before", default=BEFORE,
                        help="git revision of the reader to compare with ('' for none)")
    parser.add_argument("--fit", action="store_true",
                        help="fit the reader's weights on the composed strings (--part tune only)")
    parser.add_argument("--rounds", type=int, default=1, help="--fit: rounds over the type weights")
    parser.add_argument("--no-grid", action="store_true",
                        help="--fit: only the type weights, at the reader's constants")
    parser.add_argument("--fit-spaces", action="store_true",
                        help="fit the odds of a space at a gap (--part tune only)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if (args.fit or args.fit_spaces) and args.part != "tune":
        parser.error("--fit and --fit-spaces run on the tune writers only: add --part tune")
    recognizer = Recognizer(args.model)
    readers = {"after": StringReader(recognizer)}
    if args.before:
        try:
            readers = {"before": reader_before(recognizer, args.before), **readers}
        except ImportError as e:  # its lexicon came from the english-words package
            sys.exit(f"the reader at {args.before} needs {e.name}: pip install english-words==2.0.2,"
                     " or --before ''")
    result = {"part": args.part, "model": recognizer.name, "before": args.before}
    if args.fit:
        words = [w for w in load_written("tune") if w.printed and w.kind == "word" and w.level == "word"]
        words = [words[i] for i in np.linspace(0, len(words) - 1, args.limit or 400).astype(int)]
        result["fit"] = fit(readers["after"], composed_strings(args.composed or 300, "tune", seed=1),
                            words, args.rounds, not args.no_grid)
        print(json.dumps(result["fit"], indent=1))
    elif args.fit_spaces:  # every other line, every fourth word, 600 composed strings
        printed = [w for w in load_written("tune") if w.printed]
        lines = [w for w in printed if " " in w.text][1::2]
        words = [w for w in printed if " " not in w.text][1::4]
        strings = [(w.text, w.strokes) for w in lines + words] + \
            [(text, strokes) for _, text, _, strokes in composed_strings(600, "tune", seed=3)]
        result["fit_spaces"] = fit_spaces(strings)
        print(json.dumps(result["fit_spaces"], indent=1))
    elif args.speed and args.images:
        result["speed"] = image_speed(readers, composed_strings(args.composed or 120, args.part))
        print(json.dumps(result, indent=1))
    elif args.composed:
        strings = composed_strings(args.composed, args.part)
        result["composed"] = composed(readers, strings, args.images, args.pen, args.photo)
        result["pictures"] = {"pen": args.pen, "photo": args.photo} if args.images else None
        print(table(result["composed"]))
    else:
        samples = [s for s in load_written(args.part) if args.all_styles or s.printed]
        if args.limit and args.limit < len(samples):
            samples = [samples[i] for i in np.linspace(0, len(samples) - 1, args.limit).astype(int)]
        if args.speed:
            result["speed"] = speed(readers, samples)
            print(json.dumps(result, indent=1))
        else:
            result["figures"] = evaluate(readers, samples, args.naive)
            print(table(result["figures"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
