"""The column mapping of `data import`: which column feeds which SPEC field, label values, fixed values, defaults.

See configs/csv_mapping.example.yaml (rows that carry the customer profile) and configs/cardlog_mapping.example.yaml
(a raw transaction log: its `log:` section derives the customer fields per card). FIELDS is also the table of
docs/DATASET_PREPARATION.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fraudtune.data.imports.logspec import LogSpec, parse_log_spec
from fraudtune.dotted import set_dotted
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
    "strip_prefix",
    "list_separator",
    "timestamp_format",
    "true_values",
    "false_values",
    "fixed",
    "log",
    "personal",
    "pii",
)
UNIX = "unix"  # timestamp_format for seconds since 1970-01-01 UTC
_ISO_LIKE = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
PII_ACTIONS = ("scrub", "refuse")


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


def parse_time(raw: str | datetime, fmt: str | None) -> datetime:
    """A cell as a date-time: strptime `fmt`, `unix` seconds (read as UTC, kept without a zone), or ISO-8601.

    A Parquet timestamp column arrives as a datetime already."""
    if isinstance(raw, datetime):
        return raw
    try:
        if fmt in _ISO_LIKE and len(raw) == 19 and raw[10] == fmt[8]:  # 10x faster than strptime, same result
            return datetime.fromisoformat(raw)
        if fmt == UNIX:
            return datetime.fromtimestamp(float(raw), UTC).replace(tzinfo=None)
        return datetime.strptime(raw, fmt) if fmt else datetime.fromisoformat(raw)
    except (ValueError, OverflowError, OSError):
        expected = {None: "ISO-8601 like 2026-04-13T02:30:00", UNIX: "unix (seconds since 1970)"}.get(fmt, fmt)
        raise ValueError(f"not a date-time in the format {expected}: {str(raw)[:40]!r}") from None


def _timestamp(raw: str | datetime, mapping: CsvMapping) -> str:
    return parse_time(raw, mapping.timestamp_format).isoformat()


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
    strip_prefix: dict[str, str] = field(default_factory=dict)  # SPEC field -> text cut from the start of its cells
    delimiter: str = ","
    list_separator: str = "|"
    timestamp_format: str | None = None
    true_values: tuple[str, ...] = TRUE_VALUES
    false_values: tuple[str, ...] = FALSE_VALUES
    fixed: dict[str, Any] = field(default_factory=dict)  # SPEC field -> the value of every row
    log: LogSpec | None = None  # a raw log: customer fields derived per card (fraudtune.data.imports)
    personal: tuple[str, ...] = ()  # more columns to report as personal (they are dropped like any unmapped one)
    pii: str = "scrub"  # a card number, email or phone left in a text value: scrub it, or refuse the row

    @property
    def fields(self) -> dict[str, _MappedField]:
        return {name: _MappedField(spec, self.values.get(name, {})) for name, spec in FIELDS.items()}

    @property
    def source_columns(self) -> dict[str, str]:
        """{column: the first key that reads it} for every column the mapping uses."""
        used = {column: name for name, column in reversed(self.columns.items())}
        used[self.label_column] = "label"
        return {**used, **(self.log.source_columns if self.log else {})}


def mapped_fields(
    row: Mapping[str, Any], mapping: CsvMapping, skip: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The SPEC fields of one row read through the mapping (columns, value translations, fixed values, defaults),
    and (field, problem) pairs; the fields in `skip` are left out (a log import derives them)."""
    txn: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, spec in mapping.fields.items():
        if name in skip:
            continue
        column = mapping.columns.get(name)
        raw = row[column] if column else ""
        raw = raw.strip() if isinstance(raw, str) else raw
        prefix = mapping.strip_prefix.get(name)
        if prefix and isinstance(raw, str) and raw.startswith(prefix):
            raw = raw[len(prefix) :].strip()
        if name in mapping.fixed:
            value, problem = mapping.fixed[name], None
        else:
            value, problem = spec.convert(raw, mapping, txn) if raw else spec.missing(txn)
        if problem:
            problems.append((name, f"{problem} (column {column!r})" if column else problem))
            continue
        set_dotted(txn, name, value)
    return txn, problems


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
    log = parse_log_spec(path, raw["log"]) if raw.get("log") is not None else None
    fixed = _fixed(path, raw.get("fixed"))
    columns = _columns(path, raw.get("columns"), covered=(*fixed, *(log.derived if log else ())))
    _no_overlap(path, columns, fixed, log)
    label_column, label_values = _label(path, raw.get("label"))
    values = raw.get("values") or {}
    if not isinstance(values, dict) or any(k not in FIELDS or not isinstance(v, dict) for k, v in values.items()):
        raise FraudtuneError(f"{path}: values: expected {{field: {{cell text: value}}}} with transaction fields")
    strip = raw.get("strip_prefix") or {}
    if not isinstance(strip, dict) or any(
        k not in FIELDS or not isinstance(v, str) or not v or k not in columns for k, v in strip.items()
    ):
        raise FraudtuneError(f"{path}: strip_prefix: expected {{field: prefix text}} with fields mapped to columns")
    delimiter = str(raw.get("delimiter", ","))
    if len(delimiter) != 1:
        raise FraudtuneError(f"{path}: delimiter: must be one character, got {delimiter!r}")
    return CsvMapping(
        columns=columns,
        label_column=label_column,
        label_values=label_values,
        values={f: {str(k): v for k, v in m.items()} for f, m in values.items()},
        strip_prefix=dict(strip),
        delimiter=delimiter,
        list_separator=str(raw.get("list_separator", "|")),
        timestamp_format=raw.get("timestamp_format"),
        true_values=tuple(str(x).lower() for x in raw.get("true_values", TRUE_VALUES)),
        false_values=tuple(str(x).lower() for x in raw.get("false_values", FALSE_VALUES)),
        fixed=fixed,
        log=log,
        personal=_personal(path, raw.get("personal")),
        pii=_pii(path, raw.get("pii", "scrub")),
    )


