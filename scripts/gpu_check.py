"""The GPU run behind scripts/gpu_check.sh: each attention path on the GPU, timed, with its verdict.

    python scripts/gpu_check.py --out DIR                       # on a machine with a CUDA device
    python scripts/gpu_check.py --out DIR --cpu-dry-run --model DEMO_DIR   # the same code on the CPU

For each attention kernel the engine offers (eager, sdpa, flash-attn) it runs the known-answer
check against eager on the device; each kernel that passes serves the bench's classification,
extraction and free-prompt workloads (a few inputs, medians). NVML is read as the status bar reads
it. Writes DIR/gpu_check.json and DIR/gpu_check.md (a short table) and prints the table.
Exits 3 with "no CUDA device" where there is none (unless --cpu-dry-run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

NO_CUDA = 3  # the exit code where no CUDA device is visible
WORKLOADS = ("classification", "extraction", "generation")


def timed(call, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls, after one untimed warm-up."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def run_path(engine, name: str, kernel, texts: list[str], fields: list[str], repeats: int) -> dict:
    """The three workloads with the engine's attention set to ``kernel``."""
    from model_loader.model.attention import AttentionChoice

    engine.model.runner.attention = AttentionChoice(name, kernel)
    labels = ["财经", "体育", "科技", "娱乐", "军事", "国际"]
    prompt = f"输入: {texts[0]}\n输出:"
    return {
        "classification_ms": timed(lambda: [engine.classify(t, labels) for t in texts], repeats) / len(texts),
        "extraction_ms": timed(lambda: [engine.extract(t, fields) for t in texts], repeats) / len(texts),
        "generation_ms_per_token": (timed(lambda: engine.generate(prompt, 33), repeats)
                                    - timed(lambda: engine.generate(prompt, 1), repeats)) / 32,
    }


def check(model_dir: Path, device: str, repeats: int, inputs: int) -> dict:
    import torch
    from bench_inputs import FIELDS, load_texts

    from model_loader import Engine, Settings
    from model_loader.backends import FastBackend
    from model_loader.backends.bench import BenchSwitches
    from model_loader.model.attention import ANY_BIAS, KERNELS, check_kernel
    from webui.service.status import GpuMonitor

    engine = Engine(Settings(model_dir=model_dir, device=device))
    engine.load()
    assert engine.model is not None and isinstance(engine.model.backend, FastBackend), "loaded above"
    engine.model.backend.bench = BenchSwitches(ignore_eos=True)
    runner = engine.model.runner
    texts = load_texts(ROOT / "tests" / "data")[:inputs]
    paths = []
    for name, kernel in KERNELS.items():
        verdict = None if name == "eager" else check_kernel(
            kernel, runner.slopes, runner.head_dim, runner.dtype, name in ANY_BIAS
        )
        path: dict = {"attention": name, "check": "pass" if verdict is None else verdict}
        if verdict is None:
            path.update(run_path(engine, name, kernel, texts, FIELDS, repeats))
        paths.append(path)
    reading = GpuMonitor(device_setting=device).read()
    status = engine.status
    engine.close()
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "dtype": status.dtype,
        "engine_attention": status.attention,
        "decode_step_attention": runner.step_attention_name,
        "model_dir": str(model_dir),
        "inputs": inputs,
        "repeats": repeats,
        "paths": paths,
        "nvml": None if reading is None else {
            "name": reading.name, "memory_used_bytes": reading.memory_used_bytes,
            "memory_total_bytes": reading.memory_total_bytes, "utilization_pct": reading.utilization_pct,
            "temperature_c": reading.temperature_c,
        },
    }


def table(report: dict) -> str:
    """A short Markdown table of the paths, headed by the device."""
    head = (f"GPU check on {report['gpu'] or report['device']} ({report['dtype']}, torch {report['torch']}; "
            f"decode steps' attention: {report['decode_step_attention']})")
    lines = [head, "", "| attention | check | classify ms | extract ms | ms/token |", "|---|---|---|---|---|"]
    for p in report["paths"]:
        if p["check"] == "pass":
            lines.append(f"| {p['attention']} | pass | {p['classification_ms']:.1f} | {p['extraction_ms']:.1f} "
                         f"| {p['generation_ms_per_token']:.2f} |")
        else:
            lines.append(f"| {p['attention']} | {p['check'][:60]} | - | - | - |")
    nvml = report["nvml"]
    if nvml:
        lines += ["", f"NVML: {nvml['name']}, memory {nvml['memory_used_bytes'] / 2**30:.1f} / "
                      f"{nvml['memory_total_bytes'] / 2**30:.1f} GiB, util {nvml['utilization_pct']}%, "
                      f"{nvml['temperature_c']} °C"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_check")
    parser.add_argument("--model", type=Path, help="model folder (default: the bench's full-size random weights)")
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-dry-run", action="store_true", help="run the same steps on the CPU (tests)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False): run it on a machine with an "
              "NVIDIA GPU and driver", file=sys.stderr)
        return NO_CUDA
    model_dir = args.model
    if model_dir is None:
        from bench_inputs import MODEL_FOLDER, build_model, load_texts

        model_dir = build_model(ROOT / ".bench" / MODEL_FOLDER, load_texts(ROOT / "tests" / "data"))
    report = check(model_dir, "cpu" if args.cpu_dry_run else "cuda", args.repeats, args.inputs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (args.out / "gpu_check.md").write_text(table(report), encoding="utf-8")
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
