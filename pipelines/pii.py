"""The PII stage: replace email addresses and public IP addresses (datatrove's PIIFormatter).

The email and IPv4 regexes are datatrove's; an IPv4 match is replaced only when it is a public
(``ipaddress.is_global``) address, so version numbers like 1.2.3.4 in private ranges stay. We
also replace public IPv6 addresses (datatrove does not): candidates are validated by
``ipaddress`` so times like ``12:30:45`` never match. Sets ``pii_replacements``; never removes.
"""

from __future__ import annotations

import ipaddress
import re

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
IPV6_RE = re.compile(r"(?<![0-9A-Fa-f:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")


def is_public_ip(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


class PIIStep(Step):
    name = "pii"

    def __init__(self, config: PIIConfig | None = None) -> None:
        self.config = config or PIIConfig()

    def scrub(self, text: str) -> tuple[str, int]:
        """Return the scrubbed text and the number of replacements made."""
        c = self.config
        count = 0

        def ip_sub(m: re.Match) -> str:
            nonlocal count
            if is_public_ip(m.group(0)):
                count += 1
                return c.ip_replacement
            return m.group(0)

        if c.emails and "@" in text:
            text, n = EMAIL_RE.subn(c.email_replacement, text)
            count += n
        if c.ip_addresses:
            if "." in text:
                text = IPV4_RE.sub(ip_sub, text)
            if "::" in text or text.count(":") >= 7:
                text = IPV6_RE.sub(ip_sub, text)
        return text, count

    def process(self, doc: dict) -> str | None:
        text = doc.get("text") or ""
        doc["text"], doc["pii_replacements"] = self.scrub(text)
        return None
