"""Best-of-n sampling: draw n replies from the policy, keep the one the reward model scores
highest (the simplest way to spend a reward model at inference, and a check that it prefers what
people preferred). Each draw has its own seed, so n draws are n different replies."""

from __future__ import annotations

from trainer.reward import RewardScorer


def best_of_n(
    lm,
    scorer: RewardScorer,
    prompt: str,
    n: int,
    max_tokens: int = 128,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> dict:
    """{"best": reply, "best_index": i, "replies": [...], "scores": [...]} for a user ``prompt``."""
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1, not {n}")
    if n > 1 and temperature <= 0:
        raise ValueError(
            "best-of-n with temperature 0 draws the same greedy reply n times: give --temperature > 0"
        )
    messages = [{"role": "user", "content": prompt}]
    replies = [
        lm.chat(
            messages, max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed + i
        )
        for i in range(n)
    ]
    scores = scorer.score(prompt, replies)
    best = max(range(n), key=lambda i: (scores[i], -i))
    return {
        "best": replies[best],
        "best_index": best,
        "replies": replies,
        "scores": scores,
        "reward_model": scorer.path,
    }
