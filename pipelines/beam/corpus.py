"""The corpus pipeline (fineweb -> dedup -> tokenize) as one Apache Beam pipeline that scales out.

Every transform calls the engine-free stage code (``pipelines.fineweb.process_shard`` with the
steps' one lifecycle, ``pipelines.dedup``, ``pipelines.tokenize``); Beam only moves data.
Outputs have the local engine's layout and schemas (``OUT/fineweb``, ``OUT/dedup``,
``OUT/tokenize``) and the same content, so either engine's output feeds the trainer.

Nothing is gathered onto one worker, and documents and tokens never cross a shuffle (they stay
in the shard files; only ids, band keys, edges, marks and counters are shuffled):

- fineweb: one element per WARC file; a worker copies it from any Beam filesystem to local
  disk, runs ``process_shard`` on it and writes the shard's outputs back (temp name + rename).
  A shard whose ``stats/<shard>.json`` exists is finished: a re-run does not recompute it.
- dedup: per shard, (id, shard, row, text hash) records and MinHash band keys are read from the
  documents file. Records grouped by id give exact copies (same id + same text =
  ``dedup:duplicate_id``; same id + different text = ``DuplicateIdError``); buckets give edges;
  connected components by large-star / small-star label propagation (Kiveris et al. 2014), one
  ``GroupByKey`` per half-round, unrolled ``cc_rounds`` times, then a check that the edges form
  stars centred on their smallest id (the fixed point): a run that did not converge fails with
  a message saying to raise ``--cc_rounds`` rather than writing a wrong answer. The centre is
  the smallest id of the component, as in the local engine; (leaf, centre) pairs are joined to
  the id's (shard, row) and the marks grouped by shard, where the shared
  ``pipelines.dedup.apply_duplicates`` writes the shard.
- tokenize: the same worker tokenizes the shard's kept documents into a key-sorted run file
  (pass 1); the only global values are the two per-split token totals (``CombinePerKey``),
  which give the number of key ranges; one task per output shard reads its key range from the
  run files (row-group statistics skip the rest) and writes it (``pipelines.tokenize``'s rule,
  so shards equal the local engine's).

All reading and writing goes through ``pipelines.beam.fs`` (Beam's ``FileSystems``), so local
paths, ``gs://`` and ``s3://`` all work. Runners: ``FnApiRunner`` locally (``--direct_num_workers=N
--direct_running_mode=multi_processing`` for processes); any other ``--runner`` (DataflowRunner,
FlinkRunner, SparkRunner) with its options is passed through.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import dedup as dd
from pipelines import tokenize as tk
from pipelines.beam import fs
from pipelines.stats import StageStats, merge_stats, stats_from_json, stats_to_json
from schemas.config import DedupConfig, FinewebConfig, TokenizeConfig
from schemas.tokens import ShardEntry

STATS = "stats"
SAME_ID = "same_id"
BANDS = "bands"
TOKENS = "tokens"
#: rows per row group of a tokenize run file: pass 2 skips row groups outside a shard's key range
RUN_ROW_GROUP = 2048
#: rows per row group of a dedup bucket file, and documents per bucket task (one band, one key range)
BUCKET_ROW_GROUP = 4096
BUCKET_TASK_DOCS = 100_000
#: large-star + small-star rounds; near-duplicate clusters converge in a few (a chain of 2**k
#: documents needs about k); the run fails loudly if this is not enough
CC_ROUNDS = 10
RUN_FILE = "beam-run.json"


class NotConvergedError(RuntimeError):
    pass


class TokenmillOptions(PipelineOptions):
    """tokenmill's own Beam flags (given like any other, e.g. ``--beam-option=--cc_rounds=16``)."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        parser.add_argument(
            "--cc_rounds",
            type=int,
            default=None,
            help=f"dedup connected-components rounds (default {CC_ROUNDS})",
        )


# ----------------------------------------------------------------------------------- fineweb


