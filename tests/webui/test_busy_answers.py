"""What a busy server tells people: each 503 says when to come back in its own terms, the UI words a shed
request through the same table, and the status bar shows how much work is queued."""

from __future__ import annotations

from model_loader.errors import OverloadedError
from webui.logging_setup import REQUEST_ID
from webui.outcomes import outcome_of, response_headers, user_message
from webui.service.gate import BusyError
from webui.service.shutdown import ShuttingDownError
from webui.ui.page_liveness import LongRuns, activity_html
from webui.ui.tabs import ui_error

SHED = OverloadedError(
    "busy: about 119 s of work is queued ahead of this request, more than the 60 s a request may wait "
    "(SEQGPT_MAX_WAIT_S); try again in 119 s", retry_after_s=119)


def test_a_shed_request_is_told_the_estimated_wait() -> None:
    assert outcome_of(SHED).name == "shed" and outcome_of(SHED).status == 503
    assert response_headers(SHED) == {"Retry-After": "119"}
    message = user_message(SHED, "abc123")
    assert "119 秒后再试" in message and "abc123" in message


def test_the_stop_and_the_full_gate_keep_their_own_retry_after() -> None:
    # Admission's estimate belongs to OverloadedError alone: a stop or a full gate never carries it.
    assert response_headers(ShuttingDownError("stopping")) == {"Retry-After": "10"}
    assert response_headers(BusyError("busy: 8 requests running")) == {"Retry-After": "2"}
    assert outcome_of(ShuttingDownError("stopping")).name == "stopping"


def test_the_ui_shows_a_shed_request_as_busy_try_again_in_n_seconds() -> None:
    token = REQUEST_ID.set("req42")
    try:
        error = ui_error(SHED)
    finally:
        REQUEST_ID.reset(token)
    assert error.title == "繁忙 Busy"
    assert error.message.startswith("繁忙 Busy: 服务繁忙，请 119 秒后再试")
    assert "try again in 119 s" in error.message and "req42" in error.message


def test_the_status_bar_shows_the_queued_work_as_a_wait() -> None:
    runs = LongRuns()
    line = activity_html(runs, running=2, waiting=1, queued_s=37.4)
    assert "2 运行 running, 1 等待 waiting" in line and "排队约 37 秒 · about 37 s of work queued" in line
    assert "queued" not in activity_html(runs, running=1, waiting=0, queued_s=0.4), "under a second: no wait"
    assert activity_html(runs, running=0, waiting=0, queued_s=0.0) == ""
