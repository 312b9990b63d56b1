"""Shared fixtures for the engine tests: demo weights built once, engines loaded once, Chinese texts from tests/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_loader import Engine, Settings
from model_loader.decoding import FieldAnswer
from model_loader.model.demo import build_demo_model

DATA = Path(__file__).resolve().parents[1] / "data"


def _read_jsonl(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("weights") / "seqgpt-demo")


@pytest.fixture(scope="session")
def engine(demo_dir: Path):
    """The engine as users get it: default settings (dtype auto, fast decoding) on demo weights."""
    eng = Engine(Settings(model_dir=demo_dir))
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def engine_fp32(demo_dir: Path):
    """Float32 on CPU, the precision `transformers` is compared with."""
    eng = Engine(Settings(model_dir=demo_dir, dtype="float32"))
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def engine_int8(demo_dir: Path):
    """Weight-only int8 (SEQGPT_WEIGHTS=int8) in the CPU's own dtype."""
    eng = Engine(Settings(model_dir=demo_dir, weights="int8"))
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(params=["16bit", "int8"])
def engine_by_weights(request: pytest.FixtureRequest):
    """The default engine and the int8 one: every invariant holds in both weight modes."""
    return request.getfixturevalue("engine" if request.param == "16bit" else "engine_int8")


@pytest.fixture(scope="session")
def engines_by_dtype(engine, engine_fp32, engine_int8, demo_dir: Path):
    """An engine in each dtype the CPU may run (``auto`` picks one by the processor), so
    every one is tested whichever this machine picks."""
    engines = {"float32": engine_fp32, engine.status.dtype: engine, "int8": engine_int8}
    extra = []
    for dtype in ("bfloat16", "float16"):
        if dtype not in engines:
            engines[dtype] = Engine(Settings(model_dir=demo_dir, dtype=dtype))
            engines[dtype].load()
            extra.append(engines[dtype])
    yield engines
    for eng in extra:
        eng.close()


@pytest.fixture(scope="session")
def hf_model(demo_dir: Path):
    """The same demo weights through plain `transformers`, float32: the reference implementation."""
    import torch
    from transformers import BloomForCausalLM

    model = BloomForCausalLM.from_pretrained(demo_dir, local_files_only=True, dtype=torch.float32)
    model.eval()
    return model


@pytest.fixture(scope="session")
def entity_rows() -> list[dict]:
    """News sentences, tickets, contract clauses and long documents with marked mentions (tests/data)."""
    return _read_jsonl("entities.jsonl")


@pytest.fixture(scope="session")
def entity_texts(entity_rows: list[dict]) -> list[str]:
    return [row["text"] for row in entity_rows]


@pytest.fixture(scope="session")
def headline_texts() -> list[str]:
    return [row["text"] for row in _read_jsonl("headlines.jsonl")]


@pytest.fixture(scope="session")
def long_chinese_text(entity_texts: list[str]) -> str:
    """About 5,000 characters: the long documents, then short rows, far beyond the 1,024-token window."""
    text = ""
    for row in sorted(entity_texts, key=len, reverse=True):
        if len(text) + len(row) > 5_000:
            continue
        text += row
    assert len(text) > 4_900
    return text


@pytest.fixture(scope="session")
def make_answer(engine):
    """Build what the decoder would return had the model written ``line``: its token ids and probabilities."""
    tokenizer = engine.model.tokens.tokenizer
    vocabulary = engine.model.tokens.vocabulary

    def make(line: str, probability: float | list[float] = 0.9) -> FieldAnswer:
        ids = tokenizer.encode(line, special_tokens=False)
        assert vocabulary.decode(ids)[0] == line, "the demo tokenizer must spell the line back exactly"
        probabilities = [probability] * len(ids) if isinstance(probability, float) else list(probability)
        return FieldAnswer(tokens=ids, probabilities=probabilities)

    return make
