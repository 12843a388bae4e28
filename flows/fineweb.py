"""Prefect flows of the FineWeb pass: the whole pass, and one flow per stage.

Flow objects (deployable by entrypoint ``flows/fineweb.py:<object>``):

    fineweb_flow            name "fineweb"          read -> urlfilter -> extract -> langid -> quality -> pii
    stage_read_flow         name "stage-read"       (and likewise for every stage:)
    stage_urlfilter_flow    name "stage-urlfilter"
    stage_extract_flow      name "stage-extract"
    stage_langid_flow       name "stage-langid"
    stage_quality_flow      name "stage-quality"
    stage_pii_flow          name "stage-pii"
    STAGE_FLOWS             {stage name: flow object}; ``stage_flow(name, ...)`` calls one

The flows only move data: each input file is a shard handed to ``pipelines.fineweb.
process_shard`` in a worker PROCESS (``workers`` of them, forked from a forkserver that preloaded
the stage modules; ``flows/workers.py``, which imports no Prefect) inside one Prefect task, so
CPU-bound extraction scales past the GIL and Prefect's threads stay idle. Largest shards go
first. The CLI starts and warms that pool before Prefect is even imported
(``flows.workers.start_pool``); the task adopts it. Shards whose ``stats/<shard>.json`` exists
are done and skipped: a crashed run resumes. At the end the per-shard stats are merged into
``OUT/stats.json`` and printed.

Eager dispatch (the CLI with Prefect's temporary local server only; ``TOKENMILL_EAGER=0`` turns
it off): the CLI submits every pending shard to the pool before Prefect's flow run exists, and
the ``process-shards`` task adopts those futures. Why it is sound:

- Same work, same outputs: a shard is the same ``process_shard`` call on the same config and
  stage list whoever submits it; outputs are per shard, temp file + rename, and the stats file,
  written last, is what marks a shard done. ``take_pool`` hands the futures over only to a task
  with exactly the run's key (workers, config, stages, output dir); anything else discards them.
- Failures are not lost: a shard's exception stays in its future until the task waits on it
  (``fut.result()``), so a shard that failed before Prefect was up fails the ``process-shards``
  task and the ``fineweb`` flow run (state FAILED, the CLI exits non-zero with the error) exactly
  as if the task had submitted it; the other shards still finish (the pool is shut down with
  ``wait=True``) and are recorded, so a re-run resumes from them. Retries: the task's retry finds
  the pool gone (adopted once) and resubmits the unfinished shards to a fresh pool; transient
  errors are retried, deterministic ones (a missing file) are not (``flows/retry.py``). Tested in
  ``tests/test_eager_dispatch.py`` (an input that vanished after listing, eager on and off).
- Nothing runs unobserved: if the CLI fails before the flow takes the pool (Prefect could not
  start), ``discard_prestarted`` cancels the queued shards and kills the workers; a shard cut
  short leaves only temp files, removed on the next run. kill -9 of the CLI takes the workers
  with it (``PR_SET_PDEATHSIG`` via the forkserver, which exits with the CLI), and the re-run's
  output equals an uninterrupted run's (``tests/test_crash_resume.py``).
- What a user sees differs only in timing: the flow run starts with shards already done or in
  flight; its progress bar and ``stats.json`` seconds count from the first dispatch. In either
  mode the shards are not Prefect task runs of their own: one ``process-shards`` task runs them.
- With a configured API (``PREFECT_API_URL``, deployments) nothing is dispatched before the flow
  run exists: a server may schedule, cancel or refuse the run, and work must not precede that.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from flows import runtime

runtime.configure()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows import workers as wk  # noqa: E402
from flows.retry import RETRY  # noqa: E402
from pipelines.fineweb import STAGES, process_shard, stats_path  # noqa: E402
from pipelines.io import expand_inputs  # noqa: E402
from pipelines.runinfo import fingerprint, prepare_output, shard_is_current  # noqa: E402
from pipelines.stats import StageStats, merge_stats, render_summary, stats_from_json  # noqa: E402
from schemas.config import FinewebConfig, as_config  # noqa: E402


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
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("shards  {task.fields[docs]} docs  {task.fields[rate]} docs/s"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=False)
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


# Transient failures (I/O, object-store timeouts) are retried; a retry skips the shards that
# finished, so it only redoes the one that failed.
@task(name="process-shards", cache_policy=NO_CACHE, **RETRY)
def process_shards(inputs: list[str], output: str, config: FinewebConfig,
                   stages: list[str] | None, workers: int, title: str = "fineweb") -> list[str]:
    """Run every pending shard; in ``workers`` spawned processes when more than one.

    Adopts the pool the CLI started for this run (``flows.workers.start_pool``) with the shards
    it already dispatched; the rest (or everything, without one) is submitted here.
    """
    pre = wk.take_pool(workers, config, stages, output)
    adopted = pre.futures if pre is not None else {}
    fp = fingerprint(config, list(STAGES if stages is None else stages))
    pending = wk.order_by_size([p for p in inputs if p not in adopted
                                and not shard_is_current(stats_path(output, p), fp)])
    n_work = len(adopted) + len(pending)
    procs = max(1, min(workers, n_work))
    with _Progress(len(inputs), title, pre.dispatched_at if pre is not None else None) as bar:
        for _ in range(len(inputs) - n_work):
            bar.shard_done()
        if pre is None and procs == 1:  # in this process: no spawn cost, signal-based extract timeouts in the main thread
            groups = wk.cached_steps(config.model_dump_json(), stages) if pending else []
            for p in pending:
                process_shard(p, output, config, stages, progress=bar.docs_read, groups=groups)
                bar.shard_done()
            return pending
        from concurrent.futures import as_completed

        # the CLI started (and warmed) the pool while Prefect was starting; else start it now
        pool, queue = (pre.pool, pre.queue) if pre is not None else wk.new_pool(procs, config, stages)
        stop = threading.Event()

        def drain() -> None:
            import queue as q

            while not stop.is_set() or not queue.empty():
                try:
                    bar.docs_read(queue.get(timeout=0.2))
                except q.Empty:
                    continue
                except (EOFError, OSError):
                    return

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        try:
            with pool:
                cfg = config.model_dump_json()
                futures = [*adopted.values(),
                           *(pool.submit(wk.run_one, p, output, cfg, stages) for p in pending)]
                for fut in as_completed(futures):
                    fut.result()
                    bar.shard_done()
        finally:
            stop.set()
            drainer.join()
    return [*adopted, *pending]


def _merge(inputs: list[str], output: str, seconds: float) -> tuple[dict[str, StageStats], dict]:
    parts, skipped = [], {}
    for p in inputs:
        d = json.loads(stats_path(output, p).read_text())
        parts.append(stats_from_json(d["stages"]))
        for k, v in d.get("skipped_records", {}).items():
            skipped[k] = skipped.get(k, 0) + v
    merged = merge_stats(parts)
    first = next(iter(merged.values()), None)
    docs = first.docs_in if first else 0
    extra = {"inputs": inputs, "seconds": round(seconds, 3),
             "docs_per_s": round(docs / seconds, 2) if seconds > 0 else None,
             "skipped_records": skipped}
    return merged, extra


def run_fineweb(inputs: list[str], output: str, config: FinewebConfig | None = None,
                stages: list[str] | None = None, workers: int | None = None,
                title: str = "fineweb", overwrite: bool = False) -> dict:
    """The body shared by every flow here (plain function: callable without Prefect too).

    ``output`` records this run (``run.json``); an output made with other settings or inputs is
    refused unless ``overwrite`` (``pipelines.runinfo.prepare_output``)."""
    from pipelines.stats import write_stats

    t0 = time.perf_counter()
    config = as_config(FinewebConfig, config)  # a deployment run passes plain JSON data
    files = expand_inputs(list(inputs))
    if not files:
        raise FileNotFoundError(f"no input files in {inputs}")
    prepare_output(output, kind=title, config=config, inputs=files,
                   stages=list(STAGES if stages is None else stages), overwrite=overwrite)
    Path(output).mkdir(parents=True, exist_ok=True)
    workers = workers or config.workers
    # shards the CLI dispatched before Prefect was up count from their dispatch (honest docs/s)
    t0 = min(t0, wk.dispatched_at(workers, config, stages, output) or t0)
    process_shards(files, output, config, stages, workers, title)
    merged, extra = _merge(files, output, time.perf_counter() - t0)
    for st in merged.values():
        st.check_conservation()
    write_stats(Path(output) / "stats.json", merged, extra)
    render_summary(merged, title=f"tokenmill {title}: {output}")
    return json.loads((Path(output) / "stats.json").read_text())


@flow(name="fineweb", log_prints=False, validate_parameters=False)
def fineweb_flow(inputs: list[str], output: str, config: FinewebConfig | None = None,
                 stages: list[str] | None = None, workers: int | None = None) -> dict:
    """The FineWeb per-document pass over WARC (or documents Parquet) inputs into ``output``."""
    return run_fineweb(inputs, output, config, stages, workers)


def _stage(name: str, inputs: list[str], output: str, config: FinewebConfig | None,
           workers: int | None) -> dict:
    return run_fineweb(inputs, output, config, [name], workers, title=f"stage {name}")


@flow(name="stage-read", validate_parameters=False)
def stage_read_flow(inputs: list[str], output: str, config: FinewebConfig | None = None,
                    workers: int | None = None) -> dict:
    """WARC -> documents with the decoded HTML (read:* removals)."""
    return _stage("read", inputs, output, config, workers)


@flow(name="stage-urlfilter", validate_parameters=False)
def stage_urlfilter_flow(inputs: list[str], output: str, config: FinewebConfig | None = None,
                         workers: int | None = None) -> dict:
    """Blocklisted domains/URLs and banned words (url:* removals)."""
    return _stage("urlfilter", inputs, output, config, workers)


@flow(name="stage-extract", validate_parameters=False)
def stage_extract_flow(inputs: list[str], output: str, config: FinewebConfig | None = None,
                       workers: int | None = None) -> dict:
    """HTML -> text with trafilatura under a time limit (extract:* removals)."""
    return _stage("extract", inputs, output, config, workers)


@flow(name="stage-langid", validate_parameters=False)
def stage_langid_flow(inputs: list[str], output: str, config: FinewebConfig | None = None,
                      workers: int | None = None) -> dict:
    """fastText lid.176 language id (langid:* removals)."""
    return _stage("langid", inputs, output, config, workers)


@flow(name="stage-quality", validate_parameters=False)
def stage_quality_flow(inputs: list[str], output: str, config: FinewebConfig | None = None,
                       workers: int | None = None) -> dict:
    """Gopher, C4 and FineWeb quality filters (quality:* removals)."""
    return _stage("quality", inputs, output, config, workers)


@flow(name="stage-pii", validate_parameters=False)
def stage_pii_flow(inputs: list[str], output: str, config: FinewebConfig | None = None,
                   workers: int | None = None) -> dict:
    """Replace emails and public IP addresses (never removes)."""
    return _stage("pii", inputs, output, config, workers)


STAGE_FLOWS = {
    "read": stage_read_flow,
    "urlfilter": stage_urlfilter_flow,
    "extract": stage_extract_flow,
    "langid": stage_langid_flow,
    "quality": stage_quality_flow,
    "pii": stage_pii_flow,
}
assert list(STAGE_FLOWS) == STAGES


def stage_flow(name: str, inputs: list[str], output: str, config: FinewebConfig | None = None,
               workers: int | None = None) -> dict:
    """Run the Prefect flow of one stage by name."""
    if name not in STAGE_FLOWS:
        raise ValueError(f"unknown stage {name!r}; known: {STAGES}")
    return STAGE_FLOWS[name](inputs, output, config, workers)