class FinewebShardDoFn(beam.DoFn):
    """WARC path -> (shard, its documents file); per-shard stats tagged ``stats``. Documents stay
    in the files: only names and small per-document records cross a shuffle downstream.

    The steps live for the worker: ``setup()`` builds and sets them up once, ``process_shard``
    calls ``start_shard()``/``end_shard()`` around every file exactly as the local engine does,
    ``teardown()`` closes them.
    """

    def __init__(self, config: FinewebConfig, out: str):
        self.config_json = config.model_dump_json()
        self.out = out

    def setup(self) -> None:
        from pipelines.base import all_steps, setup_steps
        from pipelines.fineweb import build_stage_steps

        self.config = FinewebConfig.model_validate_json(self.config_json)
        self.groups = build_stage_steps(self.config)
        setup_steps(all_steps(self.groups))

    def process(self, path: str):
        from pipelines.fineweb import process_shard, shard_name

        shard = shard_name(path)
        stats_file = fs.join(self.out, "stats", f"{shard}.json")
        docs_file = fs.join(self.out, "documents", f"{shard}.parquet")
        if fs.exists(stats_file):  # finished by an earlier run (written last)
            payload = fs.read_json(stats_file)
        else:
            with tempfile.TemporaryDirectory(prefix="tokenmill-beam-") as tmp:
                local = os.path.join(tmp, "in", path.rstrip("/").rsplit("/", 1)[-1])
                os.makedirs(os.path.dirname(local))
                try:
                    fs.copy_to_local(path, local)
                except Exception as e:  # noqa: BLE001 - one line naming the object
                    raise OSError(f"cannot read input {path}: {type(e).__name__}: {e}") from None
                out = os.path.join(tmp, "out")
                process_shard(local, out, self.config, groups=self.groups)
                name = shard_name(local)
                payload = fs.read_json(os.path.join(out, "stats", f"{name}.json"))
                payload.update(input=path, shard=shard)
                for sub in ("documents", "removed"):
                    data = Path(out, sub, f"{name}.parquet").read_bytes()
                    fs.write_bytes(fs.join(self.out, sub, f"{shard}.parquet"), data)
                fs.write_json(stats_file, payload)  # last: marks the shard finished
        yield beam.pvalue.TaggedOutput(STATS, stats_from_json(payload["stages"]))
        yield shard, docs_file

    def teardown(self) -> None:
        from pipelines.base import all_steps, close_steps

        close_steps(all_steps(getattr(self, "groups", [])))


class MergeStats(beam.CombineFn):
    """Per-shard ``{stage: StageStats}`` -> their sum (a few counters, not the documents)."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, stats):
        return merge_stats([acc, stats])

    def merge_accumulators(self, accs):
        return merge_stats(list(accs))

    def extract_output(self, acc):
        return acc


def _write_stage_stats(stats: dict, path: str, stages: list[str], extra: dict) -> dict:
    stats = {s: stats.get(s, StageStats(s)) for s in stages} | stats
    for st in stats.values():
        st.check_conservation()
    fs.write_json(path, {"stages": stats_to_json(stats), **extra})
    return stats


# ------------------------------------------------------------------------------------- dedup


class ShardKeysDoFn(beam.DoFn):
    """(shard, documents file) -> ``(id, (shard, row, text hash))`` records (to find same-id
    copies), and per band a bucket file ``OUT/dedup/_work/buckets/band-BBB/<shard>.parquet``
    (band key, id[, signature]) sorted by key, as the local engine's signature step: band keys
    never cross a shuffle. Tagged ``bands``: the shard's name once its files are written."""

    def __init__(self, config: DedupConfig, work: str):
        self.config, self.work = config, work

    def setup(self) -> None:
        self.mh = dd.hasher(self.config)

    def process(self, item):
        shard, path = item
        keep_sig = self.config.min_similarity is not None
        key_parts, id_parts, sig_parts = [], [], []
        with fs.open_read(path) as f:
            row = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1024, columns=["id", "text"]):
                ids, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                sigs, mask = dd.signatures_for_texts(texts, self.mh)
                for i, (doc_id, text) in enumerate(zip(ids, texts, strict=True)):
                    yield doc_id, (shard, row + i, dd.text_hash(text))
                row += len(ids)
                key_parts.append(self.mh.band_keys(sigs[mask]))
                id_parts += [i for i, ok in zip(ids, mask.tolist(), strict=True) if ok]
                if keep_sig:
                    sig_parts.append(sigs[mask])
        keys = np.concatenate(key_parts) if key_parts else np.zeros((0, self.mh.bands), np.uint64)
        id_col = pa.array(id_parts, pa.string())
        for band in range(self.mh.bands):
            cols = {"key": pa.array(keys[:, band], pa.uint64()), "id": id_col}
            if keep_sig:
                sig = (
                    np.concatenate(sig_parts)
                    if sig_parts
                    else np.zeros((0, self.mh.num_perm), np.uint64)
                )
                cols["sig"] = pa.array([r.tobytes() for r in sig], pa.binary())
            table = pa.table(cols)
            table = table.take(
                pa.compute.sort_indices(table, [("key", "ascending"), ("id", "ascending")])
            )
            fs.write_parquet(
                _bucket_file(self.work, band, shard), table, row_group_size=BUCKET_ROW_GROUP
            )
        yield beam.pvalue.TaggedOutput(BANDS, shard)


