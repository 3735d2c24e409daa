"""One row of a transaction log: read through the mapping, completed with the card's past, scanned for PII."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fraudtune.data.csv_mapping import CsvMapping, mapped_fields, parse_time
from fraudtune.data.importers import read_label
from fraudtune.data.imports.history import DAY, PastFeatures
from fraudtune.data.imports.logspec import LogSpec
from fraudtune.data.imports.sources import RawRow
from fraudtune.data.imports.timesort import epoch_seconds
from fraudtune.data.pii import find_pii, scrub
from fraudtune.data.schema import CUSTOMER_KEYS, MERCHANT_KEYS, TOP_KEYS, VELOCITY_KEYS
from fraudtune.dotted import set_dotted, text_fields

NOT_SCANNED = ("customer.id",)  # our own token: hex digits that cannot form a card number, email or phone


@dataclass
class LogRow:
    """A readable row before its history is known: the mapped fields, the label and the values history needs."""

    number: int
    line: int
    txn: dict[str, Any]
    label: str
    when: datetime
    card: str  # the card's token: LogImport.tokenised replaced the number as the row was read
    device: str | None
    opened: float | None  # seconds, like the row's time


class LogRowReader:
    """Reads the cells of `columns` (the order the source delivers them in) into LogRows."""

    def __init__(self, mapping: CsvMapping) -> None:
        log = mapping.log
        assert log is not None
        self.mapping, self.log = mapping, log
        self.columns = list(dict.fromkeys([*mapping.source_columns]))
        self.time_index = self.columns.index(mapping.columns["timestamp"])
        self.derived = tuple(f for f in log.derived if f not in mapping.columns and f not in mapping.fixed)

    def time_of(self, row: RawRow, index: int | None = None) -> datetime | None:
        """The row's time (the cell at `index`, by default where read() finds it), or None when the row or its time
        cannot be read: such a row sorts first and is rejected."""
        if row.cells is None:
            return None
        try:
            cell = row.cells[self.time_index if index is None else index]
            return parse_time(_text(cell), self.mapping.timestamp_format)
        except ValueError:
            return None

    def read(self, row: RawRow) -> tuple[LogRow | None, list[tuple[str, str]]]:
        """The row, or (field, problem) pairs naming why it cannot be used."""
        if row.cells is None:
            return None, [("row", row.problem or "unreadable")]
        cells = {column: _text(cell) for column, cell in zip(self.columns, row.cells, strict=True)}
        txn, problems = mapped_fields(cells, self.mapping, skip=self.derived)
        label, problem = read_label(cells, self.mapping)
        if problem:
            problems.append(("label", problem))
        card = cells[self.log.card]
        if not card:
            problems.append(("log.card", f"missing value (column {self.log.card!r})"))
        opened = _opened(cells, self.log, problems)
        if problems:
            return None, problems
        when = datetime.fromisoformat(txn["timestamp"])
        if opened is not None and opened > epoch_seconds(when):
            return None, [("log.opened", f"account opened after the transaction (column {self.log.opened!r})")]
        device = cells[self.log.device] or None if self.log.device else None
        return LogRow(row.number, row.line, txn, label, when, card, device, opened), []


def complete(row: LogRow, token: str, past: PastFeatures, derived: tuple[str, ...], seconds: float) -> dict[str, Any]:
    """The SPEC transaction: the mapped fields plus the derived ones (customer.id is the card token)."""
    age = int((seconds - row.opened) // DAY) if row.opened is not None else past.observed_days
    values = {
        "customer.id": token,
        "customer.avg_amount": past.avg_amount,
        "customer.history_count": past.history_count,
        "customer.account_age_days": age,
        "customer.usual_categories": past.usual_categories,
        "velocity.txn_last_1h": past.txn_last_1h,
        "velocity.txn_last_24h": past.txn_last_24h,
        "device_new": past.device_new,
    }
    txn = row.txn
    for name in derived:
        set_dotted(txn, name, values[name])
    return _in_spec_order(txn)


def _in_spec_order(txn: dict[str, Any]) -> dict[str, Any]:
    """The keys in SPEC 1's order, as generated transactions have them (derived fields were added last)."""
    ordered = {k: txn[k] for k in TOP_KEYS if k in txn}
    for section, keys in (("merchant", MERCHANT_KEYS), ("customer", CUSTOMER_KEYS), ("velocity", VELOCITY_KEYS)):
        if isinstance(ordered.get(section), dict):
            ordered[section] = {k: ordered[section][k] for k in keys if k in ordered[section]}
    return ordered


def pii_findings(txn: dict[str, Any], scrub_them: bool) -> list[tuple[str, str]]:
    """(field, kinds) of every text value that looks like a card number, email, phone or SSN; with `scrub_them`
    the value is masked in place ([CARD], [EMAIL], ...)."""
    found = []
    for name, value in text_fields(txn):
        if name in NOT_SCANNED:
            continue
        kinds = sorted({kind for kind, _ in find_pii(value)})
        if kinds:
            found.append((name, ", ".join(kinds)))
            if scrub_them:
                set_dotted(txn, name, scrub(value))
    return found


def _opened(cells: dict[str, Any], log: LogSpec, problems: list[tuple[str, str]]) -> float | None:
    """The account-open time in seconds, from the log.opened column (an empty cell: unknown, age from the log)."""
    if not log.opened or not cells[log.opened]:
        return None
    try:
        return epoch_seconds(parse_time(cells[log.opened], log.opened_format))
    except ValueError as exc:
        problems.append(("log.opened", f"{exc} (column {log.opened!r})"))
        return None


def _text(cell: Any) -> Any:
    return cell.strip() if isinstance(cell, str) else cell
