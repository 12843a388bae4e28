"""The quality stage: each FineWeb filter rule drops the right document for the right reason, the
word splitter behaves like spaCy's English tokenizer, and on real pages the decisions equal
datatrove's filters (that last part needs spaCy, which only the benchmark environment has)."""

from __future__ import annotations

import pytest

from pipelines.quality import (
    C4QualityStep,
    FineWebQualityStep,
    GopherQualityStep,
    GopherRepetitionStep,
    build_quality_steps,
    duplicated_ngram_chars,
    words_of,
)
from pipelines.words import count_sentences, split_into_words
from schemas.config import GopherQualityConfig, QualityConfig

GOOD_LINES = [
    "The river runs through the old town and past the fields beyond the hill.",
    "Every morning the baker opens his shop to sell bread to the people of the village.",
    "Children walk to school with their friends and talk about the games they played.",
    "In the afternoon the market fills with farmers who have brought vegetables to trade.",
    "The mayor said that the new bridge will be finished before the winter comes.",
    "Visitors often stop at the small museum to learn about the history of the region.",
    "At night the streets are quiet, and only the sound of the water can be heard.",
    "Many of the families have lived here for generations and know each other well.",
]
GOOD = "\n".join(GOOD_LINES)


def run(text: str, config: QualityConfig | None = None) -> tuple[str | None, str]:
    """Run the whole quality stage like the shard runner does: (first reason or None, final text)."""
    doc = {"id": "t", "text": text}
    for step in build_quality_steps(config or QualityConfig()):
        why = step.process(doc)
        if why is not None:
            return why, doc["text"]
    return None, doc["text"]


def test_good_text_is_kept_unchanged():
    assert run(GOOD) == (None, GOOD)


def test_steps_in_fineweb_order_and_disabling():
    steps = build_quality_steps(QualityConfig())
    assert [type(s) for s in steps] == [
        GopherRepetitionStep,
        GopherQualityStep,
        C4QualityStep,
        FineWebQualityStep,
    ]
    assert all(s.reason_prefix == "quality" for s in steps)
    assert [type(s) for s in build_quality_steps(QualityConfig(c4=None, fineweb=None))] == [
        GopherRepetitionStep,
        GopherQualityStep,
    ]


# --- Gopher repetition --------------------------------------------------------------------------


