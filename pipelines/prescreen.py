"""A cheap language pre-screen before extraction: do no work that cannot survive.

trafilatura is ~80% of the FineWeb pass's CPU, and on a multilingual crawl most pages are then
thrown away by language ID. This step renders the page's main content as plain text with
resiliparse (~4 ms a page against ~50 ms for trafilatura), asks fastText (the langid stage's
model) for the top language, and removes the page as ``langid:prescreen_not_in_languages`` when
that language is not wanted and scores at least ``LangIdConfig.prescreen_threshold``. Anything
less certain (a wanted language on top, a low score, no text) goes on to the full path, which
decides as before. With ``languages`` empty (keep all) it does nothing.

fastText reads only the first ``QUICK_CHARS`` characters of the rendering: its cost grows with
the text (the whole rendering took ~2.5x longer to classify) and a page's language is clear long
before its end.

The threshold was measured on the real pages of ../shared/data/web (144 HTML records after the
URL filter, ten requested-language sets: en, de, fr, es, zh, an, ja, ru, de+fr+es+zh, en+de;
1,440 (page, set) pairs), counting pairs the pre-screen removes although the full path's langid
would keep the page. Whole rendering: 1 at 0.5-0.6 (an English page with German navigation,
removed by the quality stage anyway), 0 from 0.7. First 2,000 characters: 0 at 0.7 (1,030 pairs
removed), 0.8 (1,006) and 0.9 (950). Without main-content detection (``main_content=False``,
~10% faster) 1 change up to 0.8. The default 0.8 changes no kept document there while skipping
trafilatura for ~95% of the pages the full path removes for their language.
``LangIdConfig.prescreen=False`` turns it off: every page is extracted, the decisions are
datatrove's exactly.

A page whose ``<html lang="...">`` declares one of the requested languages is not
pre-screened (``counts["skipped_declared"]``): it goes straight to extraction and language ID,
exactly as without the pre-screen, so skipping never changes a decision, and on a crawl of the
requested language (33 of 36 English-only sample pages declare ``en``) the pre-screen costs ~2
us a page instead of ~2 ms. A page that declares another language, or none, is pre-screened
(declarations are often wrong: 2 of 58 pages declaring ``en`` here are German).
``counts["judged"]`` counts the pages the pre-screen rendered and classified.

The removed document carries the pre-screen's ``language``, ``language_score`` and, as its
``text``, the quick rendering the language was judged on (not the HTML; whitespace as
rendered), and is
counted in the langid stage (its removal is langid's decision, taken early), so the chain of
stage counts stays ``kept(extract) == in(langid)``.
"""

from __future__ import annotations

import re
from collections import Counter

from pipelines.base import Step
from pipelines.langid import load_model
from schemas.config import LangIdConfig

#: characters of the quick rendering fastText classifies (see the module doc)
QUICK_CHARS = 2000
#: how far into the page the ``<html>`` tag is looked for (after a doctype and comments)
DECLARED_CHARS = 4096
_HTML_LANG = re.compile(
    r"<html\b[^>]*?\s(?:xml:)?lang\s*=\s*[\"']?\s*([A-Za-z]{2,3})(?![A-Za-z])", re.IGNORECASE
)


def declared_language(html: str) -> str | None:
    """The primary language subtag of ``<html lang=...>`` (``"en-US"`` -> ``"en"``), or None."""
    m = _HTML_LANG.search(html, 0, DECLARED_CHARS)
    return m.group(1).lower() if m else None


def judged_prefix(text: str, n: int = QUICK_CHARS) -> str:
    """``" ".join(text.split())[:n]``, what fastText reads, from as little of ``text`` as it
    takes: collapsing the whitespace of a whole news-page rendering cost about as much as
    rendering it. Exact, because collapsing a prefix of ``text`` gives a prefix of the
    collapsed whole (a word cut at the end is only shortened)."""
    k = 2 * n
    while True:
        head = " ".join(text[:k].split())
        if len(head) >= n or k >= len(text):
            return head[:n]
        k *= 4


def quick_text(html: str) -> str:
    """The page's main content as plain text, fast (resiliparse's main-content heuristics)."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True)


class PrescreenStep(Step):
    name = "prescreen"
    reason_prefix = "langid"
    #: a removal is counted in the langid stage (stats, ``removed.stage``): the page goes for its
    #: language; the extract stage counts it as passed through (it was never extracted)
    counts_as = "langid"

    def __init__(self, config: LangIdConfig | None = None) -> None:
        self.config = config or LangIdConfig()
        self.model = None
        self.languages = frozenset(self.config.languages)
        self.counts: Counter = Counter()

    def start_shard(self) -> None:
        self.counts = Counter()  # per shard, like the other stats

    def setup(self) -> None:
        if self.model is not None:
            return
        self.model = load_model(self.config.model_path)
        quick_text("<html><body><p>warm up</p></body></html>")

    def predict(self, html: str) -> tuple[str, float, str] | None:
        """(top language, score, the quick rendering), or None when it has no text."""
        if self.model is None:
            self.setup()
        try:
            text = quick_text(html)
        except Exception:  # noqa: BLE001 - undecided: the full path will look at the page
            return None
        head = judged_prefix(text)
        if not head:
            return None
        labels, scores = self.model.predict(head, k=1)
        if not labels:
            return None
        return labels[0][9:], float(scores[0]), text.strip()  # "__label__"

    def process(self, doc: dict) -> str | None:
        if not self.languages or not doc.get("text"):
            return None
        if declared_language(doc["text"]) in self.languages:
            self.counts["skipped_declared"] += 1
            return None
        self.counts["judged"] += 1
        got = self.predict(doc["text"])
        if got is None:
            return None
        lang, score, text = got
        if lang in self.languages or score < self.config.prescreen_threshold:
            return None
        # the removed record keeps the text the language was judged on, not the HTML (as a
        # langid removal keeps the extracted text): 10x smaller rows in memory and on disk
        doc["text"], doc["language"], doc["language_score"] = text, lang, score
        return self.reason("prescreen_not_in_languages")


def add_prescreen(groups: list[tuple[str, list[Step]]], config: LangIdConfig) -> None:
    """Put the pre-screen first in the ``extract`` group of ``groups`` (``build_stage_steps``)
    when the run has both extract and langid, the pre-screen is on and languages are chosen."""
    names = [name for name, _ in groups]
    if not (config.prescreen and config.languages and "extract" in names and "langid" in names):
        return
    groups[names.index("extract")][1].insert(0, PrescreenStep(config))
