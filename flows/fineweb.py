"""Prefect flows of the FineWeb pass: the whole pass, and one flow per per-document stage.

Flow objects (deployable by entrypoint ``flows/fineweb.py:<object>``):

    fineweb_flow            name "fineweb"          read -> urlfilter -> extract -> langid -> quality -> pii
    stage_<name>_flow       name "stage-<name>"     one per per-document stage of ``pipelines.registry``
    STAGE_FLOWS             {stage name: flow object}; ``stage_flow(name, ...)`` calls one

The flows only move data. Every input file is a shard (its own outputs, stats and done marker).
Shards are run by Prefect task runs (``process-shards``, with the project's retry policy from
``flows/retry.py``), so the UI shows progress, failures and retries: a large input (a Common
Crawl WARC) is a task run of its own (``shard-<name>``); small inputs are grouped into one task
run (``shards-<first>+<k more>``, ``plan_batches``) because a task run costs ~70 ms of CPU in
the worker and the API server, which on 13-document sample files was a sixth of the run's CPU.
With ``workers`` > 1 the task runs are mapped onto Prefect's ``ProcessPoolTaskRunner`` with at
most ``workers`` processes (the work is CPU-bound: threads would share one GIL); with one
worker they run in this process, in the main thread (trafilatura's time limit then uses a
signal instead of a sandbox process). Each worker process builds and sets up its steps once
(fastText model, blocklists) and reuses them for its shards.

A shard whose ``stats/<shard>.json`` exists and carries the fingerprint of this run's settings is
done: it is not run again (the flow reads its stats and logs how many were skipped; a task run
retried after a crash skips the shards of its group that finished), so a crashed run resumes
(``OUT/run.json`` records the run; a re-run with other settings or inputs is refused,
``pipelines.runinfo``). At the end the
per-shard stats are merged into ``OUT/stats.json`` (with the configuration that made them),
published (INFO logs with the counts, a table and a markdown artifact, the CLI's rich table)
and returned: the flow's result is its stats, persisted as JSON so ``state.result()`` works for
deployment runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.report import STATS_RESULT, normalize_path, publish, run_logger
from flows.retry import RETRY
from pipelines import registry
from pipelines.fineweb import (
    STAGES,
    build_stage_steps,
    check_config_paths,
    process_shard,
    shard_name,
    stats_path,
)
from pipelines.io import expand_inputs
from pipelines.runinfo import current_marker, fingerprint, prepare_output
from pipelines.stats import StageStats, merge_stats, stats_from_json, write_stats
from schemas.config import FinewebConfig, as_config


class _Progress:
    """A rich progress bar: shards done / total, documents read and docs/s."""

    def __init__(self, total_shards: int, title: str, since: float | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.t0 = since or time.perf_counter()  # perf_counter() when the work began
        self.docs = 0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shards  {task.fields[docs]} docs  {task.fields[rate]} docs/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(title, total=total_shards, docs=0, rate="-")

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def docs_read(self, n: int) -> None:
        self.docs += n
        rate = self.docs / max(1e-9, time.perf_counter() - self.t0)
        self.progress.update(self.task, docs=self.docs, rate=f"{rate:,.0f}")

    def shard_done(self) -> None:
        self.progress.advance(self.task)


#: (config JSON, stages) -> built and set-up step groups of this process (a worker keeps its
#: steps across the shards it runs; process_shard calls start_shard()/end_shard() around each)
_STEPS: dict[tuple[str, tuple[str, ...] | None], list] = {}


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


def _shards_run_name() -> str:
    from prefect.runtime import task_run

    paths = task_run.parameters["input_paths"]
    first = shard_name(paths[0])
    return f"shard-{first}" if len(paths) == 1 else f"shards-{first}+{len(paths) - 1}"


def run_one_shard(
    input_path: str, output: str, config: FinewebConfig, stages: list[str] | None, fp: str
) -> dict:
    """One shard through the stages (``pipelines.fineweb.process_shard``) unless it finished
    with these settings (``fp``, the fingerprint its stats file carries); returns its stats
    payload. A shard made with other settings is redone."""
    done = stats_path(output, input_path)
    logger = run_logger()
    payload = current_marker(done, fp)
    if payload is not None:
        logger.info("shard %s finished earlier: skipped", shard_name(input_path))
    else:
        groups = cached_steps(config.model_dump_json(), stages)
        process_shard(input_path, output, config, stages, groups=groups)
        payload = json.loads(done.read_text())
    logger.info(
        "shard %s: %d documents in, %d kept, %d removed",
        payload["shard"],
        _docs_in(payload),
        payload["kept"],
        payload["removed"],
    )
    return payload


# Transient failures (I/O, object-store timeouts) are retried; deterministic ones fail at once.
# A retry re-runs only the shards of the group that have not finished.
@task(name="process-shards", task_run_name=_shards_run_name, cache_policy=NO_CACHE, **RETRY)
def process_shards_task(
    input_paths: list[str], output: str, config_json: str, stages: list[str] | None
) -> list[dict]:
    """A group of shards (``plan_batches``), one after the other; their stats payloads."""
    config = FinewebConfig.model_validate_json(config_json)
    fp = fingerprint(config, list(STAGES if stages is None else stages))
    return [run_one_shard(p, output, config, stages, fp) for p in input_paths]


def _docs_in(payload: dict) -> int:
    return next(iter(payload["stages"].values()))["in"] if payload["stages"] else 0


#: a group of small inputs is closed once it holds this many bytes (compressed WARC / Parquet)
BATCH_BYTES = 64 * 1024 * 1024
#: ... or 1/(workers x this) of all pending bytes, whichever is smaller, so every worker still
#: gets several groups and a slow one does not leave the others idle at the end
GROUPS_PER_WORKER = 4


def _local_size(path: str) -> int | None:
    local = path.removeprefix("file://")
    if "://" in local:
        return None
    try:
        return Path(local).stat().st_size
    except OSError:
        return None


def plan_batches(paths: list[str], workers: int) -> list[list[str]]:
    """Group input files into task runs: largest first, a file of at least the target size (or of
    unknown size: a remote object) alone, smaller ones packed together up to the target
    (``min(BATCH_BYTES, pending bytes / (workers x GROUPS_PER_WORKER))``). Outputs are per
    shard, so the grouping changes nothing but how many task runs there are."""
    sizes = {p: _local_size(p) for p in paths}
    total = sum(v for v in sizes.values() if v)
    target = max(1, min(BATCH_BYTES, total // max(1, workers * GROUPS_PER_WORKER)))
    batches: list[list[str]] = []
    group: list[str] = []
    group_bytes = 0
    for p in sorted(paths, key=lambda q: -1 if sizes[q] is None else sizes[q], reverse=True):
        size = sizes[p]
        if size is None or size >= target:
            batches.append([p])
            continue
        group.append(p)
        group_bytes += size
        if group_bytes >= target:
            batches.append(group)
            group, group_bytes = [], 0
    if group:
        batches.append(group)
    return batches


def init_worker(parent: int) -> None:
    """Initializer of the shard worker processes: exit when the command is gone
    (``pipelines.pool.exit_with_parent``), and keep working when the console is: a worker's
    console log lines go to the command's stderr, and when that is a pipe whose reader quit
    (``tokenmill fineweb ... 2>&1 | head``) rich's console raises ``SystemExit`` in the worker,
    which Prefect's process pool re-raises in its result thread in the command; that thread
    dies and the run waits forever. Here a broken console only goes quiet in the worker (the
    logs still reach the Prefect API); the command itself ends at its own next write."""
    import logging

    import prefect.main  # noqa: F401 - Prefect's logging handlers exist from here on
    from rich.console import Console

    from pipelines.pool import exit_with_parent

    exit_with_parent(parent)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            console = getattr(handler, "console", None)
            if isinstance(console, Console):  # rich's documented hook for a broken pipe
                console.on_broken_pipe = _console_gone(console)


def _console_gone(console):
    def quiet() -> None:
        console.quiet = True  # later lines are dropped, not written to a closed pipe
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, console.file.fileno())  # nor flushed into it at exit

    return quiet


@contextlib.contextmanager
def _workers_share_this_api() -> Iterator[None]:
    """Worker processes must report to the API this run reports to. With a configured
    ``PREFECT_API_URL`` (env or profile, as Prefect resolves it) they inherit it; in Prefect's
    local mode (no URL: a temporary server serves this process) each spawned worker would start
    a temporary server of its own and its task runs would be invisible here, so the workers are
    pointed at this process's temporary server (``temporary_settings``, public API)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url).rstrip("/")
    run_logger().info(
        "local mode: worker processes report to this run's temporary Prefect server %s", url
    )
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def run_shards(
    files: list[str],
    output: str,
    config: FinewebConfig,
    stages: list[str] | None,
    workers: int,
    title: str,
) -> list[dict]:
    """The pending shards as ``process-shards`` task runs (``plan_batches``): in a bounded
    process pool, or in this process; finished shards are read back, not run."""
    from prefect.utilities.annotations import unmapped

    cfg = config.model_dump_json()
    fp = fingerprint(config, list(STAGES if stages is None else stages))
    finished = {p: current_marker(stats_path(output, p), fp) for p in files}
    finished = {p: payload for p, payload in finished.items() if payload is not None}
    pending = [p for p in files if p not in finished]
    batches = plan_batches(pending, workers)
    procs = max(1, min(workers, len(batches)))
    payloads: dict[str, dict] = {}
    with _Progress(len(files), title) as bar:

        def done(paths: list[str], results: list[dict]) -> None:
            for path, payload in zip(paths, results, strict=True):
                payloads[path] = payload
                bar.docs_read(_docs_in(payload))
                bar.shard_done()

        if finished:
            run_logger().info(
                "%d of %d shards finished earlier with these settings: skipped",
                len(finished),
                len(files),
            )
            done(list(finished), list(finished.values()))
        if procs == 1:
            for batch in batches:
                done(batch, process_shards_task(batch, output, cfg, stages))
        elif batches:
            from prefect.futures import as_completed
            from prefect.task_runners import ProcessPoolTaskRunner

            with (
                _workers_share_this_api(),
                ProcessPoolTaskRunner(
                    max_workers=procs, initializer=init_worker, initargs=(os.getpid(),)
                ) as runner,
            ):
                futures = runner.map(
                    process_shards_task,
                    {
                        "input_paths": batches,
                        "output": unmapped(output),
                        "config_json": unmapped(cfg),
                        "stages": unmapped(stages),
                    },
                )
                by_id = {f.task_run_id: b for f, b in zip(futures, batches, strict=True)}
                for fut in as_completed(futures):
                    done(by_id[fut.task_run_id], fut.result())
    return [payloads[p] for p in files]


