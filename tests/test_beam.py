"""The Beam engine (FnApiRunner) against the local engine on the real WARCs: same kept ids,
same removal reason per id at every stage, same token shards."""

from __future__ import annotations

import glob

import pyarrow.parquet as pq
import pytest

from flows.pipeline import run_pipeline
from schemas.config import TokenizeConfig


def _rows(directory) -> dict[str, dict]:
    return {
        r["id"]: r
        for f in sorted(glob.glob(f"{directory}/*.parquet"))
        for r in pq.read_table(f).to_pylist()
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "beam_args",
    [
        ["--runner=FnApiRunner"],
        [
            "--runner=FnApiRunner",
            "--direct_num_workers=2",
            "--direct_running_mode=multi_processing",
        ],
    ],
)
def test_beam_equals_local(web_dir, tmp_path, beam_args):
    inputs = [str(web_dir)]
    tc = TokenizeConfig(shard_tokens=20_000, val_fraction=0.1)
    local = run_pipeline(inputs, str(tmp_path / "local"), tokenize=tc)["stages"]
    beam = run_pipeline(
        inputs, str(tmp_path / "beam"), tokenize=tc, engine="beam", beam_args=beam_args
    )["stages"]
    assert {k: (v["in"], v["kept"], v["removed_by_reason"]) for k, v in local.items()} == {
        k: (v["in"], v["kept"], v["removed_by_reason"]) for k, v in beam.items()
    }
    for stage in ("fineweb", "dedup"):
        lk, bk = (
            _rows(tmp_path / "local" / stage / "documents"),
            _rows(tmp_path / "beam" / stage / "documents"),
        )
        assert set(lk) == set(bk) and lk
        assert all(
            lk[i]["text"] == bk[i]["text"] and lk[i]["minhash_cluster"] == bk[i]["minhash_cluster"]
            for i in lk
        )
        lr, br = (
            _rows(tmp_path / "local" / stage / "removed"),
            _rows(tmp_path / "beam" / stage / "removed"),
        )
        assert {i: (r["stage"], r["reason"], r["duplicate_of"]) for i, r in lr.items()} == {
            i: (r["stage"], r["reason"], r["duplicate_of"]) for i, r in br.items()
        }
    for split in ("train", "val"):
        files = sorted(p.name for p in (tmp_path / "local" / "tokenize" / split).glob("*.parquet"))
        assert files == sorted(
            p.name for p in (tmp_path / "beam" / "tokenize" / split).glob("*.parquet")
        )
        for f in files:  # shard by shard, rows in the same shuffled order
            assert pq.read_table(tmp_path / "local" / "tokenize" / split / f).equals(
                pq.read_table(tmp_path / "beam" / "tokenize" / split / f)
            )
