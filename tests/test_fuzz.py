"""Fuzzing the parsers and validators that read user input: 10,000 examples each, no unexpected exception.

Targets: the transaction validator (objects, and parse_lines on raw bytes), the gate behind it (whatever the
validator accepts renders and is assessed without error), the SPEC 2 answer parser and the CSV importer.

Hypothesis costs about a millisecond per drawn list or one_of, and half that per byte string: so most
strategies here are a few random bytes that index tables of tricky values (fields, edge values, answer
fragments, CSV cells). Shrinking still works on the bytes, and each test takes seconds, not minutes.
"""

from __future__ import annotations

import atexit
import copy
import csv
import io
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_oracle import DEMO_PROFILE, REPO, sample_txn

from fraudtune.data.chat import parse_answer, render_user
from fraudtune.data.csv_mapping import load_mapping
from fraudtune.data.importers import _read_csv, _row_to_transaction, issuer_example
from fraudtune.data.schema import RecordError, normalize, parse_lines, validate_transaction
from fraudtune.errors import FraudtuneError
from fraudtune.profile import assess, load_profile

PROFILE = load_profile(DEMO_PROFILE)
FUZZ = settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
# tens of thousands of tiny files: in memory where the OS offers it (opening a file on a VM disk costs ~1 ms)
SCRATCH = Path(tempfile.mkdtemp(prefix="fraudtune-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
GOOD = sample_txn()

# ---------------------------------------------------------------- transactions

# values a field can be replaced with: every JSON type, the edges (huge, tiny, NaN, inf), text that nearly fits
VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    10**400,
    -(10**400),
    0.0,
    -0.0,
    5e-324,
    1e-300,
    1e308,
    float("inf"),
    float("nan"),
    "",
    " ",
    "\n",
    "US",
    "usa",
    "USD",
    "grocery",
    "online",
    "TC-07",
    "2026-04-13T02:30:00",
    "2026-04-13",
    "2026-13-45T00:00:00",
    "M-QX-1",
    "<|im_start|>",
    "\ud800",  # a lone surrogate: valid JSON (as an escape), not encodable as UTF-8
    [],
    ["grocery", "toys"],
    [None],
    {},
    {"id": "x"},
    {"txn_last_1h": 1, "txn_last_24h": 2},
]
FREE = st.text(max_size=6) | st.floats() | st.integers()  # one value drawn freely per example
FIELDS = [
    ("transaction_id",),
    ("timestamp",),
    ("amount",),
    ("currency",),
    ("merchant",),
    ("merchant", "id"),
    ("merchant", "name"),
    ("merchant", "category"),
    ("merchant", "country"),
    ("channel",),
    ("txn_code",),
    ("device_new",),
    ("customer",),
    ("customer", "id"),
    ("customer", "home_country"),
    ("customer", "avg_amount"),
    ("customer", "history_count"),
    ("customer", "account_age_days"),
    ("customer", "usual_categories"),
    ("customer", "travel_notice_country"),
    ("customer", "password_reset_hours_ago"),
    ("velocity",),
    ("velocity", "txn_last_1h"),
    ("velocity", "txn_last_24h"),
    ("extra",),
    ("merchant", "\n"),
]
DELETE, DRAWN = object(), object()
CHOICES = [*VALUES, DELETE, DRAWN]


def mutated(picks: bytes, drawn: object) -> object:
    """The sample transaction with a (field, value) change per pair of bytes: DELETE removes the field, DRAWN
    puts the freely drawn value there. A first byte of 0 gives the value itself instead of a record."""
    if picks[0] == 0:  # not a transaction at all
        return drawn if picks[1] == 0 else VALUES[picks[1] % len(VALUES)]
    txn = copy.deepcopy(GOOD)
    for f, v in zip(picks[::2], picks[1::2], strict=False):
        *parents, leaf = FIELDS[f % len(FIELDS)]
        value = CHOICES[v % len(CHOICES)]
        node = txn
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = drawn if value is DRAWN else copy.deepcopy(value)
    return txn


RECORDS = st.builds(mutated, st.binary(min_size=2, max_size=6), FREE)


@FUZZ
@given(RECORDS)
def test_validator_never_crashes_and_its_gate_holds(obj: object) -> None:
    """validate_transaction returns one-line (field, problem) pairs; a record it accepts renders and is assessed."""
    problems = validate_transaction(obj)
    assert all(isinstance(f, str) and isinstance(p, str) and "\n" not in f + p for f, p in problems)
    if not problems:
        txn = normalize(obj)
        render_user(txn, PROFILE).encode("utf-8")  # the tokenizer needs valid UTF-8
        assess(PROFILE, txn)
        json.dumps(txn, ensure_ascii=False).encode("utf-8")  # predict writes it back


GOOD_LINE = json.dumps(GOOD).encode()
LINES = [  # the kinds of line a real file holds, good and bad, to glue between random bytes
    GOOD_LINE,
    GOOD_LINE[:77],
    GOOD_LINE.replace(b"54.2", b"NaN"),
    GOOD_LINE.replace(b"54.2", b"1" * 400),
    GOOD_LINE.replace(b"T-0001", b"T-\\ud800"),
    GOOD_LINE.replace(b"FreshMart", b"Fr\xe9sh"),
    b"[1, 2]",
    b"{}",
    b"",
    b"\r",
    b"\x00",
    b"\xef\xbb\xbf" + GOOD_LINE,
]


def glued(noise: bytes, picks: bytes) -> bytes:
    """Random bytes with real lines (one per byte of `picks`) put between them, line by line."""
    lines = [LINES[i % len(LINES)] for i in picks]
    return b"\n".join(part for pair in zip([noise, *lines], [*lines, b""], strict=True) for part in pair)


@FUZZ
@given(st.builds(glued, st.binary(max_size=60), st.binary(max_size=4)))
def test_parse_lines_on_random_bytes(raw: bytes) -> None:
    """Random bytes and real lines glued together: FraudtuneError for the file, one RecordError per bad line."""
    path = SCRATCH / "txns.jsonl"
    path.write_bytes(raw)
    try:
        records, errors = parse_lines(path)
    except FraudtuneError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(e, RecordError) and 1 <= e.line <= raw.count(b"\n") + 1 for e in errors)
    assert all("\n" not in str(e) for e in errors)
    assert all(validate_transaction(r) == [] for r in records)


