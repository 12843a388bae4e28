"""Dataset cards: Hub-style YAML that loads, configs that `datasets` resolves, counts that match.

The corpus/synth directories here are written through the schema helpers with the layout the
flows write (stage/documents, stage/removed, tokenize/{train,val}, stats.json, manifest.json),
so the card code is tested on every kind even before a full pipeline runs; test_loadable.py
and the pipeline tests cover outputs of the real stage code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.card import publishable_files, size_category, write_card
from pipelines.io import atomic_write_parquet
from schemas.conversations import CONVERSATION_SCHEMA, PREFERENCE_SCHEMA, RL_PROMPT_SCHEMA
from schemas.documents import documents_table, removed_table
from schemas.tokens import TOKEN_SHARD_SCHEMA, TokenManifest

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_corpus(root: Path, shards: int = 3, docs_per_shard: int = 4) -> Path:
    """A corpus pipeline output: fineweb/ (documents, removed, stats), dedup/, tokenize/."""
    n = 0
    for s in range(shards):
        docs = []
        for _ in range(docs_per_shard):
            lang = "en" if (n % 3) else "de"
            docs.append(
                {
                    "id": f"<urn:uuid:{n}>",
                    "url": f"https://example.org/{n}",
                    "date": "2024-01-01",
                    "source": "test",
                    "text": " ".join(["word"] * (20 + 7 * n)),
                    "language": lang,
                    "language_score": 0.9,
                    "pii_replacements": 1 if n == 2 else 0,
                }
            )
            n += 1
        atomic_write_parquet(
            root / f"fineweb/documents/part-{s:05d}.parquet", documents_table(docs)
        )
        atomic_write_parquet(
            root / f"dedup/documents/part-{s:05d}.parquet", documents_table(docs[1:])
        )
        atomic_write_parquet(
            root / f"fineweb/removed/part-{s:05d}.parquet",
            removed_table(
                [
                    {
                        "id": f"<urn:uuid:r{s}>",
                        "url": "https://bad.example/",
                        "text": "",
                        "stage": "urlfilter",
                        "reason": "url:domain",
                    }
                ]
            ),
        )
        atomic_write_parquet(
            root / f"dedup/removed/part-{s:05d}.parquet",
            removed_table(
                [dict(docs[0], stage="dedup", reason="dedup:duplicate", duplicate_of=docs[1]["id"])]
            ),
        )
    (root / "fineweb/stats.json").write_text(
        json.dumps(
            {
                "stages": {
                    "read": {"in": 15, "kept": 15, "removed": 0, "removed_by_reason": {}},
                    "urlfilter": {
                        "in": 15,
                        "kept": 12,
                        "removed": 3,
                        "removed_by_reason": {"url:domain": 3},
                    },
                    "pii": {"in": 12, "kept": 12, "removed": 0, "removed_by_reason": {}},
                }
            }
        )
    )
    (root / "dedup/stats.json").write_text(
        json.dumps(
            {
                "stages": {
                    "dedup": {
                        "in": 12,
                        "kept": 9,
                        "removed": 3,
                        "removed_by_reason": {"dedup:duplicate": 3},
                    }
                }
            }
        )
    )
    for split, count in (("train", 8), ("val", 1)):
        rows = [
            {"id": f"d{i}", "input_ids": list(range(5 + i)), "num_tokens": 5 + i}
            for i in range(count)
        ]
        atomic_write_parquet(
            root / f"tokenize/{split}/shard-00000.parquet",
            pa.Table.from_pylist(rows, TOKEN_SHARD_SCHEMA),
        )
    (root / "tokenize/manifest.json").write_text(
        TokenManifest(  # the typed manifest tokenize writes
            tokenizer="cl100k_base",
            vocab_size=100277,
            special_ids={"<|endoftext|>": 100257},
            eot_id=100257,
            seed=0,
            val_fraction=0.1,
            shard_tokens=1000,
        ).model_dump_json()
    )
    return root


def make_synth(root: Path) -> Path:
    """A synthesis output: conversations by kind, preference pairs, RL prompts."""
    convs = [
        {
            "id": f"c{i}",
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ],
            "kind": ("identity", "refusal", "tool_use")[i % 3],
            "source": "tokenmill-synth",
            "doc_id": f"<urn:uuid:{i}>" if i % 3 == 1 else None,
            "meta": "{}",
        }
        for i in range(7)
    ]
    atomic_write_parquet(
        root / "sft/data/part-00000.parquet", pa.Table.from_pylist(convs, CONVERSATION_SCHEMA)
    )
    prefs = [
        {"id": f"p{i}", "prompt": "2+2?", "chosen": "4", "rejected": "5", "source": "arith"}
        for i in range(3)
    ]
    atomic_write_parquet(
        root / "preferences/data/part-00000.parquet", pa.Table.from_pylist(prefs, PREFERENCE_SCHEMA)
    )
    rl = [
        {
            "id": f"r{i}",
            "prompt": f"{i}+1?",
            "answer": str(i + 1),
            "kind": "arithmetic",
            "source": "arith",
        }
        for i in range(5)
    ]
    atomic_write_parquet(
        root / "rl/data/part-00000.parquet", pa.Table.from_pylist(rl, RL_PROMPT_SCHEMA)
    )
    (root / "stats.json").write_text(
        json.dumps(
            {
                "stages": {
                    "refusal": {
                        "in": 10,
                        "kept": 7,
                        "removed": 3,
                        "removed_by_reason": {"refusal:answered": 3},
                    }
                }
            }
        )
    )
    return root


def _front_matter(readme: Path) -> dict:
    m = re.match(r"^---\n(.*?)\n---\n", readme.read_text(), re.S)
    assert m, "card has no YAML header"
    return yaml.safe_load(m.group(1))


def test_corpus_card_metadata_matches_the_files(tmp_path: Path) -> None:
    from huggingface_hub import DatasetCard

    root = make_corpus(tmp_path / "corpus")
    result = write_card(root, repo_id="alice/corpus", include_removed=True)
    card = DatasetCard.load(result.path)
    meta = _front_matter(result.path)
    assert card.data.license == "odc-by"
    assert meta["language"] == ["en", "de"]  # found in the final documents, most common first
    assert meta["size_categories"] == ["n<1K"]
    assert "text-generation" in meta["task_categories"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == {"documents", "removed", "tokens"}
    assert configs["documents"]["default"] is True
    # the final documents are the dedup output, not the intermediate fineweb one
    assert configs["documents"]["data_files"] == [
        {"split": "train", "path": "dedup/documents/*.parquet"}
    ]
    assert {d["split"] for d in configs["tokens"]["data_files"]} == {"train", "validation"}
    # every removed document of every stage is in the removed config
    assert sorted(configs["removed"]["data_files"][0]["path"]) == [
        "dedup/removed/*.parquet",
        "fineweb/removed/*.parquet",
    ]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["tokens"]["splits"]} == {
        "train": 8,
        "validation": 1,
    }
    assert infos["documents"]["splits"][0]["num_examples"] == 9
    assert infos["removed"]["splits"][0]["num_examples"] == 6
    assert [f["name"] for f in infos["tokens"]["features"]] == TOKEN_SHARD_SCHEMA.names
    assert infos["tokens"]["download_size"] == sum(
        p.stat().st_size for p in (root / "tokenize").rglob("*.parquet")
    )


def test_corpus_card_loads_with_datasets_and_counts_agree(tmp_path: Path) -> None:
    """`load_dataset(DIR, config)` resolves the card's configs and verifies its split sizes."""
    import datasets

    root = make_corpus(tmp_path / "corpus")
    write_card(root, include_removed=True)
    tokens = datasets.load_dataset(str(root), "tokens", cache_dir=str(tmp_path / "cache"))
    assert tokens["train"].num_rows == 8 and tokens["validation"].num_rows == 1
    assert tokens["train"].features["input_ids"].feature.dtype == "uint32"
    removed = datasets.load_dataset(
        str(root), "removed", split="train", cache_dir=str(tmp_path / "cache")
    )
    assert sorted(set(removed["reason"])) == ["dedup:duplicate", "url:domain"]
    docs = datasets.load_dataset(
        str(root), split="train", cache_dir=str(tmp_path / "cache")
    )  # default config
    assert docs.num_rows == 9


