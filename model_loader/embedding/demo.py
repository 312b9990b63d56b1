"""Demo embedding weights: a small random-weight BERT shaped like GTE, with a WordPiece tokenizer trained locally.

They let the knowledge base run and be tested offline. Their scores are meaningless; the folder
carries the same marker file as the demo SeqGPT weights so the UI and /health say so. With
``full_size`` the model has GTE-Chinese-Large's exact shape, for benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..hf import transformers_names
from ..model.demo import _CORPUS as SEQGPT_CORPUS
from ..model.demo import DEMO_MARKER

# Knowledge-base-like sentences beside the demo SeqGPT corpus, so common characters get their own tokens.
_KB_CORPUS = """
我电脑蓝屏了，重启后进不去系统。硬件故障排查指南：先检查内存条和硬盘连接，再进入安全模式。
笔记本电池无法充电时，请检查电源适配器、充电口和电池健康度。
打印机脱机：确认网线或无线连接正常，重新安装驱动程序后再试。
报销流程：员工提交发票和审批单，财务部门在五个工作日内完成付款。
合同管理办法规定，金额超过一百万元的合同须经法务部审核。
请为以下内容生成简洁摘要，不超过一百字。
数据库备份每天凌晨两点自动进行，保留最近三十天的记录。
The printer is offline: check the cable, reinstall the driver and try again.
"""

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# GTE-Chinese-Large's shape (thenlper/gte-large-zh config.json).
FULL_SIZE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
             "intermediate_size": 4096, "vocab_size": 21128}
DEMO_SIZE = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256}


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    # BERT's own normalisation puts spaces around CJK characters: one token per Chinese character, as in GTE.
    tokenizer.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    lines = [line for line in (SEQGPT_CORPUS + _KB_CORPUS).splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines * 4, trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


def build_demo_embedding_model(out_dir: Path, full_size: bool = False, seed: int = 0) -> Path:
    """Write a GTE-shaped BERT (random weights) and its tokenizer to ``out_dir`` in the sentence-transformers layout."""
    import torch

    BertConfig, BertModel, PreTrainedTokenizerFast = transformers_names(
        "BertConfig", "BertModel", "PreTrainedTokenizerFast"
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size=2000)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        mask_token="[MASK]", model_max_length=512,
    )
    fast.save_pretrained(out_dir)

    torch.manual_seed(seed)
    shape = dict(FULL_SIZE) if full_size else {**DEMO_SIZE, "vocab_size": tokenizer.get_vocab_size()}
    config = BertConfig(**shape, max_position_embeddings=512, type_vocab_size=2, pad_token_id=fast.pad_token_id)
    model = BertModel(config, add_pooling_layer=False)
    if not full_size:
        # Larger random weights than BERT's init, so that different texts get visibly different
        # vectors instead of nearly one vector set by the layer norms.
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() == 2:
                    param.normal_(0.0, 0.3)
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "model.safetensors").chmod(0o644)
    # The model's own pooling, as sentence-transformers reads it: GTE takes the [CLS] token's vector.
    pooling = out_dir / "1_Pooling"
    pooling.mkdir(exist_ok=True)
    (pooling / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": config.hidden_size, "pooling_mode_cls_token": True,
         "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
         "pooling_mode_mean_sqrt_len_tokens": False}, indent=2), encoding="utf-8")
    (out_dir / DEMO_MARKER).write_text(
        "# Demo embedding weights\n\n"
        "Random weights shaped like GTE-Chinese-Large, made so the knowledge base can run without the real\n"
        "model. Search scores and summary similarities are meaningless. Install the real model with\n"
        "`python scripts/download_model.py --model gte` or point SEQGPT_EMBED_MODEL_DIR at a copy of\n"
        "thenlper/gte-large-zh.\n",
        encoding="utf-8",
    )
    return out_dir
