"""Run the engine once in a fresh process and print its answers as JSON, so that a test can compare
runs whose processor features differ (oneDNN reads ONEDNN_MAX_CPU_ISA once, at process start).

    python tests/model_loader/engine_answers.py MODEL_DIR TEXTS_JSON
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model_loader import Engine, Settings  # noqa: E402
from model_loader.model.cpu_dtype import auto_cpu_dtype  # noqa: E402


def main() -> int:
    model_dir, texts = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    engine = Engine(Settings(model_dir=model_dir, dtype=os.environ.get("SEQGPT_DTYPE", "auto")))
    engine.load()
    try:
        answers = {
            "auto_dtype": auto_cpu_dtype(),
            "dtype": engine.status.dtype,
            "packed": engine.model.loaded.weights.blocks[0].qkv.weight.is_mkldnn,
            "classify": [asdict(engine.classify(t, ["财经", "体育", "科技", "投诉"])) for t in texts],
            "extract": [asdict(engine.extract(t, ["人名", "公司名称", "金额"])) for t in texts],
            "generate": [asdict(engine.generate(f"输入: {t[:200]}\n分类: 财经，科技\n输出: [GEN]", 12)) for t in texts],
        }
    finally:
        engine.close()
    print(json.dumps(answers, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
