"""Extraction, read top to bottom: plan (pieces, one prompt per field) → the backend decodes
the fields → result (parse each answer line, find its mentions in the text, merge the pieces).

``plan`` runs in the caller's thread; the backend (``backends/``) on the model worker, for every plan of a
batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..decoding import FieldAnswer, FieldRequest
from ..results import Extraction, Mention
from ..settings import Settings
from ..text.parsing import find_occurrences, parse_extraction_line
from ..text.prompts import EXTRACT, build_prompt
from ..text.splitting import Piece, window_pieces
from ..text.tokens import Tokens
from .options import ExtractRequest


@dataclass
class ExtractPlan:
    """One extraction request, ready for the model: per piece of the text, one prompt per field."""

    text: str
    fields: list[str]
    pieces: list[Piece]
    requests: list[FieldRequest]
    threshold: float = 0.0  # mentions scoring below it are left out
    exclusive: bool = False  # a span found under several fields stays under its best one only


def plan(tokens: Tokens, settings: Settings, request: ExtractRequest) -> ExtractPlan:
    """Turn a checked request into token ids: per piece of the text, one prompt per field."""
    text, fields = request.text, list(request.fields)
    pieces = window_pieces(text, EXTRACT, fields, settings.extract_max_new_tokens, tokens.count_tokens, settings)
    requests = [_field_request(tokens, text[piece.start : piece.end], fields) for piece in pieces]
    return ExtractPlan(text, fields, pieces, requests, request.threshold, request.exclusive)


# Field names starting with characters of different kinds (CJK, Latin, digits, brackets): the byte-level
# tokenizer joins the space after "抽取:" to some first characters and not to others, and the shared
# part must end before any field's tokens could differ. Two CJK probes alone ended one token too late
# for 公司名称 on 1 field in 4 (texts of tests/data); these ended early enough for all 1,120 tried.
PROBE_FIELDS = ("甲", "乙", "a", "1", "《", "(", "-", "公司", "Ab")


def _field_request(tokens: Tokens, chunk: str, fields: list[str]) -> FieldRequest:
    # Each field gets its own prompt; tokenising whole prompts and sharing their
    # common start keeps the tokens exactly those of the single-field prompt.
    prompts = [tokens.encode(build_prompt(chunk, EXTRACT, [f])) for f in fields]
    # Where the shared part ends depends on the text alone (fixed probe fields), so a field
    # decodes the same whatever other fields come with it: a token moved from the shared
    # prompt to a field's own part is computed by other kernels, a last bit apart.
    probes = [tokens.encode(build_prompt(chunk, EXTRACT, [probe])) for probe in PROBE_FIELDS]
    shared = min(_common_prefix_length(probes), _common_prefix_length([probes[0], *prompts]))
    shared = min(shared, min(len(p) for p in prompts) - 1)  # every suffix needs at least one token
    # An answer copies the text, its field name and the separators; nothing else.
    vocabulary = tokens.vocabulary
    spellable = vocabulary.spelling_tokens(chunk)
    allowed = [
        vocabulary.allowed_tensor(spellable | vocabulary.spelling_tokens(f"{f}: None\t"), tokens.stop_ids)
        for f in fields
    ]
    return FieldRequest(prompts[0][:shared], [p[shared:] for p in prompts], allowed)


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    for i in range(shortest):
        if any(s[i] != sequences[0][i] for s in sequences):
            return i
    return shortest


@dataclass(frozen=True)
class Found:
    """A mention as the model wrote it for one field in one piece of the text."""

    field: str
    text: str
    piece: Piece
    score: float


def result(tokens: Tokens, plan: ExtractPlan, answers: list[list[FieldAnswer]]) -> Extraction:
    """Parse each field's answer line, score its mentions by their tokens' probabilities, and merge."""
    found: list[Found] = []
    raw_pieces = []
    for piece, piece_answers in zip(plan.pieces, answers, strict=True):
        lines = []
        for name, answer in zip(plan.fields, piece_answers, strict=True):
            line, starts = tokens.vocabulary.decode(answer.tokens)
            lines.append(line)
            parsed = parse_extraction_line(line, [name])
            if parsed is None or parsed[0] != name:
                continue
            for mention in parsed[1]:
                score = _span_score(mention.start, mention.end, starts, len(line), answer.probabilities)
                found.append(Found(name, mention.text, piece, score))
        raw_pieces.append("\n".join(lines))
    fields, dropped = merge_mentions(plan.text, plan.fields, found, plan.threshold, plan.exclusive)
    if len(raw_pieces) == 1:
        raw = raw_pieces[0]
    else:
        raw = "\n\n".join(f"[piece {i + 1}/{len(raw_pieces)}]\n{r}" for i, r in enumerate(raw_pieces))
    return Extraction(fields=fields, raw=raw, pieces=len(plan.pieces), dropped=dropped)


def _span_score(start: int, end: int, starts: list[int], line_length: int, probabilities: list[float]) -> float:
    """Geometric mean probability of the tokens that spell characters ``start:end`` of a line."""
    ends = starts[1:] + [line_length]
    chosen = [p for s, e, p in zip(starts, ends, probabilities, strict=True) if s < end and e > start]
    if not chosen:
        return 0.0
    return math.exp(sum(math.log(max(p, 1e-12)) for p in chosen) / len(chosen))


def merge_mentions(
    text: str, fields: list[str], found: Iterable[Found], threshold: float, exclusive: bool
) -> tuple[dict[str, list[Mention]], dict[str, list[str]]]:
    """Mentions per field, each at every place it occurs in its piece (offsets into the whole text),
    and per field the mentions that occur nowhere in their piece (dropped).

    A span found more than once (pieces overlap) keeps its best score."""
    best: dict[tuple[str, int, int], Mention] = {}
    dropped: dict[str, list[str]] = {}
    for mention in found:
        spans = find_occurrences(text[mention.piece.start : mention.piece.end], mention.text)
        if not spans and mention.text not in dropped.setdefault(mention.field, []):
            dropped[mention.field].append(mention.text)
        for start, end in spans:
            key = (mention.field, mention.piece.start + start, mention.piece.start + end)
            if key not in best or best[key].score < mention.score:
                best[key] = Mention(mention.text, key[1], key[2], mention.score)
    return select_mentions(best, fields, threshold, exclusive), {name: t for name, t in dropped.items() if t}


def select_mentions(
    found: dict[tuple[str, int, int], Mention], names: list[str], threshold: float, exclusive: bool
) -> dict[str, list[Mention]]:
    """Mentions per field in text order, at or above the threshold; with ``exclusive``, a span
    found under several fields stays only under the one that scored it highest."""
    if exclusive:
        found = _keep_best_field_per_span(found)
    fields: dict[str, list[Mention]] = {name: [] for name in names}
    for (name, _, _), mention in sorted(found.items(), key=lambda item: (item[0][1], item[0][0])):
        if mention.score >= threshold:
            fields[name].append(mention)
    return fields


def _keep_best_field_per_span(
    mentions: dict[tuple[str, int, int], Mention],
) -> dict[tuple[str, int, int], Mention]:
    """For fields that exclude each other: a span found under several keeps only its best field."""
    winner: dict[tuple[int, int], tuple[str, int, int]] = {}
    for key, mention in mentions.items():
        span = (key[1], key[2])
        if span not in winner or mentions[winner[span]].score < mention.score:
            winner[span] = key
    return {key: mentions[key] for key in winner.values()}
