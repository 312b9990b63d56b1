"""Benchmark the knowledge base on full-size random weights of both models (GTE-Large-zh shape, SeqGPT-560M shape).

    .venv/bin/python scripts/bench_kb.py [--passages 300] [--base 100000] [--queries 100] [--json PATH]

Prints: ingestion passages/s (embed + store, a few hundred passages), search p50/p95 over a base of
``--base`` passages (the base filled with stored random unit vectors; timed excluding and including
the query's embedding), the store's size on disk, this process's memory (both models and the base
loaded, i.e. the app's), and summary latency for a 500-character text. Random weights do exactly
the real models' arithmetic, so times and memory hold for the real ones; scores mean nothing.
The GTE weights are built once into .bench/gte-large-zh-random (shared cache).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np  # noqa: E402
from _repo import ROOT  # first: puts the repository on sys.path
from bench_machine import processor  # noqa: E402  (beside this script)

from model_loader import Engine, Settings  # noqa: E402
from model_loader.embedding import Embedder, EmbeddingSettings, build_demo_embedding_model  # noqa: E402
from webui.kb.passages import Passage, split_passages  # noqa: E402
from webui.kb.store import ADD_BATCH, PassageStore, open_client  # noqa: E402

CACHE = ROOT / ".bench"
TEXT = (
    "硬件故障排查指南：电脑蓝屏或重启后无法进入系统时，先断电检查内存条和硬盘连接，再尝试进入安全模式，"
    "卸载最近安装的驱动程序。若仍无法启动，使用系统修复盘恢复引导记录，必要时备份数据后重装系统。"
    "笔记本电池无法充电时，请检查电源适配器、充电口和电池健康度。打印机脱机：确认网线或无线连接正常，"
    "重新安装打印机驱动后再试。报销流程：员工提交发票和审批单，财务部门在五个工作日内完成付款。"
    "合同金额超过一百万元的须经法务部审核，审核时间一般为三个工作日，紧急情况可申请加急处理。"
)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--base", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--store", type=Path, help="store folder (default: a temporary one, removed after)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}

    gte_dir = CACHE / "gte-large-zh-random"
    if not (gte_dir / "model.safetensors").is_file():
        print(f"building full-size random GTE weights in {gte_dir} (once) ...", flush=True)
        build_demo_embedding_model(gte_dir, full_size=True)
    embedder = Embedder(EmbeddingSettings(model_dir=gte_dir, demo_fallback=False))
    started = time.perf_counter()
    embedder.load()
    results["gte_load_s"] = round(time.perf_counter() - started, 1)
    results["processor"], results["gte_dtype"] = processor(), embedder.status.dtype
    print(f"processor: {results['processor']}; GTE computes in {results['gte_dtype']}", flush=True)
    store_dir = args.store or Path(tempfile.mkdtemp(prefix="bench-kb-"))
    store = PassageStore(open_client(store_dir), embedder.status.dimensions)

    # Ingestion: documents of the usual kind cut into ~150-character passages, embedded and stored.
    # One long document (the text shifted a little each time, so passages differ), cut once.
    document = "".join(TEXT[i % 40:] + TEXT for i in range(args.passages // 2 + 1))
    passages: list[Passage] = split_passages(document, 150)[: args.passages]
    started = time.perf_counter()
    vectors = embedder.embed([p.text for p in passages], bulk=True)
    store.replace("ingest", "ingest", sum(len(p.text) for p in passages), {}, passages, vectors)
    seconds = time.perf_counter() - started
    results["ingest_passages"] = len(passages)
    results["ingest_passages_per_s"] = round(len(passages) / seconds, 2)
    print(f"ingestion: {len(passages)} passages (avg {statistics.mean(len(p.text) for p in passages):.0f} chars) "
          f"in {seconds:.1f} s = {results['ingest_passages_per_s']} passages/s", flush=True)

    # The base: stored random unit vectors, in the store's own add batches.
    rng = np.random.default_rng(0)
    filled = store.count()
    started = time.perf_counter()
    while filled < args.base:
        n = min(ADD_BATCH, args.base - filled)
        block = rng.standard_normal((n, embedder.status.dimensions)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        store.passages.add(ids=[f"fill#{filled + i}" for i in range(n)], embeddings=block,
                           documents=[f"填充段落 {filled + i}" for i in range(n)],
                           metadatas=[{"doc_id": "fill", "chunk_id": filled + i, "start": 0, "end": 1}
                                      for i in range(n)])
        filled += n
    results["base_passages"] = store.count()
    print(f"base: {store.count()} passages (filled in {time.perf_counter() - started:.0f} s)", flush=True)

    queries = [TEXT[i % 300 : i % 300 + 12 + i % 20] for i in range(args.queries)]
    for q in queries[:3]:  # warm-up
        store.search(embedder.embed([q])[0], 5)
    without, with_embedding = [], []
    for q in queries:
        t0 = time.perf_counter()
        vector = embedder.embed([q])[0]
        t1 = time.perf_counter()
        store.search(vector, 5)
        t2 = time.perf_counter()
        without.append((t2 - t1) * 1000)
        with_embedding.append((t2 - t0) * 1000)
    results["search_ms"] = {"p50": round(percentile(without, 50), 1), "p95": round(percentile(without, 95), 1)}
    results["search_with_embedding_ms"] = {"p50": round(percentile(with_embedding, 50), 1),
                                           "p95": round(percentile(with_embedding, 95), 1)}
    print(f"search over {store.count()} passages, top 5, {len(queries)} queries: "
          f"p50 {results['search_ms']['p50']} ms, p95 {results['search_ms']['p95']} ms without the query's "
          f"embedding; p50 {results['search_with_embedding_ms']['p50']} ms, "
          f"p95 {results['search_with_embedding_ms']['p95']} ms with it", flush=True)
    size = sum(p.stat().st_size for p in store_dir.rglob("*") if p.is_file())
    results["store_mb"] = round(size / 1e6, 1)
    print(f"store on disk: {results['store_mb']} MB", flush=True)

    engine = Engine(Settings(model_dir=CACHE / "seqgpt-560m-random"), embedder=embedder)
    engine.load()
    text = (TEXT * 2)[:500]
    engine.summarize(text[:100], 20)  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        summary = engine.summarize(text, 100)
        times.append((time.perf_counter() - t0) * 1000)
    results["summary_500_chars_ms"] = round(statistics.median(times), 1)
    results["summary_chars"] = len(summary.summary)
    results["rss_mb"] = round(rss_mb(), 0)
    print(f"summary of a 500-character text (max 100 chars, {len(summary.summary)} written): median "
          f"{results['summary_500_chars_ms']} ms of 3", flush=True)
    print(f"memory (RSS) with SeqGPT, GTE and the {store.count()}-passage base loaded: {results['rss_mb']:.0f} MB",
          flush=True)
    engine.close()
    embedder.close()
    if args.store is None:
        shutil.rmtree(store_dir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
