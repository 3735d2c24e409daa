"""The column mapping of `data import-csv`: which CSV column feeds which SPEC field, label values, defaults.

See configs/csv_mapping.example.yaml. FIELDS is also the table of docs/DATASET_PREPARATION.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from fraudtune.errors import FraudtuneError
from fraudtune.files import read_user_text, yaml_problem

LABELS = ("FRAUD", "LEGITIMATE")
CODE_OF_CHANNEL = {"in_person": "TC-01", "online": "TC-20", "recurring": "TC-12", "atm": "TC-01"}
TRUE_VALUES = ("true", "t", "yes", "y", "1")
FALSE_VALUES = ("false", "f", "no", "n", "0", "")
MAP_KEYS = (
    "delimiter",
    "columns",
    "label",
    "values",
    "list_separator",
    "timestamp_format",
    "true_values",
    "false_values",
)


@dataclass(frozen=True)
class FieldSpec:
    """How one SPEC field is read from a cell, and what a missing column or empty cell becomes."""

    kind: str  # text | number | integer | boolean | list | timestamp
    required: bool
    default: Any = None
    default_doc: str = ""
    nullable: bool = False
    derive: Callable[[dict[str, Any]], Any] | None = None  # default computed from fields read before

    def missing(self, txn: dict[str, Any]) -> tuple[Any, str | None]:
        if self.required:
            return None, "missing value"
        return (self.derive(txn) if self.derive else self.default), None

    def convert(self, raw: str, mapping: CsvMapping, txn: dict[str, Any]) -> tuple[Any, str | None]:
        try:
            return _CONVERTERS[self.kind](raw, mapping), None
        except (ValueError, OverflowError) as exc:
            return None, str(exc)


def _number(raw: str, mapping: CsvMapping) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"not a number: {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be finite, got {raw[:40]!r}")
    return int(value) if value.is_integer() and "." not in raw else value


def _integer(raw: str, mapping: CsvMapping) -> int:
    value = _number(raw, mapping)
    if not float(value).is_integer():
        raise ValueError(f"not a whole number: {raw[:40]!r}")
    return int(value)


def _boolean(raw: str, mapping: CsvMapping) -> bool:
    low = raw.lower()
    if low in mapping.true_values:
        return True
    if low in mapping.false_values:
        return False
    raise ValueError(f"not true/false: {raw[:40]!r} (true_values {', '.join(mapping.true_values)})")


def _timestamp(raw: str, mapping: CsvMapping) -> str:
    try:
        when = (
            datetime.strptime(raw, mapping.timestamp_format)
            if mapping.timestamp_format
            else datetime.fromisoformat(raw)
        )
    except ValueError:
        expected = mapping.timestamp_format or "ISO-8601 like 2026-04-13T02:30:00"
        raise ValueError(f"not a date-time in the format {expected}: {raw[:40]!r}") from None
    return when.isoformat()


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "text": lambda raw, m: raw,
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "list": lambda raw, m: [x.strip() for x in raw.split(m.list_separator) if x.strip()],
    "timestamp": _timestamp,
}

# SPEC 1 fields in reading order (a default may use a field read before it)
FIELDS: dict[str, FieldSpec] = {
    "transaction_id": FieldSpec("text", True),
    "timestamp": FieldSpec("timestamp", True),
    "amount": FieldSpec("number", True),
    "currency": FieldSpec("text", False, "USD", "USD"),
    "merchant.id": FieldSpec("text", True),
    "merchant.name": FieldSpec(
        "text", False, None, "the merchant id", derive=lambda t: t.get("merchant", {}).get("id")
    ),
    "merchant.category": FieldSpec("text", True),
    "merchant.country": FieldSpec("text", True),
    "channel": FieldSpec("text", True),
    "txn_code": FieldSpec(
        "text",
        False,
        None,
        "by channel: TC-01 in_person/atm, TC-20 online, TC-12 recurring",
        derive=lambda t: CODE_OF_CHANNEL.get(t.get("channel"), "TC-01"),
    ),
    "device_new": FieldSpec("boolean", False, False, "false"),
    "customer.id": FieldSpec("text", True),
    "customer.home_country": FieldSpec("text", True),
    "customer.avg_amount": FieldSpec("number", True),
    "customer.history_count": FieldSpec("integer", True),
    "customer.account_age_days": FieldSpec("integer", True),
    "customer.usual_categories": FieldSpec("list", False, [], "[] (every category is first-time)"),
    "customer.travel_notice_country": FieldSpec("text", False, None, "null (no travel notice)", nullable=True),
    "customer.password_reset_hours_ago": FieldSpec("number", False, None, "null (no reset)", nullable=True),
    "velocity.txn_last_1h": FieldSpec("integer", False, 0, "0"),
    "velocity.txn_last_24h": FieldSpec("integer", False, 0, "0"),
}


@dataclass(frozen=True)
class CsvMapping:
    columns: dict[str, str]  # SPEC field -> CSV column
    label_column: str
    label_values: dict[str, str]  # cell text -> FRAUD | LEGITIMATE
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # SPEC field -> {cell text: SPEC value}
    delimiter: str = ","
    list_separator: str = "|"
    timestamp_format: str | None = None
    true_values: tuple[str, ...] = TRUE_VALUES
    false_values: tuple[str, ...] = FALSE_VALUES

    @property
    def fields(self) -> dict[str, _MappedField]:
        return {name: _MappedField(spec, self.values.get(name, {})) for name, spec in FIELDS.items()}


@dataclass(frozen=True)
class _MappedField:
    """A FieldSpec with the mapping's value translation (e.g. POS -> in_person) applied first."""

    spec: FieldSpec
    translate: dict[str, Any]

    def missing(self, txn: dict[str, Any]) -> tuple[Any, str | None]:
        return self.spec.missing(txn)

    def convert(self, raw: str, mapping: CsvMapping, txn: dict[str, Any]) -> tuple[Any, str | None]:
        if raw in self.translate:
            return self.translate[raw], None
        return self.spec.convert(raw, mapping, txn)


