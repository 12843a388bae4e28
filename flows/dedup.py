"""Prefect flow of the MinHash dedup stage (``pipelines.dedup`` does the work).

Flow object ``dedup_flow`` (name "dedup", entrypoint ``flows/dedup.py:dedup_flow``). Its tasks
are the passes of ``pipelines.dedup.dedup`` (the one pass driver); signatures, buckets (per band)
and the filter (per shard) run in ``workers`` spawned processes. Finished step outputs are
skipped, so a re-run resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

from flows import runtime

runtime.configure()

from prefect import flow  # noqa: E402

from flows.passes import task_pass  # noqa: E402
from pipelines import dedup as dd  # noqa: E402
from pipelines.pool import parallel, processes  # noqa: E402,F401 (parallel: kept importable here)
from pipelines.stats import render_summary  # noqa: E402
from schemas.config import DedupConfig, as_config  # noqa: E402


def run_dedup(input: str | list[str], output: str, config: DedupConfig | None = None, workers: int = 1,
              summary: bool = True) -> dict:
    """The flow body (a plain function too): ``pipelines.dedup.dedup``'s passes as task runs,
    per-shard/per-band work in ``workers`` processes; returns the written stats.json.
    ``input``: one documents directory or several (all used)."""
    config = as_config(DedupConfig, config)
    stats = dd.dedup(input, output, config, pmap=processes(workers), run_pass=task_pass)
    if summary:
        render_summary(stats, title=f"tokenmill dedup: {output}")
    return json.loads((Path(output) / "stats.json").read_text())


@flow(name="dedup", log_prints=False, validate_parameters=False)
def dedup_flow(input: str | list[str], output: str, config: DedupConfig | None = None,
               workers: int = 1) -> dict:
    """MinHash near-duplicate removal of one or several documents directories into ``output``."""
    return run_dedup(input, output, config, workers)
