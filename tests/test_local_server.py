"""The Prefect server a command starts for itself when no Prefect API is configured
(``flows.local_server``, ``flows.cli_app.prefect_local_mode``): real servers, real flows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from flows.local_server import SERVICES_OFF, LocalServer, LocalServerError, server_env

REPO = Path(__file__).resolve().parents[1]


def test_server_env_matches_prefects_temporary_server():
    env = server_env({"PATH": "/bin", "PREFECT_API_URL": "http://x/api", "PREFECT_HOME": "/h"})
    assert env["PREFECT_HOME"] == "/h" and "PREFECT_API_URL" not in env
    assert env["PREFECT_SERVER_UI_ENABLED"] == "false"
    assert all(env[f"PREFECT_SERVER_SERVICES_{s}_ENABLED"] == "false" for s in SERVICES_OFF)
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    # the user's own analytics choice is theirs
    assert (
        server_env({"PREFECT_SERVER_ANALYTICS_ENABLED": "true"})["PREFECT_SERVER_ANALYTICS_ENABLED"]
        == "true"
    )


def test_local_mode_runs_flows_and_their_task_processes_against_one_server(monkeypatch, tmp_path):
    """No API configured: one server for the command; the flow, its logs and a process-pool
    task all report to it (none of Prefect's threads starts a temporary server of its own);
    the settings and the environment are restored afterwards."""
    import prefect.server.api.server as prefect_server
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.task_runners import ProcessPoolTaskRunner

    from flows import local_server
    from flows.cli_app import prefect_local_mode

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    started_by_prefect = []
    monkeypatch.setattr(
        prefect_server.SubprocessASGIServer,
        "start",
        lambda self, *a, **k: started_by_prefect.append(1),
    )

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def tiny() -> tuple[int, str]:
        from prefect.runtime import flow_run

        return task(_double).submit(21).result(), flow_run.id

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with prefect_local_mode() as ready:
            ready()
            server = local_server._SERVER[0]
            assert PREFECT_API_URL.value() == server.api_url == os.environ["PREFECT_API_URL"]
            from prefect.settings import get_current_settings

            assert get_current_settings().flows.heartbeat_frequency is None  # quiet_heartbeats
            value, run_id = tiny()
            assert value == 42
            with get_client(sync_client=True) as client:
                assert client.read_flow_run(run_id).state.name == "Completed"
            task_runs = client_task_runs(server.api_url, run_id)
            assert [t["state"]["name"] for t in task_runs] == ["Completed"]
        assert PREFECT_API_URL.value() is None and "PREFECT_API_URL" not in os.environ
        # a second command in the same process reuses the running server
        with prefect_local_mode():
            assert local_server._SERVER[0] is server
    assert started_by_prefect == []
    server.stop()
    assert not server.alive()


def _double(x: int) -> int:
    return 2 * x


def client_task_runs(api_url: str, flow_run_id: str) -> list[dict]:
    """The flow run's task runs as the server has them (recorded from the events the worker
    process sent: given a moment)."""
    body = {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
    for _ in range(100):
        runs = httpx.post(f"{api_url}/task_runs/filter", json=body).json()
        if runs and all(r["state"]["name"] == "Completed" for r in runs):
            return runs
        time.sleep(0.1)
    return runs


def test_configured_api_is_left_alone(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import local_server
    from flows.cli_app import prefect_local_mode

    monkeypatch.setattr(
        local_server, "shared_server", lambda *_: pytest.fail("no server with a configured API")
    )
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        with prefect_local_mode():
            assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"


def test_local_mode_has_no_heartbeats_unless_the_user_set_them():
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY as FREQ
    from prefect.settings import temporary_settings

    from flows.cli_app import quiet_heartbeats

    with temporary_settings(restore_defaults={FREQ}):
        assert quiet_heartbeats() == {FREQ: None}
    with temporary_settings(updates={FREQ: 60}):
        assert quiet_heartbeats() == {}
    os.environ[FREQ.name] = "180"  # the default, but set by the user
    try:
        assert quiet_heartbeats() == {}
    finally:
        del os.environ[FREQ.name]


def test_startup_limit_is_the_users_or_ours(monkeypatch):
    from prefect.settings import (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as LIMIT,
    )
    from prefect.settings import temporary_settings

    from flows.local_server import configured_timeout

    with temporary_settings(restore_defaults={LIMIT}):
        assert configured_timeout(180) == 180
    with temporary_settings(updates={LIMIT: 45}):
        assert configured_timeout(180) == 45


def test_a_server_that_cannot_start_is_one_clear_error(tmp_path):
    """A database path that cannot exist: the server exits; the error names it, with the
    server's own last lines, and nothing is left running."""
    env = server_env(
        {
            **os.environ,
            "PREFECT_HOME": str(tmp_path),
            "PREFECT_API_DATABASE_CONNECTION_URL": (
                f"sqlite+aiosqlite:///{tmp_path}/missing/dir/prefect.db"
            ),
        }
    )
    server = LocalServer(env, timeout_s=120).start()
    with pytest.raises(LocalServerError, match="exited with code") as exc:
        server.wait()
    assert "unable to open database" in str(exc.value).lower() or "prefect.db" in str(exc.value)
    server.stop()
    assert not server.alive()


