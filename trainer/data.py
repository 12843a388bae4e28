"""Training data, streamed with exact cursors.

Every loader is a deterministic function of its seed and exposes ``state_dict()`` /
``load_state_dict()``: the checkpoint stores the cursor, so a resumed run sees exactly the batches
an uninterrupted run would have seen.

- ``PackedTokens``: token shards (``DIR/train/*.parquet``, TOKEN_SHARD_SCHEMA) -> fixed windows of
  ``seq_len + 1`` tokens. Shard order is shuffled per epoch, documents within a shard too; each
  document is followed by EOT (added when the shard did not already end it with one). A window may
  span documents (see trainer.model on attention across the EOT boundary).
- ``ConversationBatches``: conversations rendered with ``pipelines.chat.render_conversation``;
  targets are -100 wherever the loss mask is 0 and on padding.
- ``PairBatches`` (preference pairs) and ``PromptBatches`` (RL prompts) share the shuffled cursor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from pipelines.chat import render_conversation
from pipelines.io import parquet_files
from pipelines.tokenizer import Tokenizer
from schemas.tokens import TokenManifest

IGNORE = -100


#: Where each split may live, first match wins: token shards and ``synth mix`` write train/val,
#: single generators write DIR/data, ``synth rl`` writes train/test (test is then the eval set).
SPLIT_DIRS = {"train": ("train", "data", "."), "val": ("val", "test")}


def split_files(directory: str | Path, split: str) -> list[Path]:
    """The Parquet files of ``split`` (see ``SPLIT_DIRS``); [] when the split is absent."""
    d = Path(directory)
    for sub in SPLIT_DIRS[split]:
        files = parquet_files(d / sub) if (d / sub).is_dir() else []
        if files:
            return files
    return []


def read_manifest(directory: str | Path) -> TokenManifest | None:
    """The directory's typed token manifest (``schemas.tokens.TokenManifest``); None when absent."""
    if not (Path(directory) / "manifest.json").is_file():
        return None
    return TokenManifest.read(directory)


def manifest_tokenizer(directory: str | Path) -> str | None:
    """The tokenizer reference (name or JSON path) a shard directory was tokenized with."""
    m = read_manifest(directory)
    return None if m is None else m.tokenizer_ref(directory)


class BatchSource:
    """Iterating yields ``next_batch()`` until it raises StopIteration (a single-pass loader
    ends; a looping one never does)."""

    def next_batch(self):
        raise NotImplementedError

    def __iter__(self):
        while True:
            try:
                yield self.next_batch()
            except StopIteration:
                return


class PackedTokens(BatchSource):
    """Fixed windows of packed documents; ``loop=False`` stops after one pass (validation)."""

    def __init__(
        self,
        files: list[Path],
        batch_size: int,
        seq_len: int,
        eot_id: int,
        seed: int = 0,
        loop: bool = True,
        shuffle: bool = True,
    ):
        if not files:
            raise FileNotFoundError("no token shards")
        self.files, self.B, self.T, self.eot = list(files), batch_size, seq_len, eot_id
        self.seed, self.loop, self.shuffle = seed, loop, shuffle
        self.epoch, self.shard_pos, self.row_pos = 0, 0, 0
        self.buffer = np.zeros(0, dtype=np.int64)
        self._docs: list[np.ndarray] | None = None

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "shard_pos": self.shard_pos,
            "row_pos": self.row_pos,
            "buffer": self.buffer.tolist(),
        }

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.shard_pos, self.row_pos = s["epoch"], s["shard_pos"], s["row_pos"]
        self.buffer = np.asarray(s["buffer"], dtype=np.int64)
        self._docs = None

    def _load_shard(self) -> list[np.ndarray]:
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(len(self.files))
            if self.shuffle
            else np.arange(len(self.files))
        )
        col = pq.read_table(self.files[order[self.shard_pos]], columns=["input_ids"]).column(
            "input_ids"
        )
        arr = col.combine_chunks()
        flat = arr.values.to_numpy(zero_copy_only=False).astype(np.int64)
        off = arr.offsets.to_numpy()
        docs = [flat[off[i] : off[i + 1]] for i in range(len(arr))]
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch, self.shard_pos]).permutation(
                len(docs)
            )
            docs = [docs[i] for i in perm]
        return docs

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        need = self.B * (self.T + 1)
        parts, have = [self.buffer], len(self.buffer)
        eot = np.array([self.eot], dtype=np.int64)
        while have < need:
            if self.shard_pos >= len(self.files):  # only reachable with loop=False
                raise StopIteration
            if self._docs is None:
                self._docs = self._load_shard()
            if self.row_pos >= len(self._docs):
                self._docs, self.row_pos, self.shard_pos = None, 0, self.shard_pos + 1
                if self.shard_pos >= len(self.files):
                    if not self.loop:
                        return self._last_batch(np.concatenate(parts))
                    self.epoch, self.shard_pos = self.epoch + 1, 0
                continue
            doc = self._docs[self.row_pos]
            self.row_pos += 1
            parts.append(doc)
            have += len(doc)
            if len(doc) == 0 or doc[-1] != self.eot:
                parts.append(eot)
                have += 1
        buf = np.concatenate(parts)
        chunk, self.buffer = buf[:need], buf[need:].copy()
        rows = torch.from_numpy(chunk).view(self.B, self.T + 1)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def _last_batch(self, buf: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """End of a single pass: the full windows left, or one shorter window (small val sets)."""
        self.buffer = np.zeros(0, dtype=np.int64)
        n = min(self.B, len(buf) // (self.T + 1))
        if n:
            rows = torch.from_numpy(buf[: n * (self.T + 1)]).view(n, self.T + 1)
        elif len(buf) >= 2:
            rows = torch.from_numpy(buf)[None]
        else:
            raise StopIteration
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


class ShuffledRows(BatchSource):
    """Rows of a dataset in a per-epoch shuffled order, ``batch_size`` at a time, with a cursor."""

    def __init__(self, rows: list, batch_size: int, seed: int = 0, loop: bool = True):
        if not rows:
            raise ValueError("empty dataset")
        self.rows, self.B, self.seed, self.loop = rows, batch_size, seed, loop
        self.epoch, self.pos = 0, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.pos = s["epoch"], s["pos"]

    def next_rows(self) -> list:
        out = []
        while len(out) < self.B:
            if self.pos >= len(self.rows):
                if not self.loop:
                    if out:
                        break
                    raise StopIteration
                self.epoch, self.pos = self.epoch + 1, 0
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.rows))
            take = perm[self.pos : self.pos + self.B - len(out)]
            out.extend(self.rows[i] for i in take)
            self.pos += len(take)
        return out


