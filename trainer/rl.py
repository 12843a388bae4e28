"""RL on verifiable prompts (GRPO-style, no KL term, on-policy).

Each step samples ``k`` answers per prompt from the current policy, rewards an answer 1 when
``pipelines.verify.is_correct`` accepts it (else 0), sets advantage = reward - group mean (the
group's own baseline, optionally / std), and takes a policy-gradient step on the sampled tokens:
loss = -sum(advantage * log p(token)) / number of sampled tokens. A group whose answers all score
the same teaches nothing and contributes exactly zero gradient.

With ``reward_model`` (a ``train reward`` run), the reward of an answer is the reward model's score
instead of the verifier's 0/1: RL against learned human preferences, for prompts with no checkable
answer (the prompts then need no ``answer`` column). The group-mean baseline is the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from pipelines.chat import IM_END, render_prompt
from pipelines.verify import is_correct
from trainer import checkpoint as ckpt
from trainer.checkpoint import load_gpt
from trainer.config import RLConfig, TrainConfig, TrainerWarning
from trainer.data import IGNORE, PromptBatches, read_rows
from trainer.loop import fit, setup
from trainer.model import GPT
from trainer.sample import allowed_ids, generate

COLUMNS = ["prompt", "answer"]


def group_advantages(rewards: list[float], normalize_std: bool = False) -> list[float]:
    """Reward minus the group mean (sums to zero); optionally divided by the group std."""
    t = torch.tensor(rewards, dtype=torch.float64)
    adv = t - t.mean()
    if normalize_std and len(rewards) > 1:
        adv = adv / (t.std() + 1e-6)
    return adv.tolist()


def pass_at_k(rewards_per_prompt: list[list[float]]) -> float:
    """Fraction of prompts with at least one correct answer among their samples."""
    return sum(any(r > 0 for r in rs) for rs in rewards_per_prompt) / max(
        1, len(rewards_per_prompt)
    )


def warn_if_no_reward(rewards_per_prompt: list[list[float]]) -> bool:
    """Warn when every sampled answer of a step scored zero: every advantage is then zero and the
    step cannot teach anything (answers never verify: a policy too weak for the task, or prompts
    and answers in a format the checker does not accept). Returns whether it warned."""
    if any(r != 0 for rs in rewards_per_prompt for r in rs):
        return False
    warnings.warn(
        f"rl: all {sum(map(len, rewards_per_prompt))} rewards of this step are zero, so "
        "the step has no learning signal; start from an SFT checkpoint that answers in "
        "the expected format, or check the prompts' answers",
        TrainerWarning,
        stacklevel=2,
    )
    return True


def prompt_ids(tok, prompt: str, block_size: int, max_new: int) -> list[int]:
    ids = render_prompt([{"role": "user", "content": prompt}], tok)
    return ids[-(block_size - max_new) :]


def verifier_rewards(row: dict, texts: list[str]) -> list[float]:
    """1.0 for each answer the verifier accepts, else 0.0."""
    return [float(is_correct(t, row["answer"])) for t in texts]


def reward_model_rewards(scorer) -> Callable[[dict, list[str]], list[float]]:
    """Rewards from a ``trainer.reward.RewardScorer``: its score of (prompt, answer)."""
    return lambda row, texts: scorer.score(row["prompt"], texts)


def rollouts(
    model: GPT,
    tok,
    rows: list[dict],
    rl: RLConfig,
    generator=None,
    allowed: torch.Tensor | None = None,
    reward_fn: Callable[[dict, list[str]], list[float]] = verifier_rewards,
) -> list[dict]:
    """For each prompt: its ids, ``k`` sampled completions, their rewards and advantages."""
    stops = (tok.special(IM_END), tok.eot_id)
    if allowed is None:
        allowed = allowed_ids(tok, model.cfg.vocab_size).to(model.wte.weight.device)
    groups = []
    for row in rows:
        pids = prompt_ids(tok, row["prompt"], model.cfg.block_size, rl.max_new_tokens)
        outs = generate(
            model,
            pids,
            rl.k,
            rl.max_new_tokens,
            rl.temperature,
            rl.top_k,
            stops,
            generator,
            allowed=allowed,
        )
        texts = [tok.decode(o[:-1] if o and o[-1] in stops else o) for o in outs]
        rewards = reward_fn(row, texts)
        groups.append(
            {
                "prompt": pids,
                "completions": outs,
                "texts": texts,
                "rewards": rewards,
                "advantages": group_advantages(rewards, rl.normalize_std),
            }
        )
    return groups


def policy_loss(fwd, groups: list[dict], device) -> tuple[torch.Tensor, int]:
    """-sum(advantage * log p(sampled token)) / sampled tokens, over all groups' completions."""
    seqs, advs = [], []
    for g in groups:
        for comp, a in zip(g["completions"], g["advantages"], strict=True):
            seqs.append((g["prompt"], comp))
            advs.append(a)
    L = max(len(p) + len(c) for p, c in seqs) - 1
    x = torch.zeros((len(seqs), L), dtype=torch.long)
    y = torch.full((len(seqs), L), IGNORE, dtype=torch.long)
    for i, (p, c) in enumerate(seqs):
        ids = torch.tensor(p + c, dtype=torch.long)
        x[i, : len(ids) - 1] = ids[:-1]
        y[i, len(p) - 1 : len(ids) - 1] = ids[len(p) :]
    x, y = x.to(device), y.to(device)
    logits = fwd(x)
    logp = -F.cross_entropy(
        logits.float().view(-1, logits.size(-1)), y.view(-1), ignore_index=IGNORE, reduction="none"
    ).view(y.shape)
    w = torch.tensor(advs, dtype=torch.float32, device=device)[:, None] * (y != IGNORE)
    n = int((y != IGNORE).sum())
    return -(w * logp).sum() / max(1, n), n


