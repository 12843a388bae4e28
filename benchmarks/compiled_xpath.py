"""trafilatura with its own lxml XPath (the anchor) vs with tokenmill's compiled expressions.

Same process, same pages, same call (datatrove's: ``favor_precision=True``,
``include_comments=False``, ``deduplicate=True``): every real HTML page of ../shared/data/web,
``--rounds`` times (the dedup cache cleared before each round, as the extract stage does per
shard), so thousands of extractions per side. The sides alternate within every repeat (noise
hits both alike); median of ``--repeat``. Reports ms per page, the speed ratio, how many
outputs are byte-identical (must be all), and per expression the time lxml and the compiled
matcher take on the parsed pages. ``--record`` appends to benchmarks/RESULTS.md.

    python benchmarks/compiled_xpath.py [--rounds 16] [--repeat 3] [--record]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import append_bullets  # noqa: E402
from pipelines import compiled_xpath as cx  # noqa: E402
from pipelines.read import read_warc  # noqa: E402
from schemas.config import ReadConfig  # noqa: E402


def real_pages(web: Path) -> list[str]:
    pages = []
    for path in sorted(web.glob("*.warc.gz")):
        for doc, why in read_warc(str(path), ReadConfig()):
            if why is None and doc.get("text"):
                pages.append(doc["text"])
    return pages


def extract_rounds(pages: list[str], rounds: int) -> tuple[float, list[str | None]]:
    from trafilatura import extract
    from trafilatura.deduplication import LRU_TEST

    t = time.perf_counter()
    out: list[str | None] = []
    for _ in range(rounds):
        LRU_TEST.clear()
        out = [
            extract(h, favor_precision=True, include_comments=False, deduplicate=True)
            for h in pages
        ]
    return time.perf_counter() - t, out


def per_expression(pages: list[str]) -> list[tuple[str, float, float]]:
    """(expression, lxml s, compiled s) over the parsed pages, each once."""
    from trafilatura import xpaths
    from trafilatura.utils import load_html

    trees = [load_html(h) for h in pages]
    rows = []
    for key in cx.installed():
        list_name, k = key[:-1].split("[")
        fast = getattr(xpaths, list_name)[int(k)]
        times = []
        for fn in (fast.original, fast):
            t = time.perf_counter()
            for tree in trees:
                fn(tree)
            times.append(time.perf_counter() - t)
        rows.append((key, *times))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web", default=str(REPO.parent / "shared" / "data" / "web"))
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    pages = real_pages(Path(args.web))
    n = len(pages) * args.rounds
    print(f"{len(pages)} real pages x {args.rounds} rounds = {n} extractions per side and repeat")
    lxml_s, compiled_s = [], []
    for r in range(args.repeat):
        cx.uninstall()
        a, plain = extract_rounds(pages, args.rounds)
        cx.install()
        b, fast = extract_rounds(pages, args.rounds)
        lxml_s.append(a)
        compiled_s.append(b)
        same = sum(x == y for x, y in zip(plain, fast, strict=True))
        print(f"repeat {r + 1}: lxml {a:.1f} s, compiled {b:.1f} s, identical {same}/{len(pages)}")
        if same != len(pages):
            raise SystemExit("compiled expressions changed the extracted text")
    a, b = statistics.median(lxml_s), statistics.median(compiled_s)
    rows = per_expression(pages)
    lines = [
        f"input: {len(pages)} real HTML pages of ../shared/data/web x {args.rounds} rounds = {n} "
        f"extractions per side, sides alternated, median of {args.repeat}",
        f"trafilatura with lxml XPath (anchor): {a:.1f} s, {1000 * a / n:.2f} ms/page",
        f"trafilatura with compiled expressions: {b:.1f} s, {1000 * b / n:.2f} ms/page",
        f"speed ratio: **{a / b:.2f}x**; extracted text identical on {len(pages)}/{len(pages)} pages",
        f"{len(rows)} expressions compiled; the five costliest under lxml (s over the parsed "
        "pages, lxml -> compiled): "
        + ", ".join(f"{k} {x:.3f} -> {y:.3f}" for k, x, y in sorted(rows, key=lambda r: -r[1])[:5]),
    ]
    print("\n".join(lines))
    if args.record:
        append_bullets(
            "trafilatura: lxml XPath vs compiled expressions (`benchmarks/compiled_xpath.py`)",
            lines,
        )


if __name__ == "__main__":
    main()
