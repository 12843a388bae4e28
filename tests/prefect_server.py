"""Helpers for tests against a REAL local Prefect server (not a test module).

``running_server(home)`` starts ``prefect server start`` on 127.0.0.1 (free port, its own
PREFECT_HOME with SQLite, analytics and UI off) and yields the environment that talks to it;
``prefect(...)`` runs the Prefect CLI in that environment; ``wait_flow_run(...)`` polls a flow run
until it reaches a terminal state. Every process is started in its own session and killed as a
process group (``kill_group``), also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from flows.local_server import free_port

REPO = Path(__file__).resolve().parents[1]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    # children of the leader (flow-run subprocesses, worker pools) may outlive it: kill the group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"({path} missing)"


def wait_until(
    what: str,
    check: Callable[[], object],
    timeout: float,
    log: Path | None = None,
    alive: subprocess.Popen | None = None,
    every: float = 1.0,
):
    """Poll ``check()`` until it returns something truthy; fail with the log tail on timeout or
    when the ``alive`` process exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            pytest.fail(
                f"process exited ({alive.returncode}) while waiting for {what}:\n"
                + (tail(log) if log else "")
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n" + (tail(log) if log else ""))
        time.sleep(every)


def start_server(home: Path) -> tuple[subprocess.Popen, dict]:
    """Start `prefect server start` on loopback with PREFECT_HOME=home and wait until it is
    healthy; returns the process (its own session: stop it with ``kill_group``) and the env to
    talk to it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_LOGGING_LEVEL="INFO",
        NO_PROXY="127.0.0.1,localhost",
    )
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ui",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until("a healthy prefect server", lambda: healthy(env), 240, log_path, alive=server)
    except BaseException:
        kill_group(server)
        raise
    return server, env


@contextlib.contextmanager
def running_server(home: Path) -> Iterator[dict]:
    """`prefect server start` on loopback with PREFECT_HOME=home; yields the env to talk to it."""
    server, env = start_server(home)
    try:
        yield env
    finally:
        kill_group(server)


def healthy(env: dict) -> bool:
    try:
        return httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def prefect(args: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    """The Prefect CLI (``python -m prefect ...``) from the repository root; must exit 0."""
    out = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, (
        f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out


def run_deployment(env: dict, name: str, params: dict[str, str]) -> str:
    """`prefect deployment run NAME --param k=v ...`; returns the new flow run's id."""
    args = ["deployment", "run", name]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    out = prefect(args, env)
    return re.search(r"UUID: ([0-9a-f-]{36})", out.stdout).group(1)


def api_get(env: dict, path: str) -> httpx.Response:
    return httpx.get(f"{env['PREFECT_API_URL']}{path}", timeout=10)


def wait_flow_run(
    env: dict, run_id: str, timeout: float, log: Path, alive: subprocess.Popen | None = None
) -> dict:
    """Poll the flow run until its state is terminal; returns it (fails with the log tail)."""

    def terminal():
        run = api_get(env, f"/flow_runs/{run_id}").json()
        return run if run["state"] and run["state"]["type"] in TERMINAL else None

    return wait_until(f"flow run {run_id} to finish", terminal, timeout, log, alive=alive, every=2)
