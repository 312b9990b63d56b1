"""Bad input at every entry point of a real server gets a calm bilingual answer with its request id, and is logged.

One test per case of the report that found them: lone surrogates, oversized bodies, Gradio API values,
unknown routes and methods, the free-prompt note, messages and types, and the tokenizer's warning.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request

import httpx
import pytest
import requests
from gradio_client import Client

pytestmark = pytest.mark.service

CONTRACT = "本合同由甲方北京星河科技有限公司与乙方上海云帆信息技术有限公司签订，合同金额人民币一百万元整。"
CJK = re.compile(r"[\u4e00-\u9fff]")


def lines_of(server, request_id: str) -> list[str]:
    return [line for line in server.log_text().splitlines() if request_id in line]


def assert_still_serving(server) -> None:
    with server.client() as http:
        response = http.post("/api/classify", json={"text": CONTRACT, "labels": "合同，新闻"})
    assert response.status_code == 200


@pytest.fixture(scope="module")
def gradio(demo_server, tmp_path_factory) -> Client:
    return Client(demo_server.url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("client-downloads")))


# 1. Lone surrogates


def test_a_lone_surrogate_is_422_and_its_request_id_is_in_the_log(demo_server):
    body = b'{"text": "a\\ud800b", "labels": "x"}'  # valid JSON: the escape decodes to a lone surrogate
    with demo_server.client() as http:
        response = http.post("/api/classify", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "surrogate" in response.json()["error"] and CJK.search(response.json()["error"])
    [line] = lines_of(demo_server, response.json()["request_id"])
    assert "outcome=invalid" in line
    assert "Logging error" not in demo_server.log_text()
    assert_still_serving(demo_server)


def test_a_lone_surrogate_in_a_label_or_a_prompt_is_422(demo_server):
    with demo_server.client() as http:
        label = http.post("/api/extract", content=b'{"text": "abc", "fields": ["\\udfff"]}')
        prompt = http.post("/api/generate", content=b'{"prompt": "\\ud83d"}')
    assert label.status_code == prompt.status_code == 422
    assert "surrogate" in label.json()["error"] and "surrogate" in prompt.json()["error"]


# 2. Oversized bodies

BIG_BODY = json.dumps({"text": "x" * 10_000_000, "labels": "a"}).encode()


def test_a_10_mb_body_gets_413_with_urllib(demo_server):
    request = urllib.request.Request(demo_server.url + "/api/classify", data=BIG_BODY,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    body = json.loads(caught.value.read())
    assert "SEQGPT_MAX_TEXT_CHARS" in body["error"] and body["request_id"]
    assert lines_of(demo_server, body["request_id"])


def test_a_10_mb_body_gets_413_with_requests_httpx_and_curl(demo_server, tmp_path):
    url = demo_server.url + "/api/classify"
    assert requests.post(url, data=BIG_BODY, timeout=60).status_code == 413
    assert httpx.post(url, content=BIG_BODY, timeout=60).status_code == 413
    path = tmp_path / "big.json"
    path.write_bytes(BIG_BODY)
    curl = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                           "--data-binary", f"@{path}", url], capture_output=True, text=True, timeout=60)
    body, status = curl.stdout.rsplit("\n", 1)
    assert status == "413" and "error" in json.loads(body)
    assert_still_serving(demo_server)


def test_a_chunked_body_over_the_limit_gets_413(demo_server):
    def chunks():
        for start in range(0, len(BIG_BODY), 1 << 16):
            yield BIG_BODY[start:start + (1 << 16)]

    response = httpx.post(demo_server.url + "/api/extract", content=chunks(), timeout=60)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413 and response.json()["request_id"]


# 4. The Gradio API


@pytest.mark.parametrize(
    ("args", "api_name", "expected"),
    [
        (("abc", "甲方", 1.5), "/extract", "threshold"),
        (("输入: 快递\n分类: 投诉，咨询\n输出: [GEN]", 1000), "/generate", "max_new_tokens"),
        (("abc", '{"text": "<b>x</b>"}' * 4), "/classify", '{"text": "'),
    ],
)
def test_a_bad_value_through_the_gradio_api_is_a_calm_error_and_one_invalid_line(
    gradio, demo_server, args, api_name, expected
):
    before = demo_server.log_text().count("Traceback")
    with pytest.raises(Exception) as caught:  # noqa: PT011 - gradio_client raises AppError, reached via Exception
        gradio.predict(*args, api_name=api_name)
    message = str(caught.value)
    assert "输入有误 Invalid input" in message and expected in message
    assert "&quot;" not in message and "&lt;" not in message
    request_id = re.search(r"Request ([0-9a-f]{32})", message).group(1)
    [line] = lines_of(demo_server, request_id)
    assert "source=ui" in line and "outcome=invalid" in line
    assert demo_server.log_text().count("Traceback") == before


# 5. Unknown routes and methods


def test_a_wrong_method_is_405_and_an_unknown_route_404_both_with_error_and_request_id(demo_server):
    with demo_server.client() as http:
        wrong_method = http.get("/api/classify")
        unknown_api = http.post("/api/classfy", json={})
        unknown_page = http.get("/no/such/page")
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    assert unknown_api.status_code == 404 and unknown_page.status_code == 404
    for response in (wrong_method, unknown_api, unknown_page):
        body = response.json()
        assert body["error"] and body["request_id"] == response.headers["X-Request-ID"]
        assert lines_of(demo_server, body["request_id"])


def test_api_docs_page_and_its_openapi_json_are_served_locally(demo_server):
    with demo_server.client() as http:
        page = http.get("/api/docs")
    assert page.status_code == 200
    assert "/api/openapi.json" in page.text and "/api/classify" in page.text
    assert not re.search(r"""(src|href)=["']?https?://""", page.text)


