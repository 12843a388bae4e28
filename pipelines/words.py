"""Fast English word splitting that reproduces spaCy's tokenizer where the quality filters care.

datatrove's Gopher / FineWeb filters count words with ``spacy.blank("en")`` and C4 counts sentences
with spaCy's rule-based ``sentencizer``. Building a spaCy ``Doc`` costs ~10 ms per web page, and
datatrove does it up to 2 + N_lines times per document. The rules themselves are simple, so this
module re-implements spaCy's tokenizer *algorithm* (split on whitespace, then per chunk: special
cases, repeated prefix/suffix stripping, URL match, infix splitting; see
``spacy/tokenizer.pyx::_split_affixes/_attach_tokens``) with the English rule set from
``spacy/lang/punctuation.py`` and ``spacy/lang/en/tokenizer_exceptions.py`` (MIT), written here with
``regex`` Unicode classes instead of spaCy's explicit code-point ranges. Hand-written because it is
measurably better: no spaCy dependency, the result of each distinct chunk is cached (web text is
Zipfian, so almost every chunk is a dict hit), and ``tests/test_quality.py`` checks that the
filters' decisions match datatrove's on real pages.

Known, deliberate gaps (rare, and they move counts by one token at most): spaCy's special-case
re-matching across token boundaries (``_retokenize_special_spans``), its explicit per-script letter
ranges, and the emoticon list beyond the common ones.
"""

from __future__ import annotations

import regex

# --- character classes (spacy/lang/char_classes.py) ------------------------------------------

_ALPHA = r"\p{L}"
# spaCy counts uncased scripts (CJK, Arabic, Hebrew, Indic, ...) as both lower and upper case.
_ALPHA_LOWER = r"\p{Ll}\p{Lo}"
_ALPHA_UPPER = r"\p{Lu}\p{Lo}"
_HYPHENS = "-|–|—|--|---|——|~"
_CONCAT_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧"
_LIST_PUNCT = [
    "…",
    "……",
    ",",
    ":",
    ";",
    r"\!",
    r"\?",
    "¿",
    "؟",
    "¡",
    r"\(",
    r"\)",
    r"\[",
    r"\]",
    r"\{",
    r"\}",
    "<",
    ">",
    "_",
    "#",
    r"\*",
    "&",
    "。",
    "？",
    "！",
    "，",
    "、",
    "；",
    "：",
    "～",
    "·",
    "।",
    "،",
    "۔",
    "؛",
    "٪",
]
_PUNCT = "|".join(_LIST_PUNCT)
_LIST_ELLIPSES = [r"\.\.+", "…"]
_LIST_QUOTES = [
    r"\'",
    '"',
    "”",
    "“",
    "`",
    "‘",
    "´",
    "’",
    "‚",
    ",",
    "„",
    "»",
    "«",
    "「",
    "」",
    "『",
    "』",
    "（",
    "）",
    "〔",
    "〕",
    "【",
    "】",
    "《",
    "》",
    "〈",
    "〉",
    "〈",
    "〉",
    "⟦",
    "⟧",
]
_LIST_CURRENCY = [
    r"\$",
    "£",
    "€",
    "¥",
    "฿",
    r"US\$",
    r"C\$",
    r"A\$",
    "₽",
    "﷼",
    "₴",
    "₠",
    "₡",
    "₢",
    "₣",
    "₤",
    "₥",
    "₦",
    "₧",
    "₨",
    "₩",
    "₪",
    "₫",
    "₭",
    "₮",
    "₯",
    "₰",
    "₱",
    "₲",
    "₳",
    "₵",
    "₶",
    "₷",
    "₸",
    "₹",
    "₺",
    "₻",
    "₼",
    "₾",
    "₿",
]
_CURRENCY = "|".join(_LIST_CURRENCY)
_LIST_ICONS = [r"[\p{So}]"]
_UNITS = (
    "km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|"
    "oz|m/s|km/h|kmh|mph|hPa|Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%"
)

# --- prefix / suffix / infix rules (spacy/lang/punctuation.py, spacy/lang/en/punctuation.py) ---

