"""Uploaded text files read one way for batch, jobs, evaluation and the knowledge base alike: decoded as UTF-8
(BOM or not), else GB18030; JSON lines parsed one at a time."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# Excel in China saves CSV as GB18030 (GBK); everything else should be UTF-8.
ENCODINGS = ("utf-8-sig", "gb18030")
UNDECODABLE = "文件编码无法识别 · the file is neither UTF-8 nor GB18030 text: save it as UTF-8 and upload it again"


# The longest original file name kept as metadata; a longer one keeps its start and its suffix.
MAX_NAME_CHARS = 160
_SEPARATORS = re.compile(r"[\\/]")


def upload_name(filename: str | None, default: str) -> str:
    """An uploaded file's own name, for metadata only (lists, logs, document ids): its last path part
    under either kind of slash, without control characters, at most MAX_NAME_CHARS long; ``default``
    when nothing is left. Files are never saved under it."""
    base = "".join(char for char in _SEPARATORS.split(filename or "")[-1] if char.isprintable()).strip()
    if base in ("", ".", ".."):
        return default
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        tail = dot + suffix if stem and len(suffix) < 16 else ""
        base = base[: MAX_NAME_CHARS - len(tail)] + tail
    return base


# The first bytes of files often sent as text that are not, or not in an encoding read here (an
# .xlsx renamed .csv, Excel's "Unicode Text"), and what each is.
_NOT_READABLE = (
    (b"PK\x03\x04", "a zip archive, such as an Excel workbook (.xlsx), not text"),
    (b"\xd0\xcf\x11\xe0", "an Office 97-2003 file, such as an Excel workbook (.xls), not text"),
    (b"%PDF", "a PDF, not text"),
    (b"\x89PNG", "a PNG image, not text"),
    (b"\xff\xd8\xff", "a JPEG image, not text"),
    (b"GIF8", "a GIF image, not text"),
    (b"\x1f\x8b", "a gzip archive, not text"),
    (b"7z\xbc\xaf", "a 7-Zip archive, not text"),
    (b"Rar!", "a RAR archive, not text"),
    (b"\xff\xfe", "UTF-16 text (Excel's Unicode Text), not UTF-8 or GB18030"),
    (b"\xfe\xff", "UTF-16 text, not UTF-8 or GB18030"),
)


def undecodable(head: bytes) -> str:
    """Why a file that starts with ``head`` could not be read as text: UNDECODABLE, or what it is
    where its first bytes say so, and how to save it so that it can be read."""
    for magic, what in _NOT_READABLE:
        if head.startswith(magic):
            return (f"文件无法作为文本读取 · the file is {what}: save it as CSV UTF-8 (Excel: File > Save As > "
                    "CSV UTF-8) or as UTF-8 plain text, and upload that")
    return UNDECODABLE


def known_binary(head: bytes) -> bool:
    """Whether a file starting with ``head`` is one of the kinds above: GB18030 decodes most bytes,
    so an image renamed .csv would otherwise be read as a few lines of odd characters."""
    return any(head.startswith(magic) for magic, _ in _NOT_READABLE)


def decode_text(data: bytes) -> str | None:
    """The file's text, or None when it is neither encoding (binary, or another code page)."""
    if known_binary(data[:8]):
        return None
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line of a JSON-lines file: its value, or why it could not be read."""

    number: int  # 1-based, counting blank lines too, as an editor shows it
    value: Any  # the parsed value (None also when it could not be read: see ``problem``)
    problem: str = ""  # empty when read, else the reason, e.g. "Expecting value" or "nested too deeply"


def json_lines(lines: Iterable[str]) -> Iterator[JsonLine]:
    """Each non-blank line parsed on its own, so that one bad line fails alone and the others are read.

    A line nested deeper than the parser's recursion limit (``[[[[…``) raises RecursionError, not a
    JSONDecodeError; it is reported like any other unreadable line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield JsonLine(number, json.loads(line))
        except json.JSONDecodeError as exc:
            yield JsonLine(number, None, exc.msg)
        except RecursionError:
            yield JsonLine(number, None, "nested too deeply")


def json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's own words (``array``, ``null`` …)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    kinds: dict[type, str] = {list: "array", str: "string", dict: "object"}
    return kinds.get(type(value), "number")
