"""Our BLOOM runner and decoders against plain `transformers` on the same demo weights, in float32."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from decoding_checks import PROMPTS, decode_steps, hf_greedy

from model_loader.backends.official import build_reference_model
from model_loader.decoding import LabelSet, decode_fields, greedy_generate, score_labels
from model_loader.model import bloom as bloom_module
from model_loader.model.attention import QUERY_SLICE
from model_loader.model.bloom import BloomRunner
from model_loader.model.bloom_weights import BloomWeights, Linear
from model_loader.model.cpu_dtype import onednn_half_dtypes, packed_bf16_projection, packing_problem, processor_flags
from model_loader.model.half_kernel import HalfLinear, half_kernel_problem
from model_loader.model.kv_cache import PromptCache, RowCache, SequenceCache
from model_loader.model.row_products import linear_by_rows
from model_loader.tasks import extract
from model_loader.tasks.options import ExtractRequest
from model_loader.text.prompts import CLASSIFY, build_prompt, complete_free_prompt

NEW_TOKENS = 24


@pytest.fixture(scope="module")
def runner(engine_fp32):
    assert engine_fp32.model.runner.dtype == torch.float32
    return engine_fp32.model.runner


@pytest.fixture(scope="module")
def tokens(engine_fp32):
    return engine_fp32.model.tokens


@pytest.fixture(scope="module")
def prompt_ids(tokens) -> list[list[int]]:
    return [tokens.encode(complete_free_prompt(p)) for p in PROMPTS]


def hf_logits(hf_model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return hf_model(input_ids=torch.tensor([ids])).logits[0].float()


# ---- weights ---------------------------------------------------------------------------------


def test_loader_reads_exactly_the_weights_transformers_reads(engine_fp32, engine, hf_model):
    loaded = engine_fp32.model.loaded
    ours = build_reference_model(loaded.config, loaded.weights).state_dict()
    reference = hf_model.state_dict()
    assert set(ours) == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(ours[name], tensor), name
    default_dtype = build_reference_model(engine.model.loaded.config, engine.model.loaded.weights).state_dict()
    for name, tensor in reference.items():
        assert torch.equal(default_dtype[name], tensor.to(default_dtype[name].dtype)), name


def _with_plain_linears(weights: BloomWeights) -> BloomWeights:
    def plain(part):
        return Linear(part.plain_weight, part.bias) if isinstance(part, Linear) else part

    blocks = [
        type(block)(*(plain(getattr(block, f.name)) for f in dataclasses.fields(block))) for block in weights.blocks
    ]
    return dataclasses.replace(weights, blocks=blocks)


def test_half_precision_matrices_are_packed_on_the_cpu_where_packing_is_exact(engine):
    qkv = engine.model.loaded.weights.blocks[0].qkv
    half = engine.status.dtype in ("bfloat16", "float16")
    assert qkv.weight.is_mkldnn == (half and Linear(qkv.plain_weight, qkv.bias).packs_exactly())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_a_packed_matrix_multiplies_exactly_like_the_plain_one_on_any_input_layout(dtype):
    reason = packing_problem(str(dtype).removeprefix("torch."), processor_flags(), onednn_half_dtypes())
    if reason is not None:
        pytest.skip(f"no packed layout to test on this processor: {reason}")
    generator = torch.Generator().manual_seed(0)
    plain = Linear(torch.randn(96, 64, generator=generator).to(dtype), torch.randn(96, generator=generator).to(dtype))
    packed = plain.packed()
    batch = torch.randn(3, 7, 64, generator=generator).to(dtype)
    for x in (batch, batch[:, 2:5], batch.transpose(0, 1)):
        assert torch.equal(packed(x), F.linear(x.contiguous(), plain.weight, plain.bias))
    assert torch.equal(packed.plain_weight, plain.weight)


@pytest.mark.parametrize(
    ("dtype", "packed"),
    [(torch.float32, False), (torch.bfloat16, False), (torch.bfloat16, True), (torch.float16, False),
     (torch.float16, True)],
    ids=["float32", "bfloat16", "bfloat16-packed", "float16", "float16-packed"],
)
def test_a_row_of_the_widest_block_matrix_is_the_same_alone_and_among_other_rows(dtype, packed):
    """The MLP's down projection at SeqGPT-560M's size (1,024 x 4,096), which the demo model's
    narrow matrices do not reach: oneDNN gives a single 16-bit row another result than two or more
    (a row of 12 in 30 random batches differed on a Zen 4 class EPYC), MKL one to three fp32 rows
    (see row_products). A decode step of one sequence is such a product."""
    name = str(dtype).removeprefix("torch.")
    reason = packing_problem(name, processor_flags(), onednn_half_dtypes()) if packed else None
    if reason is not None:
        pytest.skip(f"no packed layout to test on this processor: {reason}")
    generator = torch.Generator().manual_seed(5)
    linear = Linear((torch.randn(1024, 4096, generator=generator) * 0.02).to(dtype),
                    torch.randn(1024, generator=generator).to(dtype))
    linear = linear.packed() if packed else linear
    for _ in range(30):
        rows = torch.randn(8, 1, 4096, generator=generator).to(dtype)  # 8 sequences' decode steps
        together = linear(rows)
        for row in (0, 5):
            assert torch.equal(linear(rows[row : row + 1]), together[row : row + 1])
        assert torch.equal(linear(rows[:3]), together[:3])


def converting_the_stored_matrix(runner: BloomRunner):
    """The projection as the runner's arithmetic defines it, from the stored matrix at every call:
    in the compute dtype (each row as in a product of any number of rows, see row_products), or
    where the projection runs as fp16 the fp32 product of the fp16-rounded matrix."""
    if runner.output.half:
        return lambda hidden: F.linear(hidden.float(), runner.output_weight.half().float())
    return lambda hidden: linear_by_rows(hidden, runner.output_weight.to(runner.dtype))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_the_held_output_projection_changes_no_logit_and_no_generated_token(
    engines_by_dtype, tokens, prompt_ids, dtype
):
    """Held in the compute dtype (packed where the blocks are), the projection gives what
    converting the stored matrix at every call gave, bit for bit, in every dtype; held as fp16
    for FBGEMM's kernel, the same up to the order of the fp32 sums, with the same tokens."""
    runner = engines_by_dtype[dtype].model.runner
    converting = copy.copy(runner)
    converting.output = converting_the_stored_matrix(runner)
    for count in (1, len(prompt_ids)):
        _, last = left_padded(runner, prompt_ids[:count])
        if runner.output.half:
            torch.testing.assert_close(runner.scores(last), converting.scores(last), rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(runner.scores(last), converting.scores(last))
    assert runner.output.resident
    lengths = [NEW_TOKENS] * len(prompt_ids)
    for ids in prompt_ids:
        assert greedy_generate(runner, [ids], [NEW_TOKENS], tokens.eos_id) == greedy_generate(
            converting, [ids], [NEW_TOKENS], tokens.eos_id
        )
    assert greedy_generate(runner, prompt_ids, lengths, tokens.eos_id) == greedy_generate(
        converting, prompt_ids, lengths, tokens.eos_id
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_in_16_bits_each_row_gets_its_logits_and_scores_whatever_rows_come_with_it(
    engines_by_dtype, prompt_ids, dtype
):
    """Chosen rows are scored as fp16 through FBGEMM where torch has it; the whole projection
    too, except where the processor's rule holds it in packed bf16 (AMX)."""
    runner = engines_by_dtype[dtype].model.runner
    problem = half_kernel_problem()
    assert runner.fp16_scores == (problem is None), problem
    packed = isinstance(runner.weights.blocks[0].qkv, Linear) and runner.weights.blocks[0].qkv.weight.is_mkldnn
    bf16_rule = packed_bf16_projection(dtype, packed, processor_flags())
    assert runner.output.half == (problem is None and not bf16_rule)
    if problem is not None:
        assert "FBGEMM" in problem  # a torch build without the kernel: the compute dtype's product runs
    _, last = left_padded(runner, prompt_ids)
    together = runner.logits(last)
    assert together.dtype == (torch.float32 if runner.output.half else runner.dtype)
    for row in range(len(prompt_ids)):
        assert torch.equal(runner.logits(last[row : row + 1])[0], together[row])
    chosen = torch.tensor([5, 17, runner.output_weight.shape[0] - 1, 3, 40])
    chosen_together = runner.scores(last, chosen)
    if runner.output.half == runner.fp16_scores:  # the same arithmetic both ways
        tolerance = 1e-5 if runner.output.half else 0.0
        torch.testing.assert_close(chosen_together, together[:, chosen].float(), rtol=tolerance, atol=tolerance)
    else:  # fp32 scores beside bf16 logits: within bf16's rounding
        torch.testing.assert_close(chosen_together, together[:, chosen].float(), rtol=1e-2, atol=1e-2)
    for row in range(len(prompt_ids)):  # label scoring and extraction score chosen rows: same rule
        assert torch.equal(runner.scores(last[row : row + 1], chosen)[0], chosen_together[row])


AMX = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "amx_tile", "amx_bf16"})


