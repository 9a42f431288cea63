"""The page in a real browser (Debian's Chromium through Playwright), against the real server.

Characters are drawn with real pointer events along the strokes of UNIPEN writers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from emnist_draw.recognizer import Recognizer
from emnist_draw.unipen import Sample

from app_helpers import clearly_read_unipen, live_server
from browser_helpers import mouse_draw, pad_points, reads, strokes_sent, touch_draw

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    # The corrections the tests send go to a throwaway SQLite store, not ./data.
    data = tmp_path_factory.mktemp("data")
    with live_server("--data-dir", str(data), env={"DATABASE_URL": ""}) as url:
        yield url


@pytest.fixture(scope="module")
def chars() -> dict[str, Sample]:
    return {s.char: s for s in clearly_read_unipen(Recognizer(), "7AM3")}


@pytest.fixture
def page(browser: Browser, server_url: str):
    # A new context per test: its own localStorage. Scale 2: a high-DPI screen.
    context = browser.new_context(viewport={"width": 1000, "height": 760}, device_scale_factor=2,
                                  base_url=server_url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def draw(page: Page, strokes: list[list[tuple[float, float]]], strokes_before: int = 0) -> dict:
    """Draw with the mouse; returns the request the live reading sent after the last stroke."""
    with page.expect_request(reads("/api/predict", strokes_before + len(strokes))) as request:
        mouse_draw(page, strokes)
    return json.loads(request.value.post_data)


def draw_sample(page: Page, sample: Sample, strokes_before: int = 0) -> dict:
    return draw(page, pad_points(page, sample.strokes), strokes_before)


def topk_labels(page: Page) -> list[str]:
    return page.get_by_test_id("topk").locator("li").evaluate_all(
        "items => items.map(li => li.dataset.label)")


def test_reads_what_is_drawn(page: Page, chars: dict[str, Sample]):
    # High DPI: the pad's bitmap has two device pixels per CSS pixel.
    size = page.get_by_test_id("pad").evaluate("c => [c.width, c.getBoundingClientRect().width]")
    assert size[0] == round(2 * size[1])
    for char, sample in chars.items():
        sent = draw_sample(page, sample)
        # What was sent is strokes in CSS pixels with the pad's size: the server makes the pixels.
        assert sent["canvas"]["width"] == pytest.approx(size[1], abs=0.1)
        assert sent["return_input"] is True
        expect(page.get_by_test_id("prediction")).to_have_text(char)
        expect(page.get_by_test_id("topk").locator("li")).to_have_count(5)
        assert topk_labels(page)[0] == char
        expect(page.get_by_test_id("input-preview")).to_be_visible()
        # The preview shows the model's input: white ink on black, so some pixel is bright.
        brightest = page.get_by_test_id("input-preview").evaluate(
            "c => Math.max(...c.getContext('2d').getImageData(0, 0, 28, 28).data)")
        assert brightest == 255
        if char == "M":  # EMNIST-balanced has one class for M and m: the page says both
            expect(page.locator("#prediction-alt")).to_have_text("/ m")
            expect(page.get_by_test_id("topk").locator("li").first).to_contain_text("M / m")
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), scale="css")  # 1000x760, a small file
        page.get_by_test_id("clear").click()


def test_clear_escape_and_delete_empty_the_pad(page: Page, chars: dict[str, Sample]):
    empty = page.get_by_test_id("status")
    for clear in (lambda: page.get_by_test_id("clear").click(),
                  lambda: page.keyboard.press("Escape"),
                  lambda: page.keyboard.press("Delete")):
        draw_sample(page, chars["7"])
        expect(page.get_by_test_id("prediction")).to_have_text("7")
        clear()
        expect(page.get_by_test_id("prediction")).to_have_text("")
        expect(page.get_by_test_id("topk").locator("li")).to_have_count(0)
        expect(page.get_by_test_id("input-preview")).to_be_hidden()
        expect(empty).to_contain_text("empty")
        assert page.get_by_test_id("pad").evaluate(
            "c => !c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v)")


def test_an_empty_pad_is_never_recognised(page: Page):
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/api/predict" in r.url else None)
    page.get_by_test_id("predict").click()
    expect(page.get_by_test_id("status")).to_contain_text("empty")
    expect(page.get_by_test_id("prediction")).to_have_text("")
    assert not requests


def test_undo_removes_the_last_stroke(page: Page, chars: dict[str, Sample]):
    seven, n = chars["7"], len(chars["7"].strokes)
    draw_sample(page, seven)
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    box = page.get_by_test_id("pad").bounding_box()
    bar = [(box["x"] + 0.1 * box["width"], box["y"] + y * box["height"]) for y in (0.1, 0.5, 0.9)]
    for undo in (lambda: page.get_by_test_id("undo").click(),
                 lambda: page.keyboard.press("Control+z")):
        assert len(draw(page, [bar], n)["strokes"]) == n + 1
        with page.expect_request(lambda r: r.url.endswith("/api/predict")) as request:
            undo()
        assert strokes_sent(request.value) == n  # the bar is gone, the 7 stays
        expect(page.get_by_test_id("prediction")).to_have_text("7")
    for _ in range(n):
        page.get_by_test_id("undo").click()
    expect(page.get_by_test_id("status")).to_contain_text("empty")
    expect(page.get_by_test_id("prediction")).to_have_text("")
    expect(page.get_by_test_id("undo")).to_be_disabled()


def test_charset_restricts_and_is_remembered(page: Page, chars: dict[str, Sample]):
    page.get_by_test_id("charset").select_option("digits")
    sent = draw_sample(page, chars["A"])
    assert sent["charset"] == "digits"
    expect(page.get_by_test_id("topk").locator("li")).to_have_count(5)
    assert all(label.isdigit() for label in topk_labels(page))
    assert page.get_by_test_id("prediction").text_content().isdigit()
    page.reload()
    expect(page.get_by_test_id("charset")).to_have_value("digits")
    page.get_by_test_id("charset").select_option("letters")
    page.reload()
    expect(page.get_by_test_id("charset")).to_have_value("letters")
    draw_sample(page, chars["A"])
    expect(page.get_by_test_id("prediction")).to_have_text("A")


def test_server_errors_are_shown(page: Page, chars: dict[str, Sample]):
    page.route("**/api/predict", lambda route: route.fulfill(
        status=503, content_type="application/json", body='{"detail": "model is resting"}'))
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("status")).to_contain_text("model is resting")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_test_id("prediction")).to_have_text("")


def test_a_correction_goes_with_the_ink_that_was_read(page: Page, chars: dict[str, Sample]):
    stats = lambda: page.request.get("/api/feedback/stats").json()  # noqa: E731
    before = stats()
    expect(page.get_by_test_id("feedback")).to_be_hidden()  # nothing read, nothing to correct
    sent = draw_sample(page, chars["7"])
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    picker = page.get_by_test_id("feedback-picker")
    expect(picker).to_be_hidden()
    expect(page.get_by_test_id("feedback")).to_have_text("Wrong? Tell us what it was")
    page.get_by_test_id("feedback").click()
    expect(picker).to_be_visible()
    expect(picker.get_by_role("button")).to_have_count(47)
    expect(picker.locator('button[data-label="C"]')).to_have_text("C / c")  # merged classes
    expect(picker.locator('button[data-label="7"]')).to_be_disabled()  # what the model said

    # The server's refusal is shown, and the picker stays for another try.
    page.route("**/api/feedback", lambda route: route.fulfill(
        status=422, content_type="application/json", body='{"detail": "label: not today"}'))
    picker.locator('button[data-label="T"]').click()
    expect(page.get_by_test_id("feedback-status")).to_contain_text("label: not today")
    page.unroute("**/api/feedback")

    with page.expect_request(lambda r: r.url.endswith("/api/feedback")) as request:
        picker.locator('button[data-label="T"]').click()
    posted = json.loads(request.value.post_data)
    assert (posted["label"], posted["predicted"]) == ("T", "7")
    assert (posted["strokes"], posted["canvas"]) == (sent["strokes"], sent["canvas"])  # same ink
    expect(page.get_by_test_id("feedback-status")).to_have_text("Thanks — saved")
    expect(picker).to_be_hidden()
    after = stats()
    assert after["count"] == before["count"] + 1
    assert after["labels"]["T"] == before["labels"].get("T", 0) + 1
    page.locator("#lang").click()
    expect(page.get_by_test_id("feedback-status")).to_have_text("Спасибо — сохранено")
    page.get_by_test_id("clear").click()  # a new drawing, a new question
    expect(page.get_by_test_id("feedback")).to_be_hidden()


def test_phone_touch_drawing(browser: Browser, server_url: str, chars: dict[str, Sample]):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True, base_url=server_url)
    page = context.new_page()
    page.goto("/")
    pad = page.get_by_test_id("pad")
    assert pad.evaluate("c => getComputedStyle(c).touchAction") == "none"
    box = pad.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # fits the phone's width
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # A finger: CDP touch events, which Chromium turns into pointer events of type "touch".
    cdp = context.new_cdp_session(page)
    with page.expect_request(lambda r: r.url.endswith("/api/predict")):
        touch_draw(cdp, pad_points(page, chars["7"].strokes))
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    assert page.evaluate("window.scrollY") == 0  # drawing did not scroll the page
    context.close()


def test_landscape_phone_fits_pad_and_buttons(browser: Browser, server_url: str,
                                             chars: dict[str, Sample]):
    # A phone held sideways: the pad and its buttons must be on screen without scrolling
    # (the desktop layout put them at y = 514 of a 390-pixel-high screen).
    width, height = 844, 390
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=3, is_mobile=True, has_touch=True,
                                  base_url=server_url)
    page = context.new_page()
    page.goto("/")
    for test_id in ("pad", "predict", "undo", "clear"):
        box = page.get_by_test_id(test_id).bounding_box()
        assert box["x"] >= 0 and box["y"] >= 0, (test_id, box)
        assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (test_id, box)
    pad = page.get_by_test_id("pad").bounding_box()
    assert pad["height"] >= 250 and abs(pad["width"] - pad["height"]) <= 1  # square, and large
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # A finger (CDP touch events, as above) draws a 7, which is read.
    cdp = context.new_cdp_session(page)
    with page.expect_request(reads("/api/predict", len(chars["7"].strokes))):
        touch_draw(cdp, pad_points(page, chars["7"].strokes))
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    assert page.evaluate("window.scrollY") == 0  # drawing did not scroll the page
    page.get_by_test_id("clear").tap()  # the buttons answer a finger too
    expect(page.get_by_test_id("prediction")).to_have_text("")
    context.close()
