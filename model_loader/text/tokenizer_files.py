"""The model's tokenizer as the engine reads it: its ``tokenizer.json`` through the tokenizers
library alone, or transformers' tokenizer where the folder asks for what only transformers does.

transformers' fast tokenizer reads the same ``tokenizer.json`` into the same tokenizers object
and encodes and decodes through it. Importing transformers for that wrapper alone added 24 MB
to the engine's resident memory (RssAnon after the import, 2-core Xeon, torch 2.13) and a second
or two to its start; the int8 engine's peak with eight free prompts is about 1.0 GB, so that is
worth keeping out. Where ``tokenizer_config.json`` sets a key with which transformers may change
what the file does (a beginning or end token added to every text, a space before it; BLOOM's
files set none of them), or there is no ``tokenizer.json``, transformers' tokenizer is loaded
instead: the ids never depend on which of the two reads the folder
(tests/model_loader/test_tokenizer_files.py holds them equal).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

# tokenizer_config.json keys with which transformers may rewrite the file's pre- or post-processing.
_REWRITING_KEYS = ("add_bos_token", "add_eos_token", "add_prefix_space")


class ModelTokenizer(Protocol):
    """What the engine asks of a tokenizer."""

    eos_id: int | None
    special_ids: set[int]

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        """``text``'s token ids; ``special_tokens`` adds those the tokenizer adds to every text."""
        ...

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids``, special tokens left out."""
        ...

    def vocabulary(self) -> list[str | None]:
        """Each id's token as the vocabulary spells it (byte-level BPE: one character a byte)."""
        ...

    def tokens_text(self, tokens: list[str]) -> str:
        """The text ``tokens`` decode to."""
        ...


def _token_text(entry: object) -> str | None:
    """A special token's text as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(entry, dict):
        entry = entry.get("content")
    return entry if isinstance(entry, str) else None


def read_config(model_dir: Path) -> dict:
    """``tokenizer_config.json`` merged over ``special_tokens_map.json`` (either may be absent)."""
    config: dict = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = model_dir / name
        if path.is_file():
            config.update(json.loads(path.read_text(encoding="utf-8")))
    return config


def needs_transformers(model_dir: Path, config: dict) -> str | None:
    """Why this folder's tokenizer must be read by transformers, or None (``config``: read_config's)."""
    if not (model_dir / "tokenizer.json").is_file():
        return "there is no tokenizer.json"
    asked = [key for key in _REWRITING_KEYS if config.get(key)]
    if asked:
        return f"tokenizer_config.json sets {', '.join(asked)}"
    return None


def auto_tokenizer(model_dir: Path, **options):
    """transformers' tokenizer of the folder, read from it alone (no hub, no remote code)."""
    from ..hf import transformers_names

    AutoTokenizer, = transformers_names("AutoTokenizer")
    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False, **options)


class FileTokenizer:
    """``tokenizer.json`` read by the tokenizers library, with the special tokens the folder names
    (``config``: read_config's)."""

    def __init__(self, model_dir: Path, config: dict) -> None:
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

        def token_id(key: str) -> int | None:
            text = _token_text(config.get(key))
            return None if text is None else self.backend.token_to_id(text)

        self.eos_id = token_id("eos_token")
        named = [token_id(key) for key in ("bos_token", "eos_token", "unk_token", "pad_token")]
        extra = [_token_text(entry) for entry in config.get("additional_special_tokens", [])]
        named += [self.backend.token_to_id(text) for text in extra if text]
        flagged = [i for i, token in self.backend.get_added_tokens_decoder().items() if token.special]
        self.special_ids = {i for i in [*named, *flagged] if i is not None}

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=special_tokens).ids

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=True)

    def vocabulary(self) -> list[str | None]:
        return [self.backend.id_to_token(i) for i in range(self.backend.get_vocab_size(with_added_tokens=True))]

    def tokens_text(self, tokens: list[str]) -> str:
        decoder = self.backend.decoder
        return decoder.decode(tokens) if decoder is not None else "".join(tokens)


class TransformersTokenizer:
    """transformers' tokenizer for the folder, for what FileTokenizer does not do (needs_transformers)."""

    def __init__(self, model_dir: Path) -> None:
        self.backend = auto_tokenizer(model_dir)
        self.eos_id = self.backend.eos_token_id
        self.special_ids = set(self.backend.all_special_ids)

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        # Texts longer than the window are expected here: they are counted, then split. Without
        # verbose=False the tokenizer warns that such a sequence "will result in indexing errors".
        return self.backend(text, add_special_tokens=special_tokens, verbose=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=True)

    def vocabulary(self) -> list[str | None]:
        return list(self.backend.convert_ids_to_tokens(range(len(self.backend))))

    def tokens_text(self, tokens: list[str]) -> str:
        return self.backend.convert_tokens_to_string(tokens)


def load_tokenizer(model_dir: Path) -> ModelTokenizer:
    """The folder's tokenizer, without transformers where the file says all (needs_transformers)."""
    config = read_config(model_dir)
    if needs_transformers(model_dir, config) is None:
        return FileTokenizer(model_dir, config)
    return TransformersTokenizer(model_dir)
