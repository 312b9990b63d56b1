"""The knowledge base and summaries through real HTTP on demo weights of both models (SeqGPT and GTE)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import RunningServer, start_server, stop_server

GUIDE = (
    "硬件故障排查指南：电脑蓝屏或重启后无法进入系统时，先断电检查内存条和硬盘连接。"
    "再尝试进入安全模式，卸载最近安装的驱动程序。\n\n"
    "若仍无法启动，使用系统修复盘恢复引导记录，必要时备份数据后重装系统。"
    "笔记本电池无法充电时，请检查电源适配器、充电口和电池健康度。"
)
POLICY = "报销流程：员工提交发票和审批单，财务部门在五个工作日内完成付款。合同金额超过一百万元须经法务部审核。"


@pytest.fixture(scope="module")
def kb_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[tuple[RunningServer, Path]]:
    tmp = tmp_path_factory.mktemp("kb-server")
    server = start_server(tmp, demo_model_dir, {"SEQGPT_KB_PASSAGE_CHARS": "40"})
    yield server, tmp
    stop_server(server)


def _add(client, docs: list[dict]) -> dict:
    response = client.post("/api/kb/documents", json={"documents": docs})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_passage_searched_by_its_own_text_comes_first_and_its_offsets_slice_the_document(kb_server) -> None:
    server, _ = kb_server
    with server.client() as client:
        added = _add(client, [{"id": "guide", "text": GUIDE, "meta": {"source": "it"}},
                              {"id": "policy", "text": POLICY}])
        chunks = {d["doc_id"]: d["chunks"] for d in added["documents"]}
        assert chunks["guide"] >= 3 and chunks["policy"] >= 2
        for doc_id, text in (("guide", GUIDE), ("policy", POLICY)):
            for chunk in range(chunks[doc_id]):
                hits = client.post("/api/kb/search", json={"query": _passage(client, doc_id, chunk, text),
                                                           "top_k": 3}).json()["hits"]
                first = hits[0]
                assert (first["doc_id"], first["chunk_id"]) == (doc_id, chunk)
                assert first["score"] >= 0.99
                assert text[first["start"]:first["end"]] == first["text"]
                assert all(h["score"] <= first["score"] for h in hits)


def _passage(client, doc_id: str, chunk: int, text: str) -> str:
    """A passage's text, found through a search for the whole document (any hit of that chunk)."""
    hits = client.post("/api/kb/search", json={"query": text[:900], "top_k": 20}).json()["hits"]
    return next(h["text"] for h in hits if h["doc_id"] == doc_id and h["chunk_id"] == chunk)


def test_re_adding_replaces_passages_and_deleting_removes_them(kb_server) -> None:
    server, _ = kb_server
    with server.client() as client:
        _add(client, [{"id": "temp", "text": GUIDE}])
        _add(client, [{"id": "temp", "text": "打印机脱机：确认网线连接正常。"}])
        listed = {d["doc_id"]: d for d in client.get("/api/kb/documents").json()["documents"]}
        assert listed["temp"]["chunks"] == 1
        query = {"query": "打印机脱机：确认网线连接正常。", "top_k": 20}
        hits = client.post("/api/kb/search", json=query).json()["hits"]
        assert [h["text"] for h in hits if h["doc_id"] == "temp"] == ["打印机脱机：确认网线连接正常。"]
        assert client.delete("/api/kb/documents/temp").status_code == 200
        assert "temp" not in {d["doc_id"] for d in client.get("/api/kb/documents").json()["documents"]}
        hits = client.post("/api/kb/search", json={"query": "打印机脱机", "top_k": 20}).json()["hits"]
        assert all(h["doc_id"] != "temp" for h in hits)
        missing = client.delete("/api/kb/documents/temp")
        assert missing.status_code == 404 and "no document" in missing.json()["error"]


def test_documents_sent_without_ids_never_replace_one_another(kb_server) -> None:
    server, _ = kb_server
    with server.client() as client:
        first = _add(client, [{"text": "第一份文件：报销需附发票原件。"}])["documents"][0]["doc_id"]
        second = _add(client, [{"text": "第二份文件：请假需提前三天申请。"}])["documents"][0]["doc_id"]
        again = _add(client, [{"text": "第一份文件：报销需附发票原件。"}])["documents"][0]["doc_id"]
        listed = {d["doc_id"] for d in client.get("/api/kb/documents").json()["documents"]}
        assert first != second and again == first and {first, second} <= listed
        for doc_id in (first, second):
            client.delete(f"/api/kb/documents/{doc_id}")


