"""In a real headless Chromium (1400 px wide): the worst errors keep the model's answer on screen, a failed
run replaces the results of the one before, and the status bar tells a lost server and long work apart
from "ready". Screenshots go to ``test-output/browser/``."""

from __future__ import annotations

import json

import pytest
from browser import OUTPUT, chromium_context, upload_file

pytestmark = [pytest.mark.browser, pytest.mark.service]

# A ceiling, not an expectation: seconds on a quiet machine, minutes on one busy with other work.
TIMEOUT_MS = 300_000
LONG = ("甲方北京星河科技有限公司与乙方上海云帆信息技术有限公司于二〇二四年三月签订采购合同，"
        "合同金额人民币一百万元整，付款方式为分期付款。")
NER = "\n".join(json.dumps(row, ensure_ascii=False) for row in [
    {"text": LONG, "entities": [{"field": "公司名称", "start": 2, "end": 12},
                                {"field": "公司名称", "start": 15, "end": 27}]},
    {"text": "张三在北京的星河科技有限公司上班，月薪两万元。", "entities": [{"field": "人名", "start": 0, "end": 2}]},
])


@pytest.fixture(scope="module")
def page(demo_server):
    with chromium_context(TIMEOUT_MS) as context:
        page = context.new_page()
        page.goto(demo_server.url + "/")
        page.wait_for_selector("#seqgpt-status .seqgpt-status")
        yield page


def test_worst_errors_of_an_extraction_show_the_expected_and_the_models_answer_on_screen(page, tmp_path):
    page.get_by_role("tab", name="评测 Evaluate").click()
    gold = tmp_path / "contracts.jsonl"
    gold.write_text(NER, encoding="utf-8")
    upload_file(page, "evaluate-file", gold)
    page.locator("#evaluate-task label", has_text="抽取 Extract").click()
    page.locator("#evaluate-run").click()
    page.wait_for_selector("#evaluate-summary :text('Request')")
    table = page.locator("#evaluate-errors")
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(OUTPUT / "30-evaluate-worst-errors.png"), full_page=True)
    visible = table.bounding_box()
    for header in ("标注 Expected", "模型 Got"):
        cell = table.locator("th", has_text=header).first.bounding_box()
        assert cell is not None, header
        assert cell["x"] + cell["width"] <= min(visible["x"] + visible["width"], 1400) + 1, (header, cell, visible)
    for cell in table.locator("tbody td").all():
        assert cell.evaluate("td => td.scrollWidth <= td.clientWidth + 1"), cell.inner_text()


def test_a_failed_batch_replaces_the_last_results_with_the_reason(page, tmp_path):
    page.get_by_role("tab", name="批量处理 Batch").click()
    good = tmp_path / "tickets.txt"
    good.write_text("快递没到\n发票怎么开\n", encoding="utf-8")
    upload_file(page, "batch-file", good)
    page.locator("#batch-run").click()
    page.wait_for_selector("#batch-details :text('Done: 2 texts')")
    old_id = page.locator("#batch-details code").inner_text()

    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    upload_file(page, "batch-file", binary)
    page.locator("#batch-run").click()
    page.wait_for_selector("#batch-details :text('neither UTF-8 nor GB18030')")
    page.screenshot(path=str(OUTPUT / "31-batch-failed.png"), full_page=True)
    details = page.locator("#batch-details").inner_text()
    assert "文件编码无法识别" in details and old_id not in details and "Done:" not in details
    assert page.locator("#batch-downloads a[download]").count() == 0, "the last batch's downloads are gone"
    assert "快递没到" not in page.locator("#batch-table").inner_text()
    for elem_id in ("batch-table", "batch-downloads", "batch-details"):
        assert page.locator(f"#{elem_id} .error").count() == 0, f"{elem_id} is painted as an error"


def test_a_bad_evaluation_file_says_why_once_and_paints_no_output_as_an_error(page, tmp_path):
    page.get_by_role("tab", name="评测 Evaluate").click()
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(bytes(range(256)) * 8)
    upload_file(page, "evaluate-file", binary)
    page.locator("#evaluate-run").click()
    page.wait_for_selector("#evaluate-summary :text('neither UTF-8 nor GB18030')")
    page.screenshot(path=str(OUTPUT / "32-evaluate-failed.png"), full_page=True)
    for elem_id in ("evaluate-summary", "evaluate-metrics", "evaluate-confusion", "evaluate-f1", "evaluate-errors"):
        assert page.locator(f"#{elem_id} .error").count() == 0, f"{elem_id} is painted as an error"
    assert page.locator("#evaluate-errors").inner_text().count("Expected") <= 1


def test_the_status_bar_shows_a_batch_at_work(page, tmp_path):
    page.get_by_role("tab", name="批量处理 Batch").click()
    many = tmp_path / "many.txt"
    many.write_text("".join(f"第{n}条工单：快递没有更新物流信息，请尽快处理。\n" for n in range(80)), encoding="utf-8")
    upload_file(page, "batch-file", many)
    page.locator("#batch-run").click()
    # One wait for both words: read apart, the bar can refresh to "ready" between the two reads.
    page.wait_for_selector("#seqgpt-status :text('Batch running'):has-text('/80')")
    page.screenshot(path=str(OUTPUT / "33-status-batch-running.png"), full_page=True)
    # No progress caption over the summary, where it overlapped the text.
    assert "Processing" not in page.locator("#batch-details").inner_text()
    page.wait_for_selector("#batch-details :text('Done: 80 texts')")
