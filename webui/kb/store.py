"""The passage store: Chroma, embedded and persisted under the workspace, or a Chroma server named by SEQGPT_KB_URL.

Two collections per vector size (so demo and real GTE vectors never mix): passages (text, offsets,
document id; cosine HNSW index) and documents (one record each: name, uploaded file, passages,
characters, meta).
The documents collection carries the store's schema version, migrated forward on open.

Telemetry is off, and no embedding function is given: vectors always come from GTE, so Chroma
never fetches a model of its own.

Chroma has no transaction across the two collections, so a document's record is its commit mark: it
is written first marked incomplete, then the passages, then marked complete. A document whose writing
was cut short (the app killed or restarted) is found on the next open by that mark, and its passages
are removed, so nothing half-written is searched and every passage belongs to a listed document.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..jobs.errors import StorageError
from .passages import Passage

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
ADD_BATCH = 4000  # below Chroma's largest batch (5,461 here)
SWEEP_BATCH = 5000  # passages' metadata read at a time by the version 1 -> 2 migration


def _drop_orphan_passages(passages, documents) -> None:
    """1 -> 2: version 1 wrote a document's passages before its record, so a document cut short left
    passages that search found but nothing listed or could delete. Those passages are removed."""
    orphans: set[str] = set()
    offset = 0
    while True:
        found = passages.get(include=["metadatas"], limit=SWEEP_BATCH, offset=offset)
        if not found["ids"]:
            break
        named = {m["doc_id"] for m in found["metadatas"]}
        kept = set(documents.get(ids=sorted(named))["ids"]) if named else set()
        orphans |= named - kept
        offset += len(found["ids"])
    for doc_id in sorted(orphans):
        passages.delete(where={"doc_id": doc_id})
    if orphans:
        log.warning("knowledge base: removed the passages of %d documents whose adding was cut short (%s); "
                    "add them again", len(orphans), ", ".join(sorted(orphans)[:10]))


def _record_upload_file(passages, documents) -> None:
    """2 -> 3: version 2 kept a document's uploaded file name only in its meta, where a CSV / JSONL
    row's own `file` column could overwrite it. Each record now carries it apart; for the records
    already written, meta's `file` is the best account there is (JSON documents had none of their own)."""
    del passages
    offset = 0
    while True:
        found = documents.get(include=["metadatas"], limit=SWEEP_BATCH, offset=offset)
        if not found["ids"]:
            break
        records = [{**m, "file": _meta_file(m)} for m in found["metadatas"]]
        documents.update(ids=found["ids"], metadatas=records)
        offset += len(found["ids"])


def _meta_file(record: dict) -> str:
    try:
        named = json.loads(record.get("meta") or "{}").get("file")
    except (ValueError, AttributeError):
        return ""
    return named if isinstance(named, str) else ""


# Version n → n+1, run in order on open.
MIGRATIONS: dict[int, Callable[[object, object], None]] = {1: _drop_orphan_passages, 2: _record_upload_file}


@dataclass(frozen=True)
class Document:
    doc_id: str
    name: str
    chunks: int
    chars: int
    added_at: float
    meta: dict
    file: str = ""  # the uploaded file it came from; "" when sent as JSON


@dataclass(frozen=True)
class Hit:
    doc_id: str
    chunk_id: int
    text: str
    score: float  # cosine similarity
    start: int
    end: int


