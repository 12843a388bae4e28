"""Shared fixtures: the real WARC files in ../shared/data/web and an isolated Prefect home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
