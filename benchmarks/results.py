"""Appending a dated entry to benchmarks/RESULTS.md (append-only, newest last): one writer for
every benchmark script."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
MACHINE = "2-core x86_64 CPU, 24 GiB, shared/noisy"


def append_results(text: str) -> None:
    """Append ``text`` (creating the file with its header if needed)."""
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppend-only; newest last.\n")
    with open(RESULTS, "a") as f:
        f.write(text)


def append_bullets(title: str, lines: list[str], machine: str = MACHINE) -> None:
    """An entry ``## <date> <title>``, the machine, then one bullet per line."""
    append_results(
        f"\n## {dt.date.today()} {title}\nmachine: {machine}\n" + "".join(f"- {x}\n" for x in lines)
    )
