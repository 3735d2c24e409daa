"""SPEC 1 transaction records: one test per kind of bad record, with the exact `file:line: field: problem` text."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from spec_oracle import sample_txn

from fraudtune.data.schema import normalize, parse_lines, validate_transaction
from fraudtune.errors import FraudtuneError

GOOD = sample_txn()


def _without(path: str) -> dict:
    txn = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = txn
    for part in parents:
        node = node[part]
    del node[leaf]
    return txn


def _with(path: str, value) -> dict:
    txn = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = txn
    for part in parents:
        node = node[part]
    node[leaf] = value
    return txn


def _line(obj) -> bytes:
    return json.dumps(obj).encode()


CATEGORY_LIST = (
    "grocery, restaurant, gas, pharmacy, utilities, subscription, travel, hotel, clothing, entertainment, "
    "online_marketplace, electronics, jewelry, gift_cards, crypto_exchange, money_transfer, atm_cash"
)
BAD_RECORDS = [
    ("missing field", _line(_without("amount")), "amount: missing"),
    ("missing nested field", _line(_without("customer.home_country")), "customer.home_country: missing"),
    ("unknown field", _line(_with("foo", 1)), "foo: unknown field"),
    ("unknown nested field", _line(_with("merchant.mcc", "5411")), "merchant.mcc: unknown field"),
    ("wrong type", _line(_with("amount", "12")), "amount: expected a number, got a string"),
    ("wrong type bool", _line(_with("device_new", "yes")), "device_new: expected true/false, got a string"),
    (
        "wrong type int",
        _line(_with("customer.history_count", 4.5)),
        "customer.history_count: expected a whole number, got float",
    ),
    ("wrong type object", _line(_with("velocity", [1])), "velocity: expected an object, got a list"),
    ("amount zero", _line(_with("amount", 0)), "amount: must be > 0, got 0"),
    ("amount negative", _line(_with("amount", -5)), "amount: must be > 0, got -5"),
    (
        "NaN",
        _line(GOOD).replace(b'"amount": 54.2', b'"amount": NaN'),
        "record: invalid JSON (NaN is not a valid number)",
    ),
    (
        "Infinity",
        _line(GOOD).replace(b'"amount": 54.2', b'"amount": Infinity'),
        "record: invalid JSON (Infinity is not a valid number)",
    ),
    (
        "overflowing number",
        _line(GOOD).replace(b'"amount": 54.2', b'"amount": 1e999'),
        "amount: must be finite, got inf",
    ),
    (
        "unknown category",
        _line(_with("merchant.category", "toys")),
        f"merchant.category: unknown value 'toys'; expected one of {CATEGORY_LIST}",
    ),
    (
        "unknown usual category",
        _line(_with("customer.usual_categories", ["toys"])),
        "customer.usual_categories: unknown category 'toys'",
    ),
    (
        "unknown channel",
        _line(_with("channel", "phone")),
        "channel: unknown value 'phone'; expected one of in_person, online, recurring, atm",
    ),
    (
        "unknown txn_code",
        _line(_with("txn_code", "TC-99")),
        "txn_code: unknown value 'TC-99'; expected one of TC-01, TC-05, TC-12, TC-20, TC-21, TC-07, TC-33, TC-44",
    ),
    (
        "bad timestamp",
        _line(_with("timestamp", "2026-13-45T00:00:00")),
        "timestamp: not an ISO-8601 date-time: '2026-13-45T00:00:00'",
    ),
    (
        "bad country",
        _line(_with("merchant.country", "USA")),
        "merchant.country: expected an ISO-3166 alpha-2 code like US, got 'USA'",
    ),
    (
        "bad currency",
        _line(_with("currency", "dollars")),
        "currency: expected an ISO 4217 code like USD, got 'dollars'",
    ),
    ("non-object JSON", b"[1, 2]", "record: expected a JSON object, got a list"),
    ("invalid JSON", b'{"amount": ', "record: invalid JSON (Expecting value)"),
    ("non-UTF-8", b"\xff\xfe{}", "record: not UTF-8 (byte 0)"),
    (
        "over-long line",
        b'{"x": "' + b"a" * 1_000_001 + b'"}',
        "record: line is 1,000,010 bytes, over the 1,000,000 limit",
    ),
]


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS])
def test_bad_record_is_rejected_with_line_field_and_problem(tmp_path: Path, line: bytes, expected: str) -> None:
    """The bad record sits on line 2 between two good ones; both good ones are still read."""
    path = tmp_path / "txns.jsonl"
    second = _with("transaction_id", "T-0003")
    path.write_bytes(_line(GOOD) + b"\n" + line + b"\n" + _line(second) + b"\n")
    records, errors = parse_lines(path)
    assert f"{path}:2: {expected}" in [str(e) for e in errors]
    assert all(e.line == 2 for e in errors)
    assert [r["transaction_id"] for r in records] == ["T-0001", "T-0003"]


def test_duplicate_transaction_id(tmp_path: Path) -> None:
    path = tmp_path / "txns.jsonl"
    path.write_bytes(_line(GOOD) + b"\n\n" + _line(GOOD) + b"\n")
    records, errors = parse_lines(path)
    assert [str(e) for e in errors] == [f"{path}:3: transaction_id: duplicate id 'T-0001'"]
    assert len(records) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty; expected one JSON transaction per line"),
        (b"\n  \n", "file is empty; expected one JSON transaction per line"),
        (b"\x00\x01\x02binary", "binary file; expected UTF-8 JSON lines"),
    ],
    ids=["empty file", "blank lines only", "binary file"],
)
def test_unreadable_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "txns.jsonl"
    path.write_bytes(content)
    with pytest.raises(FraudtuneError) as exc:
        parse_lines(path)
    assert str(exc.value) == f"{path}: {message}"


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(FraudtuneError, match="file not found"):
        parse_lines(tmp_path / "nope.jsonl")
    with pytest.raises(FraudtuneError, match="is a folder"):
        parse_lines(tmp_path)


def test_optional_fields_get_documented_defaults() -> None:
    txn = _without("currency")
    del txn["customer"]["travel_notice_country"], txn["customer"]["password_reset_hours_ago"]
    assert validate_transaction(txn) == []
    filled = normalize(txn)
    assert filled["currency"] == "USD"
    assert filled["customer"]["travel_notice_country"] is None
    assert filled["customer"]["password_reset_hours_ago"] is None


def test_good_record_has_no_problems() -> None:
    assert validate_transaction(GOOD) == []
    assert validate_transaction("text") == [("record", "expected a JSON object, got a string")]
