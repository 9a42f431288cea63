"""The security headers in a real browser (Debian's Chromium): the page's Content-Security-Policy
blocks nothing the page needs, and /docs and /redoc work offline under theirs.

Nothing here touches the network: every request off this server is aborted and recorded.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from emnist_draw.recognizer import Recognizer

from app_helpers import clearly_read_unipen, live_server

# Every Content-Security-Policy violation, as the page itself sees it.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with live_server("--data-dir", str(tmp_path_factory.mktemp("data"))) as url:
        yield url


class Watched:
    """A page whose CSP violations, console complaints and off-server requests are recorded."""

    def __init__(self, browser, server_url: str):
        self.context = browser.new_context(viewport={"width": 1000, "height": 760},
                                           base_url=server_url)
        self.page: Page = self.context.new_page()
        self.console: list[str] = []
        self.elsewhere: list[str] = []
        self.page.add_init_script(RECORD_VIOLATIONS)
        self.page.on("console", lambda m: self.console.append(m.text)
                     if m.type in ("error", "warning") else None)
        self.context.route(lambda url: not url.startswith(server_url),
                           lambda route: (self.elsewhere.append(route.request.url),
                                          route.abort()))

    def violations(self) -> list[str]:
        seen = self.page.evaluate("window.__violations")
        return seen + [m for m in self.console if "Content Security Policy" in m]


def test_the_page_works_under_its_policy(browser, server_url):
    watched = Watched(browser, server_url)
    page = watched.page
    response = page.goto("/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_test_id("status")).to_be_visible()
    expect(page.locator("#model-info")).not_to_have_text("")  # app.js ran and fetched /api/model
    # Draw a character a real writer drew; the page reads it and shows the model's input.
    sample = clearly_read_unipen(Recognizer(), "7")[0]
    box = page.get_by_test_id("pad").bounding_box()
    xs = [x for s in sample.strokes for x, _ in s]
    ys = [y for s in sample.strokes for _, y in s]
    scale = 0.6 * box["width"] / max(max(xs) - min(xs), max(ys) - min(ys))
    with page.expect_response(lambda r: r.url.endswith("/api/predict")):
        for stroke in sample.strokes:
            points = [(box["x"] + box["width"] / 2 + (x - (max(xs) + min(xs)) / 2) * scale,
                       box["y"] + box["height"] / 2 + (y - (max(ys) + min(ys)) / 2) * scale)
                      for x, y in stroke[::max(1, len(stroke) // 30)]]
            page.mouse.move(*points[0])
            page.mouse.down()
            for point in points[1:]:
                page.mouse.move(*point)
            page.mouse.up()
    expect(page.get_by_test_id("prediction")).to_have_text("7")
    expect(page.get_by_test_id("topk").locator("li")).to_have_count(5)
    expect(page.get_by_test_id("input-preview")).to_be_visible()
    # The probability bars are sized from script (CSSOM), which the policy allows.
    width = page.get_by_test_id("topk").locator("li").first.evaluate(
        "li => li.querySelector('[style]')?.style.width ?? ''")
    assert width.endswith("%"), width
    # Several characters: the same ink read as a string; its boxes are placed from script too.
    with page.expect_response(lambda r: r.url.endswith("/api/read")):
        page.get_by_test_id("mode-several").click()
    expect(page.get_by_test_id("text")).to_have_text("7")
    left = page.get_by_test_id("char").first.evaluate("b => b.style.left")
    assert left.endswith("px"), left
    assert watched.violations() == [], watched.violations()
    assert watched.elsewhere == [], watched.elsewhere
    watched.context.close()


def test_framing_the_page_is_refused(browser, server_url):
    # frame-ancestors 'none' / X-Frame-Options DENY: another page cannot embed this one.
    watched = Watched(browser, server_url)
    page = watched.page
    page.goto("/healthz")  # a same-origin page to host the frame (the policy forbids even that)
    page.evaluate("""url => new Promise((done) => {
        const frame = document.createElement("iframe");
        frame.onload = () => done();
        frame.src = url;
        document.body.append(frame);
    })""", server_url + "/")
    frame = page.frames[-1]
    assert frame.evaluate("document.querySelector('[data-testid=pad]')") is None
    watched.context.close()


REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_work_offline(browser, server_url, path):
    # Swagger UI and ReDoc come from this server (emnist_draw/server/apidocs.py): with every
    # request to another host aborted, they still list every operation, under a policy that
    # names no other host and allows no inline script.
    watched = Watched(browser, server_url)
    page = watched.page
    response = page.goto(path)
    policy = response.headers["content-security-policy"]
    assert "http" not in policy and "script-src" not in policy, policy  # scripts: 'self' only
    operations = [op for methods in httpx.get(f"{server_url}/openapi.json").json()["paths"].values()
                  for op in methods.values()]
    assert len(operations) >= 8
    for operation in operations:
        expect(page.get_by_text(operation["summary"], exact=True).first).to_be_attached()
    if path == "/docs":
        expect(page.locator(".opblock")).to_have_count(len(operations))
    favicon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert favicon.startswith(server_url) and httpx.get(favicon).status_code == 200
    assert watched.elsewhere == [], watched.elsewhere
    # ReDoc's bundle always shows Redocly's logo from their CDN (and hides it when it fails):
    # the policy refusing it is the one refusal expected, and it keeps the request from leaving.
    refused = [v for v in watched.violations() if REDOC_LOGO not in v]
    assert refused == [], refused
    watched.context.close()
