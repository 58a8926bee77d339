"""Token counts without a tokenizer: good enough for limits, routing and reports."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u4e00-\u9fff]")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: ~1 token per CJK character, ~4 characters per token otherwise."""
    cjk = len(_CJK.findall(text)) if not text.isascii() else 0
    return cjk + (len(text) - cjk + 3) // 4
