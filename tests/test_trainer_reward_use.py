"""The reward model is used: as the RL reward (`train rl --reward-model RUN`) and to pick the best
of n sampled replies (`tokenmill sample --best-of N --reward-model RUN`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest
import torch

from pipelines.io import atomic_write_parquet
from schemas.conversations import PREFERENCE_SCHEMA
from tests.test_trainer_data import tiny_checkpoint
from trainer import checkpoint as ckpt
from trainer.best_of_n import best_of_n
from trainer.checkpoint import load_gpt
from trainer.config import RLConfig, TrainConfig
from trainer.inference import LocalModel
from trainer.reward import RewardScorer, train_reward
from trainer.rl import reward_model_rewards, rl, rollouts

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("rm")
    base = tiny_checkpoint(d / "base", steps=10)
    rows = [
        {
            "id": str(i),
            "prompt": f"Say something about {i}.",
            "chosen": f"The number {i} is even.",
            "rejected": "odd odd odd odd",
            "source": "test",
        }
        for i in range(24)
    ]
    atomic_write_parquet(
        d / "pairs" / "train" / "part-00000.parquet",
        pa.Table.from_pylist(rows, schema=PREFERENCE_SCHEMA),
    )
    train_reward(
        base,
        d / "pairs",
        d / "rm",
        TrainConfig(steps=30, batch_size=8, lr=3e-3, warmup_steps=3, eval_every=0, progress=False),
    )
    return base, d / "rm"


def test_scorer_prefers_what_the_pairs_preferred(runs):
    _, rm = runs
    scorer = RewardScorer(rm)
    good, bad = scorer.score(
        "Say something about 77.", ["The number 77 is even.", "odd odd odd odd"]
    )
    assert good > bad
    with pytest.raises(ValueError, match="not a reward-model"):
        RewardScorer(runs[0])


def test_best_of_n_returns_the_highest_scored_distinct_sample(runs):
    base, rm = runs
    lm, scorer = LocalModel.from_checkpoint(base), RewardScorer(rm)
    res = best_of_n(lm, scorer, "Say something about 5.", 4, max_tokens=12, temperature=1.0, seed=3)
    assert len(set(res["replies"])) > 1  # each draw has its own seed
    assert res["scores"] == pytest.approx(scorer.score("Say something about 5.", res["replies"]))
    assert res["best"] == res["replies"][max(range(4), key=res["scores"].__getitem__)]
    with pytest.raises(ValueError, match="temperature"):
        best_of_n(lm, scorer, "x", 3, temperature=0.0)


def test_rl_rewards_come_from_the_reward_model(runs, tmp_path):
    base, rm = runs
    scorer = RewardScorer(rm)
    model, state = load_gpt(base, "cpu")
    tok = ckpt.tokenizer_from_ref(state["tokenizer"])
    rows = [{"prompt": "Say something about 3."}]  # no `answer`: nothing for a verifier to check
    groups = rollouts(
        model,
        tok,
        rows,
        RLConfig(k=4, max_new_tokens=8),
        torch.Generator().manual_seed(0),
        reward_fn=reward_model_rewards(scorer),
    )
    assert groups[0]["rewards"] == pytest.approx(
        scorer.score(rows[0]["prompt"], groups[0]["texts"])
    )
    assert abs(sum(groups[0]["advantages"])) < 1e-6
    atomic_write_parquet(
        tmp_path / "prompts" / "train" / "part-00000.parquet",
        pa.Table.from_pylist([{"prompt": f"Say something about {i}."} for i in range(8)]),
    )
    out = rl(
        base,
        tmp_path / "prompts",
        tmp_path / "rl",
        TrainConfig(steps=2, batch_size=2, eval_every=0, progress=False),
        RLConfig(k=3, max_new_tokens=8),
        reward_model=rm,
        eval_prompts=2,
    )
    assert out["step"] == 2 and "val_reward" in out
    assert json.loads((tmp_path / "rl" / "config.json").read_text())["reward"] == str(rm)
    rewards = [
        r["reward"]
        for r in map(json.loads, (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines())
        if "reward" in r
    ]
    assert rewards and any(r not in (0.0, 1.0) for r in rewards)  # scores, not verifier 0/1


def test_cli_sample_best_of(runs):
    base, rm = runs
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "sample",
            "--ckpt",
            str(base),
            "--prompt",
            "Hi",
            "--best-of",
            "3",
            "--reward-model",
            str(rm),
            "--temperature",
            "1.0",
            "--max-tokens",
            "8",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stderr.strip().splitlines()[-1])
    assert len(info["scores"]) == 3 and info["best_index"] == max(
        range(3), key=info["scores"].__getitem__
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "sample",
            "--ckpt",
            str(base),
            "--prompt",
            "Hi",
            "--best-of",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "go together" in r.stderr
