"""Run Prefect flows locally with nothing to set up, and as fast as Prefect allows.

With no ``PREFECT_API_URL``, Prefect 3.8 starts a temporary API server in a subprocess (uvicorn
+ SQLite) for the life of the process. Measured here (2 shared cores): ~6-7 s from flow call to
first task, almost all of it importing and starting that server; a trivial flow then costs
~0.1 s per task. What we do about it:

- ``configure()`` (call before importing prefect; flows/* modules do): ``PREFECT_HOME`` defaults
  to ``~/.tokenmill/prefect`` so the SQLite database persists (migrations run once, not per
  run) and a user's own ``~/.prefect`` is untouched; analytics off; logs at WARNING; a longer
  server start timeout for loaded machines. Every value is a default: the user's env wins.
- ``prewarm_api()`` starts that temporary server right away, so its start overlaps with our own
  imports, input expansion and worker-process start-up; ``ensure_api()`` waits for it.
  When Prefect is not imported yet and nothing configures an API URL (the CLI's case), we run
  the very same server Prefect would (``prefect.server.api.server:create_app`` under uvicorn
  with ``PREFECT__SERVER_EPHEMERAL=1``) in a child process ourselves and point
  ``PREFECT_API_URL`` at it before Prefect is imported. That skips ~4 s of CPU Prefect spends
  importing its whole server package into the CLI process just to launch that subprocess, and
  the server gets the PDEATHSIG treatment (it dies with a kill -9'd run). It is stopped at exit
  like Prefect's. The CLI defers the launch (``prewarm_api(defer=True)`` binds the port, then
  ``start_server()``) until it has imported Prefect itself, and then FORKS the server from its
  own process: the child inherits that import (~1/3 of the server's start-up CPU, ~1.3 s on the
  machine of record) and imports only the server package. Fork only while this process runs a
  single thread (before the worker pool's manager thread exists); otherwise, or with
  ``TOKENMILL_SERVER_FORK=0``, the server is a fresh ``python -m uvicorn`` process as before.
  The forked server serves on the socket the parent bound, so no other process can take the
  port in between. Migrations: the SQLite DB under ``PREFECT_HOME`` persists, Prefect's
  ``create_db`` on an up-to-date DB costs ~0.1 s of CPU and block registration is memoized, so
  neither is worth skipping (measured: the server's start-up is ~85% imports).
  Otherwise (Prefect already imported, a configured URL) Prefect's own ``SubprocessASGIServer``
  is started in a background thread; Prefect's client reuses that singleton, so no second
  server starts.
- ``bounded_task_runner(n)``: Prefect's default ThreadPoolTaskRunner is unbounded.

With ``PREFECT_API_URL`` set (a real server, deployments), all of this is skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_UI_ENABLED": "false",
}
_warm_thread: threading.Thread | None = None
_warm_error: list[BaseException] = []
_local_server: _LocalServer | None = None


def default_home() -> Path:
    return Path(os.environ.get("TOKENMILL_HOME", Path.home() / ".tokenmill")) / "prefect"


def configure(home: str | Path | None = None) -> None:
    """Set Prefect's environment defaults. Call before ``import prefect`` (idempotent)."""
    os.environ.setdefault("PREFECT_HOME", str(home or default_home()))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    for k, v in _DEFAULTS.items():
        os.environ.setdefault(k, v)


def api_url() -> str | None:
    """The configured Prefect API URL (env or profile), or None for the temporary server."""
    configure()
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def _start_server() -> None:
    try:
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().start()
    except BaseException as e:  # noqa: BLE001 - re-raised by ensure_api() in the caller
        _warm_error.append(e)


_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


