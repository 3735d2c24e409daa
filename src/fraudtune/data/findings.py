"""What `fraudtune data validate` finds: the findings, the checked records and the per-file and overall reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One finding: where, which field, what is wrong; errors fail the validation, warnings don't."""

    path: str
    line: int
    field: str
    problem: str
    error: bool = True

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path  # line 0: about the data as a whole
        return f"{where}: {self.field}: {self.problem}"


@dataclass
class Record:
    """A line that passed the format checks."""

    line: int
    messages: list[dict[str, str]]
    label: str | None
    user_key: str


@dataclass
class FileReport:
    path: Path
    records: list[Record] = field(default_factory=list)
    lines: int = 0
    tokens: list[int] = field(default_factory=list)
    balance: dict[str, Counter] = field(default_factory=dict)
    pii_found: int = 0
    scrubbed: Path | None = None
    transactions: dict[int, dict[str, Any]] = field(default_factory=dict)  # chat line -> meta transaction
    labels: dict[int, str] = field(default_factory=dict)  # chat line -> meta label, where there is a transaction


@dataclass
class ValidationReport:
    files: list[FileReport]
    issues: list[Issue]
    max_length: int
    shortcuts: dict[str, Any] | None = None  # shortcuts.shortcut_report over the metadata of all files

    @property
    def ok(self) -> bool:
        return not any(i.error for i in self.issues)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.error]
