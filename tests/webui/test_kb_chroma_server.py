"""The knowledge base against a real Chroma server (`chroma run`, from the chromadb package) as SEQGPT_KB_URL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import free_port

from model_loader.embedding import Embedder, EmbeddingSettings
from webui.jobs.errors import StorageError
from webui.kb.documents import NewDocument, from_file
from webui.kb.service import KnowledgeBase
from webui.kb.settings import KbSettings
from webui.kb.store import SCHEMA_VERSION
from webui.outcomes import outcome_of

CHROMA = Path(sys.executable).parent / "chroma"


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = (data / "chroma.log").open("wb")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    process = subprocess.Popen([str(CHROMA), "run", "--path", str(data / "db"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"chroma run did not answer within 60 s: {(data / 'chroma.log').read_text()}")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
    demo = tmp_path_factory.mktemp("gte") / "gte-demo"
    embedder = Embedder(EmbeddingSettings(model_dir=demo, demo_dir=demo))
    yield embedder
    embedder.close()


def test_the_same_code_stores_and_searches_on_a_chroma_server(chroma_url: str, embedder: Embedder,
                                                             tmp_path: Path) -> None:
    kb = KnowledgeBase(embedder, KbSettings(path=tmp_path / "unused", url=chroma_url, passage_chars=30))
    text = "硬件故障排查指南：电脑蓝屏时先检查内存条。重启后进不去系统，进入安全模式卸载驱动。打印机脱机请重装驱动。"
    [stored] = kb.add([NewDocument("guide", "guide", text)])
    assert stored.chunks >= 2
    assert not (tmp_path / "unused").exists()  # nothing embedded: the server holds the base
    for hit in kb.search(text[:25], 5)[:1]:
        assert hit.doc_id == "guide" and text[hit.start:hit.end] == hit.text
    passage = kb.search(text, 5)[0]
    first = kb.search(passage.text, 5)[0]
    assert (first.doc_id, first.chunk_id) == (passage.doc_id, passage.chunk_id) and first.score >= 0.99
    assert kb.store().schema_version == SCHEMA_VERSION
    # A second app on the same server sees the same base.
    other = KnowledgeBase(embedder, KbSettings(path=tmp_path / "unused", url=chroma_url))
    assert [d.doc_id for d in other.documents()] == ["guide"]
    kb.delete("guide")
    assert other.documents() == [] and other.search(passage.text, 5) == []


def test_a_knowledge_base_path_that_cannot_be_a_folder_is_a_storage_error_saying_what_to_check(
        embedder: Embedder, tmp_path: Path) -> None:
    taken = tmp_path / "kb"
    taken.write_text("a file where the folder should be", encoding="utf-8")
    kb = KnowledgeBase(embedder, KbSettings(path=taken))
    with pytest.raises(StorageError, match="could not be opened") as refused:
        kb.documents()
    assert "知识库无法打开" in str(refused.value) and "SEQGPT_KB_PATH" in str(refused.value)
    assert outcome_of(refused.value).status == 507


def test_uploads_of_many_file_names_keep_no_lock_once_done(embedder: Embedder, tmp_path: Path) -> None:
    kb = KnowledgeBase(embedder, KbSettings(path=tmp_path / "kb"))
    for n in range(3):
        docs = from_file(f"notes-{n}.txt", "打印机脱机请重装驱动。".encode(), 10)
        kb.add_file(docs)
    assert [d.file for d in kb.documents()] == ["notes-0.txt", "notes-1.txt", "notes-2.txt"]
    assert len(kb._file_locks) == 0
