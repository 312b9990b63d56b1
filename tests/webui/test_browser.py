"""One real headless Chromium drives the UI on demo weights through every tab.

Screenshots go to ``test-output/browser/`` at the repository root (git-ignored), one per step.
"""

from __future__ import annotations

import csv

import pytest
from browser import OUTPUT, chromium_context, upload_file

pytestmark = [pytest.mark.browser, pytest.mark.service]

SCRIPT_LABEL = "<script>alert(1)</script>"
IMG_LABEL = "<img src=x onerror=alert(2)>"
CONTRACT = "本合同由甲方北京星河科技有限公司与乙方上海云帆信息技术有限公司签订，合同金额人民币一百万元整。"
# A ceiling, not an expectation: the sample batch takes seconds, but minutes on a machine busy with other work.
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def page(demo_server):
    with chromium_context(TIMEOUT_MS) as context:
        page = context.new_page()
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(demo_server.url + "/")
        page.wait_for_selector("#seqgpt-status .seqgpt-status")
        yield page


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("textarea, input").first


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_status_bar_reads_cpu_and_is_green_with_the_demo_banner(page):
    page.wait_for_selector('#seqgpt-status [data-level="ok"]')
    bar = page.locator("#seqgpt-status .seqgpt-status")
    assert "CPU" in bar.inner_text()
    colour = bar.evaluate("el => getComputedStyle(el).borderLeftColor")
    assert colour == "rgb(30, 142, 62)"
    assert "download_model.py" in page.locator("#seqgpt-demo-banner").inner_text()
    page.screenshot(path=str(OUTPUT / "01-status.png"), full_page=True)


def test_classify_shows_the_chosen_label_and_every_confidence_as_text(page):
    open_tab(page, "文本分类 Classification")
    textbox(page, "classify-text").fill(CONTRACT)
    textbox(page, "classify-labels").fill(f"合同，新闻，{SCRIPT_LABEL}，{IMG_LABEL}")
    page.locator("#classify-run").click()
    page.wait_for_selector("#classify-details :text('Request')")
    result = page.locator("#classify-result").inner_text()
    for label in ("合同", "新闻", SCRIPT_LABEL, IMG_LABEL):
        assert label in result
    assert "%" in result
    assert page.dialogs == []
    assert page.locator("#classify-result img").count() == 0
    page.screenshot(path=str(OUTPUT / "02-classify.png"), full_page=True)


def test_extract_shows_highlight_json_table_and_markdown(page):
    open_tab(page, "信息抽取 Extraction")
    textbox(page, "extract-text").fill(CONTRACT)
    textbox(page, "extract-fields").fill(f"甲方，乙方，{IMG_LABEL}")
    page.locator("#extract-run").click()
    page.wait_for_selector("#extract-details :text('Request')")
    assert "星河" in page.locator("#extract-highlight").inner_text()
    json_text = page.locator("#extract-json").inner_text()
    assert "甲方" in json_text and IMG_LABEL in json_text
    assert page.locator("#extract-json img, #extract-highlight img").count() == 0
    assert page.dialogs == []
    page.screenshot(path=str(OUTPUT / "03-extract-json.png"), full_page=True)

    page.get_by_label("表格 Table").check()
    page.wait_for_selector("#extract-table", state="visible")
    assert "字段 Field" in page.locator("#extract-table").inner_text()
    page.screenshot(path=str(OUTPUT / "04-extract-table.png"), full_page=True)

    page.get_by_label("Markdown").check()
    page.wait_for_selector("#extract-markdown", state="visible")
    assert "| 字段 Field" in page.locator("#extract-markdown").inner_text()
    page.screenshot(path=str(OUTPUT / "05-extract-markdown.png"), full_page=True)


def test_free_prompt_is_prefilled_and_shows_the_raw_output(page):
    open_tab(page, "自由Prompt Free prompt")
    prompt = textbox(page, "generate-prompt").input_value()
    assert prompt.startswith("输入: ") and "\n分类: " in prompt and prompt.endswith("输出: [GEN]")
    page.locator("#generate-run").click()
    page.wait_for_selector("#generate-details :text('Request')")
    assert isinstance(textbox(page, "generate-output").input_value(), str)
    page.screenshot(path=str(OUTPUT / "06-prompt.png"), full_page=True)


def test_batch_upload_shows_a_table_and_downloads_csv(page, tmp_path):
    open_tab(page, "批量处理 Batch")
    upload = tmp_path / "tickets.csv"
    upload.write_text("id,text\n1,快递三天没有更新物流\n2,请问是否支持私有化部署\n3,工程师态度很好\n",
                      encoding="utf-8")
    upload_file(page, "batch-file", upload)
    textbox(page, "batch-labels").fill("投诉，咨询，表扬")
    page.locator("#batch-run").click()
    page.wait_for_selector("#batch-details :text('Done: 3 texts, 0 failed')")
    table = page.locator("#batch-table").inner_text()
    assert "快递三天没有更新物流" in table and "工程师态度很好" in table
    page.screenshot(path=str(OUTPUT / "07-batch.png"), full_page=True)

    with page.expect_download() as download_info:
        page.locator("#batch-downloads a[download='results.csv']").click()
    saved = OUTPUT / "results.csv"
    download_info.value.save_as(saved)
    with saved.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["text"] for row in rows] == ["快递三天没有更新物流", "请问是否支持私有化部署", "工程师态度很好"]
    assert all(row["label"] in ("投诉", "咨询", "表扬") for row in rows)
