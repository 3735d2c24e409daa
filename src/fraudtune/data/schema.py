"""SPEC section 1: the transaction record, validated field by field with messages that name line and field."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fraudtune.errors import FraudtuneError
from fraudtune.files import read_user_bytes

CATEGORIES = (
    "grocery",
    "restaurant",
    "gas",
    "pharmacy",
    "utilities",
    "subscription",
    "travel",
    "hotel",
    "clothing",
    "entertainment",
    "online_marketplace",
    "electronics",
    "jewelry",
    "gift_cards",
    "crypto_exchange",
    "money_transfer",
    "atm_cash",
)
CHANNELS = ("in_person", "online", "recurring", "atm")
TXN_CODES = ("TC-01", "TC-05", "TC-12", "TC-20", "TC-21", "TC-07", "TC-33", "TC-44")
TOP_KEYS = (
    "transaction_id",
    "timestamp",
    "amount",
    "currency",
    "merchant",
    "channel",
    "txn_code",
    "device_new",
    "customer",
    "velocity",
)
MERCHANT_KEYS = ("id", "name", "category", "country")
CUSTOMER_KEYS = (
    "id",
    "home_country",
    "avg_amount",
    "history_count",
    "account_age_days",
    "usual_categories",
    "travel_notice_country",
    "password_reset_hours_ago",
)
VELOCITY_KEYS = ("txn_last_1h", "txn_last_24h")
MAX_LINE_BYTES = 1_000_000
MAX_AMOUNT = 1e9  # above any single card payment; a larger value is a unit or parsing error, not a transaction
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class RecordError:
    """One rejected record: where, which field, what is wrong."""

    path: str
    line: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.problem}"


def validate_transaction(obj: Any, txn_codes: tuple[str, ...] = TXN_CODES) -> list[tuple[str, str]]:
    """Return (field, problem) pairs; empty when the record meets SPEC section 1."""
    if not isinstance(obj, dict):
        return [("record", f"expected a JSON object, got {_kind(obj)}")]
    errors = _keys(obj, TOP_KEYS, "", optional=("currency",))
    _str(obj, "transaction_id", errors)
    ts = obj.get("timestamp")
    if "timestamp" in obj:
        if not isinstance(ts, str):
            errors.append(("timestamp", f"expected an ISO-8601 string, got {_kind(ts)}"))
        else:
            try:
                datetime.fromisoformat(ts)
            except ValueError:
                errors.append(("timestamp", f"not an ISO-8601 date-time: {ts[:40]!r}"))
    _number(obj, "amount", errors, positive=True)
    if "currency" in obj and not (isinstance(obj["currency"], str) and _CURRENCY.match(obj["currency"])):
        errors.append(("currency", f"expected an ISO 4217 code like USD, got {obj['currency']!r:.40}"))
    _enum(obj, "channel", CHANNELS, errors)
    _enum(obj, "txn_code", txn_codes, errors)
    if "device_new" in obj and not isinstance(obj["device_new"], bool):
        errors.append(("device_new", f"expected true/false, got {_kind(obj['device_new'])}"))
    errors += _merchant(obj.get("merchant")) if "merchant" in obj else []
    errors += _customer(obj.get("customer")) if "customer" in obj else []
    errors += _velocity(obj.get("velocity")) if "velocity" in obj else []
    return errors


def _merchant(m: Any) -> list[tuple[str, str]]:
    if not isinstance(m, dict):
        return [("merchant", f"expected an object, got {_kind(m)}")]
    errors = _keys(m, MERCHANT_KEYS, "merchant.")
    _str(m, "id", errors, "merchant.")
    _str(m, "name", errors, "merchant.")
    _enum(m, "category", CATEGORIES, errors, "merchant.")
    _country(m, "country", errors, "merchant.")
    return errors


def _customer(c: Any) -> list[tuple[str, str]]:
    if not isinstance(c, dict):
        return [("customer", f"expected an object, got {_kind(c)}")]
    errors = _keys(c, CUSTOMER_KEYS, "customer.", optional=("travel_notice_country", "password_reset_hours_ago"))
    _str(c, "id", errors, "customer.")
    _country(c, "home_country", errors, "customer.")
    _number(c, "avg_amount", errors, "customer.", positive=False)
    _int(c, "history_count", errors, "customer.")
    _int(c, "account_age_days", errors, "customer.")
    cats = c.get("usual_categories")
    if "usual_categories" in c:
        if not isinstance(cats, list):
            errors.append(("customer.usual_categories", f"expected a list of categories, got {_kind(cats)}"))
        else:
            bad = [x for x in cats if x not in CATEGORIES]
            if bad:
                errors.append(("customer.usual_categories", f"unknown category {str(bad[0])[:40]!r}"))
    if c.get("travel_notice_country") is not None:
        _country(c, "travel_notice_country", errors, "customer.")
    if c.get("password_reset_hours_ago") is not None:
        _number(c, "password_reset_hours_ago", errors, "customer.", positive=False)
    return errors


def _velocity(v: Any) -> list[tuple[str, str]]:
    if not isinstance(v, dict):
        return [("velocity", f"expected an object, got {_kind(v)}")]
    errors = _keys(v, VELOCITY_KEYS, "velocity.")
    for key in VELOCITY_KEYS:
        _int(v, key, errors, "velocity.")
    return errors


def _keys(obj: dict, allowed: tuple[str, ...], prefix: str, optional: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    errors = [(f"{prefix}{k}", "missing") for k in allowed if k not in obj and k not in optional]
    errors += [(f"{prefix}{_printable(str(k)[:40])}", "unknown field") for k in obj if k not in allowed]
    return errors


def _printable(text: str) -> str:
    """A user's key as shown in a one-line message: control characters escaped ('\\n', not a line break)."""
    return text if text.isprintable() else repr(text)[1:-1]


