"""SFT never trains on a conversation cut at the context length: the cut would drop its end
(the answer, or the "I don't know" of a refusal) without a word. Such rows are left out and
counted in the run's config.json."""

from __future__ import annotations

import json

import torch

from pipelines.chat import render_conversation
from tests.test_trainer_data import TOOL_CONV, make_tokenizer, tiny_checkpoint, write_conversations
from trainer.config import TrainConfig
from trainer.data import drop_overlong
from trainer.sft import sft

torch.set_num_threads(1)

LONG = [
    {"role": "user", "content": "Tell me everything. " * 200},
    {"role": "assistant", "content": "I don't know."},
]


def test_drop_overlong_keeps_exactly_the_conversations_that_fit(tmp_path):
    tok = make_tokenizer(tmp_path)
    n = len(render_conversation(TOOL_CONV, tok).input_ids)
    rows = [{"messages": TOOL_CONV}, {"messages": LONG}]
    kept, dropped = drop_overlong(rows, tok, n)
    assert kept == [{"messages": TOOL_CONV}] and dropped == 1
    assert drop_overlong(rows, tok, n - 1) == ([], 2)


def test_sft_run_reports_left_out_conversations(tmp_path):
    base = tiny_checkpoint(tmp_path, steps=2, block_size=128)
    write_conversations(tmp_path / "convs", [TOOL_CONV, LONG, TOOL_CONV[1:]])
    sft(
        base,
        tmp_path / "convs",
        tmp_path / "sft",
        TrainConfig(steps=2, batch_size=2, eval_every=0, progress=False),
    )
    cfg = json.loads((tmp_path / "sft" / "config.json").read_text())
    assert cfg["conversations"] == 2 and cfg["dropped_too_long"] == 1
