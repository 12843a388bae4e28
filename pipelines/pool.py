"""Run a function over many argument tuples, in worker processes when asked.

The pass drivers (``pipelines.dedup.dedup``, ``pipelines.tokenize.tokenize``) take a ``Mapper``
for their per-shard / per-band work and a ``PassRunner`` for each pass, so the plain functions
and the Prefect flows run the same passes: the flow passes a process pool and wraps passes in
task runs, the plain function runs them in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

#: ``mapper(fn, calls)`` -> ``[fn(*args) for args in calls]`` (in order)
Mapper = Callable[[Callable, list[tuple]], list]
#: ``run_pass(name, fn, *args)`` -> ``fn(*args)``, possibly inside a tracked task run
PassRunner = Callable[..., Any]


def parallel(fn: Callable, calls: list[tuple], workers: int) -> list:
    """``fn(*args)`` for every args tuple, in ``workers`` spawned processes when more than one."""
    if workers <= 1 or len(calls) <= 1:
        return [fn(*a) for a in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(calls)), mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(fn, *zip(*calls, strict=True)))


def serial(fn: Callable, calls: list[tuple]) -> list:
    return [fn(*a) for a in calls]


def processes(workers: int) -> Mapper:
    """A ``Mapper`` over ``workers`` spawned processes."""
    return partial(_mapped, workers=workers)


def _mapped(fn: Callable, calls: list[tuple], workers: int) -> list:
    return parallel(fn, calls, workers)


def run_direct(name: str, fn: Callable, *args: Any) -> Any:  # noqa: ARG001 - name is for trackers
    return fn(*args)