def read_rows(directory: str | Path, split: str, columns: list[str]) -> list[dict]:
    rows: list[dict] = []
    for f in split_files(directory, split):
        rows.extend(pq.read_table(f, columns=columns).to_pylist())
    return rows


def pad_supervised(
    seqs: list[tuple[list[int], list[int]]], pad_id: int, pad_to: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) pairs -> inputs and next-token targets; unsupervised/padding targets = -100."""
    L = pad_to or max(len(ids) for ids, _ in seqs) - 1
    x = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    y = torch.full((len(seqs), L), IGNORE, dtype=torch.long)
    for i, (ids, mask) in enumerate(seqs):
        ids_t, m = torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.bool)
        n = len(ids) - 1
        x[i, :n] = ids_t[:-1]
        y[i, :n] = torch.where(m[1:], ids_t[1:], IGNORE)
    return x, y


def drop_overlong(rows: list[dict], tok: Tokenizer, max_tokens: int) -> tuple[list[dict], int]:
    """Conversations whose rendering exceeds ``max_tokens`` (the model's context + 1), removed.

    Truncating them instead would silently cut the end of the conversation, usually the final
    answer (or the "I don't know" of a refusal), so its loss would never be taken. The caller
    reports how many were dropped."""
    kept = [r for r in rows if len(render_conversation(r["messages"], tok).input_ids) <= max_tokens]
    return kept, len(rows) - len(kept)


class ConversationBatches(ShuffledRows):
    """SFT batches: (inputs, targets) with loss on assistant tokens only."""

    def __init__(
        self,
        rows: list[dict],
        tok: Tokenizer,
        batch_size: int,
        seq_len: int,
        seed: int = 0,
        loop: bool = True,
        pad_to_block: bool = False,
    ):
        super().__init__(rows, batch_size, seed, loop)
        self.tok, self.T, self.pad_to_block = tok, seq_len, pad_to_block

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = []
        for row in self.next_rows():
            r = render_conversation(row["messages"], self.tok, max_tokens=self.T + 1)
            seqs.append((r.input_ids, r.loss_mask))
        return pad_supervised(seqs, self.tok.eot_id, self.T if self.pad_to_block else None)


def render_reply(tok: Tokenizer, prompt: str, reply: str, max_tokens: int) -> list[int]:
    """A (user prompt, assistant reply) exchange as the reward model reads it."""
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
    ids = render_conversation(msgs, tok).input_ids
    return ids[-max_tokens:]  # keep the end: the reply is what is judged


class PairBatches(ShuffledRows):
    """Preference pairs -> padded chosen and rejected ids with their lengths."""

    def __init__(
        self,
        rows: list[dict],
        tok: Tokenizer,
        batch_size: int,
        seq_len: int,
        seed: int = 0,
        loop: bool = True,
    ):
        super().__init__(rows, batch_size, seed, loop)
        self.tok, self.T = tok, seq_len

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        L = max(len(s) for s in seqs)
        x = torch.full((len(seqs), L), self.tok.eot_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        return x, torch.tensor([len(s) for s in seqs], dtype=torch.long)

    def next_batch(self):
        rows = self.next_rows()
        chosen = [render_reply(self.tok, r["prompt"], r["chosen"], self.T) for r in rows]
        rejected = [render_reply(self.tok, r["prompt"], r["rejected"], self.T) for r in rows]
        return (*self._pad(chosen), *self._pad(rejected))


class PromptBatches(ShuffledRows):
    """RL prompts: lists of {prompt, answer} rows."""

    def next_batch(self) -> list[dict]:
        return self.next_rows()
