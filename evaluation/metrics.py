"""Scores: classification through scikit-learn's metrics; extraction as exact span-set matching; latency figures.

Where a ratio has nothing to divide by (no predictions, no gold) it is 0, as scikit-learn's
``zero_division=0`` makes it, so the two agree and a label never predicted scores 0 precision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

# A row whose prediction failed: it counts as wrong, and shows as its own column in the confusion matrix.
NO_ANSWER = "(无 none)"


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "support": tp + fn, "tp": tp, "fp": fp, "fn": fn}


def classification_metrics(gold: Sequence[str], predicted: Sequence[str | None], names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-label P/R/F1/support and the confusion matrix.

    ``per_label`` lists every label the model was offered, seen or not. Macro-F1 averages over
    the labels that occur in the gold or the predictions (scikit-learn's default), so a label
    the sample never uses and the model never chooses does not count as a zero."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_pred = [label if label is not None else NO_ANSWER for label in predicted]
    labels = list(dict.fromkeys([*names, *gold, *(p for p in y_pred if p != NO_ANSWER)]))
    occurring = [label for label in labels if label in set(gold) | set(y_pred)]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, y_pred, labels=labels, zero_division=0
    )
    macro = f1_score(gold, y_pred, labels=occurring, average="macro", zero_division=0) if occurring else 0.0
    matrix_labels = labels + ([NO_ANSWER] if NO_ANSWER in y_pred else [])
    matrix = confusion_matrix(gold, y_pred, labels=matrix_labels)
    return {
        "accuracy": round(float(accuracy_score(gold, y_pred)), 4),
        "macro_f1": round(float(macro), 4),
        "per_label": {
            label: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                    "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion": {"gold": labels, "predicted": matrix_labels, "matrix": matrix[: len(labels)].tolist()},
    }


def span_metrics(gold: Sequence[set[tuple]], predicted: Sequence[set[tuple]], fields: Sequence[str]) -> dict:
    """Micro and per-field P/R/F1 of exact matches between per-row sets whose first item is the field.

    Sets, so a duplicate span counts once; overlapping but different spans are different items."""
    counts: dict[str, Counter] = {name: Counter() for name in fields}
    for gold_row, predicted_row in zip(gold, predicted, strict=True):
        for item in gold_row | predicted_row:
            kind = "tp" if item in gold_row and item in predicted_row else "fn" if item in gold_row else "fp"
            counts.setdefault(item[0], Counter())[kind] += 1
    total = sum(counts.values(), Counter())
    return {
        "micro": prf(total["tp"], total["fp"], total["fn"]),
        "per_field": {name: prf(c["tp"], c["fp"], c["fn"]) for name, c in counts.items()},
    }


def extraction_confusion(gold: Sequence[set[tuple]], predicted: Sequence[set[tuple]], fields: Sequence[str]) -> dict:
    """Which field the model gave each gold span, matched by exact offsets.

    Gold ``(field, start, end)`` spans are paired with predicted spans at the same offsets; a gold
    span with none is counted under the predicted column "none", a predicted span with no gold
    span under the gold row "none"."""
    names = list(dict.fromkeys([*fields, *(s[0] for row in [*gold, *predicted] for s in row)]))
    axis = [*names, NO_ANSWER]
    index = {name: i for i, name in enumerate(axis)}
    matrix = [[0] * len(axis) for _ in axis]
    for gold_row, predicted_row in zip(gold, predicted, strict=True):
        for offsets in {(s[1], s[2]) for s in gold_row | predicted_row}:
            want = sorted(s[0] for s in gold_row if (s[1], s[2]) == offsets)
            got = sorted(s[0] for s in predicted_row if (s[1], s[2]) == offsets)
            for name in set(want) & set(got):
                matrix[index[name]][index[name]] += 1
            want_left = [name for name in want if name not in got]
            got_left = [name for name in got if name not in want]
            for i in range(max(len(want_left), len(got_left))):
                row = want_left[i] if i < len(want_left) else NO_ANSWER
                column = got_left[i] if i < len(got_left) else NO_ANSWER
                matrix[index[row]][index[column]] += 1
    return {"gold": axis, "predicted": axis, "matrix": matrix}


def speed(latencies_ms: Sequence[float | None], wall_ms: Sequence[float | None]) -> dict[str, Any]:
    """Latency percentiles of the single requests, and rows per second of the run's own wall time."""
    import numpy as np

    values = np.asarray([value for value in latencies_ms if value is not None], dtype=float)
    wall_s = sum(value for value in wall_ms if value is not None) / 1000
    return {
        "latency_ms": {
            "p50": round(float(np.percentile(values, 50)), 1) if values.size else None,
            "p95": round(float(np.percentile(values, 95)), 1) if values.size else None,
        },
        "rows_per_s": round(len(latencies_ms) / wall_s, 2) if wall_s > 0 else None,
    }

