"""The Beam engine on object storage: input and output on a real S3-compatible server (moto in
server mode on 127.0.0.1, a free port, started here), FnApiRunner with worker PROCESSES, the
real WARCs; compared with the local engine writing to a local folder. Also: a second run skips
finished work, a missing object fails with one line naming it, and the graph translates for
Dataflow offline."""

from __future__ import annotations

import glob
import io
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from schemas.config import TokenizeConfig

BUCKET = "tokenmill-test"
_SERVER = (
    "from moto.server import ThreadedMotoServer; import time; "
    "s = ThreadedMotoServer('127.0.0.1', 0, verbose=False); s.start(); "
    "print(s.get_host_and_port()[1], flush=True); time.sleep(10**6)"
)


@pytest.fixture(scope="module")
def s3(web_warcs):
    """A moto S3 server on a free loopback port with the real WARCs under s3://BUCKET/crawl/."""
    import boto3

    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        endpoint = f"http://127.0.0.1:{port}"
        mp = pytest.MonkeyPatch()
        for k, v in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            mp.setenv(k, v)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        for w in web_warcs:
            client.upload_file(str(w), BUCKET, f"crawl/{w.name}")
        yield client, endpoint
        mp.undo()
    finally:
        proc.kill()
        proc.wait()


def _beam_args(endpoint: str, workers: int = 2) -> list[str]:
    return [
        "--runner=FnApiRunner",
        f"--direct_num_workers={workers}",
        "--direct_running_mode=multi_processing",
        f"--s3_endpoint_url={endpoint}",
        "--s3_access_key_id=test",
        "--s3_secret_access_key=test",
        "--s3_region_name=us-east-1",
    ]


def _objects(client, prefix: str) -> dict[str, object]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["LastModified"] for p in pages for o in p.get("Contents", [])}


def _s3_rows(client, prefix: str) -> dict[str, dict]:
    rows = {}
    for key in sorted(_objects(client, prefix)):
        if key.endswith(".parquet"):
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            rows.update({r["id"]: r for r in pq.read_table(io.BytesIO(body)).to_pylist()})
    return rows


def _local_rows(directory) -> dict[str, dict]:
    return {
        r["id"]: r
        for f in sorted(glob.glob(f"{directory}/*.parquet"))
        for r in pq.read_table(f).to_pylist()
    }


@pytest.mark.slow
@pytest.mark.timeout(2400)  # three Beam runs with worker processes + one local run
def test_beam_on_s3_equals_local_and_resumes(web_dir, s3, tmp_path):
    from flows.pipeline import run_pipeline
    from pipelines.beam.corpus import run

    client, endpoint = s3
    tc = TokenizeConfig(shard_tokens=20_000, val_fraction=0.1)
    local = run_pipeline([str(web_dir)], str(tmp_path / "local"), tokenize=tc)["stages"]
    out = f"s3://{BUCKET}/out"
    beam = run([f"s3://{BUCKET}/crawl/*.warc.gz"], out, tc=tc, beam_args=_beam_args(endpoint))[
        "stages"
    ]
    assert {k: (v["in"], v["kept"], v["removed_by_reason"]) for k, v in local.items()} == {
        k: (v["in"], v["kept"], v["removed_by_reason"]) for k, v in beam.items()
    }
    for st in beam.values():  # conservation at every stage
        assert st["in"] == st["kept"] + sum(st["removed_by_reason"].values())
    for stage in ("fineweb", "dedup"):
        lk, bk = (
            _local_rows(tmp_path / "local" / stage / "documents"),
            _s3_rows(client, f"out/{stage}/documents/"),
        )
        assert set(lk) == set(bk) and lk
        assert all(
            lk[i]["text"] == bk[i]["text"] and lk[i]["minhash_cluster"] == bk[i]["minhash_cluster"]
            for i in lk
        )
        lr, br = (
            _local_rows(tmp_path / "local" / stage / "removed"),
            _s3_rows(client, f"out/{stage}/removed/"),
        )
        assert {i: (r["stage"], r["reason"], r["duplicate_of"]) for i, r in lr.items()} == {
            i: (r["stage"], r["reason"], r["duplicate_of"]) for i, r in br.items()
        }
    assert beam["dedup"]["removed_by_reason"]  # the comparison covers real duplicate_of values
    for split in ("train", "val"):
        files = sorted(p.name for p in (tmp_path / "local" / "tokenize" / split).glob("*.parquet"))
        keys = sorted(
            k for k in _objects(client, f"out/tokenize/{split}/") if k.endswith(".parquet")
        )
        assert [k.rsplit("/", 1)[1] for k in keys] == files and files
        for f, k in zip(
            files, keys, strict=True
        ):  # shard by shard, rows in the same shuffled order
            body = client.get_object(Bucket=BUCKET, Key=k)["Body"].read()
            assert pq.read_table(tmp_path / "local" / "tokenize" / split / f).equals(
                pq.read_table(io.BytesIO(body))
            )
    assert not [
        k for k in _objects(client, "out/") if k.rsplit("/", 1)[1].startswith(".")
    ]  # no temp files left

    # a finished run is returned as is; an interrupted one redoes only what is missing
    before = {
        k: v for k, v in _objects(client, "out/fineweb/").items() if k != "out/fineweb/stats.json"
    }
    t0 = time.perf_counter()
    assert (
        run([f"s3://{BUCKET}/crawl/*.warc.gz"], out, tc=tc, beam_args=_beam_args(endpoint))[
            "stages"
        ]
        == beam
    )
    assert time.perf_counter() - t0 < 20
    for key in [
        *_objects(client, "out/dedup/"),
        *_objects(client, "out/tokenize/"),
        "out/stats.json",
    ]:
        client.delete_object(Bucket=BUCKET, Key=key)  # as if killed after fineweb
    again = run([f"s3://{BUCKET}/crawl/*.warc.gz"], out, tc=tc, beam_args=_beam_args(endpoint))[
        "stages"
    ]
    assert again == beam
    after = {
        k: v for k, v in _objects(client, "out/fineweb/").items() if k != "out/fineweb/stats.json"
    }
    assert after == before and len(before) == 12  # no fineweb shard was recomputed or rewritten

    # other settings into the same output: refused, never mixed with the old shards
    with pytest.raises(ValueError, match="other inputs or settings"):
        run(
            [f"s3://{BUCKET}/crawl/*.warc.gz"],
            out,
            tc=TokenizeConfig(seed=5),
            beam_args=_beam_args(endpoint),
        )


