"""MinHash signatures with FineWeb's settings, bit-for-bit equal to datasketch's ``affine64``.

Why hand-written: datasketch is the reference, but it builds one Python object (and re-derives
its permutations) per document, hashes every shingle with one Python call and runs numpy once
per document. Here a whole batch of documents is normalized, split, hashed and permuted with a
fixed number of numpy passes over all its characters / shingles at once (no per-word Python),
which is what makes the signature step several times faster (benchmarks/minhash_speed.py).

Signature = ``datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash, scheme="affine64")``
fed with the shingles of ``shingles(text, n)``; tested equal, bit for bit:

1. text -> normalized words (lowercase, accents stripped, digits folded to ``0``, punctuation
   and symbols removed, whitespace collapsed) -> word ``n``-grams (``words``/``shingles``);
2. each shingle -> a 64-bit value ``shingle_hash``: every word gets a 64-bit hash (a
   multilinear hash of its Unicode code points with per-position keys, then MurmurHash3's
   ``fmix64``) and the ``k`` word hashes of a shingle are combined by Horner's rule
   ``s = s * SHINGLE_MUL + h_word (mod 2**64)``: a function of the shingle's words only, so
   equal shingles hash equal and distinct ones collide with probability ~2**-60. (The previous
   ``xxh64(shingle_utf8)`` is still available as ``MinHasher(shingle_hash="xxh64")``; it needs
   one Python call per shingle and is ~3.5x slower end to end.)
3. ``fmix64`` (datasketch's pre-mix), then ``num_perm`` affine permutations
   ``h -> a_i * h + b_i mod 2**64`` with odd ``a_i``; ``a``/``b`` come from
   ``numpy.random.RandomState(seed)`` exactly as datasketch draws them;
4. signature[i] = min over shingles of permutation i.

A document shorter than ``n`` words is one shingle (all its words) so short texts are not all
"identical"; a document with no words at all has no signature and is never linked.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np
import xxhash

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S = np.uint64(33)
MAX_HASH = np.uint64((1 << 64) - 1)

_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_ASCII_DELETE = bytes(c for c in range(128) if chr(c) in string.punctuation)  # incl. "_"
_ASCII_DIGITS = bytes.maketrans(b"123456789", b"000000000")


class _UnicodeFold(dict):
    """str.translate table built lazily: punctuation/symbols/combining marks -> deleted,
    decimal digits -> "0", any Unicode space -> " ", everything else unchanged."""

    def __missing__(self, cp: int) -> str | None:
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat[0] in "PS" or cat == "Mn":
            value = None
        elif cat == "Nd":
            value = "0"
        elif cat[0] == "Z" or ch.isspace():
            value = " "
        else:
            value = ch
        self[cp] = value
        return value


_FOLD = _UnicodeFold()


def _fold_run(m: re.Match) -> str:
    return m.group().translate(_FOLD)


def _normalized(text: str) -> str:
    """The per-character normalization (before splitting into words); reference semantics."""
    text = text.lower()
    if not text.isascii():
        text = _NON_ASCII.sub(_fold_run, unicodedata.normalize("NFD", text))
    return text.encode("utf-8").translate(_ASCII_DIGITS, _ASCII_DELETE).decode("utf-8")


def words(text: str) -> list[bytes]:
    """Normalized words of ``text`` as UTF-8 bytes: lowercase, accents stripped (NFD minus
    combining marks), digits -> ``0``, punctuation and symbols deleted, split on whitespace.

    The reference definition (``MinHasher`` gets the same words with numpy, tested equal).
    ASCII is folded with ``bytes.translate``; only non-ASCII runs go through a per-character
    Unicode table.
    """
    text = text.lower()
    if not text.isascii():
        text = _NON_ASCII.sub(_fold_run, unicodedata.normalize("NFD", text))
    return text.encode("utf-8").translate(_ASCII_DIGITS, _ASCII_DELETE).split()


def normalize(text: str) -> str:
    """The normalized text (words joined by one space)."""
    return b" ".join(words(text)).decode("utf-8")


def shingles(text: str, n: int = 5) -> list[bytes]:
    """Word n-grams of the normalized text, UTF-8, joined by one space (order and repeats kept)."""
    w = words(text)
    if len(w) < n:
        return [b" ".join(w)] if w else []
    return list(map(b" ".join, zip(*(w[i:] for i in range(n)), strict=False)))


def xxh64_shingles(sh: Sequence[bytes]) -> np.ndarray:
    """64-bit xxh64 (seed 0) of each shingle's UTF-8 bytes (the ``shingle_hash="xxh64"`` mode)."""
    return np.fromiter(map(xxhash.xxh64_intdigest, sh), dtype=np.uint64, count=len(sh))


