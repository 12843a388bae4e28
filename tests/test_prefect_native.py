"""What a run did is visible on a REAL local Prefect server (slow), and chained by events.

A Prefect server runs on 127.0.0.1 (temporary PREFECT_HOME, SQLite, free port); the
``fineweb/default`` and ``dedup/default`` deployments of prefect.yaml are applied with
``prefect deploy`` and a process worker runs them. ``prefect deployment run
fineweb/default`` on the real WARC files of ../shared/data/web (2 worker processes) must show,
read back through the Prefect client: ``process-shards`` task runs covering every input file, a table
artifact whose numbers satisfy in = kept + removed at every stage and match stats.json, a
markdown artifact, INFO log lines with the counts, and a persisted result (``state.result()``)
equal to stats.json. Its completion event must then start ``dedup/default`` (deployment trigger)
on the fineweb run's output, writing next to it. Every process started here is killed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
import yaml

from flows.deployments import PREFECT_YAML
from pipelines.fineweb import shard_name
from tests.prefect_server import (
    REPO,
    kill_group,
    prefect,
    run_deployment,
    running_server,
    wait_flow_run,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect_home")
    with running_server(home) as env:
        env = {**env, "PYTHONPATH": str(REPO)}
        prefect(["work-pool", "create", "tokenmill", "--type", "process"], env)
        # prefect.yaml's own fineweb and dedup entries (deploying all of them loads every flow)
        data = yaml.safe_load(PREFECT_YAML.read_text())
        data["deployments"] = [
            d
            for d in data["deployments"]
            if d["entrypoint"] in ("flows/fineweb.py:fineweb_flow", "flows/dedup.py:dedup_flow")
        ]
        assert len(data["deployments"]) == 2
        only = home / "prefect.yaml"
        only.write_text(yaml.safe_dump(data, sort_keys=False))
        prefect(["--no-prompt", "deploy", "--all", "--prefect-file", str(only)], env, timeout=600)
        log = home / "worker.log"
        with open(log, "ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", "tokenmill"],
                cwd=REPO,
                env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                yield env, home, log, worker
            finally:
                kill_group(worker)


def _client(env: dict, home: Path):
    """A sync Prefect client on the test server (results read from its PREFECT_HOME)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    ctx = temporary_settings(
        updates={
            PREFECT_API_URL: env["PREFECT_API_URL"],
            PREFECT_LOCAL_STORAGE_PATH: home / "storage",
        }
    )
    return ctx, get_client


def test_fineweb_deployment_then_dedup_by_event(server, web_warcs, tmp_path):
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
        LogFilterLevel,
    )

    env, home, log, worker = server
    out = tmp_path / "corpus" / "fineweb"
    params = {"inputs": json.dumps([str(p) for p in web_warcs]), "output": str(out), "workers": "2"}
    run_id = run_deployment(env, "fineweb/default", params)
    run = wait_flow_run(env, run_id, 600, log, alive=worker)
    assert run["state"]["type"] == "COMPLETED", log.read_text()[-3000:]
    stats = json.loads((out / "stats.json").read_text())

    ctx, get_client = _client(env, home)
    with ctx, get_client(sync_client=True) as client:
        # task runs named after their shards ("shard-<name>", or "shards-<first>+<k more>" for a
        # group of small files: flows.fineweb.plan_batches), covering every shard once, completed
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)]))
        )
        shard_runs = [r for r in runs if r.name.startswith("shard")]
        names = {shard_name(str(p)) for p in web_warcs}
        firsts, covered = [], 0
        for r in shard_runs:
            first, _, more = r.name.split("-", 1)[1].partition("+")
            firsts.append(first)
            covered += 1 + int(more or 0)
        assert covered == len(web_warcs) and len(set(firsts)) == len(firsts)
        assert set(firsts) <= names
        assert len(shard_runs) >= 2  # the big multilingual WARC is a task run of its own
        assert all(r.state.type.value == "COMPLETED" for r in shard_runs)

        # the table artifact: conservation at every stage, the same numbers as stats.json
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        )
        by_type = {a.type: a for a in arts}
        assert {"table", "markdown"} <= set(by_type)
        table = by_type["table"].data
        table = json.loads(table) if isinstance(table, str) else table
        assert [row["stage"] for row in table] == list(stats["stages"])
        for row in table:
            assert row["in"] == row["kept"] + row["removed"], row
            assert row["kept"] == stats["stages"][row["stage"]]["kept"]
        reads = next(r for r in table if r["stage"] == "read")["in"]
        assert reads == stats["stages"]["read"]["in"] > 100
        assert "top removal reasons" in by_type["markdown"].data

        # INFO logs with the counts reached the server (shipped in batches by the flow's process:
        # they may land a moment after the run is COMPLETED)
        deadline = time.monotonic() + 60
        while True:
            logs = client.read_logs(
                LogFilter(
                    flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)]),
                    level=LogFilterLevel(ge_=20),
                )
            )
            text = "\n".join(lg.message for lg in logs)
            if f"stage read in={reads}" in text or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert f"stage read in={reads}" in text
        assert f"kept={stats['stages']['pii']['kept']}" in text
        assert "documents in" in text  # per-shard lines from the task runs

        # the persisted result is the stats
        flow_run = client.read_flow_run(UUID(run_id))
        result = flow_run.state.result()
        assert result["stages"] == stats["stages"] and result["output"] == str(out)

        # the completion event started dedup on the fineweb output, writing next to it
        def dedup_run():
            found = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["dedup"]))
            )
            done = [r for r in found if r.state and r.state.is_final()]
            return done[0] if done else None

        dedup = wait_until(
            "the dedup run triggered by fineweb's completion",
            dedup_run,
            600,
            log,
            alive=worker,
            every=3,
        )
    assert dedup.state.type.value == "COMPLETED", log.read_text()[-3000:]
    assert dedup.parameters["input"] == str(out)
    dedup_stats = json.loads((out.parent / "dedup" / "stats.json").read_text())["stages"]
    assert dedup_stats["dedup"]["in"] == stats["stages"]["pii"]["kept"]