def test_file_names_an_id_cannot_hold_as_they_are_never_share_a_document(kb_server) -> None:
    server, _ = kb_server
    files = {"x+y.txt": "第一份合同：甲方为星河科技。", "x_y.txt": "第二份报告：乙方为月亮公司。",
             "report (1).txt": "第三份：丙方为太阳集团。", "report [1].txt": "第四份：丁方为海洋物流。"}
    with server.client() as client:
        ids = {}
        for name, text in files.items():
            added = client.post("/api/kb/documents", files={"file": (name, text.encode(), "text/plain")})
            assert added.status_code == 200 and added.json()["removed"] == [], added.text
            ids[name] = added.json()["documents"][0]["doc_id"]
        assert ids["x_y.txt"] == "x_y.txt", "a name an id can hold is its id"
        assert len(set(ids.values())) == 4
        listed = {d["doc_id"]: d["name"] for d in client.get("/api/kb/documents").json()["documents"]}
        assert {listed[doc_id] for doc_id in ids.values()} == set(files)
        for name, text in files.items():
            hits = client.post("/api/kb/search", json={"query": text, "top_k": 1}).json()["hits"]
            assert hits[0]["doc_id"] == ids[name] and hits[0]["text"] == text
        edited = ("x+y.txt", "第一份合同，改过。".encode(), "text/plain")
        again = client.post("/api/kb/documents", files={"file": edited})
        assert again.json()["documents"][0]["doc_id"] == ids["x+y.txt"], "the same name replaces its own document"
        for doc_id in ids.values():
            assert client.delete(f"/api/kb/documents/{doc_id}").status_code == 200


def test_a_file_upload_adds_one_document_per_row(kb_server) -> None:
    server, _ = kb_server
    rows = ('{"id": "faq-1", "text": "如何重置密码？在登录页点击忘记密码。"}\n'
            '{"text": "发票抬头如何修改？联系财务部。"}\n')
    with server.client() as client:
        response = client.post("/api/kb/documents", files={"file": ("faq.jsonl", rows.encode(), "application/json")})
        assert response.status_code == 200, response.text
        assert [d["doc_id"] for d in response.json()["documents"]] == ["faq-1", "faq.jsonl:2"]


def test_uploading_an_edited_file_again_replaces_what_its_earlier_upload_added(kb_server) -> None:
    server, _ = kb_server
    first = "text\n退货须在七天内申请。\n运费由买家承担。\n发票随货寄出。\n"
    edited = "text\n退货须在十五天内申请。\n发票随货寄出。\n"  # the second row deleted, the first changed
    with server.client() as client:
        _add(client, [{"id": "kept-by-id", "text": POLICY, "meta": {"file": "other.csv"}}])
        added = client.post("/api/kb/documents", files={"file": ("policy.csv", first.encode(), "text/csv")})
        assert added.status_code == 200 and added.json()["removed"] == []
        again = client.post("/api/kb/documents", files={"file": ("policy.csv", edited.encode(), "text/csv")})
        assert again.status_code == 200, again.text
        assert again.json()["removed"] == ["policy.csv:4"]
        listed = {d["doc_id"] for d in client.get("/api/kb/documents").json()["documents"]}
        assert {"policy.csv:2", "policy.csv:3", "kept-by-id"} <= listed and "policy.csv:4" not in listed
        texts = [h["text"] for h in client.post("/api/kb/search", json={"query": "运费由买家承担", "top_k": 20})
                 .json()["hits"]]
        assert not any("运费" in text for text in texts), "the deleted row is no longer found"
        assert not any("七天" in text for text in texts), "nor the row's earlier text"
        for doc_id in ("policy.csv:2", "policy.csv:3", "kept-by-id"):
            client.delete(f"/api/kb/documents/{doc_id}")


def test_a_row_column_named_file_does_not_make_its_document_part_of_another_upload(kb_server) -> None:
    server, _ = kb_server
    rows = "id,text,file\nsheet-1,退货须在七天内申请。,other.csv\n"
    with server.client() as client:
        added = client.post("/api/kb/documents", files={"file": ("sheet.csv", rows.encode(), "text/csv")})
        assert added.status_code == 200, added.text
        other = client.post("/api/kb/documents", files={"file": ("other.csv", "text\n运费由买家承担。\n".encode(),
                                                                  "text/csv")})
        assert other.status_code == 200 and other.json()["removed"] == [], "sheet.csv's row is not other.csv's"
        listed = {d["doc_id"]: d for d in client.get("/api/kb/documents").json()["documents"]}
        assert listed["sheet-1"]["file"] == "sheet.csv" and listed["sheet-1"]["meta"]["file"] == "other.csv"
        again = client.post("/api/kb/documents", files={"file": ("sheet.csv", "text\n发票随货寄出。\n".encode(),
                                                                  "text/csv")})
        assert again.json()["removed"] == ["sheet-1"], "its own upload, edited, still replaces it"
        for doc_id in ("sheet.csv:2", "other.csv:2"):
            client.delete(f"/api/kb/documents/{doc_id}")


