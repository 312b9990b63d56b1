"""The texts in tests/data are what the README beside them says: exact offsets, the stated mix of
lengths and scripts, nothing the suite would need from outside the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
ENTITY_TYPES = {"name", "address", "organization", "company", "government", "position", "book", "movie", "game",
                "scene"}
HEADLINE_LABELS = {"故事", "文化", "娱乐", "体育", "财经", "房产", "汽车", "教育", "科技", "军事", "旅游", "国际",
                   "股票", "农业", "游戏"}


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def entities() -> list[dict]:
    return read("entities.jsonl")


def test_every_entity_offset_spells_its_mention_with_an_inclusive_end(entities):
    checked = 0
    for row in entities:
        assert set(row["label"]) <= ENTITY_TYPES
        for mentions in row["label"].values():
            for mention, spans in mentions.items():
                for start, end in spans:
                    assert row["text"][start : end + 1] == mention
                    checked += 1
    assert checked > 200


def test_entity_texts_range_from_a_few_characters_to_long_documents_mixed_with_english_and_digits(entities):
    lengths = sorted(len(row["text"]) for row in entities)
    assert lengths[0] <= 5 and lengths[-1] >= 1500
    assert sum(length >= 600 for length in lengths) >= 4, "long documents, split by the engine"
    assert sum(bool(re.search(r"[A-Za-z]{3}", row["text"])) for row in entities) >= 20
    assert sum(bool(re.search(r"\d", row["text"])) for row in entities) >= 40
    assert sum("\n" in row["text"] for row in entities) >= 4, "multi-line contracts and tickets"


def test_headlines_carry_one_of_the_fifteen_news_categories_each():
    rows = read("headlines.jsonl")
    assert len(rows) >= 60
    assert {row["label"] for row in rows} == HEADLINE_LABELS
    assert all(row["text"].strip() for row in rows)


def test_nothing_in_the_repository_reads_a_folder_beside_it():
    root = DATA.parents[1]
    pattern = re.compile(r"""(\.\./shared|parent\s*/\s*["']shared|/work/shared)""")
    offenders = [
        str(path.relative_to(root))
        for folder in ("model_loader", "webui", "scripts", "tests", "supervisor")
        for path in (root / folder).rglob("*")
        if path.is_file() and path != Path(__file__).resolve() and path.suffix in {".py", ".sh", ".conf", ""}
        and pattern.search(path.read_text("utf-8"))
    ]
    assert offenders == []
