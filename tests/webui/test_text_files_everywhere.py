"""Uploaded files are decoded one way everywhere (batch tab, jobs, evaluation, knowledge base): UTF-8,
else GB18030; a file that is neither is refused saying what it is where its first bytes tell (an Excel
workbook renamed .csv, Excel's UTF-16 "Unicode Text") and how to save it as text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evaluation.data import EvaluationDataError, parse_gold
from model_loader.errors import InvalidInputError
from webui.batch.files import BatchFileError, parse_batch
from webui.jobs.files import InputReader
from webui.kb.documents import from_file

GBK_CSV = "text,label\n快递三天没到,投诉\n".encode("gb18030")
XLSX = b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256))  # a zip's first bytes, as an .xlsx starts
UTF16 = "text,label\n快递三天没到,投诉\n".encode("utf-16")  # with its byte-order mark
RANDOM = b"\x81\x30\xff\xfe\x00\xfa" * 8
# A PNG's bytes decode as GB18030 (its first line reads "塒NG"): refused by what they start with.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\nbinary\n"


def batch(data: bytes, tmp_path: Path) -> list[str]:
    return [item.text for item in parse_batch(data, "t.csv", 10)]


def job(data: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    return [row.text for row in InputReader(path, path.name)]


def evaluation(data: bytes, tmp_path: Path) -> list[str]:
    return [row.text for row in parse_gold(data, "t.csv", "classify", {}).rows]


def knowledge_base(data: bytes, tmp_path: Path) -> list[str]:
    return [doc.text for doc in from_file("t.csv", data, 10)]


READERS: list[tuple[Callable[[bytes, Path], list[str]], type[Exception]]] = [
    (batch, BatchFileError), (job, BatchFileError), (evaluation, EvaluationDataError),
    (knowledge_base, InvalidInputError),
]
IDS = [reader.__name__ for reader, _ in READERS]


@pytest.mark.parametrize(("read", "refusal"), READERS, ids=IDS)
def test_gb18030_is_read_everywhere(read, refusal, tmp_path: Path):
    assert read(GBK_CSV, tmp_path) == ["快递三天没到"]


@pytest.mark.parametrize(("read", "refusal"), READERS, ids=IDS)
@pytest.mark.parametrize(("data", "words"), [
    (XLSX, "an Excel workbook (.xlsx)"),
    (PNG, "a PNG image"),
    (UTF16, "UTF-16 text"),
    (RANDOM, "neither UTF-8 nor GB18030"),
], ids=["xlsx", "png", "utf16", "other bytes"])
def test_a_file_that_is_no_readable_text_is_refused_saying_what_it_is(read, refusal, data: bytes, words: str,
                                                                     tmp_path: Path):
    with pytest.raises(refusal) as refused:
        read(data, tmp_path)
    message = str(refused.value)
    assert words in message and " · " in message and "UTF-8" in message
