"""Batch files: read texts from CSV / JSONL / TXT within size and row limits, and write results as CSV and JSONL."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_loader.text.files import decode_text, json_kind, json_lines, undecodable

# csv's default refuses a whole file over one cell above 131,072 characters; a long text is one row's
# problem (SEQGPT_MAX_TEXT_CHARS fails that row alone), and the upload's size bounds any cell.
# Process-wide, set where the CSV files of batches and jobs are read.
csv.field_size_limit(2**31 - 1)

FORMATS = (".csv", ".jsonl", ".txt")
# Column names taken as the text column of a CSV, in order of preference.
TEXT_COLUMNS = ("text", "文本", "content", "内容", "sentence")
# Column names (or JSONL keys) taken as the file's own id of each text, carried into the results.
ID_COLUMNS = ("id", "编号", "ID")
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Result folders hold full texts; the newest this many are kept and older ones deleted.
KEEP_RESULTS = 20


class BatchFileError(ValueError):
    """The uploaded file cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class BatchItem:
    """One text of the file, with the row it came from (1-based, the header not counted).

    ``id`` is the file's own id of the row, if it has an id column; ``error`` says why a row
    that could not be read fails on its own, without failing the file."""

    row: int
    text: str
    id: str = ""
    error: str = ""


def read_batch_file(path: Path, max_bytes: int, max_rows: int) -> list[BatchItem]:
    """Read an uploaded file, refusing it before parsing when it is too big."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise BatchFileError(
            f"文件过大 · the file is {size / 1024:.0f} KiB, more than the limit of {max_bytes / 1024:.0f} KiB: "
            "split it into smaller files, or raise SEQGPT_BATCH_MAX_BYTES"
        )
    return parse_batch(path.read_bytes(), path.name, max_rows)


def parse_batch(data: bytes, filename: str, max_rows: int) -> list[BatchItem]:
    """Texts of a CSV (a ``text`` column, or the only column), JSONL (``{"text": ...}`` per line) or TXT file."""
    suffix = Path(filename).suffix.lower()
    if suffix not in FORMATS:
        raise BatchFileError(
            f"文件类型不支持 · {filename!r} is not a CSV, JSONL or TXT file: upload one of {', '.join(FORMATS)}"
        )
    content = _decode(data)
    if suffix == ".csv":
        items = _parse_csv(content)
    elif suffix == ".jsonl":
        items = _parse_jsonl(content)
    else:
        items = [BatchItem(n, line.strip()) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
    if not items:
        raise BatchFileError(
            "文件里没有文本 · the file has no texts: put one text per row (CSV column `text`, JSONL key `text`)"
        )
    if all(item.error for item in items):  # a file to fix, as a job would say
        raise BatchFileError(f"文件里没有可运行的文本 · {nothing_runs(len(items), items[0].error)}")
    if len(items) > max_rows:
        raise BatchFileError(
            f"文本过多 · the file has {len(items)} texts, more than the limit of {max_rows}: "
            "split it into smaller files, or raise SEQGPT_BATCH_MAX_ROWS"
        )
    return items


def _decode(data: bytes) -> str:
    content = decode_text(data)  # the same reader as evaluation's
    if content is None:
        raise BatchFileError(undecodable(data))
    return content


def _parse_csv(content: str) -> list[BatchItem]:
    # strict: an unterminated quote is an error, not the rest of the file merged into one text.
    reader = csv.reader(io.StringIO(content), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return []
        names = [name.strip().lower() for name in header]
        column = next((names.index(name.lower()) for name in TEXT_COLUMNS if name.lower() in names), None)
        id_column = next((names.index(name.lower()) for name in ID_COLUMNS if name.lower() in names), None)
        if column is None:
            if len(names) != 1:
                raise BatchFileError(
                    f"CSV 没有 text 列 · the CSV has columns {', '.join(header)} but none is named `text`: "
                    "name the column that holds the texts `text` (or 文本)"
                )
            column = 0
        items = []
        for n, record in enumerate(reader, 1):
            if not record:
                continue  # a blank line is no row
            text = record[column].strip() if column < len(record) else ""
            row_id = record[id_column].strip() if id_column is not None and id_column < len(record) else ""
            error = "" if text else no_text(n, header[column])
            if len(record) > len(header):
                error = too_many_cells(n, len(record), len(header))
            items.append(BatchItem(n, text, row_id, error=error))
    except csv.Error as exc:
        raise BatchFileError(
            f"CSV 格式有误 · the CSV is malformed near line {reader.line_num} ({exc}): check its quoting — "
            'a text with commas, quotes or line breaks goes in double quotes, and a quote inside it is written ""'
        ) from None
    return items


def nothing_runs(rows: int, first_problem: str) -> str:
    """Why a file none of whose rows can run is refused: its first row's reason."""
    count = f"none of the file's {rows} rows can run" if rows > 1 else "the file's one row cannot run"
    return f"{count}; the first: {first_problem}"


