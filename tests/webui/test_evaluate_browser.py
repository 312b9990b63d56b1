"""One real headless Chromium runs an evaluation in the 评测 Evaluate tab on demo weights.

Screenshots go to ``test-output/browser/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import json

import pytest
from browser import OUTPUT, chromium_context, upload_file

pytestmark = [pytest.mark.browser, pytest.mark.service]

# A ceiling, not an expectation: seconds on a quiet machine, minutes on one busy with other work.
TIMEOUT_MS = 300_000
# Twelve labelled tickets with English label ids mapped to Chinese label words, and one bad row (line 6).
LABELLED = (
    "text,label\n"
    "快递三天没有更新物流信息，希望尽快处理。,complaint\n"
    "请问企业版是否支持私有化部署？,question\n"
    "上门安装的工程师很专业，点赞！,praise\n"
    "客服电话打了五次都没人接。,complaint\n"
    ",question\n"
    "发票可以开成增值税专用发票吗？,question\n"
    "包装很用心，还送了小礼物。,praise\n"
    "收到的耳机左边没有声音。,complaint\n"
    "支持货到付款吗？,question\n"
    "物流很快，第二天就到了。,praise\n"
    "商品和描述严重不符。,complaint\n"
    "有没有学生优惠？,question\n"
    "售后处理得又快又好。,praise\n"
)
LABEL_MAP = "complaint=投诉\nquestion=咨询\npraise=表扬"


@pytest.fixture(scope="module")
def page(demo_server):
    with chromium_context(TIMEOUT_MS) as context:
        page = context.new_page()
        page.goto(demo_server.url + "/")
        page.wait_for_selector("#seqgpt-status .seqgpt-status")
        yield page


def test_evaluate_tab_shows_progress_scores_charts_errors_and_downloads(page, tmp_path):
    page.get_by_role("tab", name="评测 Evaluate").click()
    upload = tmp_path / "tickets_labelled.csv"
    upload.write_text(LABELLED, encoding="utf-8")
    upload_file(page, "evaluate-file", upload)
    page.locator("#evaluate-map textarea").fill(LABEL_MAP)
    page.locator("#evaluate-run").click()

    page.locator(".progress-level-inner", has_text="Evaluating").first.wait_for()
    page.screenshot(path=str(OUTPUT / "20-evaluate-progress.png"), full_page=True)

    page.wait_for_selector("#evaluate-summary :text('Request')")
    summary = page.locator("#evaluate-summary").inner_text()
    assert "Accuracy" in summary and "macro-F1" in summary
    assert "12 行 rows" in summary
    assert "Skipped 1 bad rows (line 6: no text" in summary
    scores = page.locator("#evaluate-metrics").inner_text()
    for label in ("投诉", "咨询", "表扬"):
        assert label in scores
    for chart in ("#evaluate-confusion img", "#evaluate-f1 img"):
        page.wait_for_selector(chart)
        assert page.locator(chart).evaluate("img => img.complete && img.naturalWidth > 300")
    page.screenshot(path=str(OUTPUT / "21-evaluate-report.png"), full_page=True)

    with page.expect_download() as report_download:
        page.locator("#evaluate-downloads a[download='report.json']").click()
    saved = tmp_path / "report.json"
    report_download.value.save_as(saved)
    report = json.loads(saved.read_text(encoding="utf-8"))
    assert report["task"] == "classify" and report["rows"] == 12
    assert set(report["per_label"]) == {"投诉", "咨询", "表扬"}
    assert report["skipped"][0]["line"] == 6
    assert f"{report['accuracy']:.4f}" in summary

    with page.expect_download() as predictions_download:
        page.locator("#evaluate-downloads a[download='predictions.jsonl']").click()
    saved = tmp_path / "predictions.jsonl"
    predictions_download.value.save_as(saved)
    lines = [json.loads(line) for line in saved.read_text(encoding="utf-8").splitlines()]
    assert [line["line"] for line in lines] == [2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14]
    assert all(line["label"] in ("投诉", "咨询", "表扬") for line in lines)


def test_evaluate_tab_scores_summaries_by_rouge(page, tmp_path):
    page.reload()  # a fresh form: the file box still holds the previous test's upload
    page.wait_for_selector("#seqgpt-status .seqgpt-status")
    page.get_by_role("tab", name="评测 Evaluate").click()
    upload = tmp_path / "lcsts_sample.jsonl"
    rows = [{"content": "员工提交发票和审批单，财务部门在五个工作日内完成付款。", "summary": "报销五日内付款"},
            {"content": "笔记本电池无法充电时，请检查电源适配器、充电口和电池健康度。", "summary": "电池不充电的检查"}]
    upload.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows), encoding="utf-8")
    upload_file(page, "evaluate-file", upload)
    page.get_by_label("摘要 Summarize").check()
    page.locator("#evaluate-max-chars input").fill("12")
    page.locator("#evaluate-run").click()

    page.wait_for_selector("#evaluate-summary :text('ROUGE F1')")
    summary = page.locator("#evaluate-summary").inner_text()
    assert "rouge1" in summary and "rougeL" in summary and "2 行 rows" in summary
    scores = page.locator("#evaluate-metrics").inner_text()
    assert "rouge2" in scores
    assert page.locator("#evaluate-confusion").is_hidden()  # no labels to confuse
    page.wait_for_selector("#evaluate-f1 img")
    assert page.locator("#evaluate-f1 img").evaluate("img => img.complete && img.naturalWidth > 300")
    page.screenshot(path=str(OUTPUT / "22-evaluate-rouge.png"), full_page=True)

    with page.expect_download() as report_download:
        page.locator("#evaluate-downloads a[download='report.json']").click()
    saved = tmp_path / "report.json"
    report_download.value.save_as(saved)
    report = json.loads(saved.read_text(encoding="utf-8"))
    assert report["task"] == "summarize" and report["rows"] == 2
    assert f"{report['rougeL']['f1']:.4f}" in summary
