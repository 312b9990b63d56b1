"""A UI error toast names its outcome in both languages, then the error's own words once, then the request id."""

from __future__ import annotations

from webui.jobs.errors import JobNotFoundError
from webui.logging_setup import REQUEST_ID
from webui.ui.tabs import ui_error


def test_an_error_whose_words_open_with_the_outcomes_chinese_says_it_once() -> None:
    token = REQUEST_ID.set("req7")
    try:
        error = ui_error(JobNotFoundError("没有这个任务 · there is no job 'x': GET /api/jobs lists the jobs"))
    finally:
        REQUEST_ID.reset(token)
    assert error.message == ("没有这个任务 No such job: there is no job 'x': GET /api/jobs lists the jobs"
                             " · 请求 Request req7")


def test_deleting_a_missing_document_is_a_404_named_no_such_document() -> None:
    from webui.kb.errors import DocumentNotFoundError
    from webui.outcomes import outcome_of

    assert outcome_of(DocumentNotFoundError("x")).status == 404
    token = REQUEST_ID.set("req8")
    try:
        error = ui_error(DocumentNotFoundError("没有这个文档 · there is no document 'x': the list shows every id"))
    finally:
        REQUEST_ID.reset(token)
    assert error.message == ("没有这个文档 No such document: there is no document 'x': the list shows every id"
                             " · 请求 Request req8")
