"""The evaluation report: metrics of gold rows against prediction records, worst errors, and a Markdown summary."""

from __future__ import annotations

from typing import Any

from .data import GoldSet
from .metrics import classification_metrics, extraction_confusion, span_metrics, speed
from .predictions import check_alignment, predicted_label, predicted_spans, predicted_summary
from .rouge import ROUGE_KEYS, mean_scores, rouge_scores

WORST_ERRORS = 10


def build_report(gold: GoldSet, records: list[dict[str, Any]], worst: int = WORST_ERRORS) -> dict[str, Any]:
    """Everything the JSON report holds; the same gold and records always give the same report."""
    check_alignment(records, gold, "the predictions")
    report: dict[str, Any] = {
        "task": gold.task,
        "rows": len(gold.rows),
        "names": gold.names,
        "skipped": [{"line": bad.line, "reason": bad.reason} for bad in gold.skipped],
        "failed": [{"line": r["line"], "error": r["error"]} for r in records if r.get("error")],
    }
    if gold.task == "classify":
        report.update(_classification(gold, records, worst))
    elif gold.task == "summarize":
        report.update(_summaries(gold, records, worst))
    else:
        report.update(_extraction(gold, records, worst))
    report.update(speed([r.get("latency_ms") for r in records], [r.get("wall_ms") for r in records]))
    return report


def _classification(gold: GoldSet, records: list[dict[str, Any]], worst: int) -> dict[str, Any]:
    expected = [row.label for row in gold.rows]
    got = [predicted_label(record) for record in records]
    metrics = classification_metrics(expected, got, gold.names)
    wrong = []
    for row, record, label in zip(gold.rows, records, got, strict=True):
        if label != row.label:
            confidence = record.get("scores", {}).get(label, 0.0) if label else 0.0
            wrong.append((confidence, row.line, row.text, row.label, label or record.get("error", "")))
    # The most confident mistakes first: those are the ones a threshold would not catch.
    wrong.sort(key=lambda item: (-item[0], item[1]))
    metrics["worst_errors"] = [
        {"line": line, "text": text, "expected": want, "got": have, "score": round(score, 4)}
        for score, line, text, want, have in wrong[:worst]
    ]
    return metrics


def _extraction(gold: GoldSet, records: list[dict[str, Any]], worst: int) -> dict[str, Any]:
    predicted = [predicted_spans(record) for record in records]
    gold_strict = [{(s.field, s.start, s.end) for s in row.spans} for row in gold.rows]
    got_strict = [{(f, start, end) for f, start, end, _ in spans} for spans in predicted]
    gold_text = [{(s.field, s.text) for s in row.spans} for row in gold.rows]
    got_text = [{(f, text) for f, _, _, text in spans} for spans in predicted]
    strict = span_metrics(gold_strict, got_strict, gold.names)
    errors = []
    for row, want, have in zip(gold.rows, gold_strict, got_strict, strict=True):
        if want != have:
            errors.append((len(want ^ have), row.line, row.text,
                           _spans_text(row.text, want), _spans_text(row.text, have)))
    errors.sort(key=lambda item: (-item[0], item[1]))
    return {
        "micro": strict["micro"],
        "per_field": strict["per_field"],
        "text_match": span_metrics(gold_text, got_text, gold.names),
        "confusion": extraction_confusion(gold_strict, got_strict, gold.names),
        "worst_errors": [
            {"line": line, "text": text, "expected": want, "got": have, "wrong_spans": count}
            for count, line, text, want, have in errors[:worst]
        ],
    }


def _summaries(gold: GoldSet, records: list[dict[str, Any]], worst: int) -> dict[str, Any]:
    """ROUGE-1/2/L as the mean over rows (see rouge.py); the worst rows are those of lowest ROUGE-L F1."""
    got = [predicted_summary(record) for record in records]
    rows = [rouge_scores(summary, row.reference) for summary, row in zip(got, gold.rows, strict=True)]
    ranked = sorted(zip(rows, gold.rows, got, strict=True), key=lambda item: (item[0]["rougeL"]["f1"], item[1].line))
    return {
        **mean_scores(rows),
        "worst_errors": [
            {"line": row.line, "text": row.text, "expected": row.reference, "got": summary,
             "rougeL_f1": round(scores["rougeL"]["f1"], 4)}
            for scores, row, summary in ranked[:worst]
        ],
    }


def _spans_text(text: str, spans: set[tuple[str, int, int]]) -> str:
    return "; ".join(f"{f}: {text[a:b]} [{a}, {b})" for f, a, b in sorted(spans, key=lambda s: (s[1], s[2], s[0])))


def rouge_table(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A summary report's ROUGE-1/2/L as rows of a scores table, each row counting every summary."""
    return {name: {**report[name], "support": report["rows"]} for name in ROUGE_KEYS}


def markdown_summary(report: dict[str, Any]) -> str:
    """A short Markdown report for the terminal and the UI."""
    lines = [f"### 评测结果 Evaluation: {report['task']}, {report['rows']} rows", ""]
    if report["task"] == "classify":
        lines += [f"- accuracy **{report['accuracy']:.4f}**, macro-F1 **{report['macro_f1']:.4f}**"]
        table, key = report["per_label"], "label"
    elif report["task"] == "summarize":
        table = rouge_table(report)
        key = "ROUGE (characters, mean over rows)"
    else:
        micro, loose = report["micro"], report["text_match"]["micro"]
        lines += [f"- strict spans (field, start, end): P {micro['precision']:.4f} · R {micro['recall']:.4f} · "
                  f"F1 **{micro['f1']:.4f}**",
                  f"- text match (field, mention): P {loose['precision']:.4f} · R {loose['recall']:.4f} · "
                  f"F1 **{loose['f1']:.4f}**"]
        table, key = report["per_field"], "field"
    latency = report["latency_ms"]
    lines.append(f"- latency p50 {latency['p50']} ms · p95 {latency['p95']} ms · {report['rows_per_s']} rows/s")
    if report["skipped"]:
        shown = ", ".join(f"line {bad['line']} ({bad['reason']})" for bad in report["skipped"][:5])
        lines.append(f"- skipped {len(report['skipped'])} bad rows: {shown}")
    if report["failed"]:
        lines.append(f"- {len(report['failed'])} rows failed in the model and count as wrong")
    lines += ["", f"| {key} | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {_cell(name)} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
              for name, m in table.items()]
    if report["worst_errors"]:
        lines += ["", "| line | text | expected | got |", "| ---: | --- | --- | --- |"]
        lines += [f"| {e['line']} | {_cell(e['text'])} | {_cell(e['expected'])} | {_cell(e['got'])} |"
                  for e in report["worst_errors"]]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
