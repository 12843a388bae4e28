"""PII: phone numbers, IBANs and credit cards with checksum validation, counted by kind."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipelines.fineweb import process_shard
from pipelines.pii import PIIStep, iban_ok, is_card_number, luhn_ok
from schemas.config import FinewebConfig, PIIConfig
from tests.quality_corpus import real_pages, write_documents

PLANTED = {
    "credit_card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
    "iban": ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
    "phone": ["+44 20 7946 0958", "(415) 555-2671", "415.555.2671", "+49 (0) 89 20 80 27 250"],
}
KEPT = [
    "4111 1111 1111 1112",  # Luhn fails
    "1234 5678 9012 3456",  # no issuer prefix (and Luhn fails)
    "GB82 WEST 1234 5698 7654 33",  # mod 97 fails
    "2024-05-18",
    "ISBN 978-3-16-148410-0",
    "call 12345",
    "in 1999-2004",
    "v10.2.3.4",
    "2192686567013773038",
]  # a 19-digit id from a real page


def test_checksums():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765431")
    assert not iban_ok("XX82WEST12345698765432")  # unknown country
    assert is_card_number("3782 822463 10005") and not is_card_number("0000 0000 0000 0000")


def test_planted_values_replaced_and_counted_ordinary_numbers_kept():
    step = PIIStep()
    step.setup()
    text = "\n".join(f"Contact {v} today." for vs in PLANTED.values() for v in vs)
    text += "\n" + "\n".join(f"Reference {v} stays." for v in KEPT)
    doc = {"text": text + "\nMail me at jane.doe@example.org from 8.8.8.8."}
    step.process(doc)
    for vs in PLANTED.values():
        for v in vs:
            assert v not in doc["text"]
    for v in KEPT:
        assert v in doc["text"], v
    assert step.counts == {"credit_card": 3, "iban": 2, "phone": 4, "email": 1, "ip": 1}
    assert doc["pii_replacements"] == 11
    assert doc["text"].count("<credit_card>") == 3 and doc["text"].count("<iban>") == 2


def test_kinds_can_be_turned_off():
    step = PIIStep(PIIConfig(phone_numbers=False, credit_cards=False))
    text, counts = step.scrub_counts(
        "+44 20 7946 0958 and 4111 1111 1111 1111 and DE89370400440532013000"
    )
    assert counts == {"iban": 1} and "+44 20 7946 0958" in text


def test_presidio_backend_is_optional_and_says_so():
    try:
        import presidio_analyzer  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="presidio-analyzer"):
            PIIStep(PIIConfig(backend="presidio")).setup()
    else:
        pytest.skip("presidio is installed: its error path cannot be shown")


def test_pii_stage_on_real_pages_counts_by_kind_in_stats(web_dir, tmp_path):
    pages = real_pages(str(web_dir))
    rows = [
        {
            "id": f"d{i}",
            "url": "u",
            "date": None,
            "source": "t",
            "text": p["main"] + "\n" + p["boilerplate"],
        }
        for i, p in enumerate(pages)
    ]
    rows[0]["text"] += "\nPay to DE89 3704 0044 0532 0130 00 or card 4111-1111-1111-1111."
    write_documents(tmp_path / "in", rows, shards=1)
    out = tmp_path / "out"
    process_shard(str(tmp_path / "in" / "part-000.parquet"), str(out), FinewebConfig(), ["pii"])
    payload = json.loads(next((out / "stats").glob("*.json")).read_text())
    counts = payload["step_counts"]["pii"]
    assert counts["iban"] == 1 and counts["credit_card"] == 1
    assert counts["phone"] >= 8 and counts["email"] >= 10  # real contact pages have them
    docs = pq.read_table(out / "documents").to_pylist()
    assert sum(d["pii_replacements"] for d in docs) == sum(counts.values())
