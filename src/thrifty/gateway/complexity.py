"""How hard does a request look? A 0-1 score from cheap signals, Chinese and English.

The router only needs a `Scorer`: anything with `score(messages) -> float`. The default is a
heuristic that costs microseconds: long prompts, code, mathematics and multi-step instructions
push the score up; a short chit-chat question stays near 0. A learned scorer (e.g. a small
classifier trained on which requests the local model got wrong) can replace it later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from thrifty.gateway.pii import iter_message_texts


class Scorer(Protocol):
    def score(self, messages: Sequence[Mapping[str, Any]]) -> float: ...


_CODE = re.compile(
    r"```|\bdef |\bclass |\bfunction\b|\breturn\b|#include|=>|\bSELECT\b|\bimport |[{};]\s*$"
    r"|代码|函数|编程|算法",
    re.MULTILINE | re.IGNORECASE,
)
_MATH = re.compile(
    r"\d\s*[-+*/^=]\s*\d|\b(?:prove|proof|integral|derivative|equation|theorem|probability|"
    r"matrix|solve|calculate|irrational|prime|sqrt|lemma)\b|[∫∑√π≤≥]"
    r"|证明|积分|导数|方程|概率|矩阵|计算|求解|素数|无理数",
    re.IGNORECASE,
)
_STEPS = re.compile(
    r"\b(?:step by step|explain why|compare|analy[sz]e|evaluate|design|trade-?offs?|"
    r"pros and cons|first\b.*\bthen\b|in detail|justify|critique|plan)\b"
    r"|分析|比较|详细|步骤|为什么|评估|设计|推理|论证|优缺点|首先.*然后",
    re.IGNORECASE | re.DOTALL,
)
_CJK = re.compile(r"[\u4e00-\u9fff]")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: ~1 token per CJK character, ~4 characters per token otherwise."""
    cjk = len(_CJK.findall(text)) if not text.isascii() else 0
    return cjk + (len(text) - cjk + 3) // 4


class HeuristicScorer:
    """Length, code, maths and multi-step cues combined as a noisy-OR.

    Each signal saturates at 1 and contributes with its weight w: score = 1 - prod(1 - w * s).
    One strong signal (a proof, a page of code) lands near 0.6; two strong ones pass 0.8; a
    short plain question stays near 0.
    """

    WEIGHTS: ClassVar[dict[str, float]] = {
        "length": 0.6,
        "code": 0.6,
        "math": 0.6,
        "steps": 0.6,
        "questions": 0.3,
    }

    def __init__(self, long_prompt_tokens: int = 1500) -> None:
        self.long_prompt_tokens = long_prompt_tokens

    def signals(self, text: str) -> dict[str, float]:
        return {
            "length": min(1.0, estimate_tokens(text) / self.long_prompt_tokens),
            "code": min(1.0, len(_CODE.findall(text)) / 2),
            "math": min(1.0, len(_MATH.findall(text)) / 2),
            "steps": min(1.0, len(_STEPS.findall(text)) / 2),
            "questions": min(1.0, max(0, text.count("?") + text.count("？") - 1) / 3),
        }

    def score(self, messages: Sequence[Mapping[str, Any]]) -> float:
        text = last_user_text(messages)
        if not text:
            return 0.0
        keep = 1.0
        for name, value in self.signals(text).items():
            keep *= 1.0 - self.WEIGHTS[name] * value
        return round(1.0 - keep, 3)


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return "\n".join(iter_message_texts(message))
    return ""
