"""Batch files: read texts from CSV / JSONL / TXT within size and row limits, and write results as CSV and JSONL."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = (".csv", ".jsonl", ".txt")
# Column names taken as the text column of a CSV, in order of preference.
TEXT_COLUMNS = ("text", "文本", "content", "内容", "sentence")


class BatchFileError(ValueError):
    """The uploaded file cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class BatchItem:
    """One text of the file, with the row it came from (1-based, the header not counted)."""

    row: int
    text: str


def read_batch_file(path: Path, max_bytes: int, max_rows: int) -> list[BatchItem]:
    """Read an uploaded file, refusing it before parsing when it is too big."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise BatchFileError(
            f"the file is {size / 1024:.0f} KiB, more than the limit of {max_bytes / 1024:.0f} KiB: "
            "split it into smaller files, or raise SEQGPT_BATCH_MAX_BYTES"
        )
    return parse_batch(path.read_bytes(), path.name, max_rows)


def parse_batch(data: bytes, filename: str, max_rows: int) -> list[BatchItem]:
    """Texts of a CSV (a ``text`` column, or the only column), JSONL (``{"text": ...}`` per line) or TXT file."""
    suffix = Path(filename).suffix.lower()
    if suffix not in FORMATS:
        raise BatchFileError(f"{filename!r} is not a CSV, JSONL or TXT file: upload one of {', '.join(FORMATS)}")
    content = _decode(data)
    if suffix == ".csv":
        items = _parse_csv(content)
    elif suffix == ".jsonl":
        items = _parse_jsonl(content)
    else:
        items = [BatchItem(n, line.strip()) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
    if not items:
        raise BatchFileError("the file has no texts: put one text per row (CSV column `text`, JSONL key `text`)")
    if len(items) > max_rows:
        raise BatchFileError(
            f"the file has {len(items)} texts, more than the limit of {max_rows}: "
            "split it into smaller files, or raise SEQGPT_BATCH_MAX_ROWS"
        )
    return items


def _decode(data: bytes) -> str:
    # Excel in China saves CSV as GB18030 (GBK); everything else should be UTF-8.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BatchFileError("the file is neither UTF-8 nor GB18030 text: save it as UTF-8 and upload it again")


def _parse_csv(content: str) -> list[BatchItem]:
    reader = csv.reader(io.StringIO(content))
    header = next(reader, None)
    if header is None:
        return []
    names = [name.strip().lower() for name in header]
    column = next((names.index(name) for name in TEXT_COLUMNS if name in names), None)
    if column is None:
        if len(names) != 1:
            raise BatchFileError(
                f"the CSV has columns {', '.join(header)} but none is named `text`: "
                "name the column that holds the texts `text` (or 文本)"
            )
        column = 0
    items = []
    try:
        for n, record in enumerate(reader, 1):
            if column < len(record) and record[column].strip():
                items.append(BatchItem(n, record[column].strip()))
    except csv.Error as exc:
        raise BatchFileError(f"the CSV is malformed near row {reader.line_num} ({exc}): check its quoting") from None
    return items


def _parse_jsonl(content: str) -> list[BatchItem]:
    items = []
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchFileError(f"line {n} is not valid JSON ({exc.msg}): write one JSON object per line") from None
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise BatchFileError(f'line {n} has no text: write {{"text": "..."}} on every line')
        if text.strip():
            items.append(BatchItem(n, text.strip()))
    return items


def write_results(rows: list[dict[str, Any]], flat_rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write full results as JSONL and the flat table as CSV (UTF-8 with BOM, so Excel reads Chinese)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "results.csv"
    jsonl_path = out_dir / "results.jsonl"
    with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
        columns = list(flat_rows[0]) if flat_rows else ["row", "text"]
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat_rows)
    with jsonl_path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [csv_path, jsonl_path]


def result_record(item: BatchItem, result: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    """The JSONL line of one text: its row, the text, the engine's JSON result (or the error)."""
    return {"row": item.row, "text": item.text, **(result or {}), "error": error or ""}


def flat_record(task: str, record: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The CSV / table row of one result: the label and its score, or one column per field."""
    flat: dict[str, Any] = {"row": record["row"], "text": record["text"]}
    if task == "classify":
        label = record.get("label", "")
        flat["label"] = label
        flat["score"] = round(record.get("scores", {}).get(label, 0.0), 4) if label else ""
    else:
        fields = record.get("fields", {})
        for name in names:
            flat[name] = " | ".join(mention["text"] for mention in fields.get(name, []))
    flat["error"] = record["error"]
    return flat