def _bucket_file(work: str, band: int, shard: str) -> str:
    return fs.join(work, "buckets", f"band-{band:03d}", f"{shard}.parquet")


def _bucket_tasks(_, n_docs: int, bands: int):
    """(band, key range, ranges) tasks: one band's buckets split so a task holds ~BUCKET_TASK_DOCS."""
    parts = max(1, -(-n_docs // BUCKET_TASK_DOCS))
    for band in range(bands):
        for part in range(parts):
            yield band, part, parts


def _key_row_groups(pf, key_col: int, parts: int, part: int) -> list[int]:
    """The row groups of ``pf`` that may hold keys (column ``key_col``) in key range ``part`` of
    ``parts`` (``tk.partition_of``, which ``tk.shard_of`` is too): those whose key min/max
    statistics span it, and those without statistics."""
    groups = []
    for g in range(pf.metadata.num_row_groups):
        st = pf.metadata.row_group(g).column(key_col).statistics
        if st is None or not st.has_min_max:
            groups.append(g)
            continue
        lo_hi = tk.partition_of(np.array([st.min, st.max], dtype=np.uint64), parts)
        if lo_hi[0] <= part <= lo_hi[1]:
            groups.append(g)
    return groups


def _bucket_edges(task, shards: list[str], work: str, config: DedupConfig):
    """One band's buckets in one key range, read from every shard's sorted bucket file (row
    groups outside the range are skipped) -> edges (``link_bucket``, as the local engine).
    Members are unique ids: an exact same-id copy is not a node, as in the local engine."""
    band, part, parts = task
    tables = []
    for shard in shards:
        with fs.open_read(_bucket_file(work, band, shard)) as f:
            pf = pq.ParquetFile(f)
            groups = _key_row_groups(pf, 0, parts, part)
            if groups:
                t = pf.read_row_groups(groups)
                sel = tk.partition_of(t.column("key").to_numpy(), parts) == part
                if sel.any():
                    tables.append(t.filter(pa.array(sel)))
    if not tables:
        return
    t = pa.concat_tables(tables)
    t = t.take(pa.compute.sort_indices(t, [("key", "ascending"), ("id", "ascending")]))
    keys, ids = t.column("key").to_numpy(), t.column("id").to_pylist()
    sigs = t.column("sig").to_pylist() if "sig" in t.column_names else None
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(keys)], strict=True):
        if hi - lo < 2:
            continue
        members, seen = [], set()
        for i in range(lo, hi):
            if ids[i] not in seen:
                seen.add(ids[i])
                members.append(i)
        if len(members) < 2:
            continue
        msigs = (
            np.stack([np.frombuffer(sigs[i], dtype=np.uint64) for i in members]) if sigs else None
        )
        for i, j in dd.link_bucket(
            np.arange(len(members)), msigs, config.min_similarity, config.rows
        ):
            a, b = ids[members[i]], ids[members[j]]
            yield (a, b) if a < b else (b, a)


