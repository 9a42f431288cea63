"""The page's "Several characters" mode in a real browser (Debian's Chromium), against the real
server: numbers and words that UNIPEN writers wrote, drawn stroke by stroke, read as strings.

Every test also checks that the page logged no error and sent nothing off this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from emnist_draw import store
from emnist_draw.data import BALANCED_CLASSES, load_pair
from emnist_draw.reader import StringReader
from emnist_draw.recognizer import Recognizer
from emnist_draw.unipen import Written

from app_helpers import live_server, serve_command
from browser_helpers import (clearly_read_strings, mouse_draw, pad_points, reads, touch_draw,
                             watch)

DESKTOP = {"width": 1000, "height": 760}
PHONE = {"width": 390, "height": 844}
PHONE_SIDEWAYS = {"width": 844, "height": 390}
FILL = 0.85  # of the pad's width (and at most of its height) the string is drawn across


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def server_url(data_dir: Path):
    # The corrections the tests send go to a throwaway SQLite store, not ./data.
    with live_server("--data-dir", str(data_dir), env={"DATABASE_URL": ""}) as url:
        yield url


@pytest.fixture(scope="module")
def written() -> dict[str, Written]:
    return clearly_read_strings(StringReader(Recognizer()))


def open_page(browser: Browser, server_url: str, viewport: dict, touch: bool = False):
    context = browser.new_context(viewport=viewport, device_scale_factor=3 if touch else 2,
                                  is_mobile=touch, has_touch=touch, base_url=server_url)
    page = context.new_page()
    errors, elsewhere = watch(page, server_url)
    page.goto("/")
    return page, errors, elsewhere


@pytest.fixture
def page(browser: Browser, server_url: str):
    page, errors, elsewhere = open_page(browser, server_url, DESKTOP)
    page.get_by_test_id("mode-several").click()
    yield page
    page.context.close()
    assert not errors, f"errors on the page: {errors}"
    assert not elsewhere, f"requests off this machine: {elsewhere}"


def write(page: Page, w: Written, strokes_before: int = 0, cdp=None) -> dict:
    """Write the string stroke by stroke (mouse, or a finger with cdp); returns /api/read's
    answer to the last stroke."""
    strokes = pad_points(page, w.strokes, FILL)
    with page.expect_response(reads("/api/read", strokes_before + len(strokes))) as response:
        if cdp is None:
            mouse_draw(page, strokes)
        else:
            touch_draw(cdp, strokes)
    return response.value.json()


def chars(page: Page):
    return page.get_by_test_id("char")


def assert_read(page: Page, text: str) -> None:
    expect(page.get_by_test_id("text")).to_have_text(text)
    expect(chars(page)).to_have_count(len(text))  # one box per character
    assert chars(page).all_text_contents() == list(text)


def test_mode_is_a_toggle_and_is_remembered(page: Page):
    expect(page.get_by_test_id("mode-several")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("mode-one")).to_have_attribute("aria-pressed", "false")
    page.reload()
    expect(page.get_by_test_id("mode-several")).to_have_attribute("aria-pressed", "true")
    box = page.get_by_test_id("pad").bounding_box()
    assert box["width"] >= 3 * box["height"], box  # wide on a desktop
    page.get_by_test_id("mode-one").click()
    box = page.get_by_test_id("pad").bounding_box()
    assert abs(box["width"] - box["height"]) <= 1, box
    expect(page.locator(".answer")).to_be_visible()  # the one-character answer is back
    expect(page.get_by_test_id("copy")).to_be_hidden()
    page.reload()
    expect(page.get_by_test_id("mode-one")).to_have_attribute("aria-pressed", "true")


def test_a_number_and_a_word_are_read_as_written(page: Page, written: dict[str, Written]):
    number, word = written["number"].text, written["word"].text
    answer = write(page, written["number"])
    assert answer["text"] == number
    assert_read(page, number)
    # Each box lies over its character's ink: left to right, inside the pad.
    pad = page.get_by_test_id("pad").bounding_box()
    boxes = [b.bounding_box() for b in chars(page).all()]
    assert all(pad["x"] <= b["x"] and b["x"] + b["width"] <= pad["x"] + pad["width"] for b in boxes)
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("text")).to_have_text("")
    expect(chars(page)).to_have_count(0)
    assert write(page, written["word"])["text"] == word
    assert_read(page, word)


def test_a_character_shows_its_alternatives(page: Page, written: dict[str, Written]):
    answer = write(page, written["number"])
    panel = page.get_by_test_id("char-panel")
    expect(panel).to_be_hidden()
    chars(page).nth(2).click()
    expect(panel).to_be_visible()
    alternatives = page.get_by_test_id("alternative")
    top_k = answer["characters"][2]["top_k"]
    expect(alternatives).to_have_count(len(top_k))
    labels = alternatives.evaluate_all("bs => bs.map(b => b.dataset.label)")
    assert labels == [g["label"] for g in top_k]
    said = answer["characters"][2]["prediction"]
    expect(page.locator(f'[data-testid=alternative][data-label="{said}"]')).to_be_disabled()
    assert page.locator("[data-testid=alternative]:disabled").count() == (said in labels)
    expect(chars(page).nth(2)).to_have_attribute("aria-expanded", "true")
    # "Another character…": any of the 47 classes.
    page.get_by_test_id("char-other").click()
    expect(page.get_by_test_id("char-picker").get_by_role("button")).to_have_count(47)
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("char-picker")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(chars(page).nth(2)).to_be_focused()  # back where the keyboard was
    expect(page.get_by_test_id("text")).to_have_text(written["number"].text)  # Esc did not clear


def test_keyboard_reaches_the_characters(page: Page, written: dict[str, Written]):
    write(page, written["word"])
    page.get_by_test_id("mode-several").focus()
    page.keyboard.press("Tab")  # the language button
    page.keyboard.press("Tab")  # the first character: the pad itself is no Tab stop
    first = chars(page).first
    expect(first).to_be_focused()
    assert first.get_attribute("aria-label").startswith(
        f"Character 1 of {len(written['word'].text)}: {written['word'].text[0]}")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("char-panel")).to_be_visible()
    expect(page.locator("[data-testid=alternative]:enabled").first).to_be_focused()


def export(data_dir: Path, out: Path) -> dict:
    """`emnist-draw feedback export` of the page's store, as a person runs it; its summary."""
    result = subprocess.run([*serve_command()[:-1], "feedback", "export", "--out", str(out),
                             "--data-dir", str(data_dir)], capture_output=True, text=True,
                            env={**os.environ, "DATABASE_URL": ""}, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def correct(page: Page, i: int) -> tuple[dict, int]:
    """Correct character i to its first alternative the page offers; what was posted and the
    id the server saved it as."""
    chars(page).nth(i).click()
    pick = page.locator("[data-testid=alternative]:enabled").first  # not what it reads now
    with page.expect_response(lambda r: r.url.endswith("/api/feedback/read")) as response:
        pick.click()
    assert response.value.status == 201, response.value.text()
    return json.loads(response.value.request.post_data), response.value.json()["id"]


def test_a_correction_reaches_the_store(page: Page, written: dict[str, Written], data_dir: Path,
                                        tmp_path: Path):
    number = written["number"].text
    answer = write(page, written["number"])
    stats = lambda: page.request.get("/api/feedback/stats").json()  # noqa: E731
    before = stats()
    chars(page).nth(1).click()
    pick = page.locator("[data-testid=alternative]:enabled").first  # not what it read
    label = pick.get_attribute("data-label")
    with page.expect_response(lambda r: r.url.endswith("/api/feedback/read")) as response:
        pick.click()
    assert response.value.status == 201, response.value.text()
    posted = json.loads(response.value.request.post_data)
    corrected = number[0] + label + number[2:]
    assert (posted["read"], posted["text"]) == (number, corrected)
    assert posted["segments"] == [c["strokes"] for c in answer["characters"]]
    assert len(posted["strokes"]) == len(written["number"].strokes)
    assert posted["canvas"]["width"] > 3 * posted["canvas"]["height"]
    expect(page.get_by_test_id("text")).to_have_text(corrected)  # replaced in the text
    expect(chars(page).nth(1)).to_have_text(label)
    expect(page.get_by_test_id("read-feedback-status")).to_have_text("Thanks — saved")
    after = stats()
    assert after["strings"] == before["strings"] + 1
    assert after["string_characters"] == before["string_characters"] + len(number)
    # The command line exports what the page stored.
    summary = export(data_dir, tmp_path / "export")
    assert summary["from_strings"] >= len(number), summary  # one image per corrected character
    assert Path(summary["images"]).is_file()


def test_two_characters_corrected_leave_only_the_final_text_as_training_data(
        page: Page, written: dict[str, Written], data_dir: Path, tmp_path: Path):
    number = written["number"].text
    write(page, written["number"])
    before = export(data_dir, tmp_path / "before")
    (first, first_id), (second, second_id) = correct(page, 1), correct(page, 3)
    # The second names the first, which the server then keeps but no longer counts.
    assert "replaces" not in first and second["replaces"] == first_id
    assert first["text"][3] == number[3] != second["text"][3]  # the first said 4 was right
    final = second["text"]
    assert (final[:2], final[2], final[4:]) == (first["text"][:2], number[2], number[4:])
    expect(page.get_by_test_id("text")).to_have_text(final)
    engine = store.make_engine(f"sqlite:///{data_dir / store.SQLITE_FILE}")
    try:
        rows = {s.id: s for s in store.iter_string_corrections(engine)}
    finally:
        engine.dispose()
    assert (rows[first_id].replaced_by, rows[second_id].replaced_by) == (second_id, None)
    after = export(data_dir, tmp_path / "after")
    assert after["from_strings"] == before["from_strings"] + len(number)  # not 2 x len(number)
    assert after["strings_replaced"] == before["strings_replaced"] + 1
    _, labels = load_pair(after["images"], after["labels"])
    classes = [c if c in BALANCED_CLASSES else c.upper() for c in final]
    assert labels[-len(number):].tolist() == [BALANCED_CLASSES.index(c) for c in classes]
    # Clear starts a new drawing: its first correction replaces nothing.
    page.get_by_test_id("clear").click()
    write(page, written["number"])
    again, _ = correct(page, 0)
    assert "replaces" not in again


def test_a_correction_made_before_the_last_one_is_saved_waits_for_its_id(
        page: Page, written: dict[str, Written]):
    write(page, written["number"])
    held = []  # the first correction's request, kept from the server for a while
    page.route("**/api/feedback/read", lambda route: held.append(route) if not held
               else route.continue_())
    posted = []
    page.on("request", lambda r: posted.append(json.loads(r.post_data))
            if r.url.endswith("/api/feedback/read") else None)
    for i in (1, 3):  # the second tap before the first correction's answer came
        chars(page).nth(i).click()
        page.locator("[data-testid=alternative]:enabled").first.click()
    page.wait_for_timeout(300)
    assert len(held) == 1 and len(posted) == 1  # the second waits: it must name the first
    with page.expect_response(lambda r: r.url.endswith("/api/feedback/read")) as first:
        held[0].continue_()
    with page.expect_response(lambda r: r.url.endswith("/api/feedback/read")) as second:
        pass
    assert first.value.status == second.value.status == 201, second.value.text()
    assert json.loads(second.value.request.post_data)["replaces"] == first.value.json()["id"]
    expect(page.get_by_test_id("read-feedback-status")).to_have_text("Thanks — saved")


def test_the_whole_text_can_be_retyped(page: Page, written: dict[str, Written]):
    number = written["number"].text
    answer = write(page, written["number"])
    field = page.get_by_test_id("fix-text")
    expect(field).to_have_value(number)
    # As many characters: the reading's segments go with it.
    same_length = number[::-1] if number[::-1] != number else "1" * len(number)
    field.fill(same_length)
    with page.expect_request(lambda r: r.url.endswith("/api/feedback/read")) as request:
        field.press("Enter")
    posted = json.loads(request.value.post_data)
    assert posted["text"] == same_length and posted["read"] == number
    assert posted["segments"] == [c["strokes"] for c in answer["characters"]]
    expect(page.get_by_test_id("text")).to_have_text(same_length)
    # Another length: the segments would lie, so they stay at home.
    field.fill(number + "0")
    with page.expect_request(lambda r: r.url.endswith("/api/feedback/read")) as request:
        page.get_by_test_id("fix-send").click()
    posted = json.loads(request.value.post_data)
    assert posted["text"] == number + "0" and "segments" not in posted
    expect(page.get_by_test_id("text")).to_have_text(number + "0")
    # Delete and Esc in the field are the field's, not Clear.
    field.press("Delete")
    field.press("Escape")
    expect(chars(page)).to_have_count(len(number))


def test_predict_undo_and_clear(page: Page, written: dict[str, Written]):
    number = written["number"]
    n = len(number.strokes)
    write(page, number)
    assert_read(page, number.text)
    with page.expect_response(reads("/api/read", n)):
        page.get_by_test_id("predict").click()  # on a string already read: it says it read again
    expect(page.get_by_test_id("status")).to_contain_text(f"Read again: {number.text}")
    for undo, left in ((lambda: page.get_by_test_id("undo").click(), n - 1),
                       (lambda: page.keyboard.press("Control+z"), n - 2)):
        with page.expect_response(reads("/api/read", left)) as response:
            undo()
        text = response.value.json()["text"]
        assert len(text) < len(number.text)  # the last digit's strokes go first
        assert_read(page, text)
    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("text")).to_have_text("")
    expect(chars(page)).to_have_count(0)
    expect(page.get_by_test_id("status")).to_contain_text("empty")
    expect(page.get_by_test_id("copy")).to_be_disabled()


