"""Prefect flow of the tokenize stage (``pipelines.tokenize`` does the work).
(Named ``tokenize_flow`` rather than ``tokenize``: Prefect puts an entrypoint's folder on
``sys.path``, where a ``tokenize.py`` would shadow the standard library's and break every
process that imports ``linecache``.)

Flow object ``tokenize_flow`` (name "tokenize", entrypoint ``flows/tokenize_flow.py:tokenize_flow``):
the passes of ``pipelines.tokenize.tokenize`` (the one pass driver) as task runs; pass 1
tokenizes input shards in ``workers`` spawned processes (finished runs are skipped), pass 2
writes the shuffled train/val shards and ``manifest.json`` (skipped when present).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.passes import run_stage, task_pass
from flows.report import STATS_RESULT, normalize_path
from pipelines import tokenize as tk
from pipelines.io import documents_dir, parquet_files
from pipelines.pool import processes
from pipelines.runinfo import prepare_output
from schemas.config import TokenizeConfig, as_config


def prepare(input: str, output: str, config: TokenizeConfig, overwrite: bool = False) -> list[Path]:
    """The documents files to tokenize, after checking ``output`` against this run
    (``run.json``: refuses other settings or inputs unless ``overwrite``)."""
    files = parquet_files(documents_dir(input))
    if not files:
        raise FileNotFoundError(f"no documents Parquet under {input}")
    prepare_output(output, kind="tokenize", config=config, inputs=files, overwrite=overwrite)
    return files


def run_tokenize(
    input: str,
    output: str,
    config: TokenizeConfig | None = None,
    workers: int = 1,
    summary: bool = True,
    overwrite: bool = False,
) -> dict:
    """The flow body (a plain function too); returns the written stats.json."""
    config = as_config(TokenizeConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    prepare(input, output, config, overwrite)
    return run_stage(
        "tokenize",
        output,
        summary,
        lambda: tk.tokenize(input, output, config, pmap=processes(workers), run_pass=task_pass),
    )


@flow(name="tokenize", log_prints=False, **STATS_RESULT)
def tokenize_flow(
    input: str, output: str, config: TokenizeConfig | None = None, workers: int = 1
) -> dict:
    """Documents -> shuffled train/val Parquet token shards + manifest.json."""
    return run_tokenize(input, output, config, workers)
