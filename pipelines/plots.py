"""PNG plots that go next to a dataset card (the card links them by relative path).

Readers of a card decide in seconds whether a dataset is for them; a bar chart of what each
stage removed says more than a table. Plots are drawn with matplotlib's Agg backend (no
display needed) and only from a ``DatasetSummary``, so they always agree with the card.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.card_summary import DatasetSummary

PLOTS_DIR = "plots"


def _figure(width: float = 7.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


def _barh(counts: list[tuple[str, int]], title: str, xlabel: str, path: Path) -> None:
    plt, fig, ax = _figure(7.0, max(2.5, 0.35 * len(counts) + 1.2))
    labels = [str(k) for k, _ in counts][::-1]
    values = [v for _, v in counts][::-1]
    ax.barh(labels, values, color="#4c72b0")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    _save(plt, fig, path)


def _hist(values: list[int], title: str, xlabel: str, path: Path, log: bool = True) -> None:
    import numpy as np

    plt, fig, ax = _figure()
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[arr > 0] if log else arr
    if log and arr.size and arr.max() > 10 * max(arr.min(), 1):
        bins = np.logspace(np.log10(max(arr.min(), 1)), np.log10(arr.max()), 40)
        ax.set_xscale("log")
    else:
        bins = 40
    ax.hist(arr, bins=bins, color="#55a868")
    ax.set_title(f"{title} (n={len(values):,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    _save(plt, fig, path)


def _quality_scores(kept: list[float], removed: list[float], path: Path) -> None:
    """The classify stage's score distribution: kept and removed documents stacked, 0-5."""
    import numpy as np

    plt, fig, ax = _figure()
    bins = np.linspace(0, 5, 41)
    ax.hist(
        [np.clip(kept, 0, 5), np.clip(removed, 0, 5)],
        bins=bins,
        stacked=True,
        color=["#4c72b0", "#c44e52"],
        label=[f"kept ({len(kept):,})", f"removed ({len(removed):,})"],
    )
    ax.set_title("Quality score (classify stage)")
    ax.set_xlabel("quality_score (0-5)")
    ax.set_ylabel("documents")
    ax.legend()
    _save(plt, fig, path)


def make_plots(s: DatasetSummary, out_dir: Path) -> list[str]:
    """Draw every plot the summary has data for; returns paths relative to ``out_dir``."""
    out_dir = Path(out_dir)
    made: list[str] = []

    def target(name: str) -> Path:
        made.append(f"{PLOTS_DIR}/{name}")
        return out_dir / PLOTS_DIR / name

    if s.stages:
        plt, fig, ax = _figure()
        names = list(s.stages)
        ins = [s.stages[n].get("in", 0) for n in names]
        kept = [s.stages[n].get("kept", 0) for n in names]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], ins, width=0.4, label="in", color="#8172b2")
        ax.bar([x + 0.2 for x in xs], kept, width=0.4, label="kept", color="#4c72b0")
        ax.set_xticks(list(xs), names, rotation=30, ha="right")
        ax.set_ylabel("documents")
        ax.set_title("Documents in and kept per stage")
        ax.legend()
        _save(plt, fig, target("documents_per_stage.png"))
        reasons: Counter = Counter()
        for st in s.stages.values():
            reasons.update(st.get("removed_by_reason") or {})
        if reasons:
            _barh(
                reasons.most_common(25),
                "Removed documents by reason",
                "documents",
                target("removal_reasons.png"),
            )
    if s.doc_word_lengths:
        _hist(
            s.doc_word_lengths,
            "Document length",
            "words per document",
            target("document_lengths.png"),
        )
    if s.languages:
        _barh(
            s.languages.most_common(20),
            "Documents by language",
            "documents",
            target("languages.png"),
        )
    if s.token_lengths:
        _hist(s.token_lengths, "Tokens per document", "tokens", target("token_lengths.png"))
    kinds: Counter = Counter()
    for c in s.kinds.values():
        kinds.update(c)
    if kinds:
        _barh(kinds.most_common(), "Samples by kind", "samples", target("kinds.png"))
    sources: Counter = Counter()
    for c in s.sources.values():
        sources.update(c)
    if sources:
        _barh(
            sources.most_common(20),
            "Samples by source (provenance)",
            "samples",
            target("sources.png"),
        )
    if s.turns:
        _hist(s.turns, "Messages per conversation", "messages", target("turns.png"), log=False)
    if s.quality_scores or s.quality_scores_removed:
        _quality_scores(s.quality_scores, s.quality_scores_removed, target("quality_scores.png"))
    return made