def test_copy_puts_the_text_on_the_clipboard(page: Page, written: dict[str, Written]):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    write(page, written["number"])
    page.get_by_test_id("copy").click()
    expect(page.get_by_test_id("status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == written["number"].text


def test_russian(page: Page, written: dict[str, Written]):
    page.locator("#lang").click()
    expect(page.get_by_test_id("mode-several")).to_have_text("Несколько символов")
    write(page, written["number"])
    assert chars(page).first.get_attribute("aria-label").startswith("Символ 1 из")
    chars(page).first.click()
    # Percentages as Russian writes them: a decimal comma.
    assert "," in page.get_by_test_id("alternative").first.text_content()


def test_a_doubtful_character_is_marked(page: Page, written: dict[str, Written]):
    def doubt(route):
        answer = route.fetch().json()
        for i, character in enumerate(answer["characters"]):
            character["status"] = "unsure" if i == 1 else "ok"
        route.fulfill(json=answer)
    page.route("**/api/read", doubt)
    write(page, written["number"])
    second = chars(page).nth(1)
    expect(second).to_have_class("char doubt")
    assert second.evaluate("b => getComputedStyle(b).borderTopStyle") == "dashed"
    assert "not sure" in second.get_attribute("aria-label")
    assert "not sure" not in chars(page).first.get_attribute("aria-label")
    expect(page.get_by_test_id("status")).to_contain_text("1 not sure")


# Phones held sideways, from the smallest (640x360, 667x375: the row of buttons is tight there,
# the more so with the Russian labels) to the largest.
SIDEWAYS = [PHONE_SIDEWAYS, {"width": 740, "height": 360}, {"width": 932, "height": 430},
            {"width": 667, "height": 375}, {"width": 640, "height": 360}]
BUTTONS = ("predict", "undo", "clear", "charset")


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("viewport", [PHONE, *SIDEWAYS],
                         ids=["portrait", *(f"landscape-{v['width']}x{v['height']}" for v in SIDEWAYS)])
def test_a_phone_writes_with_a_finger(browser: Browser, server_url: str,
                                      written: dict[str, Written], viewport: dict, lang: str):
    page, errors, elsewhere = open_page(browser, server_url, viewport, touch=True)
    page.get_by_test_id("mode-several").tap()
    if lang == "ru":
        page.locator("#lang").tap()
        expect(page.get_by_test_id("copy")).to_have_text("Копировать")
    width, height = viewport["width"], viewport["height"]
    pad = page.get_by_test_id("pad").bounding_box()
    # The screen's width, held either way; the pad and its buttons on screen without scrolling,
    # each button finger-sized.
    assert pad["width"] >= 0.9 * width and pad["width"] >= 1.8 * pad["height"], pad
    for test_id in ("pad", *BUTTONS):
        box = page.get_by_test_id(test_id).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (test_id, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (test_id, box)
        if test_id != "pad":
            assert box["height"] >= 40, (test_id, box)
    if width > height:
        assert pad["width"] >= 3 * pad["height"] and pad["height"] >= 180, pad
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    cdp = page.context.new_cdp_session(page)
    number = written["number"].text
    assert write(page, written["number"], cdp=cdp)["text"] == number
    assert_read(page, number)
    assert page.evaluate("window.scrollY") == 0  # writing did not scroll the page
    # The text read and Copy on the screen too, held either way, without scrolling.
    boxes = {test_id: page.get_by_test_id(test_id).bounding_box()
             for test_id in ("pad", *BUTTONS, "text", "copy")}
    for test_id in ("text", "copy"):
        box = boxes[test_id]
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (test_id, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (test_id, box)
    # Nothing overlaps: the pad above its buttons, the buttons above the text read and Copy.
    buttons_top = min(boxes[b]["y"] for b in BUTTONS)
    buttons_bottom = max(boxes[b]["y"] + boxes[b]["height"] for b in BUTTONS)
    assert boxes["pad"]["y"] + boxes["pad"]["height"] <= buttons_top, boxes
    for test_id in ("text", "copy"):
        assert buttons_bottom <= boxes[test_id]["y"], (test_id, boxes)
    chars(page).nth(0).tap()
    expect(page.get_by_test_id("char-panel")).to_be_visible()
    page.get_by_test_id("clear").tap()
    expect(chars(page)).to_have_count(0)
    page.context.close()
    assert not errors, f"errors on the page: {errors}"
    assert not elsewhere, f"requests off this machine: {elsewhere}"
