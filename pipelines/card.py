"""Hugging Face dataset cards for every dataset tokenmill writes.

A card is the only documentation a dataset carries once it leaves this machine, so it is built
from the outputs themselves, never from what the run was asked to do: the Parquet files give
configs, splits, row counts, byte sizes and features; ``stats.json`` gives what every stage
removed and why; ``manifest.json`` names the tokenizer. The YAML header follows the Hub's
dataset-card conventions (``configs`` with ``data_files`` so the Hub viewer and
``datasets.load_dataset(repo_id, config)`` find every split; ``dataset_info`` so split sizes
are verified on load), and is written through ``huggingface_hub.DatasetCardData``.

The dataset kind is found from the files, not from flags: each directory of Parquet files is
classified by its schema (documents / removed / token shards / conversations / preference
pairs / RL prompts), so a single stage's output, a whole corpus pipeline and a synthesis run
are all recognised.
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
SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
]
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


def size_category(n: int) -> str:
    for bound, label in SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>1T"


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


def dataset_info(c: ConfigSpec) -> dict[str, Any]:
    """The Hub's ``dataset_info`` entry of one config (features from the Parquet/pyarrow schema)."""
    import datasets

    features = datasets.Features.from_arrow_schema(next(iter(c.splits.values()))[0].schema)
    splits = [
        {
            "name": split,
            "num_bytes": sum(g.num_bytes for g in gs),
            "num_examples": sum(g.num_rows for g in gs),
        }
        for split, gs in c.splits.items()
    ]
    return {
        "config_name": c.name,
        "features": features._to_yaml_list(),
        "splits": splits,
        "download_size": sum(g.download_size for gs in c.splits.values() for g in gs),
        "dataset_size": sum(sp["num_bytes"] for sp in splits),
    }


def configs_yaml(configs: list[ConfigSpec]) -> list[dict[str, Any]]:
    out = []
    for c in configs:
        entry: dict[str, Any] = {
            "config_name": c.name,
            "data_files": [
                {"split": split, "path": paths if len(paths) > 1 else paths[0]}
                for split, gs in c.splits.items()
                for paths in [[p for g in gs for p in g.data_paths]]
            ],
        }
        if c.default:
            entry["default"] = True
        out.append(entry)
    return out


def card_data(
    s: DatasetSummary, *, license: str, pretty_name: str, languages: list[str] | None = None
):
    from huggingface_hub import DatasetCardData

    langs = languages if languages is not None else [lang for lang, _ in s.languages.most_common()]
    tasks = ["text-generation"]
    if any(c.kind == "rl_prompts" for c in s.configs):
        tasks.append("question-answering")
    corpus = s.family == "corpus"
    return DatasetCardData(
        pretty_name=pretty_name,
        license=license,
        language=langs or None,
        multilinguality=None
        if not langs
        else ("monolingual" if len(langs) == 1 else "multilingual"),
        size_categories=[size_category(s.total_rows)],
        task_categories=tasks,
        task_ids=["language-modeling"] if corpus else None,
        annotations_creators=["machine-generated"],
        language_creators=["found"] if corpus else ["machine-generated"],
        source_datasets=["original"],
        tags=["tokenmill", "fineweb-style", "pretraining"]
        if corpus
        else ["tokenmill", "synthetic", "post-training"],
        configs=configs_yaml(s.configs),
        dataset_info=[dataset_info(c) for c in s.configs],
    )


# ---------------------------------------------------------------- body

_STAGE_WHAT = {s.name: s.description for s in registry.STAGES}


