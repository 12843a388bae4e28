"""``corpus_pipeline_flow``: fineweb -> dedup -> tokenize as ONE Prefect flow.

Outputs ``OUT/fineweb/``, ``OUT/dedup/``, ``OUT/tokenize/`` and every stage's stats in one
``OUT/stats.json``. Resumable: a stage finished with the same settings and inputs (its
``run.json``) is not redone, and inside a stage finished shards/steps are skipped. ``engine="beam"`` runs the same stage
functions as one Apache Beam pipeline (``pipelines.beam.corpus``) inside the flow instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.report import STATS_RESULT, link_stage_artifacts, publish
from pipelines.stats import merge_stats, stats_from_json, write_stats
from schemas.config import DedupConfig, FinewebConfig, TokenizeConfig, as_config


@task(name="beam-corpus-pipeline", cache_policy=NO_CACHE)
def beam_task(
    inputs: list[str],
    output: str,
    fw: FinewebConfig,
    dc: DedupConfig,
    tc: TokenizeConfig,
    beam_args: list[str],
) -> dict:
    from pipelines.beam.corpus import run

    return run(inputs, output, fw, dc, tc, beam_args)


def run_pipeline(
    inputs: list[str],
    output: str,
    fineweb: FinewebConfig | None = None,
    dedup: DedupConfig | None = None,
    tokenize: TokenizeConfig | None = None,
    workers: int = 1,
    engine: str = "local",
    beam_args: list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """The flow body (a plain function too). ``overwrite``: stage outputs made with other
    settings or inputs are deleted and redone instead of refused."""
    from flows.dedup import run_dedup
    from flows.fineweb import run_fineweb
    from flows.tokenize_flow import run_tokenize

    fw = as_config(FinewebConfig, fineweb)
    dc, tc = as_config(DedupConfig, dedup), as_config(TokenizeConfig, tokenize)
    out = Path(output)
    t0 = time.perf_counter()
    if engine == "beam":
        args = list(beam_args or [])
        if workers > 1 and not any(a.startswith("--direct_num_workers") for a in args):
            args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        return beam_task(inputs, output, fw, dc, tc, args)  # stats.json's content (any filesystem)
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r} (local or beam)")
    from pipelines.storage import is_remote, staging_dir, upload_tree

    if is_remote(output):  # s3:// gs:// ...: run in a local staging dir, then upload (fsspec)
        result = run_pipeline(
            inputs, str(staging_dir(output)), fw, dc, tc, workers, engine, beam_args, overwrite
        )
        upload_tree(staging_dir(output), output)
        return result
    links: dict[str, dict] = {}
    # each stage checks its output's run.json: a stage finished with the same settings and
    # inputs is not redone; other settings are refused (a stale stage is never reused)
    links["fineweb"] = run_fineweb(
        inputs, str(out / "fineweb"), fw, workers=workers, overwrite=overwrite
    )["artifacts"]
    links["dedup"] = run_dedup(
        str(out / "fineweb"), str(out / "dedup"), dc, workers, summary=False, overwrite=overwrite
    )["artifacts"]
    links["tokenize"] = run_tokenize(
        str(out / "dedup"), str(out / "tokenize"), tc, workers, summary=False, overwrite=overwrite
    )["artifacts"]
    parts = [
        stats_from_json(json.loads((out / s / "stats.json").read_text())["stages"])
        for s in ("fineweb", "dedup", "tokenize")
    ]
    stats = merge_stats(parts)
    tokens = json.loads((out / "tokenize" / "manifest.json").read_text())["splits"]
    write_stats(
        out / "stats.json",
        stats,
        {
            "engine": "local",
            "seconds": round(time.perf_counter() - t0, 3),
            "tokens": {s: v["tokens"] for s, v in tokens.items()},
            "config": {
                "fineweb": fw.model_dump(mode="json"),
                "dedup": dc.model_dump(mode="json"),
                "tokenize": tc.model_dump(mode="json"),
            },
        },
    )
    artifacts = publish(stats, f"tokenmill pipeline: {output}", "corpus-pipeline")
    link_stage_artifacts(links, "corpus-pipeline")
    return {
        **json.loads((out / "stats.json").read_text()),
        "output": output,
        "artifacts": artifacts,
        "stage_artifacts": links,
    }


@flow(name="corpus-pipeline", log_prints=False, **STATS_RESULT)
def corpus_pipeline_flow(
    inputs: list[str],
    output: str,
    fineweb: FinewebConfig | None = None,
    dedup: DedupConfig | None = None,
    tokenize: TokenizeConfig | None = None,
    workers: int = 1,
    engine: str = "local",
    beam_args: list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """WARC files -> FineWeb documents -> deduplicated documents -> token shards."""
    return run_pipeline(
        inputs, output, fineweb, dedup, tokenize, workers, engine, beam_args, overwrite
    )
