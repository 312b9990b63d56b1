"""Predictions files: one JSON line per gold row in the JSON API's response shape, written as the run goes.

Each line also carries ``line`` and ``text`` (the gold row it answers, so a resumed run and
``--predictions`` can check they line up), and ``wall_ms``: the share of the run's wall time
that passed until this row was written, so rows per second can be computed again from the file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .data import EvaluationDataError, GoldRow, GoldSet

# Calls the model for one gold row and returns its answer in the API's shape plus latency_ms,
# or {"error": "..."} when the model refused the row.
Predict = Callable[[GoldRow], dict[str, Any]]


def read_predictions(path: Path, gold: GoldSet, partial: bool = False) -> list[dict[str, Any]]:
    """The records of a predictions file, checked against the gold rows they answer, in order.

    ``partial`` accepts a file that stops early (a run that was interrupted)."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationDataError(f"no predictions file at {path}: write one with --save-predictions")
    records = []
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if partial and not line.endswith("\n"):
                break  # the last line of an interrupted run may be cut short
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvaluationDataError(f"{path} line {n} is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise EvaluationDataError(f"{path} line {n} is not a JSON object")
            records.append(record)
    check_alignment(records, gold, str(path), partial)
    return records


def check_alignment(records: list[dict[str, Any]], gold: GoldSet, source: str, partial: bool = False) -> None:
    if len(records) > len(gold.rows) or (not partial and len(records) != len(gold.rows)):
        raise EvaluationDataError(
            f"{source} has {len(records)} predictions for {len(gold.rows)} labelled rows: "
            "score it against the same labelled file (and map) it was made from"
        )
    for n, (record, row) in enumerate(zip(records, gold.rows, strict=False), 1):
        if record.get("line", row.line) != row.line or record.get("text", row.text) != row.text:
            raise EvaluationDataError(
                f"{source} line {n} answers labelled line {record.get('line')}, not line {row.line}: "
                "it was made from another labelled file"
            )


def predicted_label(record: dict[str, Any]) -> str | None:
    label = record.get("label")
    return label if isinstance(label, str) and not record.get("error") else None


def predicted_summary(record: dict[str, Any]) -> str:
    """A summary record's text; empty for a failed row, which then scores 0."""
    summary = record.get("summary")
    return summary if isinstance(summary, str) and not record.get("error") else ""


def predicted_spans(record: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(field, start, end, text) of every mention of an extraction record; nothing for a failed row."""
    fields = record.get("fields")
    if record.get("error") or not isinstance(fields, dict):
        return []
    spans = []
    for name, mentions in fields.items():
        for mention in mentions if isinstance(mentions, list) else []:
            if (isinstance(mention, dict) and isinstance(mention.get("start"), int)
                    and isinstance(mention.get("end"), int)):
                spans.append((name, mention["start"], mention["end"], str(mention.get("text", ""))))
    return spans


def run_predictions(
    rows: list[GoldRow],
    predict: Predict,
    out: Path | None = None,
    concurrency: int = 4,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Predict every row, ``concurrency`` at a time (the engine batches requests that wait together),
    appending each record to ``out`` in row order as soon as it and all rows before it are done."""
    records: list[dict[str, Any]] = []
    with ExitStack() as stack:
        handle = stack.enter_context(Path(out).open("a", encoding="utf-8")) if out is not None else None
        pool = stack.enter_context(ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="seqgpt-eval"))
        # On an error or Ctrl-C, rows not yet started are dropped; the file keeps every row finished in order.
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        last = time.perf_counter()
        for row, future in zip(rows, _submitted(pool, predict, rows, concurrency), strict=True):
            answer = future.result()
            now = time.perf_counter()
            record = {"line": row.line, "text": row.text, **answer, "wall_ms": round((now - last) * 1000, 3)}
            last = now
            if handle is not None:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
            records.append(record)
            if on_row is not None:
                on_row(record)
    return records


def _submitted(pool: ThreadPoolExecutor, predict: Predict, rows: list[GoldRow], ahead: int) -> Iterator[Future]:
    """Futures in row order, keeping at most a few more rows in flight than run at once."""
    pending: list[Future] = []
    for row in rows:
        pending.append(pool.submit(predict, row))
        if len(pending) > 2 * ahead:
            yield pending.pop(0)
    yield from pending


def timed(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one model call and add its latency, unless the answer already carries the server's."""
    started = time.perf_counter()
    answer = call()
    answer.setdefault("latency_ms", round((time.perf_counter() - started) * 1000, 3))
    return answer
