"""The corpus pipeline (fineweb -> dedup -> tokenize) as one Apache Beam pipeline.

Every transform calls the engine-free stage functions (``pipelines.read.read_warc``, the
``Step`` objects of ``pipelines.fineweb.build_stage_steps``, ``pipelines.dedup`` and
``pipelines.tokenize``); Beam only moves data. Outputs have the local engine's layout and
schemas (``OUT/fineweb``, ``OUT/dedup``, ``OUT/tokenize``), so either engine's output feeds the
trainer. Decisions are order-free (kept = smallest id of a cluster; shuffle and split are
hashes of the id), so both engines keep the same documents and write the same token shards.

Runners: ``FnApiRunner`` locally (``--direct_num_workers=N --direct_running_mode=
multi_processing`` for processes); any other ``--runner`` (DataflowRunner, FlinkRunner,
SparkRunner) with its options is passed through. Output paths must then be on a filesystem
every worker can write (a shared mount); stats and the manifest are written by the driver
from the files after the run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import fileio

from pipelines import dedup as dd
from pipelines import tokenize as tk
from pipelines.io import atomic_write_parquet, parquet_files
from pipelines.stats import StageStats, write_stats
from schemas.config import DedupConfig, FinewebConfig, TokenizeConfig
from schemas.documents import DOCUMENT_SCHEMA, documents_table, removed_table

REMOVED = "removed"


class FinewebDoFn(beam.DoFn):
    """WARC file -> kept documents (main output) and removed rows (tagged ``removed``).

    Models and lists load once per worker in ``setup()``; the steps are the local engine's.
    """

    def __init__(self, config: FinewebConfig):
        self.config_json = config.model_dump_json()

    def setup(self) -> None:
        from pipelines.fineweb import build_stage_steps

        self.config = FinewebConfig.model_validate_json(self.config_json)
        self.groups = build_stage_steps(self.config)
        for _, steps in self.groups:
            for step in steps:
                step.setup()

    def process(self, readable):
        from pipelines.fineweb import first_removal, shard_name
        from pipelines.read import read_warc

        path = readable.metadata.path
        shard = shard_name(path)
        # trafilatura's deduplicate=True keeps a per-process paragraph cache; the local engine
        # starts every shard with an empty one, so a file here must too (fresh extract state)
        for _, steps in self.groups:
            for step in steps:
                if step.name == "extract":
                    getattr(step, "close", lambda: None)()
                    step.setup()
        for doc, reason in read_warc(path, self.config.read, self.config.limit):
            if reason is not None:
                yield beam.pvalue.TaggedOutput(REMOVED, (shard, {**doc, "stage": "read", "reason": reason}))
                continue
            hit = first_removal(doc, self.groups)
            if hit is not None:
                stage, why = self.groups[hit[0]][0], hit[1]
                yield beam.pvalue.TaggedOutput(REMOVED, (shard, {**doc, "stage": stage, "reason": why}))
            else:
                yield shard, {c: doc.get(c) for c in DOCUMENT_SCHEMA.names}

    def teardown(self) -> None:
        for _, steps in getattr(self, "groups", []):
            for step in steps:
                close = getattr(step, "close", None)
                if close is not None:
                    close()


def _write_docs(item, directory: str, removed: bool) -> str:
    shard, rows = item
    rows = sorted(rows, key=lambda r: r["id"])
    table = removed_table(rows) if removed else documents_table(rows)
    atomic_write_parquet(Path(directory) / f"{shard}.parquet", table)
    return shard


class SignatureDoFn(beam.DoFn):
    """Batches of (shard, doc) -> (id, signature) for documents with words (``pipelines.dedup``)."""

    def __init__(self, config: DedupConfig):
        self.config = config

    def setup(self) -> None:
        self.mh = dd.hasher(self.config)

    def process(self, batch):
        sigs, mask = dd.signatures_for_texts([d["text"] for _, d in batch], self.mh)
        for (_, doc), sig, ok in zip(batch, sigs, mask, strict=True):
            if ok:
                yield doc["id"], sig


def _band_keys(item, mh_config: DedupConfig):
    doc_id, sig = item
    keys = _BandKeys.get(mh_config)(sig)
    for band, key in enumerate(keys.tolist()):
        yield (band, key), (doc_id, sig)


class _BandKeys:
    """One MinHasher per worker process and config (its permutations are drawn once)."""

    _cache: dict = {}

    @classmethod
    def get(cls, config: DedupConfig):
        k = (config.ngram, config.bands, config.rows, config.seed)
        if k not in cls._cache:
            mh = dd.hasher(config)
            cls._cache[k] = lambda sig: mh.band_keys(sig[None, :])[0]
        return cls._cache[k]


def _bucket_edges(item, config: DedupConfig):
    _, members = item
    members = sorted(members, key=lambda m: m[0])
    if len(members) < 2:
        return
    sigs = np.stack([m[1] for m in members]) if config.min_similarity is not None else None
    for i, j in dd.link_bucket(np.arange(len(members)), sigs, config.min_similarity, config.rows):
        yield members[i][0], members[j][0]


def _duplicates(edges: list[tuple[str, str]]) -> dict[str, str]:
    """All edges -> {removed id: kept id} with the local engine's component routines."""
    ids = sorted({x for e in edges for x in e})
    index = {d: i for i, d in enumerate(ids)}
    arr = np.array([(index[a], index[b]) for a, b in edges], dtype=np.int64).reshape(-1, 2)
    reps = dd.representatives(ids, dd.components(len(ids), arr))
    return {d: r for d, r in zip(ids, reps, strict=True) if d != r}


