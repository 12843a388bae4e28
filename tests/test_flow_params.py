"""Deployment runs hand configs to flows as plain JSON data (``prefect deployment run ...
--param config='{...}'``); every flow turns them into its typed config."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from schemas.config import DedupConfig, FinewebConfig, TokenizeConfig, as_config
from schemas.documents import documents_table
from schemas.strict import ConfigError


def test_as_config_accepts_model_dict_json_and_none():
    assert as_config(DedupConfig, None) == DedupConfig()
    cfg = DedupConfig(bands=7)
    assert as_config(DedupConfig, cfg) is cfg
    assert as_config(DedupConfig, {"bands": 7, "rows": 16}).rows == 16
    assert as_config(FinewebConfig, '{"langid": {"languages": ["de"]}}').langid.languages == ["de"]
    with pytest.raises(ConfigError, match="'shard_tokens'"):
        as_config(TokenizeConfig, {"shard_tokens": "many"})
    # a deployment parameter with a typo fails instead of running with defaults
    with pytest.raises(ConfigError, match="did you mean 'langid.languages'"):
        as_config(FinewebConfig, '{"langid": {"languagse": ["de"]}}')


def test_dedup_and_tokenize_flows_take_dict_configs(tmp_path):
    from flows.dedup import run_dedup
    from flows.tokenize_flow import run_tokenize

    text = "the quick brown fox jumps over the lazy dog near the river bank today " * 5
    rows = [
        {"id": f"d{i}", "text": text + ("" if i < 2 else f" unique words number {i} here")}
        for i in range(4)
    ]
    rows.append(
        {"id": "other", "text": "a completely different document about tokenizers and shards " * 4}
    )
    (tmp_path / "docs" / "documents").mkdir(parents=True)
    pq.write_table(documents_table(rows), tmp_path / "docs" / "documents" / "part-0.parquet")
    run_dedup(
        str(tmp_path / "docs"), str(tmp_path / "dedup"), {"bands": 14, "rows": 8}, summary=False
    )
    stats = json.loads((tmp_path / "dedup" / "stats.json").read_text())["stages"]["dedup"]
    assert stats["in"] == 5 and stats["kept"] + stats["removed"] == 5 and stats["removed"] >= 1
    run_tokenize(
        str(tmp_path / "dedup"),
        str(tmp_path / "tok"),
        {"val_fraction": 0.0, "seed": 3},
        summary=False,
    )
    manifest = json.loads((tmp_path / "tok" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["splits"]["train"]["documents"] == stats["kept"]
