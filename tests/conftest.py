"""Shared fixtures: the real WARC files in ../shared/data/web and an isolated Prefect home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Prefect's own local mode in every test process and its children: a throwaway PREFECT_HOME (its
# SQLite database), no analytics, and a start-up limit for the temporary server that a loaded
# 2-core machine meets. Set before anything imports Prefect (it reads settings at import).
if "PREFECT_API_URL" not in os.environ:
    import tempfile

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="tokenmill-test-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TOKENMILL_SHARED", REPO.parent / "shared"))
WEB = SHARED / "data" / "web"


@pytest.fixture(scope="session")
def web_dir() -> Path:
    """../shared/data/web: real crawl files (not committed to this repo)."""
    if not WEB.is_dir():
        pytest.fail(f"real WARC files expected at {WEB} (set TOKENMILL_SHARED)")
    return WEB


@pytest.fixture(scope="session")
def web_warcs(web_dir: Path) -> list[Path]:
    return sorted(web_dir.glob("*.warc.gz"))


def pytest_configure(config) -> None:
    """Without bubblewrap (a fresh machine running the README's test command), tests that run
    tool-use code use the sandbox's explicit weak mode instead of failing; ``test_sandbox.py``
    skips with the install hint. In CI (``CI`` set) bubblewrap is installed and required."""
    import shutil

    if not os.environ.get("CI") and shutil.which("bwrap") is None:
        os.environ.setdefault("TOKENMILL_ALLOW_WEAK_SANDBOX", "1")


def pytest_unconfigure(config) -> None:
    """Prefect's local-mode temporary server is stopped by an atexit hook that logs "Stopping
    temporary server" through a console handler bound to pytest's capture stream, closed by
    then: drop that one message instead of printing a '--- Logging error ---' traceback after
    the test summary (only logging errors at interpreter exit are affected)."""
    import logging

    logging.raiseExceptions = False
