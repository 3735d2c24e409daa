"""`fraudtune data validate`: is a chat JSONL file (or a train/val/test folder) fit to train on?

Checks the OpenAI chat format record by record, the SPEC 2 answer, token lengths, exact and near duplicates,
leakage between splits, personal data, the label balance recorded in the .meta.jsonl file beside it, and
(from that metadata) whether a single field or the generic score tells the labels apart without the rules (SPEC 4).
Every finding names file:line and the field; errors make the exit code non-zero, warnings don't.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import DataConfig
from fraudtune.data.chat import parse_answer
from fraudtune.data.chat_format import check_line
from fraudtune.data.findings import FileReport, Issue, Record, ValidationReport
from fraudtune.data.pii import find_pii
from fraudtune.data.pii import scrub as scrub_text
from fraudtune.data.shortcuts import shortcut_problems, shortcut_report
from fraudtune.data.split import DuplicateIndex
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_user_bytes, write_jsonl, write_text_atomic
from fraudtune.profile import Profile, load_profile

PII_NAMES = {"card": "card number", "email": "email address", "phone": "phone number", "ssn": "SSN-like id"}


def validate(
    path: Path,
    scrub: bool = False,
    max_length: int | None = None,
    count_tokens: bool = True,
    profile_path: Path | None = None,
    in_place: bool = False,
) -> ValidationReport:
    """Check a chat JSONL file, or the train/val/test.jsonl files of a folder (plus leakage between them).

    Args:
        path: a chat JSONL file, or a folder holding train/val/test.jsonl.
        scrub: write `<name>.scrubbed.jsonl` with personal data masked; findings then are warnings.
        in_place: with `scrub`, mask the files themselves instead (their .meta.jsonl files and, in a data
            folder, fraud_dataset.jsonl too): what training reads is then the masked data.
        max_length: token limit of one example (default data.max_length).
        count_tokens: count tokens with the base model's tokenizer.
        profile_path: issuer profile whose flag heads the answers use (default data.profile).
    """
    defaults = DataConfig()
    max_length = max_length or defaults.max_length
    profile = load_profile(profile_path or defaults.profile)
    files = _files(Path(path))
    issues: list[Issue] = []
    reports = [_check_file(f, profile, scrub, issues, in_place) for f in files]
    if scrub and in_place and Path(path).is_dir():
        done = set(files) | {paths.meta_file(f) for f in files}  # _check_file masked these and their meta files
        for other in sorted(Path(path).glob("*.jsonl")):
            if other not in done and not other.name.endswith(".scrubbed.jsonl"):
                scrub_file(other)
    if len(reports) > 1:
        _check_leakage(reports, issues)
    if count_tokens:
        _count_tokens(reports, max_length, issues)
    shortcuts = _check_shortcuts(Path(path), reports, profile, issues)
    return ValidationReport(reports, issues, max_length, shortcuts)


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise FraudtuneError(f"{path}: not found; pass a chat JSONL file or a data folder")
    if path.is_file():
        return [path]
    splits = [paths.split_file(path, s) for s in paths.SPLITS if paths.split_file(path, s).exists()]
    found = splits or sorted(p for p in path.glob("*.jsonl") if not p.name.endswith((".meta.jsonl", ".scrubbed.jsonl")))
    if not found:
        raise FraudtuneError(f"{path}: no train/val/test.jsonl or other .jsonl file in this folder")
    return found


def _check_file(path: Path, profile: Profile, scrub: bool, issues: list[Issue], in_place: bool = False) -> FileReport:
    report = FileReport(path)
    raw = read_user_bytes(path, "a JSONL file of chat examples")
    if not raw.strip():
        issues.append(Issue(str(path), 1, "file", "empty; expected one chat example per line"))
        return report
    if b"\x00" in raw[:8192]:
        issues.append(Issue(str(path), 1, "file", "binary data; expected UTF-8 JSON lines"))
        return report
    seen_exact: dict[str, int] = {}
    seen_user: dict[str, int] = {}
    pairs = declared_twins(path)  # record index -> the id of its twin (data.twins), from the meta file
    index_of: dict[int, int] = {}
    scrubbed_lines: list[Any] = []
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        report.lines += 1
        index_of[lineno] = report.lines - 1
        check = check_line(line, profile)
        obj, problems = check.obj, check.errors
        issues += [Issue(str(path), lineno, f, p) for f, p in problems]
        issues += [Issue(str(path), lineno, f, p, error=False) for f, p in check.warnings]
        pii = _pii(obj, line, str(path), lineno, issues, error=not scrub)
        report.pii_found += pii
        scrubbed_lines.append(_scrubbed(obj, line) if scrub else None)
        if problems:
            continue
        record = _record(obj, lineno, profile)
        exact = json.dumps(obj["messages"], sort_keys=True)
        if exact in seen_exact:
            issues.append(Issue(str(path), lineno, "messages", f"exact duplicate of line {seen_exact[exact]}"))
        elif record.user_key in seen_user and not _twins(pairs, index_of[lineno], index_of[seen_user[record.user_key]]):
            issues.append(
                Issue(
                    str(path),
                    lineno,
                    "messages",
                    f"near-duplicate of line {seen_user[record.user_key]} "
                    "(same transaction text once case, spaces and number precision are ignored)",
                    error=False,
                )
            )
        seen_exact.setdefault(exact, lineno)
        seen_user.setdefault(record.user_key, lineno)
        report.records.append(record)
    if scrub:
        report.scrubbed = path if in_place else path.with_name(path.name.removesuffix(".jsonl") + ".scrubbed.jsonl")
        write_jsonl(report.scrubbed, [x for x in scrubbed_lines if x is not None])
        if in_place and paths.meta_file(path).exists():
            scrub_file(paths.meta_file(path))
    _check_meta(report, issues)
    return report


def declared_twins(path: Path) -> dict[int, tuple[str, str | None]]:
    """Record index -> (transaction id, the id of the anchor it is a minimal-pair twin of), from the meta file."""
    meta_path = paths.meta_file(path)
    if not meta_path.exists():
        return {}
    out = {}
    lines = [x for x in meta_path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    for index, text in enumerate(lines):
        try:
            meta = json.loads(text)
        except ValueError:
            continue
        if isinstance(meta, dict):
            out[index] = (str(meta.get("transaction_id")), meta.get("twin_of"))
    return out


def _twins(pairs: dict[int, tuple[str, str | None]], a: int, b: int) -> bool:
    """Whether records a and b are a declared minimal pair (either one the twin of the other)."""
    (id_a, of_a), (id_b, of_b) = pairs.get(a, ("", None)), pairs.get(b, ("", None))
    return bool((of_a and of_a == id_b) or (of_b and of_b == id_a))


def _record(obj: dict, lineno: int, profile: Profile) -> Record:
    messages = obj["messages"]
    user = "\n".join(m["content"] for m in messages if m["role"] == "user")
    return Record(lineno, messages, parse_answer(messages[-1]["content"], profile).label, normalize_text(user))


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def normalize_text(text: str) -> str:
    """Lower case, single spaces, every number to 2 significant digits: near-duplicates compare equal."""
    text = re.sub(r"\s+", " ", text.lower()).strip()
    return _NUMBER.sub(lambda m: f"{float(m.group().replace(',', '')):.2g}", text)


def _pii(obj: Any, line: bytes, path: str, lineno: int, issues: list[Issue], error: bool) -> int:
    texts = _texts(obj, line)
    found = 0
    for where, text in texts:
        for kind, (start, end) in find_pii(text):
            found += 1
            issues.append(
                Issue(
                    path,
                    lineno,
                    where,
                    f"personal data ({PII_NAMES[kind]}) at characters {start}-{end}; "
                    + ("masked in the scrubbed copy" if not error else "rerun with --scrub"),
                    error=error,
                )
            )
    return found


def _texts(obj: Any, line: bytes) -> list[tuple[str, str]]:
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if isinstance(messages, list):
        return [
            (f"messages[{i}].content", m["content"])
            for i, m in enumerate(messages)
            if isinstance(m, dict) and isinstance(m.get("content"), str)
        ]
    return [("record", line.decode("utf-8", errors="replace"))]


def scrub_file(path: Path) -> None:
    """Mask personal data in every string of a JSONL file (meta files: transactions, ids), rewritten atomically;
    a line that is not JSON is masked as text."""
    lines = []
    for line in read_user_bytes(path, "a JSONL file").split(b"\n"):
        if not line.strip():
            continue
        try:
            lines.append(_scrub_values(json.loads(line)))
        except ValueError:
            lines.append(scrub_text(line.decode("utf-8", errors="replace")))
    write_text_atomic(
        path, "".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines)
    )


def _scrub_values(obj: Any) -> Any:
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, dict):
        return {k: _scrub_values(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub_values(v) for v in obj]
    return obj


def _scrubbed(obj: Any, line: bytes) -> Any:
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if isinstance(messages, list):
        return {
            **obj,
            "messages": [
                {**m, "content": scrub_text(m["content"])}
                if isinstance(m, dict) and isinstance(m.get("content"), str)
                else m
                for m in messages
            ],
        }
    try:
        return json.loads(scrub_text(line.decode("utf-8")))
    except ValueError:
        return None  # a line that is not JSON even after masking is left out of the copy


def _check_meta(report: FileReport, issues: list[Issue]) -> None:
    """Label balance per category from the .meta.jsonl beside the file; its labels must match the answers."""
    meta_path = paths.meta_file(report.path)
    if not meta_path.exists():
        report.balance = {"all": Counter(r.label for r in report.records)}
    else:
        lines = [x for x in meta_path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
        if len(lines) != report.lines:
            issues.append(
                Issue(
                    str(meta_path),
                    1,
                    "file",
                    f"{len(lines)} records but {report.path.name} has "
                    f"{report.lines}; the metadata must list the examples in the same order",
                )
            )
            report.balance = {"all": Counter(r.label for r in report.records)}
        else:
            _meta_balance(report, meta_path, lines, issues)
    labels = Counter(r.label for r in report.records if r.label)
    if len(report.records) >= 10 and len(labels) == 1:
        only = next(iter(labels))
        issues.append(
            Issue(
                str(report.path),
                1,
                "label",
                f"every example is {only}; the model never sees the other label",
                error=False,
            )
        )


def _meta_balance(report: FileReport, meta_path: Path, lines: list[str], issues: list[Issue]) -> None:
    records = {r.line: r for r in report.records}
    non_blank = [i for i, x in enumerate(report.path.read_bytes().split(b"\n"), 1) if x.strip()]
    for meta_line, (chat_line, text) in enumerate(zip(non_blank, lines, strict=True), 1):
        try:
            meta = json.loads(text)
        except ValueError:
            issues.append(Issue(str(meta_path), meta_line, "record", "invalid JSON"))
            continue
        if not isinstance(meta, dict) or chat_line not in records:
            continue
        category, label = str(meta.get("category", "?")), meta.get("label")
        if isinstance(meta.get("transaction"), dict):
            report.transactions[chat_line] = meta["transaction"]
            report.labels[chat_line] = str(label)
        report.balance.setdefault(category, Counter())[label] += 1
        answer = records[chat_line].label
        if label != answer:
            issues.append(
                Issue(
                    str(meta_path),
                    meta_line,
                    "label",
                    f"{label} but the answer on {report.path.name}:{chat_line} says {answer}",
                )
            )


def _check_leakage(reports: list[FileReport], issues: list[Issue]) -> None:
    """The same (or nearly the same) transaction in two splits inflates every test metric."""
    first: dict[str, tuple[Path, int]] = {}
    leaked = set()
    for report in reports:
        for record in report.records:
            if record.user_key in first and first[record.user_key][0] != report.path:
                where, line = first[record.user_key]
                issues.append(
                    Issue(
                        str(report.path),
                        record.line,
                        "messages",
                        f"same transaction as {where.name}:{line} (leak between splits)",
                    )
                )
                leaked.add((report.path, record.line))
            first.setdefault(record.user_key, (report.path, record.line))
    seen, origin = DuplicateIndex(), {}
    for report in reports:  # near-duplicate transactions by the metadata: merchant, customer, hour, amount +-1%
        for line, txn in sorted(report.transactions.items()):
            try:
                twin = seen.find(txn)
            except (KeyError, TypeError, ValueError):
                continue
            if twin is not None and origin[id(twin)][0] != report.path and (report.path, line) not in leaked:
                where, other = origin[id(twin)]
                issues.append(
                    Issue(
                        str(report.path),
                        line,
                        "transaction",
                        f"near-duplicate of the transaction on "
                        f"{where.name}:{other} (same merchant, customer, hour; amount within 1%)",
                    )
                )
            elif twin is None:
                seen.add(txn)
                origin[id(txn)] = (report.path, line)


def _check_shortcuts(
    path: Path, reports: list[FileReport], profile: Profile, issues: list[Issue]
) -> dict[str, Any] | None:
    """SPEC 4 over the metadata of all splits together: no field or score range may stand in for the rules.

    A warning, not an error: imported real data may legitimately carry such correlations.
    """
    lines = [(r, line) for r in reports for line in sorted(r.labels)]
    if not lines:
        return None
    report = shortcut_report([r.transactions[i] for r, i in lines], [r.labels[i] for r, i in lines], profile)
    issues += [Issue(str(path), 0, name, problem, error=False) for name, problem in shortcut_problems(report)]
    return report


def _count_tokens(reports: list[FileReport], max_length: int, issues: list[Issue]) -> None:
    from fraudtune.modeling.loading import load_tokenizer

    tokenizer = load_tokenizer()
    for report in reports:
        texts = [tokenizer.apply_chat_template(r.messages, tokenize=False) for r in report.records]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        report.tokens = [len(x) for x in ids]
        for record, n in zip(report.records, report.tokens, strict=True):
            if n > max_length:
                issues.append(
                    Issue(
                        str(report.path),
                        record.line,
                        "messages",
                        f"{n} tokens, over the limit of {max_length}; training cuts the end of the answer",
                        error=False,
                    )
                )