class ResolveIdsDoFn(beam.DoFn):
    """(id, copies) -> (id, (shard, row)) of the first copy in (shard, row) order; exact copies
    tagged ``same_id`` as ``(shard, (row, REASON_SAME_ID, id))``; copies with a different text
    raise ``DuplicateIdError`` (the local engine's rule)."""

    def process(self, item):
        doc_id, copies = item
        copies = sorted(copies)
        shard0, row0, h = copies[0]
        for shard, row, th in copies[1:]:
            if th != h:
                raise dd.duplicate_id_error(doc_id, shard0, shard)
            yield beam.pvalue.TaggedOutput(SAME_ID, (shard, (row, dd.REASON_SAME_ID, doc_id)))
        yield doc_id, (shard0, row0)


def _both_ways(edge):
    a, b = edge
    yield a, b
    yield b, a


def _large_star(item):
    """Node u: every larger neighbour is re-attached to the smallest of u's neighbourhood."""
    u, nbrs = item
    nbrs = set(nbrs)
    m = min(nbrs | {u})
    for v in nbrs:
        if v > u:
            yield m, v


def _small_star(item):
    """Node u: u and its smaller neighbours are attached to the smallest of them."""
    u, nbrs = item
    group = {v for v in nbrs if v < u} | {u}
    m = min(group)
    for v in group:
        if v != m:
            yield m, v


def _star_roles(edge):
    a, b = edge  # a < b
    yield b, ("leaf", a)
    yield a, ("centre", b)


def _star_leaf(item, rounds: int):
    """At the fixed point every edge joins a leaf to the smallest id of its component and no
    node is both: anything else means the rounds were too few."""
    node, roles = item
    centres = {x for kind, x in roles if kind == "leaf"}
    if len(centres) > 1 or (centres and any(kind == "centre" for kind, _ in roles)):
        raise NotConvergedError(
            f"dedup connected components did not converge in {rounds} rounds (node {node!r}); "
            "re-run with a larger --cc_rounds (CLI: --beam-option=--cc_rounds=N)"
        )
    if centres:
        yield node, centres.pop()


def components(edges, rounds: int):
    """Undirected (a, b) edges -> (id, smallest id of its component) for every non-smallest id."""
    for r in range(rounds):
        edges = (
            edges
            | f"LS{r} both ways" >> beam.FlatMap(_both_ways)
            | f"LS{r} group" >> beam.GroupByKey()
            | f"LS{r}" >> beam.FlatMap(_large_star)
        )
        edges = (
            edges
            | f"SS{r} both ways" >> beam.FlatMap(_both_ways)
            | f"SS{r} group" >> beam.GroupByKey()
            | f"SS{r}" >> beam.FlatMap(_small_star)
        )
    return (
        edges
        | "Star roles" >> beam.FlatMap(_star_roles)
        | "Group roles" >> beam.GroupByKey()
        | "Leaves" >> beam.FlatMap(_star_leaf, rounds)
    )


def _mark(item):
    _, joined = item
    if joined["dup"]:
        for shard, row in joined["loc"]:
            yield shard, (row, dd.REASON, joined["dup"][0])


