"""Prefect side of the pass drivers in ``pipelines/`` (``pipelines.dedup.dedup``,
``pipelines.tokenize.tokenize``): each pass becomes one task run, retried on transient I/O
errors (a retry skips the pass's finished outputs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.report import publish
from flows.retry import RETRY
from pipelines.runinfo import is_finished


def task_pass(name: str, fn: Callable, *args: Any) -> Any:
    """A ``pipelines.pool.PassRunner``: run ``fn(*args)`` as a Prefect task run named ``name``."""

    def body() -> Any:
        return fn(*args)

    return task(name=name, cache_policy=NO_CACHE, **RETRY)(body)()


def run_stage(stage: str, output: str, summary: bool, driver: Callable[[], dict]) -> dict:
    """A pass-driver stage's flow body after ``prepare``: ``driver()`` (the stage's stats) unless
    this very run (same settings and inputs) already finished in ``output``, then its stats
    published; returns the written stats.json with ``output`` and the published ``artifacts``."""
    artifacts = {}
    if not is_finished(output):  # a finished run is not redone
        stats = driver()
        artifacts = publish(stats, f"tokenmill {stage}: {output}", stage, console=summary)
    return {
        **json.loads((Path(output) / "stats.json").read_text()),
        "output": output,
        "artifacts": artifacts,
    }
