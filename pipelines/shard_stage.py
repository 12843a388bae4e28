"""The driver every whole-corpus stage of issue 14 shares: settings check, per-shard filter with
resume, and the final stats.json.

Layout of a stage output (the MinHash stage's): ``OUT/documents/<shard>.parquet`` (kept),
``OUT/removed/<shard>.parquet`` (with ``stage``/``reason``), ``OUT/stats/<shard>.json`` (written
LAST: it marks the shard finished), ``OUT/stats.json``, work files under ``OUT/_work``.

``OUT/run.json`` (``pipelines.runinfo``, the project's one record of what made an output) is
written before any work: the stage, its configuration plus what else decides the output (model
file hash, eval files), and the input shards (size, mtime). A re-run with other settings or
other inputs refuses with one line (``SettingsChanged``, i.e. ``runinfo.OutputMismatchError``)
instead of mixing old and new results, unless ``overwrite`` deletes the old output first; the
same settings resume. Everything a stage writes goes through temp file + rename, so
``kill -9`` then a re-run gives the same files as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from pipelines.io import atomic_write_parquet, atomic_write_text, documents_dir, parquet_files
from pipelines.runinfo import OutputMismatchError, prepare_output
from pipelines.stats import StageStats, merge_stats, write_stats
from schemas.documents import DOCUMENT_SCHEMA, REMOVED_SCHEMA

#: The output directory holds work made with other settings or inputs (a user error: the CLI
#: shows it as one line).
SettingsChanged = OutputMismatchError


@dataclass(frozen=True)
class Shard:
    name: str
    path: Path
    offset: int  # global index of the shard's first row (shards in name order)
    rows: int


@dataclass
class ShardResult:
    """What a stage's per-shard function returns: kept and removed rows, extra counters."""

    kept: pa.Table
    removed: pa.Table
    counts: Counter = field(default_factory=Counter)


def plan(input_dir: str | Path) -> list[Shard]:
    """Every input shard in name order; an input that has none is an error, not an empty run."""
    out, offset = [], 0
    d = documents_dir(input_dir)
    for f in parquet_files(d):
        rows = pq.ParquetFile(f).metadata.num_rows
        out.append(Shard(f.stem, f, offset, rows))
        offset += rows
    if not out:
        raise FileNotFoundError(f"no documents Parquet under {input_dir}")
    return out


def expand_files(patterns: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """Local files, directories (recursively) and globs -> the sorted files ending in
    ``suffixes`` (hidden and ``_`` work files left out); a pattern matching nothing is an error."""
    import glob
    import os

    out: list[str] = []
    for pat in patterns:
        if os.path.isdir(pat):
            found = glob.glob(os.path.join(pat, "**", "*"), recursive=True)
        else:
            found = glob.glob(pat, recursive=True)
            if not found:
                raise FileNotFoundError(f"no file matches {pat!r}")
        out.extend(
            f
            for f in found
            if os.path.isfile(f)
            and f.endswith(suffixes)
            and not any(part.startswith((".", "_")) for part in Path(f).parts[-2:])
        )
    return sorted(dict.fromkeys(out))


def settings_payload(
    stage: str, config: dict, shards: list[Shard], extra: dict | None = None
) -> dict:
    return {
        "stage": stage,
        "config": config,
        "inputs": [
            {"shard": s.name, "path": str(s.path.resolve()), "rows": s.rows} for s in shards
        ],
        **(extra or {}),
    }


def check_settings(out: Path, payload: dict, overwrite: bool = False) -> None:
    """Record this run in ``run.json`` on a fresh output; refuse (or, with ``overwrite``,
    delete) one made with other settings or inputs."""
    decides = {
        **payload["config"],
        **{k: v for k, v in payload.items() if k not in ("stage", "config", "inputs")},
    }
    prepare_output(
        out,
        kind=payload["stage"],
        config=decides,
        inputs=[i["path"] for i in payload["inputs"]],
        overwrite=overwrite,
    )


def prepare(
    stage: str, inputs: str | Path, output: str | Path, config: BaseModel, overwrite: bool = False
) -> tuple[list[Shard], dict]:
    """Plan the shards and check/record the settings (a stage's first step, every engine)."""
    shards = plan(inputs)
    settings = settings_payload(stage, config.model_dump(), shards)
    check_settings(Path(output), settings, overwrite)
    return shards, settings


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select/cast ``table`` to exactly ``schema`` (absent columns become null)."""
    cols = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def removed_rows(
    table: pa.Table, stage: str, reasons: list[str], duplicate_of: list[str | None] | None = None
) -> pa.Table:
    """``table`` rows as REMOVED_SCHEMA rows with ``stage``, per-row ``reason``s and links."""
    n = len(table)
    t = conform(table, DOCUMENT_SCHEMA)
    t = (
        t.append_column("stage", pa.array([stage] * n, pa.string()))
        .append_column("reason", pa.array(reasons, pa.string()))
        .append_column("duplicate_of", pa.array(duplicate_of or [None] * n, pa.string()))
    )
    return conform(t, REMOVED_SCHEMA)


def shard_stats_path(out: Path, shard: Shard) -> Path:
    return out / "stats" / f"{shard.name}.json"


def filter_shard(
    stage: str, shard: Shard, out: Path, fn: Callable[[pa.Table, Shard], ShardResult]
) -> tuple[StageStats, Counter]:
    """Run ``fn`` over one shard unless it is finished; write kept, removed, then its stats."""
    done = shard_stats_path(out, shard)
    if done.exists():
        d = json.loads(done.read_text())
        return StageStats.from_dict(stage, d["stage"]), Counter(d.get("counts", {}))
    t0 = time.perf_counter()
    table = pq.read_table(shard.path)
    res = fn(table, shard)
    kept = conform(res.kept, DOCUMENT_SCHEMA)
    gone = conform(res.removed, REMOVED_SCHEMA)
    atomic_write_parquet(out / "documents" / f"{shard.name}.parquet", kept)
    atomic_write_parquet(out / "removed" / f"{shard.name}.parquet", gone)
    reasons = Counter(gone.column("reason").to_pylist())
    st = StageStats(stage, len(table), len(kept), reasons, time.perf_counter() - t0)
    st.check_conservation()
    atomic_write_text(done, json.dumps({"stage": st.to_dict(), "counts": dict(res.counts)}))
    return st, res.counts


def finish(
    stage: str,
    out: Path,
    parts: list[tuple[StageStats, Counter]],
    seconds: float,
    settings: dict,
    extra: dict | None = None,
) -> dict:
    """Merge the shards' stats, check conservation, write ``stats.json``; returns its payload."""
    stats = merge_stats([{stage: st} for st, _ in parts]) or {stage: StageStats(stage)}
    stats[stage].seconds = seconds
    stats[stage].check_conservation()
    counts: Counter = Counter()
    for _, c in parts:
        counts.update(c)
    write_stats(
        out / "stats.json",
        stats,
        {
            "config": settings["config"],
            "inputs": settings["inputs"],
            "counts": dict(sorted(counts.items())),
            **(extra or {}),
        },
    )
    return json.loads((out / "stats.json").read_text())
