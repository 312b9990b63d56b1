"""From a request to model inputs and back: token budgets, long-text pieces, results.

Everything here runs in the caller's thread; only the prepared token ids go to
the model worker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .decoding import FieldAnswer, FieldRequest, LabelSet
from .errors import InvalidInputError
from .parsing import find_occurrences, parse_extraction_line
from .prompts import CLASSIFY, EXTRACT, build_prompt
from .results import Classification, Extraction, Mention
from .settings import Settings
from .splitting import Piece, split_text
from .vocabulary import Vocabulary

# Room left in the window for tokenisation differences at piece boundaries.
_MARGIN_TOKENS = 8


@dataclass
class ClassifyPlan:
    text: str
    labels: list[str]
    pieces: list[Piece]
    label_sets: list[LabelSet]


@dataclass
class ExtractPlan:
    text: str
    fields: list[str]
    pieces: list[Piece]
    requests: list[FieldRequest]


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    for i in range(shortest):
        if any(s[i] != sequences[0][i] for s in sequences):
            return i
    return shortest


class Planner:
    def __init__(self, tokenizer, vocabulary: Vocabulary, settings: Settings) -> None:
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.settings = settings
        self.eos_id: int = tokenizer.eos_token_id
        self.stop_ids = sorted({*vocabulary.newline_ids, self.eos_id})

    def encode(self, text: str) -> list[int]:
        # Texts longer than the window are expected here: they are counted, then split. Without
        # verbose=False the tokenizer warns that such a sequence "will result in indexing errors".
        return self.tokenizer(text, verbose=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def _pieces(self, text: str, task: str, labels: list[str], answer_tokens: int) -> list[Piece]:
        overhead = self.count_tokens(build_prompt("", task, labels))
        budget = self.settings.window_tokens - overhead - answer_tokens - _MARGIN_TOKENS
        if budget < 32:
            what, zh = ("fields", "字段") if task == EXTRACT else ("labels", "标签")
            raise InvalidInputError(
                f"{zh}太多或太长 · the {what} take {overhead} of the model's {self.settings.window_tokens} tokens, "
                f"leaving no room for the text: use fewer or shorter {what}"
            )
        return split_text(text, budget, self.count_tokens, self.settings.overlap_chars)

    def plan_classification(self, text: str, labels: list[str]) -> ClassifyPlan:
        label_tokens = [self.tokenizer(label, add_special_tokens=False)["input_ids"] for label in labels]
        answer = max(len(t) for t in label_tokens) + 1
        pieces = self._pieces(text, CLASSIFY, labels, answer)
        sets = [
            LabelSet(self.encode(build_prompt(text[p.start : p.end], CLASSIFY, labels)), label_tokens)
            for p in pieces
        ]
        return ClassifyPlan(text, labels, pieces, sets)

    def classification_result(self, plan: ClassifyPlan, logprobs: list[list[float]]) -> Classification:
        """Average the pieces' label distributions, weighting each piece by its length."""
        combined = [0.0] * len(plan.labels)
        total = sum(p.end - p.start for p in plan.pieces)
        for piece, scores in zip(plan.pieces, logprobs, strict=True):
            probabilities = torch.softmax(torch.tensor(scores, dtype=torch.float64), dim=0).tolist()
            weight = (piece.end - piece.start) / total
            combined = [c + weight * p for c, p in zip(combined, probabilities, strict=True)]
        norm = sum(combined)
        scores = {label: value / norm for label, value in zip(plan.labels, combined, strict=True)}
        best = max(plan.labels, key=lambda label: scores[label])
        return Classification(label=best, scores=scores, pieces=len(plan.pieces))

    def plan_extraction(self, text: str, fields: list[str]) -> ExtractPlan:
        pieces = self._pieces(text, EXTRACT, fields, self.settings.extract_max_new_tokens)
        requests = []
        for piece in pieces:
            chunk = text[piece.start : piece.end]
            # Each field gets its own prompt; tokenising whole prompts and sharing their
            # common start keeps the tokens exactly those of the single-field prompt.
            prompts = [self.encode(build_prompt(chunk, EXTRACT, [f])) for f in fields]
            # Where the shared part ends depends on the text alone (two fixed probe fields),
            # so a field decodes the same whatever other fields come with it.
            probes = [self.encode(build_prompt(chunk, EXTRACT, [probe])) for probe in ("甲", "乙")]
            shared = min(_common_prefix_length(probes), _common_prefix_length([probes[0], *prompts]))
            shared = min(shared, min(len(p) for p in prompts) - 1)  # every suffix needs at least one token
            # An answer copies the text, its field name and the separators; nothing else.
            vocabulary = self.vocabulary
            spellable = vocabulary.spelling_tokens(chunk)
            allowed = [
                vocabulary.allowed_tensor(spellable | vocabulary.spelling_tokens(f"{f}: None\t"), self.stop_ids)
                for f in fields
            ]
            requests.append(FieldRequest(prompts[0][:shared], [p[shared:] for p in prompts], allowed))
        return ExtractPlan(text, fields, pieces, requests)

    def extraction_result(
        self, plan: ExtractPlan, answers: list[list[FieldAnswer]], threshold: float, exclusive: bool
    ) -> Extraction:
        best: dict[tuple[str, int, int], Mention] = {}
        dropped: dict[str, list[str]] = {}
        raw_pieces = []
        for piece, piece_answers in zip(plan.pieces, answers, strict=True):
            chunk = plan.text[piece.start : piece.end]
            lines = []
            for name, answer in zip(plan.fields, piece_answers, strict=True):
                line, starts = self.vocabulary.decode(answer.tokens)
                lines.append(line)
                parsed = parse_extraction_line(line, [name])
                if parsed is None or parsed[0] != name:
                    continue
                for found in parsed[1]:
                    score = _span_score(found.start, found.end, starts, len(line), answer.probabilities)
                    spans = find_occurrences(chunk, found.text)
                    if not spans and found.text not in dropped.setdefault(name, []):
                        dropped[name].append(found.text)
                    for start, end in spans:
                        mention = Mention(found.text, piece.start + start, piece.start + end, score)
                        key = (name, mention.start, mention.end)
                        if key not in best or best[key].score < score:
                            best[key] = mention
            raw_pieces.append("\n".join(lines))
        fields = select_mentions(best, plan.fields, threshold, exclusive)
        if len(raw_pieces) == 1:
            raw = raw_pieces[0]
        else:
            raw = "\n\n".join(f"[piece {i + 1}/{len(raw_pieces)}]\n{r}" for i, r in enumerate(raw_pieces))
        dropped = {name: texts for name, texts in dropped.items() if texts}
        return Extraction(fields=fields, raw=raw, pieces=len(plan.pieces), dropped=dropped)


def _span_score(start: int, end: int, starts: list[int], line_length: int, probabilities: list[float]) -> float:
    """Geometric mean probability of the tokens that spell characters ``start:end`` of a line."""
    ends = starts[1:] + [line_length]
    chosen = [p for s, e, p in zip(starts, ends, probabilities, strict=True) if s < end and e > start]
    if not chosen:
        return 0.0
    return math.exp(sum(math.log(max(p, 1e-12)) for p in chosen) / len(chosen))


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
