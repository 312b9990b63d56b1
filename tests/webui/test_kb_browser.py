"""One real headless Chromium adds a document in the 知识库 Knowledge base tab, searches it and summarises the hits.

Screenshots go to ``test-output/browser/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import pytest
from browser import OUTPUT, chromium_context

pytestmark = [pytest.mark.browser, pytest.mark.service]

TIMEOUT_MS = 300_000  # a ceiling: seconds on a quiet machine, minutes on a busy one


@pytest.fixture(scope="module")
def page(demo_server):
    with chromium_context(TIMEOUT_MS) as context:
        page = context.new_page()
        page.goto(demo_server.url + "/")
        page.wait_for_selector("#seqgpt-status .seqgpt-status")
        yield page


def test_knowledge_base_tab_adds_searches_and_summarises_with_flags_in_colour(page):
    page.get_by_role("tab", name="知识库 Knowledge base").click()
    page.locator("#kb-add").click()
    page.wait_for_selector("#kb-added :text('Added')")
    assert "guide" in page.locator("#kb-docs").inner_text()

    page.locator("#kb-search").click()
    page.wait_for_selector("#kb-hits .kb-hit")
    hits = page.locator("#kb-hits").inner_text()
    assert "guide" in hits and "score" in hits
    assert page.locator("#kb-hits mark").count() > 0  # the query's words highlighted in the passages

    page.locator("#kb-summarize").click()
    page.wait_for_selector("#kb-summary-box")
    box = page.locator("#kb-summary-box")
    text = box.inner_text()
    assert "Similarity" in text and "Compression" in text and "Flags" in text
    assert "请求 Request" in page.locator("#kb-summary-details").inner_text(), "its id, to find it in the history"
    figures = box.locator(".kb-figure")
    assert figures.count() == 2
    colours = {figures.nth(i).evaluate("e => getComputedStyle(e).color") for i in range(2)}
    assert colours <= {"rgb(197, 34, 31)", "rgb(24, 128, 56)"}  # red flagged, green fine
    flagged = box.locator(".kb-flagged").count()
    assert (flagged > 0) == ("none" not in text.split("Flags:")[1])
    assert "Embedding GTE" in page.locator("#seqgpt-status").inner_text()
    path = OUTPUT / "30-knowledge-base.png"
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