def test_repetition_rules():
    assert run("")[0] == "quality:gopher_empty"
    paras = "\n\n".join([GOOD_LINES[0], GOOD_LINES[1], GOOD_LINES[0], GOOD_LINES[0]])
    assert run(paras)[0] == "quality:gopher_dup_para_frac"
    lines = "\n".join(GOOD_LINES + [GOOD_LINES[0]] * 4)
    assert run(lines)[0] == "quality:gopher_dup_line_frac"
    # one long paragraph repeated once: few duplicates by count, many duplicated characters
    long_para = " ".join(GOOD_LINES)
    assert (
        run(
            "\n\n".join(
                [
                    long_para,
                    "A short closing remark here.",
                    "Another short one.",
                    "And the last one.",
                    long_para,
                ]
            )
        )[0]
        == "quality:gopher_dup_para_char_frac"
    )
    # a 2-gram that covers over 20% of the characters
    spam = " ".join(["buy now"] * 40) + " " + " ".join(GOOD_LINES)
    assert run(spam)[0] == "quality:gopher_top_2_gram"
    # a repeated 5-word run spread over distinct sentences
    rep = " ".join(
        f"{w} the quick brown fox jumps over lazy dogs."
        for w in "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    )
    assert run(rep)[0].startswith("quality:gopher_")
    assert run(rep)[0] in {
        "quality:gopher_top_3_gram",
        "quality:gopher_top_4_gram",
        "quality:gopher_top_2_gram",
        "quality:gopher_duplicated_5_n_grams",
    }


def test_duplicated_ngrams_counts_like_datatrove():
    words = "a b c d e a b c d e x a b c d e".split()
    # first occurrence added, the 2nd and 3rd "abcde" are repeats of 5 chars each
    assert duplicated_ngram_chars(words, 5) == 10
    # the bound short-cut never changes the decision: below the limit it may return the bound
    assert duplicated_ngram_chars(words, 5, limit=100) <= 100
    assert duplicated_ngram_chars(words, 5, limit=5) == 10
    assert duplicated_ngram_chars("x y".split(), 5) == 0
    # keys are "".join (no separator), exactly as datatrove: "ab"+"c" == "a"+"bc"
    assert duplicated_ngram_chars(["ab", "c", "a", "bc"], 2) == 3


# --- Gopher quality -----------------------------------------------------------------------------


def test_gopher_quality_rules():
    # (short texts also trip the repetition filter's top-2-gram rule, so test this filter alone)
    assert (
        run("Too short to be a document.", QualityConfig(gopher_repetition=None))[0]
        == "quality:gopher_short_doc"
    )
    long_words = " ".join(["extraordinarily incomprehensibilities"] * 40) + " the and of"
    assert (
        run(long_words, QualityConfig(gopher_repetition=None))[0]
        == "quality:gopher_above_avg_threshold"
    )
    short_words = " ".join(["a an of is it to by"] * 10)
    assert (
        run(short_words, QualityConfig(gopher_repetition=None))[0]
        == "quality:gopher_below_avg_threshold"
    )
    hashes = GOOD + "\n" + " ".join(f"#tag{i}" for i in range(30))
    assert run(hashes)[0] == "quality:gopher_too_many_hashes"
    ellipsis = "\n".join(line[:-1] + "... more" for line in GOOD_LINES) + "\n" + "wait... " * 20
    assert (
        run(ellipsis, QualityConfig(gopher_repetition=None))[0]
        == "quality:gopher_too_many_ellipsis"
    )
    bullets = "\n".join("- " + line for line in GOOD_LINES)
    assert run(bullets)[0] == "quality:gopher_too_many_bullets"
    end_ellipsis = "\n".join(line[:-1] + "…" for line in GOOD_LINES)
    assert run(end_ellipsis)[0] == "quality:gopher_too_many_end_ellipsis"
    numbers = GOOD + "\n" + " ".join(str(1000 + i) for i in range(400))
    assert run(numbers)[0] == "quality:gopher_below_alpha_threshold"
    no_stop = "\n".join(
        ["Cats chase mice quickly around gardens during summer evenings."] * 1
        + [
            f"Dogs number {w} bark loudly at strangers passing by houses."
            for w in "one two three four five six seven eight".split()
        ]
    )
    assert (
        run(no_stop, QualityConfig(gopher_repetition=None))[0] == "quality:gopher_enough_stop_words"
    )


def test_gopher_quality_thresholds_come_from_config():
    text = "The farmer and the teacher walked along the river with their dogs."
    assert run(text, QualityConfig(gopher_repetition=None))[0] == "quality:gopher_short_doc"
    step = GopherQualityStep(GopherQualityConfig(min_doc_words=5))
    assert step.process({"text": text}) is None


# --- C4 -----------------------------------------------------------------------------------------


def test_c4_drops_bad_lines_and_rewrites_the_text():
    noisy = "\n".join(
        [
            GOOD_LINES[0] + "[1]",
            "Menu",  # fewer than 3 words
            "Please enable JavaScript to view the comments below.",
            "We use cookies; see our privacy policy for details.",
            *GOOD_LINES[1:],
            "Home About",
        ]
    )
    why, text = run(noisy)
    assert why is None
    assert text == GOOD  # citation removed, short / javascript / policy lines dropped


def test_c4_document_rules():
    assert run(GOOD + "\nLorem ipsum dolor sit amet, consectetur.")[0] == "quality:c4_lorem_ipsum"
    assert run(GOOD + '\nThe config is {"a": 1} for this setup.')[0] == "quality:c4_curly_bracket"
    few = " ".join(GOOD_LINES[:4]).replace(".", ",") + " and then it ended."
    assert run(few, QualityConfig(gopher_repetition=None))[0] == "quality:c4_too_few_sentences"


# --- FineWeb ------------------------------------------------------------------------------------


def test_fineweb_rules():
    only = QualityConfig(gopher_repetition=None, gopher_quality=None, c4=None)
    no_punct = "\n".join(line[:-1] for line in GOOD_LINES)
    assert run(no_punct, only)[0] == "quality:fineweb_line_punct_ratio"
    short = "\n".join(["Short line one.", "Short line two.", "Short line three.", GOOD_LINES[0]])
    assert run(short, only)[0] == "quality:fineweb_short_line_ratio"
    dup = "\n".join(GOOD_LINES + [GOOD_LINES[0]])
    assert run(dup, only)[0] == "quality:fineweb_char_dup_ratio"
    # three words per line (two plus the full stop), each line long enough not to be "short"
    listy = "\n".join(f"Internationalization considerations{i:02d}." for i in range(30))
    assert run(listy, only)[0] == "quality:fineweb_list_ratio"
    assert run("\n\n", only)[0] == "quality:fineweb_empty"


def test_fineweb_sees_the_text_c4_rewrote():
    # the original text has 100 one-word lines (a list: too many newlines per word); C4 drops
    # them, so FineWeb, which must re-split the rewritten text, keeps the document
    text = (
        GOOD + "\n" + "\n".join(f"Internationalization_considerations_{i:03d}." for i in range(100))
    )
    assert FineWebQualityStep().process({"text": text}) == "quality:fineweb_list_ratio"
    # (Gopher quality off: those long one-word lines would push the mean word length over 10)
    assert run(text, QualityConfig(gopher_quality=None)) == (None, GOOD)


def test_word_cache_follows_the_text():
    a = "one two three."
    b = "".join(["one two ", "four."])  # a different object
    assert words_of(a) == ["one", "two", "three", "."]
    assert words_of(b) == ["one", "two", "four", "."]
    assert words_of(a) == ["one", "two", "three", "."]


# --- word splitting (spaCy's English rules) -----------------------------------------------------

SPLIT_CASES = {
    "Hello, world! It's here.": ["Hello", ",", "world", "!", "It", "'s", "here", "."],
    "I don't know what you're doing": ["I", "do", "n't", "know", "what", "you", "'re", "doing"],
    "e.g. the U.S. and Mr. Smith": ["e.g.", "the", "U.S.", "and", "Mr.", "Smith"],
    "a well-known and/or odd case": ["a", "well", "-", "known", "and/or", "odd", "case"],
    "see https://example.com/a?b=1 now": ["see", "https://example.com/a?b=1", "now"],
    "(it costs $5.50, about 10km)": [
        "(",
        "it",
        "costs",
        "$",
        "5.50",
        ",",
        "about",
        "10",
        "km",
        ")",
    ],
    "wait...what": ["wait", "...", "what"],
    "Berkeley): Language": ["Berkeley", "):", "Language"],
    "z.B. der Verein e.V. hier": ["z.", "B.", "der", "Verein", "e.", "V.", "hier"],
    "cannot gonna 3pm": ["can", "not", "gon", "na", "3", "pm"],
    "“Quoted” words’s": ["“", "Quoted", "”", "words", "’s"],
}


@pytest.mark.parametrize("text", list(SPLIT_CASES))
def test_split_into_words(text):
    assert split_into_words(text) == SPLIT_CASES[text]


def test_count_sentences_like_spacy_sentencizer():
    assert count_sentences("One sentence here") == 1
    assert count_sentences("Mr. Smith went home. He slept well!") == 2
    assert count_sentences('He said "Hi." Then he left.') == 2  # closing quote stays
    assert count_sentences("Done?! Yes.") == 2
    assert count_sentences("Version 3.5 is out, e.g. today.") == 1
    assert count_sentences("etc.)\xa0;") == 2  # a non-space whitespace token starts a sentence


# --- against datatrove (needs spaCy: the benchmark environment) ---------------------------------


def _real_pages(web_warcs) -> list[tuple[str, str]]:
    from pipelines.extract import extract_text
    from pipelines.read import read_warc
    from schemas.config import ExtractConfig

    pages = []
    for path in web_warcs:
        for doc, why in read_warc(str(path)):
            if why is None and doc["text"]:
                text = extract_text(doc["text"], ExtractConfig())
                if text:
                    pages.append((doc["url"], text))
    return pages


@pytest.fixture(scope="module")
def datatrove_filters():
    pytest.importorskip(
        "spacy",
        reason="spaCy not installed: datatrove's filters cannot run "
        "(pip install spacy; CI installs only .[dev])",
    )
    from benchmarks._datatrove_fineweb import english_filters

    return english_filters()


def _datatrove_reason(flt, text: str) -> tuple[str | None, str]:
    from datatrove.data import Document

    doc = Document(text=text, id="x")
    res = flt.filter(doc)
    if isinstance(res, tuple):
        return res[1], doc.text
    return (None if res else "dropped"), doc.text


def test_decisions_equal_datatrove_on_real_pages(web_warcs, datatrove_filters):
    """Every page of ../shared/data/web (English and not) through each filter on its own and
    through the chain: reasons and C4's rewritten text must match datatrove for >= 98%."""
    pages = _real_pages(web_warcs)
    assert len(pages) > 100
    ours = build_quality_steps(QualityConfig())
    prefixes = ["gopher_", "", "c4_", "fineweb_"]
    per_filter = [0, 0, 0, 0]
    chain_same = 0
    mismatches = []
    for url, text in pages:
        for i, (flt, step) in enumerate(zip(datatrove_filters, ours, strict=True)):
            want, want_text = _datatrove_reason(flt, text)
            doc = {"text": text}
            got = step.process(doc)
            want_full = None if want is None else f"quality:{prefixes[i]}{want}"
            if got == want_full and doc["text"] == want_text:
                per_filter[i] += 1
            else:
                mismatches.append((type(step).__name__, url, want_full, got))
        dt_text, dt_reason = text, None
        for i, flt in enumerate(datatrove_filters):
            dt_reason, dt_text = _datatrove_reason(flt, dt_text)
            if dt_reason is not None:
                dt_reason = f"quality:{prefixes[i]}{dt_reason}"
                break
        chain_same += run(text)[0] == dt_reason
    n = len(pages)
    assert all(k / n >= 0.98 for k in per_filter), (per_filter, n, mismatches[:20])
    assert chain_same / n >= 0.98, (chain_same, n, mismatches[:20])


def test_words_equal_spacy_on_tricky_strings(datatrove_filters):
    from datatrove.utils.text import split_into_sentences
    from datatrove.utils.text import split_into_words as dt_words

    for text in SPLIT_CASES:
        assert split_into_words(text) == dt_words(text, "eng"), text
    for line in [
        "Mr. Smith went home. He slept well!",
        'He said "Hi." Then he left.',
        "Done?! Yes.",
        "etc.)\xa0;",
        "See the U.S. map (2 GB/s). Then go.",
    ]:
        assert count_sentences(line) == len(split_into_sentences(line, "eng")), line