def test_corpus_card_body_reports_stages_tokens_and_plots(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "corpus")
    result = write_card(root, repo_id="alice/corpus")
    body = result.path.read_text().split("\n---\n", 1)[1]
    # stage table from stats.json (fineweb/ and dedup/ stats merged, in pipeline order)
    rows = [line for line in body.splitlines() if line.startswith("| ") and "|---" not in line]
    stage_rows = [
        r.split("|")[1].strip()
        for r in rows
        if r.split("|")[1].strip() in {"read", "urlfilter", "pii", "dedup"}
    ]
    assert stage_rows[:4] == ["read", "urlfilter", "pii", "dedup"]
    assert (
        "| urlfilter | `url:domain` | 3 |" in body and "| dedup | `dedup:duplicate` | 3 |" in body
    )
    # tokens per split from the shards themselves: train 5+6+...+12 = 68, val 5
    assert "| train | 8 | 68 |" in body and "| validation | 1 | 5 |" in body
    assert "cl100k_base" in body and "100,277" in body
    assert 'load_dataset("alice/corpus", "tokens")' in body
    assert "1 replacements in 1 documents" in body  # PII section from the documents' counts
    assert set(result.plots) == {
        "plots/documents_per_stage.png",
        "plots/removal_reasons.png",
        "plots/document_lengths.png",
        "plots/languages.png",
        "plots/token_lengths.png",
    }
    for p in result.plots:
        assert (root / p).read_bytes().startswith(PNG_MAGIC)
        assert f"]({p})" in body


