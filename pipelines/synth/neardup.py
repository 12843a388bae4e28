"""Near-duplicate filtering of generated prompts with the project's MinHash (pipelines.minhash).

Exact-string dedup misses "How do I boil an egg?" vs "How do I boil an egg perfectly?": an LLM
asked many times for a question on one topic returns such variants all the time. Questions are
short, so shingles are word 3-grams (a shorter text is one shingle) and the LSH bands are the
corpus dedup's 14 x 8; a candidate pair sharing a band is confirmed by its estimated Jaccard.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipelines.minhash import MinHasher, estimated_jaccard


class NearDuplicateFilter:
    """Streams texts; ``add(text)`` is False when ``text`` is a near duplicate of one kept earlier."""

    def __init__(
        self, threshold: float = 0.7, ngram: int = 3, bands: int = 14, rows: int = 8, seed: int = 1
    ):
        self.threshold = threshold
        self.hasher = MinHasher(ngram=ngram, bands=bands, rows=rows, seed=seed)
        self._buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
        self._sigs: list[np.ndarray] = []
        self.kept: list[str] = []

    def duplicate_of(self, text: str) -> str | None:
        """The kept text ``text`` nearly duplicates, or None."""
        sig = self.hasher.signatures([text])[0]
        return self._match(sig, self.hasher.band_keys(sig[None, :])[0])

    def _match(self, sig: np.ndarray, keys: np.ndarray) -> str | None:
        seen: set[int] = set()
        for b, key in enumerate(keys.tolist()):
            for j in self._buckets.get((b, key), ()):
                if j not in seen:
                    seen.add(j)
                    if estimated_jaccard(sig, self._sigs[j]) >= self.threshold:
                        return self.kept[j]
        return None

    def add(self, text: str) -> bool:
        """Keep ``text`` unless it nearly duplicates a kept one; returns whether it was kept."""
        sig = self.hasher.signatures([text])[0]
        keys = self.hasher.band_keys(sig[None, :])[0]
        if not text.strip() or self._match(sig, keys) is not None:
            return False
        j = len(self.kept)
        self.kept.append(text)
        self._sigs.append(sig)
        for b, key in enumerate(keys.tolist()):
            self._buckets[(b, key)].append(j)
        return True
