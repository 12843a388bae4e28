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
from pathlib import Path

from flows import runtime

runtime.configure()

from prefect import flow  # noqa: E402

from flows.passes import task_pass  # noqa: E402
from pipelines import tokenize as tk  # noqa: E402
from pipelines.pool import processes  # noqa: E402
from pipelines.stats import render_summary  # noqa: E402
from schemas.config import TokenizeConfig, as_config  # noqa: E402


def run_tokenize(input: str, output: str, config: TokenizeConfig | None = None, workers: int = 1,
                 summary: bool = True) -> dict:
    """The flow body (a plain function too): ``pipelines.tokenize.tokenize``'s passes as task
    runs, pass 1 in ``workers`` processes; returns the written stats.json."""
    config = as_config(TokenizeConfig, config)
    stats = tk.tokenize(input, output, config, pmap=processes(workers), run_pass=task_pass)
    if summary:
        render_summary(stats, title=f"tokenmill tokenize: {output}")
    return json.loads((Path(output) / "stats.json").read_text())


@flow(name="tokenize", log_prints=False, validate_parameters=False)
def tokenize_flow(input: str, output: str, config: TokenizeConfig | None = None, workers: int = 1) -> dict:
    """Documents -> shuffled train/val Parquet token shards + manifest.json."""
    return run_tokenize(input, output, config, workers)