def _fixed(path: Path, fixed: Any) -> dict[str, Any]:
    if fixed is None:
        return {}
    if not isinstance(fixed, dict):
        raise FraudtuneError(
            f"{path}: fixed: expected a mapping of transaction field -> value, e.g. merchant.country: US"
        )
    for name, value in fixed.items():
        if name not in FIELDS:
            raise FraudtuneError(f"{path}: fixed.{name}: not a transaction field; expected one of {', '.join(FIELDS)}")
        if isinstance(value, dict) or (value is None and not FIELDS[name].nullable):
            raise FraudtuneError(f"{path}: fixed.{name}: expected a single value, got {value!r}")
    return dict(fixed)


def _no_overlap(path: Path, columns: dict[str, str], fixed: dict[str, Any], log: LogSpec | None) -> None:
    """A field has one source: a column, a fixed value, or (customer.id) the card token."""
    both = next((name for name in fixed if name in columns), None)
    if both:
        raise FraudtuneError(f"{path}: fixed.{both}: also mapped to column {columns[both]!r}; keep one of the two")
    if log and ("customer.id" in columns or "customer.id" in fixed):
        raise FraudtuneError(
            f"{path}: columns.customer.id: a log import uses the card token (log.card) as customer.id; remove it"
        )


def _personal(path: Path, personal: Any) -> tuple[str, ...]:
    if personal is None:
        return ()
    if not isinstance(personal, list) or not all(isinstance(c, str) for c in personal):
        raise FraudtuneError(f"{path}: personal: expected a list of column names, got {personal!r:.60}")
    return tuple(c.strip() for c in personal)


def _pii(path: Path, action: Any) -> str:
    if action not in PII_ACTIONS:
        raise FraudtuneError(f"{path}: pii: expected one of {', '.join(PII_ACTIONS)}, got {action!r}")
    return action


def _columns(path: Path, columns: Any, covered: tuple[str, ...] = ()) -> dict[str, str]:
    if not isinstance(columns, dict):
        raise FraudtuneError(f"{path}: columns: expected a mapping of transaction field -> CSV column")
    for name, column in columns.items():
        if name not in FIELDS:
            raise FraudtuneError(
                f"{path}: columns.{name}: not a transaction field; expected one of {', '.join(FIELDS)}"
            )
        if not isinstance(column, str) or not column.strip():
            raise FraudtuneError(f"{path}: columns.{name}: expected a CSV column name, got {column!r}")
    unmapped = [name for name, spec in FIELDS.items() if spec.required and name not in columns and name not in covered]
    if unmapped:
        raise FraudtuneError(
            f"{path}: columns: required field(s) {', '.join(unmapped)} not mapped to a column (or set one value "
            "for every row under fixed:, or derive the customer fields from a transaction log with log: {card: "
            "COLUMN}; see configs/cardlog_mapping.example.yaml)"
        )
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
