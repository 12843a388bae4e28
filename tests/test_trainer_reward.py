"""Reward model: Bradley-Terry training separates a trivially separable preference set."""

from __future__ import annotations

import torch

from tests.test_trainer_data import tiny_checkpoint
from tests.test_trainer_dpo import write_pairs
from trainer.config import TrainConfig
from trainer.reward import load_reward_model, train_reward

torch.set_num_threads(1)


def _pairs(d, split, n, offset=0):
    write_pairs(
        d, split, n, offset, "Tell me about {}.", "The number {} is even.", "odd odd odd odd"
    )


def test_reward_model_learns_a_separable_preference(tmp_path):
    base = tiny_checkpoint(tmp_path / "base", steps=10)
    _pairs(tmp_path / "pairs", "train", 24)
    _pairs(tmp_path / "pairs", "val", 8, offset=100)  # unseen prompts
    cfg = TrainConfig(steps=30, batch_size=8, lr=3e-3, warmup_steps=3, eval_every=0, progress=False)
    out = train_reward(base, tmp_path / "pairs", tmp_path / "rm", cfg)
    assert out["val_pair_acc"] == 1.0
    model, tok = load_reward_model(tmp_path / "rm")
    from trainer.data import render_reply

    good = render_reply(tok, "Tell me about 7.", "The number 7 is even.", 64)
    bad = render_reply(tok, "Tell me about 7.", "odd odd odd odd", 64)
    with torch.no_grad():
        r = [model(torch.tensor([s]), torch.tensor([len(s)])).item() for s in (good, bad)]
    assert r[0] > r[1]
