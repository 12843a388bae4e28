"""What a stage run tells the people watching it: logs, Prefect artifacts, the CLI table.

A run's statistics must be visible where users look: on the Prefect server (a table artifact per
stage run: in, kept, removed by reason, seconds, docs/s; a markdown summary with the top removal
reasons; INFO log lines with the counts) and on the terminal of a CLI run (the rich table of
``pipelines.stats.render_summary``). ``publish`` does all three from one stats mapping, so they
can never disagree. Outside a Prefect run (a plain function call) the artifacts are skipped and
the log lines go to the ``tokenmill`` logger.
"""

from __future__ import annotations

import logging
import re

from pipelines.stats import StageStats, render_summary

#: ``@flow`` options of every stage flow: its result is its stats, persisted as JSON so
#: ``state.result()`` works for deployment runs; parameters are validated by the configs
STATS_RESULT = {"validate_parameters": False, "persist_result": True, "result_serializer": "json"}


def normalize_path(path: str) -> str:
    """Local paths lose ``..``: event-chained deployments pass ``<upstream output>/../<stage>``
    (URLs such as ``s3://`` are left alone)."""
    import os

    path = str(path)
    return path if "://" in path else os.path.normpath(path)


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow/task run (its lines reach the server), else ours."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("tokenmill")


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def artifact_key(title: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", title.lower()).strip("-") or "tokenmill"


def table_rows(stats: dict[str, StageStats]) -> list[dict]:
    """One row per stage: the numbers of the table artifact (and of stats.json)."""
    rows = []
    for name, st in stats.items():
        d = st.to_dict()
        rows.append(
            {
                "stage": name,
                "in": d["in"],
                "kept": d["kept"],
                "removed": d["removed"],
                "removed_by_reason": ", ".join(f"{r}={n}" for r, n in st.removed.most_common())
                or "-",
                "seconds": d["seconds"],
                "docs_per_s": d["docs_per_s"],
            }
        )
    return rows


def markdown_summary(stats: dict[str, StageStats], title: str, top: int = 5) -> str:
    """A short markdown report: one line per stage and its top removal reasons."""
    lines = [
        f"# {title}",
        "",
        "| stage | in | kept | removed | top removal reasons |",
        "|---|---:|---:|---:|---|",
    ]
    for name, st in stats.items():
        reasons = ", ".join(f"`{r}` {n:,}" for r, n in st.removed.most_common(top)) or "-"
        lines.append(
            f"| {name} | {st.docs_in:,} | {st.kept:,} | {st.removed_total:,} | {reasons} |"
        )
    return "\n".join(lines) + "\n"


def log_counts(stats: dict[str, StageStats], title: str) -> None:
    logger = run_logger()
    for name, st in stats.items():
        top = ", ".join(f"{r}={n}" for r, n in st.removed.most_common(3)) or "none"
        logger.info(
            "%s: stage %s in=%d kept=%d removed=%d (top: %s) %.2fs",
            title,
            name,
            st.docs_in,
            st.kept,
            st.removed_total,
            top,
            st.seconds,
        )


def publish(stats: dict[str, StageStats], title: str, key: str, console: bool = True) -> dict:
    """Log the counts at INFO, create the table + markdown artifacts (inside a Prefect run), and
    print the rich table (``console``). Returns ``{"table": id, "markdown": id}`` (empty outside
    a run) so a parent flow can link them."""
    log_counts(stats, title)
    ids: dict[str, str] = {}
    if _in_run():
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        ids["table"] = str(
            create_table_artifact(
                table=table_rows(stats),
                key=artifact_key(f"{key}-stats"),
                description=f"{title}: per stage in / kept / removed by reason / seconds / docs/s",
            )
        )
        ids["markdown"] = str(
            create_markdown_artifact(
                markdown=markdown_summary(stats, title),
                key=artifact_key(f"{key}-summary"),
                description=f"{title}: top removal reasons",
            )
        )
    if console:
        render_summary(stats, title=title)
    return ids


def link_stage_artifacts(links: dict[str, dict], key: str) -> str | None:
    """A markdown artifact of a multi-stage flow pointing at each stage's artifacts (stages
    finished by an earlier run have none: their numbers are in the merged table)."""
    if not _in_run():
        return None
    from prefect.artifacts import create_markdown_artifact
    from prefect.settings import PREFECT_UI_URL

    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    lines = ["# Stage artifacts", ""]
    for stage, ids in links.items():
        refs = ", ".join(f"[{kind}]({ui}/artifacts/artifact/{aid})" for kind, aid in ids.items())
        lines.append(f"- {stage}: {refs or 'finished earlier (see the merged table)'}")
    return str(
        create_markdown_artifact(
            markdown="\n".join(lines) + "\n",
            key=artifact_key(f"{key}-stages"),
            description="links to each stage's artifacts",
        )
    )
