"""Prompt token estimates for the rate limiter, calibrated on what the endpoint counts.

The model's own tokenizer is not available offline: ``tiktoken`` downloads its BPE
files at run time (openai/tiktoken#232, #317), which a worker without internet cannot
do. So the estimate is characters times a tokens-per-character ratio learned from the
``usage.prompt_tokens`` of answered requests: a high percentile of the recent ratios,
so an estimate is rarely short (a short estimate under-reserves and can earn a 429;
the limiter corrects its books with the real count once the answer is back).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

__all__ = ["PromptTokens"]

#: Before any answer: 1 token per 3 characters, on the safe side of English (~4) and
#: of most European languages.
INITIAL_TOKENS_PER_CHAR = 1 / 3
#: Answers before the learned ratio replaces the initial one.
WARMUP = 3
KEPT = 100
PERCENTILE = 0.95
#: Tokens a chat message costs besides its text (role and separators; OpenAI's
#: cookbook counts 3-4), before calibration absorbs the difference.
PER_MESSAGE = 4


class PromptTokens:
    """Estimates the prompt tokens of a request from its messages' texts."""

    def __init__(self) -> None:
        self._ratios: deque[float] = deque(maxlen=KEPT)

    @property
    def tokens_per_char(self) -> float:
        if len(self._ratios) < WARMUP:
            return INITIAL_TOKENS_PER_CHAR
        ordered = sorted(self._ratios)
        return ordered[min(len(ordered) - 1, math.ceil(PERCENTILE * len(ordered)) - 1)]

    def estimate(self, texts: Sequence[str]) -> int:
        chars = sum(len(t) for t in texts)
        if len(self._ratios) < WARMUP:
            return math.ceil(chars * INITIAL_TOKENS_PER_CHAR) + PER_MESSAGE * len(texts)
        return math.ceil(chars * self.tokens_per_char)

    def observe(self, texts: Sequence[str], prompt_tokens: int) -> None:
        """The endpoint counted ``prompt_tokens`` for a request of ``texts``."""
        chars = sum(len(t) for t in texts)
        if chars > 0 and prompt_tokens > 0:
            self._ratios.append(prompt_tokens / chars)
