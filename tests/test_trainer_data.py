"""Trainer data: packed token windows with exact cursors, and SFT loss masks.

Also holds the small builders (tokenizer, shards, conversations, a tiny checkpoint) the other
trainer tests import.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from pipelines.chat import render_conversation, tool_call
from pipelines.io import atomic_write_parquet
from pipelines.tokenizer import load_tokenizer, train_bpe
from schemas.conversations import CONVERSATION_SCHEMA
from schemas.tokens import TOKEN_SHARD_SCHEMA, TokenManifest
from trainer.data import IGNORE, ConversationBatches, PackedTokens, split_files

torch.set_num_threads(1)


def corpus_texts(n: int = 300) -> list[str]:
    return [
        f"The number {i} is {'even' if i % 2 == 0 else 'odd'}. It comes after {i - 1}."
        for i in range(n)
    ]


def make_tokenizer(d: Path, vocab_size: int = 300):
    path = d / "tok.json"
    if path.exists():
        return load_tokenizer(str(path))
    return train_bpe(corpus_texts() + ["What is 2+3? Answer: 5", "print(2+3)"], vocab_size, path)


def write_token_shards(d: Path, tok, texts: list[str], shards: int = 2, val: int = 20) -> Path:
    """DIR/train/shard-*.parquet, DIR/val/shard-00000.parquet and DIR/manifest.json."""
    train, held = texts[:-val], texts[-val:]
    for split, part, n in (("train", train, shards), ("val", held, 1)):
        for s in range(n):
            docs = part[s::n]
            ids = [tok.encode(t) + [tok.eot_id] for t in docs]
            table = pa.table(
                {
                    "id": [f"{split}-{s}-{i}" for i in range(len(docs))],
                    "input_ids": ids,
                    "num_tokens": [len(x) for x in ids],
                },
                schema=TOKEN_SHARD_SCHEMA,
            )
            atomic_write_parquet(d / split / f"shard-{s:05d}.parquet", table)
    manifest = TokenManifest(
        tokenizer=tok.name,
        vocab_size=tok.vocab_size,
        eot_id=tok.eot_id,
        special_ids=dict(tok.special_ids),
        seed=0,
        val_fraction=val / len(texts),
        shard_tokens=10_000_000,
    )
    (d / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return d


def write_conversations(d: Path, convs: list[list[dict]], split: str = "train") -> Path:
    table = pa.table(
        {
            "id": [str(i) for i in range(len(convs))],
            "messages": convs,
            "kind": ["sft"] * len(convs),
            "source": ["test"] * len(convs),
            "doc_id": [None] * len(convs),
            "meta": [None] * len(convs),
        },
        schema=CONVERSATION_SCHEMA,
    )
    atomic_write_parquet(d / split / "shard-00000.parquet", table)
    return d


def tiny_checkpoint(d: Path, steps: int = 30, block_size: int = 64) -> Path:
    """A tiny GPT pretrained for a few steps on the synthetic corpus: OUT dir with checkpoint.pt."""
    from trainer.config import TrainConfig
    from trainer.pretrain import pretrain

    tok = make_tokenizer(d)
    data = write_token_shards(d / "shards", tok, corpus_texts())
    pretrain(
        data,
        d / "run",
        TrainConfig(steps=steps, eval_every=0, progress=False),
        model_overrides={"block_size": block_size},
    )
    return d / "run"


def test_packed_windows_cover_every_document_once_per_epoch(tmp_path):
    tok = make_tokenizer(tmp_path)
    texts = corpus_texts(120)
    data = write_token_shards(tmp_path / "s", tok, texts, shards=3, val=10)
    files = split_files(data, "train")
    total = sum(len(tok.encode(t)) + 1 for t in texts[:-10])
    B, T = 2, 16
    loader = PackedTokens(files, B, T, tok.eot_id, seed=3)
    stream = []
    while len(stream) < total:
        x, y = loader.next_batch()
        assert x.shape == y.shape == (B, T)
        assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
        stream += torch.cat([x, y[:, -1:]], dim=1).flatten().tolist()
    first_epoch = stream[:total]
    docs = tok.decode(first_epoch).split("<|endoftext|>")
    assert sorted(d for d in docs if d) == sorted(texts[:-10])  # each doc once, EOT-separated
    assert loader.epoch == 1 or len(stream) == total


def test_cursor_resumes_exactly_and_seed_sets_order(tmp_path):
    tok = make_tokenizer(tmp_path)
    data = write_token_shards(tmp_path / "s", tok, corpus_texts(200), shards=3)
    files = split_files(data, "train")
    a = PackedTokens(files, 4, 32, tok.eot_id, seed=1)
    straight = [a.next_batch()[0] for _ in range(40)]  # crosses shards and epochs
    b = PackedTokens(files, 4, 32, tok.eot_id, seed=1)
    first = [b.next_batch()[0] for _ in range(17)]
    state = json.loads(json.dumps(b.state_dict()))  # cursor survives serialization
    c = PackedTokens(files, 4, 32, tok.eot_id, seed=1)
    c.load_state_dict(state)
    rest = [c.next_batch()[0] for _ in range(23)]
    assert all(torch.equal(p, q) for p, q in zip(straight, first + rest, strict=True))
    other = PackedTokens(files, 4, 32, tok.eot_id, seed=2)
    assert not torch.equal(straight[0], other.next_batch()[0])


TOOL_CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "Let me compute. " + tool_call("python", "print(2+3)")},
    {"role": "tool", "content": "5\n"},  # the sandbox's stdout, as tool-use synthesis stores it
    {"role": "assistant", "content": "Answer: 5"},
]


def test_sft_targets_are_exactly_assistant_content_tool_calls_and_end(tmp_path):
    tok = make_tokenizer(tmp_path)
    loader = ConversationBatches(
        [
            {"messages": TOOL_CONV},
            {"messages": TOOL_CONV[:2] + [{"role": "assistant", "content": "5"}]},
        ],
        tok,
        batch_size=2,
        seq_len=256,
        seed=0,
    )
    x, y = loader.next_batch()
    assert x.shape == y.shape
    for row_x, row_y in zip(x, y, strict=True):
        supervised = row_y[row_y != IGNORE].tolist()
        text = tok.decode(supervised)
        full = tok.decode(row_x.tolist())
        if "python" in full:
            assert (
                text
                == "Let me compute. <|python_start|>print(2+3)<|python_end|>Answer: 5<|im_end|>"
            )
        else:
            assert text == "5<|im_end|>"
            assert (row_y[-3:] == IGNORE).all()  # padding of the shorter conversation
    # the tool output "5" and its markers are inputs, never targets
    r = render_conversation(TOOL_CONV, tok)
    out_start = r.input_ids.index(tok.special("<|output_start|>"))
    out_end = r.input_ids.index(tok.special("<|output_end|>"))
    assert set(r.loss_mask[out_start : out_end + 1]) == {0}
    rows_with_tool = [i for i in range(2) if "python" in tok.decode(x[i].tolist())]
    i = rows_with_tool[0]
    assert (y[i, out_start - 1 : out_end] == IGNORE).all()


def test_numpy_free_cursor_state_is_plain_json(tmp_path):
    tok = make_tokenizer(tmp_path)
    data = write_token_shards(tmp_path / "s", tok, corpus_texts(60), shards=1)
    loader = PackedTokens(split_files(data, "train"), 2, 8, tok.eot_id)
    loader.next_batch()
    s = loader.state_dict()
    assert json.loads(json.dumps(s)) == s
    assert all(isinstance(v, int) for v in s["buffer"]) and not isinstance(s["epoch"], np.integer)
