"""`fraudtune data import-csv`: the issuer's own labelled transactions, turned into the same files as `generate`.

The user's label column is the ground truth. The profile's oracle only explains (red flags, reasoning); when the
two disagree the answer keeps the user's label and says the label comes from the issuer's case review.
"""

from __future__ import annotations

import csv
import io
import logging
import random
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from fraudtune.config import DataConfig
from fraudtune.data.chat import render_assistant, to_messages
from fraudtune.data.csv_mapping import CsvMapping, load_mapping, mapped_fields
from fraudtune.data.generate import classify
from fraudtune.data.imports.sources import PARQUET_MAGIC, open_source
from fraudtune.data.schema import RecordError, validate_transaction
from fraudtune.data.split import Example, counts_by_split, dedupe, split_by_time, split_examples, write_dataset
from fraudtune.dotted import set_dotted, text_fields
from fraudtune.errors import FraudtuneError
from fraudtune.profile import Profile, Verdict, assess, load_profile

log = logging.getLogger(__name__)

IMPORTED = "imported"  # category of a row the profile can't place in a SPEC 4 category, or whose label it disputes


def import_csv(
    csv_path: Path, map_path: Path, out_dir: Path, profile_path: Path, data_cfg: DataConfig | None = None
) -> dict[str, Any]:
    """Read a labelled CSV through a column mapping and write the chat data set (bad rows are listed, not fatal).

    Args:
        csv_path: the user's transactions with a label column.
        map_path: YAML mapping of SPEC fields to CSV columns and label values (configs/csv_mapping.example.yaml).
        out_dir: folder for fraud_dataset.jsonl, train/val/test.jsonl, their .meta.jsonl files and data_card.json.
        profile_path: issuer profile used to explain each label (never to change it).
        data_cfg: seed and train/val fractions (defaults from DataConfig).
    """
    data_cfg = data_cfg or DataConfig()
    csv_path = Path(csv_path)
    mapping = load_mapping(Path(map_path))
    profile = load_profile(profile_path)
    header, rows = _read_csv(csv_path, mapping)
    rng = random.Random(data_cfg.seed)
    examples, errors, ids, pii = [], [], set(), []
    for line, row in rows:
        if len(row) != len(header):
            errors.append(
                str(RecordError(str(csv_path), line, "row", f"{len(row)} fields, the header has {len(header)}"))
            )
            continue
        txn, label, problems = _row_to_transaction(dict(zip(header, row, strict=True)), mapping)
        if not problems and txn["transaction_id"] in ids:
            problems = [("transaction_id", f"duplicate id {txn['transaction_id'][:40]!r}")]
        if not problems:
            problems = personal_data(txn, mapping.pii, line, pii)
        if problems:
            errors += [str(RecordError(str(csv_path), line, f, p)) for f, p in problems]
            continue
        ids.add(txn["transaction_id"])
        examples.append(
            issuer_example(txn, label, profile, rng, {"csv_line": line}, data_cfg.answer_order, data_cfg.score_tally)
        )
    examples, dropped = dedupe(examples)
    summary = {
        "csv": str(csv_path),
        "out_dir": str(out_dir),
        "rows": len(rows),
        "imported": len(examples),
        "skipped": len(rows) - len(examples) - len(dropped),
        "near_duplicates_dropped": len(dropped),
        "personal_data": pii,
    }
    for found in pii:
        log.warning("%s:%d: %s: looks like %s; %s", csv_path, found["line"], found["field"], found["looks_like"],
                    "masked" if mapping.pii == "scrub" else "row refused")  # fmt: skip
    if not examples:
        return {**summary, "files": [], "errors": errors + [f"{csv_path}: no valid rows; nothing written"]}
    if data_cfg.split == "time":
        split_by_time(examples, data_cfg.train_frac, data_cfg.val_frac)
    else:
        split_examples(examples, data_cfg.train_frac, data_cfg.val_frac, data_cfg.seed)
    card = _card(examples, summary, Path(map_path), profile_path, data_cfg)
    files = write_dataset(Path(out_dir), examples, card)
    return {
        **summary,
        "agree_with_profile": card["agree_with_profile"],
        "splits": card["splits"],
        "categories": card["counts"]["all"],
        "files": files,
        "errors": errors,
    }


