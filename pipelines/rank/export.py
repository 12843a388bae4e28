"""Rankings -> preference pairs, and agreement between annotators.

Every ranking implies a pair (chosen, rejected) for each two responses in different groups, the
better group's response chosen; responses in one group (ties) give no pair, nor do two responses
with the same text. Each pair keeps its annotator, its set and both ranks, so a reward model can
be trained on one annotator's pairs, on people only, or on everything. Pairs of one prompt stay
in one split (``val_fraction``, by a hash of the set id) so validation measures unseen prompts.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, defaultdict
from pathlib import Path

from pipelines.synth.common import stable_id, write_rows, write_stats
from schemas.conversations import RANKED_PAIR_SCHEMA


def implied_pairs(s: dict, ranking: list[list[str]]) -> tuple[list[tuple[str, str, int, int]], int]:
    """(chosen id, rejected id, chosen rank, rejected rank) for every cross-group pair, and how
    many pairs were dropped because the two texts are identical. Rank = 1-based group index."""
    text = {r["id"]: r["text"] for r in s["responses"]}
    out, identical = [], 0
    for (gi, better), (gj, worse) in itertools.combinations(enumerate(ranking, 1), 2):
        for c, r in itertools.product(better, worse):
            if text[c].strip() == text[r].strip():
                identical += 1
                continue
            out.append((c, r, gi, gj))
    return out, identical


def _order(ranking: list[list[str]]) -> dict[str, int]:
    return {rid: g for g, group in enumerate(ranking) for rid in group}


def agreement(rankings: list[dict]) -> dict:
    """Pairwise agreement between annotators who ranked the same set: over response pairs both
    rankings order strictly, the share ordered the same way (1 = always agree, 0.5 = chance)."""
    by_set: dict[str, list[dict]] = defaultdict(list)
    for r in rankings:
        by_set[r["set_id"]].append(r)
    agree = total = sets = 0
    per_pair: Counter = Counter()
    per_pair_agree: Counter = Counter()
    for rs in by_set.values():
        if len(rs) < 2:
            continue
        sets += 1
        for a, b in itertools.combinations(rs, 2):
            oa, ob = _order(a["ranking"]), _order(b["ranking"])
            key = " vs ".join(sorted([a["annotator"], b["annotator"]]))
            for x, y in itertools.combinations(sorted(oa), 2):
                da, db = oa[x] - oa[y], ob[x] - ob[y]
                if da == 0 or db == 0:
                    continue
                total += 1
                per_pair[key] += 1
                same = (da > 0) == (db > 0)
                agree += same
                per_pair_agree[key] += same
    return {
        "sets_with_several_rankings": sets,
        "compared_pairs": total,
        "pairwise_agreement": round(agree / total, 4) if total else None,
        "by_annotator_pair": {
            k: round(per_pair_agree[k] / n, 4) for k, n in sorted(per_pair.items())
        },
    }


def _split(set_id: str, val_fraction: float) -> str:
    h = int(hashlib.sha1(set_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"


def export_pairs(
    store, output: str | Path, annotators: list[str] | None = None, val_fraction: float = 0.0
) -> dict:
    """Write ``OUT/train`` (+ ``OUT/val``) pairs (RANKED_PAIR_SCHEMA) and ``OUT/stats.json``."""
    sets = {s["id"]: s for s in store.sets()}
    all_rankings = store.rankings()
    chosen_rankings = [r for r in all_rankings if not annotators or r["annotator"] in annotators]
    if annotators:
        unknown = sorted(set(annotators) - {r["annotator"] for r in all_rankings})
        if unknown:
            raise ValueError(
                f"no rankings by {unknown}; annotators in the database: "
                f"{sorted({r['annotator'] for r in all_rankings})}"
            )
    rows: dict[str, list[dict]] = {"train": [], "val": []}
    ties = identical = 0
    for rk in chosen_rankings:
        s = sets[rk["set_id"]]
        text = {r["id"]: r["text"] for r in s["responses"]}
        ties += sum(len(g) * (len(g) - 1) // 2 for g in rk["ranking"])
        pairs, same = implied_pairs(s, rk["ranking"])
        identical += same
        for c, r, gc, gr in pairs:
            rows[_split(s["id"], val_fraction)].append(
                {
                    "id": stable_id("ranked", rk["annotator"], s["id"], c, r),
                    "prompt": s["prompt"],
                    "chosen": text[c],
                    "rejected": text[r],
                    "source": f"ranked:{rk['annotator']}",
                    "annotator": rk["annotator"],
                    "set_id": s["id"],
                    "chosen_rank": gc,
                    "rejected_rank": gr,
                }
            )
    out = Path(output)
    write_rows(out / "train" / "part-00000.parquet", rows["train"], RANKED_PAIR_SCHEMA)
    if rows["val"]:
        write_rows(out / "val" / "part-00000.parquet", rows["val"], RANKED_PAIR_SCHEMA)
    else:  # a val split left by an earlier export with other settings would be read as this one's
        (out / "val" / "part-00000.parquet").unlink(missing_ok=True)
    stats = {
        "generator": "rank-export",
        "database": store.url,
        "sets": len(sets),
        "rankings": len(chosen_rankings),
        "pairs": len(rows["train"]) + len(rows["val"]),
        "train": len(rows["train"]),
        "val": len(rows["val"]),
        "ties_dropped": ties,
        "identical_text_dropped": identical,
        "by_annotator": dict(Counter(r["annotator"] for r in rows["train"] + rows["val"])),
        "agreement": agreement(all_rankings),
        "annotators_filter": annotators,
        "val_fraction": val_fraction,
    }
    write_stats(out, stats)
    return stats
