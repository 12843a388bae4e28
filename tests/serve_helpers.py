"""A real ``tokenmill serve`` subprocess for tests and benchmarks (not a test module).

``ServeProcess(ckpt, log, *args)`` starts ``python -m flows.cli serve --ckpt CKPT --port <free>``
plus ``args`` in its own session (output to ``log``), waits until ``/health`` answers 200 and
is killed as a process group by ``stop()`` (or at the end of a ``with`` block); ``url`` is its
base URL without ``/v1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.prefect_server import free_port, kill_group

REPO = Path(__file__).resolve().parents[1]


class ServeProcess:
    def __init__(
        self,
        ckpt: str | Path,
        log: Path,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 90,
    ):
        self.port = free_port()
        self.log_path = Path(log)
        self.log = open(log, "wb")  # noqa: SIM115 (closed in stop)
        cmd = [
            sys.executable,
            "-m",
            "flows.cli",
            "serve",
            "--ckpt",
            str(ckpt),
            "--port",
            str(self.port),
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
        )
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            self._wait_up(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"tokenmill serve exited {self.proc.returncode}: {self.log_path.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"tokenmill serve not up after {timeout:g} s: {self.log_path.read_text()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        kill_group(self.proc)
        self.log.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
