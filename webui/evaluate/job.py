"""One evaluation for the web edge: check the uploaded labelled file, run every row through the service, write outputs.

Shared by the 评测 Evaluate tab and ``POST /api/evaluate``; the scoring itself is
``evaluation``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluation import (
    SUMMARY_CHARS,
    GoldRow,
    GoldSet,
    build_report,
    markdown_summary,
    parse_gold,
    parse_map,
    write_charts,
)
from model_loader.errors import InvalidInputError
from model_loader.settings import Settings
from model_loader.tasks.options import ClassifyRequest, ExtractRequest, SummarizeRequest, check_max_chars, checked_names

from ..api.schemas import classification_json, extraction_json
from ..batch.files import KEEP_RESULTS, prune_results
from ..kb.schemas import summary_json
from ..logging_setup import REQUEST_ID
from ..outcomes import outcome_of, user_message
from ..service.request import RequestInfo, Served, Service
from ..settings import ServerSettings

TASKS = ("classify", "extract", "summarize")
# Rows sent to the model at once: the engine batches them, and other users keep the rest of the slots.
ROWS_AT_ONCE = 4
# When every model slot is taken, an evaluation waits its turn this long before giving up.
BUSY_WAIT_S = 120.0


def load_gold(data: bytes, filename: str, task: str, map_text: str, settings: ServerSettings,
              limits: Settings) -> GoldSet:
    """The labelled rows of an upload within the batch limits; InvalidInputError or EvaluationDataError
    says what to fix."""
    if task not in TASKS:
        raise InvalidInputError(f"任务未知 · task {task!r} is unknown: choose classify, extract or summarize")
    if len(data) > settings.batch_max_bytes:
        raise InvalidInputError(
            f"文件过大 · the file is {len(data) / 1024:.0f} KiB, more than the limit of "
            f"{settings.batch_max_bytes / 1024:.0f} KiB: evaluate a smaller sample, or raise SEQGPT_BATCH_MAX_BYTES"
        )
    gold = parse_gold(data, filename, task, parse_map(map_text))
    if len(gold.rows) > settings.batch_max_rows:
        raise InvalidInputError(
            f"行数过多 · the file has {len(gold.rows)} labelled rows, more than the limit of "
            f"{settings.batch_max_rows}: evaluate a smaller sample, raise SEQGPT_BATCH_MAX_ROWS, "
            "or run scripts/evaluate.py"
        )
    if task != "summarize":  # a summary is asked for with no labels
        checked_names(limits, task, gold.names, {})  # the file's whole label set, as every row will ask for it
    return gold


def summary_length(settings: Settings, raw: object) -> int:
    """The summary length an evaluation asks for: ``raw`` as sent (a form's text, a number or nothing),
    checked by the summary task's own rule."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return SUMMARY_CHARS
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    elif isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return check_max_chars(settings, raw)


async def predict_all(service: Service, gold: GoldSet, on_progress: Callable[[int], None],
                      max_chars: int = SUMMARY_CHARS) -> list[dict[str, Any]]:
    """Every row through the service (logged and gated like any request), a few at a time, in order;
    ``max_chars`` is the summary length asked for (task summarize)."""
    records: list[dict[str, Any]] = []
    last = time.perf_counter()
    for start in range(0, len(gold.rows), ROWS_AT_ONCE):
        chunk = gold.rows[start:start + ROWS_AT_ONCE]
        answers = await asyncio.gather(*(_predict_one(service, gold, row, max_chars) for row in chunk))
        for row, answer in zip(chunk, answers, strict=True):
            now = time.perf_counter()
            records.append({"line": row.line, "text": row.text, **answer, "wall_ms": round((now - last) * 1000, 3)})
            last = now
        on_progress(len(records))
    return records


async def _predict_one(service: Service, gold: GoldSet, row: GoldRow, max_chars: int) -> dict[str, Any]:
    engine = service.engine
    info = RequestInfo(gold.task, "evaluate", row.text, len(gold.names))
    asked: SummarizeRequest | ClassifyRequest | ExtractRequest
    try:
        if gold.task == "summarize":
            asked = SummarizeRequest.checked(engine.settings, text=row.text, max_chars=max_chars)
        else:
            asked = checked_names(engine.settings, gold.task, gold.names, {}, text=row.text)
    except InvalidInputError as exc:  # this row's own problem (an empty or too long text): it counts as failed
        service.record(info, time.perf_counter(), exc)
        return {"error": user_message(exc, REQUEST_ID.get())}
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    to_json: Callable[[Any], dict[str, Any]]
    if isinstance(asked, SummarizeRequest):
        fn, args, to_json = engine.summarize, (asked.text, asked.max_chars), summary_json
    elif isinstance(asked, ClassifyRequest):
        fn, args, to_json = engine.classify, (asked.text, asked.labels), classification_json
    else:
        fn, args, to_json = engine.extract, (asked.text, asked.fields), extraction_json
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            served: Served[Any] = await service.run(info, fn, *args)
            return {**to_json(served.result), "latency_ms": served.latency_ms}
        except Exception as exc:  # logged by the service, with its traceback when unexpected
            outcome = outcome_of(exc).name
            if outcome == "busy" and time.monotonic() <= deadline:
                await asyncio.sleep(0.5)
                continue
            if outcome in ("busy", "not_ready"):  # every row would fail alike: the caller says why
                raise
            return {"error": user_message(exc, REQUEST_ID.get())}  # the row counts as failed


def write_outputs(gold: GoldSet, records: list[dict[str, Any]], out_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    """The report, its Markdown, the predictions and both charts under ``out_dir``.

    Evaluations share the batch results' folder and its bound: only the newest ones are kept."""
    prune_results(out_dir.parent, KEEP_RESULTS - 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(gold, records)
    report_path, predictions_path = out_dir / "report.json", out_dir / "predictions.jsonl"
    report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    predictions_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    (out_dir / "summary.md").write_text(markdown_summary(report), encoding="utf-8")
    charts = write_charts(report, out_dir / "report")
    return report, [report_path, predictions_path, *charts]
