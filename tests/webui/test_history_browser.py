"""One real headless Chromium finds requests in the 历史 History tab, corrects them and evaluates on the corrections.

Screenshots go to ``test-output/browser/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import OUTPUT, chromium_context
from servers import RunningServer, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.service]

TIMEOUT_MS = 300_000
LABELS = ["投诉", "咨询"]
TICKETS = ["历史测试：快递三天没有更新物流信息。", "历史测试：请问企业版是否支持私有化部署？"]
CONTRACT = "历史测试：甲方北京星河科技有限公司，金额为120万元。"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("history-browser"), demo_model_dir,
                           {"SEQGPT_HISTORY": "on", "SEQGPT_EXTRACT_MAX_NEW_TOKENS": "8"})
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def page(server: RunningServer):
    with chromium_context(TIMEOUT_MS) as context:
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#seqgpt-status .seqgpt-status")
        yield page


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("textarea, input").first


def request_id(details: str) -> str:
    return re.search(r"Request\s+([0-9a-f]{32})", details).group(1)


def classify(page, text: str) -> tuple[str, str]:
    page.get_by_role("tab", name="文本分类 Classification").click()
    textbox(page, "classify-text").fill(text)
    textbox(page, "classify-labels").fill("，".join(LABELS))
    shown = page.locator("#classify-details").inner_text()
    previous = request_id(shown) if "Request" in shown else "none yet"
    page.locator("#classify-run").click()
    page.wait_for_function(  # until the details name a new request
        "previous => { const t = document.getElementById('classify-details').innerText;"
        " return t.includes('Request') && !t.includes(previous); }", arg=previous)
    # The Label component shows the chosen label first, above the confidence of each.
    label = next(line.strip() for line in page.locator("#classify-result").inner_text().splitlines()
                 if line.strip() in LABELS)
    return request_id(page.locator("#classify-details").inner_text()), label


def wait_text(page, elem_id: str, words: str) -> None:
    """Until the element's visible text has ``words`` (Gradio keeps hidden copies of some, so no :text())."""
    page.wait_for_function("([id, words]) => document.getElementById(id).innerText.includes(words)",
                           arg=[elem_id, words])


def open_request(page, rid: str) -> None:
    textbox(page, "history-id").fill(rid)
    page.locator("#history-open").click()
    page.wait_for_selector(f"#history-detail :text('{rid}')")


def test_find_a_request_correct_it_and_evaluate_on_the_corrections(page, server):
    answers = [classify(page, text) for text in TICKETS]
    assert answers[0][0] != answers[1][0]
    page.get_by_role("tab", name="信息抽取 Extraction").click()
    textbox(page, "extract-text").fill(CONTRACT)
    textbox(page, "extract-fields").fill("公司名称，金额")
    page.locator("#extract-run").click()
    page.wait_for_selector("#extract-details :text('Request')")
    extract_id = request_id(page.locator("#extract-details").inner_text())

    page.get_by_role("tab", name="历史 History").click()
    textbox(page, "history-q").fill("历史测试")
    page.locator("#history-search").click()
    wait_text(page, "history-table", extract_id)
    listed = page.locator("#history-table").inner_text()
    assert all(rid in listed for rid, _ in answers)
    page.screenshot(path=str(OUTPUT / "30-history-list.png"), full_page=True)

    open_request(page, extract_id)
    assert "星河" in page.locator("#history-highlight").inner_text()
    textbox(page, "history-expected").fill("公司名称: 北京星河科技有限公司\n金额: 120万元")
    page.locator("#history-save").click()
    page.wait_for_selector("#history-saved :text('marked wrong')")
    assert "北京星河科技有限公司" in page.locator("#history-saved").inner_text()

    # Gold in the order the labels were offered (投诉, then 咨询), so the evaluation asks as the requests
    # did; each answer the model already gave right is marked correct, the others corrected.
    correct = 0
    for (rid, label), gold in zip(answers, LABELS, strict=True):
        open_request(page, rid)
        if label == gold:
            page.locator("#history-correct").click()
            wait_text(page, "history-saved", f"{rid} marked correct")
            correct += 1
        else:
            textbox(page, "history-expected").fill(gold)
            page.locator("#history-save").click()
            wait_text(page, "history-saved", f"{rid} marked wrong")
    for (rid, label), gold in zip(answers, LABELS, strict=True):  # what the clicks stored, read back by HTTP
        feedback = httpx.get(f"{server.url}/api/requests/{rid}").json()["feedback"]
        assert feedback == {**feedback, "verdict": "correct" if label == gold else "wrong",
                            "expected": None if label == gold else {"label": gold}}
    counter = page.locator("#history-counter").inner_text()
    assert "classify" in counter and "extract" in counter
    page.screenshot(path=str(OUTPUT / "31-history-corrected.png"), full_page=True)

    page.locator("#history-evaluate").click()
    page.wait_for_selector("#history-eval-summary :text('Accuracy')")
    summary = page.locator("#history-eval-summary").inner_text()
    assert "2 行 rows" in summary
    assert f"Accuracy {correct / 2:.4f}" in summary
    page.wait_for_selector("#history-eval-confusion img")
    page.screenshot(path=str(OUTPUT / "32-history-evaluated.png"), full_page=True)
