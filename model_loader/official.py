"""The official SeqGPT decoding: beam search through ``transformers`` generate.

Kept for users who want the reference behaviour (SEQGPT_DECODING=official):
beams 4, repetition penalty 2.0, labels in chunks of 6 per prompt.
"""

from __future__ import annotations

import torch

from .parsing import find_occurrences, match_label, parse_extraction
from .prompts import CLASSIFY, EXTRACT, build_prompt
from .results import Classification, Extraction, Mention

NUM_BEAMS = 4
REPETITION_PENALTY = 2.0
LABELS_PER_CHUNK = 6


def official_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[tuple[str, float]]:
    """Each prompt's beam-search answer and the probability of that answer (length-normalised)."""
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            num_beams=NUM_BEAMS,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            repetition_penalty=REPETITION_PENALTY,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = tokenizer.batch_decode(out.sequences[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return list(zip(texts, out.sequences_scores.exp().tolist(), strict=True))


def official_classification(model, tokenizer, plan, scored: Classification, max_new_tokens: int) -> Classification:
    """The label beam search names in the first piece that names one; label scores stay ours."""
    prompts = [build_prompt(plan.text[p.start : p.end], CLASSIFY, plan.labels) for p in plan.pieces]
    for text, _ in official_generate(model, tokenizer, prompts, max_new_tokens):
        label = match_label(text, plan.labels)
        if label is not None:
            return Classification(label=label, scores=scored.scores, pieces=scored.pieces)
    return scored


def official_extraction(model, tokenizer, plan, threshold: float, max_new_tokens: int) -> Extraction:
    chunks = [plan.fields[i : i + LABELS_PER_CHUNK] for i in range(0, len(plan.fields), LABELS_PER_CHUNK)]
    fields: dict[str, dict[tuple[int, int], Mention]] = {name: {} for name in plan.fields}
    dropped: dict[str, list[str]] = {}
    raws = []
    for piece in plan.pieces:
        chunk_text = plan.text[piece.start : piece.end]
        prompts = [build_prompt(chunk_text, EXTRACT, chunk) for chunk in chunks]
        for chunk, (output, probability) in zip(
            chunks, official_generate(model, tokenizer, prompts, max_new_tokens), strict=True
        ):
            raws.append(output)
            for name, mentions in parse_extraction(output, chunk).items():
                for mention in mentions:
                    spans = find_occurrences(chunk_text, mention)
                    if not spans:
                        dropped.setdefault(name, []).append(mention)
                    for start, end in spans:
                        key = (piece.start + start, piece.start + end)
                        fields[name][key] = Mention(mention, key[0], key[1], probability)
    return Extraction(
        fields={
            name: sorted((m for m in found.values() if m.score >= threshold), key=lambda m: m.start)
            for name, found in fields.items()
        },
        raw="\n".join(raws),
        pieces=len(plan.pieces),
        dropped=dropped,
    )
