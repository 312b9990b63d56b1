"""Engine-only A/B of two checkouts: did a change move the engine's classification or extraction time?

    .venv/bin/python scripts/bench_trees.py OTHER_CHECKOUT [--rounds 2] [--model DIR]

Runs each checkout's own engine (this one and OTHER_CHECKOUT, e.g. a `git worktree` of the commit
before a refactor) in its own process, taking turns (A B A B ...), on the full-size random weights
in this checkout's .bench/ and the bench's eight texts: classification with 3-8 labels, extraction
of 5 fields pinned to 12 tokens each, median per text of two passes, then the median over texts.
Prints one line per process and the spread of each side, so a change is "within the spread" when
the sides' ranges overlap. Faster than scripts/bench.py because the reference side, which a change
to the engine does not touch, is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _repo import ROOT  # first: puts the repository on sys.path
from bench_inputs import MODEL_FOLDER, build_model, load_texts  # noqa: E402

# Run inside each checkout's process: its own model_loader, the shared weights and texts.
MEASURE = r"""
import json, os, statistics, sys, time
from pathlib import Path
tree = sys.argv[1]
sys.path[:0] = [tree, tree + "/scripts"]
from model_loader import Engine, Settings
from bench_inputs import CLASS_LABELS, FIELDS, load_texts
texts = load_texts(Path(tree) / "tests" / "data")[:8]
engine = Engine(Settings.from_env())
engine.load()
engine.classify(texts[0], CLASS_LABELS[:4]); engine.extract(texts[0], FIELDS)  # warm-up
out = {}
for name, run in (("classify", lambda t, i: engine.classify(t, CLASS_LABELS[: 3 + i % 6])),
                  ("extract", lambda t, i: engine.extract(t, FIELDS))):
    per_text = []
    for i, text in enumerate(texts):
        times = []
        for _ in range(2):
            started = time.perf_counter(); run(text, i); times.append(time.perf_counter() - started)
        per_text.append(statistics.median(times))
    out[name] = round(statistics.median(per_text), 3)
engine.close()
print(json.dumps(out))
"""


def measure(tree: Path, model_dir: Path) -> dict[str, float]:
    # SEQGPT_EXTRACT_EXACT_TOKENS pins extraction output on old and new checkouts alike.
    env = {**os.environ, "SEQGPT_MODEL_DIR": str(model_dir), "SEQGPT_EXTRACT_EXACT_TOKENS": "12"}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tree)], env=env, capture_output=True, text=True,
                          check=True, timeout=1800)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout (a folder holding model_loader/)")
    parser.add_argument("--rounds", type=int, default=2, help="turns each side takes (default 2)")
    parser.add_argument("--model", type=Path, help=f"model folder (default .bench/{MODEL_FOLDER}, built once)")
    args = parser.parse_args()
    model_dir = args.model or build_model(ROOT / ".bench" / MODEL_FOLDER, load_texts(ROOT / "tests" / "data"))
    sides = {"other": args.other.resolve(), "this": ROOT}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, tree in sides.items():
            figures = measure(tree, model_dir)
            results[name].append(figures)
            print(f"{name:5s} {tree}: classify p50 {figures['classify']:.3f} s, extract p50 {figures['extract']:.3f} s",
                  flush=True)
    for task in ("classify", "extract"):
        spans = {name: (min(r[task] for r in rs), max(r[task] for r in rs)) for name, rs in results.items()}
        overlap = spans["this"][0] <= spans["other"][1] and spans["other"][0] <= spans["this"][1]
        print(f"{task}: other {spans['other'][0]:.3f}-{spans['other'][1]:.3f} s, this {spans['this'][0]:.3f}-"
              f"{spans['this'][1]:.3f} s: {'within the spread' if overlap else 'OUTSIDE the spread'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
