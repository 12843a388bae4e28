"""The `rl` and `prefs` generators: verifiable prompts and preference pairs.

`rl`: word problems, counting and linear equations with a known answer, split into
``DIR/train`` and ``DIR/test`` (RL_PROMPT_SCHEMA) by a hash of the prompt (stable across runs).
Every prompt is self-checked: its worked solution passes ``pipelines.verify.is_correct``. Test
prompts that overlap the training prompts (or other training sets given in ``decontaminate``)
by n-grams are removed and counted in stats.json.

`prefs`: for each prompt, sample answers from an LLM, rank them with the verifier and pair a
correct one (chosen) with an incorrect one (rejected). Without an LLM, the pairs are synthetic:
the worked solution (chosen) against a wrong one (rejected): a slip in an intermediate step
carried to a wrong answer, or a wrong answer blurted out with no work. The rejected answer is
always wrong. (Ranked pairs from people or a judge: ``synth samples`` + ``pipelines.rank``.)
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from pathlib import Path

from pydantic import Field

from pipelines.llm import LLMConfig, make_llm
from pipelines.synth.common import (
    read_conversations,
    stable_id,
    write_rows,
    write_stats,
)
from pipelines.synth.decontam import DecontamConfig, NgramIndex
from pipelines.synth.tasks import problems
from pipelines.verify import format_answer, is_correct
from schemas.conversations import PREFERENCE_SCHEMA, RL_PROMPT_SCHEMA
from schemas.strict import StrictModel

ANSWER_INSTRUCTION = (
    'Show your work, then give the final answer on the last line as "Answer: <value>".'
)


class RLConfig(StrictModel):
    output: str
    seed: int = 0
    word_problems: int = 400
    counting: int = 200
    equations: int = 400
    test_fraction: float = Field(0.1, ge=0, lt=1)
    instruction: str = Field(
        ANSWER_INSTRUCTION, description="appended to every prompt ('' for none)"
    )
    decontaminate: list[str] = Field(
        default_factory=list, description="conversation datasets to check test prompts against"
    )
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)


def _split(prompt: str, test_fraction: float) -> str:
    h = int(hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_fraction else "train"


def strip_instruction(prompt: str, instruction: str = ANSWER_INSTRUCTION) -> str:
    """The problem without the shared answer-format instruction (which every prompt contains and
    which would otherwise make every test prompt look contaminated)."""
    return prompt.replace(instruction, " ").strip() if instruction else prompt


def rl_prompts(cfg: RLConfig) -> list[dict]:
    rows = []
    for kind, n in (
        ("word_problem", cfg.word_problems),
        ("counting", cfg.counting),
        ("equation", cfg.equations),
    ):
        for p in problems(kind, n, cfg.seed, namespace="rl:"):
            if not is_correct(p.solution, p.answer):
                raise AssertionError(f"self-check failed: {p.prompt!r}")
            prompt = f"{p.prompt} {cfg.instruction}".strip()
            rows.append(
                {
                    "id": stable_id("rl", prompt),
                    "prompt": prompt,
                    "answer": p.answer,
                    "kind": p.kind,
                    "source": "synthetic:tasks",
                    "solution": p.solution,
                }
            )
    return rows


def run_rl(cfg: RLConfig) -> dict:
    rows = rl_prompts(cfg)
    seen, unique = set(), []
    for r in rows:
        if r["prompt"] not in seen:
            seen.add(r["prompt"])
            unique.append(r)
    train = [r for r in unique if _split(r["prompt"], cfg.test_fraction) == "train"]
    test = [r for r in unique if _split(r["prompt"], cfg.test_fraction) == "test"]
    reference = [r["prompt"] for r in train]
    for d in cfg.decontaminate:
        reference += ["\n".join(m["content"] for m in c["messages"]) for c in read_conversations(d)]
    index = NgramIndex([strip_instruction(t, cfg.instruction) for t in reference], cfg.decontam)
    clean = [
        r for r in test if not index.contaminated(strip_instruction(r["prompt"], cfg.instruction))
    ]
    out = Path(cfg.output)
    write_rows(out / "train" / "part-00000.parquet", train, RL_PROMPT_SCHEMA)
    write_rows(out / "test" / "part-00000.parquet", clean, RL_PROMPT_SCHEMA)
    stats = {
        "generator": "rl",
        "seed": cfg.seed,
        "prompts": len(rows),
        "duplicates_dropped": len(rows) - len(unique),
        "train": len(train),
        "test": len(clean),
        "by_kind": {
            "train": dict(Counter(r["kind"] for r in train)),
            "test": dict(Counter(r["kind"] for r in clean)),
        },
        "decontamination": {
            "n": cfg.decontam.n,
            "threshold": cfg.decontam.threshold,
            "against": ["train", *cfg.decontaminate],
            "test_removed": len(test) - len(clean),
        },
    }
    stats["config"] = cfg.model_dump(mode="json")  # what made this output
    write_stats(out, stats)
    return stats


class PrefsConfig(StrictModel):
    output: str
    prompts: str | None = Field(
        None, description="an `rl` output dir (uses its train split); default: fresh prompts"
    )
    seed: int = 0
    n_prompts: int = 300
    samples: int = Field(4, ge=2, description="answers sampled per prompt (LLM mode)")
    temperature: float = 0.9
    max_tokens: int = 256
    llm: LLMConfig | None = Field(None, description="policy to sample from; None = synthetic pairs")


def _corrupt(row: dict, rng: random.Random) -> tuple[str, str]:
    """A rejected response that is WRONG (never a correct answer in another format) and differs
    from the chosen one in its work, not only in the last line: either a wrong answer blurted out
    with no work, or the work up to a step with a slip, whose wrong number is then reported as the
    answer (the work after the slip is missing). Returns (text, corruption kind)."""
    wrong = _wrong(row["answer"], rng)
    steps = row["solution"].splitlines()[:-1]
    slippable = [i for i, line in enumerate(steps) if re.search(r"\d", line)]
    if rng.random() < 0.4 or not slippable:
        return format_answer(wrong), "no_work_wrong_answer"
    k = rng.choice(slippable)
    last = list(re.finditer(r"-?\d+", steps[k]))[-1]
    value = _wrong(last.group(0), rng)
    if is_correct(format_answer(value), row["answer"]):
        value = _wrong(value, rng)
    slipped = steps[k][: last.start()] + value + steps[k][last.end() :]
    # the slipped number is taken as the result: the work stops there and reports it
    return "\n".join(steps[:k] + [slipped, format_answer(value)]), "slip_in_step"


def _wrong(answer: str, rng: random.Random) -> str:
    try:
        v = int(answer)
    except ValueError:
        return answer[::-1] if answer[::-1] != answer else answer + "x"
    return str(v + rng.choice([-10, -2, -1, 1, 2, 10]))


def run_prefs(cfg: PrefsConfig) -> dict:
    from pipelines.io import iter_parquet_rows, parquet_files

    if cfg.prompts and cfg.llm is None:
        raise ValueError(
            "synthetic pairs need worked solutions: omit `prompts` (fresh prompts) or give an `llm`"
        )
    if cfg.prompts:
        rows = list(iter_parquet_rows(parquet_files(Path(cfg.prompts) / "train")))[: cfg.n_prompts]
        for r in rows:
            r.setdefault("solution", None)
    else:
        per = max(1, cfg.n_prompts // 3)
        rows = rl_prompts(
            RLConfig(
                output=cfg.output,
                seed=cfg.seed,
                word_problems=per,
                counting=per,
                equations=cfg.n_prompts - 2 * per,
            )
        )
    rng = random.Random(f"prefs:{cfg.seed}")
    pairs, figures = [], {"prompts": len(rows)}
    if cfg.llm is None:
        for r in rows:
            if not r.get("solution"):
                continue
            rejected, how = _corrupt(r, rng)
            assert is_correct(r["solution"], r["answer"]) and not is_correct(rejected, r["answer"])
            pairs.append(
                {
                    "id": stable_id("prefs", r["prompt"]),
                    "prompt": r["prompt"],
                    "chosen": r["solution"],
                    "rejected": rejected,
                    "source": f"synthetic:{how}",
                }
            )
        figures["mode"] = "synthetic"
        figures["corruptions"] = dict(sorted(Counter(p["source"] for p in pairs).items()))
    else:
        llm = make_llm(cfg.llm)
        samples = llm.sample(
            [[{"role": "user", "content": r["prompt"]}] for r in rows],
            n=cfg.samples,
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
            seed=cfg.seed,
        )
        all_right = all_wrong = 0
        for r, outs in zip(rows, samples, strict=True):
            good = [o for o in outs if is_correct(o, r["answer"])]
            bad = [o for o in outs if not is_correct(o, r["answer"])]
            if not good:
                all_wrong += 1
                continue
            if not bad:
                all_right += 1
                continue
            pairs.append(
                {
                    "id": stable_id("prefs", r["prompt"], good[0], bad[0]),
                    "prompt": r["prompt"],
                    "chosen": good[0],
                    "rejected": bad[0],
                    "source": "sampled:verifier",
                }
            )
        n = sum(len(s) for s in samples)
        figures.update(
            {
                "mode": "sampled",
                "samples": n,
                "sample_accuracy": round(
                    sum(
                        is_correct(o, r["answer"])
                        for r, outs in zip(rows, samples, strict=True)
                        for o in outs
                    )
                    / n,
                    4,
                )
                if n
                else 0,
                "prompts_all_correct": all_right,
                "prompts_all_wrong": all_wrong,
                "llm_requests": llm.requests,
            }
        )
    write_rows(Path(cfg.output) / "train" / "part-00000.parquet", pairs, PREFERENCE_SCHEMA)
    stats = {"generator": "prefs", "seed": cfg.seed, "pairs": len(pairs), **figures}
    stats["config"] = cfg.model_dump(mode="json")  # what made this output
    write_stats(Path(cfg.output), stats)
    return stats
