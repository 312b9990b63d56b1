"""The official SeqGPT decoding: beam search through ``transformers`` generate.

Kept for users who want the reference behaviour (SEQGPT_DECODING=official). The settings below
are those of Alibaba-NLP/SeqGPT; the benchmark's reference side imports them from here.
"""

from __future__ import annotations

import torch

from ..hf import transformers_names
from ..model.bloom_weights import BLOCK_PARTS, EMBEDDING, EMBEDDING_NORM, FINAL_NORM, BloomWeights, Linear, Norm
from ..model.loading import LoadedModel
from ..results import Classification, Extraction, Generation
from ..tasks.classify import ClassifyPlan
from ..tasks.extract import ExtractPlan, Found, merge_mentions
from ..tasks.generate import GeneratePlan
from ..text.parsing import match_label, parse_extraction
from ..text.prompts import CLASSIFY, EXTRACT, build_prompt
from ..text.tokenizer_files import auto_tokenizer

NUM_BEAMS = 4
DO_SAMPLE = False
REPETITION_PENALTY = 2.0
LABELS_PER_CHUNK = 6  # labels per prompt: "smaller chunks give higher recall"
MAX_NEW_TOKENS = 256
DTYPE_ON_CPU = torch.float32  # the official code runs fp16 on CUDA, fp32 on the CPU


class OfficialBackend:
    """Beam search as SeqGPT's own code runs it. Label scores and free prompts stay those of our
    runner (``fast``); transformers' model is built on first use, over the same weight tensors."""

    name = "official"

    def __init__(self, fast, loaded: LoadedModel) -> None:
        self.fast = fast
        self.loaded = loaded
        self.max_new_tokens = fast.settings.max_new_tokens
        self._model = None
        self._tokenizer = None

    def _reference(self):
        if self._model is None:
            self._model = build_reference_model(self.loaded.config, self.loaded.weights)
        return self._model

    def _padding_tokenizer(self):
        """transformers' tokenizer of the model's folder, padding on the left as ``generate`` needs;
        read on first use, like the model (the engine's own tokenizer does not pad)."""
        if self._tokenizer is None:
            self._tokenizer = auto_tokenizer(self.fast.settings.model_dir, padding_side="left")
        return self._tokenizer

    def classify(self, plans: list[ClassifyPlan]) -> list[Classification]:
        """The label beam search names in the first piece that names one; label scores stay ours."""
        results = []
        for plan, scored in zip(plans, self.fast.classify(plans), strict=True):
            prompts = [build_prompt(plan.text[p.start : p.end], CLASSIFY, plan.labels) for p in plan.pieces]
            label = None
            answers = official_generate(self._reference(), self._padding_tokenizer(), prompts, self.max_new_tokens)
            for text, _ in answers:
                label = match_label(text, plan.labels)
                if label is not None:
                    break
            results.append(scored if label is None else Classification(label, scored.scores, scored.pieces))
        return results

    def extract(self, plans: list[ExtractPlan]) -> list[Extraction]:
        return [self._extract_one(plan) for plan in plans]

    def _extract_one(self, plan: ExtractPlan) -> Extraction:
        """Each chunk's beam-search answer, parsed on its own; a mention scores its answer's probability."""
        chunks = [plan.fields[i : i + LABELS_PER_CHUNK] for i in range(0, len(plan.fields), LABELS_PER_CHUNK)]
        found: list[Found] = []
        raws = []
        for piece in plan.pieces:
            prompts = [build_prompt(plan.text[piece.start : piece.end], EXTRACT, chunk) for chunk in chunks]
            answers = official_generate(self._reference(), self._padding_tokenizer(), prompts, self.max_new_tokens)
            for chunk, (output, probability) in zip(chunks, answers, strict=True):
                raws.append(output)
                for name, mentions in parse_extraction(output, chunk).items():
                    found.extend(Found(name, mention, piece, probability) for mention in mentions)
        fields, dropped = merge_mentions(plan.text, plan.fields, found, plan.threshold, plan.exclusive)
        return Extraction(fields=fields, raw="\n".join(raws), pieces=len(plan.pieces), dropped=dropped)

    def generate(self, plans: list[GeneratePlan]) -> list[Generation]:
        return self.fast.generate(plans)

    def check(self) -> None:
        self.fast.check()


def build_reference_model(config: dict, weights: BloomWeights):
    """A transformers BloomForCausalLM that shares the engine's weight tensors (no second copy,
    except of matrices the engine holds packed for oneDNN, which transformers cannot read)."""
    BloomConfig, BloomForCausalLM = transformers_names("BloomConfig", "BloomForCausalLM")

    dtype = _plain_weight(weights.blocks[0].qkv).dtype
    embedding = weights.embedding.to(dtype)  # a real copy where the engine keeps it memory-mapped
    state = {
        f"transformer.{EMBEDDING}": embedding,
        f"transformer.{EMBEDDING_NORM}.weight": weights.embedding_norm.weight,
        f"transformer.{EMBEDDING_NORM}.bias": weights.embedding_norm.bias,
        f"transformer.{FINAL_NORM}.weight": weights.final_norm.weight,
        f"transformer.{FINAL_NORM}.bias": weights.final_norm.bias,
        # transformers names the tied output projection lm_head even where the files hold none.
        "lm_head.weight": embedding if weights.output is weights.embedding else weights.output.to(dtype),
    }
    for i, block in enumerate(weights.blocks):
        for part, name in BLOCK_PARTS.items():
            state[f"transformer.h.{i}.{name}.weight"] = _plain_weight(getattr(block, part))
            state[f"transformer.h.{i}.{name}.bias"] = getattr(block, part).bias
    with torch.device("meta"):
        model = BloomForCausalLM(BloomConfig.from_dict(config))
    model.load_state_dict(state, assign=True, strict=True)
    return model.eval()


def _plain_weight(part: Linear | Norm) -> torch.Tensor:
    """A 16-bit matrix; of an int8 layer (SEQGPT_WEIGHTS=int8), the matrix its scales give back."""
    return part.weight if isinstance(part, Norm) else part.plain_weight


def official_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[tuple[str, float]]:
    """Each prompt's beam-search answer and the probability of that answer (length-normalised)."""
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            num_beams=NUM_BEAMS,
            do_sample=DO_SAMPLE,
            max_new_tokens=max_new_tokens,
            repetition_penalty=REPETITION_PENALTY,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = tokenizer.batch_decode(out.sequences[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return list(zip(texts, out.sequences_scores.exp().tolist(), strict=True))