# ----------------------------------------------------------------------------- shingle hash

_MASK = (1 << 64) - 1
#: base of the polynomial word hash (odd, so invertible mod 2**64)
WORD_MUL = 0x9E3779B97F4A7C15
_WORD_MUL_INV = pow(WORD_MUL, -1, 1 << 64)
#: key of the word length in the word hash
LENGTH_KEY = 0x165667B19E3779F9
#: multiplier of the per-shingle Horner combination of word hashes (odd, = 3 mod 4)
SHINGLE_MUL = 0xC2B2AE3D27D4EB4F


def _fmix64_int(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _MASK
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _MASK
    return x ^ (x >> 33)


def word_hash(word: str) -> int:
    """Reference (pure Python) 64-bit hash of one normalized word: a polynomial hash of its
    code points, length keyed, through MurmurHash3's ``fmix64``:
    ``fmix64(sum_j ord(word[j]) * WORD_MUL**j + len(word) * LENGTH_KEY mod 2**64)``.

    (A polynomial hash mod 2**64 can be forced to collide by adversarial strings of >= 2048
    characters (Thue-Morse); irrelevant for near-duplicate detection, and it is what lets the
    vectorized path hash every word of a batch with two prefix sums.)"""
    acc, p = len(word) * LENGTH_KEY, 1
    for ch in word:
        acc += ord(ch) * p
        p = (p * WORD_MUL) & _MASK
    return _fmix64_int(acc & _MASK)


def shingle_hash(shingle: bytes | str) -> int:
    """Reference (pure Python) hash of one shingle (its words joined by single spaces):
    Horner's rule over the word hashes, ``s = s * SHINGLE_MUL + word_hash(w) mod 2**64``.
    ``MinHasher`` computes exactly this, vectorized; usable as datasketch's ``hashfunc``."""
    if isinstance(shingle, bytes):
        shingle = shingle.decode("utf-8")
    acc = 0
    for w in shingle.split(" "):
        acc = (acc * SHINGLE_MUL + word_hash(w)) & _MASK
    return acc


def hash_shingles(sh: Sequence[bytes]) -> np.ndarray:
    """``shingle_hash`` of each shingle (reference speed: for tests and small inputs)."""
    return np.fromiter(map(shingle_hash, sh), dtype=np.uint64, count=len(sh))


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer (wrapping arithmetic), as datasketch's ``_fmix``."""
    h = h ^ (h >> _S)
    h = h * _M1
    h = h ^ (h >> _S)
    h = h * _M2
    return h ^ (h >> _S)


# The vectorized normalizer maps every code point through a lookup table over all of Unicode
# (filled lazily, per code point, from the reference functions above): to one code point, to
# " " (word separator) or to _DEL. Two tables:
# - RAW: for original text, the whole per-character rule (lowercase, NFD, marks/punctuation
#   deleted, digits folded) of ``_normalized``; a code point whose result is not 0 or 1 code
#   point, or depends on its neighbours (capital sigma's final form; a surviving combining
#   mark that NFD would reorder) is _UNSAFE: such a document takes the exact path below;
# - PREP: the fold alone, for text that went through ``_prepare`` (Python lower + NFD).
_DEL = np.uint32(0xFFFFFFFF)
_SEP = np.uint32(0xFFFFFFFE)  # between two documents of a batch
_UNSET = np.uint32(0xFFFFFFFD)
_UNSAFE = np.uint32(0xFFFFFFFC)
_SPACE = np.uint32(32)
_ASCII_WS = " \t\n\r\x0b\x0c"  # what bytes.split() splits on
_GROUP_CHARS = 1 << 18  # code points per numpy pass (arrays stay in L2/L3)
_TABLE_CAP = 1 << 22  # longest cached power table


def _raw_value(c: int) -> int:
    if c == 0x3A3:  # capital sigma: lower() picks the final form from the context
        return int(_UNSAFE)
    for ch in unicodedata.normalize("NFD", chr(c).lower()):
        if not ch.isascii() and unicodedata.combining(ch) and _FOLD[ord(ch)] is not None:
            return int(_UNSAFE)
    r = _normalized(chr(c))
    if len(r) > 1:
        return int(_UNSAFE)
    return int(_DEL) if not r else 32 if r in _ASCII_WS else ord(r)


def _prep_value(c: int) -> int:
    if c < 128:
        return _raw_value(c)  # the ASCII rules (text here is already lowercase)
    v = _FOLD[c]
    return int(_DEL) if v is None else ord(v)


class _Tables:
    raw: np.ndarray | None = None
    prep: np.ndarray | None = None
    pow: np.ndarray = np.ones(1, dtype=np.uint64)
    inv: np.ndarray = np.ones(1, dtype=np.uint64)


def _mapped(cp: np.ndarray, which: str) -> np.ndarray:
    table = getattr(_Tables, which)
    if table is None:
        table = np.full(0x110000, _UNSET, dtype=np.uint32)
        setattr(_Tables, which, table)
    out = table[cp]
    unset = out == _UNSET
    if unset.any():
        value = _raw_value if which == "raw" else _prep_value
        for c in np.unique(cp[unset]).tolist():
            table[c] = value(c)
        out = table[cp]
    return out


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``WORD_MUL**j`` and ``WORD_MUL**-j`` mod 2**64 for j < n (wrapping cumprod; cached)."""
    if len(_Tables.pow) >= n:
        return _Tables.pow, _Tables.inv
    m = max(n, 2 * len(_Tables.pow))
    pw = np.full(m, WORD_MUL, dtype=np.uint64)
    iv = np.full(m, _WORD_MUL_INV, dtype=np.uint64)
    pw[0] = iv[0] = 1
    np.multiply.accumulate(pw, out=pw)
    np.multiply.accumulate(iv, out=iv)
    if m <= _TABLE_CAP:
        _Tables.pow, _Tables.inv = pw, iv
    return pw, iv


def _prepare(text: str) -> str:
    text = text.lower()
    return text if text.isascii() else unicodedata.normalize("NFD", text)


def _codes(texts: list[str]) -> np.ndarray:
    """Normalized code points of ``texts`` (_DEL, _SPACE, _SEP between documents)."""
    joined = "\n".join(texts)
    mapped = _mapped(np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32), "raw")
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ends = np.cumsum(lens + 1) - 1  # separator positions (and the end)
    bad = np.flatnonzero(mapped == _UNSAFE)
    if len(bad) == 0:
        mapped[ends[:-1]] = _SEP
        return mapped
    unsafe = set(np.searchsorted(ends, bad).tolist())
    sep = np.array([_SEP], dtype=np.uint32)
    pieces = []
    for i, t in enumerate(texts):
        if i in unsafe:
            prepared = _prepare(t).encode("utf-32-le")
            pieces.append(_mapped(np.frombuffer(prepared, dtype=np.uint32), "prep"))
        else:
            pieces.append(mapped[ends[i] - lens[i] : ends[i]])
        pieces.append(sep)
    return np.concatenate(pieces[:-1])


def _group_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(shingle hashes, shingles per document) of a few documents, all numpy passes."""
    codes = _codes(texts)
    chars = codes[codes != _DEL]
    is_word = (chars != _SPACE) & (chars != _SEP)
    edge = np.empty_like(is_word)
    edge[0] = is_word[0]
    np.greater(is_word[1:], is_word[:-1], out=edge[1:])
    starts = np.flatnonzero(edge)
    edge[-1] = is_word[-1]
    np.greater(is_word[:-1], is_word[1:], out=edge[:-1])
    ends = np.flatnonzero(edge) + 1
    seps = np.flatnonzero(chars == _SEP)
    counts = np.diff(np.searchsorted(starts, seps), prepend=0, append=len(starts))  # words/doc
    nw = len(starts)
    if nw == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
    # word hashes: prefix sums of code * WORD_MUL**position, rebased to each word's start
    pw, iv = _powers(len(chars) + 1)
    prefix = np.empty(len(chars) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.multiply(chars, pw[: len(chars)], out=prefix[1:])
    np.cumsum(prefix[1:], out=prefix[1:])
    acc = prefix[ends] - prefix[starts]
    acc *= iv[starts]
    acc += (ends - starts).astype(np.uint64) * np.uint64(LENGTH_KEY)
    wh = fmix64(acc)
    # shingles: Horner over windows of k = 1..n words; a window is kept if it is a full n-gram
    # inside one document, or all the words of a document shorter than n
    doc = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    keep = np.zeros(nw, dtype=bool)
    val = np.empty(nw, dtype=np.uint64)
    win = wh
    mul = np.uint64(SHINGLE_MUL)
    for k in range(1, n + 1):
        if k > 1:
            win = win[:-1] * mul
            win += wh[k - 1 :]
        if k < n:
            idx = first[counts == k]
        elif nw >= n:
            idx = np.flatnonzero(doc[: nw - n + 1] == doc[n - 1 :])
        else:
            continue
        keep[idx] = True
        val[idx] = win[idx]
    return val[keep], np.bincount(doc[keep], minlength=len(texts))


def batch_shingle_hashes(texts: Sequence[str | None], n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """``shingle_hash`` of every shingle of every text, vectorized over documents.

    Returns ``(hashes, offsets)``: the shingles of text ``i`` are ``hashes[offsets[i]:offsets[i+1]]``
    in ``shingles(text, n)`` order (tested equal to ``hash_shingles(shingles(text, n))``).
    Documents go through numpy in groups of about ``_GROUP_CHARS`` code points.
    """
    texts = [t or "" for t in texts]
    parts, counts = [], []
    i = 0
    while i < len(texts):
        j, size = i, 0
        while j < len(texts) and (j == i or size + len(texts[j]) <= _GROUP_CHARS):
            size += len(texts[j]) + 1
            j += 1
        h, c = _group_hashes(texts[i:j], n)
        parts.append(h)
        counts.append(c)
        i = j
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    if texts:
        np.cumsum(np.concatenate(counts), out=offsets[1:])
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)), offsets


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The affine permutation parameters datasketch's ``affine64`` scheme draws for ``seed``."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = gen.randint(0, 1 << 64, num_perm, dtype=np.uint64)
    return a, b


class MinHasher:
    """Computes signatures for batches of texts; ``num_perm = bands * rows``.

    ``shingle_hash``: ``"words"`` (default: ``shingle_hash``, vectorized) or ``"xxh64"``
    (``xxh64`` of the shingle's UTF-8, one Python call per shingle: datasketch's usual setup).
    """

    def __init__(
        self,
        ngram: int = 5,
        bands: int = 14,
        rows: int = 8,
        seed: int = 1,
        block: int = 8192,
        shingle_hash: str = "words",
    ):
        if shingle_hash not in ("words", "xxh64"):
            raise ValueError(f"shingle_hash: 'words' or 'xxh64', not {shingle_hash!r}")
        self.ngram, self.bands, self.rows, self.seed = ngram, bands, rows, seed
        self.num_perm = bands * rows
        self.a, self.b = permutations(self.num_perm, seed)
        self.block = block
        self.shingle_hash = shingle_hash
        self._a, self._b = self.a[:, None], self.b[:, None]

    def hashes(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """(flat shingle hashes, offsets) of ``texts`` (see ``batch_shingle_hashes``)."""
        if self.shingle_hash == "words":
            return batch_shingle_hashes(texts, self.ngram)
        parts = [xxh64_shingles(shingles(t or "", self.ngram)) for t in texts]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        return (np.concatenate(parts) if parts else np.zeros(0, np.uint64)), offsets

    def signatures(self, texts: Iterable[str | None]) -> np.ndarray:
        """(n_docs, num_perm) uint64; rows of documents without words are all ``MAX_HASH``."""
        return self.signatures_flat(*self.hashes(list(texts)))

    def signatures_from_hashes(self, hashes: list[np.ndarray]) -> np.ndarray:
        """Signatures from per-document shingle hash arrays."""
        offsets = np.zeros(len(hashes) + 1, dtype=np.int64)
        np.cumsum([len(h) for h in hashes], out=offsets[1:])
        flat = (
            np.concatenate(hashes).astype(np.uint64, copy=False)
            if hashes
            else np.zeros(0, np.uint64)
        )
        return self.signatures_flat(flat, offsets)

    def signatures_flat(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures of documents whose shingle hashes are ``hashes[offsets[i]:offsets[i+1]]``.

        All shingles of the batch go through the permutations in blocks of ``block`` columns of
        one (num_perm, block) buffer, allocated per call (thread-safe), reused per block (7 MB:
        stays in cache; measured faster than both smaller blocks and whole-batch arrays).
        ``a*h+b`` wraps, i.e. is mod 2**64; ``minimum.reduceat`` takes each document's part of
        a block, a document spanning blocks is folded in with ``minimum``.
        """
        n_docs = len(offsets) - 1
        nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
        starts = offsets[nonempty]
        acc = np.full((self.num_perm, len(nonempty)), MAX_HASH, dtype=np.uint64)
        h = fmix64(np.asarray(hashes, dtype=np.uint64))
        total, block = len(h), self.block
        buffer = np.empty((self.num_perm, min(block, total)), dtype=np.uint64)
        for s in range(0, total, block):
            e = min(total, s + block)
            buf = buffer[:, : e - s]
            np.multiply(self._a, h[None, s:e], out=buf)
            buf += self._b
            lo = int(np.searchsorted(starts, s, side="right")) - 1
            hi = int(np.searchsorted(starts, e, side="left"))
            seg = np.maximum(starts[lo:hi], s) - s
            red = np.minimum.reduceat(buf, seg, axis=1)
            np.minimum(acc[:, lo:hi], red, out=acc[:, lo:hi])
        out = np.full((n_docs, self.num_perm), MAX_HASH, dtype=np.uint64)
        out[nonempty] = acc.T
        return out

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """(n_docs, bands) uint64: xxh3-64 of each band's ``rows`` values (little-endian bytes).

        Two documents share a bucket in band ``b`` iff their keys are equal; a false key
        collision has probability 2**-64 per pair (and ``min_similarity`` re-checks pairs).
        """
        sigs = np.ascontiguousarray(sigs, dtype="<u8")
        n = sigs.shape[0]
        view = sigs.reshape(n, self.bands, self.rows)
        keys = np.empty((n, self.bands), dtype=np.uint64)
        for i in range(n):
            for b in range(self.bands):
                keys[i, b] = xxhash.xxh3_64_intdigest(view[i, b].tobytes())
        return keys


def estimated_jaccard(s1: np.ndarray, s2: np.ndarray) -> float:
    """Fraction of equal signature positions: the MinHash estimate of Jaccard similarity."""
    return float(np.mean(s1 == s2))


def exact_jaccard(t1: str, t2: str, n: int = 5) -> float:
    """Exact Jaccard of the two texts' shingle sets (ground truth for the quality benchmark)."""
    a, b = set(shingles(t1, n)), set(shingles(t2, n))
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
