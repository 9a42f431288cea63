"""How well strings are read: UNIPEN's printed words, numbers and codes through StringReader.

    .venv/bin/python bench/read_strings.py --part measure          # the figures to report
    .venv/bin/python bench/read_strings.py --part tune --limit 1500  # what the constants were tuned on
    .venv/bin/python bench/read_strings.py --speed                  # ms per string by length
    .venv/bin/python bench/read_strings.py --composed 300           # strings made of isolated characters

Exact-string rate and character error rate (edit distance / length), both on the balanced form
(no spaces; case ignored only for the 15 letters EMNIST-balanced merges), per kind of string and
level, beside the naive way: strokes grouped once by overlapping x-extents, each group read on
its own with no context (what sending each group to /api/predict gives). Numbers are also read
with the digits set. Cursive samples (printed false) are reported apart: not a goal.
--composed writes numbers, words (UNIPEN tune writers' words) and LLDDD codes with the part's
writers' isolated characters, at normal and tight spacing, read with no hint and with the fitting
one (digits, letters, the pattern).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from emnist_draw.preprocess import strokes_to_input  # noqa: E402
from emnist_draw.reader import StringReader, balanced_form, edit_distance  # noqa: E402
from emnist_draw.recognizer import Recognizer  # noqa: E402
from emnist_draw.unipen import PARTS, compose, load_samples, load_written  # noqa: E402

SPACINGS = {"normal": 0.25, "tight": 0.03}


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


def evaluate(reader: StringReader, samples, with_naive: bool = True) -> dict:
    rows = defaultdict(lambda: defaultdict(list))
    for s in samples:
        truth = balanced_form(s.text)
        style = "printed" if s.printed else "cursive or unknown"
        key = f"{style} {s.level}s: {s.kind}s"
        runs = {"engine": reader.read_strokes(s.strokes).text}
        if s.kind == "number":
            runs["engine, digits"] = reader.read_strokes(s.strokes, charset="digits").text
        if with_naive:
            runs["naive"] = naive(reader.recognizer, s.strokes)
            if s.kind == "number":
                runs["naive, digits"] = naive(reader.recognizer, s.strokes, "digits")
        for name, text in runs.items():
            errors = edit_distance(balanced_form(text), truth)
            rows[key][name].append((errors == 0, errors, len(truth)))
    return {key: {name: {"strings": len(r), "exact": round(float(np.mean([e for e, _, _ in r])), 4),
                         "cer": round(sum(n for _, n, _ in r) / sum(t for _, _, t in r), 4)}
                  for name, r in sorted(runs.items())}
            for key, runs in sorted(rows.items())}


def composed(reader: StringReader, count: int, part: str = "measure", seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    by_writer = defaultdict(lambda: defaultdict(list))
    for sample in load_samples(part, "OK"):
        by_writer[sample.writer][sample.char].append(sample)
    writers = sorted(by_writer)
    vocabulary = sorted({w.text for w in load_written("tune") if w.text.isalpha() and w.text.islower()
                         and 3 <= len(w.text) <= 8})
    letters, digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
    rows = defaultdict(list)
    for n in range(count):
        kind = ("number", "word", "code")[n % 3]
        if kind == "number":
            text = "".join(rng.choice(list(digits), rng.integers(4, 9)))
        elif kind == "word":
            text = vocabulary[rng.integers(len(vocabulary))]
        else:
            text = "".join(rng.choice(list(letters), 2)) + "".join(rng.choice(list(digits), 3))
        hint = {"number": {"charset": "digits"}, "word": {"charset": "letters"},
                "code": {"pattern": "LLDDD"}}[kind]
        # One writer for the whole string where one wrote every character of it.
        fits = [w for w in writers if all(by_writer[w][c] for c in text)]
        pool = [by_writer[fits[rng.integers(len(fits))]]] if fits else [by_writer[w] for w in writers]
        chars = []
        for c in text:
            options = next(p[c] for p in pool if p[c]) if fits else [
                s for p in pool for s in p[c]]
            chars.append(options[rng.integers(len(options))])
        truth = balanced_form(text)
        for spacing, gap in SPACINGS.items():
            strokes, _ = compose(chars, gap=gap)
            naive_hint = hint.get("charset", "all")
            runs = {"engine": reader.read_strokes(strokes).text,
                    "engine, hint": reader.read_strokes(strokes, **hint).text,
                    "naive": naive(reader.recognizer, strokes),
                    "naive, hint": naive(reader.recognizer, strokes, naive_hint)}
            for name, got in runs.items():
                errors = edit_distance(balanced_form(got), truth)
                rows[(f"{kind}s, {spacing} spacing", name)].append((errors == 0, errors, len(truth)))
    return {f"{key} | {name}": {"strings": len(r), "exact": round(float(np.mean([e for e, _, _ in r])), 4),
                                "cer": round(sum(n for _, n, _ in r) / sum(t for _, _, t in r), 4)}
            for (key, name), r in sorted(rows.items())}


def speed(reader: StringReader, samples, repeats: int = 30) -> dict:
    """Median ms per read by string length (one thread), beside one character's."""
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
        times = []
        for s in picks:
            start = time.perf_counter()
            reader.read_strokes(s.strokes)
            times.append(1000 * (time.perf_counter() - start))
        out[length] = {"strings": len(picks), "p50_ms": round(statistics.median(times), 2),
                       "strokes_p50": statistics.median(len(s.strokes) for s in picks)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=PARTS, default="measure")
    parser.add_argument("--limit", type=int, default=None, help="evenly spaced samples")
    parser.add_argument("--model", default=None)
    parser.add_argument("--all-styles", action="store_true", help="include cursive samples")
    parser.add_argument("--speed", action="store_true", help="time reads by string length")
    parser.add_argument("--composed", type=int, default=0, metavar="N",
                        help="read N strings composed from the part's writers' characters")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    reader = StringReader(Recognizer(args.model))
    samples = [s for s in load_written(args.part) if args.all_styles or s.printed]
    if args.limit and args.limit < len(samples):
        samples = [samples[i] for i in np.linspace(0, len(samples) - 1, args.limit).astype(int)]
    result = {"part": args.part, "model": reader.recognizer.name}
    if args.composed:
        result["composed"] = composed(reader, args.composed, args.part)
    elif args.speed:
        result["speed"] = speed(reader, samples)
    else:
        result["figures"] = evaluate(reader, samples)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
