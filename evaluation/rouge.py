"""ROUGE-1, ROUGE-2 and ROUGE-L on characters, defined once so that every tool agrees.

Tokens are the characters of each string with whitespace removed. ROUGE-N counts clipped n-gram
overlap (each n-gram matches at most as often as it occurs on either side); ROUGE-L uses the
longest common subsequence. Per row: precision, recall and F1 (beta = 1), each 0 where a side is
empty. A report holds the mean over rows of each figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
Scores = dict[str, float]


def tokens(text: str) -> list[str]:
    """The characters of ``text`` without whitespace."""
    return [ch for ch in text if not ch.isspace()]


def _prf(overlap: int, predicted: int, reference: int) -> Scores:
    precision = overlap / predicted if predicted else 0.0
    recall = overlap / reference if reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def rouge_n(prediction: Sequence[str], reference: Sequence[str], n: int) -> Scores:
    """Clipped n-gram overlap of two token lists."""
    got = Counter(tuple(prediction[i : i + n]) for i in range(len(prediction) - n + 1))
    want = Counter(tuple(reference[i : i + n]) for i in range(len(reference) - n + 1))
    overlap = sum((got & want).values())
    return _prf(overlap, sum(got.values()), sum(want.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (one row of the table at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: Sequence[str], reference: Sequence[str]) -> Scores:
    return _prf(lcs_length(prediction, reference), len(prediction), len(reference))


def rouge_scores(prediction: str, reference: str) -> dict[str, Scores]:
    """One row's ROUGE-1, ROUGE-2 and ROUGE-L, each with precision, recall and F1."""
    got, want = tokens(prediction), tokens(reference)
    return {"rouge1": rouge_n(got, want, 1), "rouge2": rouge_n(got, want, 2), "rougeL": rouge_l(got, want)}


def mean_scores(rows: Sequence[dict[str, Scores]]) -> dict[str, Scores]:
    """The mean over rows of every figure, rounded for the report (0 for no rows)."""
    count = max(1, len(rows))
    return {
        key: {part: round(sum(row[key][part] for row in rows) / count, 4) for part in ("precision", "recall", "f1")}
        for key in ROUGE_KEYS
    }
