"""The page in a real browser (Debian's Chromium through Playwright), against the real server.

Characters are drawn with real pointer events along the strokes of UNIPEN writers.
"""

from __future__ import annotations

import json
import re
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


# ---------------------------------------------------------------- issue 15: what a first user hit

def test_escape_in_the_charset_select_does_not_clear(page: Page, chars: dict[str, Sample]):
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    page.get_by_test_id("charset").focus()
    page.keyboard.press("Escape")  # the select's: it closes its list, if open
    page.keyboard.press("Delete")
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    expect(page.get_by_test_id("undo")).to_be_enabled()  # the strokes are still there
    page.locator("body").focus()
    page.get_by_test_id("predict").focus()
    page.keyboard.press("Escape")  # elsewhere Esc still clears
    expect(page.get_by_test_id("prediction")).to_have_text("")


def test_the_picker_is_one_tab_stop_moved_by_arrows(browser: Browser, server_url: str,
                                                    chars: dict[str, Sample]):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server_url)
    page = context.new_page()
    page.goto("/")
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    page.get_by_test_id("feedback").focus()
    page.keyboard.press("Enter")
    picker = page.get_by_test_id("feedback-picker")
    expect(picker.get_by_role("grid")).to_be_visible()
    buttons = picker.get_by_role("button")
    # All of it on a 1280x800 screen, its last row included.
    for button in (buttons.first, buttons.last):
        box = button.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 800, box
    focused = lambda: page.evaluate("document.activeElement.dataset.label")  # noqa: E731
    assert focused() == "0"
    assert picker.locator('button[tabindex="0"]').count() == 1  # one Tab stop
    page.keyboard.press("ArrowRight")
    assert focused() == "1"
    page.keyboard.press("ArrowDown")  # rows of 8: 1 -> 9
    assert focused() == "9"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # 8, then 7 is what the model said: stepped over
    assert focused() == "6"
    page.keyboard.press("End")
    assert focused() == "6"  # the row's end is 7, what the model said: the one before it
    page.keyboard.press("Control+End")
    assert focused() == "t"
    page.keyboard.press("Control+Home")
    assert focused() == "0"
    assert picker.locator('button[tabindex="0"]').count() == 1
    page.keyboard.press("Tab")  # out of the grid in one press
    assert page.evaluate("!document.activeElement.closest('[data-testid=feedback-picker]')")
    page.keyboard.press("Shift+Tab")  # back to where it was left
    assert focused() == "0"
    page.keyboard.press("ArrowRight")
    with page.expect_request(lambda r: r.url.endswith("/api/feedback")) as request:
        page.keyboard.press("Enter")  # Enter picks
    assert json.loads(request.value.post_data)["label"] == "1"
    expect(page.get_by_test_id("feedback-status")).to_have_text("Thanks — saved")
    context.close()


def test_the_pad_is_no_tab_stop(page: Page):
    # It takes only a pointer; what a key could do there, the buttons and shortcuts do.
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.dataset.testid || document.activeElement.id"))
    assert "pad" not in seen, seen
    assert seen[:4] == ["mode-one", "mode-several", "lang", "predict"], seen


def test_percentages_are_written_the_language_s_way(page: Page, chars: dict[str, Sample]):
    accuracy = page.request.get("/api/model").json()["metrics"]["balanced_accuracy"]
    english = f"{accuracy * 100:.1f}%"
    expect(page.locator("#model-info")).to_contain_text(english)
    page.locator("#lang").click()
    russian = f"{accuracy * 100:.1f}".replace(".", ",")
    expect(page.locator("#model-info")).to_contain_text(russian)
    assert english not in page.locator("#model-info").text_content()
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("topk").locator("li")).to_have_count(5)
    for shown in page.get_by_test_id("topk").locator(".pct").all_text_contents():
        assert "," in shown and "." not in shown, shown
    expect(page.get_by_test_id("status")).to_contain_text("уверенность")
    assert "." not in page.get_by_test_id("status").text_content()


def test_predict_on_a_drawing_already_read_says_it_read_again(page: Page, chars: dict[str, Sample]):
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    status = page.get_by_test_id("status")
    expect(status).not_to_contain_text("Read again")
    with page.expect_response(lambda r: r.url.endswith("/api/predict")):
        page.get_by_test_id("predict").click()
    expect(status).to_contain_text("Read again: 7")
    expect(status).to_have_class("status flash")


# ---------------------------------------------------------------- issue 15: how sure the reading is

