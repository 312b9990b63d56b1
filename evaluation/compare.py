"""Two prediction runs on the same gold rows: what the headline scores did and which rows changed."""

from __future__ import annotations

from typing import Any

from .data import GoldSet
from .predictions import predicted_label, predicted_spans, predicted_summary
from .report import build_report
from .rouge import ROUGE_KEYS


def compare_runs(gold: GoldSet, first: list[dict[str, Any]], second: list[dict[str, Any]]) -> dict[str, Any]:
    a, b = build_report(gold, first), build_report(gold, second)
    keys = {"classify": ["accuracy", "macro_f1"], "summarize": list(ROUGE_KEYS)}.get(
        gold.task, ["precision", "recall", "f1"])
    pick = {"classify": lambda r, k: r[k], "summarize": lambda r, k: r[k]["f1"]}.get(
        gold.task, lambda r, k: r["micro"][k])
    scores = {key: {"a": pick(a, key), "b": pick(b, key), "change": round(pick(b, key) - pick(a, key), 4)}
              for key in keys}
    rows = []
    for row, one, two in zip(gold.rows, first, second, strict=True):
        got_a, got_b, want = _answer(gold.task, one), _answer(gold.task, two), _answer_gold(gold.task, row)
        if got_a != got_b:
            verdict = "fixed" if got_b == want else "broken" if got_a == want else "changed"
            rows.append({"line": row.line, "text": row.text, "expected": want, "a": got_a, "b": got_b,
                         "verdict": verdict})
    return {"task": gold.task, "rows": len(gold.rows), "scores": scores, "changed": rows}


def _answer(task: str, record: dict[str, Any]) -> str:
    if task == "classify":
        return predicted_label(record) or f"(error: {record.get('error', '')})"
    if task == "summarize":
        return predicted_summary(record) or f"(error: {record.get('error', '')})"
    return "; ".join(f"{f}: {text} [{a}, {b})" for f, a, b, text in sorted(predicted_spans(record),
                                                                              key=lambda s: (s[1], s[2], s[0])))


def _answer_gold(task: str, row: Any) -> str:
    if task == "classify":
        return row.label
    if task == "summarize":
        return row.reference
    return "; ".join(f"{s.field}: {s.text} [{s.start}, {s.end})" for s in row.spans)


def compare_markdown(result: dict[str, Any]) -> str:
    lines = [f"### A → B: {result['task']}, {result['rows']} rows, {len(result['changed'])} changed", "",
             "| score | A | B | change |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {key} | {s['a']:.4f} | {s['b']:.4f} | {s['change']:+.4f} |" for key, s in result["scores"].items()]
    if result["changed"]:
        lines += ["", "| line | verdict | text | expected | A | B |", "| ---: | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['line']} | {r['verdict']} | {_cell(r['text'])} | {_cell(r['expected'])} | {_cell(r['a'])} "
                  f"| {_cell(r['b'])} |" for r in result["changed"]]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
