"""Benchmark: throughput of the engine on 1 and on 2 Ray Serve replicas on this machine, and in-process.

    python scripts/bench_replicas.py                 # demo weights, a few minutes
    python scripts/bench_replicas.py --full-size     # SeqGPT-560M's architecture, random weights (.bench/)

Needs requirements-cluster.txt. Every side runs the same extraction requests from the same
number of concurrent clients, through the engine's public interface (the web layer is the same
for all and left out); each field generates a pinned number of tokens, so every side does equal
work. Sides alternate over the rounds; the median round is reported. On a machine with few
cores the replicas share them, so the gain of a second replica is bounded by the cores, not by Ray.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _repo import ROOT  # first: puts the repository on sys.path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_inputs import FIELDS  # beside this script

from model_loader.engine import Engine
from model_loader.settings import Settings
from serving.local import LocalCluster
from serving.settings import ClusterSettings


def model_dir(args: argparse.Namespace) -> Path:
    if args.model_dir:
        return Path(args.model_dir)
    if args.full_size:
        from bench_inputs import MODEL_FOLDER, build_model, load_texts

        # The main benchmark's model, built once and shared: not a second copy of 1.1 GB.
        return build_model(ROOT / ".bench" / MODEL_FOLDER, load_texts(ROOT / "tests" / "data"))
    from model_loader.model.demo import build_demo_model

    out = ROOT / ".bench" / "demo-model"
    return out if (out / "config.json").exists() else build_demo_model(out)


def texts(count: int) -> list[str]:
    import json

    rows = (ROOT / "tests" / "data" / "entities.jsonl").read_text(encoding="utf-8").splitlines()
    found = [json.loads(row)["text"] for row in rows if row.strip()]
    return [found[i % len(found)] for i in range(count)]


def make_engine(side: str, cores: int):  # noqa: ANN201
    if side == "in-process":
        os.environ["SEQGPT_TORCH_THREADS"] = str(cores)
        return Engine(Settings.from_env())
    replicas = int(side.split()[0])
    os.environ["SEQGPT_TORCH_THREADS"] = str(max(1, cores // replicas))
    cluster = ClusterSettings.from_env({"SEQGPT_REPLICAS": str(replicas), "SEQGPT_SERVE_PORT": str(free_port())})
    return LocalCluster(cluster, Settings.from_env())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(engine, requests: list[str], clients: int) -> dict:  # noqa: ANN001
    def one(text: str) -> float:
        started = time.perf_counter()
        engine.extract(text, FIELDS)
        return time.perf_counter() - started

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, requests[:clients]))  # warm-up: first batches, thread pools, routes
        started = time.perf_counter()
        latencies = list(pool.map(one, requests))
        seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "rps": len(requests) / seconds,
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="weights to serve (default: demo weights built in .bench/)")
    parser.add_argument("--full-size", action="store_true", help="SeqGPT-560M's architecture with random weights")
    parser.add_argument("--requests", type=int, default=48, help="extraction requests per round (default 48)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the sides alternate in each (default 2)")
    parser.add_argument("--tokens", type=int, default=8, help="tokens generated per field, pinned (default 8)")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    os.environ.update({"SEQGPT_MODEL_DIR": str(model_dir(args)), "SEQGPT_DEVICE": "cpu",
                       "SEQGPT_EXTRACT_EXACT_TOKENS": str(args.tokens)})
    requests = texts(args.requests)
    sides = ["in-process", "1 replica", "2 replicas"]
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in sides if round_ % 2 == 0 else list(reversed(sides)):
            engine = make_engine(side, cores)
            engine.load()
            try:
                results[side].append(measure(engine, requests, args.clients))
            finally:
                engine.close()
            print(f"round {round_ + 1} {side:>10}: {results[side][-1]['rps']:.2f} requests/s", flush=True)

    print(f"\n{args.requests} extraction requests x {len(FIELDS)} fields x {args.tokens} tokens, "
          f"{args.clients} clients, {cores} cores, weights {os.environ['SEQGPT_MODEL_DIR']}")
    print(f"{'side':>12} {'requests/s':>11} {'p50 s':>7} {'p95 s':>7}  (median of {args.rounds} rounds)")
    medians = {}
    for side in sides:
        rps = statistics.median(r["rps"] for r in results[side])
        medians[side] = rps
        p50 = statistics.median(r["p50"] for r in results[side])
        p95 = statistics.median(r["p95"] for r in results[side])
        print(f"{side:>12} {rps:>11.2f} {p50:>7.2f} {p95:>7.2f}")
    print(f"\n2 replicas / 1 replica: {medians['2 replicas'] / medians['1 replica']:.2f}x; "
          f"1 replica / in-process: {medians['1 replica'] / medians['in-process']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
