"""Prefect flow of the MinHash dedup stage (``pipelines.dedup`` does the work).

Flow object ``dedup_flow`` (name "dedup", entrypoint ``flows/dedup.py:dedup_flow``). Its tasks
are the passes of ``pipelines.dedup.dedup`` (the one pass driver); signatures, buckets (per band)
and the filter (per shard) run in ``workers`` spawned processes. Finished step outputs are
skipped, so a re-run resumes.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.passes import run_stage, task_pass
from flows.report import STATS_RESULT, normalize_path
from pipelines import dedup as dd
from pipelines.pool import parallel, processes  # noqa: F401 (parallel: kept importable here)
from pipelines.runinfo import prepare_output
from schemas.config import DedupConfig, as_config


def prepare(
    input: str | list[str], output: str, config: DedupConfig, overwrite: bool = False
) -> list:
    """The shards to dedup, after checking ``output`` against this run (``run.json``: refuses
    an output made with other settings or inputs unless ``overwrite``)."""
    shards = dd.plan(input)
    if not shards:
        raise FileNotFoundError(f"no documents Parquet under {input}")
    prepare_output(
        output, kind="dedup", config=config, inputs=[s[1] for s in shards], overwrite=overwrite
    )
    return shards


def run_dedup(
    input: str | list[str],
    output: str,
    config: DedupConfig | None = None,
    workers: int = 1,
    summary: bool = True,
    overwrite: bool = False,
) -> dict:
    """The flow body (a plain function too): ``pipelines.dedup.dedup``'s passes as task runs,
    per-shard/per-band work in ``workers`` processes; returns the written stats.json.
    ``input``: one documents directory or several (all used)."""
    config = as_config(DedupConfig, config)
    inputs = [normalize_path(i) for i in ([input] if isinstance(input, (str, Path)) else input)]
    output = normalize_path(output)
    prepare(inputs, output, config, overwrite)
    return run_stage(
        "dedup",
        output,
        summary,
        lambda: dd.dedup(inputs, output, config, pmap=processes(workers), run_pass=task_pass),
    )


@flow(name="dedup", log_prints=False, **STATS_RESULT)
def dedup_flow(
    input: str | list[str], output: str, config: DedupConfig | None = None, workers: int = 1
) -> dict:
    """MinHash near-duplicate removal of one or several documents directories into ``output``."""
    return run_dedup(input, output, config, workers)
