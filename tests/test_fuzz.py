"""Fuzzing the parsers and validators that read user input: 10,000 examples each, no unexpected exception.

Targets: the transaction validator (objects, and parse_lines on raw bytes), the gate behind it (whatever the
validator accepts renders and is assessed without error), the SPEC 2 answer parser and the CSV importer.
Strategies are kept simple so each test takes seconds (hypothesis costs per draw).
"""

from __future__ import annotations

import copy
import json
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_oracle import DEMO_PROFILE, REPO, sample_txn

from fraudtune.data.chat import parse_answer, render_user
from fraudtune.data.csv_mapping import load_mapping
from fraudtune.data.importers import _example, _read_csv, _row_to_transaction
from fraudtune.data.schema import RecordError, normalize, parse_lines, validate_transaction
from fraudtune.errors import FraudtuneError
from fraudtune.profile import assess, load_profile

PROFILE = load_profile(DEMO_PROFILE)
FUZZ = settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
SCRATCH = Path(tempfile.mkdtemp(prefix="fraudtune-fuzz-"))
GOOD = sample_txn()

# ---------------------------------------------------------------- transactions

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 1, 2**63, 10**400, -(10**400)]),
    st.floats(),
    st.sampled_from([0.0, -0.0, 5e-324, 1e308, float("inf"), float("nan")]),
    st.text(max_size=12),
    st.sampled_from(["", " ", "US", "USD", "grocery", "online", "TC-07", "2026-04-13T02:30:00", "M-QX-1"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
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
    ("customer", "avg_amount"),
    ("customer", "history_count"),
    ("customer", "account_age_days"),
    ("customer", "usual_categories"),
    ("customer", "travel_notice_country"),
    ("customer", "password_reset_hours_ago"),
    ("velocity",),
    ("velocity", "txn_last_1h"),
    ("extra",),
]


@st.composite
def mutated_transactions(draw: st.DrawFn) -> object:
    """The sample transaction with 1-3 fields replaced by any JSON value or deleted; sometimes any JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    txn = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        *parents, leaf = draw(st.sampled_from(FIELDS))
        node = txn
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if draw(st.booleans()) and leaf in node:
            del node[leaf]
        else:
            node[leaf] = draw(JSON)
    return txn


@FUZZ
@given(mutated_transactions())
def test_validator_never_crashes_and_its_gate_holds(obj: object) -> None:
    """validate_transaction returns (field, problem) pairs; a record it accepts renders and is assessed."""
    problems = validate_transaction(obj)
    assert all(isinstance(f, str) and isinstance(p, str) and "\n" not in f + p for f, p in problems)
    if not problems:
        txn = normalize(obj)
        render_user(txn, PROFILE)
        assess(PROFILE, txn)


@FUZZ
@given(st.binary(max_size=300) | st.lists(mutated_transactions(), max_size=3).map(lambda rows: _jsonl(rows)))
def test_parse_lines_on_random_bytes(raw: bytes) -> None:
    """Random bytes (or lines of mutated transactions): FraudtuneError for the file, RecordError per line."""
    path = SCRATCH / "txns.jsonl"
    path.write_bytes(raw)
    try:
        records, errors = parse_lines(path)
    except FraudtuneError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(e, RecordError) and e.line >= 1 for e in errors)
    assert all(validate_transaction(r) == [] for r in records)


def _jsonl(rows: list[object]) -> bytes:
    return b"\n".join(json.dumps(r, allow_nan=True).encode() for r in rows)


# ---------------------------------------------------------------- the SPEC 2 answer parser

PIECES = st.sampled_from(
    [
        "FRAUD",
        "LEGITIMATE",
        "fraud",
        "\n",
        "\r\n",
        " ",
        "Risk Score:",
        "risk score :",
        "-1",
        "100",
        "101",
        "99999999999999999999",
        "Red Flags: [",
        "]",
        "[]",
        "(",
        ")",
        ",",
        "High amount",
        "New device (first use)",
        "Manual key entry (TC-07, $1,200.00)",
        "Reasoning:",
        "<|im_end|>",
    ]
)
ANSWERS = st.lists(PIECES | st.text(max_size=6), max_size=14).map("".join)


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
CELLS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "0", "-1", "1e999", "nan", "inf", "1,5", "Y", "N", "POS", "ECOM", "US", "NG", "grocery"]),
    st.sampled_from(["2026-03-02 09:15:00", "2026-02-30 09:15:00", "9" * 400, "0.001", "1|2", "1", "0"]),
)


@FUZZ
@given(st.dictionaries(st.sampled_from(HEADER), CELLS, max_size=5))
def test_csv_row_never_crashes(changes: dict[str, str]) -> None:
    """A real row with random cells: problems are listed; an accepted row becomes a training example."""
    row = {**dict(zip(HEADER, CSV_ROW.split(","), strict=True)), **changes}
    txn, label, problems = _row_to_transaction(row, MAPPING)
    assert all(isinstance(f, str) and isinstance(p, str) for f, p in problems)
    if not problems:
        example = _example(txn, label, PROFILE, random.Random(0), 2)
        assert example.messages[-1]["content"].split("\n", 1)[0] == label


@FUZZ
@given(st.binary(max_size=200) | st.text(alphabet=',;"\n\r\tab1|', max_size=80).map(str.encode))
def test_csv_file_never_crashes(raw: bytes) -> None:
    """Random bytes as the CSV file: a FraudtuneError for the file, or a header and rows."""
    path = SCRATCH / "cases.csv"
    path.write_bytes(raw)
    try:
        header, rows = _read_csv(path, MAPPING)
    except FraudtuneError as exc:
        assert "\n" not in str(exc)
        return
    assert header and all(isinstance(line, int) for line, _ in rows)