class WriteDedupShardDoFn(beam.DoFn):
    """(shard, {"file": [documents file], "marks": [(row, reason, target)]}) ->
    OUT/dedup/{documents,removed}/<shard>.parquet (``apply_duplicates``, rows in input order as
    the local engine writes them), then tokenize pass 1 for the shard's kept documents: a run
    file sorted by shuffle key under OUT/tokenize/_work/runs, and the shard's token totals per
    split downstream (tokens never cross a shuffle)."""

    def __init__(self, out: str, tok_out: str, config: TokenizeConfig):
        self.out, self.tok_out, self.config = out, tok_out, config

    def setup(self) -> None:
        self.tok = tk.cached_tokenizer(self.config.tokenizer)

    def process(self, item):
        from collections import Counter

        shard, joined = item
        (path,) = joined["file"]
        with fs.open_read(path) as f:
            table = pq.read_table(f)
        ids = table.column("id").to_pylist()
        marks = list(joined["marks"])
        dup_of = {ids[row]: target for row, reason, target in marks if reason == dd.REASON}
        same = {row for row, reason, _ in marks if reason == dd.REASON_SAME_ID}
        kept, gone = dd.apply_duplicates(table, dup_of, same)
        fs.write_parquet(fs.join(self.out, "documents", f"{shard}.parquet"), kept)
        fs.write_parquet(fs.join(self.out, "removed", f"{shard}.parquet"), gone)
        st = StageStats(dd.STAGE, len(table), len(kept), Counter(gone.column("reason").to_pylist()))
        yield beam.pvalue.TaggedOutput(STATS, {dd.STAGE: st})
        pieces = [
            tk.tokenize_rows(
                b.column(0).to_pylist(), b.column(1).to_pylist(), self.tok, self.config
            )
            for b in kept.select(["id", "text"]).to_batches(max_chunksize=self.config.batch_docs)
        ]
        runs = tk.sort_rows(pa.concat_tables(pieces)) if pieces else tk.RUN_SCHEMA.empty_table()
        run_path = fs.join(self.tok_out, "_work", "runs", f"{shard}.parquet")
        fs.write_parquet(run_path, runs, compression="lz4", row_group_size=RUN_ROW_GROUP)
        val = runs.column("val").to_numpy(zero_copy_only=False).astype(bool)
        ntok = runs.column("num_tokens").to_numpy().astype(np.int64)
        yield beam.pvalue.TaggedOutput(TOKENS, ("train", int(ntok[~val].sum())))
        yield beam.pvalue.TaggedOutput(TOKENS, ("val", int(ntok[val].sum())))
        yield run_path


# ---------------------------------------------------------------------------------- tokenize


def _output_shards(_, split_tokens: dict, budget: int):
    """Every (split, shard index, shards of the split): ``ceil(split tokens / budget)`` ranges."""
    for split, n in tk.shard_counts(split_tokens, budget).items():
        for s in range(n):
            yield split, s, n


def _write_token_shard(item, runs: list[str], out: str) -> tuple[str, dict] | None:
    """One output shard: the rows of its split and key range from every run file (row groups
    whose key statistics lie outside the range are not read), in key order."""
    split, shard, n = item
    want_val = split == "val"
    parts = []
    for path in runs:
        with fs.open_read(path) as f:
            pf = pq.ParquetFile(f)
            key_col = pf.schema_arrow.get_field_index("key")
            groups = _key_row_groups(pf, key_col, n, shard)
            if groups:
                t = pf.read_row_groups(groups)
                sel = (tk.shard_of(t.column("key").to_numpy(), n) == shard) & (
                    t.column("val").to_numpy(zero_copy_only=False).astype(bool) == want_val
                )
                if sel.any():
                    parts.append(t.filter(pa.array(sel)))
    if not parts:
        return None
    table = tk.shard_table(pa.concat_tables(parts))
    fs.write_parquet(fs.join(out, tk.shard_file(split, shard)), table)
    return split, tk.shard_entry(split, shard, table).model_dump()


def _write_manifest(entries: list, out: str, config: TokenizeConfig) -> None:
    entries = [e for e in entries if e is not None]
    tok = tk.cached_tokenizer(config.tokenizer)
    info = tk.tokenizer_info(tok)
    ref = info["name"]
    if Path(ref).is_file():  # a trained tokenizer travels with the shards, as locally
        fs.write_bytes(fs.join(out, "tokenizer.json"), Path(ref).read_bytes())
        ref = "tokenizer.json"
    shards: dict[str, list[ShardEntry]] = {}
    for split, e in entries:
        shards.setdefault(split, []).append(ShardEntry(**e))
    manifest = tk.make_manifest(config, info, ref, shards)
    n = sum(s.documents for s in manifest.splits.values())
    fs.write_json(
        fs.join(out, "stats.json"),
        {
            "stages": stats_to_json({tk.STAGE: StageStats(tk.STAGE, n, n)}),
            "tokens": {s: v.tokens for s, v in manifest.splits.items()},
        },
    )
    fs.write_bytes(fs.join(out, "manifest.json"), manifest.model_dump_json(indent=2).encode())


