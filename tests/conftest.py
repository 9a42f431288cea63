"""Shared fixtures. Tests read the real EMNIST files in ../shared/data beside the checkout."""

from pathlib import Path

import pytest

from emnist_draw.data import DEFAULT_DATA_DIR, build_pool

DATA_DIR = DEFAULT_DATA_DIR


def pytest_sessionstart(session):
    if not (DATA_DIR / "emnist-byclass-test-images-idx3-ubyte.gz").is_file():
        raise pytest.UsageError(f"the EMNIST files are not in {DATA_DIR}: tests need ../shared/data")


@pytest.fixture(scope="session")
def pool():
    return build_pool(DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR
