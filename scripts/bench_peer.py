"""Public engines on the same weights and the same machine: llama.cpp's and OpenVINO's speed for
SeqGPT-560M.

    .venv/bin/python scripts/bench_peer.py [--threads N] [--json PATH]

A speed target is out of reach only below a floor that no peer engine beats, so this weighs the
engine against llama.cpp in one sitting, on the benchmarks' full-size random-weight model
(converted to GGUF in BF16, F16 and Q8_0: 8-bit weights, one scale per 32), and against
OpenVINO, Intel's engine, running the same model's decode step (scripts/peer_openvino.py: in 16
bits and with int8 weights, one scale per output row, after its fp32 step is checked against
``transformers``; decode steps only, prompts are not timed there). For each it prints
the time of a decode step after about 256 tokens of context (32 tokens decoded one at a time,
as the bench's free prompts do) and of a prompt of about 256 tokens from nothing: the engine's
16-bit and int8 modes on the bench's free prompt closest to 256 tokens, timed as
``scripts/bench.py`` times them, and ``llama-bench``'s ``-p 256`` and ``-n 32 -d 256``. Beside
each, the floor of a decode step that reads every weight once at this machine's read rate
(the best measured before and after the runs, so no floor is flattered by a slow minute).

Set-up, once, in ``.bench/peer/``: it downloads the llama-cpp-python source package from the
Python package index (it carries llama.cpp's sources and converter), builds ``llama-bench`` and
``llama-quantize`` for this processor (cmake and a C++ compiler; a few minutes), converts the
model that ``scripts/bench.py`` builds in ``.bench/``, and installs the ``openvino`` package there
from the index. Run it with nothing else busy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import torch
from _repo import ROOT  # first: puts the repository on sys.path
from bench import HIDDEN, NON_EMBEDDING, VOCAB, Side, machine_floor  # noqa: E402  (beside this script)
from bench_inputs import MODEL_FOLDER, build_model, load_texts, make_free_prompts  # noqa: E402
from bench_machine import processor  # noqa: E402
from peer_openvino import VERSION as OPENVINO_VERSION  # noqa: E402
from peer_openvino import openvino_timings  # noqa: E402

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"  # pinned: its llama.cpp sources, and the converter's layout this script drives
PROMPT, DEPTH, DECODED = 256, 256, 32
TARGETS = ("llama-bench", "llama-quantize")
ENGINE_16BIT, ENGINE_INT8 = "engine 16-bit", "engine int8"

# The converter identifies a tokenizer by hashing how it splits a test text and refuses one it has
# not seen. The bench's tokenizer is trained locally, so it is declared BLOOM's: llama-bench feeds
# token ids, never text, so the pre-tokenizer changes no figure here.
CONVERT = """
import sys
source, model, outtype, outfile = sys.argv[1:]
sys.path[:0] = [source, source + "/gguf-py"]
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "bloom"
import convert_hf_to_gguf
sys.argv = ["convert_hf_to_gguf", model, "--outtype", outtype, "--outfile", outfile]
convert_hf_to_gguf.main()
"""


def run(command: list[str], what: str, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``command``, its output appended to ``log`` where one is given; a failure says what failed."""
    try:
        if log is None:
            return subprocess.run(command, check=True, **kwargs)
        with log.open("a", encoding="utf-8") as out:
            return subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    except FileNotFoundError as exc:
        raise SystemExit(f"{what}: {exc.filename} is not installed (Debian: apt-get install cmake g++)") from exc
    except subprocess.CalledProcessError as exc:
        where = f"; its output is in {log}" if log is not None else ""
        raise SystemExit(f"{what} failed (exit {exc.returncode}): {' '.join(command)}{where}") from exc


def llama_cpp_sources(folder: Path) -> Path:
    """llama.cpp's source tree as the pinned llama-cpp-python source package carries it."""
    source = folder / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    if (source / "CMakeLists.txt").is_file():
        return source
    folder.mkdir(parents=True, exist_ok=True)
    print(f"downloading {PACKAGE}=={VERSION}'s sources ...", flush=True)
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--dest", str(folder),
         f"{PACKAGE}=={VERSION}"], "downloading llama.cpp's sources", folder / "setup.log")
    with tarfile.open(folder / f"llama_cpp_python-{VERSION}.tar.gz") as archive:
        archive.extractall(folder, filter="data")
    return source


