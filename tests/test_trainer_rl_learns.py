"""RL raises reward: a tiny model, briefly SFT'd so it answers a verifiable question right only
about 70% of the time, is RL-trained with `trainer.rl` and then answers held-out prompts right
over 90% of the time.

Task: "Is 7 even or odd?" in eight phrasings x ten digits (80 prompts, 16 held out: each held-out
prompt pairs a digit and a phrasing that also occur in training, never together). The answer is
one of two words, so k samples per prompt explore both and the group baseline has signal.
Reward is the shared checker (`pipelines.verify.is_correct`), as in every RL run.

Figures on the reference machine (CPU, 1 thread): held-out mean reward 0.71 -> 0.95 after 20 RL
steps (16 prompts x k=8 per step; train reward 0.66 -> 0.95), about 10 s in all. Without LR
warmup the fresh AdamW's first steps knock the policy down before it climbs: warmup_steps=5.
"""

from __future__ import annotations

import json
import random

import pyarrow as pa
import torch

from pipelines.io import atomic_write_parquet
from schemas.conversations import RL_PROMPT_SCHEMA
from tests.test_trainer_data import tiny_checkpoint, write_conversations
from trainer.checkpoint import tokenizer_from_ref
from trainer.config import RLConfig, TrainConfig
from trainer.rl import evaluate_prompts, rl
from trainer.sft import load_gpt, sft

torch.set_num_threads(1)

PHRASINGS = [
    "Is {} even or odd?",
    "Is {} odd or even?",
    "Tell me if {} is even or odd.",
    "{}: even or odd?",
    "Even or odd: {}?",
    "Parity of {}?",
    "Say whether {} is even or odd.",
    "Is the number {} even or odd?",
]
SFT_STEPS = (
    140  # parity is half learned here: ~70% correct on held-out prompts (0.5 at 130, 0.83 at 150)
)
RL_STEPS = 20
EVAL_SEEDS = (0, 1)


def parity_prompts() -> tuple[list[dict], list[dict]]:
    """(train, held-out) RL prompt rows in RL_PROMPT_SCHEMA."""
    items = [(p.format(n), "even" if n % 2 == 0 else "odd") for n in range(10) for p in PHRASINGS]
    random.Random(0).shuffle(items)
    rows = [
        {"id": str(i), "prompt": p, "answer": a, "kind": "parity", "source": "test"}
        for i, (p, a) in enumerate(items)
    ]
    return rows[16:], rows[:16]


def held_out_reward(run_dir, rows: list[dict], rl_cfg: RLConfig) -> float:
    """Mean reward (= pass@1 at the rollout temperature) over len(EVAL_SEEDS) x k samples per prompt."""
    model, state = load_gpt(run_dir, "cpu")
    tok = tokenizer_from_ref(state["tokenizer"])
    scores = [evaluate_prompts(model, tok, rows, rl_cfg, seed)["val_reward"] for seed in EVAL_SEEDS]
    return sum(scores) / len(scores)


def test_rl_raises_held_out_reward_on_a_verifiable_task(tmp_path):
    train, test = parity_prompts()
    base = tiny_checkpoint(tmp_path)  # pretrained 30 steps on the synthetic corpus
    convs = [
        [
            {"role": "user", "content": r["prompt"]},
            {"role": "assistant", "content": f"Answer: {r['answer']}"},
        ]
        for r in train
    ]
    write_conversations(tmp_path / "conv", convs)
    sft(
        base,
        tmp_path / "conv",
        tmp_path / "sft",
        TrainConfig(
            steps=SFT_STEPS, batch_size=16, lr=3e-3, warmup_steps=5, eval_every=0, progress=False
        ),
    )

    for split, rows in (("train", train), ("val", test)):
        atomic_write_parquet(
            tmp_path / "prompts" / split / "shard-00000.parquet",
            pa.Table.from_pylist(rows, schema=RL_PROMPT_SCHEMA),
        )
    rl_cfg = RLConfig(k=8, max_new_tokens=8)
    before = held_out_reward(tmp_path / "sft", test, rl_cfg)
    assert 0.55 <= before <= 0.85, f"starting policy should be partly right, got {before:.3f}"

    out = rl(
        tmp_path / "sft",
        tmp_path / "prompts",
        tmp_path / "rl",
        rl_cfg=rl_cfg,
        eval_prompts=len(test),
        cfg=TrainConfig(
            steps=RL_STEPS, batch_size=16, lr=3e-3, warmup_steps=5, eval_every=0, progress=False
        ),
    )
    after = held_out_reward(tmp_path / "rl", test, rl_cfg)
    recs = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    train_reward = [r["reward"] for r in recs if "reward" in r]
    print(
        f"held-out reward {before:.3f} -> {after:.3f} after {RL_STEPS} RL steps; "
        f"train reward first 5 steps {sum(train_reward[:5]) / 5:.3f}, last 5 {sum(train_reward[-5:]) / 5:.3f}"
    )

    assert after >= 0.9 and after - before >= 0.15, (before, after)
    assert out["val_reward"] >= 0.9  # the run's own evaluation on DIR/val agrees
    assert (
        sum(train_reward[-5:]) / 5 > sum(train_reward[:5]) / 5 + 0.15
    )  # and reward rose during training
