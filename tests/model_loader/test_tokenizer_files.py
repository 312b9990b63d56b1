"""The engine reads the tokenizer without transformers (tokenizer_files); its ids, texts and
vocabulary must be transformers' own for the same folder, so that choice never changes an answer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from model_loader.text.tokenizer_files import (
    FileTokenizer,
    TransformersTokenizer,
    load_tokenizer,
    needs_transformers,
    read_config,
)

ROOT = Path(__file__).resolve().parents[2]

ODD_TEXTS = [
    "",
    " ",
    "  leading and trailing  ",
    "line one\nline two\r\n\ttabbed",
    "a literal </s> and <pad> and <s> in the text",
    "表情 😀🚀 and combining é (e\u0301)",
    "输入: 小米集团于2023年发布\n分类: 财经,体育\n输出: [GEN]",
    "全角ＡＢＣ，半角abc,数字１２３ 123",
]


@pytest.fixture(scope="module")
def texts(entity_texts: list[str], headline_texts: list[str]) -> list[str]:
    return ODD_TEXTS + entity_texts[:60] + headline_texts[:60]


@pytest.fixture(scope="module")
def tokenizer(demo_dir: Path) -> FileTokenizer:
    return FileTokenizer(demo_dir, read_config(demo_dir))


@pytest.fixture(scope="module")
def reference(demo_dir: Path):
    return AutoTokenizer.from_pretrained(demo_dir, local_files_only=True)


def test_the_demo_folder_is_read_without_transformers(demo_dir: Path) -> None:
    assert needs_transformers(demo_dir, read_config(demo_dir)) is None
    assert isinstance(load_tokenizer(demo_dir), FileTokenizer)


def test_ids_match_transformers_with_and_without_special_tokens(tokenizer: FileTokenizer, reference, texts) -> None:
    for text in texts:
        assert tokenizer.encode(text) == reference(text)["input_ids"], text
        assert tokenizer.encode(text, special_tokens=False) == reference(text, add_special_tokens=False)["input_ids"]


def test_texts_decode_as_transformers_decodes_them(tokenizer: FileTokenizer, reference, texts) -> None:
    for text in texts:
        ids = reference(text)["input_ids"] + [reference.eos_token_id, reference.pad_token_id]
        assert tokenizer.decode(ids) == reference.decode(ids, skip_special_tokens=True), text


def test_special_tokens_and_vocabulary_match_transformers(tokenizer: FileTokenizer, reference) -> None:
    assert tokenizer.eos_id == reference.eos_token_id is not None
    assert tokenizer.special_ids == set(reference.all_special_ids)
    vocabulary = tokenizer.vocabulary()
    assert vocabulary == list(reference.convert_ids_to_tokens(range(len(reference))))
    some = [token for token in vocabulary[100:400] if token is not None]
    assert tokenizer.tokens_text(some) == reference.convert_tokens_to_string(some)


def test_a_folder_that_asks_transformers_to_add_tokens_is_read_by_transformers(demo_dir: Path, tmp_path) -> None:
    """With ``add_bos_token`` set, transformers may rewrite what the file does (it does for some
    tokenizer classes): the engine then leaves the tokenizing to transformers."""
    folder = tmp_path / "bos"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo_dir / name, folder / name)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": True}), encoding="utf-8")
    assert "add_bos_token" in (needs_transformers(folder, read_config(folder)) or "")
    tokenizer = load_tokenizer(folder)
    assert isinstance(tokenizer, TransformersTokenizer)
    reference = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert tokenizer.encode("你好 world") == reference("你好 world")["input_ids"]


def test_the_engine_process_does_not_import_transformers(demo_dir: Path) -> None:
    """Loading the engine and answering a free prompt leaves transformers unimported (24 MB)."""
    code = (
        "import sys; from pathlib import Path; from model_loader import Engine, Settings\n"
        f"engine = Engine(Settings(model_dir=Path({str(demo_dir)!r})))\n"
        "engine.load(); engine.generate('你好', 2); engine.close()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'transformers'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
