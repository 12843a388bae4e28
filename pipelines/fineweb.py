"""The FineWeb per-document pass over one shard: read -> urlfilter -> extract -> langid -> quality -> pii.

``process_shard`` is the unit of work every engine schedules (the Prefect flow's worker
processes, single-stage flows, Beam). One pass per shard: each document goes through the steps
until one removes it. Outputs, all written to a temp file and renamed into place:

    OUT/documents/<shard>.parquet   kept documents (DOCUMENT_SCHEMA)
    OUT/removed/<shard>.parquet     removed documents with ``stage`` and ``reason`` (REMOVED_SCHEMA)
    OUT/stats/<shard>.json          per-stage in/kept/removed-by-reason/seconds, written LAST

The stats file marks the shard done: a re-run skips it and reuses its stats, so a crashed run
resumes where it stopped; it records the fingerprint of the settings that made the shard, and a
run with other settings redoes the shard instead (``pipelines.runinfo``). Parquet is written in
row groups while streaming, so memory stays flat however large the WARC is.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import registry
from pipelines.base import Step, all_steps, close_steps, end_shard, start_shard
from pipelines.io import AtomicFile, atomic_write_text
from pipelines.read import ReadCounters, read_documents, read_warc, shard_source
from pipelines.runinfo import current_marker, fingerprint
from pipelines.stats import StageStats, stats_from_json, stats_to_json
from schemas.config import CONFIG_PATHS, FinewebConfig
from schemas.documents import (
    DOCUMENT_COLUMNS,
    DOCUMENT_SCHEMA,
    REMOVED_COLUMNS,
    REMOVED_SCHEMA,
)

STAGES = registry.DOCUMENT_STAGES
_FLUSH_ROWS = 1000
_FLUSH_BYTES = 32 * 1024 * 1024
_PROGRESS_EVERY = 50
#: documents per batch through the steps (``first_removals``), and the text size that ends a
#: batch early: ~1 MB of pages per worker, so memory stays what one large page costs
BATCH_DOCS = 32
BATCH_CHARS = 1_000_000


def build_stage_steps(
    config: FinewebConfig, stages: list[str] | None = None
) -> list[tuple[str, list[Step]]]:
    """``[(stage, steps)]`` in pipeline order (``pipelines.registry``); ``quality`` is several
    steps, the others one; ``read`` is the source, not a step."""
    stages = list(STAGES if stages is None else stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; known: {STAGES}")
    groups = [(name, registry.get(name).steps(config)) for name in STAGES[1:] if name in stages]
    if "langid" in stages and "extract" in stages:
        from pipelines.prescreen import add_prescreen

        add_prescreen(groups, config.langid)  # before trafilatura (issue 13)
    return groups


def check_config_paths(config: FinewebConfig) -> None:
    """Refuse a configured path that does not exist in one line naming its key, before a run
    records itself or starts workers (the steps would only find out in their ``setup()``)."""
    for key, is_dir in CONFIG_PATHS.items():
        section, field = key.split(".")
        value = getattr(getattr(config, section), field)
        if value and not (Path(value).is_dir() if is_dir else Path(value).is_file()):
            kind = "directory" if is_dir else "file"
            raise FileNotFoundError(f"{key}: no such {kind}: {value}")


def first_removals(
    docs: list[dict],
    groups: list[tuple[str, list[Step]]],
    clock: Callable[[int, Step, float], None] | None = None,
) -> list[tuple[int, str] | None]:
    """Run the stage groups over ``docs``, each document stopping at its first removal: per
    document (index of the stage that removed it, reason), or None when every stage kept it.
    ``clock(stage_index, step, seconds)`` receives each step's time when given.

    Step by step: each step runs over every document of the batch still kept before the next
    step starts. The decisions are the same as one document at a time (a step sees the same
    documents in the same order, so even trafilatura's per-process dedup cache sees the same
    sequence); the speed is not: run back to back, a step keeps its model and code in the CPU
    caches (fastText's prediction costs half as much as when it alternates with trafilatura).
    The one definition of how stages chain."""
    hits: list[tuple[int, str] | None] = [None] * len(docs)
    alive = list(range(len(docs)))
    perf = time.perf_counter
    for i, (_, steps) in enumerate(groups):
        for step in steps:
            still = []
            for j in alive:
                if clock is None:
                    why = step.process(docs[j])
                else:
                    t0 = perf()
                    why = step.process(docs[j])
                    clock(i, step, perf() - t0)
                if why is None:
                    still.append(j)
                else:
                    hits[j] = (_owner(groups, i, step), why)
            alive = still
            if not alive:
                return hits
    return hits


def _owner(groups: list[tuple[str, list[Step]]], i: int, step: Step) -> int:
    """The stage a removal is counted in: the step's group, or the later stage it decides for
    (``Step.counts_as``: the language pre-screen runs before extraction, removes for langid)."""
    target = getattr(step, "counts_as", None)
    if target is not None:
        for j in range(i, len(groups)):
            if groups[j][0] == target:
                return j
    return i


def is_parquet_input(path: str) -> bool:
    return path.endswith(".parquet")


def shard_name(input_path: str) -> str:
    """``<file stem>-<8 hex of the absolute path/URL>``: readable, stable, unique per input."""
    key = input_path if "://" in input_path else os.path.abspath(input_path)
    stem = shard_source(input_path).removesuffix(".parquet")
    return f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def stats_path(output_dir: str | Path, input_path: str) -> Path:
    return Path(output_dir) / "stats" / f"{shard_name(input_path)}.json"


class _StreamingParquet:
    """Rows -> a temp Parquet file in row groups; ``commit()`` renames it into place."""

    def __init__(self, path: Path, schema: pa.Schema, columns: list[str]) -> None:
        self.path, self.schema, self.columns = path, schema, columns
        self.file = AtomicFile(path)
        self.tmp = self.file.tmp
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.rows: list[dict] = []
        self.bytes = 0
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        self.bytes += len(row.get("text") or "")
        if len(self.rows) >= _FLUSH_ROWS or self.bytes >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            cols = {c: [r.get(c) for r in self.rows] for c in self.columns}
            self.writer.write_table(
                pa.Table.from_pydict(cols, schema=self.schema)
            )  # pa.table() imports pandas
            self.rows, self.bytes = [], 0

    def commit(self) -> None:
        self.flush()
        self.writer.close()
        self.file.commit()

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.file.abort()


class _LanguagePartitions:
    """Kept documents split by ``language``: ``documents/<language>/<shard>.parquet`` (one
    streaming writer per language met; ``und`` when the document has none)."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.writers: dict[str, _StreamingParquet] = {}
        self.count = 0

    def add(self, row: dict) -> None:
        lang = row.get("language") or "und"
        w = self.writers.get(lang)
        if w is None:
            w = self.writers[lang] = _StreamingParquet(
                self.root / lang / f"{self.name}.parquet", DOCUMENT_SCHEMA, DOCUMENT_COLUMNS
            )
        w.add(row)
        self.count += 1

    def commit(self) -> None:
        for w in self.writers.values():
            w.commit()

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()


def clean_stale_temps(output_dir: str | Path, name: str) -> None:
    """Remove temp files a killed run left for shard ``name`` (temp + rename never leaves others)."""
    for sub in ("documents", "documents/*", "removed", "stats"):
        for p in Path(output_dir).glob(f"{sub}/.{name}.*.tmp"):
            p.unlink(missing_ok=True)


def _source_units(input_path: str, config: FinewebConfig, counters: ReadCounters):
    if is_parquet_input(input_path):
        n = 0
        for doc in read_documents(input_path):
            yield doc, None
            n += 1
            if config.limit is not None and n >= config.limit:
                return
    else:
        yield from read_warc(input_path, config.read, config.limit, counters)


def process_shard(
    input_path: str,
    output_dir: str,
    config: FinewebConfig | None = None,
    stages: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    groups: list[tuple[str, list[Step]]] | None = None,
) -> dict[str, StageStats]:
    """Run the steps over one input (WARC or documents Parquet); see the module docstring.

    ``progress(n)`` (optional) is called with the number of units read since its last call,
    every ``_PROGRESS_EVERY`` units and at the end (the flow's docs/s progress bar).
    ``groups`` (optional): steps already built by ``build_stage_steps(config, stages)`` for the
    same config and stages, reused across shards by a worker process, which closes them. The
    step lifecycle (``pipelines.base``): ``setup()`` (idempotent), ``start_shard()`` before the
    first unit, ``end_shard()`` after the last, so the output is the same as with fresh steps.
    """
    config = config or FinewebConfig()
    stages = list(STAGES if stages is None else stages)
    done = stats_path(output_dir, input_path)
    fp = fingerprint(config, stages)
    finished = current_marker(done, fp)
    if finished is not None:  # finished with these settings (else: redone, never reused)
        return stats_from_json(finished["stages"])
    name = shard_name(input_path)
    out = Path(output_dir)
    clean_stale_temps(out, name)
    t_start = time.perf_counter()
    own_steps = groups is None  # steps built here are closed here; a caller's steps by the caller
    if groups is None:
        groups = build_stage_steps(config, stages)
    steps = all_steps(groups)
    setup_s: dict[str, float] = {}
    for step in steps:  # once per worker: a second call on a set-up step does nothing
        t = time.perf_counter()
        step.setup()
        setup_s[step.name] = round(setup_s.get(step.name, 0.0) + time.perf_counter() - t, 4)
    start_shard(steps)

    stats: dict[str, StageStats] = {}
    if "read" in stages or not is_parquet_input(input_path):  # a WARC is always read
        stats["read"] = StageStats("read")
    for stage, _ in groups:
        stats[stage] = StageStats(stage)
    chain = [stats[stage] for stage, _ in groups]
    read_st = stats.get("read")
    # seconds per individual step (quality is several): stage seconds are their sum
    step_seconds: dict[str, float] = {}

    def clock(i: int, step: Step, seconds: float) -> None:
        chain[i].seconds += seconds
        step_seconds[step.name] = step_seconds.get(step.name, 0.0) + seconds

    if config.partition_by_language:
        kept = _LanguagePartitions(out / "documents", name)
    else:
        kept = _StreamingParquet(
            out / "documents" / f"{name}.parquet", DOCUMENT_SCHEMA, DOCUMENT_COLUMNS
        )
    removed = _StreamingParquet(
        out / "removed" / f"{name}.parquet", REMOVED_SCHEMA, REMOVED_COLUMNS
    )
    counters = ReadCounters()
    perf = time.perf_counter
    n_units = 0
    # documents wait in a small batch (BATCH_DOCS or BATCH_CHARS of text) and go through the
    # steps batch-wise (``first_removals``); outputs are written in input order
    batch: list[tuple[dict, str | None]] = []
    batch_chars = 0

    def flush() -> None:
        nonlocal batch_chars
        todo = [doc for doc, reason in batch if reason is None]
        hits = iter(first_removals(todo, groups, clock))
        for doc, reason in batch:
            if reason is not None:  # removed by the reader
                removed.add({**doc, "stage": "read", "reason": reason})
                continue
            hit = next(hits)
            passed = len(chain) if hit is None else hit[0]
            for st in chain[:passed]:
                st.docs_in += 1
                st.kept += 1
            if hit is None:
                kept.add(doc)
            else:
                i, why = hit
                chain[i].docs_in += 1
                chain[i].removed[why] += 1
                removed.add({**doc, "stage": groups[i][0], "reason": why})
        batch.clear()
        batch_chars = 0

    try:
        units = _source_units(input_path, config, counters)
        while True:
            t0 = perf()
            try:
                doc, reason = next(units)
            except StopIteration:
                if read_st is not None:
                    read_st.seconds += perf() - t0
                break
            n_units += 1
            if read_st is not None:
                read_st.seconds += perf() - t0
                read_st.docs_in += 1
                if reason is not None:
                    read_st.removed[reason] += 1
                else:
                    read_st.kept += 1
            batch.append((doc, reason))
            batch_chars += len(doc.get("text") or "")
            if len(batch) >= BATCH_DOCS or batch_chars >= BATCH_CHARS:
                flush()
            if progress is not None and n_units % _PROGRESS_EVERY == 0:
                progress(_PROGRESS_EVERY)
        flush()
        kept.commit()
        removed.commit()
        if progress is not None and n_units % _PROGRESS_EVERY:
            progress(n_units % _PROGRESS_EVERY)
    except BaseException:
        kept.abort()
        removed.abort()
        raise
    finally:
        end_shard(steps)
        if own_steps:
            close_steps(steps)
    for st in stats.values():
        st.check_conservation()
    payload = {
        "stages": stats_to_json(stats),
        "input": input_path,
        "shard": name,
        "fingerprint": fp,  # the settings that made this shard: a re-run trusts only its own
        "kept": kept.count,
        "removed": removed.count,
        "skipped_records": dict(sorted(counters.skipped.items())),
        # counters a step keeps besides removals (e.g. PII replacements by kind)
        "step_counts": {
            s.name: dict(sorted(s.counts.items())) for s in steps if getattr(s, "counts", None)
        },
        "setup_seconds": setup_s,
        "step_seconds": {k: round(v, 4) for k, v in step_seconds.items()},
        **{k: v for step in steps for k, v in (getattr(step, "stats_report", dict)()).items()},
        "seconds": round(time.perf_counter() - t_start, 4),
    }
    atomic_write_text(done, json.dumps(payload, indent=2))
    return stats
