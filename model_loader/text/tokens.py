"""The tokenizer as the tasks use it: token ids of prompts and labels, and the tokens that end an answer."""

from __future__ import annotations

from .tokenizer_files import ModelTokenizer
from .vocabulary import Vocabulary


class Tokens:
    """Token ids for the tasks' plans and the decoder's stop tokens; runs in the caller's thread."""

    def __init__(self, tokenizer: ModelTokenizer) -> None:
        assert tokenizer.eos_id is not None, "load_model refuses a tokenizer without one"
        self.tokenizer = tokenizer
        self.vocabulary = Vocabulary(tokenizer)
        self.eos_id: int = tokenizer.eos_id
        # An extracted field's answer is one line: it ends at end-of-sequence or at a line break.
        self.stop_ids = sorted({*self.vocabulary.newline_ids, self.eos_id})

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def label_ids(self, label: str) -> list[int]:
        """A label's tokens as they follow ``[GEN]`` in an answer (no special tokens added)."""
        return self.tokenizer.encode(label, special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)
