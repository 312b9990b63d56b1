"""Durable jobs benchmark: rows/s of a classification job and an extraction job through the real server and
HTTP, and interactive classification latency p50/p95 with no job running and while a job runs.

    .venv/bin/python scripts/bench_jobs.py                       # full-size random weights (.bench/)
    .venv/bin/python scripts/bench_jobs.py --model DEMO_DIR --classify-rows 20000 --extract-rows 0

Starts ``python -m webui`` on a free port with a workspace of its own, so what it measures is what a
user of /api/jobs gets: upload, import, the runner's slices, the engine's batches and the commits.
Extraction output is pinned (SEQGPT_EXTRACT_EXACT_TOKENS) so that random weights do the work real ones do.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _repo import ROOT  # first: puts the repository on sys.path
from bench_inputs import CLASS_LABELS, FIELDS, MODEL_FOLDER, build_model, load_texts  # noqa: E402
from bench_machine import processor  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(model: Path, workspace: Path, extract_tokens: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SEQGPT_")},
           "SEQGPT_WORKSPACE": str(workspace), "SEQGPT_MODEL_DIR": str(model), "SEQGPT_HOST": "127.0.0.1",
           "SEQGPT_PORT": str(port), "SEQGPT_EXTRACT_EXACT_TOKENS": str(extract_tokens),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    log = (workspace / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "webui"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((workspace / "server.log").read_text()[-3000:])
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the server did not become healthy within 600 s")


def write_file(path: Path, texts: list[str], rows: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([f"R{i:06d}", texts[i % len(texts)]] for i in range(rows))
    return path


def run_job(client: httpx.Client, path: Path, task: str, names: list[str],
            during: threading.Event | None = None) -> tuple[float, dict]:
    key = "labels" if task == "classify" else "fields"
    started = time.perf_counter()
    with path.open("rb") as handle:
        reply = client.post("/api/jobs", data={"task": task, key: ",".join(names)}, files={"file": (path.name, handle)})
    reply.raise_for_status()
    job_id = reply.json()["job_id"]
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if during is not None and job["state"] == "running" and job["rows_done"] > 0:
            during.set()
        if job["state"] in ("done", "failed", "cancelled"):
            return time.perf_counter() - started, job
        time.sleep(0.2)


def interactive(url: str, texts: list[str], count: int, seed: int) -> list[float]:
    """``count`` classifications one after another, as one user at the UI; seconds each."""
    rng = random.Random(seed)
    latencies = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for _ in range(count):
            text = rng.choice(texts)
            started = time.perf_counter()
            client.post("/api/classify", json={"text": text, "labels": CLASS_LABELS}).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help=f"model folder (default .bench/{MODEL_FOLDER})")
    parser.add_argument("--classify-rows", type=int, default=400)
    parser.add_argument("--extract-rows", type=int, default=64)
    parser.add_argument("--interactive", type=int, default=20, help="interactive requests per measurement")
    parser.add_argument("--extract-tokens", type=int, default=8, help="tokens each field generates (pinned)")
    args = parser.parse_args()
    texts = [text[:300] for text in load_texts(ROOT / "tests" / "data")]
    model = args.model or build_model(ROOT / ".bench" / MODEL_FOLDER, load_texts(ROOT / "tests" / "data"))
    print(f"processor: {processor()}; model {model}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        workspace = Path(tmp)
        process, url = start(model, workspace, args.extract_tokens)
        try:
            interactive(url, texts, 3, seed=0)  # warm-up
            if args.interactive:
                idle = interactive(url, texts, args.interactive, seed=1)
                print(f"interactive idle:       p50 {p(idle, 0.5) * 1000:7.0f} ms  p95 {p(idle, 0.95) * 1000:7.0f} ms"
                      f"  ({len(idle)} requests)")
            with httpx.Client(base_url=url, timeout=600) as client:
                path = write_file(workspace / "classify.csv", texts, args.classify_rows)
                seconds, job = run_job(client, path, "classify", CLASS_LABELS)
                print(f"classify job alone:     {job['rows_done']} rows ({len(CLASS_LABELS)} labels) in "
                      f"{seconds:.1f} s = {job['rows_done'] / seconds:.1f} rows/s, state {job['state']}")
                if args.extract_rows:
                    path = write_file(workspace / "extract.csv", texts, args.extract_rows)
                    seconds, job = run_job(client, path, "extract", FIELDS)
                    print(f"extract job alone:      {job['rows_done']} rows ({len(FIELDS)} fields, "
                          f"{args.extract_tokens} tokens each) in {seconds:.1f} s = "
                          f"{job['rows_done'] / seconds:.1f} rows/s")
                if args.interactive:
                    running = threading.Event()
                    busy: list[float] = []
                    measured_until: list[float] = []

                    def measure() -> None:
                        running.wait()
                        busy.extend(interactive(url, texts, args.interactive, seed=1))
                        measured_until.append(time.perf_counter())

                    talker = threading.Thread(target=measure, daemon=True)
                    talker.start()
                    path = write_file(workspace / "classify2.csv", texts, args.classify_rows)
                    job_started = time.perf_counter()
                    seconds, job = run_job(client, path, "classify", CLASS_LABELS, running)
                    talker.join()
                    overlap = measured_until[0] <= job_started + seconds
                    print(f"interactive during job: p50 {p(busy, 0.5) * 1000:7.0f} ms  p95 "
                          f"{p(busy, 0.95) * 1000:7.0f} ms  ({len(busy)} requests; the job "
                          f"{'ran throughout' if overlap else 'ENDED BEFORE THE LAST: make the job longer'}; "
                          f"meanwhile the job did {job['rows_done'] / seconds:.1f} rows/s)")
        finally:
            process.terminate()
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