def _merge(payloads: list[dict]) -> tuple[dict[str, StageStats], dict, dict]:
    parts, skipped, step_counts = [], {}, {}
    for d in payloads:
        parts.append(stats_from_json(d["stages"]))
        for k, v in d.get("skipped_records", {}).items():
            skipped[k] = skipped.get(k, 0) + v
        for step, counts in d.get("step_counts", {}).items():  # e.g. PII replacements by kind
            for k, v in counts.items():
                step_counts.setdefault(step, {})[k] = step_counts.get(step, {}).get(k, 0) + v
    return merge_stats(parts), skipped, step_counts


def run_fineweb(
    inputs: list[str],
    output: str,
    config: FinewebConfig | None = None,
    stages: list[str] | None = None,
    workers: int | None = None,
    title: str = "fineweb",
    key: str = "fineweb",
    overwrite: bool = False,
) -> dict:
    """The body shared by every flow here (plain function: callable without a flow too).

    ``output`` records this run (``run.json``); an output made with other settings or inputs is
    refused unless ``overwrite`` (``pipelines.runinfo.prepare_output``)."""
    t0 = time.perf_counter()
    config = as_config(FinewebConfig, config)  # a deployment run passes plain JSON data
    if isinstance(inputs, str):
        inputs = [inputs]
    output = normalize_path(output)
    check_config_paths(config)
    files = expand_inputs([normalize_path(p) for p in inputs])
    if not files:
        raise FileNotFoundError(f"no input files match {list(inputs)}")
    prepare_output(
        output,
        kind=title,
        config=config,
        inputs=files,
        stages=list(STAGES if stages is None else stages),
        overwrite=overwrite,
    )
    Path(output).mkdir(parents=True, exist_ok=True)
    workers = workers or config.workers
    run_logger().info(
        "%s: %d input shards -> %s, %d worker process(es)", title, len(files), output, workers
    )
    payloads = run_shards(files, output, config, stages, workers, title)
    merged, skipped, step_counts = _merge(payloads)
    for st in merged.values():
        st.check_conservation()
    seconds = time.perf_counter() - t0
    first = next(iter(merged.values()), None)
    docs = first.docs_in if first else 0
    extra = {
        "output": output,
        "inputs": files,
        "seconds": round(seconds, 3),
        "docs_per_s": round(docs / seconds, 2) if seconds > 0 else None,
        "skipped_records": skipped,
        "step_counts": step_counts,
        "stage_list": stages or STAGES,
        "config": config.model_dump(mode="json"),
    }
    write_stats(Path(output) / "stats.json", merged, extra)
    extra["artifacts"] = publish(merged, f"tokenmill {title}: {output}", key)
    return {
        **json.loads((Path(output) / "stats.json").read_text()),
        "artifacts": extra["artifacts"],
    }


