"""The knowledge base's and summaries' request checks and JSON shapes."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from model_loader.errors import InvalidInputError
from model_loader.results import Summary
from model_loader.settings import Settings
from model_loader.tasks.options import SummarizeRequest

from .store import Document, Hit

USAGE_SUMMARIZE = 'send {"text": "...", "max_chars": 100}'


def json_object(body: Any, usage: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInputError(f"请求体应为 JSON 对象 · the body must be a JSON object: {usage}")
    return body


def summarize_request(body: Any, limits: Settings) -> SummarizeRequest:
    """A summary request's body as the engine's checked request, before the model is asked."""
    body = json_object(body, USAGE_SUMMARIZE)
    if "text" not in body:
        raise InvalidInputError(f"缺少文本 · `text` is missing: {USAGE_SUMMARIZE}")
    return SummarizeRequest.checked(limits, text=body["text"], max_chars=body.get("max_chars"))


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "summary": summary.summary,
        "compression_ratio": summary.compression_ratio,
        "similarity": summary.similarity,
        "flags": list(summary.flags),
        "pieces": summary.pieces,
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    return {"doc_id": hit.doc_id, "chunk_id": hit.chunk_id, "text": hit.text, "score": hit.score,
            "start": hit.start, "end": hit.end}


def document_json(doc: Document) -> dict[str, Any]:
    return {"doc_id": doc.doc_id, "name": doc.name, "chunks": doc.chunks, "chars": doc.chars,
            "added_at": doc.added_at, "file": doc.file or None, "meta": doc.meta}


class SummaryMetrics:
    """The two health figures of every summary, as /metrics histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ratio = Histogram(
            "seqgpt_summary_compression_ratio", "Summary characters / source characters of each summary.",
            buckets=(0.05, 0.12, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0), registry=registry,
        )
        self.similarity = Histogram(
            "seqgpt_summary_similarity", "GTE cosine similarity of each summary to its source.",
            buckets=(0.0, 0.2, 0.45, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0), registry=registry,
        )

    def observe(self, summary: Summary) -> None:
        self.ratio.observe(summary.compression_ratio)
        self.similarity.observe(summary.similarity)
