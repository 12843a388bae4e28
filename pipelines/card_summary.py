"""What a tokenmill dataset holds, read from its output directory (the card and the plots say it).

Everything is found from the outputs themselves, never from what the run was asked to do: the
Parquet files give configs, splits, row counts, byte sizes and features; ``stats.json`` (and
``run.json`` next to it) gives what every stage removed and why and the configuration the run
used; ``manifest.json`` names the tokenizer. Each directory of Parquet files is classified by its
schema (documents / removed / token shards / conversations / preference pairs / RL prompts), so a
single stage's output, a whole corpus pipeline and a synthesis run are all recognised.

``summarize`` builds a ``DatasetSummary`` once; ``pipelines.card`` renders it as a dataset card
and ``pipelines.plots`` draws it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import registry
from schemas.tokens import TokenManifest

#: Directory names that are splits rather than configs.
SPLIT_DIRS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
#: Later stages first: the first documents directory matching one of these is the final corpus.
FINAL_STAGE_PRIORITY = [
    "tokenize",
    "pii",
    "dedup",
    "fineweb",
    "quality",
    "langid",
    "extract",
    "urlfilter",
    "read",
]
#: Pipeline order used to sort stage statistics in the card.
STAGE_ORDER = registry.STAGE_ORDER
#: Values gathered for histograms are capped so a huge corpus does not fill memory.
MAX_HIST_VALUES = 1_000_000

KINDS = ("documents", "removed", "tokens", "conversations", "preferences", "rl_prompts")
CORPUS_KINDS = {"documents", "removed", "tokens"}


def classify_schema(schema: pa.Schema) -> str | None:
    """Which of our datasets a Parquet schema belongs to (None: not one of ours)."""
    names = set(schema.names)
    if "input_ids" in names:
        return "tokens"
    if "messages" in names:
        return "conversations"
    if {"chosen", "rejected"} <= names:
        return "preferences"
    if {"prompt", "answer"} <= names:
        return "rl_prompts"
    if {"text", "reason"} <= names:
        return "removed"
    if {"text", "url"} <= names:
        return "documents"
    return None


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


@dataclass
class DataGroup:
    """One directory of Parquet files with one schema: a split of a config."""

    kind: str
    directory: Path
    rel: str  # directory relative to the dataset root, posix ("." for the root)
    files: list[Path]
    schema: pa.Schema
    num_rows: int = 0
    num_bytes: int = 0  # uncompressed (Arrow) size, what the Hub calls num_bytes
    download_size: int = 0  # Parquet bytes on disk
    empty_files: list[Path] = field(default_factory=list)  # 0-row files, left out of the configs

    @property
    def glob(self) -> str:
        return "*.parquet" if self.rel == "." else f"{self.rel}/*.parquet"

    @property
    def data_paths(self) -> list[str]:
        """Paths for the card's data_files: the directory glob, or the files one by one when the
        directory also holds 0-row files (``datasets`` 5.2 fails on those: ArrowInvalid
        "BatchSize must be greater than 0")."""
        if not self.empty_files:
            return [self.glob]
        prefix = "" if self.rel == "." else f"{self.rel}/"
        return [f"{prefix}{f.name}" for f in self.files]


@dataclass
class ConfigSpec:
    name: str
    kind: str
    splits: dict[str, list[DataGroup]]
    default: bool = False

    @property
    def num_rows(self) -> int:
        return sum(g.num_rows for gs in self.splits.values() for g in gs)

    @property
    def files(self) -> list[Path]:
        return [f for gs in self.splits.values() for g in gs for f in g.files]


def scan_groups(root: Path) -> list[DataGroup]:
    """Every directory under ``root`` holding Parquet files, classified by schema."""
    root = Path(root)
    by_dir: dict[Path, list[Path]] = {}
    for f in sorted(root.rglob("*.parquet")):
        if f.is_file() and _visible(f, root):
            by_dir.setdefault(f.parent, []).append(f)
    groups = []
    for d, files in sorted(by_dir.items()):
        schema = pq.read_schema(files[0])
        kind = classify_schema(schema)
        if kind is None:
            continue
        g = DataGroup(kind, d, d.relative_to(root).as_posix() or ".", [], schema)
        for f in files:
            md = pq.ParquetFile(f).metadata
            if md.num_rows == 0:
                g.empty_files.append(f)
                continue
            g.files.append(f)
            g.num_rows += md.num_rows
            g.num_bytes += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
            g.download_size += f.stat().st_size
        if g.files:
            groups.append(g)
    return groups


def _final_documents(groups: list[DataGroup]) -> DataGroup | None:
    docs = [g for g in groups if g.kind == "documents"]
    if len(docs) <= 1:
        return docs[0] if docs else None
    for stage in FINAL_STAGE_PRIORITY:
        for g in docs:
            if stage in g.rel.split("/"):
                return g
    return max(docs, key=lambda g: g.rel)


def _config_name(rel: str, kind: str) -> str:
    parts = [p for p in rel.split("/") if p not in (".", "data", "documents", *SPLIT_DIRS)]
    name = re.sub(r"[^A-Za-z0-9_]+", "_", "_".join(parts)).strip("_")
    return name or kind


def plan_configs(groups: list[DataGroup], include_removed: bool = False) -> list[ConfigSpec]:
    """Hub configs: the final documents, token shards, synthesis sets, and with
    ``include_removed`` all removed documents (opt-in: they hold rejected pages; what a push
    uploads of them is reduced to extracted, PII-scrubbed text, see ``public_removed``)."""
    configs: list[ConfigSpec] = []
    final = _final_documents(groups)
    if final is not None:
        configs.append(ConfigSpec("documents", "documents", {"train": [final]}))
    removed = [g for g in groups if g.kind == "removed"]
    if removed and include_removed:
        configs.append(ConfigSpec("removed", "removed", {"train": removed}))
    by_name: dict[str, ConfigSpec] = {}
    for g in groups:
        if g.kind in ("documents", "removed"):
            continue
        leaf = g.rel.split("/")[-1]
        split = SPLIT_DIRS.get(leaf, "train")
        parent = (
            g.rel.rsplit("/", 1)[0]
            if leaf in SPLIT_DIRS and "/" in g.rel
            else ("." if leaf in SPLIT_DIRS else g.rel)
        )
        name = (
            "tokens"
            if g.kind == "tokens" and parent in (".", "tokenize")
            else _config_name(parent, g.kind)
        )
        key = f"{g.kind}:{name}"
        spec = by_name.get(key)
        if spec is None:
            taken = {c.name for c in configs}
            unique, i = name, 2
            while unique in taken:
                unique, i = f"{name}_{i}", i + 1
            spec = by_name[key] = ConfigSpec(unique, g.kind, {})
            configs.append(spec)
        spec.splits.setdefault(split, []).append(g)
    for c in configs:  # train first, then validation, test
        c.splits = dict(
            sorted(c.splits.items(), key=lambda kv: ("train", "validation", "test").index(kv[0]))
        )
    if configs:
        configs[0].default = True
    return configs


# ---------------------------------------------------------------- statistics from the outputs


def load_stats(root: Path) -> tuple[dict[str, dict], dict[str, Any]]:
    """Stage statistics from every stats.json under ``root`` (the root's own first), and the
    run configuration recorded next to them: ``run.json``'s effective config (what the run
    really used), else a ``config`` key of stats.json, if any."""
    root = Path(root)
    files = [root / "stats.json"] if (root / "stats.json").is_file() else []
    files += [
        p
        for p in sorted(root.rglob("stats.json"))
        if p != root / "stats.json" and _visible(p, root)
    ]
    stages: dict[str, dict] = {}
    config: dict[str, Any] = {}
    for p in files:
        payload = json.loads(p.read_text())
        if "stages" not in payload and "generator" in payload:  # a synthesis generator's stats
            rel = p.parent.relative_to(root).as_posix()
            config.setdefault(f"generator:{rel}", payload)
            continue
        for name, st in (payload.get("stages") or {}).items():
            stages.setdefault(name, st)
        cfg = payload.get("config")
        run_file = p.parent / "run.json"
        if run_file.is_file():
            run = json.loads(run_file.read_text())
            cfg = {
                "kind": run.get("kind"),
                "stages": run.get("stages"),
                "config": run.get("effective_config", run.get("config")),
                "tokenmill_version": run.get("tokenmill_version"),
            }
        if isinstance(cfg, dict):
            rel = p.parent.relative_to(root).as_posix()
            config.setdefault(rel if rel != "." else "run", cfg)
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    stages = dict(sorted(stages.items(), key=lambda kv: order.get(kv[0], len(order))))
    return stages, config


def load_manifests(root: Path) -> dict[str, TokenManifest]:
    root = Path(root)
    return {
        p.parent.relative_to(root).as_posix(): TokenManifest.read(p.parent)
        for p in sorted(root.rglob("manifest.json"))
        if _visible(p, root)
    }


def _column_values(files: list[Path], column: str, limit: int = MAX_HIST_VALUES) -> list:
    out: list = []
    for f in files:
        if column not in pq.read_schema(f).names:
            return out
        for batch in pq.ParquetFile(f).iter_batches(columns=[column], batch_size=8192):
            out.extend(batch.column(0).to_pylist())
            if len(out) >= limit:
                return out[:limit]
    return out


def _value_counts(files: list[Path], column: str) -> Counter:
    counts: Counter = Counter()
    for f in files:
        if column not in pq.read_schema(f).names:
            return counts
        for batch in pq.ParquetFile(f).iter_batches(columns=[column], batch_size=65536):
            for item in pc.value_counts(batch.column(0)).to_pylist():
                if item["values"] is not None:
                    counts[item["values"]] += item["counts"]
    return counts


def _word_lengths(files: list[Path]) -> list[int]:
    out: list[int] = []
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(columns=["text"], batch_size=4096):
            words = pc.list_value_length(pc.utf8_split_whitespace(batch.column(0)))
            out.extend(v for v in words.to_pylist() if v is not None)
            if len(out) >= MAX_HIST_VALUES:
                return out[:MAX_HIST_VALUES]
    return out


def _sum_column(files: list[Path], column: str) -> int:
    return sum(
        int(pc.sum(pq.read_table(f, columns=[column]).column(0)).as_py() or 0) for f in files
    )


@dataclass
class DatasetSummary:
    """Everything the card and the plots say, computed once from the outputs."""

    root: Path
    family: str  # "corpus" or "post-training"
    configs: list[ConfigSpec]
    stages: dict[str, dict] = field(default_factory=dict)
    run_config: dict[str, Any] = field(default_factory=dict)
    manifests: dict[str, TokenManifest] = field(default_factory=dict)
    languages: Counter = field(default_factory=Counter)
    doc_word_lengths: list[int] = field(default_factory=list)
    pii_docs: int = 0
    pii_replacements: int = 0
    tokens_per_split: dict[str, int] = field(default_factory=dict)
    token_lengths: list[int] = field(default_factory=list)
    kinds: dict[str, Counter] = field(default_factory=dict)  # config -> kind counts
    sources: dict[str, Counter] = field(default_factory=dict)  # config -> source counts
    with_provenance: dict[str, int] = field(default_factory=dict)  # config -> rows with doc_id
    turns: list[int] = field(default_factory=list)
    quality_scores: list[float] = field(default_factory=list)  # classify: kept documents
    quality_scores_removed: list[float] = field(default_factory=list)  # classify: removed ones

    @property
    def total_rows(self) -> int:
        return sum(c.num_rows for c in self.configs if c.kind != "removed")


def summarize(root: Path, include_removed: bool = False) -> DatasetSummary:
    root = Path(root)
    groups = scan_groups(root)
    if not groups:
        raise FileNotFoundError(f"no tokenmill Parquet dataset found under {root}")
    configs = plan_configs(groups, include_removed)
    family = "corpus" if all(c.kind in CORPUS_KINDS for c in configs) else "post-training"
    s = DatasetSummary(root, family, configs)
    s.stages, s.run_config = load_stats(root)
    s.manifests = load_manifests(root)
    for c in configs:
        files = c.files
        if c.kind == "documents":
            s.languages = _value_counts(files, "language")
            s.doc_word_lengths = _word_lengths(files)
            reps = [v for v in _column_values(files, "pii_replacements", limit=10**12) if v]
            s.pii_docs, s.pii_replacements = len(reps), int(sum(reps))
            s.quality_scores = [v for v in _column_values(files, "quality_score") if v is not None]
        elif c.kind == "removed":
            s.quality_scores_removed = [
                v for v in _column_values(files, "quality_score") if v is not None
            ]
        elif c.kind == "tokens":
            for split, gs in c.splits.items():
                split_files = [f for g in gs for f in g.files]
                s.tokens_per_split[split] = _sum_column(split_files, "num_tokens")
            s.token_lengths = [v for v in _column_values(files, "num_tokens") if v is not None]
        elif c.kind in ("conversations", "preferences", "rl_prompts"):
            s.kinds[c.name] = _value_counts(files, "kind") or Counter({c.kind: c.num_rows})
            s.sources[c.name] = _value_counts(files, "source")
            if c.kind == "conversations":
                s.with_provenance[c.name] = c.num_rows - sum(
                    int(pq.read_table(f, columns=["doc_id"]).column(0).null_count) for f in files
                )
                for f in files:
                    lens = pc.list_value_length(pq.read_table(f, columns=["messages"]).column(0))
                    s.turns.extend(v for v in lens.to_pylist() if v is not None)
    return s


# ---------------------------------------------------------------- YAML metadata


def publishable_files(root: Path, include_removed: bool = False) -> list[Path]:
    """What a push uploads: the configs' Parquet files, card, plots, stats and manifests
    (removed documents only with ``include_removed``)."""
    root = Path(root)
    s_groups = plan_configs(scan_groups(root), include_removed)
    files = {f for c in s_groups for f in c.files}
    for pattern in ("README.md", "plots/*.png", "**/stats.json", "**/manifest.json", "stats.json"):
        files.update(p for p in root.glob(pattern) if p.is_file() and _visible(p, root))
    return sorted(files)
