"""The PII stage: replace emails, public IP addresses, phone numbers, IBANs and credit-card
numbers; every replacement is counted by kind.

The email and IPv4 regexes are datatrove's; an IPv4 match is replaced only when it is a public
(``ipaddress.is_global``) address, so version numbers like 1.2.3.4 in private ranges stay. We
also replace public IPv6 addresses (datatrove does not): candidates are validated by
``ipaddress`` so times like ``12:30:45`` never match.

Numbers are validated before they are replaced, so ordinary digits survive:
- credit cards: 13-19 digits (spaces/dashes allowed) with a known issuer prefix (Visa,
  Mastercard, Amex, Discover, JCB, Diners, UnionPay) and a valid Luhn check digit (a random
  digit string passes Luhn 1 time in 10; the prefix rule cuts that further);
- IBANs: country code, 2 check digits, the country's registered length (ISO 13616 registry),
  and the mod-97 check (remainder 1);
- phone numbers: international ``+CC`` numbers with 8-15 digits (E.164's limit), or North
  American ``(NPA) NXX-XXXX`` numbers (area/exchange codes cannot start with 0/1); bare digit
  runs and dates (2024-05-18) never match.

``backend="presidio"`` additionally runs Presidio's analyzer (when installed) and replaces its
PERSON-free structured entities (phone, IBAN, credit card, email, IP) it finds that the rules
missed. Sets ``pii_replacements`` (total); ``counts`` holds replacements by kind for the
stats. Never removes a document.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

from pipelines.base import Step
from schemas.config import PIIConfig

EMAIL_RE = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[A-Za-z0-9](?:["
    r"A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|["
    r"01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[A-Za-z0-9-]*[A-Za-z0-9]:)])"
)
IPV4_RE = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
)
IPV6_RE = re.compile(
    r"(?<![0-9A-Fa-f:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])"
)
CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
PHONE_RE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,2}(?:[ .-]?\d{2,4}){1,4}(?!\w)"  # international
    r"|(?<![\w(])(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?!\w)"
)  # North American

#: IBAN lengths by country (ISO 13616 registry; the commonest countries).
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}
_CARD_PREFIXES = re.compile(
    r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01])|3[47]|6(?:011|5|4[4-9]|2)|35(?:2[89]|[3-8])"
    r"|3(?:0[0-5]|[68])"
)


def is_public_ip(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card_number(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIXES.match(digits)) and luhn_ok(digits)


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "").upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def is_phone(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if candidate.startswith("+"):
        return 8 <= digits <= 15
    return digits == 10


class PIIStep(Step):
    name = "pii"

    def __init__(self, config: PIIConfig | None = None) -> None:
        self.config = config or PIIConfig()
        self.counts: Counter = Counter()
        self._presidio = None

    def setup(self) -> None:
        self.counts = Counter()  # per shard: the runner calls setup() before every shard
        if self.config.backend == "presidio" and self._presidio is None:
            try:
                from presidio_analyzer import AnalyzerEngine
            except ImportError as e:
                raise RuntimeError(
                    "PII backend 'presidio' needs presidio-analyzer (and its spaCy "
                    "model) installed; use backend 'regex'"
                ) from e
            self._presidio = AnalyzerEngine()

    def scrub_counts(self, text: str) -> tuple[str, Counter]:
        """The scrubbed text and its replacements by kind."""
        c = self.config
        counts: Counter = Counter()

        def checked(kind: str, valid, replacement: str):
            def sub(m: re.Match) -> str:
                if valid(m.group(0)):
                    counts[kind] += 1
                    return replacement
                return m.group(0)

            return sub

        if c.emails and "@" in text:
            text, n = EMAIL_RE.subn(c.email_replacement, text)
            counts["email"] += n
        if c.ip_addresses:
            if "." in text:
                text = IPV4_RE.sub(checked("ip", is_public_ip, c.ip_replacement), text)
            if "::" in text or text.count(":") >= 7:
                text = IPV6_RE.sub(checked("ip", is_public_ip, c.ip_replacement), text)
        if c.credit_cards:
            text = CARD_RE.sub(
                checked("credit_card", is_card_number, c.credit_card_replacement), text
            )
        if c.ibans:
            text = IBAN_RE.sub(checked("iban", iban_ok, c.iban_replacement), text)
        if c.phone_numbers:
            text = PHONE_RE.sub(checked("phone", is_phone, c.phone_replacement), text)
        if self._presidio is not None:
            text = self._presidio_scrub(text, counts)
        return text, +counts

    _PRESIDIO_KINDS = {
        "PHONE_NUMBER": "phone",
        "IBAN_CODE": "iban",
        "CREDIT_CARD": "credit_card",
        "EMAIL_ADDRESS": "email",
        "IP_ADDRESS": "ip",
    }

    def _presidio_scrub(self, text: str, counts: Counter) -> str:
        c = self.config
        repl = {
            "phone": c.phone_replacement,
            "iban": c.iban_replacement,
            "credit_card": c.credit_card_replacement,
            "email": c.email_replacement,
            "ip": c.ip_replacement,
        }
        found = self._presidio.analyze(
            text=text, language=c.presidio_language, entities=list(self._PRESIDIO_KINDS)
        )
        for r in sorted(found, key=lambda r: r.start, reverse=True):
            kind = self._PRESIDIO_KINDS[r.entity_type]
            if text[r.start : r.end] in repl.values():
                continue
            text = text[: r.start] + repl[kind] + text[r.end :]
            counts[f"presidio:{kind}"] += 1
        return text

    def scrub(self, text: str) -> tuple[str, int]:
        """Return the scrubbed text and the number of replacements made."""
        text, counts = self.scrub_counts(text)
        return text, sum(counts.values())

    def process(self, doc: dict) -> str | None:
        text, counts = self.scrub_counts(doc.get("text") or "")
        doc["text"], doc["pii_replacements"] = text, sum(counts.values())
        self.counts.update(counts)
        return None
