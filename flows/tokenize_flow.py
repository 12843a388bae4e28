"""Prefect flow of the tokenize stage (``pipelines.tokenize`` does the work).
(Named ``tokenize_flow`` rather than ``tokenize``: Prefect puts an entrypoint's folder on
``sys.path``, where a ``tokenize.py`` would shadow the standard library's and break every
process that imports ``linecache``.)

Flow object ``tokenize_flow`` (name "tokenize", entrypoint ``flows/tokenize_flow.py:tokenize_flow``):
pass 1 tokenizes input shards in ``workers`` spawned processes (finished runs are skipped),
pass 2 writes the shuffled train/val shards and ``manifest.json`` (skipped when present).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.dedup import parallel
from flows.report import normalize_path, publish
from flows.retry import RETRY  # transient I/O errors retried; finished steps are skipped
from pipelines import tokenize as tk
from pipelines.io import documents_dir, parquet_files
from pipelines.runinfo import is_finished, prepare_output
from pipelines.stats import merge_stats, write_stats
from schemas.config import TokenizeConfig, as_config


@task(name="tokenize-runs", cache_policy=NO_CACHE, **RETRY)
def runs_task(files: list[Path], work: str, config: TokenizeConfig, parts: int, workers: int) -> list:
    return parallel(tk.tokenize_shard, [(f, Path(work), config, parts) for f in files], workers)


@task(name="tokenize-shards", cache_policy=NO_CACHE, **RETRY)
def shards_task(files: list[Path], output: str, config: TokenizeConfig, parts: int) -> dict:
    out = Path(output)
    if (out / "manifest.json").exists():
        return json.loads((out / "manifest.json").read_text())
    runs = [out / "_work" / "runs" / f"{f.stem}.parquet" for f in files]
    info = tk.tokenizer_info(tk.cached_tokenizer(config.tokenizer))
    return tk.write_shards(tk._partition_tables(runs, parts), out, config, info)


def prepare(input: str, output: str, config: TokenizeConfig, overwrite: bool = False) -> list[Path]:
    """The documents files to tokenize, after checking ``output`` against this run
    (``run.json``: refuses other settings or inputs unless ``overwrite``)."""
    files = parquet_files(documents_dir(input))
    if not files:
        raise FileNotFoundError(f"no documents Parquet under {input}")
    prepare_output(output, kind="tokenize", config=config, inputs=files, overwrite=overwrite)
    return files


def run_tokenize(input: str, output: str, config: TokenizeConfig | None = None, workers: int = 1,
                 summary: bool = True, overwrite: bool = False) -> dict:
    config = as_config(TokenizeConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    t0 = time.perf_counter()
    files = prepare(input, output, config, overwrite)
    if is_finished(output):  # this very run (same settings and inputs) finished: not redone
        return {**json.loads((Path(output) / "stats.json").read_text()), "output": output,
                "artifacts": {}}
    parts = tk.plan_partitions(input, config)
    stats = merge_stats([{tk.STAGE: st} for st in runs_task(files, str(Path(output) / "_work"), config, parts, workers)])
    manifest = shards_task(files, output, config, parts)
    stats[tk.STAGE].seconds = time.perf_counter() - t0
    stats[tk.STAGE].check_conservation()
    write_stats(Path(output) / "stats.json", stats,
                {"tokens": {s: v["tokens"] for s, v in manifest["splits"].items()}})
    artifacts = publish(stats, f"tokenmill tokenize: {output}", "tokenize", console=summary)
    return {**json.loads((Path(output) / "stats.json").read_text()), "output": output,
            "artifacts": artifacts}


@flow(name="tokenize", log_prints=False, validate_parameters=False, persist_result=True,
      result_serializer="json")
def tokenize_flow(input: str, output: str, config: TokenizeConfig | None = None, workers: int = 1) -> dict:
    """Documents -> shuffled train/val Parquet token shards + manifest.json."""
    return run_tokenize(input, output, config, workers)
