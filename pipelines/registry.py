"""The one list of corpus stages: everything that needs "which stages exist" reads it.

Each stage is declared once, here: its name, what it does (one line), its kind (a per-document
pass run shard by shard, or a whole-corpus pass such as dedup or tokenize), its config model
(a field of ``FinewebConfig`` for per-document stages, its own model otherwise), how to build its
steps, the removal reasons it can record, and the command-line overrides that apply to it.
``pipelines.fineweb.build_stage_steps``, the stage flows in ``flows/fineweb.py``, the CLI stage
commands, the dataset card and the generated ``prefect.yaml`` all read this list, so adding a
stage is one ``Stage(...)`` entry (plus its module).

Why builders are import paths (``"pipelines.langid:LangIdStep"``) rather than classes: importing
this module must stay cheap (the CLI reads it to build ``--help``), and a stage's module may pull
in heavy libraries (trafilatura, fastText) that only a run needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from pipelines.base import Step
from schemas.config import (
    ClassifyConfig,
    DecontaminateConfig,
    DedupConfig,
    ExactDedupConfig,
    ExtractConfig,
    FinewebConfig,
    LangIdConfig,
    LineDedupConfig,
    PIIConfig,
    QualityConfig,
    ReadConfig,
    TokenizeConfig,
    URLFilterConfig,
)

Kind = Literal["document", "corpus"]


@dataclass(frozen=True)
class Stage:
    """One corpus stage. ``build`` is ``"module:callable"`` taking the stage's config and
    returning a Step or a list of Steps (None for ``read``, which is the source, not a step)."""

    name: str
    description: str
    kind: Kind
    config_model: type[BaseModel]
    #: the field of FinewebConfig holding this stage's config (per-document stages)
    config_field: str | None = None
    build: str | None = None
    #: removal reasons this stage records (``<prefix>:<reason>``); empty: it never removes
    reasons: tuple[str, ...] = ()
    #: command-line overrides (names of ``flows.cli_fineweb.OVERRIDES``) that act on this stage
    options: tuple[str, ...] = ()
    #: Prefect flow entrypoint (relative to the repository root) for corpus stages
    entrypoint: str | None = None
    #: part of the default event chain of prefect.yaml deployments (False: an optional stage
    #: run on demand, e.g. one that needs a model or eval files the chain cannot supply)
    chained: bool = True

    @property
    def flow_name(self) -> str:
        """The Prefect flow name of this stage alone."""
        return f"stage-{self.name}" if self.kind == "document" else self.name

    def steps(self, config: FinewebConfig) -> list[Step]:
        """Build this stage's steps from the whole-pass config (per-document stages only)."""
        if self.build is None or self.config_field is None:
            return []
        module, _, attr = self.build.partition(":")
        builder: Callable = getattr(importlib.import_module(module), attr)
        made = builder(getattr(config, self.config_field))
        return list(made) if isinstance(made, (list, tuple)) else [made]


STAGES: tuple[Stage, ...] = (
    Stage(
        "read",
        "WARC response records with an HTML content type become documents (URL, date, record id).",
        "document",
        ReadConfig,
        "read",
        reasons=("read:too_large", "read:not_html", "read:corrupt_record", "read:undecodable"),
        options=("max_bytes", "payload_type", "limit"),
    ),
    Stage(
        "urlfilter",
        "Domain, subdomain and URL blocklists and banned words in the URL (datatrove's lists).",
        "document",
        URLFilterConfig,
        "urlfilter",
        "pipelines.urlfilter:URLFilterStep",
        reasons=(
            "url:missing_url",
            "url:domain",
            "url:subdomain",
            "url:url",
            "url:banned_word",
            "url:soft_banned_word",
            "url:banned_subword",
        ),
        options=("limit",),
    ),
    Stage(
        "extract",
        "Main text extracted with trafilatura (precision-favoured, comments "
        "excluded, per-page time limit).",
        "document",
        ExtractConfig,
        "extract",
        "pipelines.extract:ExtractStep",
        reasons=("extract:empty", "extract:timeout", "extract:error"),
        options=("extract_timeout", "limit"),
    ),
    Stage(
        "langid",
        "fastText lid.176 language identification; documents outside the kept "
        "languages or below the score threshold are removed.",
        "document",
        LangIdConfig,
        "langid",
        "pipelines.langid:LangIdStep",
        reasons=(
            "langid:below_threshold",
            "langid:not_in_languages",
            "langid:prescreen_not_in_languages",
        ),
        options=("languages", "limit", "no_prescreen", "by_language"),
    ),
    Stage(
        "quality",
        "Gopher repetition, Gopher quality, C4 and FineWeb quality filters with the "
        "published thresholds.",
        "document",
        QualityConfig,
        "quality",
        "pipelines.quality:build_quality_steps",
        reasons=("quality:<filter reason>",),
        options=("limit",),
    ),
    Stage(
        "pii",
        "Email addresses and public IP addresses replaced by placeholders.",
        "document",
        PIIConfig,
        "pii",
        "pipelines.pii:PIIStep",
        options=("limit",),
    ),
    Stage(
        "exact_dedup",
        "Exact duplicates removed: older fetches of the same normalized URL, then "
        "copies of the same normalized text (smallest id kept).",
        "corpus",
        ExactDedupConfig,
        reasons=("exact_dedup:url", "exact_dedup:text"),
        entrypoint="flows/corpus_stages.py:exact_dedup_flow",
        chained=False,
    ),
    Stage(
        "dedup",
        "MinHash near-duplicate removal (5-gram word shingles, 14 bands x 8 rows); "
        "one document per cluster kept.",
        "corpus",
        DedupConfig,
        reasons=("dedup:minhash",),
        entrypoint="flows/dedup.py:dedup_flow",
    ),
    Stage(
        "line_dedup",
        "Lines repeated across more than N documents (boilerplate) removed from "
        "every document, as CCNet / dolma; documents left too short removed.",
        "corpus",
        LineDedupConfig,
        reasons=("line_dedup:too_little_text",),
        entrypoint="flows/corpus_stages.py:line_dedup_flow",
        chained=False,
    ),
    Stage(
        "decontaminate",
        "Documents sharing word 13-gram spans with evaluation sets removed; "
        "the benchmark items hit are reported.",
        "corpus",
        DecontaminateConfig,
        reasons=("decontaminate:ngram_overlap",),
        entrypoint="flows/corpus_stages.py:decontaminate_flow",
        chained=False,
    ),
    Stage(
        "classify",
        "Model-based quality score (0-5, FineWeb-Edu style) on every document; "
        "documents below the threshold removed.",
        "corpus",
        ClassifyConfig,
        reasons=("classify:below_threshold",),
        entrypoint="flows/corpus_stages.py:classify_flow",
        chained=False,
    ),
    Stage(
        "tokenize",
        "Documents tokenized into shuffled Parquet token shards with a train/validation split.",
        "corpus",
        TokenizeConfig,
        entrypoint="flows/tokenize_flow.py:tokenize_flow",
    ),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
#: the per-document stages, in pipeline order (the FineWeb pass)
DOCUMENT_STAGES: list[str] = [s.name for s in STAGES if s.kind == "document"]
#: every stage in pipeline order (per-document stages, then the whole-corpus passes)
STAGE_ORDER: list[str] = [s.name for s in STAGES]


def get(name: str) -> Stage:
    """The stage called ``name``; a clear error naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGE_ORDER)}") from None