def personal_data(txn: dict[str, Any], action: str, line: int, found: list[dict]) -> list[tuple[str, str]]:
    """Text values that look like a card number, email, phone or SSN, before anything is written: masked in place
    ([CARD], ...) with mapping pii: scrub, else the row's problems (pii: refuse). Each finding goes to `found`
    (line, field, kinds), never the value itself."""
    from fraudtune.data.pii import find_pii, scrub

    problems = []
    for field, value in text_fields(txn):
        kinds = ", ".join(sorted({kind for kind, _ in find_pii(value)}))
        if not kinds:
            continue
        found.append({"line": line, "field": field, "looks_like": kinds})
        if action == "scrub":
            set_dotted(txn, field, scrub(value))
        else:
            problems.append((field, f"looks like personal data ({kinds}); row refused (pii: refuse)"))
    return problems


def _read_csv(path: Path, mapping: CsvMapping) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) of each non-empty row; file-level problems raise."""
    if not path.exists():
        raise FraudtuneError(f"{path}: CSV file not found")
    if path.is_file() and _magic(path) == PARQUET_MAGIC:
        return _read_parquet(path, mapping)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FraudtuneError(f"{path}: not UTF-8 (byte {exc.start}); save the CSV as UTF-8") from exc
    except OSError as exc:
        raise FraudtuneError(f"{path}: cannot read ({exc.strerror}); expected a CSV file") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    try:
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise FraudtuneError(f"{path}:{reader.line_num}: row: unreadable CSV ({exc})") from exc
    if not any(header):
        raise FraudtuneError(f"{path}: empty file; expected a header row and one transaction per row")
    _check_header(path, header, mapping)
    return header, rows


def _read_parquet(path: Path, mapping: CsvMapping) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A Parquet file as the CSV reader gives it: header, and (row number, cells as text) of every row."""
    source = open_source(path, mapping)
    chunks = source.chunks(list(source.header), chunk_rows=10_000)
    return list(source.header), [(row.line, list(row.cells or ())) for chunk in chunks for row in chunk]


