"""In a real headless Chromium: API docs offline, bilingual error toasts, the free-prompt note and batch results
with bad, long and formula rows.

Screenshots go to ``test-output/browser/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import csv

import httpx
import pytest
from browser import OUTPUT, chromium_context, upload_file
from playwright.sync_api import expect
from test_browser import TIMEOUT_MS, open_tab, textbox

pytestmark = [pytest.mark.browser, pytest.mark.service]


@pytest.fixture(scope="module")
def browser_context(demo_server):
    with chromium_context(TIMEOUT_MS) as context:
        # The appliance must work with no internet: every request elsewhere fails, and is noted.
        context.outside = []

        def only_the_appliance(route):
            if route.request.url.startswith(demo_server.url):
                route.continue_()
            else:
                context.outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_appliance)
        yield context


@pytest.fixture(scope="module")
def page(browser_context, demo_server):
    page = browser_context.new_page()
    page.goto(demo_server.url + "/")
    page.wait_for_selector("#seqgpt-status .seqgpt-status")
    return page


def toast_text(page) -> str:
    toast = page.locator("[data-testid='toast-body']").last
    toast.wait_for()
    return toast.inner_text()


def test_api_docs_render_with_external_requests_blocked(browser_context, demo_server):
    docs = browser_context.new_page()
    docs.goto(demo_server.url + "/api/docs")
    heading = docs.get_by_role("heading", name="SeqGPT-560M HTTP API")
    assert heading.is_visible()
    assert docs.locator("code", has_text="/api/classify").first.is_visible()
    assert docs.get_by_role("link", name="/api/openapi.json").is_visible()
    docs.screenshot(path=str(OUTPUT / "20-api-docs-offline.png"), full_page=True)
    assert browser_context.outside == []
    docs.close()


def test_an_invalid_input_toast_is_titled_in_chinese_and_english_with_the_request_id(page):
    open_tab(page, "文本分类 Classification")
    textbox(page, "classify-text").fill("快递三天没有更新")
    textbox(page, "classify-labels").fill(" ，, ")
    page.locator("#classify-run").click()
    text = toast_text(page)
    assert "输入有误 Invalid input" in text and "no labels given" in text and "没有标签" in text
    assert "Request" in text
    page.screenshot(path=str(OUTPUT / "21-invalid-toast.png"), full_page=True)


def test_an_error_clears_the_last_answer_so_it_cannot_pass_for_this_ones(page):
    open_tab(page, "文本分类 Classification")
    textbox(page, "classify-text").fill("快递三天没有更新")
    textbox(page, "classify-labels").fill("投诉，咨询")
    page.locator("#classify-run").click()
    page.wait_for_selector("#classify-details :text('Request')")
    assert "投诉" in page.locator("#classify-result").inner_text()
    textbox(page, "classify-text").fill("")
    page.locator("#classify-run").click()
    assert "Invalid input" in toast_text(page)
    expect(page.locator("#classify-details")).not_to_contain_text("Request")
    expect(page.locator("#classify-result")).not_to_contain_text("投诉")


def test_the_free_prompt_note_says_the_output_was_capped(page, demo_server):
    with httpx.Client(base_url=demo_server.url, timeout=60) as http:
        counted = http.post("/api/generate", json={"prompt": "输入: " + "快递没有更新。" * 10, "max_new_tokens": 1})
    per_sentence = (counted.json()["prompt_tokens"] - 3) / 10
    prompt = "输入: " + "快递没有更新。" * int((1024 - 40) / per_sentence) + "\n分类: 投诉，咨询\n输出: [GEN]"
    open_tab(page, "自由Prompt Free prompt")
    textbox(page, "generate-prompt").fill(prompt)
    page.locator("#generate-run").click()
    page.wait_for_selector("#generate-details :text('Output capped')")
    details = page.locator("#generate-details").inner_text()
    assert "输出被截断" in details and "start was cut" not in details
    page.screenshot(path=str(OUTPUT / "22-prompt-output-capped.png"), full_page=True)


def run_batch(page, path, labels: str, expect: str) -> None:
    """Upload ``path``, run it, and wait for a summary with ``expect`` (text no earlier batch shows)."""
    open_tab(page, "批量处理 Batch")
    upload_file(page, "batch-file", path)
    textbox(page, "batch-labels").fill(labels)
    page.locator("#batch-run").click()
    page.wait_for_selector(f"#batch-details :text('{expect}')")


def test_a_batch_with_a_bad_row_returns_every_other_row_and_names_the_bad_one(page, tmp_path):
    upload = tmp_path / "tickets.jsonl"
    upload.write_text('{"id": "T1", "text": "快递三天没有更新物流"}\n{"id": "T2", "text": "坏\\ud800字"}\n'
                      '{"id": "T3", "text": "工程师态度很好"}\n', encoding="utf-8")
    run_batch(page, upload, "投诉，咨询，表扬", "row 2 (id T2)")
    table = page.locator("#batch-table").inner_text()
    assert "快递三天没有更新物流" in table and "工程师态度很好" in table
    summary = page.locator("#batch-details").inner_text()
    assert "Done: 3 texts, 1 failed" in summary and "surrogate" in summary
    page.screenshot(path=str(OUTPUT / "23-batch-bad-row.png"), full_page=True)


def test_batch_results_keep_the_id_column_show_the_error_of_a_long_row_and_neutralise_formulas(page, tmp_path):
    upload = tmp_path / "customers.csv"
    long_text = "很长的工单内容，" * 3_125  # 25,000 characters, over the per-text limit
    with upload.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["id", "text"], ["C-7", "快递三天没有更新物流"], ["C-8", long_text],
                          ["C-9", "=cmd|' /C calc'!A0"]])
    run_batch(page, upload, "投诉，咨询，表扬", "row 2 (id C-8)")
    assert "Done: 3 texts, 1 failed" in page.locator("#batch-details").inner_text()
    page.screenshot(path=str(OUTPUT / "24-batch-long-row.png"), full_page=True)

    table = page.locator("#batch-table")
    headers = table.locator("th")
    assert "id" in [text.strip() for text in headers.all_inner_texts()]
    error_header = headers.filter(has_text="error").first
    error_cell = table.locator("td", has_text="SEQGPT_MAX_TEXT_CHARS").first
    viewport = page.viewport_size["width"]
    for element in (error_header, error_cell):
        box = element.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + min(box["width"], 50) <= viewport
    assert "C-8" in table.inner_text()

    with page.expect_download() as download_info:
        page.locator("#batch-downloads a[download='results.csv']").click()
    saved = OUTPUT / "results-formula.csv"
    download_info.value.save_as(saved)
    with saved.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == ["C-7", "C-8", "C-9"]
    assert rows[1]["text"] == long_text and rows[1]["error"]
    assert rows[2]["text"] == "'=cmd|' /C calc'!A0"
