"""Run metrics: one JSON object per line in ``metrics.jsonl`` and a ``loss.png`` plot."""

from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines past the checkpoint step are dropped so the
    file matches an uninterrupted run."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            keep = [
                ln
                for ln in self.path.read_text().splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(ln + "\n" for ln in keep))

    def log(self, **record) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]


def plot(run_dir: str | Path, keys: tuple[str, ...] = ("loss", "val_loss")) -> Path | None:
    """Plot ``keys`` against step from ``metrics.jsonl`` into ``loss.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = MetricsLog.__new__(MetricsLog)
    records.path = run_dir / "metrics.jsonl"
    rows = records.records() if records.path.exists() else []
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = False
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(
                *zip(*pts, strict=True), label=key, marker="o" if key.startswith("val") else None
            )
            plotted = True
    ax.set_xlabel("step")
    ax.set_title(run_dir.name)
    if plotted:
        ax.legend()
    ax.grid(alpha=0.3)
    out = run_dir / "loss.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
