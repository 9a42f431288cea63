"""Scratch-out: a zigzag over real writers' characters erases them; no real character is taken
for one; `POST /api/read` answers what was erased and reads the rest, on a real server."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from emnist_draw.gestures import REVERSALS, is_zigzag, scratched, shape
from emnist_draw.recognizer import Recognizer
from emnist_draw.unipen import compose, load_samples

from app_helpers import live_server
from test_reader import written


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer()


def zigzag(ink, passes: int, seed: int = 0, vertical: bool = False, slant: float = 0.0,
           overshoot: float = 0.1) -> list:
    """A pen's zigzag over the ink's box: `passes` strokes across it (left-right, or up-down
    when vertical), working down (or along) it, with a hand's jitter, a point every ~2% of its
    size; `slant` tilts the passes (a share of the box's size)."""
    points = np.concatenate([np.asarray(s, float) for s in ink])
    low, high = points.min(0), points.max(0)
    size = high - low
    low, high = low - overshoot * size, high + overshoot * size
    rng = np.random.default_rng(seed)
    a, b = (1, 0) if vertical else (0, 1)  # a: the back-and-forth axis, b: the way it works along
    corners = []
    for k in range(passes + 1):
        corner = np.empty(2)
        corner[a] = low[a] if k % 2 == 0 else high[a]
        corner[b] = low[b] + (high[b] - low[b]) * k / passes + slant * size.max() * (k % 2)
        corners.append(corner)
    path = []
    for start, end in zip(corners, corners[1:]):
        n = max(int(np.linalg.norm(end - start) / (0.02 * size.max())), 2)
        path += [start + (end - start) * t for t in np.linspace(0, 1, n, endpoint=False)]
    path.append(corners[-1])
    path = np.array(path) + rng.normal(0, 0.012 * size.max(), (len(path), 2))
    return path.round(1).tolist()


@pytest.mark.parametrize("passes, vertical, slant", [
    (6, False, 0.0), (8, False, 0.0), (12, False, 0.0), (6, True, 0.0), (7, False, 0.3),
    (9, True, -0.2),
])
def test_a_scratch_over_a_character_erases_it(recognizer, passes, vertical, slant):
    # The C (a zigzag over it was read "E"); E and 8 turn back themselves.
    for n, c in enumerate(written(recognizer, "CE8")):
        scratch = zigzag(c.strokes, passes, seed=n, vertical=vertical, slant=slant)
        assert scratched([*c.strokes, scratch]) == list(range(len(c.strokes) + 1)), c.char


def test_a_looping_scribble_over_a_character_erases_it(recognizer):
    c = written(recognizer, "C")[0]
    points = np.concatenate([np.asarray(s, float) for s in c.strokes])
    centre, radius = points.mean(0), np.ptp(points, 0) * 0.55
    t = np.linspace(0, 3 * 2 * np.pi, 90)  # three loops, moving right
    drift = np.linspace(-0.5, 0.5, len(t))
    loops = np.c_[centre[0] + radius[0] * (0.5 * np.cos(t) + drift), centre[1] + radius[1] * np.sin(t)]
    assert scratched([*c.strokes, loops.tolist()]) == list(range(len(c.strokes) + 1))


def test_what_is_no_scratch(recognizer):
    c = written(recognizer, "C")[0]
    # A zigzag of too few passes is a W or an M; one over nothing is ink; a scratch before the ink
    # it covers erases nothing (a scratch acts on what was written before it).
    assert scratched([*c.strokes, zigzag(c.strokes, 3)]) == []
    far = [[[x + 1000, y] for x, y in s] for s in c.strokes]
    assert scratched([*c.strokes, zigzag(far, 8)]) == []
    assert scratched([zigzag(c.strokes, 8), *c.strokes]) == []
    assert scratched([*c.strokes, zigzag(c.strokes, 8)], keep={len(c.strokes)}) == []
    assert shape(np.asarray(zigzag(c.strokes, 8))).reversals >= REVERSALS


def test_no_real_character_is_taken_for_a_scratch():
    """Every isolated character of UNIPEN's tune writers (76,114, any quality): none is erased.
    On the measure writers (never tuned on) 1 of 24,994 is (an E): bench numbers in the report."""
    samples = load_samples("tune", "all")
    erased = [s.char for s in samples if scratched(s.strokes)]
    assert len(samples) > 70_000 and erased == []
    zigzags = sum(is_zigzag(shape(np.asarray(st, float).reshape(-1, 2)))
                  for s in samples[::10] for st in s.strokes)
    assert zigzags < 0.002 * len(samples[::10])  # zigzag-shaped strokes alone are rare too


def test_a_scratch_erases_only_what_is_under_it(recognizer):
    strokes, owners = compose(written(recognizer, "7351"))
    scratch = zigzag([strokes[k] for k in owners[1]], 8)
    assert scratched([*strokes, scratch]) == sorted(owners[1] + [len(strokes)])
    # Two scratches, one after the other: each erases what is under it.
    second = zigzag([strokes[k] for k in owners[3]], 7, seed=3)
    both = scratched([*strokes, scratch, second])
    assert both == sorted(owners[1] + owners[3] + [len(strokes), len(strokes) + 1])


# ---------------------------------------------------------------- the API

@pytest.fixture(scope="module")
def client():
    with live_server() as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_api_answers_what_was_erased_and_reads_the_rest(client, recognizer):
    strokes, owners = compose(written(recognizer, "7351"))
    scratch = zigzag([strokes[k] for k in owners[1]], 8)
    body = {"strokes": [*strokes, scratch], "charset": "digits"}
    r = client.post("/api/read", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["erased"] == sorted(owners[1] + [len(strokes)])
    assert answer["text"].replace(" ", "") == "751"  # the gap it leaves may read as a space
    assert [c["strokes"] for c in answer["characters"]] == [owners[0], owners[2], owners[3]]
    # Without the gesture, the zigzag is ink like any other.
    kept = client.post("/api/read", json={**body, "scratch_out": False}).json()
    assert kept["erased"] == [] and kept["text"].replace(" ", "") != "751"
    plain = client.post("/api/read", json={"strokes": strokes}).json()
    assert plain["erased"] == [] and plain["text"] == "7351"


def test_api_a_scratch_over_a_confirmed_character_and_over_everything(client, recognizer):
    strokes, owners = compose(written(recognizer, "7351"))
    known = [{"strokes": owners[1], "label": "3"}, {"strokes": owners[2], "label": "5"}]
    scratch = zigzag([strokes[k] for k in owners[1]], 8)
    answer = client.post("/api/read", json={"strokes": [*strokes, scratch], "known": known}).json()
    assert answer["text"].replace(" ", "") == "751"  # the 3 is gone, though it was confirmed
    assert [c["known"] for c in answer["characters"]] == [False, True, False]
    everything = zigzag(strokes, 10)
    answer = client.post("/api/read", json={"strokes": [*strokes, everything]}).json()
    assert answer["erased"] == list(range(len(strokes) + 1))
    assert answer["text"] == "" and answer["characters"] == [] and answer["lines"] == []