def _apply_dedup(item, dup_of: dict[str, str], out: str):
    shard, rows = item
    table = documents_table(sorted(rows, key=lambda r: r["id"]))
    kept, gone = dd.apply_duplicates(table, dup_of)
    atomic_write_parquet(Path(out) / "documents" / f"{shard}.parquet", kept)
    atomic_write_parquet(Path(out) / "removed" / f"{shard}.parquet", gone)
    yield from kept.select(["id", "text"]).to_pylist()


class TokenizeDoFn(beam.DoFn):
    """Batches of documents -> RUN_SCHEMA rows (``pipelines.tokenize.tokenize_rows``)."""

    def __init__(self, config: TokenizeConfig):
        self.config = config

    def setup(self) -> None:
        from pipelines.tokenizer import load_tokenizer

        self.tok = load_tokenizer(self.config.tokenizer)

    def process(self, batch):
        table = tk.tokenize_rows([d["id"] for d in batch], [d["text"] for d in batch], self.tok, self.config)
        yield from table.to_pylist()


def _assign(meta: list[tuple[int, str, bool, int]], budget: int) -> dict[str, tuple[str, int]]:
    """All (key, id, val, num_tokens) -> {id: (split, shard index)} in the local engine's order."""
    out: dict[str, tuple[str, int]] = {}
    for split, want in (("train", False), ("val", True)):
        rows = sorted((k, i, n) for k, i, v, n in meta if v == want)
        shards = tk.assign_shards(np.array([n for _, _, n in rows], dtype=np.int64), budget)
        out.update({i: (split, int(s)) for (_, i, _), s in zip(rows, shards.tolist(), strict=True)})
    return out


def _write_token_shard(item, out: str) -> str:
    (split, shard), rows = item
    table = tk.shard_table(pa.Table.from_pylist(list(rows), tk.RUN_SCHEMA))
    path = Path(out) / split / f"shard-{shard:05d}.parquet"
    atomic_write_parquet(path, table)
    return str(path)


