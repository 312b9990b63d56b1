"""The two sides of the benchmark, each run in its own process by scripts/bench.py.

``reference``: the official SeqGPT settings through plain transformers ``generate``
(fp32 on CPU, 4 beams, repetition penalty 2.0, 6 labels a prompt), and greedy free prompts in fp32.
``reference-bf16``: greedy free prompts through transformers ``generate`` in bf16.
``engine``: our engine as users get it by default; ``engine-int8``: the same with SEQGPT_WEIGHTS=int8.

Both read one JSON command a line on stdin and answer one JSON line on stdout;
output lengths are pinned so both sides generate the same number of tokens.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path

import _repo  # noqa: F401  (first: puts the repository on sys.path)
import torch

from model_loader import Engine, Settings
from model_loader.backends import FastBackend
from model_loader.backends.bench import BenchSwitches
from model_loader.backends.official import DO_SAMPLE, LABELS_PER_CHUNK, NUM_BEAMS, REPETITION_PENALTY
from model_loader.text.prompts import CLASSIFY, EXTRACT, build_prompt, complete_free_prompt


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). Not getrusage's ru_maxrss: Linux carries that
    over from the parent across fork and exec, so a side started by a parent that had just built
    the full-size model in fp32 reported the parent's 3.5 GB as its own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def together(call, prompts: list[str], new_tokens: int) -> None:
    """Each prompt from its own client thread, all sent at once."""
    start = threading.Barrier(len(prompts))

    def client(prompt: str) -> None:
        start.wait()
        call(prompt, new_tokens)

    threads = [threading.Thread(target=client, args=(p,)) for p in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Reference:
    def __init__(self, model_dir: Path, tokens_per_field: int, dtype: str = "float32") -> None:
        from transformers import AutoTokenizer, BloomForCausalLM

        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left", truncation_side="left")
        self.model = BloomForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
        self.load_seconds = time.perf_counter() - started
        self.dtype = dtype
        self.tokens_per_field = tokens_per_field

    def generate(self, prompts: list[str], new_tokens: int) -> None:
        """Greedy free prompts, as one left-padded batch; pinned to ``new_tokens``."""
        texts = [complete_free_prompt(p) for p in prompts]
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=1024)
        with torch.inference_mode():
            self.model.generate(
                **inputs,
                do_sample=False,
                num_beams=1,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )

    def _generate(self, prompts: list[str], new_tokens: int) -> None:
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=1024)
        with torch.inference_mode():
            self.model.generate(
                **inputs,
                num_beams=NUM_BEAMS,
                do_sample=DO_SAMPLE,
                repetition_penalty=REPETITION_PENALTY,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # pinned: random weights give end-of-sequence no meaning
                pad_token_id=self.tokenizer.pad_token_id,
            )

    def classify(self, text: str, labels: list[str]) -> None:
        longest = max(len(self.tokenizer(label, add_special_tokens=False)["input_ids"]) for label in labels)
        self._generate([build_prompt(text, CLASSIFY, labels)], longest + 1)

    def extract(self, text: str, fields: list[str]) -> None:
        chunks = [fields[i : i + LABELS_PER_CHUNK] for i in range(0, len(fields), LABELS_PER_CHUNK)]
        prompts = [build_prompt(text, EXTRACT, chunk) for chunk in chunks]
        self._generate(prompts, self.tokens_per_field * max(len(c) for c in chunks))


class OurEngine:
    def __init__(self, model_dir: Path, tokens_per_field: int, weights: str = "16bit") -> None:
        self.engine = Engine(Settings(model_dir=model_dir, weights=weights))
        self.engine.load()
        assert self.engine.model is not None and isinstance(self.engine.model.backend, FastBackend), "loaded above"
        self.engine.model.backend.bench = BenchSwitches(exact_field_tokens=tokens_per_field, ignore_eos=True)
        self.load_seconds = self.engine.status.load_seconds
        self.dtype = self.engine.status.dtype

    def classify(self, text: str, labels: list[str]) -> None:
        self.engine.classify(text, labels)

    def extract(self, text: str, fields: list[str]) -> None:
        self.engine.extract(text, fields)

    def generate(self, prompts: list[str], new_tokens: int) -> None:
        """One prompt, or several from concurrent clients (the engine batches them itself)."""
        if len(prompts) == 1:
            self.engine.generate(prompts[0], new_tokens)
        else:
            together(self.engine.generate, prompts, new_tokens)

    def throughput(self, task: str, requests: list[dict], clients: int) -> float:
        """Requests per second with ``clients`` threads sending the requests as fast as answered."""
        call = self.classify if task == "classify" else self.extract
        lock, pending = threading.Lock(), list(requests)
        # The clients start together, as the workload says, not staggered by thread start-up.
        start = threading.Barrier(clients + 1)

        def client() -> None:
            start.wait()
            while True:
                with lock:
                    if not pending:
                        return
                    request = pending.pop()
                call(request["text"], request["labels"])

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        start.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        return len(requests) / (time.perf_counter() - started)


def main() -> int:
    side, model_dir, tokens_per_field = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    if side in ("engine", "engine-int8"):
        weights = "int8" if side == "engine-int8" else "16bit"
        runner: OurEngine | Reference = OurEngine(model_dir, tokens_per_field, weights)
    else:
        runner = Reference(model_dir, tokens_per_field, "bfloat16" if side == "reference-bf16" else "float32")
    hello = {"ready": True, "load_seconds": runner.load_seconds, "dtype": runner.dtype, "rss_mb": rss_mb()}
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        if command["op"] == "throughput":
            assert isinstance(runner, OurEngine), "only the engine side measures throughput"
            rate = runner.throughput(command["task"], command["requests"], command["clients"])
            answer = {"per_second": rate}
        elif command["op"] == "generate":
            started = time.perf_counter()
            runner.generate(command["prompts"], command["new_tokens"])
            answer = {"seconds": time.perf_counter() - started}
        else:
            started = time.perf_counter()
            getattr(runner, command["op"])(command["text"], command["labels"])
            answer = {"seconds": time.perf_counter() - started}
        answer["peak_rss_mb"], answer["rss_mb"] = peak_rss_mb(), rss_mb()
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
