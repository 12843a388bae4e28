"""Prefect side of the pass drivers in ``pipelines/`` (``pipelines.dedup.dedup``,
``pipelines.tokenize.tokenize``): each pass becomes one task run, retried on transient I/O
errors (a retry skips the pass's finished outputs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.retry import RETRY


def task_pass(name: str, fn: Callable, *args: Any) -> Any:
    """A ``pipelines.pool.PassRunner``: run ``fn(*args)`` as a Prefect task run named ``name``."""

    def body() -> Any:
        return fn(*args)

    return task(name=name, cache_policy=NO_CACHE, **RETRY)(body)()
