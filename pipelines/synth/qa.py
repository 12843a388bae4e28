"""Factual questions from corpus snippets, whose answers are spans of the snippet.

With an LLM (Llama 3's knowledge probing, section 4.3.6): ``llm_questions`` has it write a
natural, self-contained factual question from a snippet plus the answer span; a question is kept
only when the answer really is a span of the snippet, is not given away by the question, the
question does not point at "the text" (the probed model never sees it), and the judge LLM
confirms the snippet answers it with that span.

Offline fallback, labelled as such (``writer="rules:cloze"``): split a document into sentences,
find a span worth asking about, blank it out and ask for it ("cloze" question, with the page's
site named so the question is answerable in principle). Slot types are conservative: a four-digit
number is a "year" only after a year cue ("in 1998", "since 2004", "March 2019"), otherwise it is
a "number"; weekdays and months are never "names".

``span_match`` is the judge used without an LLM: normalized containment of the reference span
in the model's answer (case, punctuation and number formatting ignored).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from pipelines.io import documents_dir, iter_parquet_rows, parquet_files

_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_YEAR_RE = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_NUM_RE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d{2,})(?:\.\d+)?(?![\w,]|\.\d)")
_NAME_RE = re.compile(
    r"\b([A-ZÀ-Ý][a-zà-ÿ]+(?:\s+(?:of\s+|the\s+|de\s+)?[A-ZÀ-Ý][a-zA-Zà-ÿ]+){0,3})\b"
)
_BULLET_RE = re.compile(r"^(?:[-*•·>]+|\d+[.)])\s+")
_STOP_NAMES = {
    "The",
    "This",
    "That",
    "These",
    "Those",
    "It",
    "He",
    "She",
    "They",
    "We",
    "I",
    "You",
    "In",
    "On",
    "At",
    "For",
    "And",
    "But",
    "Or",
    "If",
    "When",
    "While",
    "After",
    "Before",
    "A",
    "An",
    "My",
    "Our",
    "His",
    "Her",
    "Their",
    "Its",
    "As",
    "By",
    "From",
    "With",
    "To",
    "Of",
    "Mr",
    "Ms",
    "Dr",
}
_STOP_NAMES |= {
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "English",
    "However",
    "Also",
    "Then",
    "There",
    "Here",
    "What",
    "Why",
}
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
)
#: Words right before a four-digit number that make it a year.
YEAR_CUES = frozenset(
    {
        "in",
        "since",
        "by",
        "from",
        "until",
        "till",
        "to",
        "during",
        "after",
        "before",
        "around",
        "circa",
        "c",
        "year",
        "early",
        "late",
        "mid",
        "spring",
        "summer",
        "autumn",
        "fall",
        "winter",
        "of",
        "between",
        "and",
        *_MONTHS,
    }
)
TYPE_WORD = {"year": "year", "number": "number", "name": "name"}
#: Question wording that points at a text the probed model never sees.
_REFERS_TO_TEXT = re.compile(
    r"\b(?:the|this|that|above|given|following)\s+(?:text|passage|article|page|snippet|"
    r"document|excerpt|paragraph|source)\b|\baccording to the\b",
    re.I,
)


@dataclass
class QAItem:
    question: str
    answer: str  # a span of ``sentence`` (and of ``snippet``)
    answer_type: str  # year | number | name | llm
    sentence: str
    snippet: str
    doc_id: str
    url: str
    writer: str = "rules:cloze"  # rules:cloze (offline fallback) | llm:...

    def to_dict(self) -> dict:
        return asdict(self)


def load_documents(source: str | Path | Iterable[dict], limit: int | None = None) -> list[dict]:
    """Corpus rows (id, url, text) from a stage output dir (``documents/*.parquet``) or rows."""
    if isinstance(source, (str, Path)):
        files = parquet_files(documents_dir(source))
        if not files:
            raise FileNotFoundError(f"no documents/*.parquet under {source}")
        rows = iter_parquet_rows(files, columns=["id", "url", "text"])
    else:
        rows = iter(source)
    out = []
    for row in rows:
        if row.get("text"):
            out.append({"id": str(row["id"]), "url": row.get("url") or "", "text": row["text"]})
        if limit and len(out) >= limit:
            break
    return out


def split_sentences(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        out.extend(_BULLET_RE.sub("", s.strip()) for s in _SENT_RE.split(line) if s.strip())
    return out


def normalize_span(text: str) -> str:
    t = text.casefold().replace(",", "")
    t = re.sub(r"[^\w\s.]", " ", t)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)
    return " ".join(t.split())


def span_match(answer: str, reference: str) -> bool:
    """The reference span, normalized, occurs as whole tokens in the normalized answer."""
    ref = normalize_span(reference)
    return bool(ref) and f" {ref} " in f" {normalize_span(answer)} "


def _is_year(sentence: str, start: int) -> bool:
    """A four-digit number is a year only after a year cue word (or a day-month date)."""
    before = re.findall(r"[A-Za-z]+|\d+", sentence[:start])
    return bool(before) and (
        before[-1].lower() in YEAR_CUES
        or (before[-1].isdigit() and len(before) > 1 and before[-2].lower() in _MONTHS)
    )


def _spans(sentence: str) -> list[tuple[str, str]]:
    out = [
        (m.group(0), "year") for m in _YEAR_RE.finditer(sentence) if _is_year(sentence, m.start())
    ]
    years = {s for s, _ in out}
    out += [(m.group(0), "number") for m in _NUM_RE.finditer(sentence) if m.group(0) not in years]
    for m in _NAME_RE.finditer(sentence):
        name, before = m.group(1), sentence[: m.start(1)].rstrip()
        # a capital after a lowercase word or a comma marks a name, not a sentence start
        if (
            before
            and (before[-1].islower() or before[-1] in ",(")
            and name.split()[0] not in _STOP_NAMES
            and len(name) > 3
        ):
            out.append((name, "name"))
    return out


def _good_sentence(s: str) -> bool:
    words = s.split()
    alpha = sum(ch.isalpha() for ch in s)
    return 8 <= len(words) <= 45 and alpha >= 0.6 * len(s) and s[-1:] in ".!?\"'" and "|" not in s


def _host(url: str) -> str:
    host = urlparse(url).netloc.lower()
    return host.removeprefix("www.") or "a web page"


def cloze_question(sentence: str, span: str, answer_type: str, url: str) -> str:
    cloze = sentence.replace(span, "____", 1)
    return (
        f'A page on {_host(url)} contains this sentence: "{cloze}" '
        f"Which {TYPE_WORD[answer_type]} fills the blank?"
    )


def snippet_around(sentences: list[str], i: int, max_chars: int = 600) -> str:
    parts = [sentences[i]]
    lo, hi = i - 1, i + 1
    while True:
        grew = False
        for j in (lo, hi):
            if 0 <= j < len(sentences) and len(" ".join(parts)) + len(sentences[j]) < max_chars:
                parts = [sentences[j], *parts] if j == lo else [*parts, sentences[j]]
                grew = True
        lo, hi = lo - 1, hi + 1
        if not grew or lo < 0 and hi >= len(sentences):
            return " ".join(parts)


def rule_questions(
    docs: list[dict],
    seed: int,
    per_doc: int = 3,
    types: tuple[str, ...] = ("year", "number", "name"),
) -> list[QAItem]:
    """Up to ``per_doc`` span questions per document, deterministic for ``seed``."""
    out: list[QAItem] = []
    seen: set[str] = set()
    for doc in docs:
        rng = random.Random(f"qa:{seed}:{doc['id']}")
        sents = split_sentences(doc["text"])
        cands = []
        for i, s in enumerate(sents):
            if not _good_sentence(s):
                continue
            for span, kind in _spans(s):
                if kind in types and s.count(span) == 1:
                    cands.append((i, span, kind))
        rng.shuffle(cands)
        # prefer years and numbers (crisp answers), then names
        cands.sort(key=lambda c: {"year": 0, "number": 1, "name": 2}[c[2]])
        used_sentences: set[int] = set()
        for i, span, kind in cands:
            if len(used_sentences) >= per_doc:
                break
            if i in used_sentences:
                continue
            q = cloze_question(sents[i], span, kind, doc["url"])
            if q in seen:
                continue
            seen.add(q)
            used_sentences.add(i)
            out.append(
                QAItem(q, span, kind, sents[i], snippet_around(sents, i), doc["id"], doc["url"])
            )
    return out


_LLM_QA_RE = re.compile(r"Question:\s*(.+?)\s*\n\s*Answer:\s*(.+?)\s*$", re.S | re.I)

WRITER_PROMPT = (
    "Read the text below. Write one natural factual question that a curious person could ask a "
    "knowledgeable assistant WITHOUT seeing this text: self-contained (name the subject "
    "explicitly; never refer to 'the text', 'the passage' or 'the article'), and answered by a "
    "short span copied exactly from the text (a name, a number, a date, a place). Reply in two "
    "lines:\nQuestion: ...\nAnswer: ...\n\nText: {snippet}"
)
ANSWERABLE_PROMPT = (
    "Text: {snippet}\n\nQuestion: {q}\nProposed answer: {a}\n\nIs this a clear, standalone "
    "factual question that the text answers, and is the proposed answer the correct answer "
    "according to the text? Reply with yes or no."
)


def llm_questions(
    llm, docs: list[dict], seed: int, per_doc: int = 1, judge=None
) -> tuple[list[QAItem], Counter]:
    """Natural questions written by ``llm`` from snippets, checked; returns (kept, rejections by reason).
    ``judge`` (default: ``llm``) confirms each question is answerable from its snippet."""
    from pipelines.llm import request_seeds
    from pipelines.synth.common import stable_id

    items, prompts = [], []
    for doc in docs:
        sents = split_sentences(doc["text"])
        good = [i for i, s in enumerate(sents) if _good_sentence(s)]
        rng = random.Random(f"llmqa:{seed}:{doc['id']}")
        for i in rng.sample(good, min(per_doc, len(good))):
            snippet = snippet_around(sents, i)
            items.append((doc, sents[i], snippet))
            prompts.append([{"role": "user", "content": WRITER_PROMPT.format(snippet=snippet)}])
    answers = (
        llm.chat(
            prompts,
            temperature=0.0,
            max_tokens=128,
            seed=request_seeds(seed, len(prompts), "llmqa"),
        )
        if prompts
        else []
    )
    rejected: Counter = Counter()
    cands = []
    for (doc, sentence, snippet), text in zip(items, answers, strict=True):
        m = _LLM_QA_RE.search(text.strip())
        if not m:
            rejected["unparsed"] += 1
            continue
        q, a = m.group(1).strip(), m.group(2).strip().rstrip(".").strip()
        if not span_match(snippet, a):
            rejected["answer_not_in_snippet"] += 1
        elif span_match(q, a):
            rejected["answer_in_question"] += 1
        elif _REFERS_TO_TEXT.search(q):
            rejected["refers_to_text"] += 1
        elif not q.endswith("?"):
            rejected["not_a_question"] += 1
        else:
            cands.append(
                QAItem(
                    q,
                    a,
                    "llm",
                    sentence,
                    snippet,
                    doc["id"],
                    doc["url"],
                    writer=f"llm:{stable_id(q)[:6]}",
                )
            )
    judge = judge or llm
    verdicts = (
        judge.chat(
            [
                [
                    {
                        "role": "user",
                        "content": ANSWERABLE_PROMPT.format(
                            snippet=it.snippet, q=it.question, a=it.answer
                        ),
                    }
                ]
                for it in cands
            ],
            temperature=0.0,
            max_tokens=4,
            seed=seed,
        )
        if cands
        else []
    )
    out = []
    for it, v in zip(cands, verdicts, strict=True):
        if v.strip().lower().startswith("yes"):
            out.append(it)
        else:
            rejected["judged_unanswerable"] += 1
    return out, rejected
