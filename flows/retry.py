"""Which task failures are worth retrying, and how (one policy for every flow).

A shard that fails because the disk hiccuped, an object store timed out or an HTTP server
answered 5xx may well succeed a few seconds later; a shard that fails because its input is
malformed or the code has a bug fails the same way every time, so retrying it only burns time
and hides the error. Per-document bad input is never an exception at all (the stage records it
as a removal with a reason); what reaches Prefect as an exception is either transient (retry)
or a bug (fail fast).

Usage in a flow module::

    from flows.retry import RETRY
    @task(**RETRY)
    def process_shard(...): ...

``RETRY`` carries ``retries``, an exponential ``retry_delay_seconds`` with jitter and
``retry_condition_fn=is_transient``. Tune it with ``TOKENMILL_RETRIES`` /
``TOKENMILL_RETRY_DELAY_S`` (environment, read at import time, so they also work in deployment
runs started by a worker).
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.http_status import TRANSIENT_HTTP_STATUS, http_status  # noqa: F401 (re-exported)

#: Exceptions that are OSError subclasses but deterministic: retrying cannot make a missing file
#: appear or a permission be granted.
_DETERMINISTIC_OS_ERRORS = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    FileExistsError,
)


def _is_transient_transport_error(exc: BaseException) -> bool:
    """Connection resets, read timeouts... of the HTTP clients we use (matched by name: no imports)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names
        & {
            "TransportError",
            "TimeoutException",
            "ConnectError",
            "ReadError",
            "WriteError",
            "RemoteProtocolError",
            "ConnectionError",
            "Timeout",
        }
    )


def is_transient_exception(exc: BaseException | None) -> bool:
    """True for failures a retry may fix: I/O errors, timeouts, connection errors, HTTP 5xx/429."""
    if exc is None:
        return False
    status = http_status(exc)
    if status is not None:
        return status in TRANSIENT_HTTP_STATUS
    if isinstance(exc, _DETERMINISTIC_OS_ERRORS):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError, OSError)):
        return True
    if _is_transient_transport_error(exc):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not exc and cause is not None and is_transient_exception(cause)


def _exception_of(state: Any) -> BaseException | None:
    """The exception behind a Failed Prefect state (``state.data`` or its stored result)."""
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - a result that cannot be loaded is itself the error
        return exc
    return result if isinstance(result, BaseException) else None


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures (see module docstring)."""
    return is_transient_exception(_exception_of(state))


def retry_options(retries: int | None = None, base_delay_s: float | None = None) -> dict[str, Any]:
    """Keyword arguments for ``@task``: bounded retries, exponential backoff with jitter, transient-only."""
    from prefect.tasks import exponential_backoff

    retries = int(os.environ.get("TOKENMILL_RETRIES", 3)) if retries is None else retries
    base = (
        float(os.environ.get("TOKENMILL_RETRY_DELAY_S", 2.0))
        if base_delay_s is None
        else base_delay_s
    )
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=base)(retries) if retries else 0,
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": is_transient,
    }


class _LazyRetry(dict):
    """``RETRY`` resolved on first use, so importing this module does not import prefect."""

    def _load(self) -> None:
        if not super().__len__():
            self.update(retry_options())

    def keys(self):  # type: ignore[override]
        self._load()
        return super().keys()

    def __getitem__(self, key: str) -> Any:
        self._load()
        return super().__getitem__(key)

    def __iter__(self):
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()


#: ``@task(**RETRY)``: the project's retry policy.
RETRY: dict[str, Any] = _LazyRetry()
