"""The issue-14 corpus stages as Apache Beam transforms: exact-dedup, line-dedup,
decontaminate, classify.

Beam only moves data; every decision is made by the stage modules' own functions
(``keys_table``/``apply`` of ``pipelines.exact_dedup``, ``count_texts``/``apply`` of
``pipelines.line_dedup``, ``pipelines.decontaminate.apply``, ``pipelines.classify.apply``), and
each shard is written by ``pipelines.shard_stage.filter_shard``, so the output files (documents,
removed, per-shard stats, stats.json) are the local driver's, byte for byte in content.

Corpus-wide steps are distributed, never gathered:
- exact-dedup: per-shard keys -> GroupByKey on the normalized URL (the latest fetch, then the
  smallest id wins: a total order of the documents' own fields, so the result does not depend
  on which worker sees which document first) -> URL losers; the survivors -> GroupByKey on the
  text hash (smallest id wins) -> text losers; losers -> GroupByKey on their shard -> filter;
- line-dedup: per-shard (unit hash, documents) counts -> CombinePerKey(sum) -> units over
  ``max_docs`` (the frequent set, a side input: only the frequent units travel) -> filter.
Per-document stages (classify, decontaminate) filter each shard where it is read; models and
indexes load once per worker.

The driver (``run``) checks/records settings before the pipeline and writes ``stats.json`` from
the per-shard stats after it, exactly as the local driver does.
"""

from __future__ import annotations

import time
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq

from pipelines import classify as cl
from pipelines import decontaminate as dc
from pipelines import exact_dedup as ed
from pipelines import line_dedup as ld
from pipelines import shard_stage as ss

STAGES = ("exact_dedup", "line_dedup", "decontaminate", "classify")


# ------------------------------------------------------------------------------- exact dedup


def _shard_keys(shard: ss.Shard):
    keys = ed.keys_table(pq.read_table(shard.path, columns=["id", "url", "date", "text"]))
    for row in keys.to_pylist():
        yield {**row, "shard": shard.name}


def _url_losers(item, enabled: bool):
    _, rows = item
    rows = list(rows)
    if not enabled or len(rows) < 2:
        return
    best = min(rows, key=lambda r: (-r["fetched"], r["id"]))
    for r in rows:
        if r["id"] != best["id"]:
            yield r["id"], (r["shard"], ed.URL_REASON, best["id"])


def _survivor(item):
    _, grouped = item
    if not grouped["lost"]:
        for r in grouped["key"]:
            if r["text_hash"] is not None:
                yield r["text_hash"], r


def _text_losers(item, enabled: bool):
    _, rows = item
    rows = list(rows)
    if not enabled or len(rows) < 2:
        return
    keep = min(r["id"] for r in rows)
    for r in rows:
        if r["id"] != keep:
            yield r["id"], (r["shard"], ed.TEXT_REASON, keep)


class ExactDedup(beam.PTransform):
    """PCollection[Shard] -> per-shard (StageStats, counts), outputs written under ``output``."""

    def __init__(self, config, output: str):
        super().__init__()
        self.config, self.output = config, output

    def expand(self, shards):
        keys = shards | "Keys" >> beam.FlatMap(_shard_keys)
        url_lost = (
            keys
            | "Only with URL" >> beam.Filter(lambda r: r["url_key"] is not None)
            | "By URL" >> beam.Map(lambda r: (r["url_key"], r))
            | "Group URL" >> beam.GroupByKey()
            | "URL losers" >> beam.FlatMap(_url_losers, self.config.url)
        )
        text_lost = (
            {"key": keys | "By id" >> beam.Map(lambda r: (r["id"], r)), "lost": url_lost}
            | "Join lost" >> beam.CoGroupByKey()
            | "Survivors" >> beam.FlatMap(_survivor)
            | "Group text" >> beam.GroupByKey()
            | "Text losers" >> beam.FlatMap(_text_losers, self.config.text)
        )
        lost = (
            (url_lost, text_lost)
            | "All losers" >> beam.Flatten()
            | "By shard" >> beam.Map(lambda kv: (kv[1][0], (kv[0], kv[1][1], kv[1][2])))
        )
        out = self.output

        def filter_one(item):
            _, grouped = item
            shard = next(iter(grouped["shard"]))
            dups = {i: (reason, keep) for i, reason, keep in grouped["lost"]}
            return ss.filter_shard(ed.STAGE, shard, Path(out), lambda t, _s: ed.apply(t, dups))

        return (
            {"shard": shards | "Shard by name" >> beam.Map(lambda s: (s.name, s)), "lost": lost}
            | "Join shards" >> beam.CoGroupByKey()
            | "Filter" >> beam.Map(filter_one)
        )


