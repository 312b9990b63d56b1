"""Real headless Chromium for the browser tests: Debian's chromium, launched the one way these machines allow."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Screenshots go here, at the repository root (git-ignored).
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"


@contextmanager
def chromium_context(timeout_ms: int) -> Iterator[object]:
    """A Playwright browser context (1400×1100, downloads accepted) on Debian's chromium, closed afterwards."""
    if not CHROMIUM.exists():
        if os.environ.get("SEQGPT_SKIP_BROWSER") == "1":
            pytest.skip("SEQGPT_SKIP_BROWSER=1 and no /usr/bin/chromium")
        pytest.fail("the browser test needs Debian chromium at /usr/bin/chromium (apt-get install chromium); "
                    "set SEQGPT_SKIP_BROWSER=1 to skip it on purpose")
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        context.set_default_timeout(timeout_ms)
        yield context
        context.close()
        browser.close()