# ------------------------------------------------------------------------------------ graph


def build(
    p: beam.Pipeline,
    files: list[str],
    output: str,
    fw: FinewebConfig,
    dc: DedupConfig,
    tc: TokenizeConfig,
    cc_rounds: int = CC_ROUNDS,
) -> None:
    """Add the whole corpus pipeline to ``p``."""
    from pipelines.fineweb import STAGES

    fwo = fs.join(output, "fineweb")
    res = (
        p
        | "Files" >> beam.Create(files)
        | "Spread files" >> beam.Reshuffle()
        | "FineWeb" >> beam.ParDo(FinewebShardDoFn(fw, fwo)).with_outputs(STATS, main="kept")
    )
    (
        res[STATS]
        | "FineWeb stats" >> beam.CombineGlobally(MergeStats())
        | "Write FineWeb stats"
        >> beam.Map(
            _write_stage_stats,
            fs.join(fwo, "stats.json"),
            STAGES,
            {"inputs": files, "engine": "beam"},
        )
    )

    dedup_and_tokenize(res.kept, output, dc, tc, cc_rounds)


def dedup_and_tokenize(
    shards, output: str, dc: DedupConfig, tc: TokenizeConfig, cc_rounds: int = CC_ROUNDS
) -> None:
    """Dedup + tokenize of ``shards`` ((shard name, documents file) elements) into
    OUT/dedup and OUT/tokenize. Only ids, band keys, edges, marks and counters are shuffled;
    documents and tokens are read from and written to files by the worker that owns them."""
    ddo, tko = fs.join(output, "dedup"), fs.join(output, "tokenize")
    work = fs.join(ddo, "_work")
    recs = shards | "Dedup keys" >> beam.ParDo(ShardKeysDoFn(dc, work)).with_outputs(
        BANDS, main="ids"
    )
    ids = (
        recs.ids
        | "Group ids" >> beam.GroupByKey()
        | "Resolve ids" >> beam.ParDo(ResolveIdsDoFn()).with_outputs(SAME_ID, main="loc")
    )
    n_docs = recs.ids | "Count docs" >> beam.combiners.Count.Globally()
    edges = (
        shards.pipeline
        | "Bucket start" >> beam.Create([None])
        | "Bucket tasks" >> beam.FlatMap(_bucket_tasks, beam.pvalue.AsSingleton(n_docs), dc.bands)
        | "Spread bucket tasks" >> beam.Reshuffle()
        | "Link" >> beam.FlatMap(_bucket_edges, beam.pvalue.AsList(recs[BANDS]), work, dc)
        | "Distinct edges" >> beam.Distinct()
    )  # a pair usually collides in several bands
    dup = components(edges, cc_rounds)
    marks = (
        {"loc": ids.loc, "dup": dup}
        | "Join clusters" >> beam.CoGroupByKey()
        | "Mark" >> beam.FlatMap(_mark)
    )
    all_marks = (marks, ids[SAME_ID]) | "All marks" >> beam.Flatten()
    written = (
        {"file": shards, "marks": all_marks}
        | "Marks by shard" >> beam.CoGroupByKey()
        | "Write dedup + runs"
        >> beam.ParDo(WriteDedupShardDoFn(ddo, tko, tc)).with_outputs(STATS, TOKENS, main="runs")
    )
    (
        written[STATS]
        | "Dedup stats" >> beam.CombineGlobally(MergeStats())
        | "Write dedup stats"
        >> beam.Map(_write_stage_stats, fs.join(ddo, "stats.json"), [dd.STAGE], {})
    )

    # tokenize pass 2: per-split totals -> key ranges -> one task per output shard
    totals = written[TOKENS] | "Sum split tokens" >> beam.CombinePerKey(sum)
    runs = beam.pvalue.AsList(written.runs)  # one file name per input shard
    entries = (
        shards.pipeline
        | "One" >> beam.Create([None])
        | "Output shards"
        >> beam.FlatMap(_output_shards, beam.pvalue.AsDict(totals), tc.shard_tokens)
        | "Spread shards" >> beam.Reshuffle()
        | "Write shards" >> beam.Map(_write_token_shard, runs, tko)
    )
    (
        entries
        | "Shard list" >> beam.combiners.ToList()  # one small entry per shard file
        | "Write manifest" >> beam.Map(_write_manifest, tko, tc)
    )


