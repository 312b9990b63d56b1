"""Uploaded files are saved under names the appliance makes; the user's file name is metadata only, cleaned
of path parts and control characters, whatever it holds."""

from __future__ import annotations

import re

import pytest

from model_loader.text.files import MAX_NAME_CHARS, upload_name
from webui.kb.documents import from_file


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../x.csv", "x.csv"),
        ("..\\..\\windows\\x.csv", "x.csv"),
        ("/etc/passwd", "passwd"),
        ("报告 (1)\r\n<b>\x00.csv", "报告 (1)<b>.csv"),
        ("..", "upload.csv"),
        ("", "upload.csv"),
        (None, "upload.csv"),
    ],
)
def test_an_upload_keeps_only_the_last_part_of_its_name_without_control_characters(given, kept):
    assert upload_name(given, "upload.csv") == kept


def test_a_very_long_name_is_cut_keeping_its_suffix():
    name = upload_name("长" * 1000 + ".jsonl", "upload.jsonl")
    assert len(name) == MAX_NAME_CHARS and name.endswith("长.jsonl")


def test_a_knowledge_base_text_file_named_with_path_parts_gets_its_last_part_as_id():
    [doc] = from_file("../../x.txt", "一段文本".encode(), 10)
    assert doc.doc_id == doc.name == "x.txt" and doc.meta == {"file": "x.txt"}


def test_a_knowledge_base_file_with_odd_characters_is_taken_with_a_safe_id_and_its_name_as_metadata():
    [doc] = from_file("报告 (1)\n<终稿>.txt", "一段文本".encode(), 10)
    # The characters an id cannot hold become _, and a digest of the name keeps it apart from 报告 [1]<终稿>.txt.
    assert doc.name == "报告 (1)<终稿>.txt" and re.fullmatch(r"报告 _1__终稿_\.txt-[0-9a-f]{8}", doc.doc_id)
    rows = from_file("数据 [v2].jsonl", '{"text": "甲"}\n{"text": "乙", "id": "own-id"}\n'.encode(), 10)
    assert re.fullmatch(r"数据 _v2_\.jsonl:1-[0-9a-f]{8}", rows[0].doc_id) and rows[1].doc_id == "own-id"


# A client percent-encodes control characters in a multipart file name: upload_name's own test covers them.
ODD = "报告 (1) <终稿>;'%.csv"


@pytest.mark.service
@pytest.mark.parametrize(("filename", "kept"), [("../../x.csv", "x.csv"), (ODD, ODD)])
def test_a_job_upload_is_saved_under_the_job_s_id_whatever_its_name(demo_server, filename, kept):
    with demo_server.client() as http:
        response = http.post("/api/jobs", files={"file": (filename, "text\n快递没到\n".encode())},
                             data={"task": "classify", "labels": "投诉，咨询"})
        assert response.status_code == 202, response.text
        job = http.get(f"/api/jobs/{response.json()['job_id']}").json()
    jobs_dir = demo_server.workspace / "jobs"
    assert (jobs_dir / job["job_id"] / "input.csv").read_text(encoding="utf-8") == "text\n快递没到\n"
    assert job["input_name"] == kept
    outside = [p for p in demo_server.workspace.parent.rglob("*") if p.name == kept]
    assert outside == []
