"""transformers' names resolved from several threads at once, as the engine and the embedder load after a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each thread resolves its names at the same moment, in an interpreter that has not imported transformers.
RACE = """
import threading
from model_loader.hf import transformers_names
errors = []
start = threading.Barrier(6)
def resolve(*names):
    start.wait()
    try:
        transformers_names(*names)
    except Exception as exc:
        errors.append(repr(exc))
groups = [("AutoTokenizer",), ("BloomForCausalLM",), ("AutoModel",), ("BertModel",), ("PreTrainedTokenizerFast",),
          ("BloomConfig", "BertConfig")]
threads = [threading.Thread(target=resolve, args=group) for group in groups]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(errors or "ok")
"""


def test_threads_resolving_transformers_names_at_once_all_get_them() -> None:
    # Without the lock, about one fresh interpreter in five failed (ImportError or AttributeError).
    for _ in range(12):
        done = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "ok", done.stdout
