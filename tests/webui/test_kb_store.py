"""The passage store left as an app killed mid-write leaves it: on the next open nothing half-written remains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from webui.jobs.errors import StorageError
from webui.kb.passages import Passage
from webui.kb.store import SCHEMA_VERSION, PassageStore, open_client

DIMENSIONS = 8


def passages(doc_id: str, count: int) -> tuple[list[Passage], np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, doc_id)))
    found = [Passage(chunk, chunk * 10, chunk * 10 + 5, f"{doc_id} 第{chunk}段") for chunk in range(count)]
    return found, rng.standard_normal((count, DIMENSIONS)).astype(np.float32)


def write_passages(store: PassageStore, doc_id: str, count: int) -> None:
    """What replace() writes of a document's passages, without finishing the document."""
    found, vectors = passages(doc_id, count)
    store.passages.add(ids=[f"{doc_id}#{p.chunk_id}" for p in found], embeddings=vectors,
                       documents=[p.text for p in found],
                       metadatas=[{"doc_id": doc_id, "chunk_id": p.chunk_id, "start": p.start, "end": p.end}
                                  for p in found])


def searched(store: PassageStore) -> set[str]:
    return {hit.doc_id for vector in np.eye(DIMENSIONS, dtype=np.float32) for hit in store.search(vector, 50)}


def test_a_document_cut_short_while_being_added_is_gone_on_the_next_open(tmp_path: Path) -> None:
    store = PassageStore(open_client(tmp_path), DIMENSIONS)
    store.replace("whole", "whole", 20, {}, *passages("whole", 3))
    # Killed between the record marked incomplete and the last passage:
    store.documents.upsert(ids=["cut"], embeddings=[[1.0]], metadatas=[{"name": "cut", "chunks": 4, "chars": 40,
                                                                          "added_at": 1.0, "meta": "{}",
                                                                          "complete": False}])
    write_passages(store, "cut", 2)
    assert [d.doc_id for d in store.list_documents()] == ["whole"], "a document being written is not listed"

    reopened = PassageStore(open_client(tmp_path), DIMENSIONS)
    assert [d.doc_id for d in reopened.list_documents()] == ["whole"]
    assert searched(reopened) == {"whole"} and reopened.count() == 3
    assert not reopened.delete("cut")


def test_the_migration_from_version_1_removes_passages_no_document_owns(tmp_path: Path) -> None:
    store = PassageStore(open_client(tmp_path), DIMENSIONS)
    store.replace("whole", "whole", 20, {}, *passages("whole", 3))
    write_passages(store, "orphan", 2)  # version 1 wrote passages first, and was killed before the record
    store.documents.modify(metadata={"schema_version": 1})

    reopened = PassageStore(open_client(tmp_path), DIMENSIONS)
    assert reopened.schema_version == SCHEMA_VERSION
    assert searched(reopened) == {"whole"} and reopened.count() == 3
    assert [d.doc_id for d in reopened.list_documents()] == ["whole"]


def test_the_migration_from_version_2_gives_each_record_its_uploaded_file(tmp_path: Path) -> None:
    store = PassageStore(open_client(tmp_path), DIMENSIONS)
    for doc_id, meta in (("row", {"file": "faq.csv", "topic": "退货"}), ("sent", {"source": "wiki"})):
        store.replace(doc_id, doc_id, 20, meta, *passages(doc_id, 2))
    # Version 2 wrote no `file` of the record's own.
    found = store.documents.get(include=["metadatas"])
    store.documents.update(ids=found["ids"], metadatas=[{**m, "file": None} for m in found["metadatas"]])
    store.documents.modify(metadata={"schema_version": 2})
    assert {d.doc_id: d.file for d in PassageStore(open_client(tmp_path), DIMENSIONS).list_documents()} == {
        "row": "faq.csv", "sent": ""}
    reopened = PassageStore(open_client(tmp_path), DIMENSIONS)
    assert reopened.schema_version == SCHEMA_VERSION == 3
    assert [d.meta for d in reopened.list_documents()] == [{"file": "faq.csv", "topic": "退货"}, {"source": "wiki"}]


def test_a_store_from_a_newer_app_is_refused_untouched_with_what_to_do(tmp_path: Path) -> None:
    store = PassageStore(open_client(tmp_path), DIMENSIONS)
    store.replace("whole", "whole", 20, {}, *passages("whole", 3))
    store.documents.modify(metadata={"schema_version": SCHEMA_VERSION + 1})

    with pytest.raises(StorageError, match="newer than this app") as refused:
        PassageStore(open_client(tmp_path), DIMENSIONS)
    assert "知识库" in str(refused.value) and "SEQGPT_KB_PATH" in str(refused.value)
    assert store.documents.metadata["schema_version"] == SCHEMA_VERSION + 1
    assert store.count() == 3
