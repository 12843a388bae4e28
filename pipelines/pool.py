"""Run a function over many argument tuples, in worker processes when asked.

The pass drivers (``pipelines.dedup.dedup``, ``pipelines.tokenize.tokenize``) take a ``Mapper``
for their per-shard / per-band work and a ``PassRunner`` for each pass, so the plain functions
and the Prefect flows run the same passes: the flow passes a process pool and wraps passes in
task runs, the plain function runs them in this process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

#: ``mapper(fn, calls)`` -> ``[fn(*args) for args in calls]`` (in order)
Mapper = Callable[[Callable, list[tuple]], list]
#: ``run_pass(name, fn, *args)`` -> ``fn(*args)``, possibly inside a tracked task run
PassRunner = Callable[..., Any]


#: how often a worker process checks that the process that started it is still there
PARENT_CHECK_S = 0.5


def exit_with_parent(parent: int) -> None:
    """Initializer of every worker process (``ProcessPoolExecutor``, Prefect's
    ``ProcessPoolTaskRunner``): the worker exits when the process that started it is gone.
    A pool's workers hold both ends of their task queue's pipe, so a parent killed with
    ``kill -9`` (or by the OOM killer) would otherwise leave them waiting on it forever, each
    holding its models in memory. A daemon thread polls the parent id: portable, and unlike
    Linux's parent-death signal not tied to the thread that happened to start the worker.
    ``parent`` is the pool owner's pid (``initargs=(os.getpid(),)``), not read here: a parent
    killed while the worker still started would leave it watching its new parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)  # orphaned: nothing left to report to

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def parallel(fn: Callable, calls: list[tuple], workers: int) -> list:
    """``fn(*args)`` for every args tuple, in ``workers`` spawned processes when more than one."""
    if workers <= 1 or len(calls) <= 1:
        return [fn(*a) for a in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        min(workers, len(calls)),
        mp_context=mp.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
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