_PREFIXES = (
    ["§", "%", "=", "—", "–", r"\+(?![0-9])"]
    + _LIST_PUNCT
    + _LIST_ELLIPSES
    + _LIST_QUOTES
    + _LIST_CURRENCY
    + _LIST_ICONS
)
_SUFFIXES = (
    _LIST_PUNCT
    + _LIST_ELLIPSES
    + _LIST_QUOTES
    + _LIST_ICONS
    + ["'s", "'S", "’s", "’S", "—", "–"]
    + [
        r"(?<=[0-9])\+",
        r"(?<=°[FfCcKk])\.",
        rf"(?<=[0-9])(?:{_CURRENCY})",
        rf"(?<=[0-9])(?:{_UNITS})",
        # spaCy pastes PUNCT and "(?:quotes)" *inside* a character class; so do we
        rf"(?<=[0-9{_ALPHA_LOWER}%²\-\+{_PUNCT}(?:{_CONCAT_QUOTES})])\.",
        rf"(?<=[{_ALPHA_UPPER}][{_ALPHA_UPPER}])\.",
    ]
)
_INFIXES = (
    _LIST_ELLIPSES
    + _LIST_ICONS
    + [
        r"(?<=[0-9])[+\-\*^](?=[0-9-])",
        rf"(?<=[{_ALPHA_LOWER}{_CONCAT_QUOTES}])\.(?=[{_ALPHA_UPPER}{_CONCAT_QUOTES}])",
        rf"(?<=[{_ALPHA}]),(?=[{_ALPHA}])",
        rf"(?<=[{_ALPHA}0-9])(?:{_HYPHENS})(?=[{_ALPHA}])",
        rf"(?<=[{_ALPHA}0-9])[:<>=/](?=[{_ALPHA}])",
    ]
)

_PREFIX_RE = regex.compile("|".join("^" + p for p in _PREFIXES))
_SUFFIX_RE = regex.compile("|".join(s + "$" for s in _SUFFIXES))
_INFIX_RE = regex.compile("|".join(_INFIXES))
# spacy/lang/tokenizer_exceptions.py URL_PATTERN (IP-address branch simplified)
_URL_RE = regex.compile(
    r"^(?:(?:[\w\+\-\.]{2,})://)?(?:\S+(?::\S*)?@)?"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?"
    r"[A-Za-z0-9\u00a1-\uffff]\.)+(?:\p{Ll}{2,63}))(?::\d{2,5})?(?:[/?#]\S*)?$"
)


# spaCy's emoticon special cases (spacy/lang/tokenizer_exceptions.py).
_EMOTICONS = (
    r"""(*_*) (-8 (-: (-; (-_-) (._.) (: (; (= (>_<) (^_^) (o: (¬_¬) (ಠ_ಠ) (╯°□°）╯︵┻━┻ """
    r""")-: ): -_- -__- ._. 0.0 0.o 0_0 0_o 8) 8-) 8-D 8D :'( :') :'-( :'-) :( :(( :((( """
    r""":() :) :)) :))) :* :-( :-(( :-((( :-) :-)) :-))) :-* :-/ :-0 :-3 :-> :-D :-O :-P """
    r""":-X :-] :-o :-p :-x :-| :-} :/ :0 :1 :3 :> :D :O :P :X :] :o :o) :p :x :| :} ;) """
    r""";-) ;-D ;D ;_; <.< </3 <3 <33 <333 =( =) =/ =3 =D =[ =] =| >.< >.> >:( >:o """
    r"""><(((*> @_@ O.O O.o O_O O_o V.V V_V XD XDD [-: [: [= ]= ^_^ ^__^ ^___^ o.0 o.O """
    r"""o.o o_0 o_O o_o v.v v_v xD xDD ¯\(ツ)/¯ ಠ_ಠ ಠ︵ಠ"""
)