def answer_with(status: str, **fields):
    """A route that answers /api/predict with the real answer, its status replaced; readings
    restricted to a character set pass through untouched."""
    def handle(route):
        if json.loads(route.request.post_data)["charset"] != "all":
            route.continue_()
            return
        answer = route.fetch().json()
        route.fulfill(json={**answer, "status": status, **fields})
    return handle


def test_ambiguous_offers_the_character_set(page: Page, chars: dict[str, Sample]):
    page.route("**/api/predict", answer_with("ambiguous", ambiguous_with=["7", "T"]))
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("status")).to_have_text("7 or T?")
    expect(page.get_by_test_id("prediction")).to_have_class("unsure")
    with page.expect_request(lambda r: r.url.endswith("/api/predict")) as request:
        page.get_by_test_id("use-digits").click()  # one tap: digits only, read again
    assert json.loads(request.value.post_data)["charset"] == "digits"
    expect(page.get_by_test_id("status-actions")).to_be_hidden()
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    # For that character only: the select and the remembered set stay as they were.
    expect(page.get_by_test_id("charset")).to_have_value("all")
    with page.expect_request(reads("/api/predict", len(chars["7"].strokes) + 1)) as request:
        box = page.get_by_test_id("pad").bounding_box()
        mouse_draw(page, [[(box["x"] + 20, box["y"] + 20), (box["x"] + 30, box["y"] + 22)]])
    assert json.loads(request.value.post_data)["charset"] == "digits"  # the same character still
    page.get_by_test_id("clear").click()
    page.unroute("**/api/predict")
    assert draw_sample(page, chars["A"])["charset"] == "all"  # the next character: all again
    expect(page.get_by_test_id("prediction")).to_have_text("A")
    page.reload()
    expect(page.get_by_test_id("charset")).to_have_value("all")


def test_ambiguous_between_letters_offers_no_character_set(page: Page, chars: dict[str, Sample]):
    page.route("**/api/predict", answer_with("ambiguous", ambiguous_with=["O / o", "Q"]))
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("status")).to_have_text("O or Q?")
    expect(page.get_by_test_id("status-actions")).to_be_hidden()


def test_unsure_shows_the_alternatives(page: Page, chars: dict[str, Sample]):
    page.route("**/api/predict", answer_with("unsure"))
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("status")).to_contain_text("Not sure: maybe 7, ")
    expect(page.get_by_test_id("topk").locator("li")).to_have_count(5)
    expect(page.get_by_test_id("prediction")).to_have_class("unsure")
    page.locator("#lang").click()
    expect(page.get_by_test_id("status")).to_contain_text("Не уверена")


def test_not_a_character_shows_no_letter(page: Page, chars: dict[str, Sample]):
    page.route("**/api/predict", answer_with("not_a_character"))
    draw_sample(page, chars["7"])
    expect(page.get_by_test_id("status")).to_have_text("That does not look like a character")
    expect(page.get_by_test_id("prediction")).to_have_text("")
    expect(page.get_by_test_id("topk").locator("li")).to_have_count(0)
    expect(page.get_by_test_id("feedback")).to_be_hidden()  # a dot is no character to correct


def test_several_characters_switches_the_mode(page: Page, chars: dict[str, Sample]):
    page.route("**/api/predict", answer_with("several_characters"))
    n = len(chars["7"].strokes)
    draw_sample(page, chars["7"])
    # The status says what it saw; the button says what to do (not the same words twice).
    expect(page.get_by_test_id("status")).to_have_text("This looks like several characters")
    expect(page.get_by_test_id("switch-several")).to_have_text("Read as several characters")
    expect(page.get_by_test_id("prediction")).to_have_text("")
    expect(page.get_by_test_id("feedback")).to_be_hidden()  # no one letter to call wrong
    with page.expect_response(reads("/api/read", n)) as response:
        page.get_by_test_id("switch-several").click()  # the same ink, read as a string
    expect(page.get_by_test_id("mode-several")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("text")).to_have_text(response.value.json()["text"])
    expect(page.get_by_test_id("char")).to_have_count(len(response.value.json()["characters"]))


def test_a_dot_is_not_read_as_a_confident_letter(page: Page):
    box = page.get_by_test_id("pad").bounding_box()
    with page.expect_response(lambda r: r.url.endswith("/api/predict")) as response:
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    answer = response.value.json()
    assert answer["status"] != "ok", answer
    prediction = page.get_by_test_id("prediction")
    # No letter at all, or one shown as unsure, with the status line saying why.
    assert prediction.text_content() == "" or "unsure" in prediction.get_attribute("class")
    expect(page.get_by_test_id("status")).not_to_have_text(re.compile(r"\d\s?% sure"))