def test_synth_card_counts_by_kind_and_provenance(tmp_path: Path) -> None:
    import datasets

    root = make_synth(tmp_path / "synth")
    result = write_card(root)
    assert result.summary.family == "post-training"
    meta = _front_matter(result.path)
    assert {c["config_name"] for c in meta["configs"]} == {"sft", "preferences", "rl"}
    assert "language-modeling" not in (meta.get("task_ids") or [])
    body = result.path.read_text()
    assert "| `sft` | identity | 3 |" in body and "| `sft` | refusal | 2 |" in body
    assert "2 of 7 conversations name the corpus document" in body
    assert "plots/kinds.png" in result.plots
    rl = datasets.load_dataset(str(root), "rl", split="train", cache_dir=str(tmp_path / "cache"))
    assert rl.num_rows == 5 and rl.features["answer"].dtype == "string"


def test_publishable_files_leave_out_intermediate_outputs(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "corpus")
    write_card(root, include_removed=True)
    rel = {p.relative_to(root).as_posix() for p in publishable_files(root, include_removed=True)}
    assert "README.md" in rel and "tokenize/manifest.json" in rel and "dedup/stats.json" in rel
    assert not any(
        r.startswith("fineweb/documents/") for r in rel
    )  # intermediate, superseded by dedup
    assert {r for r in rel if r.endswith(".parquet")} == {
        p.relative_to(root).as_posix()
        for p in root.rglob("*.parquet")
        if not p.relative_to(root).as_posix().startswith("fineweb/documents/")
    }


@pytest.mark.parametrize(
    "n,label", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (2_500_000, "1M<n<10M")]
)
def test_size_category(n: int, label: str) -> None:
    assert size_category(n) == label


