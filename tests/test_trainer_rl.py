"""RL on verifiable prompts: group baselines, zero gradient on uninformative groups, a step that
moves probability toward rewarded answers, and the `train rl` run with the shared checker."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from pipelines.io import atomic_write_parquet
from pipelines.verify import format_answer
from schemas.conversations import RL_PROMPT_SCHEMA
from tests.test_trainer_data import tiny_checkpoint
from trainer.config import RLConfig, TrainConfig
from trainer.rl import group_advantages, pass_at_k, policy_loss, rl, rollouts
from trainer.sft import load_gpt

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("rl"))


def test_advantages_sum_to_zero_per_group():
    for rewards in ([1, 0, 0, 1, 1, 0, 0, 0], [1.0, 1.0], [0.0, 0.0, 0.0], [1, 0, 0]):
        adv = group_advantages(rewards)
        assert sum(adv) == pytest.approx(0.0, abs=1e-12)
        assert adv == pytest.approx([r - sum(rewards) / len(rewards) for r in rewards])
    assert sum(group_advantages([1, 0, 0, 0], normalize_std=True)) == pytest.approx(0.0, abs=1e-9)
    assert pass_at_k([[0, 0], [0, 1], [1, 1]]) == pytest.approx(2 / 3)


def _group(prompt, completions, rewards):
    return {
        "prompt": prompt,
        "completions": completions,
        "rewards": rewards,
        "advantages": group_advantages(rewards),
    }


def test_equal_rewards_give_exactly_zero_gradient(base):
    model, _ = load_gpt(base, "cpu")
    groups = [
        _group([1, 2, 3], [[4, 5], [6, 7, 8]], [1.0, 1.0]),
        _group([9], [[10], [11, 12]], [0.0, 0.0]),
    ]
    loss, n = policy_loss(model, groups, "cpu")
    loss.backward()
    assert n == 8  # every sampled token is in the loss, each with weight 0
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_policy_step_moves_probability_toward_the_rewarded_answer(base):
    model, _ = load_gpt(base, "cpu")
    good, bad, prompt = [40, 41, 42], [50, 51, 52], [1, 2, 3]

    def logp(c):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + c[:-1]]))[0, len(prompt) - 1 :]
        return torch.log_softmax(logits, -1)[torch.arange(len(c)), torch.tensor(c)].sum().item()

    before = logp(good), logp(bad)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss, _ = policy_loss(model, [_group(prompt, [good, bad], [1.0, 0.0])], "cpu")
    loss.backward()
    opt.step()
    after = logp(good), logp(bad)
    assert after[0] > before[0] and after[1] < before[1]


def test_rollout_rewards_use_the_shared_checker(base):
    model, state = load_gpt(base, "cpu")
    from trainer.checkpoint import tokenizer_from_ref

    tok = tokenizer_from_ref(state["tokenizer"])
    rows = [{"prompt": "anything", "answer": "7"}]
    groups = rollouts(
        model, tok, rows, RLConfig(k=4, max_new_tokens=8), torch.Generator().manual_seed(0)
    )
    g = groups[0]
    assert len(g["completions"]) == 4 and len(g["rewards"]) == 4
    # an untrained model does not write "Answer: 7"; the reward is whatever is_correct says
    from pipelines.verify import is_correct

    assert g["rewards"] == [float(is_correct(t, "7")) for t in g["texts"]]
    assert is_correct("work...\n" + format_answer(7), "7")


def test_rl_run_logs_reward_and_pass_at_k(base, tmp_path):
    rows = [
        {
            "id": str(i),
            "prompt": f"What is {i}+1?",
            "answer": str(i + 1),
            "kind": "arithmetic",
            "source": "test",
        }
        for i in range(6)
    ]
    atomic_write_parquet(
        tmp_path / "prompts" / "train" / "shard-00000.parquet",
        pa.Table.from_pylist(rows, schema=RL_PROMPT_SCHEMA),
    )
    cfg = TrainConfig(steps=2, batch_size=2, lr=1e-4, warmup_steps=0, eval_every=0, progress=False)
    out = rl(
        base,
        tmp_path / "prompts",
        tmp_path / "run",
        cfg,
        RLConfig(k=4, max_new_tokens=6),
        eval_prompts=3,
    )
    assert out["step"] == 2 and "val_reward" in out and "val_pass@4" in out
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("reward" in r and "pass@4" in r for r in recs if "loss" in r)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
