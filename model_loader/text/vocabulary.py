"""The tokenizer's vocabulary as raw bytes, to find which tokens can spell parts of a text.

Extraction answers are copied from the input, so only tokens whose bytes occur
in the text (or in the field names and separators) can start or continue a
correct answer; scoring just those skips most of the 250,880-row output projection.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from .tokenizer_files import ModelTokenizer


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-printable-character table used by byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class Vocabulary:
    """Maps token ids to bytes and byte strings back to the token ids that spell them."""

    def __init__(self, tokenizer: ModelTokenizer, max_token_bytes: int = 24) -> None:
        decoder = _byte_decoder()
        special = tokenizer.special_ids
        self.token_bytes: list[bytes] = []
        self.ids_by_bytes: dict[bytes, list[int]] = {}
        # The few very long tokens are checked with a substring search instead of
        # widening the window every text position is looked up with.
        self.long_tokens: list[tuple[bytes, int]] = []
        for token_id, token in enumerate(tokenizer.vocabulary()):
            if token is None or token_id in special:
                data = b""
            elif all(ch in decoder for ch in token):
                data = bytes(decoder[ch] for ch in token)
            else:  # not a byte-level token: fall back to its text
                data = tokenizer.tokens_text([token]).encode("utf-8")
            self.token_bytes.append(data)
            if data and len(data) <= max_token_bytes:
                self.ids_by_bytes.setdefault(data, []).append(token_id)
            elif data:
                self.long_tokens.append((data, token_id))
        self.max_token_bytes = max_token_bytes
        self.newline_ids = [i for i, data in enumerate(self.token_bytes) if b"\n" in data]

    def spelling_tokens(self, text: str) -> set[int]:
        """Ids of tokens whose bytes occur in ``text``, alone or after a space."""
        data = text.encode("utf-8")
        found: set[int] = set()
        lookup = self.ids_by_bytes
        for start in range(len(data)):
            for end in range(start + 1, min(len(data), start + self.max_token_bytes) + 1):
                piece = data[start:end]
                found.update(lookup.get(piece, ()))
                found.update(lookup.get(b" " + piece, ()))
        spaced = b" " + data  # holds every substring of data too
        found.update(token_id for token, token_id in self.long_tokens if token in spaced)
        return found

    def decode(self, token_ids: list[int]) -> tuple[str, list[int]]:
        """The text of ``token_ids`` and, for each token, the character offset where it starts."""
        starts, data = [], b""
        for token_id in token_ids:
            starts.append(len(data.decode("utf-8", errors="ignore")))
            data += self.token_bytes[token_id]
        return data.decode("utf-8", errors="replace"), starts

    def allowed_tensor(self, ids: set[int], extra: list[int]) -> torch.Tensor:
        return torch.tensor(sorted(ids | set(extra)), dtype=torch.long)
