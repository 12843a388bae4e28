"""Prefect flows of the issue-14 corpus stages: exact-dedup, line-dedup, decontaminate,
classify, and the quality classifier's annotate / train.

The stage logic is in ``pipelines/`` (one module per stage); a flow only schedules its steps:
per-shard steps run in ``workers`` spawned processes (``flows.dedup.parallel``), corpus-wide
steps (resolve, merge) once. Finished step outputs are skipped, so a re-run resumes; a re-run
with other settings refuses (``pipelines.shard_stage.SettingsChanged``).
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.dedup import parallel
from flows.report import STATS_RESULT, normalize_path, publish
from flows.retry import RETRY
from pipelines import classify as cl
from pipelines import decontaminate as dc
from pipelines import exact_dedup as ed
from pipelines import line_dedup as ld
from pipelines import shard_stage as ss
from pipelines.stats import stats_from_json
from schemas.config import (
    AnnotateConfig,
    ClassifyConfig,
    DecontaminateConfig,
    ExactDedupConfig,
    LineDedupConfig,
    QualityTrainConfig,
    as_config,
)


def _report(stats: dict, name: str, output: str, console: bool) -> dict:
    """Log the counts, create the Prefect artifacts, print the table (``flows.report``)."""
    artifacts = publish(
        stats_from_json(stats["stages"]), f"tokenmill {name}: {output}", name, console=console
    )
    return {**stats, "output": output, "artifacts": artifacts}


@task(name="shard-steps", cache_policy=NO_CACHE, **RETRY)
def shard_steps(fn, calls: list[tuple], workers: int) -> list:
    """One per-shard step over every shard, in ``workers`` processes."""
    return parallel(fn, calls, workers)


@task(name="corpus-step", cache_policy=NO_CACHE, **RETRY)
def corpus_step(fn, *args) -> None:
    """A step over the whole corpus (resolve / merge); skipped when its output exists."""
    fn(*args)


def run_exact_dedup(
    input: str,
    output: str,
    config: ExactDedupConfig | dict | None = None,
    workers: int = 1,
    summary: bool = True,
    overwrite: bool = False,
) -> dict:
    config = as_config(ExactDedupConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    t0 = time.perf_counter()
    shards, settings = ed.prepare(input, output, config, overwrite)
    work = Path(output) / "_work"
    shard_steps(ed.keys_step, [(s, work) for s in shards], workers)
    corpus_step(ed.resolve_step, shards, work, config)
    parts = shard_steps(ed.filter_step, [(s, output) for s in shards], workers)
    stats = ss.finish(ed.STAGE, Path(output), parts, time.perf_counter() - t0, settings)
    return _report(stats, "exact-dedup", output, summary)


def run_line_dedup(
    input: str,
    output: str,
    config: LineDedupConfig | dict | None = None,
    workers: int = 1,
    summary: bool = True,
    overwrite: bool = False,
) -> dict:
    config = as_config(LineDedupConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    t0 = time.perf_counter()
    shards, settings = ld.prepare(input, output, config, overwrite)
    work = Path(output) / "_work"
    shard_steps(ld.count_step, [(s, work, config) for s in shards], workers)
    corpus_step(ld.merge_step, shards, work, config)
    parts = shard_steps(ld.filter_step, [(s, output, config) for s in shards], workers)
    stats = ld.finish(output, parts, time.perf_counter() - t0, settings)
    return _report(stats, "line-dedup", output, summary)


def run_decontaminate(
    input: str,
    output: str,
    config: DecontaminateConfig | dict | None,
    workers: int = 1,
    summary: bool = True,
    overwrite: bool = False,
) -> dict:
    config = as_config(DecontaminateConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    t0 = time.perf_counter()
    shards, settings = dc.prepare(input, output, config, overwrite)
    parts = shard_steps(dc.filter_step, [(s, output, config) for s in shards], workers)
    stats = dc.finish(output, parts, time.perf_counter() - t0, settings, config)
    return _report(stats, "decontaminate", output, summary)


def run_classify(
    input: str,
    output: str,
    config: ClassifyConfig | dict | None,
    workers: int = 1,
    summary: bool = True,
    overwrite: bool = False,
) -> dict:
    config = as_config(ClassifyConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    t0 = time.perf_counter()
    shards, settings = cl.prepare(input, output, config, overwrite)
    parts = shard_steps(
        cl.filter_step, [(s, output, config, settings["model_sha256"]) for s in shards], workers
    )
    stats = cl.finish(output, parts, time.perf_counter() - t0, settings)
    return _report(stats, "classify", output, summary)


@flow(name="exact_dedup", log_prints=False, **STATS_RESULT)
def exact_dedup_flow(
    input: str,
    output: str,
    config: ExactDedupConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
) -> dict:
    """Exact document and URL dedup of a documents directory into ``output``."""
    return run_exact_dedup(input, output, config, workers, overwrite=overwrite)


@flow(name="line_dedup", log_prints=False, **STATS_RESULT)
def line_dedup_flow(
    input: str,
    output: str,
    config: LineDedupConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
) -> dict:
    """Remove lines/paragraphs repeated across documents (CCNet / dolma)."""
    return run_line_dedup(input, output, config, workers, overwrite=overwrite)


@flow(name="decontaminate", log_prints=False, **STATS_RESULT)
def decontaminate_flow(
    input: str,
    output: str,
    config: DecontaminateConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
) -> dict:
    """Remove documents sharing n-gram spans with evaluation sets (``config.against`` is
    required: without it the run stops with a one-line config error)."""
    return run_decontaminate(input, output, config, workers, overwrite=overwrite)


@flow(name="classify", log_prints=False, **STATS_RESULT)
def classify_flow(
    input: str,
    output: str,
    config: ClassifyConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
) -> dict:
    """Score documents with a quality model (``config.model`` is required); remove those below
    the threshold."""
    return run_classify(input, output, config, workers, overwrite=overwrite)


@flow(name="quality-annotate", log_prints=False, **STATS_RESULT)
def annotate_flow(
    input: str,
    output: str,
    llm: dict,
    config: AnnotateConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """LLM 0-5 annotation of a documents sample (``llm``: an ``LLMConfig`` as data)."""
    from pipelines.annotate import annotate
    from pipelines.llm import LLMConfig, make_llm

    llm_cfg = as_config(LLMConfig, llm)
    if llm_cfg.cache_dir is None:
        llm_cfg = llm_cfg.model_copy(update={"cache_dir": str(Path(output) / "_cache")})
    client = make_llm(llm_cfg)
    try:
        return annotate(input, output, client, as_config(AnnotateConfig, config), overwrite)
    finally:
        client.close()


@flow(name="quality-train", log_prints=False, **STATS_RESULT)
def train_flow(labels: list[str], output: str, config: QualityTrainConfig | None = None) -> dict:
    """Train the quality classifier; returns the held-out report."""
    from pipelines.annotate import load_labels
    from pipelines.classify import train

    return train(load_labels(labels), output, as_config(QualityTrainConfig, config))
