"""The knowledge base: documents cut into passages, embedded by GTE, stored, searched, and their hits summarised.

Blocking methods, called off the event loop (``anyio.to_thread``). An ingestion embeds its passages
in batches at bulk priority on the embedding model's own thread (model_loader/embedding/worker.py),
so a search arriving meanwhile waits for one batch at most, not for the whole ingestion.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from model_loader.embedding import Embedder
from model_loader.errors import InvalidInputError
from model_loader.text.prompts import check_unicode

from ..jobs.errors import StorageError
from .documents import NewDocument
from .errors import DocumentNotFoundError
from .passages import split_passages
from .settings import KbSettings
from .store import Document, Hit, PassageStore, open_client

log = logging.getLogger(__name__)


@dataclass
class Ingestion:
    """Progress of one add-documents call, for the tab and ``GET /api/kb/ingestions``."""

    ingestion_id: int
    documents: int
    passages_total: int
    passages_done: int = 0
    state: str = "running"  # running, done or failed


class KnowledgeBase:
    def __init__(self, embedder: Embedder, settings: KbSettings) -> None:
        self.embedder = embedder
        self.settings = settings
        self._store: PassageStore | None = None
        self._store_lock = threading.Lock()
        # One lock per file name while an upload of it runs; weak, so names uploaded once are not kept.
        self._file_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._ids = itertools.count(1)
        self.ingestions: dict[int, Ingestion] = {}

    @property
    def where(self) -> str:
        return self.settings.url or str(self.settings.path)

    def store(self) -> PassageStore:
        """The store, opened (and migrated) on first use, once the embedding model says its vector size."""
        with self._store_lock:
            if self._store is None:
                self.embedder.load()
                try:
                    client = open_client(self.settings.path, self.settings.url)
                    self._store = PassageStore(client, self.embedder.status.dimensions)
                except StorageError:
                    raise
                except Exception as exc:  # chromadb's own errors: a folder it cannot use, a server down
                    raise StorageError(
                        f"知识库无法打开 · the knowledge base at {self.where} could not be opened ({exc}): check "
                        "SEQGPT_KB_PATH (a writable folder) or SEQGPT_KB_URL (a running Chroma server)"
                    ) from exc
                log.info("knowledge base at %s: %d passages", self.where, self._store.count())
            return self._store

    # ---- documents -------------------------------------------------------------------------

    def add(self, docs: list[NewDocument], on_progress: Callable[[Ingestion], None] | None = None
            ) -> list[Document]:
        """Cut, embed and store every document (replacing any with the same id); reports progress per batch."""
        store = self.store()
        cut = [(doc, split_passages(doc.text, self.settings.passage_chars)) for doc in docs]
        ingestion = Ingestion(next(self._ids), len(docs), sum(len(p) for _, p in cut))
        self.ingestions[ingestion.ingestion_id] = ingestion
        for old in sorted(self.ingestions)[:-20]:  # keep the last few for the list
            self.ingestions.pop(old, None)
        stored = []
        try:
            for doc, passages in cut:
                done_before = ingestion.passages_done

                def progress(done: int, base: int = done_before) -> None:
                    ingestion.passages_done = base + done
                    if on_progress is not None:
                        on_progress(ingestion)

                vectors = self.embedder.embed([p.text for p in passages], bulk=True, on_batch=progress)
                stored.append(store.replace(doc.doc_id, doc.name, len(doc.text), doc.meta, passages, vectors,
                                            doc.file))
                ingestion.passages_done = done_before + len(passages)
        except BaseException:
            ingestion.state = "failed"
            raise
        ingestion.state = "done"
        if on_progress is not None:
            on_progress(ingestion)
        return stored

    def add_file(self, docs: list[NewDocument],
                 on_progress: Callable[[Ingestion], None] | None = None) -> tuple[list[Document], list[str]]:
        """Add the documents of one uploaded file (``from_file``), then remove those an earlier upload
        of the same file name left and this one lacks (rows since deleted; rows whose line-numbered id
        moved): an edited file replaces its earlier self. Removed only once every new document is stored,
        so a failed upload loses nothing. Returns the stored documents and the removed ids."""
        name = docs[0].file if docs else ""
        if not name or any(doc.file != name for doc in docs):
            raise ValueError("add_file takes the documents of one uploaded file, as from_file makes them")
        with self._file_lock(name):  # two uploads of one file at once: one's rows, then the other's, not a mix
            stored = self.add(docs, on_progress)
            kept = {doc.doc_id for doc in stored}
            stale = [doc.doc_id for doc in self.documents() if doc.file == name and doc.doc_id not in kept]
            for doc_id in stale:
                self.store().delete(doc_id)
        if stale:
            log.info("knowledge base: %d documents of an earlier %s removed", len(stale), name)
        return stored, stale

    def _file_lock(self, name: str) -> threading.Lock:
        with self._store_lock:
            return self._file_locks.setdefault(name, threading.Lock())

    def documents(self) -> list[Document]:
        return self.store().list_documents()

    def delete(self, doc_id: str) -> None:
        if not self.store().delete(doc_id):
            raise DocumentNotFoundError(
                f"没有这个文档 · there is no document {doc_id!r}: the document list shows every id "
                "(the table in the UI, GET /api/kb/documents)"
            )

    # ---- search ------------------------------------------------------------------------------

    def check_query(self, query: object, top_k: object) -> tuple[str, int]:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(
                '查询为空 · `query` is empty: send the question as a string, e.g. "query": "电脑蓝屏"'
            )
        if len(query) > self.settings.max_query_chars:
            raise InvalidInputError(
                f"查询过长 · `query` is {len(query)} characters, more than {self.settings.max_query_chars}: "
                "ask a shorter question, or raise SEQGPT_KB_MAX_QUERY_CHARS"
            )
        limit = self.settings.max_top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= limit:
            raise InvalidInputError(
                f"top_k 有误 · `top_k` must be a whole number from 1 to {limit}, got {top_k!r}: "
                'send e.g. "top_k": 5, or leave it out'
            )
        return check_unicode(query, "query"), top_k

    def search(self, query: str, top_k: int = 5) -> list[Hit]:
        query, top_k = self.check_query(query, top_k)
        store = self.store()
        vector = self.embedder.embed([query])[0]
        return store.search(vector, top_k)
