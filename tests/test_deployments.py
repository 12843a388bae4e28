"""Deployments: prefect.yaml is complete and loadable; a REAL local Prefect server runs a stage.

Fast tests check prefect.yaml against the flows (every stage has a deployment, parameters match
the flow signatures, example schedules are inactive) and the retry policy. The slow test starts
``prefect server start`` on 127.0.0.1 (temporary PREFECT_HOME, SQLite, free port, analytics
off), applies prefect.yaml with ``prefect --no-prompt deploy --all``, starts a process worker,
runs the ``stage-read/default`` deployment on the real WARC files with
``prefect deployment run``, waits for COMPLETED and checks the outputs; then runs it again and
checks that finished shards are skipped. Every process it starts is killed (process groups).
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from flows.deployments import PREFECT_YAML, load_specs
from flows.retry import is_transient_exception
from tests.prefect_server import (
    REPO,
    kill_group,
    prefect,
    run_deployment,
    running_server,
    wait_flow_run,
)

# ---------------------------------------------------------------- prefect.yaml, fast


def test_every_stage_and_end_to_end_flow_has_a_deployment() -> None:
    from flows.fineweb import STAGE_FLOWS

    flows = {spec.load_flow().name: spec for spec in load_specs()}
    for stage_flow in STAGE_FLOWS.values():
        assert stage_flow.name in flows
    assert {"fineweb", "corpus-pipeline", "dedup", "tokenize", "post-train"} <= set(flows)
    from flows.synth import FLOWS as SYNTH_FLOWS

    assert {f.name for f in SYNTH_FLOWS.values()} <= set(flows)


def test_synthesis_deployment_configs_validate() -> None:
    """The example `config` of each synthesis deployment is accepted by the generator's model."""
    from pipelines.synth.mix import MixConfig
    from pipelines.synth.refusal import RefusalConfig
    from pipelines.synth.rl import PrefsConfig, RLConfig
    from pipelines.synth.samples import SamplesConfig
    from pipelines.synth.sft import SFTConfig
    from pipelines.synth.tooluse import ToolUseConfig

    models = {
        "synth-sft": SFTConfig,
        "synth-refusal": RefusalConfig,
        "synth-tooluse": ToolUseConfig,
        "synth-rl": RLConfig,
        "synth-prefs": PrefsConfig,
        "synth-mix": MixConfig,
        "synth-samples": SamplesConfig,
    }
    seen = set()
    for spec in load_specs():
        name = spec.load_flow().name
        if name in models:
            models[name](**spec.parameters["config"])
            seen.add(name)
    assert seen == set(models)


def test_deployment_parameters_fit_the_flows_and_schedules_are_inactive() -> None:
    from prefect.client.schemas.schedules import CronSchedule

    for spec in load_specs():
        flow = spec.load_flow()
        sig = inspect.signature(flow.fn)
        assert set(spec.parameters) <= set(sig.parameters), spec.entrypoint
        assert all(s["active"] is False for s in spec.schedules), spec.entrypoint
        for s in spec.schedules:
            CronSchedule(cron=s["cron"], timezone=s["timezone"])  # raises on an invalid cron string
        assert spec.concurrency_limit == 1


def test_corpus_deployments_chain_by_events_with_required_paths() -> None:
    """Cron examples only on first stages; later stages run on the upstream's Completed event
    with its output; no path parameter has a default (nothing points at a missing path)."""
    from pipelines import registry

    specs = {spec.load_flow().name: spec for spec in load_specs() if "corpus" in spec.tags}
    assert set(specs) == {"fineweb", "corpus-pipeline", *(s.flow_name for s in registry.STAGES)}
    for name, spec in specs.items():
        assert not {"inputs", "input", "output"} & set(spec.parameters), name
        sig = inspect.signature(spec.load_flow().fn)
        for p in ("output", "inputs" if "inputs" in sig.parameters else "input"):
            assert sig.parameters[p].default is inspect.Parameter.empty, (name, p)
        first = name in ("fineweb", "corpus-pipeline", "stage-read")
        stage = next((s for s in registry.STAGES if s.flow_name == name), None)
        on_demand = stage is not None and not stage.chained  # optional stages: run by hand
        assert bool(spec.schedules) is first, name
        assert bool(spec.triggers) is not (first or on_demand), name
    chain = {name: spec.triggers[0] for name, spec in specs.items() if spec.triggers}
    assert chain["dedup"]["expect"] == ["prefect.flow-run.Completed"]
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "fineweb"} in chain["dedup"][
        "match_related"
    ]
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "dedup"} in chain["tokenize"][
        "match_related"
    ]
    assert chain["dedup"]["parameters"] == {
        "input": "{{ flow_run.parameters.output }}",
        "output": "{{ flow_run.parameters.output }}/../dedup",
    }
    assert (
        chain["stage-urlfilter"]["parameters"]["inputs"]
        == "{{ flow_run.parameters.output }}/documents"
    )


