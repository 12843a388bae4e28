"""A Prefect server for one command when no Prefect API is configured (Prefect's "local mode").

Left to itself, Prefect starts a temporary server lazily, at the flow's first API call: the
calling process first imports the whole server package (~2.5 s of CPU on our 2-core machine)
only to launch a subprocess, then waits for that subprocess to import it again and answer. The
command sits idle for all of it. Here the same kind of server is launched through Prefect's
public command line (``prefect server start``) as soon as the command knows it needs one, so it
starts while the command still imports its own modules, reads its config and plans its inputs,
and the command never imports the server package itself. Measured in
``benchmarks/cli_startup.py`` (this checkout against an older one, RESULTS.md).

The server matches Prefect's temporary one: loopback only, no UI, the same database
(``PREFECT_HOME``), and the background services a temporary server does not run (scheduler,
late runs, foreman, ...) switched off, so a local run never starts a deployment's scheduled runs.
One server serves the whole process (as Prefect's temporary server does). It is stopped at exit,
after Prefect's own log and event workers have drained into it (they drain at thread shutdown,
before ``atexit``), and dies with the command if the command is killed (Linux parent-death
signal), so ``kill -9`` leaves no server behind.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

#: services a Prefect *temporary* server does not run (prefect.server.services: only the
#: RunInEphemeralServers ones run there): off here too, whatever the profile says
SERVICES_OFF = (
    "SCHEDULER",
    "LATE_RUNS",
    "FOREMAN",
    "CANCELLATION_CLEANUP",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "DB_VACUUM",
    "CLEANUP_RECONCILER",
)


class LocalServerError(RuntimeError):
    """The server for this command did not come up (the message says why, with its log tail)."""


def free_port() -> int:
    """A loopback TCP port free right now (another process may still take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal():
    """Linux: a function for ``preexec_fn`` that makes the kernel SIGTERM the server when the
    command's process dies, even by SIGKILL; None elsewhere. libc's ``prctl`` is looked up here,
    in the parent: the child between fork and exec must not import (another thread of the
    command may hold the import lock at fork time)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def server_env(base: dict[str, str]) -> dict[str, str]:
    """The server process's environment: the command's own settings (as Prefect passes them to
    its temporary server), UI and the services a temporary server lacks switched off, analytics
    off unless the user set it (its heartbeat writes race the run's writes on SQLite)."""
    env = dict(base)
    env["PREFECT_SERVER_UI_ENABLED"] = "false"
    for name in SERVICES_OFF:
        env[f"PREFECT_SERVER_SERVICES_{name}_ENABLED"] = "false"
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    env.pop("PREFECT_API_URL", None)  # the server itself is not a client of another API
    return env


class LocalServer:
    """``start()`` launches and returns at once; ``wait()`` blocks until ``/api/health``
    answers (or raises ``LocalServerError``); ``stop()`` ends it. ``api_url`` is final once
    ``wait()`` returns (a port taken meanwhile by another process means a new port)."""

    def __init__(self, env: dict[str, str], timeout_s: float | None) -> None:
        self.env, self.timeout_s = env, timeout_s  # None: set before wait() (shared_server)
        self.early = False  # launched by launch_early() and not adopted yet
        self.cwd = os.getcwd()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="tokenmill-prefect-server-", suffix=".log", delete=False
        )
        self.ready = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> LocalServer:
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port)],
            env=self.env,
            stdin=subprocess.DEVNULL,  # never interactive (prefect's profile prompt)
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_parent_death_signal(),
        )
        return self

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = Path(self._log.name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:] if line.strip())

    def wait(self) -> None:
        """Block until the API answers; a server that exits or stays silent past the limit
        raises with its log's last lines."""
        if self.ready:
            return
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + self.timeout_s
        retries = 3
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.proc.poll()
                if code is not None and "already in use" in self.log_tail() and retries:
                    retries -= 1  # another process took the port meanwhile: a new one
                    self.port = free_port()
                    self._log.seek(0)  # the new server's lines replace the old one's
                    self._log.truncate()
                    self.start()
                    continue
                if code is not None:
                    raise LocalServerError(
                        f"the Prefect server for this run exited with code {code} before it "
                        f"answered: {self.log_tail() or '(no output)'}"
                    )
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        self.ready = True
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise LocalServerError(
                        f"the Prefect server for this run did not answer within "
                        f"{self.timeout_s:g} s (a busy machine? raise "
                        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or run `prefect "
                        f"server start` once and set PREFECT_API_URL): {self.log_tail()}"
                    )
                time.sleep(0.05)

    def settings_key(self) -> tuple:
        return self.cwd, settings_key(self.env)[1]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


