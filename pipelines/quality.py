"""The quality stage: FineWeb's four heuristic filters, making datatrove's decisions, faster.

``build_quality_steps`` returns, in FineWeb's order (datatrove ``examples/fineweb.py``):

1. ``GopherRepetitionStep``  - duplicated lines/paragraphs/n-grams (Gopher, Rae et al. 2021, A1)
2. ``GopherQualityStep``     - word counts, word length, symbols, bullets, stop words
3. ``C4QualityStep``         - C4 line rules; it REWRITES ``doc["text"]`` (drops lines, citations)
4. ``FineWebQualityStep``    - FineWeb's line-punctuation / short-line / duplicate / list rules

Every rule, threshold and comparison is datatrove 0.10.1's (``datatrove/pipeline/filters/
{gopher_repetition,gopher_quality,c4,fineweb_quality}_filter.py``), including its quirks (e.g. the
reason ``gopher_enough_stop_words`` for *too few* stop words). What differs is the word splitting:
datatrove runs spaCy on each text (twice per document plus once per line for C4's sentence count);
here each text is split once by ``pipelines.words`` (a port of spaCy's English tokenizer rules) and
the words are shared by the steps while the text is unchanged (a one-slot cache keyed by the text
object: C4 replaces the text, so FineWeb re-splits, as datatrove does).

Languages (FineWeb-2): English documents (and documents without a ``language``, see
``QualityConfig.default_language``) get the four configs of ``QualityConfig``: FineWeb's English
recipe, unchanged. Every other language gets its own ``LanguageSettings`` (``pipelines.lang``):
FineWeb-2's thresholds, stop words and word splitting for that language, or the documented
language-independent fallback, never the English stop words. A filter whose ``QualityConfig``
field is None is off for every language. Which settings each language used is written to the
shard's stats (``quality_languages``).

Removal reasons (``quality:<filter>_<datatrove reason>``):

- gopher repetition: ``quality:gopher_empty``, ``quality:gopher_dup_para_frac``,
  ``quality:gopher_dup_para_char_frac``, ``quality:gopher_dup_line_frac``,
  ``quality:gopher_dup_line_char_frac``, ``quality:gopher_top_{2,3,4}_gram``,
  ``quality:gopher_duplicated_{5..10}_n_grams``
- gopher quality (datatrove's names already start with ``gopher_``): ``quality:gopher_short_doc``,
  ``quality:gopher_long_doc``, ``quality:gopher_below_avg_threshold``,
  ``quality:gopher_above_avg_threshold``, ``quality:gopher_too_many_hashes``,
  ``quality:gopher_too_many_ellipsis``, ``quality:gopher_too_many_bullets``,
  ``quality:gopher_too_many_end_ellipsis``, ``quality:gopher_below_alpha_threshold``,
  ``quality:gopher_enough_stop_words`` (fewer than ``min_stop_words`` stop words)
- C4: ``quality:c4_lorem_ipsum``, ``quality:c4_curly_bracket``, ``quality:c4_too_few_sentences``
- FineWeb: ``quality:fineweb_empty``, ``quality:fineweb_line_punct_ratio``,
  ``quality:fineweb_short_line_ratio``, ``quality:fineweb_char_dup_ratio``,
  ``quality:fineweb_list_ratio``
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import accumulate

from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

from pipelines.base import Step
from pipelines.lang import LanguageResolver
from pipelines.words import count_sentences, split_words
from schemas.config import (
    C4QualityConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    QualityConfig,
)

# --- shared word cache ----------------------------------------------------------------------

#: recent texts' words by ``id(text)``: (text, splitter, words). Steps run batch-wise
#: (``pipelines.fineweb.first_removals``), so a step meets a document again after the rest of
#: its batch: the cache holds more than a batch.
_WORDS: dict[int, tuple[str, str, list[str]]] = {}
_WORDS_KEEP = 128


def words_of(text: str, splitter: str = "rules") -> list[str]:
    """Words of ``text``, split once and reused by the next steps while the text is unchanged.

    Keyed by identity (``is``) and the language's splitter: an entry holds a reference to its
    text, so the id cannot be reused while it is cached, and a step that rewrites the text (C4)
    makes a new string object. Each entry is one tuple (a single atomic assignment), so threads
    sharing the cache (Beam SDK workers) can only miss, never get another text's words.
    """
    cached = _WORDS.get(id(text))
    if cached is not None and cached[0] is text and cached[1] == splitter:
        return cached[2]
    words = split_words(text, splitter)
    _WORDS[id(text)] = (text, splitter, words)
    if len(_WORDS) > _WORDS_KEEP:  # drop the oldest entries (dicts keep insertion order)
        for key in list(_WORDS)[: len(_WORDS) - _WORDS_KEEP]:
            _WORDS.pop(key, None)
    return words


class LanguageAwareStep(Step):
    """A quality step whose thresholds follow the document's language (``pipelines.lang``).

    Without a resolver (or for English) the step's own ``config`` applies: FineWeb's English
    settings. With one, ``settings_field`` of the document language's ``LanguageSettings``; a
    language whose settings turn this filter off (None) passes the step.
    """

    settings_field: str = ""
    config = None

    def __init__(self, resolver: LanguageResolver | None = None) -> None:
        self.resolver = resolver
        self.reports = False  # one step per resolver reports its record (build_quality_steps)

    def setup(self) -> None:
        """Steps are reused across shards: the languages record starts afresh per shard."""
        if self.reports and self.resolver is not None:
            self.resolver.reset()

    def stats_report(self) -> dict:
        """Which settings each language of this shard used (``pipelines.fineweb`` stats)."""
        if not self.reports or self.resolver is None:
            return {}
        return {"quality_languages": self.resolver.report()}

    def config_for(self, doc: dict):
        """(config or None, word splitter) for ``doc``."""
        if self.resolver is None:
            return self.config, "rules"
        # the first quality step (the one that reports) sees every document entering quality
        s = self.resolver.for_doc(doc, count=self.reports)
        return getattr(s, self.settings_field), s.word_splitter


# --- Gopher repetition ------------------------------------------------------------------------

_PARAGRAPH_RE = re.compile(r"\n{2,}")
_LINES_RE = re.compile("\n+")


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated elements, characters in them): datatrove's ``find_duplicates``."""
    seen: set[str] = set()
    dup_elements = dup_chars = 0
    for element in items:
        if element in seen:
            dup_chars += len(element)
            dup_elements += 1
        else:
            seen.add(element)
    return dup_elements, dup_chars


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram (``" ".join`` length x count).

    Ties resolve to the n-gram seen first, as ``Counter.most_common(1)`` does in datatrove.
    """
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    if not counts:
        return 0
    gram, count = counts.most_common(1)[0]
    return (sum(map(len, gram)) + n - 1) * count


def duplicated_ngram_chars(words: list[str], n: int, limit: float | None = None) -> int:
    """datatrove's ``find_all_duplicate``: chars of non-overlapping repeated n-grams.

    The n-gram key is ``"".join`` of its words (no separator), exactly as datatrove builds it.
    Hand-optimised (the filter's hot spot): n-grams are slices of one concatenated string, and when
    ``limit`` is given an upper bound computed with C-level builtins (chars of every non-first
    occurrence, which is all the greedy scan can count) settles most documents without the scan;
    the value returned is then that bound, which is <= limit, so the decision is unchanged.
    """
    n_grams = len(words) - n + 1
    if n_grams <= 0:
        return 0
    offsets = list(accumulate(map(len, words), initial=0))
    cat = "".join(words)
    grams = [cat[offsets[i] : offsets[i + n]] for i in range(n_grams)]
    distinct = set(grams)
    if len(distinct) == n_grams:
        return 0
    if limit is not None:
        bound = sum(map(len, grams)) - sum(map(len, distinct))
        if bound <= limit:
            return bound
    unique: set[str] = set()
    repeated = idx = 0
    while idx < n_grams:
        gram = grams[idx]
        if gram in unique:
            repeated += len(gram)
            idx += n
        else:
            unique.add(gram)
            idx += 1
    return repeated


class GopherRepetitionStep(LanguageAwareStep):
    """Drops documents whose lines, paragraphs or word n-grams repeat too much."""

    name = "gopher_repetition"
    reason_prefix = "quality"

    settings_field = "gopher_repetition"

    def __init__(
        self, config: GopherRepetitionConfig | None = None, resolver: LanguageResolver | None = None
    ) -> None:
        super().__init__(resolver)
        self.config = config or GopherRepetitionConfig()

    def check(
        self, text: str, config: GopherRepetitionConfig | None = None, splitter: str = "rules"
    ) -> str | None:
        """The datatrove reason (without prefix) or None to keep."""
        c = config or self.config
        if not text:
            return "empty"
        paragraphs = _PARAGRAPH_RE.split(text.strip())
        dups, chars = find_duplicates(paragraphs)
        if c.dup_para_frac and dups / len(paragraphs) > c.dup_para_frac:
            return "dup_para_frac"
        if c.dup_para_char_frac and chars / len(text) > c.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = _LINES_RE.split(text)
        dups, chars = find_duplicates(lines)
        if c.dup_line_frac and dups / len(lines) > c.dup_line_frac:
            return "dup_line_frac"
        if c.dup_line_char_frac and chars / len(text) > c.dup_line_char_frac:
            return "dup_line_char_frac"
        words = words_of(text, splitter)
        for n, frac in c.top_n_grams:
            if len(words) >= n and top_ngram_chars(words, n) / len(text) > frac:
                return f"top_{n}_gram"
        for n, frac in c.dup_n_grams:
            if duplicated_ngram_chars(words, n, frac * len(text)) / len(text) > frac:
                return f"duplicated_{n}_n_grams"
        return None

    def process(self, doc: dict) -> str | None:
        config, splitter = self.config_for(doc)
        if config is None:
            return None
        why = self.check(doc.get("text") or "", config, splitter)
        return None if why is None else self.reason(f"gopher_{why}")


# --- Gopher quality ---------------------------------------------------------------------------


class GopherQualityStep(LanguageAwareStep):
    """Gopher's document rules: length, mean word length, symbols, bullets, alpha words, stop words."""

    name = "gopher_quality"
    reason_prefix = "quality"

    settings_field = "gopher_quality"

    def __init__(
        self, config: GopherQualityConfig | None = None, resolver: LanguageResolver | None = None
    ) -> None:
        super().__init__(resolver)
        self.config = config or GopherQualityConfig()
        self._stop_words: dict[int, frozenset[str]] = {}

    def stop_words(self, config: GopherQualityConfig) -> frozenset[str]:
        got = self._stop_words.get(id(config))
        if got is None:  # configs live as long as the step (resolver cache), so ids are stable
            got = self._stop_words[id(config)] = frozenset(config.stop_words)
        return got

    def check(
        self, text: str, config: GopherQualityConfig | None = None, splitter: str = "rules"
    ) -> str | None:
        c = config or self.config
        words = words_of(text, splitter)
        n_words = len(words)
        # per distinct word, then weighted by count: same integer sums as datatrove's per-word loops
        counts = Counter(words)
        non_symbol = [(w, k) for w, k in counts.items() if not PUNCTUATION_SET.issuperset(w)]
        n_non_symbol = sum(k for _, k in non_symbol)
        if c.min_doc_words and n_non_symbol < c.min_doc_words:
            return "gopher_short_doc"
        if c.max_doc_words and n_non_symbol > c.max_doc_words:
            return "gopher_long_doc"
        if n_non_symbol:  # datatrove: np.mean([]) is nan and both comparisons are False
            avg = sum(len(w) * k for w, k in non_symbol) / n_non_symbol
            if c.min_avg_word_length and avg < c.min_avg_word_length:
                return "gopher_below_avg_threshold"
            if c.max_avg_word_length and avg > c.max_avg_word_length:
                return "gopher_above_avg_threshold"
        if n_words == 0:  # nothing below is defined (datatrove would divide by zero)
            return "gopher_short_doc"
        if c.max_symbol_word_ratio and text.count("#") / n_words > c.max_symbol_word_ratio:
            return "gopher_too_many_hashes"
        if (
            c.max_symbol_word_ratio
            and (text.count("...") + text.count("…")) / n_words > c.max_symbol_word_ratio
        ):
            return "gopher_too_many_ellipsis"
        lines = text.splitlines()
        if lines:
            if c.max_bullet_lines_ratio:
                bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
                if bullets / len(lines) > c.max_bullet_lines_ratio:
                    return "gopher_too_many_bullets"
            if c.max_ellipsis_lines_ratio:
                ends = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
                if ends / len(lines) > c.max_ellipsis_lines_ratio:
                    return "gopher_too_many_end_ellipsis"
        if c.max_non_alpha_words_ratio:
            alpha = sum(
                k for w, k in counts.items() if w.isalpha() or any(ch.isalpha() for ch in w)
            )
            if alpha / n_words < c.max_non_alpha_words_ratio:
                return "gopher_below_alpha_threshold"
        if c.min_stop_words and len(self.stop_words(c).intersection(counts)) < c.min_stop_words:
            return "gopher_enough_stop_words"
        return None

    def process(self, doc: dict) -> str | None:
        config, splitter = self.config_for(doc)
        if config is None:
            return None
        why = self.check(doc.get("text") or "", config, splitter)
        return None if why is None else self.reason(why)


# --- C4 ---------------------------------------------------------------------------------------

CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


class C4QualityStep(LanguageAwareStep):
    """C4's line filter (keeps good lines, REWRITES the text) and its document rules.

    Only ``split_paragraph=True`` (lines, C4's and FineWeb's setting) is supported: the sentence
    mode would need spaCy's sentence splitter over the whole text.
    """

    name = "c4_quality"
    reason_prefix = "quality"

    settings_field = "c4"

    def __init__(
        self, config: C4QualityConfig | None = None, resolver: LanguageResolver | None = None
    ) -> None:
        super().__init__(resolver)
        self.config = config or C4QualityConfig()
        if not self.config.split_paragraph:
            raise ValueError("C4QualityStep supports split_paragraph=True only (FineWeb's setting)")

    def filter_text(
        self, text: str, config: C4QualityConfig | None = None
    ) -> tuple[str | None, str]:
        """(reason or None, the text with only the kept lines)."""
        c = config or self.config
        if not c.split_paragraph:
            raise ValueError("C4QualityStep supports split_paragraph=True only (FineWeb's setting)")
        num_sentences = 0
        kept: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            if c.max_word_length != -1 and any(len(w) > c.max_word_length for w in words):
                continue
            if c.remove_citations:
                line = CITATION_RE.sub("", line)
            if c.filter_no_terminal_punct and (
                not line.endswith(END_PUNCTUATION) or line.endswith("...")
            ):
                continue
            if len(words) < c.min_words_per_line:
                continue
            line_l = line.lower()
            if c.filter_lorem_ipsum and "lorem ipsum" in line_l:
                return "lorem_ipsum", text
            if c.filter_javascript and "javascript" in line_l:
                continue
            if c.filter_curly_bracket and "{" in line:
                return "curly_bracket", text
            if c.filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                continue
            if c.min_num_sentences != -1:
                num_sentences += count_sentences(line)
            kept.append(line)
        if num_sentences < c.min_num_sentences:
            return "too_few_sentences", text
        return None, "\n".join(kept).strip()

    def process(self, doc: dict) -> str | None:
        config, _ = self.config_for(doc)
        if config is None:
            return None
        why, text = self.filter_text(doc.get("text") or "", config)
        if why is not None:
            return self.reason(f"c4_{why}")
        if text != doc.get("text"):
            doc["text"] = text
        return None


# --- FineWeb ----------------------------------------------------------------------------------


class FineWebQualityStep(LanguageAwareStep):
    """FineWeb's own rules: lines ending in punctuation, short lines, duplicated lines, lists."""

    name = "fineweb_quality"
    reason_prefix = "quality"

    settings_field = "fineweb"

    def __init__(
        self, config: FineWebQualityConfig | None = None, resolver: LanguageResolver | None = None
    ) -> None:
        super().__init__(resolver)
        self.config = config or FineWebQualityConfig()
        self.stop_chars = tuple(TERMINAL_PUNCTUATION)

    def check(
        self, text: str, config: FineWebQualityConfig | None = None, splitter: str = "rules"
    ) -> str | None:
        c = config or self.config
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            return "empty"
        ratio = sum(1 for line in lines if line.endswith(self.stop_chars)) / len(lines)
        if ratio < c.line_punct_thr and not (ratio == 0 and c.line_punct_exclude_zero):
            return "line_punct_ratio"
        ratio = sum(1 for line in lines if len(line) <= c.short_line_length) / len(lines)
        if ratio > c.short_line_thr:
            return "short_line_ratio"
        non_newline_chars = len(text) - text.count("\n")
        if (
            non_newline_chars
            and find_duplicates(lines)[1] / non_newline_chars > c.char_duplicates_ratio
        ):
            return "char_dup_ratio"
        words = words_of(text, splitter)
        if words and text.count("\n") / len(words) > c.new_line_ratio:
            return "list_ratio"
        return None

    def process(self, doc: dict) -> str | None:
        config, splitter = self.config_for(doc)
        if config is None:
            return None
        why = self.check(doc.get("text") or "", config, splitter)
        return None if why is None else self.reason(f"fineweb_{why}")


def build_quality_steps(config: QualityConfig | None = None) -> list[Step]:
    """The enabled quality filters in FineWeb's order. A filter whose config is None is off for
    every language; otherwise English gets the config's values and, with ``per_language``, every
    other language its own settings (``pipelines.lang``), which may turn a filter off (FineWeb-2
    does not run C4). The first step reports the languages seen (``stats_report``)."""
    config = config or QualityConfig()
    resolver = LanguageResolver(config)
    steps: list[Step] = []
    if config.gopher_repetition is not None:
        steps.append(GopherRepetitionStep(config.gopher_repetition, resolver))
    if config.gopher_quality is not None:
        steps.append(GopherQualityStep(config.gopher_quality, resolver))
    if config.c4 is not None:
        steps.append(C4QualityStep(config.c4, resolver))
    if config.fineweb is not None:
        steps.append(FineWebQualityStep(config.fineweb, resolver))
    if steps:
        steps[0].reports = True
    return steps
