"""What the decoding tests compare: transformers' greedy answer, and our runner's decode steps."""

from __future__ import annotations

import torch

from model_loader.model.bloom import BloomRunner

# Free prompts of several kinds and lengths, Chinese and English, a single word among them.
PROMPTS = [
    "输入: 小米集团今天发布了新款手机，售价3999元。\n分类: 财经，体育，科技\n输出:",
    "输入: 阿里巴巴在杭州发布了2023年第三季度财报。\n抽取: 公司名称，地点，时间\n输出:",
    "The quick brown fox jumps over the lazy dog.",
    "温格",
    "输入: 客户反馈：订单号20231105的快递三天没有更新物流信息，希望尽快处理。\n分类: 投诉，咨询，表扬\n输出:",
]


def hf_greedy(hf_model, ids: list[int], max_new_tokens: int, eos_id: int) -> list[int]:
    """The tokens transformers' ``generate(do_sample=False)`` writes after ``ids``."""
    with torch.inference_mode():
        out = hf_model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        )
    return out[0, len(ids) :].tolist()


def decode_steps(runner: BloomRunner, prompts: list[list[int]], steps: int) -> list[torch.Tensor]:
    """The first sequence's final hidden state at each of ``steps`` decode steps, every sequence
    fed the same token."""
    cache = runner.sequence_cache([len(p) + steps for p in prompts])
    runner.prefill(prompts, cache)
    fed = torch.full((len(prompts),), 7, dtype=torch.long)
    return [runner.extend(fed, cache, list(range(len(prompts))))[0].clone() for _ in range(steps)]
