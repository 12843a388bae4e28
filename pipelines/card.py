"""Hugging Face dataset cards for every dataset tokenmill writes.

A card is the only documentation a dataset carries once it leaves this machine, so it is built
from the outputs themselves (``pipelines.card_summary`` reads them into a ``DatasetSummary``),
never from what the run was asked to do. This module renders that summary: the YAML header
follows the Hub's dataset-card conventions (``configs`` with ``data_files`` so the Hub viewer and
``datasets.load_dataset(repo_id, config)`` find every split; ``dataset_info`` so split sizes
are verified on load) and is written through ``huggingface_hub.DatasetCardData``; the markdown
body says how the data was made, what it holds and how to load it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines import registry
from pipelines.card_summary import (
    STAGE_ORDER,
    ConfigSpec,
    DataGroup,
    DatasetSummary,
    classify_schema,
    load_manifests,
    load_stats,
    plan_configs,
    publishable_files,
    scan_groups,
    summarize,
)

__all__ = [
    # rendering (this module)
    "CardResult",
    "PRE_EXTRACTION_STAGES",
    "SIZE_CATEGORIES",
    "card_data",
    "configs_yaml",
    "dataset_info",
    "public_removed",
    "render_body",
    "size_category",
    "write_card",
    # scanning and summary (pipelines.card_summary), still importable from here
    "STAGE_ORDER",
    "ConfigSpec",
    "DataGroup",
    "DatasetSummary",
    "classify_schema",
    "load_manifests",
    "load_stats",
    "plan_configs",
    "publishable_files",
    "scan_groups",
    "summarize",
]

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


def size_category(n: int) -> str:
    for bound, label in SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>1T"


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
            "ones. English gets FineWeb's thresholds and other languages FineWeb-2's per-language "
            "ones; a language without its own settings gets language-independent defaults, "
            "which are less tuned (the stats record which settings each language used).",
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
