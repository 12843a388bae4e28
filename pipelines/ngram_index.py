"""Word n-gram index shared by corpus decontamination and post-training decontamination.

Texts are split into casefolded ``\\w+`` words; an n-gram is ``n`` consecutive words, stored as
a 64-bit xxh3 hash of the words joined by U+001F (a character ``\\w+`` never contains), so the
index of a large evaluation set costs 8 bytes a gram instead of a tuple of strings. With 64-bit
hashes the chance that two different n-grams collide among ``m`` grams is about m^2 / 2^65
(1e-9 for 10 million grams): negligible next to the decision itself.

Every n-gram remembers which reference items (e.g. benchmark questions) contain it, so a hit can
be reported as "document X shares spans with items A and B". One definition of words and
n-grams serves ``pipelines.decontaminate`` (the corpus stage) and ``pipelines.synth.decontam``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import xxhash

_TOKEN_RE = re.compile(r"\w+")
_SEP = "\x1f"


def words(text: str) -> list[str]:
    """The casefolded word tokens n-grams are made of."""
    return _TOKEN_RE.findall(text.casefold())


def ngram_tuples(text: str, n: int, short: bool = True) -> set[tuple[str, ...]]:
    """The set of word n-grams of ``text``; with ``short``, a text of fewer than ``n`` (but at
    least one) words is one whole n-gram (so short prompts can still match each other)."""
    w = words(text)
    if len(w) < n:
        return {tuple(w)} if (w and short) else set()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def hash_gram(gram: Iterable[str]) -> int:
    return xxhash.xxh3_64_intdigest(_SEP.join(gram).encode("utf-8"))


def ngram_hashes(text: str, n: int, short: bool = True) -> np.ndarray:
    """Sorted unique uint64 hashes of ``ngram_tuples(text, n, short)``."""
    grams = ngram_tuples(text, n, short)
    return np.unique(np.fromiter((hash_gram(g) for g in grams), dtype=np.uint64, count=len(grams)))


class NgramIndex:
    """Hashed n-grams of a reference collection, each with the items that contain it.

    ``short`` decides what an item with fewer than ``n`` words contributes: itself as one
    whole gram (True; useful when the queries are equally short prompts) or nothing (False;
    such items are counted in ``short_items`` so callers can report them, never silently).
    """

    def __init__(self, n: int, short: bool = True) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.short = short
        self.items: list[str] = []
        self.short_items = 0
        self._owners: dict[int, list[int]] = {}
        self._keys = np.zeros(0, dtype=np.uint64)

    def add(self, text: str, item: str | None = None) -> int:
        """Index ``text`` as item ``item`` (default: its position); returns its n-gram count."""
        idx = len(self.items)
        self.items.append(item if item is not None else str(idx))
        hashes = ngram_hashes(text or "", self.n, self.short)
        if len(hashes) == 0:
            self.short_items += 1
        for h in hashes.tolist():
            owners = self._owners.setdefault(h, [])
            if not owners or owners[-1] != idx:
                owners.append(idx)
        self._keys = np.zeros(0, dtype=np.uint64)  # rebuilt lazily
        return len(hashes)

    def add_all(self, texts: Iterable[str]) -> NgramIndex:
        for t in texts:
            self.add(t)
        return self

    def __len__(self) -> int:
        return len(self._owners)

    def keys(self) -> np.ndarray:
        """Sorted uint64 array of every indexed n-gram hash (for vectorised lookups)."""
        if len(self._keys) != len(self._owners):
            self._keys = np.array(sorted(self._owners), dtype=np.uint64)
        return self._keys

    def hits(self, hashes: np.ndarray) -> np.ndarray:
        """The subset of ``hashes`` that are in the index."""
        keys = self.keys()
        if len(keys) == 0 or len(hashes) == 0:
            return np.zeros(0, dtype=np.uint64)
        pos = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
        return hashes[keys[pos] == hashes]

    def overlap(self, text: str) -> float:
        """Share of ``text``'s n-grams found in the index (0 for a text with none)."""
        hashes = ngram_hashes(text or "", self.n, self.short)
        return len(self.hits(hashes)) / len(hashes) if len(hashes) else 0.0

    def matched_items(self, hashes: np.ndarray) -> dict[str, int]:
        """{item: number of the given n-grams it shares} for the grams in the index."""
        out: dict[str, int] = {}
        for h in self.hits(hashes).tolist():
            for i in self._owners[h]:
                out[self.items[i]] = out.get(self.items[i], 0) + 1
        return out