def built_tools(source: Path, jobs: int, log: Path) -> Path:
    """llama-bench and llama-quantize, built for this processor (GGML_NATIVE)."""
    build = source / "build"
    binaries = build / "bin"
    if all((binaries / target).is_file() for target in TARGETS):
        return binaries
    print(f"building llama-bench and llama-quantize (a few minutes; output in {log}) ...", flush=True)
    run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
         "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"],
        "configuring llama.cpp", log)
    run(["cmake", "--build", str(build), "--parallel", str(jobs), "--target", *TARGETS], "building llama.cpp", log)
    return binaries


def gguf_models(source: Path, binaries: Path, model: Path, folder: Path) -> dict[str, Path]:
    """The model in GGUF: BF16 and F16 converted from its fp16 weights, Q8_0 quantized from F16."""
    files = {kind: folder / f"seqgpt-560m-random-{kind.lower()}.gguf" for kind in ("BF16", "F16", "Q8_0")}
    log = folder / "setup.log"
    for kind, path in files.items():
        if path.is_file():
            continue
        print(f"writing the model as GGUF {kind} ...", flush=True)
        partial = path.with_suffix(".partial")  # renamed when whole: a later run never reads half a file
        if kind == "Q8_0":
            run([str(binaries / "llama-quantize"), str(files["F16"]), str(partial), "Q8_0"], "quantizing to Q8_0", log)
        else:
            run([sys.executable, "-c", CONVERT, str(source), str(model), kind.lower(), str(partial)],
                f"converting to {kind}", log)
        partial.rename(path)
    return files


def llama_bench(binaries: Path, model: Path, threads: int, repetitions: int) -> dict:
    """A prompt's time from nothing and a decode step's after DEPTH tokens, in ms (means over
    ``repetitions``). A test that dies on a signal in llama.cpp's repacked kernels (on a Xeon with
    AMX, its Q8_0 prompt stopped on an illegal instruction) runs again with ``--repack 0``, and
    ``without_repack`` names it."""
    figures: dict = {}

    def mean_ns(*test: str) -> float:
        command = [str(binaries / "llama-bench"), "-m", str(model), "-t", str(threads), "-r", str(repetitions),
                   *test, "-o", "json"]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if done.returncode < 0:
            figures.setdefault("without_repack", []).append(" ".join(test))
            command += ["--repack", "0"]
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if done.returncode != 0:
            raise SystemExit(f"llama-bench on {model.name} failed (exit {done.returncode}): {' '.join(command)}")
        return json.loads(done.stdout)[0]["avg_ns"]

    figures["prompt_ms"] = mean_ns("-p", str(PROMPT), "-n", "0") / 1e6
    figures["ms_per_token"] = mean_ns("-p", "0", "-n", str(DECODED), "-d", str(DEPTH)) / 1e6 / DECODED
    return figures


def model_step_bytes(int8: bool) -> int:
    """The bytes of weights a decode step reads when the model's blocks and output projection are
    held in 16 bits, or in int8 (per-row scales left out)."""
    return (NON_EMBEDDING + VOCAB * HIDDEN) * (1 if int8 else 2)


