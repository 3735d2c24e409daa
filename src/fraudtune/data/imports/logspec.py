"""The `log:` section of a column mapping: the file is a raw transaction log, and the customer fields are
derived per card from the rows before each transaction.

A field the mapping reads from a column or sets under `fixed:` wins over its derived value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudtune.errors import FraudtuneError

DEFAULT_KEY_ENV = "FRAUDTUNE_TOKEN_KEY"
# the keys of the log: section and what they mean (also the table of docs/DATASET_PREPARATION.md)
LOG_KEYS = {
    "card": "the card number column: turned into customer.id, a keyed token; the history is kept per card",
    "key_env": "the environment variable that holds the token key",
    "key_file": "a file that holds the token key instead (relative to the mapping; never inside the output folder)",
    "device": "a device or terminal column: device_new is its first use on the card",
    "opened": "an account-open date column: account_age_days counts from it instead of the card's first row",
    "opened_format": "strptime format of the opened column (ISO-8601 when left out)",
    "warmup_min_history": "rows with fewer earlier rows of their card are warm-up",
    "warmup_min_days": "rows less than this many days after their card's first row are warm-up",
    "keep_warmup": "write warm-up rows into the splits too (marked warmup: true in the meta)",
}
# SPEC fields a log import derives from the card's past rows (device_new only with a device column)
DERIVED = (
    "customer.id",
    "customer.avg_amount",
    "customer.history_count",
    "customer.account_age_days",
    "customer.usual_categories",
    "velocity.txn_last_1h",
    "velocity.txn_last_24h",
)


@dataclass(frozen=True)
class LogSpec:
    """Which column is the card (tokenised; history is kept per card), where its key comes from, and warm-up."""

    card: str
    key_env: str = DEFAULT_KEY_ENV
    key_file: Path | None = None
    device: str | None = None  # device/terminal column: device_new is its first use on the card
    opened: str | None = None  # account-open date column: account_age_days from it, not from the first row
    opened_format: str | None = None  # strptime format of `opened`; ISO-8601 when left out
    warmup_min_history: int = 3
    warmup_min_days: int = 0
    keep_warmup: bool = False

    @property
    def derived(self) -> tuple[str, ...]:
        return (*DERIVED, "device_new") if self.device else DERIVED

    @property
    def source_columns(self) -> dict[str, str]:
        """{column: what it is for} of the columns this section reads."""
        named = {"log.card": self.card, "log.device": self.device, "log.opened": self.opened}
        return {column: key for key, column in named.items() if column}


def parse_log_spec(path: Path, raw: Any) -> LogSpec:
    """The `log:` section of mapping `path`; every problem names the key."""
    if not isinstance(raw, dict) or not isinstance(raw.get("card"), str) or not raw["card"].strip():
        raise FraudtuneError(
            f"{path}: log.card: expected the name of the card number column, e.g. log: {{card: cc_num}}"
        )
    unknown = [k for k in raw if k not in LOG_KEYS]
    if unknown:
        raise FraudtuneError(f"{path}: log.{unknown[0]}: unknown key; expected {', '.join(LOG_KEYS)}")
    for key in ("key_env", "key_file", "device", "opened", "opened_format"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise FraudtuneError(f"{path}: log.{key}: expected a name, got {raw[key]!r}")
    counts = {}
    for key in ("warmup_min_history", "warmup_min_days"):
        value = raw.get(key, LogSpec.__dataclass_fields__[key].default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FraudtuneError(f"{path}: log.{key}: expected a whole number >= 0, got {value!r}")
        counts[key] = value
    keep = raw.get("keep_warmup", False)
    if not isinstance(keep, bool):
        raise FraudtuneError(f"{path}: log.keep_warmup: expected true or false, got {keep!r}")
    key_file = raw.get("key_file")
    return LogSpec(
        card=raw["card"].strip(),
        key_env=(raw.get("key_env") or DEFAULT_KEY_ENV).strip(),
        key_file=(path.parent / key_file.strip()) if key_file else None,
        device=(raw.get("device") or "").strip() or None,
        opened=(raw.get("opened") or "").strip() or None,
        opened_format=raw.get("opened_format"),
        keep_warmup=keep,
        **counts,
    )
