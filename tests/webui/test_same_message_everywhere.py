"""The same bad input gets the same words from every entry point: the JSON API, the UI handler (through the
Gradio API), the batch tab and the jobs route, because each builds the engine's one checked request type.

One test per task. Free prompts and summaries have no batch path: their test compares the entry
points they have with the words of the engine's request type itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from model_loader.errors import InvalidInputError
from model_loader.settings import Settings
from model_loader.tasks.options import GenerateRequest, SummarizeRequest

pytestmark = pytest.mark.service

TEXT = "客户反馈：订单号20231105的快递三天没有更新物流信息，希望尽快处理。"


@pytest.fixture(scope="module")
def gradio(demo_server, tmp_path_factory) -> Client:
    return Client(demo_server.url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("client-downloads")))


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "texts.txt"
    path.write_text(f"{TEXT}\n快递没到\n", encoding="utf-8")
    return path


def api_error(server, route: str, body: dict) -> str:
    with server.client() as http:
        response = http.post(route, json=body)
    assert response.status_code == 422, response.text
    return response.json()["error"]


def ui_error(gradio: Client, *args, api_name: str) -> str:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - gradio_client raises AppError, reached via Exception
        gradio.predict(*args, api_name=api_name)
    return str(caught.value)


def batch_failure(gradio: Client, texts: Path, task: str, names: str, threshold: object = 0.0) -> str:
    _table, _files, summary = gradio.predict(handle_file(str(texts)), task, names, threshold, False,
                                             api_name="/batch")
    return summary


def job_error(server, texts: Path, data: dict) -> str:
    with server.client() as http:
        response = http.post("/api/jobs", files={"file": ("texts.txt", texts.read_bytes())}, data=data)
    assert response.status_code == 422, response.text
    return response.json()["error"]


@pytest.mark.parametrize(
    ("labels", "words"),
    [(" ，, ", "没有标签 · no labels given"), (",".join(f"l{i}" for i in range(65)), "标签过多 · 65 labels given")],
)
def test_classify_bad_labels_get_the_same_message_from_api_ui_batch_and_jobs(
    demo_server, gradio, texts, labels, words
):
    message = api_error(demo_server, "/api/classify", {"text": TEXT, "labels": labels})
    assert message.startswith(words)
    assert message in ui_error(gradio, TEXT, labels, api_name="/classify")
    assert message in batch_failure(gradio, texts, "classify", labels)
    assert message in job_error(demo_server, texts, {"task": "classify", "labels": labels})


def test_classify_an_empty_text_gets_the_same_message_from_api_and_ui(demo_server, gradio):
    message = api_error(demo_server, "/api/classify", {"text": "   ", "labels": "投诉，咨询"})
    assert message.startswith("文本为空 · `text` is empty")
    assert message in ui_error(gradio, "   ", "投诉，咨询", api_name="/classify")


@pytest.mark.parametrize("threshold", [1.5, -0.5])
def test_extract_a_bad_threshold_gets_the_same_message_from_api_ui_batch_and_jobs(
    demo_server, gradio, texts, threshold
):
    message = api_error(demo_server, "/api/extract", {"text": TEXT, "fields": "订单号", "threshold": threshold})
    assert message.startswith("阈值有误 · `threshold` must be a number from 0 to 1")
    assert message in ui_error(gradio, TEXT, "订单号", threshold, api_name="/extract")
    assert message in batch_failure(gradio, texts, "extract", "订单号", threshold)
    form = {"task": "extract", "fields": "订单号", "threshold": str(threshold)}
    assert message in job_error(demo_server, texts, form)


def test_extract_a_threshold_that_is_no_number_gets_the_same_words_from_api_and_the_jobs_form(demo_server, texts):
    message = api_error(demo_server, "/api/extract", {"text": TEXT, "fields": "订单号", "threshold": "high"})
    assert "got 'high'" in message
    assert message in job_error(demo_server, texts, {"task": "extract", "fields": "订单号", "threshold": "high"})


@pytest.mark.parametrize("max_new_tokens", [0, 100_000])
def test_generate_a_bad_length_gets_the_same_message_from_api_ui_and_the_engine(demo_server, gradio, max_new_tokens):
    with pytest.raises(InvalidInputError) as engine:
        GenerateRequest.checked(Settings(), prompt="输入: 快递\n输出: [GEN]", max_new_tokens=max_new_tokens)
    message = api_error(demo_server, "/api/generate", {"prompt": "输入: 快递\n输出: [GEN]",
                                                       "max_new_tokens": max_new_tokens})
    assert message == str(engine.value)
    assert message in ui_error(gradio, "输入: 快递\n输出: [GEN]", max_new_tokens, api_name="/generate")


def test_summarize_a_bad_length_gets_the_same_message_from_both_routes_and_the_engine(demo_server):
    with pytest.raises(InvalidInputError) as engine:
        SummarizeRequest.checked(Settings(), text=TEXT, max_chars=100_000)
    message = api_error(demo_server, "/api/summarize", {"text": TEXT, "max_chars": 100_000})
    assert message == str(engine.value)
    with demo_server.client() as http:
        response = http.post("/api/kb/ask", json={"query": "快递", "max_chars": 100_000})
    assert response.status_code == 422 and response.json()["error"] == message


def test_summarize_an_empty_text_gets_the_engine_s_words(demo_server):
    with pytest.raises(InvalidInputError) as engine:
        SummarizeRequest.checked(Settings(), text=" ", max_chars=50)
    assert api_error(demo_server, "/api/summarize", {"text": " ", "max_chars": 50}) == str(engine.value)
