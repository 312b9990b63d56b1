"""A job's input file read row by row (CSV / JSONL / TXT, never whole in memory) and its results written as lines.

The formats, column names and formula-safe CSV are the batch tab's (webui/batch/files.py); this module
streams them, keeps every column the user had, and turns a row that cannot run into a failed row
rather than a refused file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_loader.text.files import ENCODINGS, json_lines, known_binary, undecodable

from ..batch.files import (
    FORMATS,
    TEXT_COLUMNS,
    BatchFileError,
    field_columns,
    neutralise_formula,
    no_text,
    no_text_on_line,
    not_an_object,
    too_many_cells,
)

READ_CHUNK = 1 << 20
# Where a CSV row's cells past the header's last column are kept (its row fails: an unquoted comma).
EXTRA_CELLS = "extra_cells"
# Keys the results add to each row; a user's column of the same name is carried as input_<name>.
RESULT_KEYS = ("row", "label", "scores", "score", "fields", "error")


@dataclass(frozen=True)
class InputRow:
    """One row of the input: the user's columns as they were, the text to run, and why it cannot run if so."""

    source: dict[str, Any]
    text: str
    problem: str = ""


def check_format(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix not in FORMATS:
        raise BatchFileError(
            f"文件类型不支持 · {filename!r} is not a CSV, JSONL or TXT file: upload one of {', '.join(FORMATS)}"
        )
    return suffix


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), else GB18030 as Excel in China saves CSV; checked over the whole file."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if known_binary(head):
        raise BatchFileError(undecodable(head))
    for encoding in ENCODINGS:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise BatchFileError(undecodable(head))


class InputReader:
    """Iterates a file's rows; ``columns`` (the user's, in order) and ``text_column`` are known after the header."""

    def __init__(self, path: Path, filename: str, text_column: str | None = None) -> None:
        self.path = Path(path)
        self.suffix = check_format(filename)
        self.encoding = detect_encoding(self.path)
        self.wanted = (text_column or "").strip() or None
        self.columns: list[str] = []
        self.text_column = self.wanted or "text"

    def __iter__(self) -> Iterator[InputRow]:
        with self.path.open(encoding=self.encoding, newline="") as handle:
            if self.suffix == ".csv":
                yield from self._csv(handle)
            elif self.suffix == ".jsonl":
                yield from self._jsonl(handle)
            else:
                self.columns = ["text"]
                for line in handle:
                    if line.strip():
                        yield InputRow({"text": line.rstrip("\r\n")}, line.strip())

    def _csv(self, handle: io.TextIOBase) -> Iterator[InputRow]:
        # strict: an unterminated quote is an error, not the rest of the file merged into one text.
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return
            self.columns = distinct_names([name.strip() for name in header])
            column = self._csv_text_column([name.lower() for name in self.columns])
            self.text_column = self.columns[column]
            named = list(self.columns)  # the header's columns (an extra_cells column may follow)
            width = len(named)
            extra_column = ""  # named once a row has cells past the header's last column
            for n, record in enumerate(reader, 1):
                if not record:
                    continue  # a blank line is no row
                source = {name: record[i] if i < len(record) else "" for i, name in enumerate(named)}
                if len(record) > width:
                    # Its row fails below; the cells are kept, joined again by the commas that parted
                    # them, in one column (as many columns as cells would let one row widen them all).
                    if not extra_column:
                        extra_column = unused(EXTRA_CELLS, set(self.columns))
                        self.columns.append(extra_column)
                    source[extra_column] = ",".join(record[width:])
                text = record[column].strip() if column < len(record) else ""
                problem = "" if text else no_text(n, self.text_column)
                if len(record) > width:
                    problem = too_many_cells(n, len(record), width)
                yield InputRow(source, text, problem)
        except csv.Error as exc:
            raise BatchFileError(
                f"CSV 格式有误 · the CSV is malformed near line {reader.line_num} ({exc}): check its quoting — "
                'a text with commas, quotes or line breaks goes in double quotes, and a quote inside it is written ""'
            ) from None

    def _csv_text_column(self, names: list[str]) -> int:
        if self.wanted is not None:
            if self.wanted.lower() in names:
                return names.index(self.wanted.lower())
            raise BatchFileError(
                f"CSV 没有 {self.wanted} 列 · text_column is {self.wanted!r} but the CSV has columns "
                f"{', '.join(self.columns)}: name one of them"
            )
        for name in TEXT_COLUMNS:
            if name.lower() in names:
                return names.index(name.lower())
        if len(names) == 1:
            return 0
        raise BatchFileError(
            f"CSV 没有 text 列 · the CSV has columns {', '.join(self.columns)} but none is named `text`: "
            "name the column that holds the texts `text` (or 文本), or send text_column"
        )

    def _jsonl(self, handle: io.TextIOBase) -> Iterator[InputRow]:
        key = self.text_column
        seen: dict[str, None] = {}
        for parsed in json_lines(handle):
            n, value = parsed.number, parsed.value
            if parsed.problem:
                yield InputRow({}, "", f"此行不是有效的 JSON · line {n} is not valid JSON ({parsed.problem}): "
                                       f'write one JSON object such as {{"{key}": "..."}} per line')
                continue
            source = value if isinstance(value, dict) else {key: value}
            if not _unicode(source):  # JSON's \ud800 escapes decode to what no UTF-8 store can hold
                yield InputRow(_replaced(source), "", f"此行含有无效字符 · line {n} holds a lone surrogate "
                                                      r"(an escape such as \ud800 without its pair), which is no "
                                                      "text: fix or remove those escapes")
                continue
            for name in source:
                if name not in seen:
                    seen[name] = None
                    self.columns.append(name)
            text = source.get(key)
            if not isinstance(value, dict | str):
                yield InputRow(source, "", not_an_object(n, value, key))
            elif not isinstance(text, str) or not text.strip():
                yield InputRow(source, "", no_text_on_line(n, key))
            else:
                yield InputRow(source, text.strip())


