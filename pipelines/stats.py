"""Per-stage accounting: documents in / kept / removed by reason, and time spent.

Every stage reports one ``StageStats``; shards report theirs and the flow merges them, so the
final ``stats.json`` is complete even when a run was resumed after a crash.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StageStats:
    stage: str
    docs_in: int = 0
    kept: int = 0
    removed: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())

    def check_conservation(self) -> None:
        if self.docs_in != self.kept + self.removed_total:
            raise AssertionError(
                f"{self.stage}: in={self.docs_in} != kept={self.kept} + removed={self.removed_total}"
            )

    def merge(self, other: StageStats) -> StageStats:
        self.docs_in += other.docs_in
        self.kept += other.kept
        self.removed.update(other.removed)
        self.seconds += other.seconds
        return self

    def to_dict(self) -> dict:
        return {
            "in": self.docs_in,
            "kept": self.kept,
            "removed": self.removed_total,
            "removed_by_reason": dict(sorted(self.removed.items())),
            "seconds": round(self.seconds, 4),
            "docs_per_s": round(self.docs_in / self.seconds, 2) if self.seconds > 0 else None,
        }

    @classmethod
    def from_dict(cls, stage: str, d: dict) -> StageStats:
        return cls(
            stage,
            d["in"],
            d["kept"],
            Counter(d.get("removed_by_reason", {})),
            d.get("seconds", 0.0),
        )


def merge_stats(parts: list[dict[str, StageStats]]) -> dict[str, StageStats]:
    """Merge per-shard stats (stage -> StageStats), keeping stage order of first appearance."""
    out: dict[str, StageStats] = {}
    for part in parts:
        for name, st in part.items():
            out.setdefault(name, StageStats(name)).merge(st)
    return out


def stats_to_json(stats: dict[str, StageStats]) -> dict:
    return {name: st.to_dict() for name, st in stats.items()}


def stats_from_json(d: dict) -> dict[str, StageStats]:
    return {name: StageStats.from_dict(name, v) for name, v in d.items()}


def write_stats(path: Path, stats: dict[str, StageStats], extra: dict | None = None) -> None:
    """Write stats.json atomically (``{"stages": ..., **extra}``)."""
    from pipelines.io import atomic_write_text

    payload = {"stages": stats_to_json(stats), **(extra or {})}
    atomic_write_text(Path(path), json.dumps(payload, indent=2))


def render_summary(stats: dict[str, StageStats], title: str = "tokenmill summary") -> None:
    """Print a rich table: one row per stage, with the top removal reasons."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("stage", "in", "kept", "removed", "top reasons", "seconds", "docs/s"):
        table.add_column(col, justify="right" if col not in ("stage", "top reasons") else "left")
    for name, st in stats.items():
        d = st.to_dict()
        top = ", ".join(f"{r}={n}" for r, n in st.removed.most_common(3))
        table.add_row(
            name,
            str(d["in"]),
            str(d["kept"]),
            str(d["removed"]),
            top,
            f"{d['seconds']:.2f}",
            str(d["docs_per_s"] or "-"),
        )
    Console(stderr=True).print(table)