def _fmt(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _structure(s: DatasetSummary) -> list[str]:
    lines = [
        "## Dataset structure",
        "",
        "| config | split | rows | files | Parquet size | data files |",
        "|---|---|---:|---:|---:|---|",
    ]
    for c in s.configs:
        for split, gs in c.splits.items():
            lines.append(
                f"| `{c.name}`{' (default)' if c.default else ''} | {split} | "
                f"{_fmt(sum(g.num_rows for g in gs))} | {sum(len(g.files) for g in gs)} | "
                f"{_bytes(sum(g.download_size for g in gs))} | "
                f"{', '.join(f'`{p}`' for g in gs for p in g.data_paths)} |"
            )
    lines.append("")
    for c in s.configs:
        schema = next(iter(c.splits.values()))[0].schema
        lines.append(
            f"Columns of `{c.name}`: " + ", ".join(f"`{f.name}` ({f.type})" for f in schema) + "."
        )
        lines.append("")
    return lines


def _how_made(s: DatasetSummary) -> list[str]:
    lines = ["## How it was made", ""]
    if not s.stages:
        return lines + [
            "No `stats.json` was found next to the data, so per-stage counts are unknown.",
            "",
        ]
    lines += [
        "Every stage writes what it keeps and what it removes (with a reason), so at every stage "
        "`in = kept + removed`. Counts below come from the run's `stats.json`.",
        "",
        "| stage | what it does | in | kept | removed | top removal reasons |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, st in s.stages.items():
        reasons = Counter(st.get("removed_by_reason") or {})
        top = ", ".join(f"`{r}` {n:,}" for r, n in reasons.most_common(3)) or "-"
        lines.append(
            f"| {name} | {_STAGE_WHAT.get(name, '')} | {_fmt(st.get('in', 0))} | "
            f"{_fmt(st.get('kept', 0))} | {_fmt(st.get('removed', sum(reasons.values())))} | {top} |"
        )
    lines += ["", "### Removal reasons", "", "| stage | reason | documents |", "|---|---|---:|"]
    for name, st in s.stages.items():
        for reason, n in sorted((st.get("removed_by_reason") or {}).items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | `{reason}` | {n:,} |")
    lines += ["", "### Settings", ""]
    run_config = {k: v for k, v in s.run_config.items() if not k.startswith("generator:")}
    if run_config:
        lines += [
            "The configuration recorded by the run:",
            "",
            "<details><summary>settings</summary>",
            "",
            "```json",
            json.dumps(run_config, indent=2, sort_keys=True, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
    else:  # never tokenmill's defaults in its place: they may not be what the run used
        lines += [
            "The run did not record its configuration (no `run.json`), so the settings that "
            "made this dataset are **unknown**.",
            "",
        ]
    return lines


def _tokens(s: DatasetSummary) -> list[str]:
    if not s.tokens_per_split:
        return []
    lines = ["## Tokens", ""]
    for rel, m in s.manifests.items():
        name, vocab = m.tokenizer, m.vocab_size
        lines.append(
            f"Tokenizer: `{name}`"
            + f", vocabulary of {vocab:,} tokens"
            + f" (from `{rel}/manifest.json`). Each document ends with `<|endoftext|>`; "
            "decoding `input_ids` gives back the document text."
        )
        specials = m.special_ids
        if specials:
            lines.append(f"Special tokens: `{json.dumps(specials)}`.")
        lines.append("")
    lines += ["| split | documents | tokens |", "|---|---:|---:|"]
    tok_cfg = next(c for c in s.configs if c.kind == "tokens")
    for split, n in s.tokens_per_split.items():
        docs = sum(g.num_rows for g in tok_cfg.splits[split])
        lines.append(f"| {split} | {docs:,} | {n:,} |")
    lines += [f"| **total** | {tok_cfg.num_rows:,} | {sum(s.tokens_per_split.values()):,} |", ""]
    return lines


def _generators(s: DatasetSummary) -> list[str]:
    gens = {k.split(":", 1)[1]: v for k, v in s.run_config.items() if k.startswith("generator:")}
    if not gens:
        return []
    lines = [
        "## How it was made",
        "",
        "Every generator is reproducible from its seed; its statistics (from `stats.json`):",
        "",
    ]
    for rel, payload in gens.items():
        lines += [
            f"- `{rel}`: generator `{payload.get('generator')}`, seed {payload.get('seed')}",
            "",
            "<details><summary>statistics</summary>",
            "",
            "```json",
            json.dumps(payload, indent=2, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def _post_training(s: DatasetSummary) -> list[str]:
    if not s.kinds:
        return []
    lines = [
        "## Samples by kind and provenance",
        "",
        "| config | kind | samples |",
        "|---|---|---:|",
    ]
    for cfg, counts in s.kinds.items():
        for kind, n in counts.most_common():
            lines.append(f"| `{cfg}` | {kind} | {n:,} |")
    lines += ["", "| config | source | samples |", "|---|---|---:|"]
    for cfg, counts in s.sources.items():
        for src, n in counts.most_common(20):
            lines.append(f"| `{cfg}` | {src} | {n:,} |")
    lines.append("")
    for cfg, n in s.with_provenance.items():
        total = next(c.num_rows for c in s.configs if c.name == cfg)
        lines.append(
            f"- `{cfg}`: {n:,} of {total:,} conversations name the corpus document they came "
            "from (`doc_id`); generator details are in the `meta` JSON column."
        )
    lines.append("")
    return lines


def _how_to_load(s: DatasetSummary, repo_id: str | None) -> list[str]:
    rid = repo_id or "OWNER/NAME"
    lines = [
        "## How to load",
        "",
        "From the Hub (configs are declared in this card's YAML header):",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
    ]
    for c in s.configs:
        lines.append(f'{c.name} = load_dataset("{rid}", "{c.name}")')
    lines += [
        "```",
        "",
        "From a local copy, with the generic Parquet loader:",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
    ]
    for c in s.configs:
        files = {split: [p for g in gs for p in g.data_paths] for split, gs in c.splits.items()}
        lines.append(f'{c.name} = load_dataset("parquet", data_files={json.dumps(files)})')
    lines += ["```", "", "Streaming works too: add `streaming=True`.", ""]
    return lines


def _personal_info(s: DatasetSummary) -> list[str]:
    lines = ["## Personal and sensitive information", ""]
    if s.family == "corpus":
        if "pii" in s.stages:
            lines.append(
                "The PII stage replaced email addresses with `email@example.com`, public IP "
                "addresses with `0.0.0.0` (FineWeb's PII formatter) and, with the default "
                "settings, phone numbers, IBANs (mod-97 checked) and credit-card numbers "
                "(issuer prefix and Luhn checked) with placeholders; counts by kind are in "
                "`stats.json` (`step_counts.pii`)"
                + (
                    f": {s.pii_replacements:,} replacements in {s.pii_docs:,} documents."
                    if s.pii_docs
                    else "."
                )
            )
            lines.append(
                "Names, street addresses and other personal data that appear on "
                "public web pages are **not** removed."
            )
        else:
            lines.append(
                "**No PII stage ran on this data**: email addresses, IP addresses and other "
                "personal data from the crawled pages may be present."
            )
        if any(c.kind == "removed" for c in s.configs):
            lines.append(
                "The `removed` config lets filtering decisions be audited: it holds only "
                "extracted text, PII-scrubbed like the documents; documents removed before "
                "text extraction (read, urlfilter, extract) are listed without text."
            )
        else:
            lines.append(
                "Removed documents are not published (they hold rejected pages); the "
                "counts above say what was removed and why."
            )
    else:
        lines.append(
            "Samples are generated from templates, models and snippets of the processed corpus; "
            "snippets carry whatever PII scrubbing the corpus had (emails and IP addresses "
            "replaced). Model-generated text may still contain made-up names or facts."
        )
    return lines + [""]


def _limitations(s: DatasetSummary) -> list[str]:
    if s.family == "corpus":
        items = [
            "Heuristic filters (URL blocklists, Gopher/C4/FineWeb rules) remove good pages and keep bad "
            "ones; they were tuned for English and are harsher on other languages.",
            "Language identification with fastText lid.176 is unreliable on short texts and mixed-language pages.",
            "MinHash deduplication finds near-duplicates within this dataset only, not against other corpora.",
            "Web text carries the biases, errors and offensive content of the pages it was crawled from.",
            "Copyright of the pages stays with their authors; check the crawl's terms before use.",
        ]
    else:
        items = [
            "Synthetic samples reflect the templates and models that generated them, including their errors.",
            "Refusal probes judge answers automatically; some 'does not know' labels may be wrong.",
            "Tool-use traces come from a small local search index and sandbox, not a real search engine.",
        ]
    return ["## Known limitations", "", *[f"- {i}" for i in items], ""]


def render_body(
    s: DatasetSummary, *, pretty_name: str, plots: list[str], repo_id: str | None
) -> str:
    what = (
        "a FineWeb-style web text corpus made by tokenmill from WARC crawl files: documents "
        "kept after URL filtering, text extraction, language identification, quality filtering, "
        "deduplication and PII scrubbing"
        if s.family == "corpus"
        else "post-training data made by tokenmill: chat conversations (SFT, identity, refusal, tool use, "
        "reasoning), preference pairs and RL prompts with verifiable answers"
    )
    configs = ", ".join(f"`{c.name}` ({c.num_rows:,} rows)" for c in s.configs)
    lines = [f"# {pretty_name}", "", f"This dataset is {what}.", "", f"Configs: {configs}.", ""]
    lines += _structure(s)
    lines += _how_made(s) if s.family == "corpus" or s.stages else _generators(s)
    lines += _tokens(s)
    lines += _post_training(s)
    if s.languages:
        lines += ["## Languages", "", "| language | documents |", "|---|---:|"]
        lines += [f"| {lang} | {n:,} |" for lang, n in s.languages.most_common()] + [""]
    lines += _how_to_load(s, repo_id)
    lines += _personal_info(s)
    lines += _limitations(s)
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{Path(p).stem.replace('_', ' ')}]({p})" for p in plots] + [""]
    lines += [
        "## Provenance",
        "",
        "Made with tokenmill. Every row is traceable: "
        "documents keep their WARC record id (`id`), URL and crawl date; removed documents keep "
        "the stage and reason that removed them.",
        "",
    ]
    return "\n".join(lines)


@dataclass
class CardResult:
    path: Path
    plots: list[str]
    summary: DatasetSummary


def write_card(
    root: Path,
    *,
    license: str = "odc-by",
    pretty_name: str | None = None,
    languages: list[str] | None = None,
    repo_id: str | None = None,
    plots: bool = True,
    include_removed: bool = False,
) -> CardResult:
    """Write ``root/README.md`` (and ``root/plots/*.png``) for the dataset under ``root``;
    the ``removed`` config only with ``include_removed``."""
    from huggingface_hub import DatasetCard

    root = Path(root)
    s = summarize(root, include_removed)
    name = pretty_name or (
        f"tokenmill {'corpus' if s.family == 'corpus' else 'post-training data'}: "
        f"{root.resolve().name}"
    )
    made = (
        __import__("pipelines.plots", fromlist=["make_plots"]).make_plots(s, root) if plots else []
    )
    data = card_data(s, license=license, pretty_name=name, languages=languages)
    card = DatasetCard(
        f"---\n{data.to_yaml()}\n---\n\n"
        + render_body(s, pretty_name=name, plots=made, repo_id=repo_id)
    )
    from pipelines.io import atomic_write_text

    atomic_write_text(root / "README.md", str(card))
    return CardResult(root / "README.md", made, s)


def publishable_files(root: Path, include_removed: bool = False) -> list[Path]:
    """What a push uploads: the configs' Parquet files, card, plots, stats and manifests
    (removed documents only with ``include_removed``)."""
    root = Path(root)
    s_groups = plan_configs(scan_groups(root), include_removed)
    files = {f for c in s_groups for f in c.files}
    for pattern in ("README.md", "plots/*.png", "**/stats.json", "**/manifest.json", "stats.json"):
        files.update(p for p in root.glob(pattern) if p.is_file() and _visible(p, root))
    return sorted(files)


#: Stages that remove a document before its text is extracted: its ``text`` is raw HTML.
PRE_EXTRACTION_STAGES = frozenset({"read", "urlfilter", "extract"})


def public_removed(table: pa.Table) -> pa.Table:
    """A removed-documents table as it may be published: raw HTML (documents removed before
    extraction) dropped to null, every other text PII-scrubbed like the corpus (FineWeb's
    email / public IP replacement; idempotent on text the PII stage already scrubbed)."""
    from pipelines.pii import PIIStep

    pii = PIIStep()
    stages = table.column("stage").to_pylist()
    texts = table.column("text").to_pylist()
    out = [
        None if st in PRE_EXTRACTION_STAGES or t is None else pii.scrub(t)[0]
        for st, t in zip(stages, texts, strict=True)
    ]
    i = table.schema.get_field_index("text")
    return table.set_column(i, table.schema.field("text"), pa.array(out, pa.string()))
