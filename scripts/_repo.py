"""Imported first by every script here: the repository root, put on ``sys.path`` so that a script run
as printed (``.venv/bin/python scripts/NAME.py``, from any folder) imports the project's packages."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
