"""Documents in: an uploaded TXT, Markdown, CSV or JSONL file, or a JSON list; every problem named in both languages."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from model_loader.errors import InvalidInputError
from model_loader.text.files import decode_text, json_lines, undecodable, upload_name
from model_loader.text.prompts import check_unicode

TEXT_FILES = (".txt", ".md", ".markdown")
ROW_FILES = (".csv", ".jsonl")
TEXT_COLUMNS = ("text", "content")
_ID = re.compile(r"[\w.\-:#@ ]{1,128}")
_NOT_IN_ID = re.compile(r"[^\w.\-:#@ ]")
FILE_HINT = "send a .txt, .md, .csv or .jsonl file (CSV / JSONL rows need a `text` column; `id` is optional)"


@dataclass(frozen=True)
class NewDocument:
    doc_id: str
    name: str
    text: str
    meta: dict = field(default_factory=dict)
    file: str = ""  # the uploaded file it came from; "" when sent as JSON


def check_id(doc_id: object) -> str:
    if not isinstance(doc_id, str) or not _ID.fullmatch(doc_id) or not doc_id.strip():
        raise InvalidInputError(
            f"文档编号无效 · document id {doc_id!r} is not valid: use 1 to 128 letters, digits, spaces or . - _ : # @"
        )
    return doc_id


def id_from_name(name: str) -> str:
    """A document id made from a file's name: the name itself where an id can hold it; else its
    characters an id cannot hold become ``_`` (its last 128 kept) and a digest of the whole name
    follows, since ``x+y.txt`` and ``x_y.txt`` would otherwise share an id, and adding the one
    would replace the other."""
    if _ID.fullmatch(name) and name.strip():
        return name
    digest = "-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return check_id(_NOT_IN_ID.sub("_", name)[-(128 - len(digest)):] + digest)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"文档没有文字 · {where} has no text: give each document a non-empty text")
    return check_unicode(value, "text")


def from_json(body: Any, max_documents: int) -> list[NewDocument]:
    """``{"documents": [{"id", "text", "meta"}]}``; without an id, one is made from the text (``content_id``)."""
    usage = 'send {"documents": [{"id": "guide-1", "text": "...", "meta": {"source": "..."}}]}'
    if not isinstance(body, dict) or not isinstance(body.get("documents"), list) or not body["documents"]:
        raise InvalidInputError(f"缺少文档 · `documents` must be a non-empty list: {usage}")
    if len(body["documents"]) > max_documents:
        raise InvalidInputError(
            f"文档过多 · {len(body['documents'])} documents, more than {max_documents} in one request: "
            "send them in parts, or raise SEQGPT_KB_MAX_DOCUMENTS"
        )
    docs = []
    for n, item in enumerate(body["documents"]):
        if not isinstance(item, dict):
            raise InvalidInputError(f"文档格式有误 · documents[{n}] is not an object: {usage}")
        text = _text(item.get("text"), f"documents[{n}]")
        doc_id = check_id(item["id"]) if item.get("id") is not None else content_id(text)
        meta = item.get("meta") or {}
        if not isinstance(meta, dict):
            raise InvalidInputError(
                f"元数据格式有误 · documents[{n}].meta must be an object, e.g. {{\"source\": \"wiki\"}}"
            )
        name = str(meta.get("name") or doc_id)
        docs.append(NewDocument(doc_id, name, text, meta))
    return _each_id_once(docs, [f"documents[{n}]" for n in range(len(docs))])


def content_id(text: str) -> str:
    """The id of a document sent without one: its text's digest, so that sending the same text again
    replaces it, and another text never takes its place (ids by position in the request did)."""
    return "doc-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _each_id_once(docs: list[NewDocument], places: list[str]) -> list[NewDocument]:
    """Re-adding an id replaces its document, so two documents of one request with one id would keep
    only the last: refused instead."""
    first: dict[str, str] = {}
    for doc, place in zip(docs, places, strict=True):
        if doc.doc_id in first:
            raise InvalidInputError(
                f"文档编号重复 · {first[doc.doc_id]} and {place} both have id {doc.doc_id!r}, and one would replace "
                "the other: give each document its own id (or none, to have one made from its text)"
            )
        first[doc.doc_id] = place
    return docs


def from_file(filename: str, data: bytes, max_documents: int) -> list[NewDocument]:
    """A text file is one document (its id the file name); each CSV / JSONL row with text is one."""
    name = upload_name(filename, "upload.txt")
    suffix = PurePath(name).suffix.lower()
    if suffix not in TEXT_FILES + ROW_FILES:
        raise InvalidInputError(f"文件类型不支持 · {name!r} is not a supported file: {FILE_HINT}")
    content = decode_text(data)  # as batch, jobs and evaluation read a file: UTF-8, else GB18030
    if content is None:
        raise InvalidInputError(f"{undecodable(data)} ({name!r})")
    if suffix in TEXT_FILES:
        return [NewDocument(id_from_name(name), name, _text(content, name), {"file": name}, file=name)]
    rows = _csv_rows(content) if suffix == ".csv" else _jsonl_rows(content, name)
    docs, places = [], []
    for line, row in rows:
        text = next((row[c] for c in TEXT_COLUMNS if isinstance(row.get(c), str) and row[c].strip()), None)
        if text is None:
            raise InvalidInputError(f"缺少文本列 · {name} line {line} has no `text` column with text: {FILE_HINT}")
        doc_id = check_id(str(row["id"])) if row.get("id") else id_from_name(f"{name}:{line}")
        meta = {k: v for k, v in row.items()
                if k not in TEXT_COLUMNS and k != "id" and isinstance(v, str | int | float)}
        docs.append(NewDocument(doc_id, doc_id, _text(text, f"{name} line {line}"), {"file": name, **meta}, file=name))
        places.append(f"{name} line {line}")
    _each_id_once(docs, places)
    if not docs:
        raise InvalidInputError(f"文件为空 · {name} has no rows: {FILE_HINT}")
    if len(docs) > max_documents:
        raise InvalidInputError(
            f"文档过多 · {name} has {len(docs)} rows, more than {max_documents}: split the file, "
            "or raise SEQGPT_KB_MAX_DOCUMENTS"
        )
    return docs


def _csv_rows(content: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(content))
    try:
        return [(reader.line_num, {(k or "").strip().lower(): v for k, v in row.items()}) for row in reader]
    except csv.Error as exc:
        raise InvalidInputError(f"CSV 格式有误 · the CSV could not be read ({exc}): {FILE_HINT}") from None


def _jsonl_rows(content: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for parsed in json_lines(content.splitlines()):
        n, value = parsed.number, parsed.value
        if parsed.problem:
            raise InvalidInputError(
                f"JSONL 格式有误 · {name} line {n} is not valid JSON ({parsed.problem}): {FILE_HINT}"
            )
        if not isinstance(value, dict):
            raise InvalidInputError(f"JSONL 格式有误 · {name} line {n} is not a JSON object: {FILE_HINT}")
        rows.append((n, value))
    return rows