def test_a_file_sent_with_its_folder_in_the_name_replaces_its_earlier_upload(kb_server) -> None:
    server, _ = kb_server
    with server.client() as client:
        for rows in ("text\n退货须在七天内申请。\n运费由买家承担。\n", "text\n退货须在十五天内申请。\n"):
            sent = client.post("/api/kb/documents", files={"file": ("reports/refunds.csv", rows.encode(), "text/csv")})
            assert sent.status_code == 200, sent.text
        assert sent.json()["removed"] == ["refunds.csv:3"]
        listed = {d["doc_id"]: d["file"] for d in client.get("/api/kb/documents").json()["documents"]}
        assert listed["refunds.csv:2"] == "refunds.csv" and "refunds.csv:3" not in listed
        client.delete("/api/kb/documents/refunds.csv:2")


def test_a_form_whose_content_type_is_written_in_capitals_is_read_as_a_form(kb_server) -> None:
    server, _ = kb_server
    body = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="capitals.txt"\r\n\r\n'
            + GUIDE.encode() + b"\r\n--b0undary--\r\n")
    with server.client() as client:
        sent = client.post("/api/kb/documents", content=body,
                           headers={"Content-Type": "Multipart/Form-Data; boundary=b0undary"})
        assert sent.status_code == 200, sent.text
        assert [d["doc_id"] for d in sent.json()["documents"]] == ["capitals.txt"]
        client.delete("/api/kb/documents/capitals.txt")


def test_summaries_carry_their_health_figures_and_feed_the_metrics(kb_server) -> None:
    server, _ = kb_server
    with server.client() as client:
        response = client.post("/api/summarize", json={"text": GUIDE, "max_chars": 30})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"summary", "compression_ratio", "similarity", "flags", "request_id", "latency_ms"}
        assert len(body["summary"]) <= 30
        assert body["compression_ratio"] == round(len(body["summary"]) / len(GUIDE), 4)
        assert -1.0 <= body["similarity"] <= 1.0
        expected = ["drifted"] if body["similarity"] < 0.45 else []
        ratio = body["compression_ratio"]
        expected += ["too_terse"] if ratio < 0.12 else ["too_long"] if ratio > 0.35 else []
        assert body["flags"] == expected
        asked = client.post("/api/kb/ask", json={"query": "电脑蓝屏", "top_k": 2, "max_chars": 20}).json()
        assert len(asked["hits"]) == 2 and set(asked["summary"]) >= {"summary", "similarity", "flags"}
        metrics = client.get("/metrics").text
        assert "seqgpt_summary_compression_ratio_count 2.0" in metrics
        assert "seqgpt_summary_similarity_count 2.0" in metrics


def test_health_shows_the_embedding_model_as_demo_weights(kb_server) -> None:
    server, _ = kb_server
    with server.client() as client:
        client.post("/api/kb/search", json={"query": "蓝屏"})
        embedding = client.get("/health").json()["embedding"]
    assert embedding["state"] == "ready" and embedding["is_demo"] is True
    assert "DEMO WEIGHTS" in server.log_text()


