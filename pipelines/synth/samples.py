"""The `samples` generator: k responses per prompt, the raw material of preference data.

The seed material's RLHF starts here: sample several responses to one prompt from the policy,
then have them ranked (people are better at judging than at writing: the discriminator-generator
gap), by the verifier when the prompt has a checkable answer, or by an LLM judge
(``pipelines.rank``). Prompts come from any dataset with a ``prompt`` column (an ``rl`` output's
train split; its ``answer`` column is kept for the verifier) or a conversation dataset (its first
user turn). Each response has its own seed, so k responses are k draws, not k copies.

Output: ``DIR/data/part-00000.parquet`` (SAMPLES_SCHEMA) and ``DIR/stats.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field

from pipelines.io import iter_parquet_rows, parquet_files
from pipelines.llm import LLMConfig, make_llm, request_seeds
from pipelines.synth.common import first_user, stable_id, write_rows, write_stats
from schemas.conversations import SAMPLES_SCHEMA
from schemas.strict import StrictModel


class SamplesConfig(StrictModel):
    output: str
    prompts: str = Field(description="dir with a `prompt` column (rl output) or conversations")
    llm: LLMConfig = Field(description="the policy to sample from (endpoint or local checkpoint)")
    k: int = Field(5, ge=2, le=16, description="responses per prompt")
    n_prompts: int | None = Field(None, ge=1, description="use the first N prompts (None: all)")
    seed: int = 0
    temperature: float = Field(
        1.0, gt=0, description="sampling temperature (> 0: k different responses)"
    )
    max_tokens: int = Field(256, ge=1)


def prompt_files(directory: str | Path) -> list[Path]:
    """Parquet files of a prompts dataset: ``train/`` (rl), ``data/`` (generators) or the dir."""
    d = Path(directory)
    for sub in ("train", "data", "."):
        files = parquet_files(d / sub) if (d / sub).is_dir() else []
        if files:
            return files
    raise FileNotFoundError(
        f"{directory}: no Parquet files under train/, data/ or the directory itself"
    )


def load_prompts(directory: str | Path, limit: int | None = None) -> list[dict]:
    """{prompt, answer} rows from an rl/prompts dataset or a conversation dataset."""
    out = []
    for row in iter_parquet_rows(prompt_files(directory)):
        if "prompt" in row:
            prompt, answer = row["prompt"], row.get("answer")
        elif "messages" in row:
            prompt, answer = first_user(row["messages"]), None
        else:
            raise ValueError(f"{directory}: rows need a `prompt` or a `messages` column")
        if prompt and prompt.strip():
            out.append({"prompt": prompt, "answer": None if answer is None else str(answer)})
        if limit and len(out) >= limit:
            break
    return out


def run_samples(cfg: SamplesConfig) -> dict:
    prompts = load_prompts(cfg.prompts, cfg.n_prompts)
    if not prompts:
        raise ValueError(f"{cfg.prompts}: no prompts")
    llm = make_llm(cfg.llm)
    seeds = request_seeds(cfg.seed, len(prompts) * cfg.k, "samples")
    convs = [[{"role": "user", "content": p["prompt"]}] for p in prompts for _ in range(cfg.k)]
    texts = llm.chat(convs, temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seeds)
    source = (
        f"checkpoint:{cfg.llm.checkpoint}"
        if cfg.llm.backend == "local"
        else f"endpoint:{cfg.llm.base_url}#{cfg.llm.model}"
    )
    rows, identical, empty = [], 0, 0
    for i, p in enumerate(prompts):
        outs = [t.strip() for t in texts[i * cfg.k : (i + 1) * cfg.k]]
        empty += sum(not t for t in outs)
        # the id names everything that made the responses: other settings, other set
        set_id = stable_id(
            "samples", p["prompt"], source, cfg.seed, cfg.k, cfg.temperature, cfg.max_tokens
        )
        responses = [{"id": f"{set_id}-{j}", "text": t} for j, t in enumerate(outs)]
        identical += len(set(outs)) < len(outs)
        rows.append(
            {
                "id": set_id,
                "prompt": p["prompt"],
                "answer": p["answer"],
                "responses": responses,
                "source": source,
                "meta": json.dumps(
                    {
                        "k": cfg.k,
                        "temperature": cfg.temperature,
                        "max_tokens": cfg.max_tokens,
                        "seed": cfg.seed,
                    }
                ),
            }
        )
    write_rows(Path(cfg.output) / "data" / "part-00000.parquet", rows, SAMPLES_SCHEMA)
    if identical:
        print(
            f"warning: {identical} of {len(rows)} prompts got some identical responses "
            "(rankings treat identical texts as ties)",
            file=sys.stderr,
        )
    stats = {
        "generator": "samples",
        "seed": cfg.seed,
        "prompts": len(rows),
        "k": cfg.k,
        "responses": len(rows) * cfg.k,
        "empty_responses": empty,
        "prompts_with_identical_responses": identical,
        "llm_requests": llm.requests,
        "llm_cache_hits": llm.cache_hits,
        "source": source,
        "config": cfg.model_dump(mode="json"),
    }
    write_stats(Path(cfg.output), stats)
    return stats


def read_samples(directory: str | Path) -> list[dict]:
    """Rows of a `samples` output (SAMPLES_SCHEMA)."""
    files = parquet_files(Path(directory) / "data")
    if not files:
        raise FileNotFoundError(
            f"{directory}: no data/*.parquet (make it with `tokenmill synth samples`)"
        )
    return list(iter_parquet_rows(files))
