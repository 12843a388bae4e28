"""Worker processes of the FineWeb pass, free of Prefect so they start fast and early.

A shard is processed in a worker process (``ProcessPoolExecutor``; forked from a forkserver that
preloaded the heavy modules, see ``mp_context``). Everything a worker
runs lives here, in a module that imports no Prefect (nor torch, nor Beam): a spawned worker
imports only the CLI's light entry module, this module and the stage code, not Prefect's ~2 s of
imports. Each worker builds and sets up its steps ONCE (fastText model, URL blocklists,
trafilatura import), in the pool initializer, and reuses them for every shard it runs (``setup()``
is idempotent and resets per-shard state such as trafilatura's dedup cache, so a shard's output
does not depend on which worker ran it or what it ran before).

``start_pool`` lets the CLI start the pool BEFORE Prefect is imported and while Prefect's
temporary API server boots, so worker start-up overlaps with Prefect's; the flow's task then
takes that pool (``take_pool``) instead of spawning its own.

Eager dispatch (the CLI does it only with the temporary local Prefect server, see
``flows/cli_fineweb.py``): the pool also starts on the pending shards right away, and the flow's
``process-shards`` task adopts their futures, waits for them (progress bar, errors, retries as
usual) and submits whatever else is pending. The work and the outputs are the same; Prefect's
start-up (~5-8 s on 2 shared cores) just no longer delays the first document. A shard is done
when its stats file exists, so a shard finished eagerly is never redone, and a run that dies
before its flow starts leaves a state the next run resumes from.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from pipelines.fineweb import build_stage_steps, process_shard
from schemas.config import FinewebConfig

_progress_queue = None
#: (config JSON, stages) -> built and set-up step groups, one set per process
_STEPS: dict[tuple[str, tuple[str, ...] | None], list] = {}
#: the pool the CLI started ahead of the flow
_prestarted: Prestarted | None = None


def _die_with_parent() -> None:
    """Linux: a worker gets SIGKILL when the run that started it dies (kill -9 included), so an
    orphan never keeps writing into an output directory that a re-run is resuming."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort (not Linux)
        pass


def cached_steps(config_json: str, stages: list[str] | None) -> list:
    """This process's step groups for ``(config, stages)``, built and set up on first use."""
    key = (config_json, None if stages is None else tuple(stages))
    groups = _STEPS.get(key)
    if groups is None:
        while len(_STEPS) >= 2:  # a long-lived process running many configs keeps the last two
            _STEPS.pop(next(iter(_STEPS)))
        groups = build_stage_steps(FinewebConfig.model_validate_json(config_json), stages)
        for _, steps in groups:
            for step in steps:
                step.setup()
        _STEPS[key] = groups
    return groups


def _init_worker(queue, config_json: str | None = None, stages: list[str] | None = None,
                 environ: dict[str, str] | None = None) -> None:
    global _progress_queue
    _die_with_parent()
    if environ is not None:  # forkserver children inherit the forkserver's environment, not ours
        os.environ.clear()
        os.environ.update(environ)
    _progress_queue = queue
    if config_json is not None:  # warm up: imports, models and lists, before the first shard
        cached_steps(config_json, stages)


def _report(n: int) -> None:
    if _progress_queue is not None:
        _progress_queue.put(n)


def run_one(input_path: str, output: str, config_json: str, stages: list[str] | None) -> str:
    """Process one shard in this worker with its cached steps."""
    config = FinewebConfig.model_validate_json(config_json)
    process_shard(input_path, output, config, stages, progress=_report,
                  groups=cached_steps(config_json, stages))
    return input_path


def _ready() -> int:
    return os.getpid()


@dataclass
class Prestarted:
    """A warm pool the CLI started ahead of the flow, and the shards it already dispatched."""

    key: tuple
    pool: ProcessPoolExecutor
    queue: object
    futures: dict[str, Future] = field(default_factory=dict)  # input path -> its shard's future
    dispatched_at: float | None = None  # time.perf_counter() of the first dispatch


def _key(workers: int, config: FinewebConfig, stages: list[str] | None, output: str) -> tuple:
    return (workers, config.model_dump_json(), None if stages is None else tuple(stages),
            os.path.abspath(output))


#: imported once by the forkserver, so workers fork with them loaded (see flows/worker_preload.py)
PRELOAD = ["flows.worker_preload"]


def mp_context():
    """``forkserver`` (Linux; else ``spawn``), with the heavy worker modules preloaded.

    Never plain fork: forking a process that already runs Prefect's threads is unsafe. The
    forkserver is a fresh interpreter (started like a spawned process, once per CLI process, on
    the first pool), imports ``PRELOAD`` once, and forks every worker from that clean,
    single-threaded state: each worker starts warm instead of importing pyarrow, trafilatura,
    fastText and pandas itself (~0.6 s of CPU per worker). It exits when this process does (its
    end of a pipe closes), and its children get SIGKILL when it exits (``_die_with_parent``).
    Workers get this process's current environment in their initializer (a forkserver started
    earlier would hand them its own). ``TOKENMILL_START_METHOD=spawn`` restores the old way.
    """
    global _stop_registered
    method = os.environ.get("TOKENMILL_START_METHOD", "forkserver")
    if method not in mp.get_all_start_methods():
        method = "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        _reap_stopping_forkserver()
        ctx.set_forkserver_preload(PRELOAD)  # no effect once the forkserver runs (same list anyway)
        if not _stop_registered:
            import atexit

            atexit.register(stop_forkserver)
            _stop_registered = True
    return ctx


