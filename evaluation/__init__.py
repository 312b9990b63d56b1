"""Evaluation: read a labelled file, score the model's predictions on it, and build the report and its charts.

Pure reading and scoring; running the model is the caller's job (scripts/evaluate.py, the web UI).
"""

from .charts import write_charts
from .compare import compare_markdown, compare_runs
from .data import (
    SUMMARY_CHARS,
    BadRow,
    EvaluationDataError,
    GoldRow,
    GoldSet,
    Span,
    parse_gold,
    parse_map,
    read_gold,
    read_map,
)
from .predictions import read_predictions, run_predictions
from .report import build_report, markdown_summary

__all__ = [
    "SUMMARY_CHARS",
    "BadRow",
    "EvaluationDataError",
    "GoldRow",
    "GoldSet",
    "Span",
    "build_report",
    "compare_markdown",
    "compare_runs",
    "markdown_summary",
    "parse_gold",
    "parse_map",
    "read_gold",
    "read_map",
    "read_predictions",
    "run_predictions",
    "write_charts",
]
