"""Run Prefect flows locally with nothing to set up, and as fast as Prefect allows.

With no ``PREFECT_API_URL``, Prefect 3.8 starts a temporary API server in a subprocess (uvicorn
+ SQLite) for the life of the process. Measured here (2 shared cores): ~6-7 s from flow call to
first task, almost all of it importing and starting that server; a trivial flow then costs
~0.1 s per task. What we do about it:

- ``configure()`` (call before importing prefect; flows/* modules do): ``PREFECT_HOME`` defaults
  to ``~/.tokenmill/prefect`` so the SQLite database persists (migrations run once, not per
  run) and a user's own ``~/.prefect`` is untouched; analytics off; logs at WARNING; a longer
  server start timeout for loaded machines. Every value is a default: the user's env wins.
- ``prewarm_api()`` starts that temporary server in a background thread right away, so its
  start overlaps with our own imports, input expansion and worker-process start-up;
  ``ensure_api()`` waits for it. Prefect's client reuses the same server object (a singleton
  per port), so no second server starts.
- ``bounded_task_runner(n)``: Prefect's default ThreadPoolTaskRunner is unbounded.

With ``PREFECT_API_URL`` set (a real server, deployments), all of this is skipped.
"""

from __future__ import annotations

import os
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


def prewarm_api() -> None:
    """Start the temporary local API server in the background (no-op with a real API URL)."""
    global _warm_thread
    if _warm_thread is not None or api_url():
        return
    _warm_thread = threading.Thread(target=_start_server, name="prefect-api-prewarm", daemon=True)
    _warm_thread.start()


def ensure_api() -> str | None:
    """Make sure an API is up before a flow starts; returns its URL (None: Prefect Cloud/env)."""
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