def _special_cases() -> dict[str, tuple[str, ...]]:
    """English tokenizer exceptions: contractions, abbreviations, times, a few emoticons."""
    exc: dict[str, tuple[str, ...]] = {}

    def add(orth: str, *parts: str) -> None:
        exc[orth] = parts

    def both(word: str, *suffixes: str) -> None:  # lower and Title case
        for w in (word, word.title()):
            add(w + "".join(suffixes), w, *suffixes)

    for w in ("i", "I"):
        (
            add(w + "'m", w, "'m"),
            add(w + "m", w, "m"),
            add(w + "'ma", w, "'m", "a"),
            add(w + "ma", w, "m", "a"),
        )
    for pron in ("i", "you", "he", "she", "it", "we", "they"):
        for s in (
            ("'ll",),
            ("ll",),
            ("'ll", "'ve"),
            ("ll", "ve"),
            ("'d",),
            ("d",),
            ("'d", "'ve"),
            ("d", "ve"),
        ):
            both(pron, *s)
    for pron in ("i", "you", "we", "they"):
        both(pron, "'ve"), both(pron, "ve")
    for pron in ("you", "we", "they"):
        both(pron, "'re"), both(pron, "re")
    for pron in ("he", "she", "it"):
        both(pron, "'s"), both(pron, "s")
    for word, num in (
        ("who", 0),
        ("what", 0),
        ("when", 0),
        ("where", 0),
        ("why", 0),
        ("how", 0),
        ("there", 0),
        ("that", 1),
        ("this", 1),
        ("these", 2),
        ("those", 2),
    ):
        if num != 2:
            both(word, "'s")
        for s in (
            ("'ll",),
            ("ll",),
            ("'ll", "'ve"),
            ("ll", "ve"),
            ("'d",),
            ("d",),
            ("'d", "'ve"),
            ("d", "ve"),
        ):
            both(word, *s)
        if num != 1:
            both(word, "'re"), both(word, "re"), both(word, "'ve"), both(word, "ve")
    for verb in (
        "ca",
        "could",
        "do",
        "does",
        "did",
        "had",
        "may",
        "might",
        "must",
        "need",
        "ought",
        "sha",
        "should",
        "wo",
        "would",
    ):
        both(verb, "n't"), both(verb, "nt"), both(verb, "n't", "'ve"), both(verb, "nt", "ve")
    for verb in ("could", "might", "must", "should", "would"):
        both(verb, "'ve"), both(verb, "ve")
    for verb in ("ai", "are", "is", "was", "were", "have", "has", "dare"):
        both(verb, "n't"), both(verb, "nt")
    for w in ("doin", "goin", "nothin", "nuthin", "ol", "somethin"):
        for v in (w, w.title()):
            add(v, v), add(v + "'", v + "'")
    for w in ("cause", "em", "ll", "nuff"):
        add(w, w), add("'" + w, "'" + w)
    for orth, parts in {
        "y'all": ("y'", "all"),
        "yall": ("y", "all"),
        "how'd'y": ("how", "'d", "'y"),
        "How'd'y": ("How", "'d", "'y"),
        "not've": ("not", "'ve"),
        "notve": ("not", "ve"),
        "Not've": ("Not", "'ve"),
        "Notve": ("Not", "ve"),
        "cannot": ("can", "not"),
        "Cannot": ("Can", "not"),
        "gonna": ("gon", "na"),
        "Gonna": ("Gon", "na"),
        "gotta": ("got", "ta"),
        "Gotta": ("Got", "ta"),
        "let's": ("let", "'s"),
        "Let's": ("Let", "'s"),
        "c'mon": ("c'm", "on"),
        "C'mon": ("C'm", "on"),
    }.items():
        add(orth, *parts)
    for h in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            add(f"{h}{period}", str(h), period)
    # Exclusions: real words that look like contractions (spaCy's _exclude list).
    for w in (
        "Ill",
        "ill",
        "Its",
        "its",
        "Hell",
        "hell",
        "Shell",
        "shell",
        "Shed",
        "shed",
        "were",
        "Were",
        "Well",
        "well",
        "Whore",
        "whore",
    ):
        exc.pop(w, None)
    # Curly-apostrophe variants of every contraction.
    for orth, parts in list(exc.items()):
        if "'" in orth:
            exc.setdefault(orth.replace("'", "’"), tuple(p.replace("'", "’") for p in parts))
    single = (
        (
            "'d a.m. Adm. Bros. co. Co. Corp. D.C. Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. "
            "Ltd. Md. Messrs. Mo. Mont. Mr. Mrs. Ms. p.m. Ph.D. Prof. Rep. Rev. Sen. St. vs. v.s. "
            "Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. Ak. Ala. Ariz. Ark. Calif. "
            "Colo. Conn. Del. Fla. Ga. Ia. Id. Ill. Ind. Kan. Kans. Ky. La. Mass. Mich. Minn. Miss. "
            "N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Okla. Ore. Pa. S.C. Tenn. Va. Wash. Wis. "
            "°C. °F. °K. °c. °f. °k. ä. ö. ü. and/or w/o C++ — ' '' <space> "
        )
        + r"""\") """
        + _EMOTICONS
    )
    for orth in single.split():
        add(orth, orth)
    for c in "abcdefghijklmnopqrstuvwxyz":
        add(c + ".", c + ".")
    return exc