def test_prefect_yaml_is_generated_from_the_registry() -> None:
    """The committed prefect.yaml equals what `python -m flows.prefect_yaml` writes."""
    from flows.prefect_yaml import generate, main

    text = PREFECT_YAML.read_text()
    assert generate(text) == text, "prefect.yaml is stale: run `python -m flows.prefect_yaml`"
    assert main(["--check"]) == 0


def test_a_new_registry_stage_gets_its_deployment_and_place_in_the_chain(monkeypatch) -> None:
    import dataclasses

    from flows import prefect_yaml
    from pipelines import registry
    from schemas.config import DedupConfig

    extra = registry.Stage(
        "decontaminate",
        "Remove benchmark overlaps.",
        "corpus",
        DedupConfig,
        entrypoint="flows/dedup.py:dedup_flow",
    )
    stages = (*registry.STAGES, dataclasses.replace(extra))
    monkeypatch.setattr(registry, "STAGES", stages)
    deps = prefect_yaml.corpus_deployments()
    last = deps[-1]
    assert last["description"].startswith("Stage decontaminate alone")
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "tokenize"} in last[
        "triggers"
    ][0]["match_related"]


def test_prefect_yaml_pull_step_sets_the_repository_as_working_directory() -> None:
    import yaml

    data = yaml.safe_load(PREFECT_YAML.read_text())
    assert data["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ repo.stdout }}"}}
    ]
    assert data["build"][0]["prefect.deployments.steps.run_shell_script"]["id"] == "repo"
    assert all(d["work_pool"]["name"] == "tokenmill" for d in data["deployments"])


def test_serve_builds_runner_deployments_with_the_yaml_settings() -> None:
    from flows.deployments import SERVE_NAME, runner_deployments

    deps = runner_deployments(only=["stage-read", "fineweb/default", "dedup"])
    assert sorted(d.flow_name for d in deps) == ["dedup", "fineweb", "stage-read"]
    # served deployments never take the names `prefect deploy --all` uses
    assert SERVE_NAME != "default" and all(d.name == SERVE_NAME for d in deps)
    read = next(d for d in deps if d.flow_name == "stage-read")
    assert "output" not in read.parameters
    assert [s.active for s in read.schedules] == [False]
    assert read.schedules[0].schedule.cron == "0 1 * * *"
    dedup = next(d for d in deps if d.flow_name == "dedup")
    (trigger,) = dedup.triggers
    related = [r.root if hasattr(r, "root") else r for r in trigger.match_related]
    assert {"prefect.resource.role": "deployment", "prefect.resource.name": SERVE_NAME} in related
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "fineweb"} in related
    active = runner_deployments(activate_schedules=True, only=["stage-read"])
    assert [s.active for s in active[0].schedules] == [True]


class _Resp:
    def __init__(self, status: int) -> None:
        self.status_code = status


class _HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.response = _Resp(status)