# ---------------------------------------------------------------- the SPEC 2 answer parser

PIECES = [
    "FRAUD",
    "LEGITIMATE",
    "fraud",
    "\n",
    "\r\n",
    " ",
    "\t",
    "Risk Score:",
    "risk score :",
    "-1",
    "0",
    "100",
    "101",
    "99999999999999999999",
    "Red Flags: [",
    "Red Flags:",
    "]",
    "[]",
    "[",
    "(",
    ")",
    ",",
    "High amount",
    "New device (first use)",
    "Manual key entry (TC-07, $1,200.00)",
    "Moon phase",
    "Reasoning:",
    "<|im_end|>",
    "\x00",
    "\u2028",
    "é",
]
TABLE = PIECES + [chr(c) for c in range(32, 127)]  # fragments, then single printable characters
ANSWERS = st.binary(max_size=20).map(lambda picks: "".join(TABLE[i % len(TABLE)] for i in picks))


@FUZZ
@given(ANSWERS)
def test_answer_parser_never_crashes_or_guesses(text: str) -> None:
    parsed = parse_answer(text, PROFILE)
    assert parsed.label in (None, "FRAUD", "LEGITIMATE")
    assert parsed.risk_score is None or 0 <= parsed.risk_score <= 100
    assert set(parsed.red_flags) <= set(PROFILE.codes)
    if parsed.error is None:  # read in full: never a guess
        assert parsed.label is not None and parsed.risk_score is not None and not parsed.unknown_flags
    else:
        assert isinstance(parsed.error, str) and parsed.error


# ---------------------------------------------------------------- the CSV importer

MAPPING = load_mapping(REPO / "configs" / "csv_mapping.example.yaml")
CSV_HEADER, CSV_ROW = (REPO / "tests" / "data" / "transactions.csv").read_text().splitlines()[:2]
HEADER = CSV_HEADER.split(",")
CELLS = [
    "",
    "0",
    "-1",
    "1e999",
    "nan",
    "inf",
    "1,5",
    "Y",
    "maybe",
    "POS",
    "ECOM",
    "US",
    "usa",
    "grocery",
    "toys",
    "2026-03-02 09:15:00",
    "2026-02-30 09:15:00",
    "9" * 400,
    "0.001",
    "grocery|toys",
    "1",
    '"',
    "a\nb",
    "<|im_start|>",
]


@FUZZ
@given(st.binary(max_size=8), st.text(max_size=6), st.binary(max_size=12))
def test_csv_importer_never_crashes(picks: bytes, drawn: str, tail: bytes) -> None:
    """A real CSV row with random cells (a (column, cell) change per pair of bytes; cell index 0 takes the
    drawn text) and random bytes after it, read as `import-csv` reads a file: a one-line FraudtuneError for
    the file, (field, problem) pairs for a row, and an accepted row becomes a training example whose answer
    carries the user's label."""
    row = dict(zip(HEADER, CSV_ROW.split(","), strict=True))
    for c, v in zip(picks[::2], picks[1::2], strict=False):
        row[HEADER[c % len(HEADER)]] = drawn if v == 0 else CELLS[v % len(CELLS)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER, list(row.values())])
    path = SCRATCH / "cases.csv"
    path.write_bytes(buffer.getvalue().encode() + tail)
    try:
        header, rows = _read_csv(path, MAPPING)
    except FraudtuneError as exc:
        assert "\n" not in str(exc)
        return
    for line, cells in rows:
        if len(cells) != len(header):
            continue
        txn, label, problems = _row_to_transaction(dict(zip(header, cells, strict=True)), MAPPING)
        assert all(isinstance(f, str) and isinstance(p, str) for f, p in problems)
        if not problems:
            example = issuer_example(txn, label, PROFILE, random.Random(0), {"csv_line": line})
            assert example.messages[-1]["content"].split("\n", 1)[0] == label
