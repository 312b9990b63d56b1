"""Labelled files for evaluation: TNEWS / CLUENER / LCSTS JSONL, or text+label CSV / JSONL; bad rows kept."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_loader.text.files import decode_text, json_lines, undecodable

FORMATS = (".jsonl", ".json", ".csv")
TASKS = ("classify", "extract", "summarize")
# The summary length asked for when none is given: about LCSTS's reference summaries.
SUMMARY_CHARS = 30


class EvaluationDataError(ValueError):
    """The labelled file as a whole cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Span:
    """A gold or predicted mention: ``text == row_text[start:end]`` (end exclusive)."""

    field: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class GoldRow:
    """One usable labelled row; ``line`` is its 1-based line in the file (CSV: the header is line 1)."""

    line: int
    text: str
    label: str = ""
    spans: tuple[Span, ...] = ()
    reference: str = ""  # the reference summary (task summarize)


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class GoldSet:
    """The rows of a labelled file, the label or field names to ask the model for, and the rows skipped."""

    task: str
    rows: list[GoldRow]
    names: list[str]
    skipped: list[BadRow] = field(default_factory=list)


def parse_map(spec: str | None) -> dict[str, str]:
    """``news_finance=财经,news_sports=体育`` inline, or the same one pair per line (``#`` comments allowed)."""
    if not spec or not spec.strip():
        return {}
    pairs: dict[str, str] = {}
    for n, line in enumerate(spec.replace("，", ",").replace(",", "\n").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise EvaluationDataError(
                f"map entry {n} ({line!r}) is not KEY=VALUE: write it like news_finance=财经"
            )
        pairs[key.strip()] = value.strip()
    return pairs


def read_map(value: str | None) -> dict[str, str]:
    """``--map`` takes a file of KEY=VALUE lines or the pairs inline."""
    if value and "=" not in value and Path(value).is_file():
        return parse_map(Path(value).read_text(encoding="utf-8-sig"))
    if value and "=" not in value:
        raise EvaluationDataError(f"--map {value!r} is neither a file nor KEY=VALUE pairs")
    return parse_map(value)


def read_gold(path: Path, task: str, mapping: dict[str, str] | None = None) -> GoldSet:
    path = Path(path)
    if not path.is_file():
        raise EvaluationDataError(f"no labelled file at {path}: check the path given to --data")
    return parse_gold(path.read_bytes(), path.name, task, mapping or {})


def parse_gold(data: bytes, filename: str, task: str, mapping: dict[str, str]) -> GoldSet:
    """Read every row, keeping the good ones and the line number and reason of each bad one."""
    if task not in TASKS:
        raise EvaluationDataError(f"task {task!r} is unknown: choose classify, extract or summarize")
    suffix = Path(filename).suffix.lower()
    if suffix not in FORMATS:
        raise EvaluationDataError(f"{filename!r} is not JSONL or CSV: save the labelled rows as .jsonl or .csv")
    content = decode_text(data)  # the batch tab's reader: UTF-8, else GB18030
    if content is None:
        raise EvaluationDataError(undecodable(data))
    records = _csv_records(content) if suffix == ".csv" else _jsonl_records(content)
    rows: list[GoldRow] = []
    skipped: list[BadRow] = []
    for line, record in records:
        try:
            if isinstance(record, str):
                raise ValueError(record)
            read_row = {"classify": _classification_row, "extract": _extraction_row, "summarize": _summary_row}[task]
            rows.append(read_row(line, record, mapping))
        except ValueError as exc:
            skipped.append(BadRow(line, str(exc)))
    if not rows:
        first = f" (line {skipped[0].line}: {skipped[0].reason})" if skipped else ""
        raise EvaluationDataError(f"the file has no usable labelled rows{first}: see the formats in docs/evaluation.md")
    names = _names(task, rows, mapping)
    if not names and task != "summarize":
        raise EvaluationDataError("no row names a field: label some mentions, or list the fields with --map")
    return GoldSet(task, rows, names, skipped)


def _jsonl_records(content: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for parsed in json_lines(content.splitlines()):
        if parsed.problem:
            yield parsed.number, f"not valid JSON ({parsed.problem})"
        else:
            yield parsed.number, parsed.value if isinstance(parsed.value, dict) else "not a JSON object"


def _csv_records(content: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(content))
    try:
        for record in reader:
            yield reader.line_num, {key.strip().lower(): value for key, value in record.items() if key}
    except csv.Error as exc:
        yield reader.line_num, f"malformed CSV ({exc}); rows after it were not read"


def _text(record: dict[str, Any]) -> str:
    text = record.get("text", record.get("sentence", record.get("content")))
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no text: give each row a non-empty `text` (or TNEWS `sentence`, LCSTS `content`)")
    return text


def _summary_row(line: int, record: dict[str, Any], _mapping: dict[str, str]) -> GoldRow:
    text = _text(record)
    reference = record.get("summary")
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError("no summary: give each row its reference `summary` (LCSTS: `content` and `summary`)")
    return GoldRow(line, text, reference=reference)


def _classification_row(line: int, record: dict[str, Any], mapping: dict[str, str]) -> GoldRow:
    text = _text(record)
    # TNEWS keeps the readable name in label_desc and a numeric id in label.
    label = record.get("label_desc", record.get("label"))
    if isinstance(label, int) and not isinstance(label, bool):
        label = str(label)
    if not isinstance(label, str) or not label.strip():
        raise ValueError("no label: give each row a `label` (or TNEWS `label_desc`)")
    return GoldRow(line, text, label=mapping.get(label.strip(), label.strip()))


def _extraction_row(line: int, record: dict[str, Any], mapping: dict[str, str]) -> GoldRow:
    text = _text(record)
    if "entities" in record:
        spans = _entity_spans(text, record["entities"], mapping)
    elif isinstance(record.get("label"), dict):
        spans = _cluener_spans(text, record["label"], mapping)
    else:
        raise ValueError('no entities: give `label` (CLUENER) or `entities: [{"field", "start", "end"}]`')
    return GoldRow(line, text, spans=tuple(sorted(set(spans), key=lambda s: (s.start, s.end, s.field))))


def _cluener_spans(text: str, label: dict[str, Any], mapping: dict[str, str]) -> list[Span]:
    """CLUENER writes [start, end] with the end **inclusive**; this is the one place it becomes exclusive."""
    spans = []
    for kind, mentions in label.items():
        if not isinstance(mentions, dict):
            raise ValueError(f"label {kind!r} must map each mention to [[start, end], ...]")
        for mention, positions in mentions.items():
            if not isinstance(positions, list):
                raise ValueError(f"mention {mention!r} must have a list of [start, end] pairs")
            for pair in positions:
                if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(v) for v in pair)):
                    raise ValueError(f"mention {mention!r} has position {pair!r}; write [start, end]")
                spans.append(_span(text, mapping.get(kind, kind), pair[0], pair[1] + 1, mention))
    return spans


