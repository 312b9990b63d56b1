"""A real headless Chromium runs a file as a durable job from the batch tab: progress, a page reload, the download."""

from __future__ import annotations

import csv

import pytest
from browser import OUTPUT, chromium_context, upload_file

pytestmark = [pytest.mark.browser, pytest.mark.service]

TIMEOUT_MS = 180_000
ROWS = 4_000


def test_a_job_shows_progress_survives_a_reload_and_downloads_its_results(demo_server, tmp_path):
    upload = tmp_path / "工单.csv"
    with upload.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([f"W{i:05d}", f"第{i}号：快递一直没到，我要投诉"] for i in range(ROWS))
    with chromium_context(TIMEOUT_MS) as context:
        page = context.new_page()
        page.goto(demo_server.url + "/")
        page.get_by_role("tab", name="批量处理 Batch").click()
        upload_file(page, "batch-file", upload)
        page.locator("#batch-labels textarea, #batch-labels input").first.fill("投诉，咨询，表扬")
        page.locator("#jobs-submit").click()
        page.wait_for_function("document.querySelector('#jobs-id textarea, #jobs-id input')?.value.length === 16")
        job_id = page.locator("#jobs-id textarea, #jobs-id input").first.input_value()
        row = f"#jobs-list tr[data-job='{job_id}']"
        # Progress moves: some rows done but not all, seen through the timer's refresh.
        page.wait_for_function(
            f"(() => {{ const p = document.querySelector(\"{row} progress\");"
            f" return p && p.value > 0 && p.value < {ROWS}; }})()"
        )
        page.screenshot(path=str(OUTPUT / "20-job-running.png"), full_page=True)
        page.reload()
        page.get_by_role("tab", name="批量处理 Batch").click()
        page.wait_for_selector(f"{row}[data-state='done']")
        assert f"{ROWS:,} / {ROWS:,}" in page.locator(row).inner_text()
        page.screenshot(path=str(OUTPUT / "21-job-done-after-reload.png"), full_page=True)
        with page.expect_download() as download:
            page.locator(f"{row} a.jobs-csv").click()
        saved = tmp_path / "results.csv"
        download.value.save_as(saved)
    lines = list(csv.reader(saved.open(encoding="utf-8-sig")))
    assert lines[0] == ["id", "text", "row", "label", "score", "error"]
    assert [line[0] for line in lines[1:]] == [f"W{i:05d}" for i in range(ROWS)]
