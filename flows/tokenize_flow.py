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

import json
from pathlib import Path

from prefect import flow

from flows.passes import task_pass
from flows.report import normalize_path, publish
from pipelines import tokenize as tk
from pipelines.pool import processes
from schemas.config import TokenizeConfig, as_config


def run_tokenize(input: str, output: str, config: TokenizeConfig | None = None, workers: int = 1,
                 summary: bool = True) -> dict:
    """The flow body (a plain function too); returns the written stats.json."""
    config = as_config(TokenizeConfig, config)
    input, output = normalize_path(input), normalize_path(output)
    stats = tk.tokenize(input, output, config, pmap=processes(workers), run_pass=task_pass)
    artifacts = publish(stats, f"tokenmill tokenize: {output}", "tokenize", console=summary)
    return {**json.loads((Path(output) / "stats.json").read_text()), "output": output,
            "artifacts": artifacts}


@flow(name="tokenize", log_prints=False, validate_parameters=False, persist_result=True,
      result_serializer="json")
def tokenize_flow(input: str, output: str, config: TokenizeConfig | None = None, workers: int = 1) -> dict:
    """Documents -> shuffled train/val Parquet token shards + manifest.json."""
    return run_tokenize(input, output, config, workers)
