"""Demo weights: a tiny random-weight BLOOM with a locally trained byte-level BPE tokenizer.

They let the whole appliance run and be tested offline. Their output is meaningless;
the directory carries a marker file so the UI can say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..hf import transformers_names

DEMO_MARKER = "DEMO_WEIGHTS.md"

# Text the tokenizer is trained on: SeqGPT's prompt vocabulary plus ordinary
# Chinese and English sentences, so that common characters get their own tokens.
_CORPUS = """
输入: 小米集团今天发布了新款手机，售价3999元。
分类: 财经，体育，科技，娱乐，教育，军事，汽车，旅游，游戏，房产
输出: 科技
输入: 阿里巴巴在杭州发布了2023年第三季度财报，营收增长了9%。
抽取: 公司名称，地点，时间，金额，人名，机构名
输出: 公司名称: 阿里巴巴
地点: 杭州
时间: 2023年第三季度
金额: None
彭小军认为，国内银行现在走的是台湾的发卡模式，先通过跑马圈地再在圈的地里面选择客户。
温格的球队终于又踢了一场经典的比赛，2比1战胜曼联之后枪手仍然留在了夺冠集团之内。
从深圳福田口岸或者黄冈口岸过香港，一日游怎么玩呢？
以色列空袭之后，又一国大军进入叙利亚，俄战机起飞应敌。
甲方：北京星河科技有限公司，乙方：上海云帆信息技术有限公司，合同金额人民币一百万元整。
客户反馈：订单号20231105的快递三天没有更新物流信息，希望尽快处理。
情感：正面，负面，中性。意图：投诉，咨询，表扬，退货。
The quick brown fox jumps over the lazy dog. Apple released a new phone in California.
Classify the text into one of the labels. Extract the company names, people and places.
Positive, negative, neutral. Sports, finance, technology, entertainment, politics.
0123456789 ,.;:!?()[]{}<>-_/\\'"\t
"""

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path, max_length: int | None = None):
    """Train a byte-level BPE tokenizer on ``texts``, with SeqGPT's special tokens and its left padding
    and truncation, and save it to ``out_dir``; returns it as a ``PreTrainedTokenizerFast``.

    The demo weights and the benchmark's full-size random-weight model both use it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    PreTrainedTokenizerFast, = transformers_names("PreTrainedTokenizerFast")

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Without max_length the saved tokenizer keeps transformers' default (no limit), as the
    # benchmark's model always had.
    limit = {} if max_length is None else {"model_max_length": max_length}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
        truncation_side="left",
        **limit,
    )
    fast.save_pretrained(out_dir)
    return fast


def build_demo_model(out_dir: Path, vocab_size: int = 1200, seed: int = 0) -> Path:
    """Write a tiny SeqGPT-shaped model to ``out_dir`` in the Hugging Face layout."""
    import torch

    BloomConfig, BloomForCausalLM = transformers_names("BloomConfig", "BloomForCausalLM")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    fast = train_tokenizer(lines * 4, vocab_size, out_dir, max_length=1024)

    torch.manual_seed(seed)
    config = BloomConfig(
        vocab_size=fast.backend_tokenizer.get_vocab_size(),
        hidden_size=64,
        n_layer=2,
        n_head=4,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = BloomForCausalLM(config)
    # Larger random weights than the default init, so that greedy decoding
    # visibly prefers some tokens over others instead of drifting uniformly.
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.2)
    model.save_pretrained(out_dir, safe_serialization=True)
    # save_pretrained leaves the weights owner-only (0600): a container user or a service account
    # other than the builder could not read a mounted copy.
    (out_dir / "model.safetensors").chmod(0o644)

    (out_dir / DEMO_MARKER).write_text(
        "# Demo weights\n\n"
        "These are random weights made by scripts/make_demo_model.py so the appliance can run\n"
        "without the real model. Their output is meaningless. Install SeqGPT-560M with\n"
        "`.venv/bin/python scripts/download_model.py` (`python scripts/download_model.py` in the Docker image),\n"
        "then restart the app: `scripts/supervisorctl restart seqgpt560m`.\n",
        encoding="utf-8",
    )
    return out_dir