# 6. The free prompt's note


def test_the_note_says_the_output_was_capped_when_the_prompt_leaves_little_room(gradio, demo_server):
    with demo_server.client() as http:
        counted = http.post("/api/generate", json={"prompt": "输入: " + "快递没有更新。" * 10, "max_new_tokens": 1})
        per_sentence = (counted.json()["prompt_tokens"] - 3) / 10
        repeats = int((1024 - 40) / per_sentence)
        prompt = "输入: " + "快递没有更新。" * repeats + "\n分类: 投诉，咨询\n输出: [GEN]"
        body = http.post("/api/generate", json={"prompt": prompt, "max_new_tokens": 256}).json()
    room = 1024 - body["prompt_tokens"]
    assert 0 < room < 256, "the prompt should leave less room than was asked"
    assert body["truncated"] is True and body["new_tokens"] <= room
    _, note = gradio.predict(prompt, 256, api_name="/generate")
    assert "Output capped" in note and f"prompt is {body['prompt_tokens']} tokens" in note
    assert "start was cut" not in note


def test_a_prompt_longer_than_the_window_is_refused_not_cut(gradio, demo_server):
    prompt = "输入: " + "快递没有更新。" * 1000 + "\n输出: [GEN]"
    with demo_server.client() as http:
        response = http.post("/api/generate", json={"prompt": prompt})
    assert response.status_code == 422 and "shorten it" in response.json()["error"]
    _, note = gradio.predict("输入: 快递没有更新\n分类: 投诉，咨询\n输出: [GEN]", 8, api_name="/generate")
    assert "capped" not in note


# 8. Messages and types


def test_numbers_sent_as_strings_are_refused_alike(demo_server):
    with demo_server.client() as http:
        threshold = http.post("/api/extract", json={"text": "abc", "fields": "甲", "threshold": "0.5"})
        tokens = http.post("/api/generate", json={"prompt": "abc", "max_new_tokens": "5"})
    assert threshold.status_code == tokens.status_code == 422
    assert "`threshold` must be a number from 0 to 1, got '0.5'" in threshold.json()["error"]
    assert "`max_new_tokens` must be a whole number from 1 to 256, got '5'" in tokens.json()["error"]


def test_nan_is_reported_as_not_a_number(demo_server):
    with demo_server.client() as http:
        response = http.post("/api/extract", content=b'{"text": "abc", "fields": "x", "threshold": NaN}')
    assert response.status_code == 422
    assert "NaN" in response.json()["error"] and "≤" not in response.json()["error"]


def test_too_many_field_tokens_are_reported_as_fields(demo_server):
    fields = [f"{i:02d}" + "很长的字段名称" * 8 for i in range(64)]
    with demo_server.client() as http:
        response = http.post("/api/extract", json={"text": CONTRACT, "fields": fields})
    assert response.status_code == 422
    assert "the fields take" in response.json()["error"] and "labels" not in response.json()["error"]


def test_a_list_item_with_a_comma_stays_one_label(demo_server):
    with demo_server.client() as http:
        response = http.post("/api/classify", json={"text": CONTRACT, "labels": ["合同,协议", "新闻"]})
    assert response.status_code == 200
    assert set(response.json()["scores"]) == {"合同,协议", "新闻"}


@pytest.mark.parametrize(
    "body",
    [{"text": "", "labels": "a"}, {"text": "a"}, {"text": "a", "labels": []}, {"text": 5, "labels": "a"}, []],
)
def test_validation_messages_are_in_chinese_and_english(demo_server, body):
    with demo_server.client() as http:
        error = http.post("/api/classify", json=body).json()["error"]
    assert CJK.search(error) and re.search(r"[a-z]{3,} [a-z]{3,}", error)


# 9. Log noise


def test_a_long_text_that_is_split_logs_no_tokenizer_length_warning(demo_server):
    with demo_server.client() as http:
        response = http.post("/api/classify", json={"text": CONTRACT * 60, "labels": "合同，新闻"})
    assert response.status_code == 200 and response.json()["split"] is True
    assert "Token indices sequence length" not in demo_server.log_text()
