"""What SEQGPT_WEIGHTS=int8 changes: its answers against the 16-bit engine's on the same weights.

    python scripts/bench_int8.py MODEL_DIR [SAMPLES]   # one JSON line; scripts/bench.py runs it for you

On the repository's own labelled samples (tests/data/eval_*_sample.jsonl): how often int8 picks the
label 16-bit picks, the span F1 of int8's mentions against 16-bit's, and the relative error
(L2 norm of the difference over that of 16-bit) of the final logits over the whole vocabulary.
Run in a process of its own, so the benchmark's sides keep their own peak memory.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from evaluation.data import read_gold, read_map  # noqa: E402
from evaluation.metrics import span_metrics  # noqa: E402
from model_loader import Engine, Settings  # noqa: E402
from model_loader.model.kv_cache import SequenceCache  # noqa: E402
from model_loader.text.prompts import CLASSIFY, build_prompt  # noqa: E402

DATA = ROOT / "tests" / "data"
# Random weights seldom write a line break, so every field would decode to the appliance's limit (128
# tokens); the samples' entities are a few tokens long, and 16 bounds the run without cutting them.
FIELD_TOKENS = 16
# Decode steps before the logits compared on free prompts, where the int8 engine's keys and values are int8.
DECODE_STEPS = 8


def final_logits(engine: Engine, prompts: list[str]) -> list[torch.Tensor]:
    """Each prompt's fp32 logits over the whole vocabulary after its last token."""
    view = engine.model
    assert view is not None, "the engine is loaded"
    ids = [view.tokens.encode(p) for p in prompts]
    last = view.runner.prefill(ids, view.runner.sequence_cache([len(i) for i in ids]))
    return list(view.runner.scores(last).float())


def logits_after_steps(engine: Engine, prompts: list[str], int8_cache: bool | None = None) -> list[torch.Tensor]:
    """Each prompt's fp32 logits after DECODE_STEPS decode steps fed the prompt's own first tokens (the
    same on both sides), with the engine's own key/value cache or, with ``int8_cache``, the one asked."""
    view = engine.model
    assert view is not None, "the engine is loaded"
    runner = view.runner
    ids = [view.tokens.encode(p) for p in prompts]
    int8 = runner.int8 if int8_cache is None else int8_cache
    cache = SequenceCache.empty(runner.layout, [len(i) + DECODE_STEPS for i in ids], int8=int8)
    last = runner.prefill(ids, cache)
    for step in range(DECODE_STEPS):
        fed = torch.tensor([i[step % len(i)] for i in ids], device=runner.device)
        last = runner.extend(fed, cache, list(range(len(ids))))
    return list(runner.scores(last).float())


def answers(engine: Engine, classify: list, labels: list[str], extract: list, fields: list[str]) -> dict:
    prompts = [build_prompt(row.text, CLASSIFY, labels) for row in classify[:8]]
    assert engine.model is not None, "the engine is loaded"
    int8 = engine.model.runner.int8
    return {
        "labels": [engine.classify(row.text, labels).label for row in classify],
        "spans": [
            {(name, m.start, m.end) for name, mentions in engine.extract(row.text, fields).fields.items()
             for m in mentions}
            for row in extract
        ],
        "logits": final_logits(engine, prompts),
        "decoded": logits_after_steps(engine, prompts),
        # The int8 engine with 16-bit keys and values: what the int8 cache alone changes (the 16-bit
        # engine's own cache is 16-bit already).
        "decoded_16bit_cache": logits_after_steps(engine, prompts, int8_cache=False) if int8 else None,
    }


def fidelity(model_dir: Path, samples: int | None = None, data: Path = DATA) -> dict:
    """``samples``: at most this many of each file (all by default)."""
    classify = read_gold(data / "eval_tnews_sample.jsonl", "classify", read_map(str(data / "eval_tnews_map.txt")))
    extract = read_gold(data / "eval_cluener_sample.jsonl", "extract", read_map(str(data / "eval_cluener_map.txt")))
    classify.rows, extract.rows = classify.rows[:samples], extract.rows[:samples]
    results = {}
    for mode in ("16bit", "int8"):
        engine = Engine(Settings(model_dir=model_dir, weights=mode, extract_max_new_tokens=FIELD_TOKENS))
        engine.load()
        results[mode] = answers(engine, classify.rows, classify.names, extract.rows, extract.names)
        engine.close()
        del engine
    base, int8 = results["16bit"], results["int8"]
    agree = sum(a == b for a, b in zip(base["labels"], int8["labels"], strict=True))
    spans = span_metrics(base["spans"], int8["spans"], extract.names)["micro"]
    errors = relative_errors(base["logits"], int8["logits"])
    same_top = sum(int(a.argmax() == b.argmax()) for a, b in zip(base["logits"], int8["logits"], strict=True))
    decoded = relative_errors(base["decoded"], int8["decoded"])
    cache_only = relative_errors(int8["decoded_16bit_cache"], int8["decoded"])
    return {
        "classification_samples": len(classify.rows),
        "label_agreement": agree / len(classify.rows),
        "extraction_samples": len(extract.rows),
        "span_f1_vs_16bit": spans["f1"],
        # F1 is 0 where neither side found a span: these say whether there were any to agree on.
        "spans_16bit": sum(map(len, base["spans"])),
        "spans_int8": sum(map(len, int8["spans"])),
        "logits_relative_error_median": statistics.median(errors),
        "logits_relative_error_max": max(errors),
        "logits_same_top_token": same_top / len(errors),
        "decode_steps": DECODE_STEPS,
        "decoded_logits_relative_error_median": statistics.median(decoded),
        "int8_cache_relative_error_median": statistics.median(cache_only),
    }


def relative_errors(expected: list[torch.Tensor], got: list[torch.Tensor]) -> list[float]:
    """L2 norm of each difference over that of the expected logits."""
    return [float((b - a).norm() / a.norm()) for a, b in zip(expected, got, strict=True)]


def print_fidelity(f: dict) -> None:
    print(f"int8 against 16-bit: label agreement {f['label_agreement']:.1%} on {f['classification_samples']} "
          f"classification samples, span F1 {f['span_f1_vs_16bit']:.3f} on {f['extraction_samples']} extraction "
          f"samples ({f['spans_16bit']} spans in 16-bit, {f['spans_int8']} in int8); "
          f"final logits relative error median {f['logits_relative_error_median']:.4f} "
          f"(max {f['logits_relative_error_max']:.4f}), same top token {f['logits_same_top_token']:.0%}; "
          f"after {f['decode_steps']} decode steps {f['decoded_logits_relative_error_median']:.4f}, of which "
          f"int8 keys and values against 16-bit ones {f['int8_cache_relative_error_median']:.4f}")


def main() -> int:
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(fidelity(Path(sys.argv[1]), samples)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