def _run_record(files: list[str], fw: FinewebConfig, dc: DedupConfig, tc: TokenizeConfig) -> dict:
    return {
        "engine": "beam",
        "inputs": files,
        "fineweb": fw.model_dump(mode="json"),
        "dedup": dc.model_dump(mode="json"),
        "tokenize": tc.model_dump(mode="json"),
    }


def run(
    inputs: list[str],
    output: str,
    fw: FinewebConfig | None = None,
    dc: DedupConfig | None = None,
    tc: TokenizeConfig | None = None,
    beam_args: list[str] | None = None,
    cc_rounds: int | None = None,
) -> dict:
    """Run the Beam pipeline; returns OUT/stats.json (every stage's stats + the run's config).

    A finished output made with the same inputs and settings is returned as is; an output made
    with other inputs or settings is refused (never mixed with or mistaken for this run's);
    an interrupted one resumes (finished fineweb shards are read back, not recomputed).
    """
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import TestOptions

    from pipelines.fineweb import STAGES

    fw, dc, tc = fw or FinewebConfig(), dc or DedupConfig(), tc or TokenizeConfig()
    args = list(beam_args or [])
    runner_name = next(
        (a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "FnApiRunner"
    )
    args = [a for a in args if not a.startswith("--runner=")]
    options = PipelineOptions(args)
    FileSystems.set_options(options)  # e.g. --s3_endpoint_url for the driver's own reads/writes
    cc_rounds = cc_rounds or options.view_as(TokenmillOptions).cc_rounds or CC_ROUNDS
    output = output.rstrip("/")
    if "://" not in output:
        output = os.path.abspath(output)
    files = fs.expand(list(inputs))
    record = _run_record(files, fw, dc, tc)
    run_file = fs.join(output, RUN_FILE)
    dry_run = str(options.view_as(TestOptions).dry_run).lower() in ("true", "1")
    if not dry_run and fs.exists(run_file):
        if fs.read_json(run_file) != record:
            raise ValueError(
                f"{output} holds a Beam run with other inputs or settings "
                f"(see {run_file}); use a new --output or delete it"
            )
        if fs.exists(fs.join(output, "stats.json")):
            return fs.read_json(fs.join(output, "stats.json"))
    if not dry_run:
        fs.write_json(run_file, record)
    if runner_name in ("FnApiRunner", "DirectRunner"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
    else:
        runner = runner_name
    with beam.Pipeline(runner=runner, options=options) as p:
        build(p, files, output, fw, dc, tc, cc_rounds)
    if dry_run:
        return {"dry_run": True, "runner": runner_name}
    parts = [
        stats_from_json(fs.read_json(fs.join(output, s, "stats.json"))["stages"])
        for s in ("fineweb", "dedup", "tokenize")
    ]
    stats = merge_stats(parts)
    for st in stats.values():
        st.check_conservation()
    ordered = {s: stats[s] for s in [*STAGES, dd.STAGE, tk.STAGE] if s in stats}
    tokens = fs.read_json(fs.join(output, "tokenize", "stats.json"))["tokens"]
    payload = {
        "stages": stats_to_json(ordered),
        "engine": "beam",
        "runner": runner_name,
        "tokens": tokens,
        "config": record,
    }
    fs.write_json(fs.join(output, "stats.json"), payload)
    return payload