@flow(name="fineweb", log_prints=False, **STATS_RESULT)
def fineweb_flow(
    inputs: list[str],
    output: str,
    config: FinewebConfig | None = None,
    stages: list[str] | None = None,
    workers: int | None = None,
) -> dict:
    """The FineWeb per-document pass over WARC (or documents Parquet) inputs into ``output``."""
    return run_fineweb(inputs, output, config, stages, workers)


def _make_stage_flow(stage: registry.Stage):
    def body(
        inputs: list[str],
        output: str,
        config: FinewebConfig | None = None,
        workers: int | None = None,
    ) -> dict:
        return run_fineweb(
            inputs,
            output,
            config,
            [stage.name],
            workers,
            title=f"stage {stage.name}",
            key=stage.flow_name,
        )

    body.__name__ = body.__qualname__ = f"stage_{stage.name}_flow"
    body.__doc__ = stage.description
    return flow(name=stage.flow_name, description=stage.description, **STATS_RESULT)(body)


#: one flow per per-document stage of the registry, also as module attributes
#: ``stage_<name>_flow`` (the deployment entrypoints)
STAGE_FLOWS = {name: _make_stage_flow(registry.get(name)) for name in STAGES}
globals().update({f"stage_{name}_flow": f for name, f in STAGE_FLOWS.items()})


def stage_flow(
    name: str,
    inputs: list[str],
    output: str,
    config: FinewebConfig | None = None,
    workers: int | None = None,
) -> dict:
    """Run the Prefect flow of one stage by name."""
    if name not in STAGE_FLOWS:
        raise ValueError(f"unknown stage {name!r}; known: {STAGES}")
    return STAGE_FLOWS[name](inputs, output, config, workers)