_stop_registered = False


def _reap_stopping_forkserver() -> None:
    """Finish a ``stop_forkserver(wait=False)`` (reap it) so that the next pool starts a fresh
    forkserver instead of connecting to one that is exiting."""
    try:
        from multiprocessing import forkserver

        fs = forkserver._forkserver
        if fs._forkserver_pid is not None and fs._forkserver_alive_fd is None:
            stop_forkserver()
    except Exception:  # noqa: BLE001 - private API: best effort
        pass


def start_forkserver() -> None:
    """Start the forkserver now (it imports ``PRELOAD`` while the caller does other work);
    no-op when workers are spawned instead. Starts no thread in this process."""
    ctx = mp_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def stop_forkserver(wait: bool = True) -> None:
    """Stop this process's forkserver and reap it (at exit; the CLI asks it to stop when its
    pools are done). Python leaves it running until it notices our end of its pipe closed, by
    which time we are gone: an orphan nobody waits for. Safe to call when none runs; a later
    pool starts a new one (after reaping this one, see ``mp_context``).

    ``wait=False`` only closes our end of its pipe, so it starts exiting (its interpreter
    teardown, ~0.2 s, then overlaps with ours); a later call (the atexit handler, or the next
    ``mp_context``) reaps it."""
    try:
        from multiprocessing import forkserver, util

        fs = forkserver._forkserver
        with fs._lock:
            if fs._forkserver_pid is None:
                return
            if fs._forkserver_alive_fd is not None:
                os.close(fs._forkserver_alive_fd)  # asks the server to stop
                fs._forkserver_alive_fd = None
            if not wait:
                return
            os.waitpid(fs._forkserver_pid, 0)
            fs._forkserver_pid = None
            if not util.is_abstract_socket_namespace(fs._forkserver_address):
                os.unlink(fs._forkserver_address)
            fs._forkserver_address = None
    except Exception:  # noqa: BLE001 - private API (CPython 3.8-3.13): best effort
        pass


def new_pool(workers: int, config: FinewebConfig, stages: list[str] | None):
    """A pool of ``workers`` processes (``mp_context()``) that set up their steps as they start.

    Returns ``(executor, progress queue)``. One trivial task per worker makes the executor start
    every process now (it otherwise starts them as work arrives).
    """
    ctx = mp_context()
    queue = ctx.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(queue, config.model_dump_json(), stages, dict(os.environ)))
    for _ in range(workers):
        pool.submit(_ready)
    return pool, queue


def start_pool(workers: int, config: FinewebConfig, stages: list[str] | None, output: str,
               pending: list[str], processes: int, eager: bool = False) -> None:
    """Start (and keep for ``take_pool``) a warm pool of ``processes`` ahead of the flow.

    ``workers`` is the flow's requested worker count (part of the key ``take_pool`` matches).
    With ``eager``, the ``pending`` shards are dispatched right away (largest first) instead of
    when the flow's task starts; the task then adopts their futures (see ``take_pool``).
    """
    global _prestarted
    if processes <= 1 or _prestarted is not None:
        return
    pool, queue = new_pool(processes, config, stages)
    pre = Prestarted(_key(workers, config, stages, output), pool, queue)
    if eager and pending:
        cfg = config.model_dump_json()
        pre.dispatched_at = time.perf_counter()
        for p in order_by_size(pending):
            pre.futures[p] = pool.submit(run_one, p, output, cfg, stages)
    _prestarted = pre


def dispatched_at(workers: int, config: FinewebConfig, stages: list[str] | None,
                  output: str) -> float | None:
    """When the pre-started pool began processing shards of this run (None: it did not)."""
    pre = _prestarted
    if pre is None or pre.key != _key(workers, config, stages, output):
        return None
    return pre.dispatched_at


def take_pool(workers: int, config: FinewebConfig, stages: list[str] | None,
              output: str) -> Prestarted | None:
    """The pre-started pool if it was started for exactly this run, else None.

    A pool started for another run is discarded (its workers set up other steps)."""
    global _prestarted
    pre, _prestarted = _prestarted, None
    if pre is None:
        return None
    if pre.key == _key(workers, config, stages, output):
        return pre
    _discard(pre)
    return None


def discard_prestarted() -> None:
    """Cancel what the pre-started pool was doing and stop its workers (the run failed before
    its flow took the pool). Shards cut short leave only temp files, cleaned on re-run."""
    global _prestarted
    pre, _prestarted = _prestarted, None
    if pre is not None:
        _discard(pre)


def _discard(pre: Prestarted) -> None:
    pre.pool.shutdown(wait=False, cancel_futures=True)
    # the executor has no public way to stop running work before Python 3.14
    for proc in list((getattr(pre.pool, "_processes", None) or {}).values()):
        proc.kill()
def order_by_size(paths: list[str]) -> list[str]:
    """Largest input first (local files), so the longest shard does not start last: with fewer
    workers than shards this shortens the run; outputs are per shard, so the order changes
    nothing else."""
    def size(p: str) -> int:
        try:
            return os.path.getsize(p.removeprefix("file://")) if "://" not in p or p.startswith("file://") else 0
        except OSError:
            return 0

    return sorted(paths, key=size, reverse=True)
