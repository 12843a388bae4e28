"""Decontamination by word n-gram overlap (default 8-grams, the Llama 2/3 style check).

A text is contaminated when at least ``threshold`` of its n-grams occur in the reference set
(short texts with fewer than n words are compared as one whole n-gram). The fraction rule keeps
templated problems, which share boilerplate wording but differ in their numbers, apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, Field

_TOKEN_RE = re.compile(r"\w+")


class DecontamConfig(BaseModel):
    n: int = Field(8, ge=1, description="n-gram length in words")
    threshold: float = Field(0.5, gt=0, le=1, description="fraction of a text's n-grams that flags it")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _TOKEN_RE.findall(text.casefold())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class NgramIndex:
    """The n-gram set of a reference collection (the training texts)."""

    def __init__(self, texts: Iterable[str], config: DecontamConfig | None = None):
        self.config = config or DecontamConfig()
        self.grams: set[tuple[str, ...]] = set()
        for t in texts:
            self.grams |= ngrams(t, self.config.n)

    def overlap(self, text: str) -> float:
        grams = ngrams(text, self.config.n)
        return sum(g in self.grams for g in grams) / len(grams) if grams else 0.0

    def contaminated(self, text: str) -> bool:
        return self.overlap(text) >= self.config.threshold
