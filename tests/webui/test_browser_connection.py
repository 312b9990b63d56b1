"""In a real headless Chromium with a server of its own: typed text survives Gradio's reload, and a server
that stops answering turns the status bar to "connection lost" instead of leaving it "ready"."""

from __future__ import annotations

import signal
import time

import pytest
from browser import OUTPUT, chromium_context
from servers import start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.service]

# A ceiling, not an expectation: seconds on a quiet machine, minutes on one busy with other work.
TIMEOUT_MS = 300_000


def test_typed_text_survives_a_reload_and_a_lost_server_is_shown_as_lost(tmp_path, demo_model_dir):
    server = start_server(tmp_path, demo_model_dir)
    try:
        with chromium_context(TIMEOUT_MS) as context:
            page = context.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector('#seqgpt-status [data-level="ok"]')
            page.locator("#classify-text textarea").fill("客户说快递三天没到")
            page.locator("#classify-labels textarea, #classify-labels input").first.fill("投诉，咨询")
            page.reload()  # what Gradio does when it reconnects to a restarted server
            page.wait_for_selector('#seqgpt-status [data-level="ok"]')
            deadline = time.monotonic() + 10
            while page.locator("#classify-text textarea").input_value() != "客户说快递三天没到":
                assert time.monotonic() < deadline, "the typed text was not restored"
                time.sleep(0.2)
            labels = page.locator("#classify-labels textarea, #classify-labels input").first.input_value()
            assert labels == "投诉，咨询"

            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=60)
            page.wait_for_selector('#seqgpt-status [data-level="offline"]', timeout=30_000)
            assert "连接中断 Connection lost" in page.locator("#seqgpt-status").inner_text()
            assert "就绪 ready" not in page.locator("#seqgpt-status").inner_text()
            page.screenshot(path=str(OUTPUT / "34-status-connection-lost.png"), full_page=True)
    finally:
        stop_server(server)