def engine_timings(model: Path, prompt: str, repetitions: int) -> dict[str, dict]:
    """The engine's 16-bit and int8 modes, each in its own process as scripts/bench.py runs them:
    the prompt with its first token, and a decode step ((time for DECODED - time for 1) /
    (DECODED - 1)), medians over ``repetitions``."""
    timings = {}
    for side_name, name in (("engine", ENGINE_16BIT), ("engine-int8", ENGINE_INT8)):
        side = Side(side_name, model)
        side.ask(op="generate", prompts=[prompt], new_tokens=2)  # first use builds the output projection
        ones, fulls = [], []
        for _ in range(repetitions):
            ones.append(side.ask(op="generate", prompts=[prompt], new_tokens=1)["seconds"])
            fulls.append(side.ask(op="generate", prompts=[prompt], new_tokens=DECODED)["seconds"])
        side.close()
        one, full = statistics.median(ones), statistics.median(fulls)
        timings[name] = {"prompt_ms": 1000 * one, "ms_per_token": 1000 * (full - one) / (DECODED - 1),
                         "bytes_per_step": model_step_bytes(int8=name == ENGINE_INT8),
                         "dtype": side.hello["dtype"]}
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="llama.cpp's threads (default: as many as torch uses, as the engine does)")
    parser.add_argument("--repetitions", type=int, default=5, help="timed repetitions of each test")
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data", help="folder of .jsonl texts")
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("cmake") is None:
        raise SystemExit("cmake is not installed: it builds llama.cpp (Debian: apt-get install cmake g++)")
    from transformers import AutoTokenizer

    folder = args.cache / "peer"
    texts = load_texts(args.data)
    model = build_model(args.cache / MODEL_FOLDER, texts)
    source = llama_cpp_sources(folder)
    binaries = built_tools(source, args.threads, folder / "setup.log")
    files = gguf_models(source, binaries, model, folder)
    tokenizer = AutoTokenizer.from_pretrained(model)
    prompt = min(make_free_prompts(texts, tokenizer, 8, seed=3),
                 key=lambda text: abs(len(tokenizer(text)["input_ids"]) - PROMPT))
    torch.set_num_threads(args.threads)
    read_before = machine_floor("float32")["read_gbps"]
    runs = engine_timings(model, prompt, args.repetitions)
    for kind, path in files.items():
        # A decode step reads every weight in the file once (the output projection is the embedding's matrix).
        runs[f"llama.cpp {kind}"] = dict(llama_bench(binaries, path, args.threads, args.repetitions),
                                         bytes_per_step=path.stat().st_size)
    for name, figures in openvino_timings(folder, model, DEPTH, args.threads, args.repetitions).items():
        runs[name] = dict(figures, bytes_per_step=model_step_bytes(int8="int8" in name))
    read_gbps = max(read_before, machine_floor("float32")["read_gbps"])
    for figures in runs.values():
        figures["floor_ms"] = 1000 * figures["bytes_per_step"] / (read_gbps * 1e9)
        figures["vs_floor"] = figures["ms_per_token"] / figures["floor_ms"]
    report = {"processor": processor(), "threads": args.threads, "llama_cpp": f"{PACKAGE} {VERSION}",
              "openvino": OPENVINO_VERSION,
              "read_gbps": read_gbps, "engine_prompt_tokens": len(tokenizer(prompt)["input_ids"]),
              "llama_cpp_prompt_tokens": PROMPT, "depth": DEPTH, "decoded": DECODED, "runs": runs}
    print(f"{report['processor']}, {args.threads} threads; read rate {read_gbps:.1f} GB/s (best of before and after); "
          f"llama.cpp from {PACKAGE} {VERSION}, OpenVINO {OPENVINO_VERSION}")
    print(f"engine prompt {report['engine_prompt_tokens']} tokens, llama.cpp's {PROMPT}; "
          f"decode steps after about {DEPTH} tokens")
    print(f"{'':32} {'ms/token':>9} {'floor ms':>9} {'x floor':>8} {'prompt ms':>10}")
    for name, figures in runs.items():
        # The dtype it computes in, where that is not in its name.
        label = f"{name} ({figures['dtype']})" if name == ENGINE_16BIT or name.startswith("OpenVINO") else name
        prompt = f"{figures['prompt_ms']:10.0f}" if "prompt_ms" in figures else f"{'-':>10}"
        print(f"{label:32} {figures['ms_per_token']:9.1f} {figures['floor_ms']:9.1f} {figures['vs_floor']:8.2f} "
              f"{prompt}")
    for name, figures in runs.items():
        for test in figures.get("without_repack", []):
            print(f"{name}: llama-bench {test} died on a signal and ran again with --repack 0")
    report["engine_int8_speedup"] = runs[ENGINE_16BIT]["ms_per_token"] / runs[ENGINE_INT8]["ms_per_token"]
    report["llama_cpp_q8_0_speedup_vs_bf16"] = (runs["llama.cpp BF16"]["ms_per_token"]
                                                / runs["llama.cpp Q8_0"]["ms_per_token"])
    report["openvino_int8_speedup_vs_16bit"] = (runs["OpenVINO 16bit"]["ms_per_token"]
                                                / runs["OpenVINO int8"]["ms_per_token"])
    print(f"int8 against 16 bits per token: engine {report['engine_int8_speedup']:.2f}x, "
          f"llama.cpp Q8_0 against BF16 {report['llama_cpp_q8_0_speedup_vs_bf16']:.2f}x, "
          f"OpenVINO {report['openvino_int8_speedup_vs_16bit']:.2f}x")
    print(f"OpenVINO's fp32 step against transformers' logits: {runs['OpenVINO 16bit']['fp32_logits_error']:.1e} "
          "relative error (its graph computes the model)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