BAD = [
    ("post", "/api/kb/search", {"json": {"query": ""}}, 422, "query"),
    ("post", "/api/kb/search", {"json": {"query": "蓝屏", "top_k": 0}}, 422, "top_k"),
    ("post", "/api/kb/search", {"json": {"query": "蓝屏", "top_k": "3"}}, 422, "top_k"),
    ("post", "/api/kb/search", {"json": ["蓝屏"]}, 422, "JSON object"),
    ("post", "/api/kb/search", {"content": b"{not json"}, 422, "not valid JSON"),
    ("post", "/api/kb/search", {"json": {"query": "长" * 1001}}, 422, "more than 1000"),
    ("post", "/api/kb/documents", {"json": {"documents": []}}, 422, "non-empty list"),
    ("post", "/api/kb/documents", {"json": {"documents": [{"id": "a", "text": " "}]}}, 422, "no text"),
    ("post", "/api/kb/documents", {"json": {"documents": [{"id": "a/../b", "text": "x"}]}}, 422, "not valid"),
    ("post", "/api/kb/documents", {"json": {"documents": [{"id": "a", "text": "x", "meta": 3}]}}, 422, "meta"),
    ("post", "/api/kb/documents", {"json": {"documents": [{"id": "a", "text": "甲"}, {"id": "a", "text": "乙"}]}},
     422, "both have id 'a'"),
    ("post", "/api/kb/documents", {"files": {"file": ("a.csv", "id,text\nk1,甲\nk1,乙\n".encode(), "text/csv")}},
     422, "both have id 'k1'"),
    ("post", "/api/kb/documents", {"files": {"file": ("a.pdf", b"%PDF", "application/pdf")}}, 422, ".txt"),
    ("post", "/api/kb/documents", {"files": {"file": ("a.txt", b"\xff\xfe\xfa", "text/plain")}}, 422, "UTF-8"),
    ("post", "/api/kb/documents", {"files": {"file": ("a.csv", b"title\nx\n", "text/csv")}}, 422, "text"),
    ("post", "/api/kb/documents", {"files": {"file": ("a.txt", b"x" * (10 * 1024 * 1024 + 10), "text/plain")}},
     413, "SEQGPT_KB_MAX_UPLOAD_BYTES"),
    ("post", "/api/kb/documents", {"json": {"documents": [{"id": "a", "text": "x" * (10 * 1024 * 1024 + 10)}]}},
     413, "SEQGPT_KB_MAX_UPLOAD_BYTES"),
    ("post", "/api/kb/search", {"json": {"query": "长" * 30_000}}, 413, "shorter query"),
    ("post", "/api/kb/ask", {"json": {"query": "长" * 30_000}}, 413, "shorter query"),
    ("post", "/api/kb/documents", {"files": {"file": (None, "硬件故障排查指南")}}, 422, "came as a text field"),
    ("delete", "/api/kb/documents/nope", {}, 404, "no document"),
    ("get", "/api/kb/documents/", {}, 404, "there is no /api/kb/documents/"),
    ("post", "/api/summarize", {"json": {"text": ""}}, 422, "text"),
    ("post", "/api/summarize", {"json": {"text": "abc", "max_chars": 0}}, 422, "max_chars"),
    ("post", "/api/summarize", {"json": {"text": "abc", "max_chars": 501}}, 422, "max_chars"),
    ("post", "/api/summarize", {"json": {"text": "abc", "max_chars": True}}, 422, "max_chars"),
    ("post", "/api/kb/ask", {"json": {"query": "蓝屏", "max_chars": -1}}, 422, "max_chars"),
    ("post", "/api/kb/ask", {"json": {"top_k": 2}}, 422, "query"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "words"), BAD,
                         ids=[f"{m} {p} {s} {w}" for m, p, _, s, w in BAD])
def test_bad_input_on_every_route_gets_a_bilingual_4xx_with_the_request_id(
    kb_server, method: str, path: str, kwargs: dict, status: int, words: str
) -> None:
    server, _ = kb_server
    with server.client() as client:
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error", "request_id"} and body["request_id"] != "-"
        assert words in body["error"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in body["error"])  # the Chinese half
        assert client.get("/health").status_code == 200  # still serving


def new_open_files(pid: int, before: set[str]) -> dict[str, int]:
    """The regular files the process holds open that it did not hold in ``before``, with their sizes."""
    found = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target, info = os.readlink(fd), fd.stat()
        except OSError:  # closed while we looked
            continue
        if stat.S_ISREG(info.st_mode) and target not in before:
            found[target] = info.st_size
    return found


def test_a_chunked_upload_over_the_limit_is_refused_as_it_streams_not_spooled_whole(kb_server) -> None:
    server, _ = kb_server
    limit = 10 * 1024 * 1024  # SEQGPT_KB_MAX_UPLOAD_BYTES's default
    pid = server.process.pid
    before = set(new_open_files(pid, set()))
    held: list[int] = []

    def body():
        yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        for sent in range(0, 3 * limit, 1 << 16):
            if sent in (2 * limit, 3 * limit - (1 << 20)):  # well past the limit: what is the server holding?
                held.append(max(new_open_files(pid, before).values(), default=0))
            yield b"x" * (1 << 16)
        yield b"\r\n--b0undary--\r\n"

    response = httpx.post(server.url + "/api/kb/documents", content=body(), timeout=120,
                          headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413, response.text
    assert "SEQGPT_KB_MAX_UPLOAD_BYTES" in response.json()["error"] and response.json()["request_id"]
    assert len(held) == 2 and max(held) <= limit + 128 * 1024, f"the server spooled {max(held):,} bytes"
    with server.client() as client:
        assert client.get("/health").status_code == 200


def test_a_restart_keeps_the_knowledge_base(kb_server, demo_model_dir: Path) -> None:
    server, tmp = kb_server
    with server.client() as client:
        _add(client, [{"id": "kept", "text": POLICY}])
        before = client.post("/api/kb/search", json={"query": POLICY[:20], "top_k": 3}).json()["hits"]
    stop_server(server)
    again = start_server(tmp, demo_model_dir, {"SEQGPT_KB_PASSAGE_CHARS": "40"})
    try:
        with again.client() as client:
            assert "kept" in {d["doc_id"] for d in client.get("/api/kb/documents").json()["documents"]}
            after = client.post("/api/kb/search", json={"query": POLICY[:20], "top_k": 3}).json()["hits"]
        assert after == before
    finally:
        stop_server(again)
