"""Prefect flow of the MinHash dedup stage (``pipelines.dedup`` does the work).

Flow object ``dedup_flow`` (name "dedup", entrypoint ``flows/dedup.py:dedup_flow``). Its four
tasks are FineWeb's four steps; signatures, buckets (per band) and the filter (per shard) run
in ``workers`` spawned processes. Finished step outputs are skipped, so a re-run resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.report import normalize_path, publish
from flows.retry import RETRY  # transient I/O errors retried; finished steps are skipped
from pipelines import dedup as dd
from pipelines.runinfo import is_finished, prepare_output
from schemas.config import DedupConfig, as_config


def parallel(fn: Callable, calls: list[tuple], workers: int) -> list:
    """``fn(*args)`` for every args tuple, in ``workers`` spawned processes when more than one."""
    if workers <= 1 or len(calls) <= 1:
        return [fn(*a) for a in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(calls)), mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(fn, *zip(*calls, strict=True)))


@task(name="dedup-signatures", cache_policy=NO_CACHE, **RETRY)
def signatures_task(shards: list, work: str, config: DedupConfig, workers: int) -> None:
    parallel(dd.signature_step, [(p, n, o, Path(work), config) for n, p, o, _ in shards], workers)


@task(name="dedup-buckets", cache_policy=NO_CACHE, **RETRY)
def buckets_task(shards: list, work: str, config: DedupConfig, workers: int) -> None:
    parallel(dd.bucket_step, [(b, shards, Path(work), config) for b in range(config.bands)], workers)


@task(name="dedup-clusters", cache_policy=NO_CACHE, **RETRY)
def clusters_task(shards: list, work: str) -> None:
    dd.cluster_step(shards, Path(work))


@task(name="dedup-filter", cache_policy=NO_CACHE, **RETRY)
def filter_task(shards: list, work: str, output: str, workers: int) -> list:
    calls = [(p, n, o, r, Path(work), Path(output)) for n, p, o, r in shards]
    return [{dd.STAGE: st} for st in parallel(dd.filter_step, calls, workers)]


def prepare(input: str, output: str, config: DedupConfig, overwrite: bool = False) -> list:
    """The shards to dedup, after checking ``output`` against this run (``run.json``: refuses
    an output made with other settings or inputs unless ``overwrite``)."""
    shards = dd.plan(input)
    if not shards:
        raise FileNotFoundError(f"no documents Parquet under {input}")
    prepare_output(output, kind="dedup", config=config, inputs=[s[1] for s in shards],
                   overwrite=overwrite)
    return shards


def run_dedup(input: str, output: str, config: DedupConfig | None = None, workers: int = 1,
              summary: bool = True, overwrite: bool = False) -> dict:
    """The flow body (a plain function too): returns the written stats.json."""
    config = as_config(DedupConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    t0 = time.perf_counter()
    shards = prepare(input, output, config, overwrite)
    if is_finished(output):  # this very run (same settings and inputs) finished: not redone
        return {**json.loads((Path(output) / "stats.json").read_text()), "output": output,
                "artifacts": {}}
    work = str(Path(output) / "_work")
    signatures_task(shards, work, config, workers)
    buckets_task(shards, work, config, workers)
    clusters_task(shards, work)
    parts = filter_task(shards, work, output, workers)
    stats = dd.finish(Path(output), parts, time.perf_counter() - t0)
    artifacts = publish(stats, f"tokenmill dedup: {output}", "dedup", console=summary)
    return {**json.loads((Path(output) / "stats.json").read_text()), "output": output,
            "artifacts": artifacts}


@flow(name="dedup", log_prints=False, validate_parameters=False, persist_result=True,
      result_serializer="json")
def dedup_flow(input: str, output: str, config: DedupConfig | None = None, workers: int = 1) -> dict:
    """MinHash near-duplicate removal of a documents directory into ``output``."""
    return run_dedup(input, output, config, workers)