def test_cli_reports_a_failed_server_in_one_line(monkeypatch, capsys):
    import flows.cli as cli

    def boom(**_kw):
        raise LocalServerError("the Prefect server for this run exited with code 3: port taken")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as exc:
        cli.main(["fineweb"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and len(err.strip().splitlines()) == 1
    assert "exited with code 3" in err


def test_the_server_dies_with_a_killed_command(tmp_path):
    """kill -9 of the command leaves no server behind (parent-death signal)."""
    script = textwrap.dedent(
        """
        import sys
        from flows.local_server import shared_server
        server = shared_server(180)
        server.wait()
        print(server.proc.pid, flush=True)
        import time; time.sleep(600)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path)
    cmd = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        pid = int(cmd.stdout.readline())
        assert _running(pid)
        cmd.send_signal(signal.SIGKILL)
        cmd.wait()
        deadline = time.monotonic() + 30
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(pid), "the server outlived its killed command"
    finally:
        cmd.kill()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_port_taken_meanwhile_means_a_new_port(tmp_path):
    """Another process binds the chosen port before the server does: the server refuses it,
    and a new port is tried; ``api_url`` follows, and the log shows only the new server."""
    import socket

    server = LocalServer(server_env({**os.environ, "PREFECT_HOME": str(tmp_path)}), 180)
    taken = server.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", taken))
        s.listen()
        server.start()
        try:
            server.wait()
            assert server.port != taken and str(server.port) in server.api_url
            assert httpx.get(f"{server.api_url}/health").status_code == 200
            log = Path(server._log.name).read_text(errors="replace")
            assert "already in use" not in log and "\x00" not in log
        finally:
            server.stop()


def test_which_commands_launch_the_server_early():
    from flows.cli import runs_a_flow

    assert runs_a_flow(["fineweb", "--input", "x"]) and runs_a_flow(["-q", "demo"])
    assert runs_a_flow(["stage", "extract", "--input", "x"])
    assert not runs_a_flow(["stage"])  # prints its help
    assert not runs_a_flow(["fineweb", "--help"]) and not runs_a_flow(["--version"])
    assert not runs_a_flow(["train", "pretrain"]) and not runs_a_flow([])


def test_fineweb_launches_its_server_before_importing_prefect(tmp_path):
    """`tokenmill fineweb` in local mode: the server is launched before the command imports
    Prefect (so it starts while the command imports), once, and the run uses that server."""
    script = textwrap.dedent(
        """
        import json, sys
        from flows import local_server
        starts = []
        original = local_server.LocalServer.start
        def start(self):
            starts.append({"prefect_imported": "prefect" in sys.modules, "port": self.port})
            return original(self)
        local_server.LocalServer.start = start
        from flows.cli import main
        try:
            main(sys.argv[1:])
        except SystemExit as exc:
            assert not exc.code, exc.code
        print(json.dumps({"starts": starts, "url": local_server._SERVER[0].api_url}))
        """
    )
    from pipelines.sample_pages import write_sample_warc

    warc = tmp_path / "sample.warc.gz"
    write_sample_warc(warc)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    args = ["fineweb", "--input", str(warc), "--output", str(tmp_path / "out"), "--workers", "1"]
    run = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["starts"] == [{"prefect_imported": False, "port": report["starts"][0]["port"]}]
    assert str(report["starts"][0]["port"]) in report["url"]
    assert f"127.0.0.1:{report['starts'][0]['port']}" in run.stderr  # "this run's server is"
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["stages"]["read"]["in"] > 0


def test_an_early_server_is_stopped_when_an_api_is_configured(tmp_path, monkeypatch):
    """The profile (not the environment) configures an API: the server launched early is
    stopped, and the command uses the configured API."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import local_server
    from flows.cli_app import prefect_local_mode

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(local_server, "_SERVER", [])
    local_server.launch_early()
    early = local_server._SERVER[0]
    assert early.alive() and early.early
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        with prefect_local_mode():
            assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"
    assert not early.alive() and local_server._SERVER == []


def test_an_early_server_with_other_settings_is_replaced(tmp_path, monkeypatch):
    """Settings overridden in-process after the early launch (another PREFECT_HOME, so another
    database): that server is stopped and one with these settings is used; a server with the
    same settings is reused."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from flows import local_server

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(local_server, "_SERVER", [])
    local_server.launch_early()
    early = local_server._SERVER[0]
    try:
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            assert local_server.shared_server(180) is early  # same settings: adopted
            assert not early.early and early.timeout_s == 180
            with temporary_settings(updates={PREFECT_HOME: str(tmp_path)}):
                other = local_server.shared_server(180)
            assert other is not early and not early.alive()
            assert other.env["PREFECT_HOME"] == str(tmp_path)
    finally:
        for server in (early, *local_server._SERVER):
            server.stop()
