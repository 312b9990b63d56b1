"""Parsers for SeqGPT's output and the location of mentions in the text: pure functions.

Extraction output has one line per requested label, ``label: m1\\tm2`` or
``label: None``; classification output is the label text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

NONE_MARK = "None"
_COLON = re.compile(r"\s*[:：]\s?")


@dataclass(frozen=True)
class ParsedMention:
    """A mention as written in one output line, with its character span in that line."""

    text: str
    start: int
    end: int


def parse_extraction_line(line: str, labels: Sequence[str]) -> tuple[str, list[ParsedMention]] | None:
    """Split ``label: m1\\tm2`` into the label and its mentions; None for a line with no label."""
    stripped = line.lstrip()
    offset = len(line) - len(stripped)
    label, rest_at = None, 0
    # A requested label wins over a naive split, so labels that contain a colon still parse.
    for candidate in sorted(labels, key=len, reverse=True):
        if stripped.startswith(candidate):
            colon = _COLON.match(stripped, len(candidate))
            if colon:
                label, rest_at = candidate, colon.end()
                break
    if label is None:
        colon = _COLON.search(stripped)
        if not colon:
            return None
        label, rest_at = stripped[: colon.start()].strip(), colon.end()
    mentions = []
    position = rest_at
    for part in stripped[rest_at:].split("\t"):
        text = part.strip()
        if text and text != NONE_MARK:
            start = offset + position + part.index(text)
            mentions.append(ParsedMention(text, start, start + len(text)))
        position += len(part) + 1
    return label, mentions


def parse_extraction(output: str, labels: Sequence[str]) -> dict[str, list[str]]:
    """Mentions per requested label from one or more chunks' output; unrequested labels are ignored."""
    found: dict[str, list[str]] = {label: [] for label in labels}
    for line in output.splitlines():
        parsed = parse_extraction_line(line, labels)
        if parsed is None:
            continue
        label, mentions = parsed
        if label in found:
            for mention in mentions:
                if mention.text not in found[label]:
                    found[label].append(mention.text)
    return found


def match_label(output: str, labels: Sequence[str]) -> str | None:
    """The requested label a classification output names, or None when it names none."""
    answer = output.strip().splitlines()[0].strip() if output.strip() else ""
    if answer in labels:
        return answer
    contained = [label for label in labels if label in answer]
    return max(contained, key=len) if contained else None


def find_occurrences(text: str, mention: str) -> list[tuple[int, int]]:
    """Every non-overlapping ``(start, end)`` with ``text[start:end] == mention``."""
    spans, start = [], text.find(mention)
    while mention and start != -1:
        spans.append((start, start + len(mention)))
        start = text.find(mention, start + len(mention))
    return spans
