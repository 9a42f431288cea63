"""Writing on the page, second round (issue 23), in a real browser (Debian's Chromium) against the
real server: corrections that stay, edits by tap, hints, and the small things a first user hit.
UNIPEN writers' ink, drawn stroke by stroke with a mouse or a finger.

Every test also checks that the page logged no error and sent nothing off this machine.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser, Page, expect

from emnist_draw.reader import StringReader
from emnist_draw.recognizer import Recognizer
from emnist_draw.unipen import Sample, Written

from app_helpers import clearly_read_unipen, live_server
from browser_helpers import (clearly_read_strings, mouse_draw, pad_points, reads, touch_draw,
                             watch)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PHONE_SIDEWAYS = {"width": 844, "height": 390}
FILL = 0.85


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    # The corrections the tests send go to a throwaway SQLite store, not ./data.
    with live_server("--data-dir", str(tmp_path_factory.mktemp("data")),
                     env={"DATABASE_URL": ""}) as url:
        yield url


@pytest.fixture(scope="module")
def written() -> dict[str, Written]:
    return clearly_read_strings(StringReader(Recognizer()))


@pytest.fixture(scope="module")
def seven() -> Sample:
    return clearly_read_unipen(Recognizer(), "7")[0]


class Opened:
    """A page in its own context, its errors and off-machine requests recorded."""

    def __init__(self, browser: Browser, server_url: str, viewport: dict, touch: bool = False):
        self.context = browser.new_context(viewport=viewport, device_scale_factor=2,
                                           is_mobile=touch, has_touch=touch, base_url=server_url)
        self.page = self.context.new_page()
        self.errors, self.elsewhere = watch(self.page, server_url)
        self.page.goto("/")
        self.cdp = self.context.new_cdp_session(self.page) if touch else None

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"errors on the page: {self.errors}"
        assert not self.elsewhere, f"requests off this machine: {self.elsewhere}"


@pytest.fixture
def opened(browser: Browser, server_url: str):
    made: list[Opened] = []

    def open_(viewport: dict = DESKTOP, touch: bool = False, several: bool = True) -> Opened:
        o = Opened(browser, server_url, viewport, touch)
        made.append(o)
        if several:
            mode = o.page.get_by_test_id("mode-several")
            mode.tap() if touch else mode.click()
        return o
    yield open_
    for o in made:
        o.close()


def write(o: Opened, w: Written, strokes_before: int = 0) -> dict:
    """The string stroke by stroke; /api/read's answer to the last stroke."""
    strokes = pad_points(o.page, w.strokes, FILL)
    with o.page.expect_response(reads("/api/read", strokes_before + len(strokes))) as response:
        if o.cdp is None:
            mouse_draw(o.page, strokes)
        else:
            touch_draw(o.cdp, strokes)
    return response.value.json()


def chars(page: Page):
    return page.get_by_test_id("char")


def tap(o: Opened, locator) -> None:
    locator.tap() if o.cdp is not None else locator.click()


def in_view(box: dict, viewport: dict) -> bool:
    return (box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= viewport["width"]
            and box["y"] + box["height"] <= viewport["height"])


# ---------------------------------------------------------------- the small items (5-7)

def test_one_character_puts_a_string_aside_and_undo_brings_it_back(opened, written):
    o = opened()
    page, number = o.page, written["number"]
    write(o, number)
    page.get_by_test_id("mode-one").click()
    expect(page.get_by_test_id("status")).to_have_text("The string is put aside: Undo brings it back")
    expect(page.get_by_test_id("undo")).to_be_enabled()
    with page.expect_response(reads("/api/read", len(number.strokes))) as response:
        page.get_by_test_id("bring-back").click()
    assert response.value.json()["text"] == number.text
    expect(page.get_by_test_id("mode-several")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("text")).to_have_text(number.text)
    # The same with Undo (Ctrl+Z); and the strokes stay undoable one by one afterwards.
    page.get_by_test_id("mode-one").click()
    with page.expect_response(reads("/api/read", len(number.strokes))):
        page.keyboard.press("Control+z")
    expect(page.get_by_test_id("text")).to_have_text(number.text)
    with page.expect_response(reads("/api/read", len(number.strokes) - 1)):
        page.get_by_test_id("undo").click()


def test_the_main_button_says_read_for_a_string(opened):
    o = opened()
    predict = o.page.get_by_test_id("predict")
    expect(predict).to_have_text("Read")
    o.page.locator("#lang").click()
    expect(predict).to_have_text("Прочитать")
    o.page.get_by_test_id("mode-one").click()
    expect(predict).to_have_text("Распознать")
    o.page.locator("#lang").click()
    expect(predict).to_have_text("Predict")


def unclipped(buttons) -> list[str]:
    """The picker's buttons whose text is wider than the button."""
    return buttons.evaluate_all(
        "bs => bs.filter(b => b.scrollWidth > b.clientWidth + 0.5).map(b => b.textContent)")


def test_the_picker_shows_every_class_whole_on_a_phone(opened, seven, written):
    o = opened(PHONE, touch=True, several=False)
    page = o.page
    with page.expect_response(lambda r: r.url.endswith("/api/predict")):
        touch_draw(o.cdp, pad_points(page, seven.strokes))
    page.get_by_test_id("feedback").tap()
    buttons = page.get_by_test_id("feedback-picker").get_by_role("button")
    expect(buttons).to_have_count(47)
    expect(page.get_by_test_id("feedback-picker").locator('[data-label="M"]')).to_have_text("M / m")
    assert unclipped(buttons) == []
    # The character picker of a string, on the same phone.
    page.get_by_test_id("clear").tap()
    page.get_by_test_id("mode-several").tap()
    write(o, written["number"])
    chars(page).first.tap()
    page.get_by_test_id("char-other").tap()
    buttons = page.get_by_test_id("char-picker").get_by_role("button")
    expect(buttons).to_have_count(47)
    assert unclipped(buttons) == []


def test_sideways_a_tapped_character_keeps_the_pad_on_screen(opened, written):
    o = opened(PHONE_SIDEWAYS, touch=True)
    page = o.page
    write(o, written["number"])
    chars(page).nth(2).tap()
    expect(page.get_by_test_id("char-panel")).to_be_visible()
    assert page.evaluate("window.scrollY") == 0
    assert in_view(page.get_by_test_id("pad").bounding_box(), PHONE_SIDEWAYS)
    first = page.locator("[data-testid=alternative]:enabled").first
    assert in_view(first.bounding_box(), PHONE_SIDEWAYS)
    with page.expect_response(lambda r: r.url.endswith("/api/feedback/read")):
        first.tap()
    expect(page.get_by_test_id("char-panel")).to_be_hidden()
    assert page.evaluate("window.scrollY") == 0
