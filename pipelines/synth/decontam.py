"""Decontamination by word n-gram overlap (default 8-grams, the Llama 2/3 style check).

A text is contaminated when at least ``threshold`` of its n-grams occur in the reference set
(short texts with fewer than n words are compared as one whole n-gram). The fraction rule keeps
templated problems, which share boilerplate wording but differ in their numbers, apart.
Words, n-grams and the index are ``pipelines.ngram_index``'s, shared with the corpus
decontamination stage (``pipelines.decontaminate``).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from pipelines import ngram_index


class DecontamConfig(BaseModel):
    n: int = Field(8, ge=1, description="n-gram length in words")
    threshold: float = Field(
        0.5, gt=0, le=1, description="fraction of a text's n-grams that flags it"
    )


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    return ngram_index.ngram_tuples(text, n, short=True)


class NgramIndex:
    """The n-gram set of a reference collection (the training texts)."""

    def __init__(self, texts: Iterable[str], config: DecontamConfig | None = None):
        self.config = config or DecontamConfig()
        self.index = ngram_index.NgramIndex(self.config.n, short=True).add_all(texts)

    def overlap(self, text: str) -> float:
        return self.index.overlap(text)

    def contaminated(self, text: str) -> bool:
        return self.overlap(text) >= self.config.threshold
