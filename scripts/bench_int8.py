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


def final_logits(engine: Engine, prompts: list[str]) -> list[torch.Tensor]:
    """Each prompt's fp32 logits over the whole vocabulary after its last token."""
    view = engine.model
    assert view is not None, "the engine is loaded"
    ids = [view.tokens.encode(p) for p in prompts]
    last = view.runner.prefill(ids, SequenceCache.empty(view.runner.layout, [len(i) for i in ids]))
    return list(view.runner.scores(last).float())


def answers(engine: Engine, classify: list, labels: list[str], extract: list, fields: list[str]) -> dict:
    return {
        "labels": [engine.classify(row.text, labels).label for row in classify],
        "spans": [
            {(name, m.start, m.end) for name, mentions in engine.extract(row.text, fields).fields.items()
             for m in mentions}
            for row in extract
        ],
        "logits": final_logits(engine, [build_prompt(row.text, CLASSIFY, labels) for row in classify[:8]]),
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
    errors = [float((b - a).norm() / a.norm()) for a, b in zip(base["logits"], int8["logits"], strict=True)]
    same_top = sum(int(a.argmax() == b.argmax()) for a, b in zip(base["logits"], int8["logits"], strict=True))
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
    }


def print_fidelity(f: dict) -> None:
    print(f"int8 against 16-bit: label agreement {f['label_agreement']:.1%} on {f['classification_samples']} "
          f"classification samples, span F1 {f['span_f1_vs_16bit']:.3f} on {f['extraction_samples']} extraction "
          f"samples ({f['spans_16bit']} spans in 16-bit, {f['spans_int8']} in int8); "
          f"final logits relative error median {f['logits_relative_error_median']:.4f} "
          f"(max {f['logits_relative_error_max']:.4f}), same top token {f['logits_same_top_token']:.0%}")


def main() -> int:
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(fidelity(Path(sys.argv[1]), samples)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
