"""What keeping the request history costs a classification: p50 latency with history on and off.

    python scripts/bench_history.py [--model-dir .bench/seqgpt-560m-random] [--requests 60]

One engine on the full-size random-weight model (scripts/bench_inputs.py builds it once), two
services in front of it: one records into a real history store in a temporary workspace, the
other records nothing. Requests alternate between them (off-on, on-off, …), each text once on
each side, so that both see the same machine load; the writer thread runs during the next
request, so its cost is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _repo import ROOT  # first: puts the repository on sys.path
from bench_inputs import CLASS_LABELS, MODEL_FOLDER, build_model, load_texts  # noqa: E402

from model_loader import Engine, Settings  # noqa: E402
from webui.history.room import HistoryRoom  # noqa: E402
from webui.service.gate import ModelGate  # noqa: E402
from webui.service.metrics import Metrics  # noqa: E402
from webui.service.request import RequestInfo, Service  # noqa: E402
from webui.service.shutdown import ShutdownClock  # noqa: E402
from webui.service.status import GpuMonitor  # noqa: E402
from webui.settings import ServerSettings  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def service(engine: Engine, history: HistoryRoom | None) -> Service:
    gpu = GpuMonitor("cpu")
    metrics = Metrics(queue_depth=lambda: 0.0, load_seconds=lambda: 0.0, gpu=gpu.read)
    served = Service(engine, ModelGate(1, 4), metrics, gpu, ShutdownClock())
    served.history = history
    return served


async def run(engine: Engine, on: Service, off: Service, texts: list[str], count: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(2 * count + 4):
        text = texts[(i // 2) % len(texts)]  # each text once with and once without
        # Pairs alternate which side goes first (off-on, on-off, …): neither always follows the other.
        first_off = (i // 2) % 2 == 0
        name, target = ("off", off) if (i % 2 == 0) == first_off else ("on", on)
        started = time.perf_counter()
        await target.run(RequestInfo("classify", "bench", text, len(CLASS_LABELS)), engine.classify, text,
                         CLASS_LABELS)
        if i >= 4:  # the first two of each warm the caches
            timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / ".bench" / MODEL_FOLDER)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("--requests", type=int, default=60, help="requests on each side (default 60)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    texts = load_texts(args.data)
    build_model(args.model_dir, texts)
    engine = Engine(Settings(model_dir=args.model_dir, device=args.device))
    print(f"loading {args.model_dir} ...", flush=True)
    engine.load()
    with tempfile.TemporaryDirectory() as workspace:
        room = HistoryRoom(engine, ServerSettings(workspace=Path(workspace), history=True))
        room.start()
        try:
            timings = asyncio.run(run(engine, service(engine, room), service(engine, None), texts, args.requests))
            assert room.recorder is not None and room.store is not None, "history is on here"
            room.recorder.flush()
            stored = room.store.counts()["requests"]
        finally:
            room.stop()
            engine.close()
    status = engine.status
    print(f"classification, {len(CLASS_LABELS)} labels, {args.requests} requests each side, one at a time, "
          f"{status.device} {status.dtype}; {stored} requests stored")
    for name in ("off", "on"):
        values = timings[name]
        print(f"history {name:3}: p50 {statistics.median(values):8.1f} ms  p95 {percentile(values, 0.95):8.1f} ms  "
              f"mean {statistics.fmean(values):8.1f} ms")
    p50_off, p50_on = statistics.median(timings["off"]), statistics.median(timings["on"])
    print(f"overhead of history at p50: {p50_on - p50_off:+.1f} ms ({(p50_on / p50_off - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