SPECIALS: dict[str, tuple[str, ...]] = _special_cases()


def _split_chunk(chunk: str, specials: dict[str, tuple[str, ...]] = SPECIALS) -> tuple[str, ...]:
    """spaCy's ``_split_affixes`` + ``_attach_tokens`` for one whitespace-free chunk."""
    if chunk in specials:
        return specials[chunk]
    prefixes: list[str] = []
    suffixes: list[str] = []
    s = chunk
    last = -1
    while s and len(s) != last:
        if s in specials:
            break
        last = len(s)
        m = _PREFIX_RE.search(s)
        pre_len = m.end() if m else 0
        if pre_len:
            prefix, minus_pre = s[:pre_len], s[pre_len:]
            if minus_pre and minus_pre in specials:
                s = minus_pre
                prefixes.append(prefix)
                break
        m = _SUFFIX_RE.search(s[pre_len:])
        suf_len = (m.end() - m.start()) if m else 0
        if suf_len:
            suffix, minus_suf = s[-suf_len:], s[:-suf_len]
            if minus_suf and minus_suf in specials:
                s = minus_suf
                suffixes.append(suffix)
                break
        if pre_len and suf_len and pre_len + suf_len <= len(s):
            prefixes.append(s[:pre_len])
            suffixes.append(s[-suf_len:])
            s = s[pre_len:-suf_len]
        elif pre_len:
            prefixes.append(s[:pre_len])
            s = s[pre_len:]
        elif suf_len:
            suffixes.append(s[-suf_len:])
            s = s[:-suf_len]
        if s and s in specials:
            break
    tokens = prefixes
    if s:
        if s in specials:
            tokens.extend(specials[s])
        elif _URL_RE.match(s):
            tokens.append(s)
        else:
            start = 0
            for m in _INFIX_RE.finditer(s):
                a, b = m.start(), m.end()
                if a == 0:  # spaCy skips an infix at the very start of the string
                    continue
                if a != start:
                    tokens.append(s[start:a])
                if a != b:
                    tokens.append(s[a:b])
                start = b
            if start < len(s):
                tokens.append(s[start:])
    tokens.extend(reversed(suffixes))
    return tuple(tokens)


# Special cases that plain affix splitting would cut into pieces (":)", "e.", "):"): spaCy merges
# such token runs back afterwards (``Tokenizer._retokenize_special_spans``), and so do we.
_AFFIX_SPECIALS: dict[str, tuple[str, ...]] = {
    k: v for k, v in SPECIALS.items() if len(_split_chunk(k, {})) > 1
}
_AFFIX_SPECIAL_MAX = max(len(_split_chunk(k, {})) for k in _AFFIX_SPECIALS)


