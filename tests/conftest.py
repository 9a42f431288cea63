"""Shared fixtures. Tests read the real EMNIST files in ../shared/data beside the checkout."""

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from emnist_draw.data import DEFAULT_DATA_DIR, build_pool
from emnist_draw.reader import StringReader
from emnist_draw.recognizer import Recognizer

DATA_DIR = DEFAULT_DATA_DIR
# Debian's chromium, never a browser downloaded by `playwright install`.
CHROMIUM = Path("/usr/bin/chromium")


def pytest_sessionstart(session):
    if not (DATA_DIR / "emnist-byclass-test-images-idx3-ubyte.gz").is_file():
        raise pytest.UsageError(f"the EMNIST files are not in {DATA_DIR}: tests need ../shared/data")


@pytest.fixture(scope="session")
def pool():
    return build_pool(DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def recognizer() -> Recognizer:
    """The shipped model, as the server loads it."""
    return Recognizer()


@pytest.fixture(scope="session")
def reader(recognizer: Recognizer) -> StringReader:
    return StringReader(recognizer)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the page tests, one per test module."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium "
                    "(or, as root: apt-get install chromium chromium-driver)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update"])
        yield browser
        browser.close()
