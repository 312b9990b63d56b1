"""Benchmark: our engine against the official SeqGPT settings, on the same full-size weights.

    python scripts/bench.py [--inputs 8] [--repeats 2] [--json PATH]
    python scripts/bench.py --quick     # a smoke run on demo weights in a minute or two

Builds once (cached in .bench/) a random-weight model with SeqGPT-560M's exact
architecture and a byte-level BPE tokenizer trained on the Chinese texts in
tests/data, so token counts resemble a real Chinese vocabulary. Random
weights do the same arithmetic as the real ones, so times and memory are real;
output lengths are pinned on both sides so that both do equal work.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model_loader.prompts import CLASSIFY, EXTRACT, build_prompt  # noqa: E402

# Chinese names of the TNEWS news categories
CLASS_LABELS = ["故事", "文化", "娱乐", "体育", "财经", "房产", "汽车", "教育",
                "科技", "军事", "旅游", "国际", "股票", "农业", "游戏"]
FIELDS = ["人名", "地名", "公司名称", "时间", "金额"]
TOKENS_PER_FIELD = 12  # a line such as "公司名称: 小米集团\t华为" plus its line break
CLIENTS = 8
# The workloads are cut from the very texts the tokenizer learns from, so a large vocabulary on the
# 40,000 characters of tests/data memorises whole phrases (12,000 tokens gave 3.8 characters a token);
# 3,000 gives 1.6, as 12,000 did on the 6,000 rows of the public CLUENER and TNEWS sets.
TOKENIZER_VOCAB = 3000


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
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BloomConfig, BloomForCausalLM, PreTrainedTokenizerFast

    print(f"building the full-size random-weight model in {out} (once) ...", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        padding_side="left", truncation_side="left",
    ).save_pretrained(out)
    config = BloomConfig(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    torch.manual_seed(0)
    BloomForCausalLM(config).to(torch.float16).save_pretrained(out, safe_serialization=True)
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


class Side:
    def __init__(self, name: str, model_dir: Path) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "bench_sides.py"), name, str(model_dir), str(TOKENS_PER_FIELD)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.hello = self._read()
        self.peak_rss_mb = 0.0

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} side exited early (code {self.process.wait()})")
        return json.loads(line)

    def ask(self, **command: object) -> dict:
        self.process.stdin.write(json.dumps(command, ensure_ascii=False) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        self.peak_rss_mb = answer["peak_rss_mb"]
        return answer

    def close(self) -> None:
        self.ask_quit()

    def ask_quit(self) -> None:
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.flush()
        self.process.wait(timeout=60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine_floor(dtype: str, trials: int = 5) -> dict:
    """This machine's matrix-product rate in the engine's dtype and its memory-copy rate, the two
    limits of a forward pass: the best of several trials, since a shared machine is only ever
    slower than its peak."""
    import time

    import torch

    a = torch.randn(2048, 2048).to(getattr(torch, dtype))
    b = torch.randn(2048, 2048).to(getattr(torch, dtype))
    src = torch.empty(64 * 1024 * 1024, dtype=torch.float32)
    dst = torch.empty_like(src)
    a @ b
    dst.copy_(src)
    gflops, gbps = 0.0, 0.0
    for _ in range(trials):
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        gflops = max(gflops, 2 * 2048**3 * 4 / (time.perf_counter() - started) / 1e9)
        started = time.perf_counter()
        for _ in range(2):
            dst.copy_(src)
        gbps = max(gbps, src.numel() * 4 * 2 / (time.perf_counter() - started) / 1e9)  # bytes copied per second
    return {"dtype": dtype, "matmul_gflops": gflops, "copy_gbps": gbps}


def floors(tokenizer, requests: list[dict], op: str, machine: dict, non_embedding: float) -> list[float]:
    """The least time each request could take here: every pass pays for its arithmetic or for
    reading the weights, whichever is larger (SPEC §7)."""
    weight_bytes = 4 if machine["dtype"] == "float32" else 2
    flops = machine["matmul_gflops"] * 1e9
    weight_read = weight_bytes * non_embedding / (machine["copy_gbps"] * 1e9)

    def pass_time(tokens: int) -> float:
        return max(2 * non_embedding * tokens / flops, weight_read)

    result = []
    for request in requests:
        labels = request["labels"] if op == "classify" else FIELDS
        task = CLASSIFY if op == "classify" else EXTRACT
        prompt = len(tokenizer(build_prompt(request["text"], task, labels))["input_ids"])
        if op == "classify":
            label_tokens = sum(len(tokenizer(label)["input_ids"]) for label in labels)
            result.append(pass_time(prompt) + pass_time(label_tokens))
        else:
            result.append(pass_time(prompt) + TOKENS_PER_FIELD * pass_time(len(FIELDS)))
    return result


def run(args: argparse.Namespace) -> dict:
    from transformers import AutoTokenizer

    texts = load_texts(args.data)
    model_dir = args.model or build_model(args.cache / "seqgpt-560m-random", texts)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sample = texts[:500]
    chars_per_token = sum(map(len, sample)) / sum(len(tokenizer(t)["input_ids"]) for t in sample)
    workloads = {
        "classification": ("classify", make_workload(texts, args.inputs, seed=1)),
        "extraction": ("extract", [dict(r, labels=FIELDS) for r in make_workload(texts, args.inputs, seed=2)]),
    }
    engine, reference = Side("engine", model_dir), Side("reference", model_dir)
    # Measured here, so that the sides' peak memory is theirs alone.
    machine = machine_floor(engine.hello["dtype"])
    non_embedding = 24 * (12 * 1024 * 1024 + 13 * 1024)  # per layer: 4 matrices + biases + 2 norms
    report: dict = {"machine": machine, "chars_per_token": chars_per_token,
                    "load_seconds": {"engine": engine.hello["load_seconds"],
                                     "reference": reference.hello["load_seconds"]}}
    for name, (op, requests) in workloads.items():
        for side in (engine, reference):  # warm-up, untimed
            side.ask(op=op, **requests[0])
        times = {"engine": [[] for _ in requests], "reference": [[] for _ in requests]}
        for repeat in range(args.repeats):
            for i, request in enumerate(requests):
                order = (engine, reference) if (i + repeat) % 2 == 0 else (reference, engine)
                for side in order:
                    times[side.name][i].append(side.ask(op=op, **request)["seconds"])
                print(f"  {name} {repeat + 1}/{args.repeats} input {i + 1}/{len(requests)}", flush=True)
        medians = {side: [statistics.median(t) for t in per_input] for side, per_input in times.items()}
        floor = floors(tokenizer, requests, op, machine, non_embedding)
        report[name] = {
            side: {"p50": percentile(m, 0.5), "p95": percentile(m, 0.95)} for side, m in medians.items()
        }
        report[name]["floor_p50"] = percentile(floor, 0.5)
        report[name]["ratio_p50"] = report[name]["reference"]["p50"] / report[name]["engine"]["p50"]
    reference.close()
    op, requests = workloads["extraction"]
    burst = requests * 2
    single = engine.ask(op="throughput", task=op, requests=burst, clients=1)["per_second"]
    together = engine.ask(op="throughput", task=op, requests=burst, clients=CLIENTS)["per_second"]
    report["concurrency"] = {"workload": "extraction", "clients": CLIENTS, "one_at_a_time_per_s": single,
                             "concurrent_per_s": together, "throughput_ratio": together / single}
    report["peak_rss_mb"] = engine.peak_rss_mb
    report["reference_peak_rss_mb"] = reference.peak_rss_mb
    engine.close()
    return report


def print_report(r: dict) -> None:
    m = r["machine"]
    print(f"\nmachine: {m['dtype']} matmul {m['matmul_gflops']:.0f} GFLOP/s (the engine's dtype here), "
          f"memory copy {m['copy_gbps']:.1f} GB/s; "
          f"bench tokenizer {r['chars_per_token']:.2f} Chinese characters per token")
    print(f"{'workload':<16}{'reference p50/p95 s':>22}{'engine p50/p95 s':>20}{'floor p50 s':>13}{'ratio p50':>11}")
    for name in ("classification", "extraction"):
        w = r[name]
        print(f"{name:<16}{w['reference']['p50']:>12.3f} / {w['reference']['p95']:<7.3f}"
              f"{w['engine']['p50']:>10.3f} / {w['engine']['p95']:<7.3f}{w['floor_p50']:>11.3f}"
              f"{w['ratio_p50']:>10.1f}x")
    c = r["concurrency"]
    print(f"concurrency ({c['workload']}, {c['clients']} clients): {c['concurrent_per_s']:.2f} req/s vs "
          f"{c['one_at_a_time_per_s']:.2f} req/s one at a time = {c['throughput_ratio']:.2f}x")
    print(f"peak RSS: engine {r['peak_rss_mb']:.0f} MB, reference {r['reference_peak_rss_mb']:.0f} MB")
    print(f"model load: engine {r['load_seconds']['engine']:.1f} s, reference {r['load_seconds']['reference']:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=8, help="requests per workload")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the inputs")
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data", help="folder of .jsonl texts")
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--model", type=Path, help="use this model folder instead (figures then describe it)")
    parser.add_argument("--quick", action="store_true",
                        help="check that everything runs: demo weights (figures mean nothing), 2 inputs, 1 pass")
    args = parser.parse_args()
    if args.quick:
        from model_loader.demo import build_demo_model

        args.inputs, args.repeats = 2, 1
        args.model = args.model or build_demo_model(args.cache / "demo")
    report = run(args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