def test_missing_object_fails_with_one_line(s3):
    from pipelines.beam.corpus import run

    _, endpoint = s3
    with pytest.raises(
        FileNotFoundError, match=rf"no input matches 's3://{BUCKET}/nothing/\*.warc.gz'"
    ):
        run(
            [f"s3://{BUCKET}/nothing/*.warc.gz"],
            f"s3://{BUCKET}/never",
            beam_args=_beam_args(endpoint),
        )


def test_dataflow_dry_run_translates(web_warcs, tmp_path):
    """The whole graph builds and translates for DataflowRunner offline (no submission)."""
    pytest.importorskip("apache_beam.runners.dataflow.dataflow_runner")
    pytest.importorskip("google.cloud.storage")
    from pipelines.beam.corpus import run

    res = run(
        [str(w) for w in web_warcs],
        "gs://tokenmill-nowhere/out",
        beam_args=[
            "--runner=DataflowRunner",
            "--dry_run=True",
            "--project=tokenmill-test",
            "--region=us-central1",
            "--temp_location=gs://tokenmill-nowhere/tmp",
        ],
    )
    assert res == {"dry_run": True, "runner": "DataflowRunner"}


@pytest.mark.slow
def test_local_engine_reads_and_writes_s3(s3, tmp_path, monkeypatch):
    """The local engine with an s3:// input (fsspec) and an s3:// output (staged locally, then
    uploaded): the same documents and token shards as a local run of the same input."""
    from flows.pipeline import run_pipeline
    from schemas.config import FinewebConfig

    client, _ = s3
    monkeypatch.setenv("TOKENMILL_STAGING", str(tmp_path / "staging"))
    fw = FinewebConfig(limit=20)
    name = "dolma-sample-0000.warc.gz"
    client.download_file(BUCKET, f"crawl/{name}", str(tmp_path / name))
    run_pipeline([str(tmp_path / name)], str(tmp_path / "local"), fw)
    res = run_pipeline([f"s3://{BUCKET}/crawl/{name}"], f"s3://{BUCKET}/local-engine", fw)
    keys = _objects(client, "local-engine/")
    assert "local-engine/stats.json" in keys and "local-engine/tokenize/manifest.json" in keys
    assert not [k for k in keys if "/_work/" in k or k.rsplit("/", 1)[1].startswith(".")]
    assert set(_s3_rows(client, "local-engine/dedup/documents/")) == set(
        _local_rows(tmp_path / "local" / "dedup" / "documents")
    )
    assert res["stages"]["dedup"]["kept"] == len(
        _local_rows(tmp_path / "local" / "dedup" / "documents")
    )