def test_card_cli(tmp_path: Path) -> None:
    root = make_synth(tmp_path / "synth")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "card",
            str(root),
            "--license",
            "apache-2.0",
            "--no-plots",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "post-training" in out.stdout
    assert _front_matter(root / "README.md")["license"] == "apache-2.0"
    assert not (root / "plots").exists()
    missing = subprocess.run(
        [sys.executable, "-m", "flows.cli", "card", str(tmp_path / "nope")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_card_rows_equal_parquet_rows(tmp_path: Path) -> None:
    """num_examples in the card is the Parquet row count (from footers, nothing loaded)."""
    root = make_corpus(tmp_path / "corpus", shards=2, docs_per_shard=5)
    meta = _front_matter(write_card(root, plots=False).path)
    info = {i["config_name"]: i for i in meta["dataset_info"]}
    rows = sum(
        pq.ParquetFile(p).metadata.num_rows for p in (root / "dedup/documents").glob("*.parquet")
    )
    assert info["documents"]["splits"][0]["num_examples"] == rows == 8


def test_zero_row_files_are_left_out_so_the_config_still_loads(tmp_path: Path) -> None:
    """`datasets` 5.2 cannot read a 0-row Parquet file (BatchSize 0): the card must not list one."""
    import datasets

    root = make_corpus(tmp_path / "corpus", shards=2)
    atomic_write_parquet(root / "dedup/removed/part-00009.parquet", removed_table([]))
    atomic_write_parquet(
        root / "tokenize/val/shard-00001.parquet", pa.Table.from_pylist([], TOKEN_SHARD_SCHEMA)
    )
    meta = _front_matter(write_card(root, plots=False, include_removed=True).path)
    configs = {c["config_name"]: c for c in meta["configs"]}
    removed_paths = configs["removed"]["data_files"][0]["path"]
    assert "dedup/removed/part-00009.parquet" not in removed_paths
    assert "dedup/removed/part-00000.parquet" in removed_paths  # listed one by one now
    removed = datasets.load_dataset(
        str(root), "removed", split="train", cache_dir=str(tmp_path / "cache")
    )
    assert removed.num_rows == 4
    tokens = datasets.load_dataset(
        str(root), "tokens", split="validation", cache_dir=str(tmp_path / "cache")
    )
    assert tokens.num_rows == 1
    assert "dedup/removed/part-00009.parquet" not in {
        p.relative_to(root).as_posix() for p in publishable_files(root, include_removed=True)
    }


def test_removed_documents_are_not_published_by_default(tmp_path: Path) -> None:
    """Removed pages hold raw HTML of blocklisted sites and text from before PII scrubbing:
    the card declares them, and push uploads them, only when asked (--include-removed)."""
    root = make_corpus(tmp_path / "corpus")
    result = write_card(root, plots=False)
    assert {c["config_name"] for c in _front_matter(result.path)["configs"]} == {
        "documents",
        "tokens",
    }
    assert not any("/removed/" in p.as_posix() for p in publishable_files(root))
    body = result.path.read_text()
    assert "Removed documents are not published" in body and "as they were when removed" not in body
    assert "| urlfilter | `url:domain` | 3 |" in body  # what was removed is still reported


def test_public_removed_keeps_only_extracted_scrubbed_text() -> None:
    from pipelines.card import public_removed

    table = removed_table(
        [
            {
                "id": "a",
                "text": "<html>spam page</html>",
                "stage": "urlfilter",
                "reason": "url:domain",
            },
            {"id": "b", "text": "<html>raw</html>", "stage": "read", "reason": "read:not_html"},
            {
                "id": "c",
                "text": "Write to jo@mail.example.com from 8.8.8.8",
                "stage": "langid",
                "reason": "langid:language",
            },
            {
                "id": "d",
                "text": "Kept apart: ann@example.org",
                "stage": "dedup",
                "reason": "dedup:duplicate",
            },
        ]
    )
    out = public_removed(table).to_pylist()
    assert [r["text"] for r in out] == [
        None,
        None,
        "Write to email@example.com from 0.0.0.0",
        "Kept apart: email@example.com",
    ]
    assert public_removed(table).schema == table.schema


def test_card_prints_the_recorded_config_not_defaults(tmp_path: Path) -> None:
    from pipelines.runinfo import prepare_output
    from schemas.config import FinewebConfig, LangIdConfig

    root = make_corpus(tmp_path / "corpus")
    body = write_card(root, plots=False).path.read_text()
    assert "settings that made this dataset are **unknown**" in body
    assert '"languages"' not in body  # no defaults posing as the run's settings
    warc = tmp_path / "x.warc.gz"
    warc.write_bytes(b"")
    (root / "fineweb" / "run.json").unlink(missing_ok=True)
    stats = (root / "fineweb" / "stats.json").read_text()
    (root / "fineweb" / "stats.json").unlink()  # prepare_output refuses an unrecorded output
    for sub in ("documents", "removed"):
        (root / "fineweb" / sub).rename(tmp_path / sub)
    prepare_output(
        root / "fineweb",
        kind="fineweb",
        inputs=[warc],
        stages=["read", "langid"],
        config=FinewebConfig(langid=LangIdConfig(languages=["de", "fr"])),
    )
    for sub in ("documents", "removed"):
        (tmp_path / sub).rename(root / "fineweb" / sub)
    (root / "fineweb" / "stats.json").write_text(stats)
    body = write_card(root, plots=False).path.read_text()
    settings = body.split("The configuration recorded by the run:", 1)[1].split("</details>", 1)[0]
    recorded = json.loads(settings.split("```json", 1)[1].split("```", 1)[0])
    assert recorded["fineweb"]["config"]["langid"]["languages"] == ["de", "fr"]
    assert recorded["fineweb"]["stages"] == ["read", "langid"]
