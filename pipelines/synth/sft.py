"""The `sft` generator: identity, step-by-step tasks, imports and LLM-generated conversations.

Output: ``DIR/data/part-*.parquet`` (conversation schema) and ``DIR/stats.json``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from pydantic import Field

from pipelines.llm import LLMConfig, make_llm
from pipelines.synth.common import (
    conversation,
    conversation_stats,
    dedup_conversations,
    write_conversations,
    write_stats,
)
from pipelines.synth.generated import GeneratedConfig
from pipelines.synth.identity import ModelCard, identity_conversations, max_identity_conversations
from pipelines.synth.imports import IMPORTERS
from pipelines.synth.tasks import problems
from schemas.strict import StrictModel


class ImportSpec(StrictModel):
    format: str = Field(description="openai | sharegpt | oasst")
    path: str


class SFTConfig(StrictModel):
    """Counts per family (0 disables it). Defaults make a small, balanced set in seconds."""

    output: str
    seed: int = 0
    model_card: ModelCard = Field(default_factory=ModelCard)
    identity: int = Field(200, description="identity conversations")
    arithmetic: int = Field(
        300, description="multi-digit addition/multiplication with worked steps"
    )
    counting: int = Field(300, description="letter counting, letter by letter")
    spelling: int = Field(200, description="spelling forwards/backwards")
    max_digits: int = Field(4, description="largest operand size of arithmetic tasks")
    imports: list[ImportSpec] = Field(default_factory=list)
    generated: int = Field(0, description="LLM-generated conversations (needs `llm`)")
    generation: GeneratedConfig = Field(
        default_factory=GeneratedConfig,
        description="variation, follow-ups and near-duplicate settings",
    )
    topics: list[str] = Field(
        default_factory=list, description="seed topics for generated conversations"
    )
    documents: str | None = Field(
        None, description="corpus dir: generated conversations from its documents"
    )
    documents_limit: int = 200
    llm: LLMConfig | None = None


def warn(message: str) -> None:
    """Shortfalls and skipped input are reported on stderr as well as in stats.json."""
    print(f"warning: {message}", file=sys.stderr)


def task_conversations(kind: str, n: int, seed: int) -> list[dict]:
    out = []
    for p in problems(kind, n, seed):
        msgs = [{"role": "user", "content": p.prompt}, {"role": "assistant", "content": p.solution}]
        out.append(conversation(msgs, p.kind, "synthetic:tasks", meta={"answer": p.answer}))
    return out


def run_sft(cfg: SFTConfig) -> dict:
    rows: list[dict] = []
    figures: dict = {"imports": {}}
    identity = identity_conversations(cfg.model_card, cfg.identity, cfg.seed)
    figures["identity"] = {
        "requested": cfg.identity,
        "generated": len(identity),
        "maximum": max_identity_conversations(),
    }
    if len(identity) < cfg.identity:
        warn(
            f"identity: {cfg.identity} requested but the question bank makes at most "
            f"{max_identity_conversations()} distinct conversations; wrote {len(identity)}"
        )
    rows += identity
    for kind in ("arithmetic", "counting", "spelling"):
        rows += task_conversations(kind, getattr(cfg, kind), cfg.seed)
    for spec in cfg.imports:
        got, report = IMPORTERS[spec.format](spec.path)
        rows += got
        figures["imports"][spec.path] = {
            "format": spec.format,
            "read": report.read,
            "imported": report.imported,
            "skipped": dict(report.skipped),
            "errors": report.errors,
        }
        for err in report.errors:
            warn(f"import skipped {err}")
    if cfg.generated:
        if cfg.llm is None:
            raise ValueError("`generated` conversations need an LLM (llm config)")
        from pipelines.synth.generated import generate_conversations
        from pipelines.synth.qa import load_documents

        docs = load_documents(cfg.documents, cfg.documents_limit) if cfg.documents else None
        llm = make_llm(cfg.llm)
        got, figures["generated"] = generate_conversations(
            llm, cfg.generated, cfg.seed, cfg.topics, docs, cfg.generation
        )
        figures["generated"]["llm_requests"] = llm.requests
        g = figures["generated"]
        if g["shortfall"]:
            warn(
                f"generated: {g['generated']} of {g['requested']} conversations after {g['rounds']} rounds "
                f"({g['duplicate_questions']} duplicate questions, {g['empty_questions']} empty questions, "
                f"{g['empty_answers']} empty answers); raise generation.max_rounds or vary the topics"
            )
        rows += got
    rows, dropped = dedup_conversations(rows)
    # every family's count against what was asked: a shortfall is reported, never silent
    kept = Counter(r["kind"] for r in rows)
    asked = {
        "identity": cfg.identity,
        "arithmetic": cfg.arithmetic,
        "counting": cfg.counting,
        "spelling": cfg.spelling,
        "generated": cfg.generated,
    }
    shortfall = {k: n - kept.get(k, 0) for k, n in asked.items() if n and kept.get(k, 0) < n}
    for k, missing in shortfall.items():
        if k not in ("identity", "generated"):  # those two warned above, with their reasons
            warn(
                f"{k}: {asked[k] - missing} of {asked[k]} requested (the problem space or dedup ran out)"
            )
    write_conversations(cfg.output, rows)
    stats = {
        "generator": "sft",
        "seed": cfg.seed,
        **conversation_stats(rows),
        "duplicates_dropped": dropped,
        "requested": asked,
        "shortfall": shortfall,
        **figures,
    }
    stats["config"] = cfg.model_dump(mode="json")  # what made this output
    write_stats(Path(cfg.output), stats)
    return stats
