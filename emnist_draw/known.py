"""Characters the writer confirmed: the string reader keeps them while it re-reads the rest.

A confirmed character is one primitive of the search (its strokes together, never split and
never merged with others) with one class allowed; without a label, only its grouping is kept
(the page's Split and Join) and its class is read. This module turns the caller's
(stroke indices, label) pairs into those primitives; emnist_draw.reader does the search.
"""

from __future__ import annotations

from typing import Sequence

from emnist_draw.data import BALANCED_CLASSES, to_balanced

# (indices into the request's strokes, label): None for the label keeps only the grouping
# (these strokes are one character, its class is read: a box split or two boxes joined).
Known = tuple[Sequence[int], str | None]


def class_of(label: str, classes: Sequence[str]) -> int:
    """The index in `classes` of a label: one of the 47 classes or either case of a merged
    letter ("m" is the class "M")."""
    if len(label) != 1:
        raise ValueError(f"the label {label!r} is not one character: use one of the 47 classes "
                         f"({BALANCED_CLASSES}), merged letters in either case")
    try:
        return list(classes).index(BALANCED_CLASSES[to_balanced(label)])
    except (KeyError, ValueError):
        raise ValueError(f"the label {label!r} is not one of the 47 classes ({BALANCED_CLASSES}); "
                         "merged letters (c i j k l m o p s u v w x y z) in either case") from None


def primitives(kept: Sequence[int], known: Sequence[Known],
               classes: Sequence[str]) -> tuple[list[list[int]], dict[int, int | None]]:
    """The search's primitives over the parsed strokes: each known character's strokes as one,
    every other stroke alone, in writing order of their first stroke; and, per known primitive,
    its class index (None without a label). `kept[i]` is the request index of parsed stroke i (empty strokes are
    dropped by parsing; a known character of empty strokes only is no primitive)."""
    parsed = {request: i for i, request in enumerate(kept)}
    owner: dict[int, int] = {}  # parsed stroke -> its known character
    labels: list[int | None] = []
    for n, (indices, label) in enumerate(known):
        labels.append(None if label is None else class_of(label, classes))
        for request in indices:
            if request in parsed:
                if parsed[request] in owner:
                    raise ValueError(f"stroke {request} is in two known characters")
                owner[parsed[request]] = n
    groups: list[list[int]] = []
    fixed: dict[int, int | None] = {}
    placed: dict[int, int] = {}  # known character -> its primitive
    for i in range(len(kept)):
        n = owner.get(i)
        if n is None:
            groups.append([i])
        elif n in placed:
            groups[placed[n]].append(i)
        else:
            placed[n] = len(groups)
            fixed[len(groups)] = labels[n]
            groups.append([i])
    return groups, fixed