def build(p: beam.Pipeline, files: list[str], output: str, fw: FinewebConfig, dc: DedupConfig,
          tc: TokenizeConfig) -> None:
    """Add the whole corpus pipeline to ``p``."""
    out = Path(output)
    fwo, ddo, tko = str(out / "fineweb"), str(out / "dedup"), str(out / "tokenize")
    res = (p | "Files" >> beam.Create(files) | fileio.MatchAll() | fileio.ReadMatches()
           | "Reshuffle files" >> beam.Reshuffle()
           | "FineWeb" >> beam.ParDo(FinewebDoFn(fw)).with_outputs(REMOVED, main="kept"))
    kept = res.kept
    (res[REMOVED] | "Group removed" >> beam.GroupByKey()
     | "Write removed" >> beam.Map(_write_docs, str(Path(fwo) / "removed"), True))
    (kept | "Group kept" >> beam.GroupByKey()
     | "Write kept" >> beam.Map(_write_docs, str(Path(fwo) / "documents"), False))

    # dedup: band keys -> GroupByKey (buckets) -> edges -> connected components on one worker
    edges = (kept | "Batch for signatures" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
             | "Signatures" >> beam.ParDo(SignatureDoFn(dc))
             | "Band keys" >> beam.FlatMap(_band_keys, dc)
             | "Buckets" >> beam.GroupByKey()
             | "Link" >> beam.FlatMap(_bucket_edges, dc))
    dup_of = (edges | "All edges" >> beam.combiners.ToList()
              | "Components" >> beam.Map(_duplicates))
    deduped = (kept | "Group for dedup" >> beam.GroupByKey()
               | "Apply dedup" >> beam.FlatMap(_apply_dedup, beam.pvalue.AsSingleton(dup_of), ddo))

    # tokenize: tokens per document, shard assignment from (key, tokens) metadata, write shards
    rows = (deduped | "Batch for tokens" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
            | "Tokenize" >> beam.ParDo(TokenizeDoFn(tc)))
    assign = (rows | "Meta" >> beam.Map(lambda r: (r["key"], r["id"], r["val"], r["num_tokens"]))
              | "All meta" >> beam.combiners.ToList()
              | "Assign shards" >> beam.Map(_assign, tc.shard_tokens))
    (rows | "Key by shard" >> beam.Map(lambda r, a: (a[r["id"]], r), beam.pvalue.AsSingleton(assign))
     | "Group shards" >> beam.GroupByKey()
     | "Write shards" >> beam.Map(_write_token_shard, tko))


def stats_from_outputs(directory: Path, stages: list[str], docs_in: int | None = None) -> dict[str, StageStats]:
    """Per-stage stats of a stage directory from its files (kept rows, removed by stage/reason)."""
    kept = sum(pq.read_metadata(f).num_rows for f in parquet_files(directory / "documents"))
    removed: dict[str, Counter] = {s: Counter() for s in stages}
    for f in parquet_files(directory / "removed"):
        t = pq.read_table(f, columns=["stage", "reason"]).to_pydict()
        for s, r in zip(t["stage"], t["reason"], strict=True):
            removed.setdefault(s, Counter())[r] += 1
    stats: dict[str, StageStats] = {}
    remaining = kept + sum(sum(c.values()) for c in removed.values())
    for s in stages:
        n = sum(removed[s].values())
        stats[s] = StageStats(s, remaining, remaining - n, removed[s])
        remaining -= n
    return stats


def run(inputs: list[str], output: str, fw: FinewebConfig | None = None, dc: DedupConfig | None = None,
        tc: TokenizeConfig | None = None, beam_args: list[str] | None = None) -> dict:
    """Run the Beam pipeline, then write each stage's stats.json and the token manifest."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.fineweb import STAGES
    from pipelines.io import expand_inputs
    from pipelines.tokenizer import load_tokenizer

    fw, dc, tc = fw or FinewebConfig(), dc or DedupConfig(), tc or TokenizeConfig()
    args = list(beam_args or [])
    runner_name = next((a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "FnApiRunner")
    args = [a for a in args if not a.startswith("--runner=")]
    if runner_name in ("FnApiRunner", "DirectRunner"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
    else:
        runner = runner_name
    files = expand_inputs(list(inputs))
    out = Path(output)
    with beam.Pipeline(runner=runner, options=PipelineOptions(args)) as p:
        build(p, files, output, fw, dc, tc)
    all_stats: dict[str, StageStats] = {}
    fws = stats_from_outputs(out / "fineweb", STAGES)
    write_stats(out / "fineweb" / "stats.json", fws, {"inputs": files, "engine": "beam"})
    dds = stats_from_outputs(out / "dedup", [dd.STAGE])
    write_stats(out / "dedup" / "stats.json", dds)
    manifest = tk.manifest_from_shards(out / "tokenize", tc, tk.tokenizer_info(load_tokenizer(tc.tokenizer)))
    n = sum(v["documents"] for v in manifest["splits"].values())
    tks = {tk.STAGE: StageStats(tk.STAGE, n, n)}
    write_stats(out / "tokenize" / "stats.json", tks)
    all_stats = {**fws, **dds, **tks}
    for st in all_stats.values():
        st.check_conservation()
    write_stats(out / "stats.json", all_stats, {"engine": "beam", "runner": runner_name})
    return json.loads((out / "stats.json").read_text())
