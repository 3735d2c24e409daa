"""Number formatting shared by the dashboard and the guides: one style for every figure, "—" when absent."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

DASH = "—"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def num(value: Any, digits: int = 3) -> str:
    """A metric value: ints with thousands separators, floats to `digits` significant places."""
    if not is_number(value):
        return DASH if value is None else str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def pct(value: Any, digits: int = 1) -> str:
    """A share in 0..1 as a percentage."""
    return f"{100 * value:.{digits}f}%" if is_number(value) else DASH


def points(delta: Any, digits: int = 1) -> str:
    """A difference of two shares in percentage points, signed."""
    return f"{100 * delta:+.{digits}f} pts" if is_number(delta) else DASH


def usd(value: Any) -> str:
    if not is_number(value):
        return DASH
    if abs(value) >= 100:
        return f"${value:,.0f}"
    return f"${value:,.4g}" if abs(value) < 1 else f"${value:,.2f}"


def interval(ci: Any, digits: int = 3) -> str:
    """[lo, hi] or "—"."""
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(is_number(x) for x in ci):
        return f"[{num(ci[0], digits)}, {num(ci[1], digits)}]"
    return DASH


def with_ci(value: Any, ci: Any, digits: int = 3) -> str:
    """`0.912 [0.85, 0.96]`, the value alone when there is no interval, "—" when there is no value."""
    if not is_number(value):
        return DASH
    shown = interval(ci, digits)
    return num(value, digits) if shown == DASH else f"{num(value, digits)} {shown}"


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b": leaf}; lists of scalars stay leaves (rendered as text)."""
    if not isinstance(obj, dict):
        return {prefix or "value": obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def leaf(value: Any) -> str:
    """Any JSON leaf as short text."""
    if is_number(value):
        return num(value, 4)
    if isinstance(value, list):
        if len(value) == 2 and all(is_number(x) for x in value):
            return interval(value, 4)
        return ", ".join(leaf(v) for v in value) or DASH
    if value is None:
        return DASH
    return str(value)


def ci_reading(ci: Any, higher_is_better: bool) -> str:
    """'worse' / 'better' when the interval excludes 0, else 'no clear change'."""
    if not (isinstance(ci, list | tuple) and len(ci) == 2 and all(is_number(x) for x in ci)):
        return DASH
    if ci[0] > 0 or ci[1] < 0:
        up = ci[0] > 0
        return "better" if up == bool(higher_is_better) else "worse"
    return "no clear change"


def md_table(header: list[str], rows: list[list[Any]], right_from: int = 1) -> list[str]:
    """A markdown table (cells converted with str; pipes escaped so data cannot break the table)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def provenance(run_dir: Path, meta: dict[str, Any] | None) -> dict[str, str]:
    """The placeholders of a guide's provenance line (docs/templates/): the run, its creation time and git commit."""
    meta = meta or {}
    return {
        "run_dir": str(run_dir),
        "created_at": str(meta.get("created_at", DASH)),
        "git_sha": str(meta.get("git_sha", DASH))[:12],
    }


def block(lines: list[str]) -> str:
    """Lines as one template value, without the trailing blank lines a list of lines may end with."""
    return "\n".join(lines).rstrip()


def splits(counts: Any) -> str:
    """{"train": 96, "val": 12} -> "train 96 / val 12"."""
    if not isinstance(counts, dict):
        return DASH
    return " / ".join(f"{k} {num(v)}" for k, v in counts.items())
