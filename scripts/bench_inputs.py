"""The benchmark's inputs: its texts, the full-size random-weight model it runs on (built once), and
the requests and free prompts cut from the texts. Used by scripts/bench.py and scripts/bench_replicas.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import _repo  # noqa: F401  (first: puts the repository on sys.path)

from model_loader.model.demo import train_tokenizer
from model_loader.text.prompts import EXTRACT, build_prompt

# Chinese names of the TNEWS news categories
CLASS_LABELS = ["故事", "文化", "娱乐", "体育", "财经", "房产", "汽车", "教育",
                "科技", "军事", "旅游", "国际", "股票", "农业", "游戏"]
FIELDS = ["人名", "地名", "公司名称", "时间", "金额"]
# The workloads are cut from the very texts the tokenizer learns from, so a large vocabulary on the
# 40,000 characters of tests/data memorises whole phrases (12,000 tokens gave 3.8 characters a token);
# 3,000 gives 1.6, as 12,000 did on the 6,000 rows of the public CLUENER and TNEWS sets.
TOKENIZER_VOCAB = 3000
GEN_PROMPT_TOKENS = (100, 400)
MODEL_FOLDER = "seqgpt-560m-random"  # the built model's folder in the benchmarks' cache (.bench/)


def load_texts(data_dir: Path) -> list[str]:
    """Every text in the folder's .jsonl files: ours in tests/data ("text"), or CLUENER ("text") and
    TNEWS ("sentence") files from the public sets."""
    texts = []
    for path in sorted(data_dir.glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts += [text for row in rows if (text := row.get("text") or row.get("sentence"))]
    if not texts:
        raise SystemExit(f"no texts in {data_dir}: pass --data with a folder of .jsonl files holding \"text\" fields")
    return texts


def build_model(out: Path, texts: list[str]) -> Path:
    """SeqGPT-560M's architecture with random fp16 weights (as the real checkpoint is stored)."""
    if (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    print(f"building the full-size random-weight model in {out} (once) ...", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(texts, TOKENIZER_VOCAB, out)
    config = BloomConfig(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    torch.manual_seed(0)
    BloomForCausalLM(config).to(torch.float16).save_pretrained(  # type: ignore[arg-type]
        out, safe_serialization=True
    )
    return out


def make_workload(texts: list[str], count: int, seed: int) -> list[dict]:
    """Texts of 50-300 characters built from consecutive rows, with 3-8 labels each."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        target, start = rng.randint(50, 300), rng.randrange(len(texts))
        text = ""
        while len(text) < target:
            text += texts[start % len(texts)] + "。"
            start += 1
        requests.append({"text": text[:target], "labels": rng.sample(CLASS_LABELS, rng.randint(3, 8))})
    return requests


def make_free_prompts(texts: list[str], tokenizer, count: int, seed: int) -> list[str]:
    """SeqGPT-format prompts of 100-400 tokens (uniformly drawn), built from consecutive rows."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        target, start = rng.randint(*GEN_PROMPT_TOKENS), rng.randrange(len(texts))

        def tokens(text: str) -> int:
            return len(tokenizer(build_prompt(text, EXTRACT, FIELDS))["input_ids"])

        text = ""
        while tokens(text) < target:
            text += texts[start % len(texts)] + "。"
            start += 1
        low, high = 0, len(text)  # the longest start of the text whose prompt fits the target
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if tokens(text[:middle]) <= target else (low, middle - 1)
        prompts.append(build_prompt(text[:low], EXTRACT, FIELDS))
    return prompts
