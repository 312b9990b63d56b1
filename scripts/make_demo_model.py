"""Build demo weights (a tiny random SeqGPT-shaped model) offline: make_demo_model.py OUT_DIR."""

from __future__ import annotations

import argparse
from pathlib import Path

import _repo  # noqa: F401  (first: puts the repository on sys.path)

from model_loader.model.demo import build_demo_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path, help="directory to write the model into")
    args = parser.parse_args()
    out = build_demo_model(args.out_dir)
    print(f"demo weights written to {out} (random weights: output is meaningless)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
