"""The `mix` generator: one SFT mixture from the other generators' outputs.

Each input is a conversation dataset (``DIR/data/*.parquet`` or ``DIR/*.parquet``) with an optional
cap on how many conversations it contributes (a seeded sample when capped). The mixture is
deduplicated (by id and by opening prompt), decontaminated against evaluation/RL test prompts
(n-gram overlap with any user turn), shuffled with the seed, and written as
``DIR/train/*.parquet`` + ``DIR/val/*.parquet`` (a small held-out share), the layout
``tokenmill train sft --data DIR`` reads directly.
"""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import Field

from pipelines.io import iter_parquet_rows, parquet_files
from pipelines.synth.common import (
    conversation_stats,
    dedup_conversations,
    read_conversations,
    write_conversations,
    write_stats,
)
from pipelines.synth.decontam import DecontamConfig, NgramIndex
from pipelines.synth.rl import strip_instruction
from schemas.strict import StrictModel


class MixInput(StrictModel):
    path: str
    max_rows: int | None = Field(None, description="cap on conversations taken from this input")


class MixConfig(StrictModel):
    output: str
    inputs: list[MixInput]
    seed: int = 0
    decontaminate: list[str] = Field(
        default_factory=list,
        description="RL/eval prompt dirs (DIR/test/*.parquet or *.parquet with `prompt`)",
    )
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    val_fraction: float = Field(
        0.02, ge=0, lt=1, description="share held out as DIR/val (at least 1 row)"
    )


def _test_prompts(path: str) -> list[str]:
    d = Path(path)
    files = parquet_files(d / "test") if (d / "test").is_dir() else parquet_files(d)
    return [strip_instruction(r["prompt"]) for r in iter_parquet_rows(files, columns=["prompt"])]


def run_mix(cfg: MixConfig) -> dict:
    rng = random.Random(f"mix:{cfg.seed}")
    rows, per_input = [], {}
    for inp in cfg.inputs:
        got = read_conversations(inp.path)
        if inp.max_rows is not None and len(got) > inp.max_rows:
            got = rng.sample(got, inp.max_rows)
        per_input[inp.path] = len(got)
        rows += got
    rows, dropped = dedup_conversations(rows)
    removed = 0
    if cfg.decontaminate:
        index = NgramIndex([p for d in cfg.decontaminate for p in _test_prompts(d)], cfg.decontam)
        kept = [
            r
            for r in rows
            if not any(
                index.contaminated(m["content"]) for m in r["messages"] if m["role"] == "user"
            )
        ]
        removed, rows = len(rows) - len(kept), kept
    rng.shuffle(rows)
    n_val = max(1, round(len(rows) * cfg.val_fraction)) if cfg.val_fraction and len(rows) > 1 else 0
    write_conversations(cfg.output, rows[n_val:], subdir="train")
    write_conversations(cfg.output, rows[:n_val], subdir="val")
    stats = {
        "generator": "mix",
        "seed": cfg.seed,
        **conversation_stats(rows),
        "inputs": per_input,
        "train": len(rows) - n_val,
        "val": n_val,
        "duplicates_dropped": dropped,
        "decontamination": {
            "n": cfg.decontam.n,
            "threshold": cfg.decontam.threshold,
            "against": cfg.decontaminate,
            "removed": removed,
        },
    }
    stats["config"] = cfg.model_dump(mode="json")  # what made this output
    write_stats(Path(cfg.output), stats)
    return stats