@torch.no_grad()
def evaluate_prompts(
    model: GPT,
    tok,
    rows: list[dict],
    rl: RLConfig,
    seed: int,
    allowed: torch.Tensor | None = None,
    reward_fn: Callable[[dict, list[str]], list[float]] = verifier_rewards,
) -> dict:
    """Mean reward and pass@k on ``rows`` (own generator: evaluation never moves training RNG)."""
    gen = torch.Generator(device=model.wte.weight.device).manual_seed(seed)
    groups = rollouts(model, tok, rows, rl, gen, allowed, reward_fn)
    rewards = [g["rewards"] for g in groups]
    return {
        "val_reward": sum(map(sum, rewards)) / max(1, sum(map(len, rewards))),
        f"val_pass@{rl.k}": pass_at_k(rewards),
    }


def rl(
    init: str | Path,
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    rl_cfg: RLConfig,
    resume: bool = False,
    eval_prompts: int = 32,
    overwrite: bool = False,
    reward_model: str | Path | None = None,
) -> dict:
    """RL-train the model of ``init`` on RL prompts (``DIR/train``, optional ``DIR/val``).
    ``cfg.batch_size`` is prompts per step (each sampled ``rl_cfg.k`` times). Rewards come from
    the verifier, or from the reward model run ``reward_model`` when given."""
    env = setup(cfg.device)
    torch.manual_seed(cfg.seed)
    model, state = load_gpt(init, env.device)
    tok = ckpt.tokenizer_from_ref(state["tokenizer"])
    if reward_model is not None:
        from trainer.reward import RewardScorer

        reward_fn = reward_model_rewards(RewardScorer(reward_model, str(env.device)))
        columns = ["prompt"]
    else:
        reward_fn, columns = verifier_rewards, COLUMNS
    rows = read_rows(data, "train", columns)
    if not rows:
        raise ValueError(f"{data}: no RL prompts (expected DIR/train/*.parquet with {columns})")
    val_rows = (read_rows(data, "val", columns) or rows)[:eval_prompts]
    loader = PromptBatches(rows, cfg.batch_size, seed=cfg.seed)
    allowed = allowed_ids(tok, model.cfg.vocab_size).to(env.device)

    def step_fn(fwd, batch):
        groups = rollouts(
            model, tok, batch, rl_cfg, None, allowed, reward_fn
        )  # global RNG: checkpointed
        model.train()
        loss, n = policy_loss(fwd, groups, env.device)
        rewards = [g["rewards"] for g in groups]
        warn_if_no_reward(rewards)
        return loss, {
            "tokens": n,
            "reward": sum(map(sum, rewards)) / sum(map(len, rewards)),
            f"pass@{rl_cfg.k}": pass_at_k(rewards),
        }

    return fit(
        run_dir=out,
        kind="rl",
        cfg=cfg,
        env=env,
        model=model,
        model_cfg=model.cfg,
        data=loader,
        step_fn=step_fn,
        evaluate=lambda m: evaluate_prompts(m, tok, val_rows, rl_cfg, cfg.seed, allowed, reward_fn),
        tokenizer=state["tokenizer"],
        resume=resume,
        overwrite=overwrite,
        extra={
            "init": str(init),
            "data": str(data),
            "rl": rl_cfg.model_dump(),
            "reward": str(reward_model) if reward_model else "verifier",
        },
    )
