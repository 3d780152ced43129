"""What every browser test module of the UI shares: a headless Chromium of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.helpers.browser import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module (each module gets its own)."""
    with chromium() as launched:
        yield launched
