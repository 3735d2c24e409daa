"""The text `fraudtune data validate` prints: per-file sizes, token lengths, label balance, then the findings."""

from __future__ import annotations

from statistics import mean
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fraudtune.data.validate import FileReport, Issue, ValidationReport

MAX_LISTED = 200  # findings printed per severity; the rest are counted


def render(report: ValidationReport) -> str:
    """Summary table, label balance per category, errors, warnings, verdict."""
    lines = [f"{'file':<28} {'examples':>8} {'tokens min/mean/max':>20} {'over':>5} {'PII':>4}"]
    lines += [_file_row(f, report.max_length) for f in report.files]
    for f in report.files:
        lines += _balance(f)
        if f.scrubbed is not None:
            lines.append(f"{f.path.name}: masked copy written to {f.scrubbed} ({f.pii_found} finding(s) masked)")
    errors = [i for i in report.issues if i.error]
    warnings = [i for i in report.issues if not i.error]
    lines += _listed("errors", errors) + _listed("warnings", warnings)
    verdict = "OK" if not errors else "FAILED"
    lines.append(f"{verdict}: {len(errors)} error(s), {len(warnings)} warning(s)")
    return "\n".join(lines)


def _file_row(f: FileReport, max_length: int) -> str:
    tokens = f"{min(f.tokens)}/{mean(f.tokens):.1f}/{max(f.tokens)}" if f.tokens else "-"
    over = str(sum(n > max_length for n in f.tokens)) if f.tokens else "-"
    return f"{f.path.name:<28} {len(f.records):>8} {tokens:>20} {over:>5} {f.pii_found:>4}"


def _balance(f: FileReport) -> list[str]:
    if not f.balance or not any(f.balance.values()):
        return []
    out = [f"label balance in {f.path.name}:", f"  {'category':<20} {'FRAUD':>6} {'LEGITIMATE':>10} {'fraud %':>8}"]
    for category, counts in sorted(f.balance.items()):
        fraud, legit = counts.get("FRAUD", 0), counts.get("LEGITIMATE", 0)
        share = f"{100 * fraud / (fraud + legit):.0f}%" if fraud + legit else "-"
        out.append(f"  {category:<20} {fraud:>6} {legit:>10} {share:>8}")
    return out


def _listed(title: str, issues: list[Issue]) -> list[str]:
    if not issues:
        return []
    out = [f"{title} ({len(issues)}):"] + [f"  {i}" for i in issues[:MAX_LISTED]]
    if len(issues) > MAX_LISTED:
        out.append(f"  ... and {len(issues) - MAX_LISTED} more")
    return out
