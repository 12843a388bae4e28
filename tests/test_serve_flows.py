"""`tokenmill serve-flows` against a REAL local Prefect server (slow).

A Prefect server runs on 127.0.0.1 (temporary PREFECT_HOME, SQLite, free port); ``tokenmill
serve-flows --only stage-urlfilter --only stage-read --limit 1`` runs in its own process group
and registers those deployments of prefect.yaml (and no others) under the name ``serve``.
``prefect deployment run 'stage-urlfilter/serve'`` on one real WARC of ../shared/data/web is picked up by the serving
process; the flow run must reach COMPLETED, write documents/removed/stats.json with every input
document either kept or removed, and the served first stage must carry prefect.yaml's example
cron schedule, inactive; ``--activate-schedules`` serves it active. Every process started here is
killed as a process group, also on failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from flows.deployments import PREFECT_YAML
from tests.prefect_server import (
    REPO,
    api_get,
    kill_group,
    run_deployment,
    running_server,
    tail,
    wait_flow_run,
    wait_until,
)

pytestmark = pytest.mark.slow
SERVED = ["stage-urlfilter", "stage-read"]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("prefect_home")) as env:
        yield env


def _yaml_schedule(entrypoint_suffix: str) -> dict:
    deps = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    (dep,) = [d for d in deps if d["entrypoint"].endswith(entrypoint_suffix)]
    (schedule,) = dep["schedules"]
    return schedule


def _deployment(env: dict, name: str) -> dict | None:
    r = api_get(env, f"/deployments/name/{name}")
    return r.json() if r.status_code == 200 else None


@contextmanager
def serving(env: dict, log: Path, *extra: str) -> Iterator[subprocess.Popen]:
    """`tokenmill serve-flows --only ... --limit 1 [extra]` until the block ends (group killed)."""
    args = [sys.executable, "-m", "flows.cli", "serve-flows", "--limit", "1", *extra]
    for name in SERVED:
        args += ["--only", name]
    # the runner polls for scheduled runs every 10 s by default: poll faster in the test
    env = {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "2", "PYTHONPATH": str(REPO)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            kill_group(proc)


def _schedules_of(
    env: dict, name: str, active: bool, log: Path, proc: subprocess.Popen
) -> list[dict]:
    """Wait until deployment ``name`` is registered with schedules in the ``active`` state."""

    def ready():
        dep = _deployment(env, name)
        if dep and dep["schedules"] and all(s["active"] is active for s in dep["schedules"]):
            return dep["schedules"]
        return None

    return wait_until(f"{name} served (schedules active={active})", ready, 300, log, alive=proc)


def test_serve_flows_runs_a_stage_deployment(prefect_server, web_warcs, tmp_path: Path) -> None:
    env = prefect_server
    log = tmp_path / "serve.log"
    warc = next(p for p in web_warcs if p.name == "dolma-sample-0000.warc.gz")
    out = tmp_path / "urlfilter"
    want = _yaml_schedule(":stage_read_flow")

    with serving(env, log) as proc:
        schedules = _schedules_of(env, "stage-read/serve", False, log, proc)
        assert [
            (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in schedules
        ] == [(want["cron"], want["timezone"], False)]
        served = wait_until(
            "stage-urlfilter/serve",
            lambda: _deployment(env, "stage-urlfilter/serve"),
            300,
            log,
            alive=proc,
        )
        assert served["schedules"] == []  # a later stage: triggered by stage-read, no cron
        # served under its own name: never replaces the `default` deployments of deploy --all
        assert _deployment(env, "stage-urlfilter/default") is None
        # --only: the other deployments of prefect.yaml are not served
        assert _deployment(env, "fineweb/serve") is None
        assert _deployment(env, "dedup/serve") is None
        assert served["parameters"] == {"workers": 2}  # prefect.yaml's: no default paths
        # prefect.yaml's concurrency_limit: 1 (Prefect 3 keeps it as a global concurrency limit)
        assert (served.get("global_concurrency_limit") or {}).get("limit") == 1, served

        run_id = run_deployment(
            env,
            "stage-urlfilter/serve",
            {"inputs": json.dumps([str(warc)]), "output": str(out), "workers": "1"},
        )
        run = wait_flow_run(env, run_id, 480, log, alive=proc)
        assert run["state"]["type"] == "COMPLETED", tail(log)
        assert run["deployment_id"] == served["id"]
        assert run["parameters"]["inputs"] == [str(warc)]

    stats = _check_output(out)
    assert stats["kept"] == stats["in"] > 0  # this crawl has no blocklisted URL


def _check_output(out: Path) -> dict:
    """documents/, removed/ and stats.json agree; every document is kept or removed; returns the
    urlfilter stage's stats."""
    stats = json.loads((out / "stats.json").read_text())["stages"]["urlfilter"]
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "documents").glob("*.parquet"))
    reasons: Counter = Counter()
    for p in (out / "removed").glob("*.parquet"):
        reasons.update(pq.read_table(p, columns=["reason"]).column(0).to_pylist())
    assert kept == stats["kept"] > 0
    assert {k: v for k, v in reasons.items() if k.startswith("url:")} == stats["removed_by_reason"]
    assert stats["in"] == stats["kept"] + sum(stats["removed_by_reason"].values())  # conservation
    assert len(list((out / "documents").glob("*.parquet"))) == 1  # one WARC, one shard
    return stats


def test_served_stage_takes_a_config_parameter(prefect_server, web_warcs, tmp_path: Path) -> None:
    """`--param config=...` (JSON) reaches the stage: a domain blocklisted there is removed."""
    env = prefect_server
    log = tmp_path / "serve.log"
    warc = next(p for p in web_warcs if p.name == "dolma-sample-0000.warc.gz")
    out = tmp_path / "urlfilter"
    config = {"urlfilter": {"extra_domains": ["soldaini.net"]}}
    with serving(env, log) as proc:
        wait_until(
            "stage-urlfilter/serve",
            lambda: _deployment(env, "stage-urlfilter/serve"),
            300,
            log,
            alive=proc,
        )
        run_id = run_deployment(
            env,
            "stage-urlfilter/serve",
            {
                "inputs": json.dumps([str(warc)]),
                "output": str(out),
                "workers": "1",
                "config": json.dumps(config),
            },
        )
        run = wait_flow_run(env, run_id, 480, log, alive=proc)
        assert run["state"]["type"] == "COMPLETED", tail(log)
    stats = _check_output(out)
    assert stats["removed_by_reason"] == {"url:domain": 3}  # soldaini.net, /facts/, /lineage/


def test_serve_flows_activate_schedules(prefect_server, tmp_path: Path) -> None:
    env = prefect_server
    log = tmp_path / "serve.log"
    want = _yaml_schedule(":stage_read_flow")
    with serving(env, log, "--activate-schedules") as proc:
        schedules = _schedules_of(env, "stage-read/serve", True, log, proc)
        assert [(s["schedule"]["cron"], s["active"]) for s in schedules] == [(want["cron"], True)]
