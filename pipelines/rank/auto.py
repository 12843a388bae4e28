"""Automatic rankers: the verifier (prompts with a checkable answer) and an LLM judge.

* verifier: correct responses (``pipelines.verify.is_correct``) in one group above the incorrect
  ones; a set whose responses are all right or all wrong implies no preference (one group).
* LLM judge, pairwise and position-swapped: every pair (i, j) is shown twice, i first then j
  first, and the judge names the better of "Response A"/"Response B". A response wins a pair only
  when the judge prefers it in BOTH orders (position bias cancels out); an inconsistent verdict
  is a tie. Responses are grouped by wins, most wins first.
"""

from __future__ import annotations

import itertools
import re

from pipelines.llm import request_seeds
from pipelines.verify import is_correct

JUDGE_PROMPT = (
    "You compare two responses to the same user prompt. Judge helpfulness, correctness and "
    "clarity.\n\nPrompt:\n{prompt}\n\nResponse A:\n{a}\n\nResponse B:\n{b}\n\n"
    'Which response is better? Reply with exactly "A" or "B".'
)
_VERDICT = re.compile(r"\b(A|B)\b")


def verifier_ranking(s: dict) -> list[list[str]]:
    """[[correct ids], [incorrect ids]] (empty groups left out)."""
    if s.get("answer") is None:
        raise ValueError(
            f"set {s['id']}: no reference answer: the verifier cannot rank it (use the judge)"
        )
    good = [r["id"] for r in s["responses"] if is_correct(r["text"], s["answer"])]
    bad = [r["id"] for r in s["responses"] if not is_correct(r["text"], s["answer"])]
    return [g for g in (good, bad) if g]


def parse_verdict(text: str) -> str | None:
    m = _VERDICT.search((text or "").strip().upper()[:20])
    return m.group(1) if m else None


def judge_rankings(llm, sets: list[dict], seed: int = 0) -> tuple[list[list[list[str]]], dict]:
    """Position-swapped pairwise judging of every set; returns (rankings, figures)."""
    jobs, prompts = [], []
    for si, s in enumerate(sets):
        for i, j in itertools.combinations(range(len(s["responses"])), 2):
            ri, rj = s["responses"][i]["text"], s["responses"][j]["text"]
            jobs.append((si, i, j))
            prompts.append(
                [{"role": "user", "content": JUDGE_PROMPT.format(prompt=s["prompt"], a=ri, b=rj)}]
            )
            prompts.append(
                [{"role": "user", "content": JUDGE_PROMPT.format(prompt=s["prompt"], a=rj, b=ri)}]
            )
    verdicts = llm.chat(
        prompts, temperature=0.0, max_tokens=4, seed=request_seeds(seed, len(prompts), "judge")
    )
    wins = [[0.0] * len(s["responses"]) for s in sets]
    fig = {"comparisons": len(jobs), "consistent": 0, "position_flips": 0, "unparsed": 0}
    for (si, i, j), first, second in zip(jobs, verdicts[0::2], verdicts[1::2], strict=True):
        v1, v2 = parse_verdict(first), parse_verdict(second)
        if v1 is None or v2 is None:
            fig["unparsed"] += 1
            wins[si][i] += 0.5
            wins[si][j] += 0.5
        elif v1 == "A" and v2 == "B":
            wins[si][i] += 1
            fig["consistent"] += 1
        elif v1 == "B" and v2 == "A":
            wins[si][j] += 1
            fig["consistent"] += 1
        else:  # the judge picked the same position both times: position bias, no preference
            fig["position_flips"] += 1
            wins[si][i] += 0.5
            wins[si][j] += 0.5
    out = []
    for s, w in zip(sets, wins, strict=True):
        groups: dict[float, list[str]] = {}
        for r, score in zip(s["responses"], w, strict=True):
            groups.setdefault(score, []).append(r["id"])
        out.append([groups[k] for k in sorted(groups, reverse=True)])
    return out, fig