def open_client(path: Path, url: str = ""):
    """A Chroma client: the server at ``url`` when given, else the embedded store in ``path``."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if url:
        parts = urlparse(url)
        return chromadb.HttpClient(
            host=parts.hostname or "127.0.0.1", port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https", settings=settings,
        )
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class PassageStore:
    """Add, replace, delete and search documents' passages; safe to call from many threads."""

    def __init__(self, client, dimensions: int) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.passages = client.get_or_create_collection(
            f"passages-d{dimensions}", metadata={"hnsw:space": "cosine"}, embedding_function=None
        )
        self.documents = client.get_or_create_collection(
            f"documents-d{dimensions}", metadata={"schema_version": SCHEMA_VERSION}, embedding_function=None
        )
        self._migrate()
        self._finish_cut_short()

    def _migrate(self) -> None:
        version = int((self.documents.metadata or {}).get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"知识库版本较新 · the knowledge base is at schema version {version}, newer than this app's "
                f"{SCHEMA_VERSION}: upgrade the app, or point SEQGPT_KB_PATH at another folder"
            )
        for step in range(max(version, 1), SCHEMA_VERSION):
            MIGRATIONS[step](self.passages, self.documents)
        if version != SCHEMA_VERSION:
            self.documents.modify(metadata={"schema_version": SCHEMA_VERSION})
            log.info("knowledge base migrated from schema version %d to %d", version, SCHEMA_VERSION)

    def _finish_cut_short(self) -> None:
        """Remove what documents cut short while being written left behind (see the module's note)."""
        cut = self.documents.get(where={"complete": False})["ids"]
        for doc_id in cut:
            self.passages.delete(where={"doc_id": doc_id})
            self.documents.delete(ids=[doc_id])
        if cut:
            log.warning("knowledge base: %d documents were being added when the app stopped and were removed "
                        "(%s); add them again", len(cut), ", ".join(cut[:10]))

    @property
    def schema_version(self) -> int:
        return int((self.documents.metadata or {}).get("schema_version", 0))

    def replace(self, doc_id: str, name: str, text_chars: int, meta: dict,
                passages: list[Passage], vectors: np.ndarray, file: str = "") -> Document:
        """Store a document's passages, replacing any it had before."""
        document = Document(doc_id, name, len(passages), text_chars, time.time(), meta, file)
        record = {"name": name, "chunks": document.chunks, "chars": text_chars, "added_at": document.added_at,
                  "meta": json.dumps(meta, ensure_ascii=False), "file": file}
        with self._lock:
            self.documents.upsert(ids=[doc_id], embeddings=[[1.0]], metadatas=[{**record, "complete": False}])
            self.passages.delete(where={"doc_id": doc_id})
            for first in range(0, len(passages), ADD_BATCH):
                part = passages[first : first + ADD_BATCH]
                self.passages.add(
                    ids=[f"{doc_id}#{p.chunk_id}" for p in part],
                    embeddings=vectors[first : first + ADD_BATCH],
                    documents=[p.text for p in part],
                    metadatas=[{"doc_id": doc_id, "chunk_id": p.chunk_id, "start": p.start, "end": p.end}
                               for p in part],
                )
            self.documents.upsert(ids=[doc_id], embeddings=[[1.0]], metadatas=[{**record, "complete": True}])
        return document

    def delete(self, doc_id: str) -> bool:
        """Remove a document and its passages; False when there was none."""
        with self._lock:
            if not self.documents.get(ids=[doc_id])["ids"]:
                return False
            self.documents.upsert(ids=[doc_id], embeddings=[[1.0]], metadatas=[{"complete": False}])
            self.passages.delete(where={"doc_id": doc_id})
            self.documents.delete(ids=[doc_id])
        return True

    def list_documents(self) -> list[Document]:
        found = self.documents.get(include=["metadatas"])
        docs = [
            Document(doc_id, m["name"], int(m["chunks"]), int(m["chars"]), float(m["added_at"]),
                     json.loads(m.get("meta") or "{}"), m.get("file", ""))
            for doc_id, m in zip(found["ids"], found["metadatas"], strict=True)
            if m.get("complete", True)  # one being written now is not listed yet
        ]
        return sorted(docs, key=lambda d: (d.added_at, d.doc_id))

    def count(self) -> int:
        return self.passages.count()

    def search(self, vector: np.ndarray, top_k: int) -> list[Hit]:
        """The ``top_k`` passages nearest by cosine, best first."""
        top_k = min(top_k, self.count())
        if top_k < 1:
            return []
        found = self.passages.query(
            query_embeddings=[vector], n_results=top_k, include=["documents", "metadatas", "distances"]
        )
        return [
            Hit(m["doc_id"], int(m["chunk_id"]), text, round(1.0 - float(distance), 4), int(m["start"]), int(m["end"]))
            for text, m, distance in zip(found["documents"][0], found["metadatas"][0], found["distances"][0],
                                         strict=True)
        ]
