"""Uploaded text files decoded one way for batch and evaluation alike: UTF-8 (BOM or not), else GB18030."""

from __future__ import annotations

# Excel in China saves CSV as GB18030 (GBK); everything else should be UTF-8.
ENCODINGS = ("utf-8-sig", "gb18030")
UNDECODABLE = "文件编码无法识别 · the file is neither UTF-8 nor GB18030 text: save it as UTF-8 and upload it again"


def decode_text(data: bytes) -> str | None:
    """The file's text, or None when it is neither encoding (binary, or another code page)."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None