def test_the_projection_is_held_in_packed_bf16_only_where_amx_multiplies_bf16(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert packed_bf16_projection("bfloat16", True, set(AMX))
    assert not packed_bf16_projection("bfloat16", False, set(AMX)), "unpacked, oneDNN's product reads slower"
    assert not packed_bf16_projection("float16", True, AMX | {"avx512_fp16"})
    assert not packed_bf16_projection("bfloat16", True, AMX - {"amx_bf16"}), "Zen 4: FBGEMM's fp16 reads faster"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # oneDNN held below AMX
    assert not packed_bf16_projection("bfloat16", True, set(AMX))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")
    assert packed_bf16_projection("bfloat16", True, set(AMX))


@pytest.mark.parametrize("amx", [True, False], ids=["amx", "no-amx"])
def test_the_runner_holds_the_projection_by_the_rule_and_always_scores_through_fp16(
    engines_by_dtype, prompt_ids, monkeypatch: pytest.MonkeyPatch, amx: bool
):
    """The runner applies the rule to the processor's flags (here made to say AMX or not) while label
    scoring keeps FBGEMM's fp16 either way: fp32 scores, each row's the same in any batch."""
    weights = engines_by_dtype["bfloat16"].model.runner.weights
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(bloom_module, "processor_flags", lambda: set(AMX) if amx else AMX - {"amx_bf16"})
    runner = BloomRunner(weights)
    packed = isinstance(weights.blocks[0].qkv, Linear) and weights.blocks[0].qkv.weight.is_mkldnn
    fp16 = half_kernel_problem() is None
    assert runner.fp16_scores == fp16
    assert runner.output.half == (fp16 and not (amx and packed))
    _, last = left_padded(runner, prompt_ids)
    chosen = torch.tensor([5, 17, runner.output_weight.shape[0] - 1])
    together = runner.scores(last, chosen)
    assert together.dtype == torch.float32
    if fp16:  # through FBGEMM's fp16 kernel whatever holds the whole projection
        assert torch.equal(together, HalfLinear(runner.output_weight[chosen])(last))
    for row in range(len(prompt_ids)):
        assert torch.equal(runner.scores(last[row : row + 1], chosen)[0], together[row])
    logits = runner.logits(last)
    assert logits.dtype == (torch.float32 if runner.output.half else torch.bfloat16)
    assert torch.equal(runner.logits(last[:1])[0], logits[0])


def test_fp32_weights_keep_an_fp32_projection_where_fp16_would_round_them(engine_fp32):
    runner = engine_fp32.model.runner
    assert runner.output_weight.dtype == torch.float32  # the demo weights are stored in fp32
    assert not runner.output.half


def test_packed_weights_give_bit_identical_logits_and_generations(engine, tokens, prompt_ids):
    packed = engine.model.runner
    plain = BloomRunner(_with_plain_linears(engine.model.loaded.weights))
    # The blocks' packing is what is compared: where AMX holds the packed engine's projection in
    # packed bf16, the plain runner would hold it as fp16 for FBGEMM (cpu_dtype.packed_bf16_projection).
    plain.output = packed.output
    _, packed_last = left_padded(packed, prompt_ids)
    _, plain_last = left_padded(plain, prompt_ids)
    assert torch.equal(packed_last, plain_last)
    assert torch.equal(packed.scores(packed_last), plain.scores(plain_last))
    lengths = [NEW_TOKENS] * len(prompt_ids)
    assert greedy_generate(packed, prompt_ids, lengths, tokens.eos_id) == greedy_generate(
        plain, prompt_ids, lengths, tokens.eos_id
    )


def left_padded(runner: BloomRunner, prompts: list[list[int]]) -> tuple[PromptCache, torch.Tensor]:
    """Prompts run into a left-padded PromptCache, as extraction runs its texts; the cache and last states."""
    cache = PromptCache.left_padded(runner.layout, prompts)
    return cache, runner.prefill(prompts, cache)


# ---- logits ----------------------------------------------------------------------------------


def test_runner_prefill_logits_match_transformers_at_every_position(runner, hf_model, prompt_ids):
    ids = prompt_ids[1]
    # Every prefix of the prompt as one left-padded batch: row k ends at position k.
    _, last = left_padded(runner, [ids[: k + 1] for k in range(len(ids))])
    ours = runner.scores(last)
    reference = hf_logits(hf_model, ids)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_runner_left_padded_batch_logits_match_each_prompt_alone(runner, hf_model, prompt_ids):
    _, last = left_padded(runner, prompt_ids)
    ours = runner.scores(last)
    assert len({len(ids) for ids in prompt_ids}) > 1, "prompts of different lengths, so rows are padded"
    for row, ids in enumerate(prompt_ids):
        torch.testing.assert_close(ours[row], hf_logits(hf_model, ids)[-1], atol=1e-4, rtol=1e-4)


def test_a_prompt_longer_than_several_query_slices_matches_transformers_at_every_position(runner, hf_model, tokens):
    # Eager attention takes a prompt's queries in slices (attention.QUERY_SLICE); this prompt
    # spans three of them, the last one partly filled.
    ids = tokens.encode(complete_free_prompt("。".join(PROMPTS) * 6))[: 2 * QUERY_SLICE + 41]
    assert len(ids) == 2 * QUERY_SLICE + 41, "the demo tokenizer made the prompt too short"
    tokens_in, is_token = torch.tensor([ids]), torch.ones((1, len(ids)), dtype=torch.bool)
    hidden = runner.forward(tokens_in, is_token, RowCache.empty(runner.layout, [0], len(ids)))
    torch.testing.assert_close(runner.scores(hidden[0]), hf_logits(hf_model, ids), atol=1e-4, rtol=1e-4)


def test_sequences_cache_each_prompt_unpadded_with_the_keys_and_values_of_the_padded_cache(runner, prompt_ids):
    capacities = [len(ids) + 3 for ids in prompt_ids]
    padded, padded_last = left_padded(runner, prompt_ids)
    unpadded = SequenceCache.empty(runner.layout, capacities)
    last = runner.prefill(prompt_ids, unpadded)
    assert unpadded.keys[0].shape[1] == sum(capacities) < len(prompt_ids) * (max(map(len, prompt_ids)) + 3)
    assert unpadded.lengths == [len(ids) for ids in prompt_ids]
    torch.testing.assert_close(last, padded_last, atol=0, rtol=0)
    width = padded.mask.shape[1]
    for index, ids in enumerate(prompt_ids):
        for layer in (0, runner.layers - 1):
            keys, values = unpadded.stretch(layer, index, len(ids))
            assert torch.equal(keys[0], padded.keys[layer][index, :, width - len(ids) :])
            assert torch.equal(values[0], padded.values[layer][index, :, width - len(ids) :])


def test_runner_scores_for_chosen_tokens_equal_the_full_scores_at_those_tokens(runner, prompt_ids):
    _, last = left_padded(runner, prompt_ids[:2])
    vocab = runner.output_weight.shape[0]
    chosen = torch.tensor([5, 17, vocab // 2, 3, vocab - 1])
    torch.testing.assert_close(runner.scores(last, chosen), runner.scores(last)[:, chosen])


# ---- greedy generation -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_reference(hf_model, tokens, prompt_ids) -> list[list[int]]:
    return [hf_greedy(hf_model, ids, NEW_TOKENS, tokens.eos_id) for ids in prompt_ids]


def test_greedy_generate_is_token_identical_to_transformers_generate(runner, tokens, prompt_ids, hf_reference):
    eos = tokens.eos_id
    reference = hf_reference
    for ids, expected in zip(prompt_ids, reference, strict=True):
        assert greedy_generate(runner, [ids], [NEW_TOKENS], eos) == [expected]
    assert greedy_generate(runner, prompt_ids, [NEW_TOKENS] * len(prompt_ids), eos) == reference


def test_greedy_generate_stops_after_eos_exactly_like_transformers(runner, hf_model, prompt_ids, hf_reference):
    stopped = 0
    for ids, free in zip(prompt_ids, hf_reference, strict=True):
        if stopped == 3:
            break
        # Declare as end-of-sequence a token the model writes mid-answer for the first time.
        candidates = [(i, t) for i, t in enumerate(free) if i > 0 and t not in free[:i]]
        if not candidates:
            continue
        position, eos = candidates[len(candidates) // 2]
        expected = hf_greedy(hf_model, ids, NEW_TOKENS, eos)
        assert expected == free[: position + 1]
        assert greedy_generate(runner, [ids], [NEW_TOKENS], eos) == [expected]
        stopped += 1
    assert stopped >= 3


def test_greedy_generate_batch_with_different_lengths_matches_each_alone(runner, prompt_ids, tokens):
    limits = [1, 5, 24, 9, 13]
    together = greedy_generate(runner, prompt_ids, limits, tokens.eos_id)
    for ids, limit, output in zip(prompt_ids, limits, together, strict=True):
        assert len(output) <= limit
        assert output == greedy_generate(runner, [ids], [limit], tokens.eos_id)[0]


def test_a_decode_step_gives_a_sequence_the_same_hidden_state_alone_and_beside_others(runner, prompt_ids):
    """Bit for bit, not just the same argmax: in fp32 the CPU's products of one to three rows take
    another kernel than those of more, and a last bit apart tips a near tie (see row_products)."""
    alone = decode_steps(runner, prompt_ids[:1], 3)
    for others in (1, 2, 3, 4):
        beside = decode_steps(runner, prompt_ids[: 1 + others], 3)
        assert all(torch.equal(a, b) for a, b in zip(alone, beside, strict=True)), f"beside {others} others"


def test_chosen_tokens_score_a_row_the_same_alone_and_among_others(runner):
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(5, runner.hidden_size, generator=generator).to(runner.dtype)
    score = runner.scorer(torch.tensor([3, 17, 40, 41]))
    together = score(hidden)
    for row in range(5):
        assert torch.equal(score(hidden[row : row + 1])[0], together[row])
    assert torch.equal(score(hidden[:2]), together[:2])


def test_engine_generate_decodes_what_transformers_generates(engine_fp32, hf_model, tokens):
    for prompt in PROMPTS[:3]:
        result = engine_fp32.generate(prompt, 16)
        expected = hf_greedy(hf_model, tokens.encode(complete_free_prompt(prompt)), 16, tokens.eos_id)
        assert result.new_tokens == len(expected)
        assert result.text == tokens.tokenizer.decode(expected)


# ---- label scoring ---------------------------------------------------------------------------


def reference_label_logprobs(hf_model, prompt: list[int], labels: list[list[int]], eos: int) -> list[float]:
    """Each label (then eos) scored token by token, each step normalised over the tokens that continue some label."""
    sequences = [label + [eos] for label in labels]
    totals = []
    for seq in sequences:
        logits = hf_logits(hf_model, prompt + seq)
        total = 0.0
        for i, token in enumerate(seq):
            options = sorted({other[i] for other in sequences if len(other) > i and other[:i] == seq[:i]})
            step = torch.log_softmax(logits[len(prompt) + i - 1, options].double(), dim=0)
            total += step[options.index(token)].item()
        totals.append(total)
    return totals


@pytest.mark.parametrize(
    "labels",
    [
        ["财经", "财经新闻", "科技"],
        ["体育"],
        ["sports", "sports news", "finance", "科技 tech"],
        ["正面", "负面", "中性"],
    ],
)
def test_label_scores_equal_constrained_log_probabilities_from_transformers(runner, hf_model, tokens, labels):
    text = "小米集团今天发布了新款手机，售价3999元。"
    prompt = tokens.encode(build_prompt(text, CLASSIFY, labels))
    label_ids = [tokens.tokenizer.encode(label, special_tokens=False) for label in labels]
    ours = score_labels(runner, [LabelSet(prompt, label_ids)], tokens.eos_id)[0]
    expected = reference_label_logprobs(hf_model, prompt, label_ids, tokens.eos_id)
    assert ours == pytest.approx(expected, abs=1e-4)


def test_engine_classify_probabilities_are_the_softmax_of_the_label_log_probabilities(engine_fp32, hf_model, tokens):
    text, labels = "温格的球队终于又踢了一场经典的比赛。", ["体育", "体育赛事", "财经"]
    prompt = tokens.encode(build_prompt(text, CLASSIFY, labels))
    label_ids = [tokens.tokenizer.encode(label, special_tokens=False) for label in labels]
    expected = torch.softmax(torch.tensor(reference_label_logprobs(hf_model, prompt, label_ids, tokens.eos_id)), 0)
    result = engine_fp32.classify(text, labels)
    assert [result.scores[label] for label in labels] == pytest.approx(expected.tolist(), abs=1e-5)


def test_label_scoring_of_several_requests_together_matches_each_alone(runner, tokens):
    requests = []
    for text, labels in [
        ("温格的球队。", ["体育", "财经"]),
        ("小米发布新手机，售价3999元。", ["科技", "科技公司", "财经"]),
    ]:
        prompt = tokens.encode(build_prompt(text, CLASSIFY, labels))
        requests.append(LabelSet(prompt, [tokens.tokenizer.encode(x, special_tokens=False) for x in labels]))
    together = score_labels(runner, requests, tokens.eos_id)
    for request, scores in zip(requests, together, strict=True):
        assert scores == pytest.approx(score_labels(runner, [request], tokens.eos_id)[0], abs=1e-5)


# ---- per-field extraction decoding -----------------------------------------------------------


def test_field_decoding_equals_a_constrained_greedy_loop_over_transformers(engine_fp32, runner, hf_model, tokens):
    text = "甲方：北京星河科技有限公司，乙方：上海云帆信息技术有限公司，合同金额人民币一百万元整。"
    fields = ["公司名称", "金额", "甲方"]
    steps = 12
    asked = ExtractRequest.checked(engine_fp32.settings, text=text, fields=fields)
    (request,) = extract.plan(tokens, engine_fp32.settings, asked).requests
    (answers,) = decode_fields(runner, [request], tokens.stop_ids, steps)
    for i, answer in enumerate(answers):
        allowed = request.allowed[i].tolist()
        ids = request.prefix + request.suffixes[i]
        written, probabilities = [], []
        for _ in range(steps):
            probs = torch.softmax(hf_logits(hf_model, ids)[-1, allowed], dim=0)
            best = int(probs.argmax())
            if allowed[best] in tokens.stop_ids:
                break
            written.append(allowed[best])
            probabilities.append(probs[best].item())
            ids = ids + [allowed[best]]
        assert answer.tokens == written, f"field {fields[i]!r}"
        assert answer.probabilities == pytest.approx(probabilities, abs=1e-4)