def _merge_special_spans(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """Greedy left-to-right, longest first, like spaCy's filtering of overlapping special spans."""
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        for j in range(min(n, i + _AFFIX_SPECIAL_MAX), i + 1, -1):
            key = "".join(tokens[i:j])
            if key in _AFFIX_SPECIALS:
                out.extend(_AFFIX_SPECIALS[key])
                i = j
                break
        else:
            out.append(tokens[i])
            i += 1
    return tuple(out)


_CACHE: dict[str, tuple[str, ...]] = {}
_CACHE_MAX = 200_000


def split_chunk(chunk: str) -> tuple[str, ...]:
    """Tokens of one whitespace-free chunk, memoised (most chunks of a corpus repeat)."""
    got = _CACHE.get(chunk)
    if got is None:
        if chunk.isalpha() and chunk not in SPECIALS:
            got = (chunk,)
        else:
            got = _split_chunk(chunk)
            if len(got) > 1:
                got = _merge_special_spans(got)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[chunk] = got
    return got


def split_into_words(text: str) -> list[str]:
    """The words datatrove's ``split_into_words(text, "eng")`` returns (spaCy tokens, no spaces)."""
    out: list[str] = []
    cache = _CACHE
    for chunk in text.split():
        got = cache.get(chunk)
        if got is None:
            got = split_chunk(chunk)
        if len(got) == 1:
            out.append(got[0])
        else:
            out.extend(got)
    return out


# spaCy's Sentencizer.default_punct_chars: a token equal to one of these ends a sentence.
SENTENCE_PUNCT = frozenset(
    "!.?\u0589\u061f\u06d4\u0700\u0701\u0702\u07f9\u0964\u0965\u104a\u104b\u1362\u1367\u1368\u166e"
    "\u1735\u1736\u1803\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1c3b"
    "\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u3002\ua4ff\ua60e\ua60f\ua6f3"
    "\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52"
    "\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00011047\U00011048\U000110be"
    "\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd"
    "\U000111de\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c"
    "\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf"
    "\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641"
    "\U00011642\U0001173c\U0001173d\U0001173e\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41"
    "\U00011c42\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U0001bc9f\U0001da88"
)
_ALL_PUNCT = regex.compile(r"\p{P}+")
_WS_RUNS = regex.compile(r"(\s+)")


def count_sentences(text: str) -> int:
    """Number of sentences spaCy's ``sentencizer`` finds (what ``split_into_sentences`` returns).

    A sentence ends after a token in SENTENCE_PUNCT once a following token is neither punctuation
    nor a sentence-ending character (so closing quotes stay with their sentence). spaCy keeps every
    whitespace run except one plain space as a token of its own, and such a token starts a new
    sentence too ("etc.)\xa0;" is two sentences), so whitespace runs take part here.
    """
    count = 1
    seen_end = False
    for i, part in enumerate(_WS_RUNS.split(text)):
        if i % 2:  # a whitespace run: a token unless it is exactly one space
            if part != " " and seen_end:
                count += 1
                seen_end = False
            continue
        if not part:
            continue
        for tok in _CACHE.get(part) or split_chunk(part):
            if tok in SENTENCE_PUNCT:
                seen_end = True
            elif seen_end and not _ALL_PUNCT.fullmatch(tok):
                count += 1
                seen_end = False
    return count


# --- other languages (FineWeb-2 settings, pipelines/lang) -------------------------------------

#: Scripts written without spaces between words: each character counts as a word. datatrove
#: segments Chinese with jieba, Japanese with SudachiPy and Thai with PyThaiNLP; per-character
#: words are the language-independent fallback (no dictionary, no extra package). FineWeb-2's
#: Chinese and Japanese stop words are single characters and its word-length bounds for them
#: start at 1, so those rules behave the same; n-gram rules see character n-grams.
_NOSPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_NOSPACE_RE = regex.compile(f"[{_NOSPACE}]")
_NOSPACE_SPLIT_RE = regex.compile(f"[{_NOSPACE}]|[^{_NOSPACE}]+")
#: spaCy's French/Italian/Catalan elision infix: "l'homme" -> "l'", "homme".
_ELISION_RE = regex.compile(r"(?<=\p{L}['’])(?=\p{L})")

_TOKEN_CACHE: dict[tuple[str, str], tuple[str, ...]] = {}


def _split_token(token: str, splitter: str) -> tuple[str, ...]:
    parts = [token]
    if splitter == "elision" and ("'" in token or "’" in token):
        parts = [p for p in _ELISION_RE.split(token) if p]
    if _NOSPACE_RE.search(token):
        parts = [c for p in parts for c in _NOSPACE_SPLIT_RE.findall(p)]
    return tuple(parts)


def split_words(text: str, splitter: str = "rules") -> list[str]:
    """Words of ``text`` for a language's ``word_splitter`` (``schemas.config.LanguageSettings``).

    ``rules`` is ``split_into_words`` unchanged (English: datatrove's words). ``elision`` also
    splits French-style elisions, and every splitter but ``rules`` makes each character of a
    script without spaces (CJK, Thai, ...) a word of its own.
    """
    words = split_into_words(text)
    if splitter == "rules":
        return words
    out: list[str] = []
    cache = _TOKEN_CACHE
    for w in words:
        if w.isascii() and "'" not in w:
            out.append(w)
            continue
        got = cache.get((w, splitter))
        if got is None:
            got = _split_token(w, splitter)
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[(w, splitter)] = got
        out.extend(got)
    return out
