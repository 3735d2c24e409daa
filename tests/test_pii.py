"""PII scanner and scrubber: card numbers (Luhn), emails, phones, SSN-like ids; no false alarms on our own text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_oracle import demo_dataset, read_jsonl

from fraudtune.data.pii import find_pii, luhn_ok, scrub


@pytest.mark.parametrize(
    ("text", "kind", "found"),
    [
        ("card 4111 1111 1111 1111 on file", "card", "4111 1111 1111 1111"),
        ("card 4111-1111-1111-1111", "card", "4111-1111-1111-1111"),
        ("pan=5500005555555559;", "card", "5500005555555559"),
        ("amex 378282246310005", "card", "378282246310005"),
        ("card 4111.1111.1111.1111.", "card", "4111.1111.1111.1111"),
        ("card 4111/1111/1111/1111", "card", "4111/1111/1111/1111"),
        ("card 4111  1111 1111 1111 on file", "card", "4111  1111 1111 1111"),
        ("write to john.doe+fraud@example.co.uk today", "email", "john.doe+fraud@example.co.uk"),
        ("call +1 415 555 0100 now", "phone", "+1 415 555 0100"),
        ("call (415) 555-0100", "phone", "(415) 555-0100"),
        ("call 415-555-0100", "phone", "415-555-0100"),
        ("uk +44 20 7946 0958", "phone", "+44 20 7946 0958"),
        ("ssn 123-45-6789.", "ssn", "123-45-6789"),
    ],
)
def test_finds_personal_data(text: str, kind: str, found: str) -> None:
    findings = find_pii(text)
    assert [(k, text[s:e]) for k, (s, e) in findings] == [(kind, found)]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # fails the Luhn check
        "Time: 2026-04-13 02:30 (hour 2)",
        "Amount: $1,234.56 = 12x customer avg $100.00",
        'Merchant: M-ELEC-0042 "TechNova", electronics, NG (foreign; home US)',
        "Customer: account 1234 days, 56 past txns; usual category: no",
        "Red Flags: [Manual key entry (TC-07, $500.00)]",
        "T-0A1B2C3D C-000123 2026-04-13T02:30:00",
    ],
)
def test_no_false_alarm(text: str) -> None:
    assert find_pii(text) == []


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("79927398710")


def test_scrub_masks_every_kind() -> None:
    text = "4111 1111 1111 1111, a@b.com, +1 415 555 0100, 123-45-6789."
    assert scrub(text) == "[CARD], [EMAIL], [PHONE], [SSN]."


def test_glued_findings_are_all_found_and_masked() -> None:
    text = "4111 1111 1111 1111(415) 555-0100"
    assert [k for k, _ in find_pii(text)] == ["card", "phone"]
    assert scrub(text) == "[CARD][PHONE]"


def test_generated_data_has_no_findings() -> None:
    for chat in read_jsonl(demo_dataset() / "fraud_dataset.jsonl"):
        assert all(find_pii(m["content"]) == [] for m in chat["messages"])


_PIECES = [
    "4111 1111 1111 1111",
    "a.b@example.org",
    "(415) 555-0100",
    "123-45-6789",
    "order 42",
    " ",
    "-",
    "x",
    "2026-04-13",
    "$1,234.56",
    "\n",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=10))
def test_scrubbed_text_is_clean(pieces: list[str]) -> None:
    text = "".join(pieces)
    cleaned = scrub(text)
    assert find_pii(cleaned) == []
    assert scrub(cleaned) == cleaned


def _luhn_complete(body: str) -> str:
    """body + the check digit that makes it Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


@settings(max_examples=200, deadline=None)
@given(
    body=st.text("0123456789", min_size=12, max_size=18),
    separator=st.sampled_from([" ", "  ", "   ", "\t", "-", ".", "/", ""]),
    group=st.integers(2, 6),
    before=st.sampled_from(["", "card ", "pan=", "(", "number: "]),
    after=st.sampled_from(["", " on file", ".", ";", ")", ", thanks"]),
)
def test_finds_a_card_number_whatever_separates_its_groups(body, separator, group, before, after) -> None:
    """A Luhn-valid number of 13-19 digits is found in groups of any size split by any separator a person or a
    system writes: one to three spaces, a tab, a dash, a dot, a slash, or none."""
    digits = _luhn_complete(body)
    written = separator.join(digits[i : i + group] for i in range(0, len(digits), group))
    text = before + written + after
    cards = [text[s:e] for kind, (s, e) in find_pii(text) if kind == "card"]
    assert cards == [written]
    assert digits not in "".join(ch for ch in scrub(text) if ch.isdigit())
