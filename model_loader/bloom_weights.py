"""SeqGPT's weights as plain tensors, named by their role in a BLOOM block."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Linear:
    weight: torch.Tensor
    bias: torch.Tensor


@dataclass
class Norm:
    weight: torch.Tensor
    bias: torch.Tensor


@dataclass
class Block:
    input_norm: Norm
    qkv: Linear
    dense: Linear
    post_attention_norm: Norm
    up: Linear
    down: Linear


@dataclass
class BloomWeights:
    embedding: torch.Tensor  # [vocab, hidden]
    output: torch.Tensor  # the output projection; the embedding itself when tied, as in SeqGPT
    embedding_norm: Norm
    blocks: list[Block]
    final_norm: Norm
    num_heads: int
    eps: float

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], num_heads: int, eps: float) -> BloomWeights:
        """Pick the tensors out of a BLOOM state dict (names without the ``transformer.`` prefix)."""

        def take(name: str) -> torch.Tensor:
            if name not in state:
                raise KeyError(f"the weights have no tensor {name}")
            return state[name]

        def pair(kind, name: str):
            return kind(take(f"{name}.weight"), take(f"{name}.bias"))

        layers = 1 + max(int(name.split(".")[1]) for name in state if name.startswith("h."))
        blocks = [
            Block(
                input_norm=pair(Norm, f"h.{i}.input_layernorm"),
                qkv=pair(Linear, f"h.{i}.self_attention.query_key_value"),
                dense=pair(Linear, f"h.{i}.self_attention.dense"),
                post_attention_norm=pair(Norm, f"h.{i}.post_attention_layernorm"),
                up=pair(Linear, f"h.{i}.mlp.dense_h_to_4h"),
                down=pair(Linear, f"h.{i}.mlp.dense_4h_to_h"),
            )
            for i in range(layers)
        ]
        embedding = take("word_embeddings.weight")
        return cls(
            embedding=embedding,
            output=state.get("lm_head.weight", embedding),
            embedding_norm=pair(Norm, "word_embeddings_layernorm"),
            blocks=blocks,
            final_norm=pair(Norm, "ln_f"),
            num_heads=num_heads,
            eps=eps,
        )

    def to(self, device: str) -> BloomWeights:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device)

        def moved(part):
            return type(part)(move(part.weight), move(part.bias))

        embedding = move(self.embedding)
        return BloomWeights(
            embedding=embedding,
            output=embedding if self.output is self.embedding else move(self.output),
            embedding_norm=moved(self.embedding_norm),
            blocks=[
                Block(*(moved(getattr(block, f.name)) for f in fields(Block)))
                for block in self.blocks
            ],
            final_norm=moved(self.final_norm),
            num_heads=self.num_heads,
            eps=self.eps,
        )