class _Forked:
    """The ``subprocess.Popen`` calls ``_LocalServer`` uses, for a child made with ``os.fork``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

        t0 = time.monotonic()
        while self.poll() is None:
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def terminate(self) -> None:
        import signal

        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        import signal

        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def _serve_in_fork(sock) -> None:
    """The forked child: Prefect's server app under uvicorn, as Prefect's own command runs it,
    on the socket the parent bound (no window in which another process can take the port)."""
    code = 1
    try:
        _die_with_parent()
        _close_multiprocessing_fds()
        os.environ.update(_SERVER_ENV)
        os.environ.pop("PREFECT_API_URL", None)
        import uvicorn

        config = uvicorn.Config("prefect.server.api.server:create_app", factory=True,
                                host="127.0.0.1", port=sock.getsockname()[1], log_level="error",
                                lifespan="on")
        _prompt_exit_server(uvicorn)(config).run(sockets=[sock])
        code = 0
    except BaseException:  # noqa: BLE001 - reported, then the child exits (never returns)
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _prompt_exit_server(uvicorn):
    """``uvicorn.Server`` whose main loop notices SIGTERM at once instead of at its next 0.1 s
    tick (the CLI waits for the server's exit). The graceful shutdown that follows (open
    requests finished, Prefect's lifespan shutdown) is uvicorn's own, unchanged."""
    import asyncio

    class Server(uvicorn.Server):
        _wake: asyncio.Event | None = None
        _loop: asyncio.AbstractEventLoop | None = None

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            if self._loop is not None and self._wake is not None:
                with contextlib.suppress(RuntimeError):  # loop closed
                    self._loop.call_soon_threadsafe(self._wake.set)

        async def main_loop(self) -> None:  # uvicorn's, waking early on exit signals
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864000
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                should_exit = await self.on_tick(counter)

    return Server


def _close_multiprocessing_fds() -> None:
    """A forked server must not hold the parent's end of the forkserver's / resource tracker's
    pipes: they exit (and the parent's ``stop_forkserver`` waits) when every holder closed it."""
    try:
        from multiprocessing import forkserver, resource_tracker

        for fd in (forkserver._forkserver._forkserver_alive_fd, resource_tracker._resource_tracker._fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
    except Exception:  # noqa: BLE001 - private attributes (CPython): best effort
        pass


def _import_shared_with_server() -> None:
    """Before forking the server: import what both processes import anyway, once. FastAPI
    (~0.3 s of CPU here): the server is a FastAPI app, and Prefect's flow engine imports it in
    this process when the flow run starts (``Flow.serialize_parameters`` uses
    ``fastapi.encoders``), i.e. on the critical path after the server is up."""
    with contextlib.suppress(ImportError):
        import fastapi.encoders  # noqa: F401


def _can_fork_server() -> bool:
    """Fork only a single-threaded process that already imported Prefect (the child then skips
    that import, ~1/3 of the server's start-up CPU); never where fork is unsafe or unavailable."""
    return (os.environ.get("TOKENMILL_SERVER_FORK", "1") != "0" and hasattr(os, "fork")
            and "prefect" in sys.modules and threading.active_count() == 1)


class _LocalServer:
    """Prefect's temporary API server, launched without Prefect's launcher (see module doc).

    ``defer``: only pick the port now (``PREFECT_API_URL`` can be set before Prefect is
    imported); ``launch()`` starts the server later, by forking this process once it has
    imported Prefect (``_can_fork_server``), else as a fresh ``python -m uvicorn`` process.
    """

    def __init__(self, defer: bool = False) -> None:
        self.proc: subprocess.Popen | _Forked | None = None
        self.port = 0
        self._sock = None  # bound (not listening) until a forked server takes it
        self.ready = False
        self.forked = False
        self._pick_port()
        if not defer:
            self.launch()
        atexit.register(self.stop)

    def _pick_port(self) -> None:
        import socket

        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose
        # proto says TCP (``base_events._set_nodelay``); without it every response written in
        # two sends (headers, body) waits ~40 ms for the client's delayed ACK (Nagle)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]

    def launch(self) -> None:
        """Start the server process (no-op once started)."""
        if self.proc is not None:
            return
        sock, self._sock = self._sock, None
        if sock is not None and _can_fork_server():
            _import_shared_with_server()
            pid = os.fork()
            if pid == 0:
                _serve_in_fork(sock)  # never returns
            sock.close()
            self.proc, self.forked = _Forked(pid), True
            return
        if sock is not None:
            sock.close()  # uvicorn binds the port itself (a short window another process may win)
        env = {**os.environ, **_SERVER_ENV}
        env.pop("PREFECT_API_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
             "--lifespan", "on"], env=env, preexec_fn=_die_with_parent)

    def _launch(self) -> None:
        self.proc = None
        self._pick_port()
        self.launch()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait(self) -> str:
        """Block until the server answers /health; relaunch on a port clash; raise on failure."""
        import time
        import urllib.request

        limit = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
        self.launch()
        t0 = time.monotonic()
        relaunched = False
        while not self.ready:
            assert self.proc is not None
            if self.proc.poll() is not None:
                if relaunched:
                    raise RuntimeError(f"Prefect's temporary server exited ({self.proc.returncode})")
                relaunched = True  # the port was taken between our probe and uvicorn's bind
                self._launch()
                os.environ["PREFECT_API_URL"] = self.api_url
                if "prefect" in sys.modules:
                    raise RuntimeError("Prefect's temporary server could not bind its port; retry")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                    self.ready = r.status == 200
            except OSError:
                pass
            if not self.ready:
                if time.monotonic() - t0 > limit:
                    raise RuntimeError(f"Prefect's temporary server not healthy after {limit:.0f} s")
                time.sleep(0.05)
        return self.api_url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort (not Linux)
        pass


def _may_configure_api_url() -> bool:
    """Whether any Prefect setting source could name an API URL (checked without importing
    Prefect: env, profiles file, ./prefect.toml, ./.env, ./pyproject.toml [tool.prefect])."""
    if os.environ.get("PREFECT_API_URL") or os.environ.get("PREFECT_PROFILE"):
        return True
    if os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "true").lower() in ("0", "false", "no"):
        return True  # let Prefect raise its own error
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", Path(os.environ["PREFECT_HOME"]) / "profiles.toml"))
    for path, marker in ((profiles, "api_url"), (Path("prefect.toml"), "url"), (Path(".env"), "api_url"),
                         (Path("pyproject.toml"), "tool.prefect")):
        try:
            if marker in path.read_text(errors="replace").lower():
                return True
        except OSError:
            continue
    return False


def prewarm_api(defer: bool = False) -> None:
    """Start the temporary local API server in the background (no-op with a real API URL).

    ``defer`` (the CLI): when we launch the server ourselves, only reserve its port and set
    ``PREFECT_API_URL`` now; ``start_server()`` (or ``ensure_api()``) launches it, by fork when
    this process has imported Prefect by then and runs no other thread."""
    global _warm_thread, _local_server
    if _warm_thread is not None or _local_server is not None:
        return
    configure()
    if "prefect" not in sys.modules and not _may_configure_api_url():
        _local_server = _LocalServer(defer=defer)
        os.environ["PREFECT_API_URL"] = _local_server.api_url  # read when Prefect is imported
        return
    if api_url():
        return
    _warm_thread = threading.Thread(target=_start_server, name="prefect-api-prewarm", daemon=True)
    _warm_thread.start()


def start_server() -> None:
    """Launch the temporary server ``prewarm_api(defer=True)`` prepared (no-op otherwise)."""
    if _local_server is not None:
        _local_server.launch()


def ensure_api() -> str | None:
    """Make sure an API is up before a flow starts; returns its URL (None: Prefect Cloud/env)."""
    if _local_server is not None:
        return _local_server.wait()
    url = api_url()
    if url:
        return url
    prewarm_api()
    assert _warm_thread is not None
    _warm_thread.join()
    if _warm_error:
        raise RuntimeError("could not start Prefect's temporary local server") from _warm_error[0]
    from prefect.server.api.server import SubprocessASGIServer

    return SubprocessASGIServer().api_url


def is_temporary_api() -> bool:
    """Whether flows here talk to a temporary server that lives and dies with this process."""
    if _local_server is not None:
        return True
    return _warm_thread is not None and not os.environ.get("PREFECT_API_URL")


@contextlib.contextmanager
def local_run_settings():
    """Settings for a flow run on the temporary local server: no flow-run heartbeats.

    Heartbeats let a long-lived server mark a flow run whose process died as crashed; a
    temporary server dies with the process, so they only cost time: the engine joins the
    heartbeat thread when the flow ends, which sleeps in 1 s steps (~1 s per flow run measured
    here). With a real API (``PREFECT_API_URL``) nothing changes.
    """
    if not is_temporary_api():
        yield
        return
    from prefect.settings import temporary_settings

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


def bounded_task_runner(n: int):
    """A ThreadPoolTaskRunner with at most ``n`` threads (Prefect's default is unbounded)."""
    configure()
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max(1, int(n)))


def quiet_prefect_loggers() -> None:
    """Keep Prefect's own INFO chatter (server start/stop) off the console."""
    import logging

    for name in ("prefect", "prefect.server", "prefect.subprocess_server", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)
