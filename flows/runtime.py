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
  When Prefect is not imported yet and nothing configures an API URL (the CLI's case), we start
  the very same server command Prefect would (``uvicorn prefect.server.api.server:create_app``
  with ``PREFECT__SERVER_EPHEMERAL=1``) as a subprocess ourselves and point ``PREFECT_API_URL``
  at it before Prefect is imported. That skips ~4 s of CPU Prefect spends importing its whole
  server package into the CLI process just to launch that subprocess, and the server gets the
  PDEATHSIG treatment (it dies with a kill -9'd run). It is stopped at exit like Prefect's.
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


class _LocalServer:
    """Prefect's temporary API server, launched without importing Prefect (see module doc)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.ready = False
        self._launch()
        atexit.register(self.stop)

    def _launch(self) -> None:
        import socket
        import sys

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
             "--lifespan", "on"], env=env, preexec_fn=_die_with_parent)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait(self) -> str:
        """Block until the server answers /health; relaunch on a port clash; raise on failure."""
        import time
        import urllib.request

        limit = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
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


def prewarm_api() -> None:
    """Start the temporary local API server in the background (no-op with a real API URL)."""
    global _warm_thread, _local_server
    if _warm_thread is not None or _local_server is not None:
        return
    configure()
    if "prefect" not in sys.modules and not _may_configure_api_url():
        _local_server = _LocalServer()
        os.environ["PREFECT_API_URL"] = _local_server.api_url  # read when Prefect is imported
        return
    if api_url():
        return
    _warm_thread = threading.Thread(target=_start_server, name="prefect-api-prewarm", daemon=True)
    _warm_thread.start()


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