def _magic(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(4)


def _check_header(path: Path, header: list[str], mapping: CsvMapping) -> None:
    if len(header) == 1:
        other = next((d for d in (";", "\t", "|", ",") if d != mapping.delimiter and d in header[0]), None)
        if other:
            raise FraudtuneError(
                f"{path}:1: header: read as one column {header[0][:50]!r}; the file looks "
                f"{other!r}-separated: set delimiter: {other!r} in the mapping"
            )
    missing = [f"{col!r} ({name})" for name, col in mapping.columns.items() if col not in header]
    if mapping.label_column not in header:
        missing.append(f"{mapping.label_column!r} (label)")
    if missing:
        shown = ", ".join(header)[:200]
        shown = shown if shown.isprintable() else repr(shown)[1:-1]  # a header with a line break or NUL in it
        raise FraudtuneError(f"{path}:1: header: missing column(s) {', '.join(missing)}; the file has {shown}")


def _row_to_transaction(
    row: dict[str, str], mapping: CsvMapping
) -> tuple[dict[str, Any], str | None, list[tuple[str, str]]]:
    """SPEC transaction, label and (field, problem) list of one CSV row."""
    txn, problems = mapped_fields(row, mapping)
    label, problem = read_label(row, mapping)
    if problem:
        problems.append(("label", problem))
    if not problems:
        problems = validate_transaction(txn)
    return txn, label, problems


def read_label(row: Mapping[str, Any], mapping: CsvMapping) -> tuple[str | None, str | None]:
    """FRAUD or LEGITIMATE from the label cell, or the problem with it."""
    cell = row[mapping.label_column]
    raw_label = cell.strip() if isinstance(cell, str) else str(cell)
    label = mapping.label_values.get(raw_label)
    if label is None:
        return None, (
            f"value {raw_label[:40]!r} (column {mapping.label_column!r}) is not in the "
            f"mapping's label.values ({', '.join(mapping.label_values)})"
        )
    return label, None


def issuer_example(
    txn: dict[str, Any],
    label: str,
    profile: Profile,
    rng: random.Random,
    source: dict[str, Any],
    order: str = "verdict_first",
    tally: bool = False,
) -> Example:
    """The chat example of one imported transaction: the issuer's label, the profile's explanation; `source`
    (where the row came from) goes into the meta line."""
    verdict = assess(profile, txn)
    agrees = verdict.label == label
    category = (classify(verdict, profile) or IMPORTED) if agrees else IMPORTED
    shown, reasoning = (verdict, None) if agrees else _case_review(verdict, label, profile)
    answer = render_assistant(shown, txn, profile, rng, reasoning=reasoning, order=order, tally=tally)
    kind = profile.rule(verdict.deciding_rule).kind if verdict.deciding_rule and agrees else None
    meta = {
        "transaction_id": txn["transaction_id"],
        "category": category,
        "label": label,
        "risk_score": shown.risk_score,
        "red_flags": verdict.red_flags,
        "generic_score": verdict.generic_score,
        "deciding_rule": verdict.deciding_rule if agrees else None,
        "rule_kind": kind,
        "near_miss": None,
        "label_source": "issuer",
        "oracle_label": verdict.label,
        "oracle_risk_score": verdict.risk_score,
        "agrees_with_profile": agrees,
        **source,
        "transaction": txn,
    }
    return Example(to_messages(txn, profile, answer), meta)


def _case_review(verdict: Verdict, label: str, profile: Profile) -> tuple[Verdict, str]:
    """The answer for a row whose label the profile disputes: the user's label, a score on its side of the
    threshold, and a reasoning that names the case review as the source."""
    heads = ", ".join(profile.rule(c).head.lower() for c in verdict.red_flags)
    threshold = profile.decision_threshold
    if label == "FRAUD":
        score = max(verdict.risk_score, threshold)
        reasoning = (
            f"Confirmed FRAUD by the issuer's case review; the profile's signals ({heads}) score only "
            f"{verdict.risk_score}, so this pattern is not in the rulebook yet."
            if verdict.red_flags
            else "Confirmed FRAUD by the issuer's case review although no profile signal fires; this pattern "
            "is not in the rulebook yet."
        )
    else:
        score = min(verdict.risk_score, threshold - 1)
        reasoning = (
            f"Cleared as LEGITIMATE by the issuer's case review although the profile's signals ({heads}) "
            f"score {verdict.risk_score}."
        )
    return replace(verdict, label=label, risk_score=score, deciding_rule=None), reasoning


def _card(
    examples: list[Example], summary: dict[str, Any], map_path: Path, profile_path: Path, data_cfg: DataConfig
) -> dict[str, Any]:
    metas = [ex.meta for ex in examples]
    return {
        "source": "import-csv",
        "csv": summary["csv"],
        "mapping": str(map_path),
        "n": len(examples),
        "seed": data_cfg.seed,
        "profile": str(profile_path),
        "train_frac": data_cfg.train_frac,
        "val_frac": data_cfg.val_frac,
        "split": data_cfg.split,
        "splits": {s: sum(m["split"] == s for m in metas) for s in ("train", "val", "test")},
        "counts": counts_by_split(examples),
        "agree_with_profile": sum(m["agrees_with_profile"] for m in metas),
        "near_duplicates_dropped": summary["near_duplicates_dropped"],
        "imported_at_rows": summary["rows"],
    }