def configured_timeout(default_s: float) -> float:
    """The user's ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` when they set one (it is
    the limit they set for Prefect's temporary server), else ``default_s``."""
    from prefect.settings import get_current_settings

    eph = get_current_settings().server.ephemeral
    default = type(eph).model_fields["startup_timeout_seconds"].default
    return float(
        eph.startup_timeout_seconds if eph.startup_timeout_seconds != default else default_s
    )


_SERVER: list[LocalServer] = []


def launch_early() -> None:
    """Launch this process's server now, before the command imports Prefect (``import
    prefect`` alone is ~1.4 s of CPU here, time the server can spend starting). Called by the CLI
    for commands that run a flow when no ``PREFECT_API_URL`` is in the environment. Prefect's
    settings are not known yet (a profile may configure an API, a caller may override settings
    in-process), so the server is launched with the environment as it is; ``shared_server()``
    adopts it only if the settings then resolved would launch exactly this server, and
    ``discard_early()`` stops it when an API turns out to be configured."""
    if _SERVER or os.environ.get("PREFECT_API_URL"):
        return
    server = LocalServer(server_env(dict(os.environ)), timeout_s=None).start()
    server.early = True
    atexit.register(server.stop)
    _SERVER[:] = [server]


def discard_early() -> None:
    """An API is configured after all: a server launched early and never used is stopped."""
    if _SERVER and _SERVER[0].early:
        _SERVER.pop().stop()


def _env_for_current_settings() -> dict[str, str]:
    """The server environment for Prefect's settings as they are now: this process's
    environment plus what differs in-process from what the environment and profile give
    (``temporary_settings``); the server reads the same profile and working directory."""
    from prefect.settings import Settings, get_current_settings

    current = get_current_settings().to_environment_variables(exclude_unset=True)
    fresh = Settings().to_environment_variables(exclude_unset=True)
    base = dict(os.environ)
    for key in current.keys() | fresh.keys():
        if key not in current:
            base.pop(key, None)
        elif fresh.get(key) != current[key]:
            base[key] = current[key]
    return server_env(base)


def settings_key(env: dict[str, str]) -> tuple:
    """What decides which server an environment launches: its Prefect variables and the working
    directory (a ``.env`` or ``prefect.toml`` there); other variables a library may set in the
    meantime (thread counts, ...) do not."""
    return os.getcwd(), {k: v for k, v in env.items() if k.startswith("PREFECT_")}


def shared_server(default_timeout_s: float) -> LocalServer:
    """This process's local server for the current Prefect settings: the running one when it
    was launched with exactly these settings (the early one included), else a new one (the
    other is stopped: its database may be another's); stopped at exit. A server that died (or
    failed to start) is replaced."""
    env = _env_for_current_settings()
    if _SERVER and _SERVER[0].alive() and _SERVER[0].settings_key() == settings_key(env):
        server = _SERVER[0]
    else:
        if _SERVER:
            _SERVER.pop().stop()
        server = LocalServer(env, None).start()
        atexit.register(server.stop)
        _SERVER[:] = [server]
    server.early = False
    if server.timeout_s is None:
        server.timeout_s = configured_timeout(default_timeout_s)
    return server