def unused(name: str, taken: set[str]) -> str:
    """``name``, with ``_`` appended until no name in ``taken`` is it."""
    while name in taken:
        name += "_"
    return name


def distinct_names(names: list[str]) -> list[str]:
    """Header names made distinct, so that no column's cells are lost to another of the same name:
    each name keeps its first column; a repeat or an empty name gets its position (``note_3``,
    ``column_4``), never a name the file already uses."""
    taken: set[str] = set()
    kept: list[str | None] = []
    for name in names:
        kept.append(name if name and name not in taken else None)
        taken.add(name)
    distinct = []
    for position, (name, keep) in enumerate(zip(names, kept, strict=True), 1):
        if keep is None:
            keep = unused(f"{name or 'column'}_{position}", taken)
            taken.add(keep)
        distinct.append(keep)
    return distinct


def _unicode(value: Any) -> bool:
    """Whether every string in ``value`` (keys included) can be written as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _replaced(value: Any) -> Any:
    """``value`` with each lone surrogate of its strings replaced by U+FFFD."""
    return json.loads(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
                      .decode("utf-8", "replace"))


def output_names(columns: list[str], reserved: Iterable[str]) -> list[str]:
    """The user's column names as the results carry them: input_<name> where a result key would
    overwrite the column, and each name once (a file with both `row` and `input_row` keeps both)."""
    taken = set(reserved)
    return distinct_names([f"input_{name}" if name in taken else name for name in columns])


def carried(source: dict[str, Any], reserved: Iterable[str] = RESULT_KEYS) -> dict[str, Any]:
    """The user's columns, renamed where a result key would overwrite them (output_names)."""
    return dict(zip(output_names(list(source), reserved), source.values(), strict=True))


def jsonl_line(row: int, source: dict[str, Any], result: dict[str, Any] | None, error: str | None) -> str:
    record = {**carried(source), "row": row, **(result or {}), "error": error or ""}
    return json.dumps(record, ensure_ascii=False) + "\n"


def csv_header(task: str, columns: list[str], names: list[str]) -> list[str]:
    """Formula-safe like every cell: a header is a cell a spreadsheet runs too."""
    results = ["label", "score"] if task == "classify" else field_columns(names, ["row", "error"])
    reserved = {*RESULT_KEYS, *results}
    header = [*output_names(columns, reserved), "row", *results, "error"]
    return [neutralise_formula(cell) for cell in header]


def csv_line(
    task: str, columns: list[str], names: list[str], row: int, source: dict[str, Any],
    result: dict[str, Any] | None, error: str | None,
) -> str:
    """One formula-safe CSV line: the user's columns, then the label and its score or one column per field."""
    cells: list[Any] = [_cell(source.get(name, "")) for name in columns] + [row]
    result = result or {}
    if task == "classify":
        label = result.get("label", "")
        cells += [label, round(result.get("scores", {}).get(label, 0.0), 4) if label else ""]
    else:
        fields = result.get("fields", {})
        cells += [" | ".join(mention["text"] for mention in fields.get(name, [])) for name in names]
    cells.append(error or "")
    return csv_text([neutralise_formula(cell) for cell in cells])


def csv_text(cells: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def _cell(value: Any) -> Any:
    return value if isinstance(value, str | int | float) or value is None else json.dumps(value, ensure_ascii=False)
