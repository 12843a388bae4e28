"""The answer checker shared by RL prompt synthesis, RL training and evaluation.

Convention: an assistant's final answer is the last line of the form ``Answer: <value>``
(``#### <value>``, GSM8K's marker, is accepted too). The work comes first, the answer last
("models need tokens to think"), so the checker only ever looks at the final marker.
"""

from __future__ import annotations

import re
from fractions import Fraction

_ANSWER_RE = re.compile(r"(?:^|\n)\s*(?:answer\s*:|####)\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_NUM_RE = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?$|^[-+]?\d+/\d+$")


def format_answer(value: object) -> str:
    """The canonical final line for ``value``."""
    return f"Answer: {value}"


def extract_answer(text: str) -> str | None:
    """The value after the last ``Answer:``/``####`` marker, or None when there is none."""
    matches = _ANSWER_RE.findall(text or "")
    if not matches:
        return None
    return matches[-1].strip().rstrip(".").strip()


def normalize_answer(value: str) -> str:
    """Numbers compare by value (``1,000`` == ``1000.0``, ``1/2`` == ``0.5``); text case-folded."""
    v = value.strip().strip("$").strip()
    if _NUM_RE.match(v) and any(ch.isdigit() for ch in v):
        try:
            frac = Fraction(v.replace(",", ""))
        except (ValueError, ZeroDivisionError):
            return v.casefold()
        return (
            str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"
        )
    return " ".join(v.casefold().split())


def is_correct(completion: str, answer: str) -> bool:
    """True when the completion's final answer equals the reference answer."""
    got = extract_answer(completion)
    return got is not None and normalize_answer(got) == normalize_answer(str(answer))
