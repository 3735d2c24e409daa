"""What a log import tells its user: which columns were kept, tokenised or dropped (and why), rejected rows, PII
found, warm-up rows, leakage warnings. Every text in it is scrubbed of personal data before it is written."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from fraudtune.data.csv_mapping import CsvMapping
from fraudtune.data.pii import scrub

SHOWN_ERRORS = 20  # rejected rows printed and listed in the report; all of them are in rejected_rows.jsonl
SHOWN_PII = 100
# words in a column name that mark personal data, by kind ("merch_lat" is a location, "first" a name)
PERSONAL_WORDS = {
    "name": ("first", "last", "name", "firstname", "lastname", "surname", "fullname", "given"),
    "gender": ("gender", "sex"),
    "address": ("street", "address", "addr", "city", "state", "zip", "zipcode", "postcode", "postal", "county"),
    "location": ("lat", "long", "lon", "lng", "latitude", "longitude", "geo"),
    "birth date": ("dob", "birth", "birthdate", "birthday", "born"),
    "job": ("job", "occupation", "employer", "profession"),
    "contact": ("email", "mail", "phone", "mobile", "tel"),
    "id number": ("ssn", "passport", "cc", "pan", "card", "iban", "account", "acct"),
}


def personal_kind(column: str) -> str | None:
    """The kind of personal data a column name suggests, or None."""
    words = re.split(r"[^a-z0-9]+", column.lower())
    return next((kind for kind, marks in PERSONAL_WORDS.items() if any(w in marks for w in words)), None)


def column_report(header: tuple[str, ...], mapping: CsvMapping) -> dict[str, Any]:
    """{used: {column: field}, tokenised: {column: how}, dropped: [{column, reason}]}: nothing unmapped is kept."""
    used = mapping.source_columns
    card = mapping.log.card if mapping.log else None
    dropped = []
    for column in header:
        if column in used:
            continue
        kind = "declared personal" if column in mapping.personal else personal_kind(column)
        dropped.append({"column": column, "reason": f"personal ({kind})" if kind else "unmapped"})
    return {
        "used": {c: key for c, key in used.items() if c != card},
        "tokenised": {card: "customer.id: HMAC-SHA256 token; the number itself is dropped"} if card else {},
        "dropped": dropped,
    }


class Rejections:
    """Counts of rejected rows by field, and the first few in words."""

    def __init__(self) -> None:
        self.rows = 0
        self.by_field: Counter[str] = Counter()
        self.first: list[str] = []

    def add(self, where: str, problems: list[tuple[str, str]]) -> list[dict[str, str]]:
        """Record a rejected row; returns its entries for rejected_rows.jsonl (reasons scrubbed)."""
        self.rows += 1
        entries = []
        for field, reason in problems:
            reason = scrub(reason)
            self.by_field[field] += 1
            if len(self.first) < SHOWN_ERRORS:
                self.first.append(f"{where}: {field}: {reason}")
            entries.append({"field": field, "reason": reason})
        return entries

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "by_field": dict(self.by_field.most_common()), "first": self.first}


def scrubbed(obj: Any) -> Any:
    """The report with every string masked where it looks like a card number, email, phone or SSN."""
    if isinstance(obj, dict):
        return {scrub(str(k)): scrubbed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrubbed(v) for v in obj]
    return scrub(obj) if isinstance(obj, str) else obj
