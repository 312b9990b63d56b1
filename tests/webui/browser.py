"""Real headless Chromium for the browser tests: Debian's chromium, launched the one way these machines allow."""

from __future__ import annotations

import os
import warnings
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
# How long an upload of a small local file may take before it counts as lost (see upload_file).
UPLOAD_SHOWN_MS = 30_000
# The requests each open context has in flight, by context id: what an upload that never finished was waiting on.
_IN_FLIGHT: dict[int, dict[int, str]] = {}


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
        in_flight = _IN_FLIGHT.setdefault(id(context), {})
        context.on("request", lambda request: in_flight.__setitem__(id(request), f"{request.method} {request.url}"))
        context.on("requestfinished", lambda request: in_flight.pop(id(request), None))
        context.on("requestfailed", lambda request: in_flight.pop(id(request), None))
        yield context
        _IN_FLIGHT.pop(id(context), None)
        context.close()
        browser.close()


def upload_file(page, elem_id: str, path: Path) -> None:
    """Put ``path`` into the file widget ``#elem_id`` (clearing a file an earlier run left there) and wait
    until the widget names it.

    Twice in many suite runs, Gradio's widget took a small local file and never showed it, for five minutes,
    with the server idle. A person would pick the file again, and so does this helper, once, with a warning
    that names the requests the page then had in flight; a second loss fails the test with that list."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in (1, 2):
        if page.locator(f"#{elem_id} input[type=file]").count() == 0:  # a file is still there
            page.locator(f"#{elem_id} button[aria-label='Clear']").click()
        page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
        try:
            page.wait_for_selector(f"#{elem_id} :text('{path.name}')", timeout=UPLOAD_SHOWN_MS)
            return
        except PlaywrightTimeout:
            pending = sorted(_IN_FLIGHT.get(id(page.context), {}).values())
            message = (f"upload {attempt} of {path.name} into #{elem_id} not shown after "
                       f"{UPLOAD_SHOWN_MS // 1000} s; requests in flight: {pending or 'none'}")
            if attempt == 2:
                raise AssertionError(message) from None
            warnings.warn(message, stacklevel=2)