@pytest.mark.parametrize(
    "exc,expected",
    [
        (OSError("disk"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (_HTTPError(503), True),
        (_HTTPError(429), True),
        (_HTTPError(404), False),
        (_HTTPError(401), False),
        (ValueError("bad input"), False),
        (FileNotFoundError("x"), False),
        (PermissionError(), False),
        (KeyError("k"), False),
        (None, False),
    ],
)
def test_retry_policy_retries_only_transient_failures(exc, expected) -> None:
    assert is_transient_exception(exc) is expected


def test_retry_policy_follows_the_cause_chain() -> None:
    try:
        try:
            raise ConnectionError("reset")
        except ConnectionError as inner:
            raise RuntimeError("shard failed") from inner
    except RuntimeError as outer:
        assert is_transient_exception(outer)


# ---------------------------------------------------------------- a real server, slow


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on loopback with its own PREFECT_HOME; yields the env to talk to it."""
    with running_server(tmp_path_factory.mktemp("prefect_home")) as env:
        yield env


def _run_deployment(env: dict, name: str, params: dict[str, str], worker_log: Path) -> dict:
    """`prefect deployment run NAME --param ...` with a process worker; returns the final flow run."""
    run_id = run_deployment(env, name, params)
    with open(worker_log, "ab") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "worker",
                "start",
                "--pool",
                "tokenmill",
                "--limit",
                "1",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return wait_flow_run(env, run_id, 480, worker_log)
        finally:
            kill_group(worker)


@pytest.mark.slow
def test_stage_deployment_runs_on_a_real_server(prefect_server, web_warcs, tmp_path: Path) -> None:
    env = prefect_server
    prefect(["work-pool", "create", "tokenmill", "--type", "process"], env)
    prefect(["--no-prompt", "deploy", "--all"], env, timeout=600)
    api = env["PREFECT_API_URL"]
    for spec in load_specs():
        flow_name = spec.load_flow().name
        dep = httpx.get(f"{api}/deployments/name/{flow_name}/{spec.name}", timeout=10)
        assert dep.status_code == 200, flow_name
        assert [s["active"] for s in dep.json()["schedules"]] == [False] * len(spec.schedules)
        assert dep.json()["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]

    out = tmp_path / "read"
    params = {"inputs": json.dumps([str(p) for p in web_warcs]), "output": str(out), "workers": "1"}
    run = _run_deployment(env, "stage-read/default", params, tmp_path / "worker.log")
    assert run["state"]["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]

    stats = json.loads((out / "stats.json").read_text())["stages"]["read"]
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "documents").glob("*.parquet"))
    reasons = Counter()
    for p in (out / "removed").glob("*.parquet"):
        reasons.update(pq.read_table(p, columns=["reason"]).column(0).to_pylist())
    assert kept == stats["kept"] > 0
    assert dict(reasons) == stats["removed_by_reason"]
    assert stats["in"] == stats["kept"] + sum(stats["removed_by_reason"].values())  # conservation
    assert len(list((out / "documents").glob("*.parquet"))) == len(web_warcs)

    # re-running the deployment skips the finished shards: their outputs are not rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "documents").glob("*.parquet")}
    again = _run_deployment(env, "stage-read/default", params, tmp_path / "worker.log")
    assert again["state"]["type"] == "COMPLETED"
    assert {p: p.stat().st_mtime_ns for p in (out / "documents").glob("*.parquet")} == mtimes
    assert json.loads((out / "stats.json").read_text())["stages"]["read"]["kept"] == stats["kept"]


RETRY_SCRIPT = """
import json
from prefect import flow, task
from flows.retry import retry_options

calls = {"io": 0, "bad": 0}

@task(**retry_options(retries=2, base_delay_s=0))
def flaky_io():
    calls["io"] += 1
    if calls["io"] < 2:
        raise OSError("transient disk error")
    return calls["io"]

@task(**retry_options(retries=2, base_delay_s=0))
def bad_input():
    calls["bad"] += 1
    raise ValueError("malformed input")

@flow
def check():
    first = flaky_io()
    try:
        bad_input()
    except ValueError:
        pass
    return first

print(json.dumps({"io_result": check(), "bad_calls": calls["bad"]}))
"""


@pytest.mark.slow
def test_retry_policy_with_prefect_tasks(prefect_server) -> None:
    """A task failing with OSError is retried; one failing on bad input runs exactly once."""
    out = subprocess.run(
        [sys.executable, "-c", RETRY_SCRIPT],
        cwd=REPO,
        env=prefect_server,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"io_result": 2, "bad_calls": 1}