def load_mapping(path: Path) -> CsvMapping:
    """Read and check a mapping YAML; every problem names the file and the key."""
    if not path.exists():
        raise FraudtuneError(f"{path}: mapping file not found; start from configs/csv_mapping.example.yaml")
    try:
        raw = yaml.safe_load(read_user_text(path, "YAML column mapping"))
    except yaml.YAMLError as exc:
        raise FraudtuneError(f"{path}: invalid YAML ({yaml_problem(exc)})") from exc
    if not isinstance(raw, dict):
        raise FraudtuneError(f"{path}: a mapping must be a YAML mapping with 'columns' and 'label'")
    unknown = [k for k in raw if k not in MAP_KEYS]
    if unknown:
        raise FraudtuneError(f"{path}: {unknown[0]}: unknown key; expected {', '.join(MAP_KEYS)}")
    columns = _columns(path, raw.get("columns"))
    label_column, label_values = _label(path, raw.get("label"))
    values = raw.get("values") or {}
    if not isinstance(values, dict) or any(k not in FIELDS or not isinstance(v, dict) for k, v in values.items()):
        raise FraudtuneError(f"{path}: values: expected {{field: {{cell text: value}}}} with transaction fields")
    delimiter = str(raw.get("delimiter", ","))
    if len(delimiter) != 1:
        raise FraudtuneError(f"{path}: delimiter: must be one character, got {delimiter!r}")
    return CsvMapping(
        columns=columns,
        label_column=label_column,
        label_values=label_values,
        values={f: {str(k): v for k, v in m.items()} for f, m in values.items()},
        delimiter=delimiter,
        list_separator=str(raw.get("list_separator", "|")),
        timestamp_format=raw.get("timestamp_format"),
        true_values=tuple(str(x).lower() for x in raw.get("true_values", TRUE_VALUES)),
        false_values=tuple(str(x).lower() for x in raw.get("false_values", FALSE_VALUES)),
    )


def _columns(path: Path, columns: Any) -> dict[str, str]:
    if not isinstance(columns, dict):
        raise FraudtuneError(f"{path}: columns: expected a mapping of transaction field -> CSV column")
    for name, column in columns.items():
        if name not in FIELDS:
            raise FraudtuneError(
                f"{path}: columns.{name}: not a transaction field; expected one of {', '.join(FIELDS)}"
            )
        if not isinstance(column, str) or not column.strip():
            raise FraudtuneError(f"{path}: columns.{name}: expected a CSV column name, got {column!r}")
    unmapped = [name for name, spec in FIELDS.items() if spec.required and name not in columns]
    if unmapped:
        raise FraudtuneError(f"{path}: columns: required field(s) {', '.join(unmapped)} not mapped to a column")
    return {name: column.strip() for name, column in columns.items()}


def _label(path: Path, label: Any) -> tuple[str, dict[str, str]]:
    if not isinstance(label, dict) or not isinstance(label.get("column"), str):
        raise FraudtuneError(f"{path}: label: expected {{column: NAME, values: {{'1': FRAUD, '0': LEGITIMATE}}}}")
    values = label.get("values")
    if not isinstance(values, dict) or not values:
        raise FraudtuneError(f"{path}: label.values: expected a mapping of cell text -> FRAUD or LEGITIMATE")
    bad = [v for v in values.values() if v not in LABELS]
    if bad:
        raise FraudtuneError(f"{path}: label.values: {bad[0]!r} is neither FRAUD nor LEGITIMATE")
    return label["column"].strip(), {_cell_text(k): v for k, v in values.items()}


def _cell_text(key: Any) -> str:
    """YAML reads 1 as an int and yes as a bool; the CSV cell is text."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)
