"""Every dataset tokenmill writes loads with `datasets` and pyarrow, with the features of schemas/.

All datasets here are built by the real stage code, engine-free (no Prefect): the FineWeb pass
(`pipelines.fineweb.process_shard`) on a real WARC file from ../shared/data/web, MinHash dedup
and tokenization of its output, and the SFT / RL-prompt / preference-pair generators. Then each
is loaded three ways: `datasets.load_dataset("parquet", data_files=...)`, pyarrow, and
`datasets.load_dataset(DIR, config)` through the configs of the dataset card written for it.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from pipelines.card import write_card
from schemas.conversations import CONVERSATION_SCHEMA, PREFERENCE_SCHEMA, RL_PROMPT_SCHEMA
from schemas.documents import DOCUMENT_SCHEMA, REMOVED_SCHEMA
from schemas.tokens import TOKEN_SHARD_SCHEMA


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, web_dir: Path) -> Path:
    from pipelines.dedup import dedup
    from pipelines.fineweb import process_shard
    from pipelines.tokenize import tokenize
    from schemas.config import FinewebConfig, TokenizeConfig

    root = tmp_path_factory.mktemp("corpus")
    process_shard(
        str(web_dir / "dolma-sample-0000.warc.gz"), str(root / "fineweb"), FinewebConfig()
    )
    dedup(root / "fineweb", root / "dedup")
    tokenize(root / "dedup", root / "tokenize", TokenizeConfig(shard_tokens=2_000))
    return root


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from pipelines.synth.rl import PrefsConfig, RLConfig, run_prefs, run_rl
    from pipelines.synth.sft import SFTConfig, run_sft

    root = tmp_path_factory.mktemp("synth")
    run_sft(SFTConfig(output=str(root / "sft"), identity=4, arithmetic=4, counting=4, spelling=4))
    run_rl(RLConfig(output=str(root / "rl"), word_problems=10, counting=10, equations=10))
    run_prefs(PrefsConfig(output=str(root / "prefs"), n_prompts=6))
    return root


CORPUS = [
    ("fineweb/documents", DOCUMENT_SCHEMA),
    ("fineweb/removed", REMOVED_SCHEMA),
    ("dedup/documents", DOCUMENT_SCHEMA),
    ("tokenize/train", TOKEN_SHARD_SCHEMA),
]
SYNTH = [
    ("sft/data", CONVERSATION_SCHEMA),
    ("rl/train", RL_PROMPT_SCHEMA),
    ("rl/test", RL_PROMPT_SCHEMA),
    ("prefs/train", PREFERENCE_SCHEMA),
]


def _check(directory: Path, schema, cache: Path) -> None:
    files = sorted(str(p) for p in directory.glob("*.parquet"))
    assert files, f"nothing written in {directory}"
    rows = 0
    for f in files:  # pyarrow: the exact schema of schemas/ (names, types, order)
        got = pq.read_schema(f)
        assert [(x.name, x.type) for x in got] == [(x.name, x.type) for x in schema], f
        rows += pq.ParquetFile(f).metadata.num_rows
    ds = datasets.load_dataset(
        "parquet", data_files={"train": files}, split="train", cache_dir=str(cache)
    )
    assert ds.features == datasets.Features.from_arrow_schema(schema)
    assert ds.num_rows == rows


@pytest.mark.parametrize("rel,schema", CORPUS, ids=[r for r, _ in CORPUS])
def test_corpus_datasets_load(corpus: Path, rel: str, schema, tmp_path: Path) -> None:
    _check(corpus / rel, schema, tmp_path)


@pytest.mark.parametrize("rel,schema", SYNTH, ids=[r for r, _ in SYNTH])
def test_post_training_datasets_load(synth: Path, rel: str, schema, tmp_path: Path) -> None:
    _check(synth / rel, schema, tmp_path)


def test_real_corpus_has_rows_and_removals(corpus: Path) -> None:
    kept = sum(
        pq.ParquetFile(p).metadata.num_rows for p in (corpus / "dedup/documents").glob("*.parquet")
    )
    removed = pq.read_table(
        next((corpus / "fineweb/removed").glob("*.parquet")), columns=["reason"]
    )
    assert kept > 0 and removed.num_rows > 0
    assert all(
        r.split(":", 1)[0] in {"read", "url", "extract", "langid", "quality"}
        for r in removed.column("reason").to_pylist()
    )


def test_cards_of_real_outputs_load_through_their_configs(
    corpus: Path, synth: Path, tmp_path: Path
) -> None:
    # rejects are published only on request (issue 9: raw HTML of blocklisted pages stays home)
    assert [c.name for c in write_card(corpus, plots=False).summary.configs] == [
        "documents",
        "tokens",
    ]
    card = write_card(corpus, plots=False, include_removed=True).summary
    assert [c.name for c in card.configs] == ["documents", "removed", "tokens"]
    for c in card.configs:
        loaded = datasets.load_dataset(str(corpus), c.name, cache_dir=str(tmp_path / "c"))
        assert {s: loaded[s].num_rows for s in loaded} == {
            s: sum(g.num_rows for g in gs) for s, gs in c.splits.items()
        }
    s = write_card(synth, plots=False).summary
    assert {c.name: c.kind for c in s.configs} == {
        "sft": "conversations",
        "prefs": "preferences",
        "rl": "rl_prompts",
    }
    rl = datasets.load_dataset(str(synth), "rl", cache_dir=str(tmp_path / "s"))
    assert set(rl) == {"train", "test"}
    assert rl["train"].features == datasets.Features.from_arrow_schema(RL_PROMPT_SCHEMA)
    sft = datasets.load_dataset(str(synth), "sft", split="train", cache_dir=str(tmp_path / "s"))
    assert (
        sft.features["messages"]
        == datasets.Features.from_arrow_schema(CONVERSATION_SCHEMA)["messages"]
    )