def no_text(row: int, column: str) -> str:
    """Why a CSV row without a text fails (it is listed, failed, so that no row goes missing)."""
    return f"此行没有文本 · row {row} has no text in column `{column}`: fill it in, or remove the row"


def not_an_object(line: int, value: Any, key: str) -> str:
    """Why a JSONL line that is an array, number, true/false or null fails: no row has that shape."""
    return (f"此行不是 JSON 对象 · line {line} is a JSON {json_kind(value)}, not an object: "
            f'write one object such as {{"{key}": "..."}} per line')


def no_text_on_line(line: int, key: str) -> str:
    """Why a JSONL line without a text fails."""
    return f'此行没有文本 · line {line} has no text: write {{"{key}": "..."}}'


def too_many_cells(row: int, cells: int, columns: int) -> str:
    """Why a CSV row with more cells than its header fails: its text was most likely cut at an
    unquoted comma, and run as it is it would answer for part of the text."""
    return (f"此行的列数多于表头 · row {row} has {cells} cells but the header names {columns} columns: "
            "a text with commas goes in double quotes")


def _parse_jsonl(content: str) -> list[BatchItem]:
    """One text per line; a line that cannot be read fails as its own row."""
    items = []
    for parsed in json_lines(content.splitlines()):
        n, value = parsed.number, parsed.value
        if parsed.problem:
            items.append(BatchItem(n, "", error=f"此行不是有效的 JSON · line {n} is not valid JSON ({parsed.problem}): "
                                   'write one JSON object such as {"text": "..."} per line'))
            continue
        text = value.get("text") if isinstance(value, dict) else value
        row_id = value.get("id", "") if isinstance(value, dict) else ""
        row_id = "" if row_id is None else str(row_id)
        if not isinstance(value, dict | str):
            items.append(BatchItem(n, "", row_id, error=not_an_object(n, value, "text")))
        elif not isinstance(text, str) or not text.strip():
            items.append(BatchItem(n, "", row_id, error=no_text_on_line(n, "text")))
        else:
            items.append(BatchItem(n, text.strip(), row_id))
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
        writer.writerows({name: neutralise_formula(value) for name, value in row.items()} for row in flat_rows)
    with jsonl_path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [csv_path, jsonl_path]


def neutralise_formula(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made inert the OWASP way: a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def prune_results(root: Path, keep: int = KEEP_RESULTS) -> None:
    """Delete all but the newest ``keep`` result folders under ``root``."""
    if not root.is_dir():
        return
    folders = sorted((path for path in root.iterdir() if path.is_dir()), key=lambda path: path.stat().st_mtime)
    for old in folders[: max(0, len(folders) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def printable(text: str) -> str:
    """The text with any lone surrogate written as an escape, so that files and JSON can hold it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def result_record(item: BatchItem, result: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    """The JSONL line of one text: its row (and id), the text, the engine's JSON result (or the error)."""
    ids = {"id": item.id} if item.id else {}
    return {"row": item.row, **ids, "text": printable(item.text), **(result or {}), "error": error or ""}


def field_columns(names: list[str], fixed: Iterable[str]) -> list[str]:
    """The column of each extracted field in a table of results: its name, or field_<name> where a
    column the table always has (``row``, ``text``, ``error`` …) is called that, so that neither
    column's cells are lost to the other."""
    taken = set(fixed)
    columns: list[str] = []
    for name in names:
        column = name
        while column in taken:
            column = f"field_{column}"
        taken.add(column)
        columns.append(column)
    return columns


def flat_record(task: str, record: dict[str, Any], names: list[str], with_id: bool = False) -> dict[str, Any]:
    """The CSV / table row of one result: the label and its score, or one column per field
    (field_columns)."""
    flat: dict[str, Any] = {"row": record["row"]}
    if with_id:
        flat["id"] = record.get("id", "")
    flat["text"] = record["text"]
    if task == "classify":
        label = record.get("label", "")
        flat["label"] = label
        flat["score"] = round(record.get("scores", {}).get(label, 0.0), 4) if label else ""
    else:
        fields = record.get("fields", {})
        for name, column in zip(names, field_columns(names, [*flat, "error"]), strict=True):
            flat[column] = " | ".join(mention["text"] for mention in fields.get(name, []))
    flat["error"] = record["error"]
    return flat