def _str(obj: dict, key: str, errors: list, prefix: str = "") -> None:
    if key in obj and (not isinstance(obj[key], str) or not obj[key].strip()):
        errors.append((f"{prefix}{key}", f"expected a non-empty string, got {_kind(obj[key])}"))
    elif key in obj and not _utf8(obj[key]):
        errors.append((f"{prefix}{key}", "not valid Unicode (a lone surrogate escape such as \\ud800)"))


def _utf8(text: str) -> bool:
    """JSON may escape half a surrogate pair; such text can be neither tokenised nor written back as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _enum(obj: dict, key: str, allowed: tuple[str, ...], errors: list, prefix: str = "") -> None:
    if key in obj and obj[key] not in allowed:
        errors.append((f"{prefix}{key}", f"unknown value {str(obj[key])[:40]!r}; expected one of {', '.join(allowed)}"))


def _country(obj: dict, key: str, errors: list, prefix: str = "") -> None:
    if key in obj and not (isinstance(obj[key], str) and _COUNTRY.match(obj[key])):
        errors.append((f"{prefix}{key}", f"expected an ISO-3166 alpha-2 code like US, got {str(obj[key])[:40]!r}"))


def _number(obj: dict, key: str, errors: list, prefix: str = "", positive: bool = False) -> None:
    if key not in obj:
        return
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append((f"{prefix}{key}", f"expected a number, got {_kind(value)}"))
    elif isinstance(value, int) and abs(value) > 1e300:  # a 400-digit integer: float() would overflow later
        errors.append((f"{prefix}{key}", f"too large, got a {len(str(abs(value)))}-digit number"))
    elif not math.isfinite(value):
        errors.append((f"{prefix}{key}", f"must be finite, got {value}"))
    elif key in ("amount", "avg_amount") and value > MAX_AMOUNT:
        errors.append((f"{prefix}{key}", f"must be <= {MAX_AMOUNT:,.0f}, got {value:g}"))
    elif positive and value <= 0:
        errors.append((f"{prefix}{key}", f"must be > 0, got {value}"))
    elif not positive and value < 0:
        errors.append((f"{prefix}{key}", f"must be >= 0, got {value}"))


def _int(obj: dict, key: str, errors: list, prefix: str = "") -> None:
    if key not in obj:
        return
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append((f"{prefix}{key}", f"expected a whole number, got {_kind(value)}"))
    elif value < 0:
        errors.append((f"{prefix}{key}", f"must be >= 0, got {value}"))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def normalize(txn: dict[str, Any]) -> dict[str, Any]:
    """Fill documented defaults of optional fields (currency USD, no travel notice, no reset)."""
    txn = dict(txn)
    txn.setdefault("currency", "USD")
    customer = dict(txn["customer"])
    customer.setdefault("travel_notice_country", None)
    customer.setdefault("password_reset_hours_ago", None)
    txn["customer"] = customer
    return txn


def parse_lines(path: Path, txn_codes: tuple[str, ...] = TXN_CODES) -> tuple[list[dict], list[RecordError]]:
    """Read a transactions JSONL file: valid records (normalised) and one error per rejected line.

    A bad line never stops the others; the caller decides the exit code.
    """
    path = Path(path)
    if not path.exists():
        raise FraudtuneError(f"{path}: file not found")
    if path.is_dir():
        raise FraudtuneError(f"{path}: is a folder, expected a JSONL file")
    raw = read_user_bytes(path, "a JSONL file of transactions")
    if not raw.strip():
        raise FraudtuneError(f"{path}: file is empty; expected one JSON transaction per line")
    if b"\x00" in raw[:8192]:
        raise FraudtuneError(f"{path}: binary file; expected UTF-8 JSON lines")
    records, errors, seen = [], [], set()
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        err = _line_error(str(path), lineno, line)
        if err:
            errors.append(err)
            continue
        obj = json.loads(line)
        problems = validate_transaction(obj, txn_codes)
        if not problems and obj["transaction_id"] in seen:
            problems = [("transaction_id", f"duplicate id {obj['transaction_id'][:40]!r}")]
        if problems:
            errors += [RecordError(str(path), lineno, f, p) for f, p in problems]
            continue
        seen.add(obj["transaction_id"])
        records.append(normalize(obj))
    return records, errors


def _line_error(path: str, lineno: int, line: bytes) -> RecordError | None:
    if len(line) > MAX_LINE_BYTES:
        return RecordError(path, lineno, "record", f"line is {len(line):,} bytes, over the {MAX_LINE_BYTES:,} limit")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RecordError(path, lineno, "record", f"not UTF-8 (byte {exc.start})")
    try:
        json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        msg = getattr(exc, "msg", str(exc))
        return RecordError(path, lineno, "record", f"invalid JSON ({msg})")
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid number")
