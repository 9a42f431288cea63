"""For the browser tests: real writers' strokes drawn on the page's pad, by mouse or by finger."""

from __future__ import annotations

import json
from typing import Callable

from playwright.sync_api import Page, Request, Response

from emnist_draw.reader import StringReader
from emnist_draw.unipen import Written, load_written

MAX_POINTS_DRAWN = 40  # per stroke: enough for the shape, few enough to draw quickly


def thinned(stroke: list) -> list:
    """At most about MAX_POINTS_DRAWN points of a stroke, its last one kept."""
    step = max(1, len(stroke) // MAX_POINTS_DRAWN)
    return stroke[::step] + ([stroke[-1]] if (len(stroke) - 1) % step else [])


def pad_points(page: Page, strokes: list, fill: float = 0.6) -> list[list[tuple[float, float]]]:
    """The strokes scaled into the middle of the pad (at most `fill` of its width and of its
    height), in page coordinates."""
    box = page.get_by_test_id("pad").bounding_box()
    xs = [x for s in strokes for x, _ in s]
    ys = [y for s in strokes for _, y in s]
    scale = min(fill * box["width"] / max(max(xs) - min(xs), 1),
                fill * box["height"] / max(max(ys) - min(ys), 1))
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [[(box["x"] + box["width"] / 2 + (x - cx) * scale,
              box["y"] + box["height"] / 2 + (y - cy) * scale) for x, y in thinned(stroke)]
            for stroke in strokes]


def strokes_sent(request: Request) -> int:
    return len(json.loads(request.post_data)["strokes"])


def reads(path: str, total: int) -> Callable[[Request | Response], bool]:
    """The request (or its response) the live reading sends to `path` once the pad holds
    `total` strokes."""
    def matches(r: Request | Response) -> bool:
        request = r.request if isinstance(r, Response) else r
        return (request.url.endswith(path) and request.method == "POST"
                and strokes_sent(request) == total)
    return matches


def mouse_draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    for stroke in strokes:
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*point)
        page.mouse.up()


def touch_draw(cdp, strokes: list[list[tuple[float, float]]]) -> None:
    """A finger draws: CDP touch events, which Chromium turns into pointer events of type touch."""
    for stroke in strokes:
        points = [{"x": x, "y": y} for x, y in stroke]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points[:1]})
        for point in points[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def watch(page: Page, server_url: str) -> tuple[list[str], list[str]]:
    """Every JavaScript error and console error on the page, and every request that would leave
    the machine (aborted): the two lists stay empty on a page that works offline."""
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.context.route(lambda url: not url.startswith(server_url),
                       lambda route: (elsewhere.append(route.request.url), route.abort()))
    return errors, elsewhere


def clearly_read_strings(reader: StringReader) -> dict[str, Written]:
    """A number of 8+ digits and a word of 4-6 letters, printed by the measure writers, that
    the server's own reader reads right, as written and as thinned for drawing."""
    chosen: dict[str, Written] = {}
    wanted = {"number": lambda s: len(s) >= 8, "word": lambda s: 4 <= len(s) <= 6}
    for w in load_written("measure"):
        kind = w.kind
        if kind in chosen or kind not in wanted or not w.printed or " " in w.text:
            continue
        if not wanted[kind](w.text):
            continue
        if all(reader.read_strokes(s).text == w.text
               for s in (w.strokes, [thinned(stroke) for stroke in w.strokes])):
            chosen[kind] = w
            if len(chosen) == len(wanted):
                break
    assert set(chosen) == set(wanted), f"UNIPEN strings read right: only {sorted(chosen)}"
    return chosen
