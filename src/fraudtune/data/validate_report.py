"""The text `fraudtune data validate` prints: per-file sizes, token lengths, label balance, then the findings."""

from __future__ import annotations

from statistics import mean
from typing import Any

from fraudtune.data.findings import FileReport, Issue, ValidationReport
from fraudtune.data.shortcuts import MIN_ROWS

MAX_LISTED = 200  # findings printed per severity; the rest are counted


def render(report: ValidationReport) -> str:
    """Summary table, label balance per category, errors, warnings, verdict."""
    lines = [f"{'file':<28} {'examples':>8} {'tokens min/mean/max':>20} {'over':>5} {'PII':>4}"]
    lines += [_file_row(f, report.max_length) for f in report.files]
    for f in report.files:
        lines += _balance(f)
        if f.scrubbed is not None:
            lines.append(f"{f.path.name}: masked copy written to {f.scrubbed} ({f.pii_found} finding(s) masked)")
    if report.shortcuts is not None:
        lines += _shortcuts(report.shortcuts)
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


def _shortcuts(s: dict[str, Any]) -> list[str]:
    """SPEC 4 in two lines: the generic-score spread by label, the most telling single field, the shortcuts."""
    rows = f"{s['n_fraud']} FRAUD / {s['n_legit']} LEGITIMATE rows below the generic threshold"
    if min(s["n_fraud"], s["n_legit"]) < MIN_ROWS:
        return [f"shortcut check: not measured, {rows} (needs {MIN_ROWS} of each)"]
    figures = {
        name: f["without_rule_rows"] if f["rule"] else f["balanced_accuracy"]
        for name, f in s["features"].items()
        if name != "generic_score"
    }
    best = max((n for n in figures if figures[n] is not None), key=lambda n: figures[n], default=None)
    field = ""
    if best is not None:
        without = " without its rules' rows" if s["features"][best]["rule"] else ""
        field = f"; most telling field {best} (balanced accuracy {figures[best]:.2f}{without})"
    found = ", ".join(s["shortcuts"]) or "none"
    g = s["generic_score"]
    spread = " ".join(f"{label} {_spread(g[label])}" for label in ("FRAUD", "LEGITIMATE"))
    return [
        f"shortcut check on {rows}: generic-score AUC {g['auc']:.2f}{field}; shortcuts: {found}",
        f"  generic score (score x rows): {spread}",
    ]


def _spread(counts: dict[int, int]) -> str:
    return "[" + ", ".join(f"{score}x{n}" for score, n in counts.items()) + "]"


def _listed(title: str, issues: list[Issue]) -> list[str]:
    if not issues:
        return []
    out = [f"{title} ({len(issues)}):"] + [f"  {i}" for i in issues[:MAX_LISTED]]
    if len(issues) > MAX_LISTED:
        out.append(f"  ... and {len(issues) - MAX_LISTED} more")
    return out
