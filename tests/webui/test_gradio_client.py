"""The Gradio API names classify, extract and generate work through gradio_client."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client

pytestmark = pytest.mark.service

TICKET = "客户反馈：订单号20231105的快递三天没有更新物流信息，希望尽快处理。"


@pytest.fixture(scope="module")
def client(demo_server, tmp_path_factory) -> Client:
    return Client(demo_server.url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("client-downloads")))


def test_classify_by_name_returns_a_given_label_with_confidences(client):
    label, details = client.predict(TICKET, "投诉，咨询，表扬", api_name="/classify")
    assert label["label"] in ("投诉", "咨询", "表扬")
    assert {c["label"] for c in label["confidences"]} == {"投诉", "咨询", "表扬"}
    assert "Request" in details


def test_extract_by_name_returns_highlight_json_table_and_markdown(client):
    highlighted, as_json, table, markdown, details = client.predict(
        TICKET, "订单号，诉求", 0.0, api_name="/extract"
    )
    assert "".join(piece["token"] for piece in highlighted) == TICKET
    assert set(as_json["fields"]) == {"订单号", "诉求"}
    assert table["headers"][0].startswith("字段")
    assert markdown.startswith("| 字段")


def test_generate_by_name_returns_the_raw_output(client):
    text, details = client.predict("输入: 快递没有更新\n分类: 投诉，咨询\n输出: [GEN]", 8, api_name="/generate")
    assert isinstance(text, str)
    assert "Request" in details


def test_bad_input_through_the_client_is_an_error_with_the_reason(client):
    with pytest.raises(Exception, match="no labels given"):
        client.predict(TICKET, "  ", api_name="/classify")


def test_ui_requests_are_logged_with_the_request_id_they_show(client, demo_server):
    _, details = client.predict(TICKET, "投诉，咨询", api_name="/classify")
    request_id = re.search(r"`([0-9a-f]{32})`", details).group(1)
    lines = [line for line in demo_server.log_text().splitlines() if request_id in line]
    assert len(lines) == 1
    assert "task=classify source=ui" in lines[0] and "labels=2" in lines[0] and "outcome=ok" in lines[0]
