"""The official SeqGPT decoding: beam search through ``transformers`` generate.

Kept for users who want the reference behaviour (SEQGPT_DECODING=official):
beams 4, repetition penalty 2.0, labels in chunks of 6 per prompt.
"""

from __future__ import annotations

import torch

from .bloom_weights import BloomWeights, Linear, Norm
from .parsing import find_occurrences, match_label, parse_extraction
from .prompts import CLASSIFY, EXTRACT, build_prompt
from .results import Classification, Extraction, Mention
from .tasks import select_mentions

_BLOCK_PARTS = {
    "input_norm": "input_layernorm",
    "qkv": "self_attention.query_key_value",
    "dense": "self_attention.dense",
    "post_attention_norm": "post_attention_layernorm",
    "up": "mlp.dense_h_to_4h",
    "down": "mlp.dense_4h_to_h",
}

NUM_BEAMS = 4
REPETITION_PENALTY = 2.0
LABELS_PER_CHUNK = 6


def build_reference_model(config: dict, weights: BloomWeights):
    """A transformers BloomForCausalLM that shares the engine's weight tensors (no second copy,
    except of matrices the engine holds packed for oneDNN, which transformers cannot read)."""
    from transformers import BloomConfig, BloomForCausalLM

    dtype = weights.blocks[0].qkv.weight.dtype
    embedding = weights.embedding.to(dtype)  # a real copy where the engine keeps it memory-mapped
    state = {
        "transformer.word_embeddings.weight": embedding,
        "transformer.word_embeddings_layernorm.weight": weights.embedding_norm.weight,
        "transformer.word_embeddings_layernorm.bias": weights.embedding_norm.bias,
        "transformer.ln_f.weight": weights.final_norm.weight,
        "transformer.ln_f.bias": weights.final_norm.bias,
        "lm_head.weight": embedding if weights.output is weights.embedding else weights.output.to(dtype),
    }
    for i, block in enumerate(weights.blocks):
        for part, name in _BLOCK_PARTS.items():
            state[f"transformer.h.{i}.{name}.weight"] = _plain_weight(getattr(block, part))
            state[f"transformer.h.{i}.{name}.bias"] = getattr(block, part).bias
    with torch.device("meta"):
        model = BloomForCausalLM(BloomConfig.from_dict(config))
    model.load_state_dict(state, assign=True, strict=True)
    return model.eval()


def _plain_weight(part: Linear | Norm) -> torch.Tensor:
    return part.plain_weight if isinstance(part, Linear) else part.weight


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


def official_extraction(
    model, tokenizer, plan, threshold: float, exclusive: bool, max_new_tokens: int
) -> Extraction:
    """Each chunk's beam-search answer, parsed on its own; a mention scores its answer's probability."""
    chunks = [plan.fields[i : i + LABELS_PER_CHUNK] for i in range(0, len(plan.fields), LABELS_PER_CHUNK)]
    found: dict[tuple[str, int, int], Mention] = {}
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
                    if not spans and mention not in dropped.setdefault(name, []):
                        dropped[name].append(mention)
                    for start, end in spans:
                        key = (name, piece.start + start, piece.start + end)
                        if key not in found or found[key].score < probability:
                            found[key] = Mention(mention, key[1], key[2], probability)
    return Extraction(
        fields=select_mentions(found, plan.fields, threshold, exclusive),
        raw="\n".join(raws),
        pieces=len(plan.pieces),
        dropped={name: texts for name, texts in dropped.items() if texts},
    )
