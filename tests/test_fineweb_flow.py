"""The whole FineWeb pass on the real WARC files: conservation, the Prefect flow, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.fineweb import STAGES, process_shard, shard_name
from schemas.config import FinewebConfig

REPO = Path(__file__).resolve().parents[1]


def _env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp / "home")
    return env


@pytest.fixture(scope="module")
def full_pass(web_warcs, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    stats = {p.name: process_shard(str(p), str(out), FinewebConfig()) for p in web_warcs}
    return out, stats


def test_conservation_every_stage_and_chained(full_pass, web_warcs):
    out, stats = full_pass
    for name, shard in stats.items():
        assert list(shard) == STAGES, name
        for st in shard.values():
            st.check_conservation()
        # what a stage keeps is exactly what the next one sees
        for a, b in zip(STAGES, STAGES[1:], strict=False):
            assert shard[a].kept == shard[b].docs_in, (name, a, b)
    kept = pq.read_table(out / "documents").num_rows
    removed = pq.read_table(out / "removed")
    units = sum(s["read"].docs_in for s in stats.values())
    assert kept + removed.num_rows == units
    assert kept == sum(s["pii"].kept for s in stats.values()) > 0
    # every removal names its stage and a reason with that stage's prefix
    prefixes = {
        "read": "read:",
        "urlfilter": "url:",
        "extract": "extract:",
        "langid": "langid:",
        "quality": "quality:",
        "pii": "pii:",
    }
    for stage, reason in zip(
        removed.column("stage").to_pylist(), removed.column("reason").to_pylist(), strict=True
    ):
        assert reason.startswith(prefixes[stage])
    docs = pq.read_table(out / "documents").to_pylist()
    assert all(d["language"] == "en" and d["language_score"] > 0.65 for d in docs)
    assert all("<html" not in d["text"].lower() for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)


def test_rerun_skips_done_shards(full_pass, web_warcs):
    out, stats = full_pass
    path = str(web_warcs[0])
    before = (out / "documents" / f"{shard_name(path)}.parquet").stat().st_mtime_ns
    again = process_shard(path, str(out), FinewebConfig())

    def counts(st):
        return {k: (v.docs_in, v.kept, dict(v.removed)) for k, v in st.items()}

    assert counts(again) == counts(stats[web_warcs[0].name])
    assert (out / "documents" / f"{shard_name(path)}.parquet").stat().st_mtime_ns == before


def test_shard_names_unique_for_equal_basenames(tmp_path):
    a, b = tmp_path / "x" / "crawl.warc.gz", tmp_path / "y" / "crawl.warc.gz"
    assert shard_name(str(a)) != shard_name(str(b))
    assert shard_name(str(a)) == shard_name(str(a)) and shard_name(str(a)).startswith("crawl-")


def test_stage_on_documents_parquet_continues_the_chain(full_pass, web_warcs, tmp_path):
    """read alone, then the remaining stages on its documents: same result as one pass."""
    out_full, _ = full_pass
    path = str(web_warcs[-1])
    process_shard(path, str(tmp_path / "read"), FinewebConfig(), ["read"])
    doc_file = tmp_path / "read" / "documents" / f"{shard_name(path)}.parquet"
    rest = process_shard(str(doc_file), str(tmp_path / "rest"), FinewebConfig(), STAGES[1:])
    assert "read" not in rest
    got = pq.read_table(tmp_path / "rest" / "documents").to_pylist()
    want = pq.read_table(out_full / "documents" / f"{shard_name(path)}.parquet").to_pylist()
    assert [(d["id"], d["text"]) for d in got] == [(d["id"], d["text"]) for d in want]


def test_prefect_flow_with_worker_processes(web_warcs, tmp_path, monkeypatch):
    from flows.fineweb import fineweb_flow

    out = tmp_path / "flow"
    result = fineweb_flow([str(p) for p in web_warcs], str(out), FinewebConfig(), workers=2)
    assert result["stages"]["read"]["in"] > 0 and result["docs_per_s"] > 0
    on_disk = json.loads((out / "stats.json").read_text())
    assert {k: v for k, v in result.items() if k != "artifacts"} == on_disk
    assert len(on_disk["inputs"]) == len(web_warcs)
    assert on_disk["config"] == FinewebConfig().model_dump(mode="json")  # what made the output
    st = on_disk["stages"]
    assert st["pii"]["kept"] == pq.read_table(out / "documents").num_rows
    assert st["read"]["in"] == st["read"]["kept"] + st["read"]["removed"]
    assert sorted(p.name for p in (out / "stats").iterdir()) == sorted(
        f"{shard_name(str(p))}.json" for p in web_warcs
    )
    assert not list(out.rglob("*.tmp"))


def test_plan_batches_groups_small_files_and_keeps_big_ones_alone(tmp_path):
    from flows.fineweb import BATCH_BYTES, plan_batches

    def make(name: str, size: int) -> str:
        p = tmp_path / name
        with open(p, "wb") as f:
            f.truncate(size)
        return str(p)

    small = [make(f"s{i}.warc.gz", 100_000) for i in range(40)]
    big = [make(f"b{i}.warc.gz", BATCH_BYTES + 1) for i in range(3)]
    remote = "s3://bucket/crawl.warc.gz"  # size unknown: a task run of its own
    batches = plan_batches([*small, remote, *big], workers=2)
    assert sorted(p for b in batches for p in b) == sorted([*small, remote, *big])
    assert batches[:3] == [[b] for b in big] and [remote] in batches  # largest first
    grouped = [b for b in batches if b[0] in small]
    assert all(len(b) > 1 for b in grouped[:-1])
    # 4 MB of small files, 2 workers: groups of ~1/8 of it so both workers stay busy to the end
    only_small = plan_batches(small, workers=2)
    assert len(only_small) == 8 and {len(b) for b in only_small} == {5}
    assert plan_batches(small[:1], workers=4) == [small[:1]]
    assert plan_batches([], workers=2) == []


def test_grouped_shards_equal_one_task_run_each_and_resume(web_warcs, tmp_path, monkeypatch):
    """Small files grouped into one task run give the outputs of one task run per file; a group
    whose first shard finished before a crash redoes only the others."""
    import flows.fineweb as ff

    files = [str(p) for p in web_warcs if "multilingual" not in p.name]
    monkeypatch.setattr(ff, "BATCH_BYTES", 1)  # every file alone
    ff.fineweb_flow(files, str(tmp_path / "alone"), FinewebConfig(), workers=1)
    monkeypatch.setattr(ff, "BATCH_BYTES", 10**12)
    monkeypatch.setattr(ff, "GROUPS_PER_WORKER", 1)  # one group for everything
    assert len(ff.plan_batches(files, 1)) == 1
    out = tmp_path / "grouped"
    ff.fineweb_flow(files, str(out), FinewebConfig(), workers=1)
    first, *others = ff.plan_batches(files, 1)[0]
    done_before = (out / "stats" / f"{shard_name(first)}.json").stat().st_mtime_ns
    for f in others:  # the "crash" came after the group's first shard: the others are not done
        (out / "stats" / f"{shard_name(f)}.json").unlink()
        (out / "documents" / f"{shard_name(f)}.parquet").unlink()
    ff.fineweb_flow(files, str(out), FinewebConfig(), workers=1)
    assert (out / "stats" / f"{shard_name(first)}.json").stat().st_mtime_ns == done_before
    for f in files:
        name = f"{shard_name(f)}.parquet"
        a = pq.read_table(tmp_path / "alone" / "documents" / name).to_pylist()
        b = pq.read_table(out / "documents" / name).to_pylist()
        assert [(d["id"], d["text"]) for d in a] == [(d["id"], d["text"]) for d in b]

    def counts(stats_file: Path) -> dict:
        st = json.loads(stats_file.read_text())["stages"]
        return {k: (v["in"], v["kept"], v["removed_by_reason"]) for k, v in st.items()}

    assert counts(out / "stats.json") == counts(tmp_path / "alone" / "stats.json")


def test_cli_single_stage(web_warcs, tmp_path):
    """`tokenmill stage urlfilter` straight on a WARC: reads, then filters URLs only."""
    out = tmp_path / "urlfilter"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "stage",
            "urlfilter",
            "--input",
            str(web_warcs[1]),
            "--output",
            str(out),
        ],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())["stages"]
    assert list(stats) == ["read", "urlfilter"]
    docs = pq.read_table(out / "documents").to_pylist()
    assert len(docs) == stats["urlfilter"]["kept"] and "<" in docs[0]["text"]  # still HTML


@pytest.mark.slow
def test_cli_stage_by_stage_equals_one_pass(full_pass, web_warcs, tmp_path):
    """Six `tokenmill stage` runs, each on the previous documents dir == one fineweb pass."""
    out_full, _ = full_pass
    src = str(web_warcs[-1])
    prev = src
    for stage in STAGES:
        out = tmp_path / stage
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "stage",
                stage,
                "--input",
                prev,
                "--output",
                str(out),
            ],
            cwd=REPO,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        prev = str(out / "documents")
    got = pq.read_table(prev).to_pylist()
    want = pq.read_table(out_full / "documents" / f"{shard_name(src)}.parquet").to_pylist()
    assert [(d["id"], d["text"]) for d in got] == [(d["id"], d["text"]) for d in want]


def test_demo_sample_warc_is_deterministic_and_covers_every_stage(tmp_path):
    from pipelines.sample_pages import build_warc_bytes, write_sample_warc

    p = write_sample_warc(tmp_path / "sample.warc.gz")
    assert p.read_bytes() == build_warc_bytes()
    stats = process_shard(str(p), str(tmp_path / "out"), FinewebConfig())
    for stage in ("read", "urlfilter", "extract", "langid", "quality"):
        assert stats[stage].removed_total > 0, stage
    docs = pq.read_table(tmp_path / "out" / "documents").to_pylist()
    assert any(d["pii_replacements"] for d in docs)