# ------------------------------------------------------------------------------- line dedup


def _shard_counts(shard: ss.Shard, config):
    texts = pq.read_table(shard.path, columns=["text"]).column("text").to_pylist()
    rec = ld.count_texts(texts, config)
    yield from zip(rec["hash"].tolist(), rec["count"].tolist(), strict=True)


class LineDedup(beam.PTransform):
    def __init__(self, config, output: str):
        super().__init__()
        self.config, self.output = config, output

    def expand(self, shards):
        import numpy as np

        cfg, out = self.config, self.output
        frequent = (
            shards
            | "Count units" >> beam.FlatMap(_shard_counts, cfg)
            | "Sum" >> beam.CombinePerKey(sum)
            | "Frequent" >> beam.Filter(lambda kv: kv[1] > cfg.max_docs)
            | "Hashes" >> beam.Keys()
        )

        def filter_one(shard, hashes):
            freq = np.array(sorted(hashes), dtype=np.uint64)
            return ss.filter_shard(ld.STAGE, shard, Path(out), lambda t, _s: ld.apply(t, freq, cfg))

        def save(hashes):  # the local driver's _work/frequent.npy (stats read its size)
            ld.save_frequent(Path(out) / "_work", np.array(sorted(hashes), dtype=np.uint64))

        frequent | "All frequent" >> beam.combiners.ToList() | "Save frequent" >> beam.Map(save)
        return shards | "Filter" >> beam.Map(filter_one, beam.pvalue.AsList(frequent))


# ------------------------------------------------------------------- per-document stages


class _FilterDoFn(beam.DoFn):
    """One shard -> its filter step (``stage`` module's ``filter_step``), models per worker."""

    def __init__(self, stage: str, output: str, config, extra: tuple = ()):
        self.stage, self.output, self.config, self.extra = stage, output, config, extra

    def process(self, shard):
        mod = {"decontaminate": dc, "classify": cl}[self.stage]
        yield mod.filter_step(shard, self.output, self.config, *self.extra)


# ------------------------------------------------------------------------------- driver


def run(
    stage: str,
    inputs: str,
    output: str,
    config,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Run one stage on Beam (FnApiRunner unless ``--runner=`` says otherwise); returns the
    stats.json the local driver would write."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; Beam runs {STAGES}")
    args = list(beam_args or [])
    runner_name = next(
        (a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "FnApiRunner"
    )
    args = [a for a in args if not a.startswith("--runner=")]
    if runner_name in ("FnApiRunner", "DirectRunner"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
    else:
        runner = runner_name
    mod = {"exact_dedup": ed, "line_dedup": ld, "decontaminate": dc, "classify": cl}[stage]
    t0 = time.perf_counter()
    shard_list, settings = mod.prepare(inputs, output, config, overwrite)
    with beam.Pipeline(runner=runner, options=PipelineOptions(args)) as p:
        shards = p | "Shards" >> beam.Create(shard_list) | "Spread" >> beam.Reshuffle()
        if stage == "exact_dedup":
            shards | ExactDedup(config, output)
        elif stage == "line_dedup":
            shards | LineDedup(config, output)
        else:
            extra = (settings["model_sha256"],) if stage == "classify" else ()
            shards | "Filter" >> beam.ParDo(_FilterDoFn(stage, output, config, extra))
    # the per-shard stats files are the record of what the workers did
    parts = [ss.filter_shard(mod.STAGE, s, Path(output), _never) for s in shard_list]
    seconds = time.perf_counter() - t0
    if stage == "exact_dedup":
        stats = ss.finish(ed.STAGE, Path(output), parts, seconds, settings, {"engine": "beam"})
    elif stage == "line_dedup":
        stats = ld.finish(output, parts, seconds, {**settings})
    elif stage == "decontaminate":
        stats = dc.finish(output, parts, seconds, settings, config)
    else:
        stats = cl.finish(output, parts, seconds, settings)
    return stats


def _never(table, shard):
    raise RuntimeError(f"shard {shard.name} was not finished by the Beam pipeline")