def _entity_spans(text: str, entities: Any, mapping: dict[str, str]) -> list[Span]:
    if not isinstance(entities, list):
        raise ValueError('`entities` must be a list of {"field", "start", "end"}')
    spans = []
    for entity in entities:
        if not (isinstance(entity, dict) and isinstance(entity.get("field"), str)
                and _is_int(entity.get("start")) and _is_int(entity.get("end"))):
            raise ValueError(f'entity {entity!r} needs "field" (text), "start" and "end" (whole numbers)')
        kind = entity["field"].strip()
        spans.append(_span(text, mapping.get(kind, kind), entity["start"], entity["end"], entity.get("text")))
    return spans


def _span(text: str, kind: str, start: int, end: int, mention: Any) -> Span:
    if not 0 <= start < end <= len(text):
        raise ValueError(f"span {kind} [{start}, {end}) lies outside the text of {len(text)} characters")
    if isinstance(mention, str) and text[start:end] != mention:
        raise ValueError(f"span {kind} [{start}, {end}) reads {text[start:end]!r}, not {mention!r}")
    return Span(kind, start, end, text[start:end])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _names(task: str, rows: list[GoldRow], mapping: dict[str, str]) -> list[str]:
    """What the model is asked for: the map's values in its order, then any other gold name as first seen.

    A map lists the whole label set even when a small sample lacks some labels, and the
    model must be offered all of them to be measured fairly."""
    if task == "summarize":
        return []  # a summary is asked for with no labels
    names = list(dict.fromkeys(mapping.values()))
    seen = (row.label for row in rows) if task == "classify" else (s.field for row in rows for s in row.spans)
    for name in seen:
        if name not in names:
            names.append(name)
    return names
