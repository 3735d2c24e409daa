"""`fraudtune data import` of a raw card-transaction log: point-in-time features, tokens, no personal data out,
streaming, time split, leakage check, rejected rows."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import random
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_oracle import REPO, read_jsonl

from fraudtune.cli import main
from fraudtune.config import DataConfig
from fraudtune.data.imports.history import History
from fraudtune.data.imports.run import import_data
from fraudtune.data.imports.sources import RawRow
from fraudtune.data.imports.timesort import external_sort
from fraudtune.data.pii import luhn_ok
from fraudtune.data.schema import CATEGORIES
from fraudtune.data.synth_log import COLUMNS, synth_log
from fraudtune.data.validate import validate

MAP = REPO / "configs" / "cardlog_mapping.example.yaml"
KEY = "test-token-key-0123456789abcdef"
DATA_FILES = {
    f"{name}{ext}" for name in ("fraud_dataset", "train", "val", "test") for ext in (".jsonl", ".meta.jsonl")
} | {"data_card.json", "import_report.json", "rejected_rows.jsonl", "warmup.meta.jsonl"}


def _key_file(folder: Path, key: str = KEY) -> Path:
    path = folder / "token.key"
    path.write_text(key + "\n")
    return path


def _import(log: Path, out: Path, key_file: Path, mapping: Path = MAP, **cfg) -> dict:
    return import_data(log, mapping, out, DataConfig().profile, DataConfig(**cfg), key_file=key_file)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["data", "import", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _mapping(tmp_path: Path, **changes) -> Path:
    """The example mapping with `section/key` changes (None deletes)."""
    mapping = yaml.safe_load(MAP.read_text())
    for key, value in changes.items():
        *parents, leaf = key.split("/")
        node = mapping
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _metas(out: Path) -> dict[str, dict]:
    return {m["transaction_id"]: m for m in read_jsonl(out / "fraud_dataset.meta.jsonl")}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, Path]:
    """A clean synthetic log of 6,000 rows as CSV and as Parquet, each imported with a split by time."""
    root = tmp_path_factory.mktemp("clean")
    key_file = _key_file(tmp_path_factory.mktemp("secret"))
    paths = {"csv": root / "log.csv", "parquet": root / "log.parquet", "key": key_file}
    synth_log(paths["csv"], 6000, seed=11)
    synth_log(paths["parquet"], 6000, seed=11)
    for kind in ("csv", "parquet"):
        paths[f"{kind}_out"] = root / f"out-{kind}"
        paths[f"{kind}_summary"] = _import(paths[kind], paths[f"{kind}_out"], key_file, split="time")
    return paths


def test_synth_log_is_seeded_and_has_the_public_shape(tmp_path) -> None:
    a, b, c = (synth_log(tmp_path / name, 3000, seed) for name, seed in (("a.csv", 5), ("b.csv", 5), ("c.csv", 6)))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    rows = _rows(tmp_path / "a.csv")
    assert tuple(rows[0]) == COLUMNS and len(rows) == 3000 == a["rows"]
    assert all(luhn_ok(r["cc_num"]) and len(r["cc_num"]) == 16 for r in rows)
    assert [r["trans_date_trans_time"] for r in rows] == sorted(r["trans_date_trans_time"] for r in rows)
    assert 0.002 < sum(r["is_fraud"] == "1" for r in rows) / len(rows) < 0.03
    assert all(r["first"] and r["last"] and r["street"] and r["dob"] for r in rows)


def test_synth_log_parquet_holds_every_row_in_several_row_groups(tmp_path, monkeypatch) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setattr("fraudtune.data.synth_log.PARQUET_BATCH_ROWS", 400)
    summary = synth_log(tmp_path / "log.parquet", 1000, seed=5)
    synth_log(tmp_path / "log.csv", 1000, seed=5)
    table = pq.read_table(tmp_path / "log.parquet")
    assert pq.ParquetFile(tmp_path / "log.parquet").metadata.num_row_groups == 3
    assert summary["rows"] == table.num_rows == 1000 == len(_rows(tmp_path / "log.csv"))
    assert table.column("trans_num").to_pylist() == [r["trans_num"] for r in _rows(tmp_path / "log.csv")]


def test_log_import_writes_the_data_set_and_reports_every_dropped_column(clean) -> None:
    out, summary = clean["csv_out"], clean["csv_summary"]
    assert {p.name for p in out.iterdir()} == DATA_FILES
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "the work folder is removed"
    assert summary["rows"] == 6000 and summary["errors"] == []
    assert summary["rows"] == (
        summary["imported"] + summary["warmup_excluded"] + summary["near_duplicates_dropped"] + summary["rejected_rows"]
    )
    assert validate(out, count_tokens=False).ok
    report = json.loads((out / "import_report.json").read_text())
    dropped = {d["column"]: d["reason"] for d in report["columns"]["dropped"]}
    assert dropped == {
        "first": "personal (name)",
        "last": "personal (name)",
        "gender": "personal (gender)",
        "street": "personal (address)",
        "city": "personal (address)",
        "state": "personal (address)",
        "zip": "personal (address)",
        "lat": "personal (location)",
        "long": "personal (location)",
        "city_pop": "personal (address)",
        "job": "personal (job)",
        "dob": "personal (birth date)",
        "unix_time": "unmapped",
        "merch_lat": "personal (location)",
        "merch_long": "personal (location)",
    }
    assert list(report["columns"]["tokenised"]) == ["cc_num"]
    assert report["warmup"]["rows"] == summary["warmup_excluded"] == len(read_jsonl(out / "warmup.meta.jsonl"))
    assert all(m["warmup"] for m in read_jsonl(out / "warmup.meta.jsonl"))
    assert not any(m["warmup"] for m in _metas(out).values())


def test_no_personal_value_reaches_any_file_the_import_writes(clean) -> None:
    rows = _rows(clean["csv"])
    exact = {r[c].encode() for r in rows for c in ("cc_num", "street", "dob")}
    words = {r[c] for r in rows for c in ("first", "last")}
    name_pattern = re.compile(rb"\b(" + b"|".join(w.encode() for w in sorted(words)) + rb")\b")
    for out in (clean["csv_out"], clean["parquet_out"]):
        for path in out.iterdir():
            data = path.read_bytes()
            assert not [v for v in exact if v in data], path.name
            assert not name_pattern.search(data), (path.name, name_pattern.search(data))


def test_parquet_and_csv_give_the_same_output(clean) -> None:
    csv_out, pq_out = clean["csv_out"], clean["parquet_out"]
    for name in sorted(DATA_FILES - {"data_card.json", "import_report.json"}):
        assert (csv_out / name).read_bytes() == (pq_out / name).read_bytes(), name
    for name in ("data_card.json", "import_report.json"):
        a, b = (json.loads((d / name).read_text()) for d in (csv_out, pq_out))
        for key in ("file", "format", "out_dir"):
            a.pop(key, None), b.pop(key, None)
        assert a == b, name


def test_time_split_trains_on_the_past_and_validates_on_the_future(clean) -> None:
    out = clean["csv_out"]
    times = {
        s: [m["transaction"]["timestamp"] for m in read_jsonl(out / f"{s}.meta.jsonl")]
        for s in ("train", "val", "test")
    }
    assert max(times["train"]) <= min(times["val"]) and max(times["val"]) <= min(times["test"])
    n = sum(len(t) for t in times.values())
    assert (len(times["train"]), len(times["val"])) == (round(n * 0.8), round(n * 0.1))
    ranges = json.loads((out / "import_report.json").read_text())["split"]["time_ranges"]
    assert ranges["train"][0] == min(times["train"]) and ranges["test"][1] == max(times["test"])


def test_negative_subsampling_keeps_every_fraud_and_that_many_negatives_per_split(clean, tmp_path) -> None:
    """data.legit_per_fraud (train, val) and data.test_legit_per_fraud: every FRAUD row stays, round(ratio x frauds)
    LEGITIMATE rows are drawn from the same split, and the report keeps each split's natural fraud rate."""
    whole = {s: read_jsonl(clean["csv_out"] / f"{s}.meta.jsonl") for s in ("train", "val", "test")}
    out = tmp_path / "sub"
    _import(clean["csv"], out, clean["key"], split="time", legit_per_fraud=2, test_legit_per_fraud=5)
    report = json.loads((out / "import_report.json").read_text())["subsampled"]
    for split, ratio in (("train", 2), ("val", 2), ("test", 5)):
        before, after = whole[split], read_jsonl(out / f"{split}.meta.jsonl")
        ids = {m["transaction_id"] for m in before}
        frauds = [m["transaction_id"] for m in before if m["label"] == "FRAUD"]
        assert frauds and [m["transaction_id"] for m in after if m["label"] == "FRAUD"] == frauds
        legit = [m for m in after if m["label"] == "LEGITIMATE"]
        assert len(legit) == min(round(ratio * len(frauds)), len(before) - len(frauds))
        assert {m["transaction_id"] for m in after} <= ids  # the same rows, in the same split, fewer of them
        assert report[split]["natural_fraud_rate"] == round(len(frauds) / len(before), 6)
        assert report[split]["legitimate_kept"] == len(legit) and report[split]["fraud"] == len(frauds)
    assert json.loads((out / "data_card.json").read_text())["subsampled"] == report
    assert validate(out / "train.jsonl", count_tokens=False).ok


def test_leakage_check_is_quiet_on_a_clean_log(clean) -> None:
    leakage = json.loads((clean["csv_out"] / "import_report.json").read_text())["leakage"]
    assert (leakage["warnings"], leakage["skipped"]) == ([], None)


def _plant_category(rows: list[dict]) -> None:
    """travel is the one code the mapping turns into SPEC's travel: every fraud row there, no other row."""
    for r in rows:
        if r["is_fraud"] == "1":
            r["category"] = "travel"
        elif r["category"] == "travel":
            r["category"] = "home"


def _plant_amount(rows: list[dict]) -> None:
    for r in rows:
        if r["is_fraud"] == "1":
            r["amt"] = f"{float(r['amt']) + 20000:.2f}"


def _plant_day(rows: list[dict]) -> None:
    """Every negative from one day (the export sampled legitimate rows from a single day)."""
    for r in rows:
        if r["is_fraud"] == "0":
            r["trans_date_trans_time"] = "2025-03-01" + r["trans_date_trans_time"][10:]


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (
            _plant_category,
            "merchant.category separates the labels almost perfectly (AUC 1.000 from its per-value fraud rate): "
            "'travel': ",
        ),
        (_plant_amount, "amount separates the labels almost perfectly (single-feature AUC 1.000): FRAUD rows have"),
        (_plant_day, "day separates the labels almost perfectly"),
    ],
    ids=["one category always fraud", "amount threshold", "negatives from one day"],
)
def test_leakage_check_fires_on_a_planted_leak(clean, tmp_path, capsys, plant, expected: str) -> None:
    rows = _rows(clean["csv"])
    plant(rows)
    log = _write_rows(tmp_path / "leaky.csv", rows)
    args = [str(log), "--map", str(MAP), "--out", str(tmp_path / "out"), "--key-file", str(clean["key"])]
    code, out, err = _cli(capsys, *args, "--keep-warmup")
    assert code == 0
    warnings = json.loads(out)["leakage_warnings"]
    assert any(w.startswith(expected) for w in warnings), warnings
    if plant is _plant_category:  # the value that gives the leak away is named first
        fraud_rows = sum(m["label"] == "FRAUD" for m in read_jsonl(tmp_path / "out" / "fraud_dataset.meta.jsonl"))
        assert f"{expected}{fraud_rows} rows, all FRAUD;" in warnings[0]
    assert f"warning: possible leakage: {expected}" in err
    report = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert [w["message"] for w in report["leakage"]["warnings"]] == warnings


def _hand_log(tmp_path: Path, rows: list[tuple[str, str, float, str]], name: str = "hand.csv") -> Path:
    """A log of (time, card, amount, category) rows with fake personal columns, in the given file order."""
    out = []
    for i, (when, card, amount, category) in enumerate(rows):
        out.append(
            dict.fromkeys(COLUMNS, "x")
            | {
                "trans_date_trans_time": when,
                "cc_num": card,
                "merchant": f"Shop {i}",
                "category": category,
                "amt": f"{amount:.2f}",
                "first": "Priscilla",
                "last": "Abernathy",
                "street": "7432 Hawthorne Ave",
                "dob": "1966-08-04",
                "trans_num": f"t{i:04d}",
                "is_fraud": "0",
            }
        )
    return _write_rows(tmp_path / name, out)


CARD_A, CARD_B = "4111111111111111", "5500005555555559"


def test_velocity_windows_are_exact_at_the_boundaries(tmp_path) -> None:
    """1 h and 24 h windows count earlier rows less than 1 h / 24 h before; a row at the same second counts when it
    is earlier in the file. The file is out of time order, so the import sorts it first."""
    rows = [
        ("2025-05-02 10:00:00", CARD_A, 60.0, "grocery_pos"),  # r7: 24 h after r1
        ("2025-05-01 10:00:00", CARD_A, 10.0, "grocery_pos"),  # r1
        ("2025-05-01 10:30:00", CARD_A, 20.0, "gas_transport"),  # r2
        ("2025-05-01 10:59:59", CARD_A, 30.0, "grocery_pos"),  # r3: 1 s short of an hour after r1
        ("2025-05-01 11:00:00", CARD_A, 40.0, "travel"),  # r4: exactly 1 h after r1
        ("2025-05-01 11:00:00", CARD_A, 50.0, "travel"),  # r5: same second as r4, later in the file
        ("2025-05-01 11:00:00", CARD_B, 50.0, "travel"),  # another card: never counted for A
        ("2025-05-02 09:59:59", CARD_A, 70.0, "home"),  # r6: 1 s short of 24 h after r1
    ]
    log = _hand_log(tmp_path, rows)
    summary = _import(log, tmp_path / "out", _key_file(tmp_path), _mapping(tmp_path, **{"log/keep_warmup": True}))
    report = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert summary["errors"] == [] and report["time_order"].startswith("sorted by time")
    got = {
        m["transaction"]["amount"]: (
            m["transaction"]["velocity"]["txn_last_1h"],
            m["transaction"]["velocity"]["txn_last_24h"],
            m["transaction"]["customer"]["history_count"],
        )
        for m in read_jsonl(tmp_path / "out" / "fraud_dataset.meta.jsonl")
        if m["transaction"]["customer"]["id"] == _token(CARD_A)
    }
    # by hand: (earlier rows < 1 h before, earlier rows < 24 h before, earlier rows)
    assert got == {
        10.0: (0, 0, 0),
        20.0: (1, 1, 1),
        30.0: (2, 2, 2),
        40.0: (2, 3, 3),
        50.0: (3, 4, 4),
        70.0: (0, 5, 5),
        60.0: (1, 5, 6),
    }


def _token(card: str, key: str = KEY) -> str:
    """Computed here, independently of fraudtune: HMAC-SHA256 of the digits, first 20 hex digits."""
    return "K-" + hmac.new(key.encode(), card.encode(), hashlib.sha256).hexdigest()[:20]


def test_features_never_use_a_later_row(tmp_path) -> None:
    """Change one row in the middle of a log: every transaction before it keeps the same features."""
    log = tmp_path / "log.csv"
    synth_log(log, 800, seed=3)
    mapping = _mapping(tmp_path, **{"log/keep_warmup": True})
    key_file = _key_file(tmp_path)
    assert _import(log, tmp_path / "a", key_file, mapping)["errors"] == []
    before = _metas(tmp_path / "a")
    rows = _rows(log)
    k = 400
    changed_card = rows[k]["cc_num"]
    rows[k] |= {"amt": "9999.99", "category": "travel", "merchant": "Harborview Tours"}
    _import(_write_rows(tmp_path / "changed.csv", rows), tmp_path / "b", key_file, mapping)
    after = _metas(tmp_path / "b")
    earlier = {r["trans_num"] for r in rows[:k]}
    later_same_card = {r["trans_num"] for r in rows[k + 1 :] if r["cc_num"] == changed_card}
    assert earlier and later_same_card
    assert all(after[i]["transaction"] == before[i]["transaction"] for i in earlier if i in before)
    assert len(earlier & before.keys()) > 300
    assert any(
        after[i]["transaction"] != before[i]["transaction"] for i in later_same_card if i in before and i in after
    )


EVENTS = st.lists(
    st.tuples(
        st.sampled_from("abc"),
        st.sampled_from([0, 1, 1799, 1800, 3599, 3600, 3601, 40000, 86399, 86400, 86401]),
        st.integers(1, 500),
        st.sampled_from(CATEGORIES[:4]),
        st.sampled_from(["m1", "m2", "m3"]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_history_equals_a_recount_of_the_earlier_rows(events) -> None:
    """Every feature equals a brute-force count over the same card's earlier rows (ties: file order)."""
    history, seen, t = History(), [], 1_700_000_000.0
    for card, gap, amount, category, merchant in events:
        t += gap
        past = [e for e in seen if e[0] == card]
        got = history.features(card, t, merchant, None)
        assert got.history_count == len(past)
        assert got.avg_amount == (round(sum(e[2] for e in past) / len(past), 2) if past else 0.0)
        assert got.txn_last_1h == sum(t - e[1] < 3600 for e in past)
        assert got.txn_last_24h == sum(t - e[1] < 86400 for e in past)
        assert got.usual_categories == [c for c in CATEGORIES if any(e[3] == c for e in past)]
        assert got.merchant_new == all(e[4] != merchant for e in past)
        assert got.observed_days == (int((t - past[0][1]) // 86400) if past else 0)
        history.add(card, t, amount, category, merchant, None)
        seen.append((card, t, amount, category, merchant))


def test_warmup_rows_are_marked_and_left_out_unless_kept(tmp_path, capsys) -> None:
    """The example mapping: fewer than 5 earlier rows of the card, or less than 30 days since its first row."""
    days = [0, 1, 2, 3, 4, 5, 29, 31, 40]  # rows 1-7 are warm-up: the 6th has 5 earlier rows but only 5 days
    when = [f"2025-01-{1 + d:02d}" if d < 31 else f"2025-02-{d - 30:02d}" for d in days]
    log = _hand_log(
        tmp_path, [(f"{w} 12:00:00", CARD_A, 10.0 + d, "grocery_pos") for w, d in zip(when, days, strict=True)]
    )
    key_file = _key_file(tmp_path)
    code, out, _ = _cli(
        capsys, str(log), "--map", str(MAP), "--out", str(tmp_path / "out"), "--key-file", str(key_file)
    )
    summary = json.loads(out)
    assert code == 0 and (summary["imported"], summary["warmup_rows"], summary["warmup_excluded"]) == (2, 7, 7)
    assert summary["dropped_columns"]["first"] == "personal (name)"
    warm = read_jsonl(tmp_path / "out" / "warmup.meta.jsonl")
    assert [m["transaction"]["amount"] for m in warm] == [10.0 + d for d in days[:7]]
    assert [m["history_count"] for m in warm] == list(range(7))
    args = ["--map", str(MAP), "--out", str(tmp_path / "kept"), "--key-file", str(key_file), "--keep-warmup"]
    assert _cli(capsys, str(log), *args)[0] == 0
    metas = read_jsonl(tmp_path / "kept" / "fraud_dataset.meta.jsonl")
    assert [m["warmup"] for m in metas] == [True] * 7 + [False] * 2
    assert read_jsonl(tmp_path / "kept" / "warmup.meta.jsonl") == []


def test_a_card_column_needs_a_key(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("FRAUDTUNE_TOKEN_KEY", raising=False)
    log = _hand_log(tmp_path, [("2025-01-01 12:00:00", CARD_A, 10.0, "home")])
    code, _, err = _cli(capsys, str(log), "--map", str(MAP), "--out", str(tmp_path / "out"))
    assert code == 1
    assert err == (
        f"error: {MAP}: log.card: the card column is turned into keyed tokens and no key was given; set the "
        "environment variable FRAUDTUNE_TOKEN_KEY (e.g. export FRAUDTUNE_TOKEN_KEY=$(openssl rand -hex 32)) or pass "
        "--key-file PATH\n"
    )
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("FRAUDTUNE_TOKEN_KEY", "short")
    code, _, err = _cli(capsys, str(log), "--map", str(MAP), "--out", str(tmp_path / "out"))
    assert code == 1 and "has 5 bytes; use at least 16 random bytes" in err
    (tmp_path / "out2").mkdir()
    inside = _key_file(tmp_path / "out2")
    code, _, err = _cli(capsys, str(log), "--map", str(MAP), "--out", str(tmp_path / "out2"), "--key-file", str(inside))
    assert code == 1 and err.startswith(f"error: {inside}: the token key file is inside the output folder")


def test_tokens_are_keyed_stable_and_irreversible(tmp_path, capsys, monkeypatch) -> None:
    rows = [(f"2025-01-{d:02d} 12:00:00", card, 10.0 + d, "home") for d in range(1, 9) for card in (CARD_A, CARD_B)]
    log = _hand_log(tmp_path, rows)
    mapping = _mapping(tmp_path, **{"log/keep_warmup": True})

    def ids(out: str, key: str) -> list[str]:
        monkeypatch.setenv("FRAUDTUNE_TOKEN_KEY", key)
        assert _cli(capsys, str(log), "--map", str(mapping), "--out", str(tmp_path / out))[0] == 0
        return [m["transaction"]["customer"]["id"] for m in read_jsonl(tmp_path / out / "fraud_dataset.meta.jsonl")]

    first, again, other = ids("a", KEY), ids("b", KEY), ids("c", KEY + "x")
    assert first == again and set(first) == {_token(CARD_A), _token(CARD_B)}
    assert set(other).isdisjoint(first) and len(set(other)) == 2
    card = json.loads((tmp_path / "a" / "data_card.json").read_text())
    assert card["token_key_id"] == json.loads((tmp_path / "b" / "data_card.json").read_text())["token_key_id"]
    assert KEY not in "".join(p.read_text() for p in (tmp_path / "a").iterdir())


def test_rejected_rows_are_reported_with_line_and_field_and_good_rows_kept(tmp_path, capsys) -> None:
    log = tmp_path / "log.csv"
    synth_log(log, 200, seed=4)
    lines = log.read_text().splitlines()
    row = {i: dict(zip(COLUMNS, next(csv.reader([lines[i - 1]])), strict=True)) for i in (2, 3, 5, 7, 9, 11, 15)}
    edits = {
        3: {"amt": "lots"},
        5: {"category": "toys"},
        7: {"is_fraud": "maybe"},
        9: {"trans_date_trans_time": "yesterday"},
        11: {"cc_num": ""},
        15: {"trans_num": row[2]["trans_num"]},
    }
    for line, change in edits.items():
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(list((row[line] | change).values()))
        lines[line - 1] = buffer.getvalue()
    lines[12] += ",extra"  # line 13
    log.write_text("\n".join(lines) + "\n")
    key_file = _key_file(tmp_path)
    args = [str(log), "--map", str(MAP), "--out", str(tmp_path / "out"), "--key-file", str(key_file), "--keep-warmup"]
    code, out, err = _cli(capsys, *args)
    assert code == 1
    categories = ", ".join(CATEGORIES)
    assert err.splitlines() == [
        f"{log}:3: amount: not a number: 'lots' (column 'amt')",
        f"{log}:5: channel: unknown value 'toys'; expected one of in_person, online, recurring, atm",
        f"{log}:5: merchant.category: unknown value 'toys'; expected one of {categories}",
        f"{log}:7: label: value 'maybe' (column 'is_fraud') is not in the mapping's label.values (1, 0)",
        f"{log}:9: timestamp: not a date-time in the format %Y-%m-%d %H:%M:%S: 'yesterday' "
        "(column 'trans_date_trans_time')",
        f"{log}:11: log.card: missing value (column 'cc_num')",
        f"{log}:13: row: 23 fields, the header has 22",
        f"{log}:15: transaction_id: duplicate id {row[2]['trans_num']!r}",
    ]
    rejected = read_jsonl(tmp_path / "out" / "rejected_rows.jsonl")
    assert [(r["line"], r["field"]) for r in rejected] == [
        (3, "amount"),
        (5, "channel"),
        (5, "merchant.category"),
        (7, "label"),
        (9, "timestamp"),
        (11, "log.card"),
        (13, "row"),
        (15, "transaction_id"),
    ]
    summary = json.loads(out)
    assert summary["rejected_rows"] == 7 and summary["imported"] + summary["near_duplicates_dropped"] == 193


def test_an_unsorted_log_gives_the_same_data_set(tmp_path, monkeypatch) -> None:
    """Shuffled rows are put back in time order by an external sort (runs of 200 rows on disk, then merged); the
    rows it writes to disk carry card tokens, never card numbers."""
    log = tmp_path / "log.csv"
    synth_log(log, 1500, seed=8)
    rows = _rows(log)
    random.Random(0).shuffle(rows)
    shuffled = _write_rows(tmp_path / "shuffled.csv", rows)
    mapping, key_file = _mapping(tmp_path, **{"log/keep_warmup": True}), _key_file(tmp_path)
    _import(log, tmp_path / "a", key_file, mapping, split="time", chunk_rows=200)
    sorted_cells = []

    def spy(chunks, time_of, tmp_dir):
        def seen():
            for chunk in chunks:
                sorted_cells.extend(cell for row in chunk for cell in row.cells or ())
                yield chunk

        return external_sort(seen(), time_of, tmp_dir)

    monkeypatch.setattr("fraudtune.data.imports.log.external_sort", spy)
    _import(shuffled, tmp_path / "b", key_file, mapping, split="time", chunk_rows=200)
    assert len(sorted_cells) > 1500 * 5 and not {r["cc_num"] for r in rows} & set(sorted_cells)
    a, b = _metas(tmp_path / "a"), _metas(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 1400
    assert all((a[i]["transaction"], a[i]["split"]) == (b[i]["transaction"], b[i]["split"]) for i in a)
    report = json.loads((tmp_path / "b" / "import_report.json").read_text())
    assert report["time_order"] == "sorted by time with an external merge sort (runs of 200 rows on disk)"
    assert json.loads((tmp_path / "a" / "import_report.json").read_text())["time_order"] == "in time order already"


def test_external_sort_holds_one_chunk_at_a_time(tmp_path) -> None:
    """50,000 rows in runs of 2,500: peak memory stays near one run, far below the rows themselves."""
    n, rng = 50_000, random.Random(1)
    times = [rng.randrange(0, 10_000) for _ in range(n)]

    def chunks():
        for start in range(0, n, 2500):
            yield [RawRow(i + 1, i + 1, (str(times[i]), f"merchant-{i}", "x" * 40)) for i in range(start, start + 2500)]

    tracemalloc.start()
    merged = external_sort(chunks(), lambda row: datetime.fromtimestamp(int(row.cells[0]), UTC), tmp_path)
    previous, count = (-1.0, 0), 0
    for seconds, row in merged:
        assert (seconds, row.number) > previous
        previous, count = (seconds, row.number), count + 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == n and not list(tmp_path.iterdir())
    assert peak < 6e6, f"peak {peak / 1e6:.1f} MB: the sort holds more than a run (all rows are about 20 MB)"


def test_the_import_streams_its_rows(clean, tmp_path) -> None:
    """Peak Python memory of a 3,000-row import in chunks of 500 stays a fraction of what it writes: holding the
    examples would take more than the text itself."""
    log = tmp_path / "log.csv"
    synth_log(log, 3000, seed=12)
    synth_log(tmp_path / "small.csv", 100, seed=12)
    _import(tmp_path / "small.csv", tmp_path / "warm", clean["key"], chunk_rows=500)  # imports and caches, unmeasured
    tracemalloc.start()
    _import(log, tmp_path / "out", clean["key"], chunk_rows=500)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    written = sum(p.stat().st_size for p in (tmp_path / "out").iterdir())
    assert peak < written / 3, f"peak {peak / 1e6:.1f} MB for {written / 1e6:.1f} MB written"


def test_personal_data_in_a_kept_column_is_scrubbed_or_the_row_refused(tmp_path, capsys) -> None:
    log = tmp_path / "log.csv"
    synth_log(log, 60, seed=2)
    rows = _rows(log)
    rows[3]["merchant"] = "Call 415-555-0100 Store"
    rows[5]["merchant"] = "Gift 4111 1111 1111 1111"
    log = _write_rows(tmp_path / "pii.csv", rows)
    key_file = _key_file(tmp_path)
    code, out, _ = _cli(
        capsys, str(log), "--map", str(MAP), "--out", str(tmp_path / "a"), "--key-file", str(key_file), "--keep-warmup"
    )
    assert code == 0 and json.loads(out)["pii_values"] == 4
    text = "".join(p.read_text() for p in (tmp_path / "a").iterdir())
    assert "415-555-0100" not in text and "4111 1111 1111 1111" not in text
    assert "Call [PHONE] Store" in text and "Gift [CARD]" in text
    found = json.loads((tmp_path / "a" / "import_report.json").read_text())["pii"]["first"]
    assert found[:2] == [
        {"where": f"{log}:5", "field": "merchant.id", "looks_like": "phone"},
        {"where": f"{log}:5", "field": "merchant.name", "looks_like": "phone"},
    ]
    refuse = _mapping(tmp_path, pii="refuse")
    code, _, err = _cli(
        capsys,
        str(log),
        "--map",
        str(refuse),
        "--out",
        str(tmp_path / "b"),
        "--key-file",
        str(key_file),
        "--keep-warmup",
    )
    assert code == 1
    assert err.splitlines() == [
        f"{log}:5: merchant.id: looks like personal data (phone); row refused (pii: refuse)",
        f"{log}:5: merchant.name: looks like personal data (phone); row refused (pii: refuse)",
        f"{log}:7: merchant.id: looks like personal data (card); row refused (pii: refuse)",
        f"{log}:7: merchant.name: looks like personal data (card); row refused (pii: refuse)",
    ]
    assert "4111" not in "".join(p.read_text() for p in (tmp_path / "b").iterdir())


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"log/card": None}, "log.card: expected the name of the card number column, e.g. log: {card: cc_num}"),
        ({"log/cards": "cc_num"}, "log.cards: unknown key; expected card, key_env, key_file"),
        ({"log/warmup_min_history": -1}, "log.warmup_min_history: expected a whole number >= 0, got -1"),
        (
            {"fixed/merchant.country": None, "fixed/customer.home_country": None},
            "columns: required field(s) merchant.country, customer.home_country not mapped",
        ),
        (
            {"columns/merchant.country": "state"},
            "fixed.merchant.country: also mapped to column 'state'; keep one of the two",
        ),
        (
            {"columns/customer.id": "cc_num"},
            "columns.customer.id: a log import uses the card token (log.card) as customer.id",
        ),
        ({"fixed/amount_usd": 1}, "fixed.amount_usd: not a transaction field"),
        ({"pii": "mask"}, "pii: expected one of scrub, refuse, got 'mask'"),
        ({"log/card": "card_number"}, "header: missing column(s) 'card_number' (log.card)"),
    ],
    ids=[
        "no card",
        "unknown log key",
        "negative warm-up",
        "no fixed country",
        "fixed and column",
        "customer.id",
        "fixed unknown field",
        "pii action",
        "card column missing",
    ],
)
def test_mapping_errors_are_one_line_naming_the_key(clean, tmp_path, capsys, changes: dict, problem: str) -> None:
    mapping = _mapping(tmp_path, **changes)
    code, _, err = _cli(
        capsys,
        str(clean["csv"]),
        "--map",
        str(mapping),
        "--out",
        str(tmp_path / "out"),
        "--key-file",
        str(clean["key"]),
    )
    where = f"{clean['csv']}:1" if problem.startswith("header") else str(mapping)
    assert code == 1 and err.startswith(f"error: {where}: {problem}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_profile_rows_import_from_parquet_as_from_csv(tmp_path, capsys) -> None:
    """The existing mapping shape keeps working, and reads a Parquet copy of the same rows the same way."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    source = REPO / "tests" / "data" / "transactions.csv"
    pq.write_table(pa_csv.read_csv(source), tmp_path / "cases.parquet")
    mapping = REPO / "configs" / "csv_mapping.example.yaml"
    for name, path in (("csv", source), ("parquet", tmp_path / "cases.parquet")):
        assert main(["data", "import-csv", str(path), "--map", str(mapping), "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    for name in ("fraud_dataset.jsonl", "train.jsonl", "val.jsonl", "test.jsonl"):
        assert (tmp_path / "csv" / name).read_bytes() == (tmp_path / "parquet" / name).read_bytes()
    strip = lambda m: {k: v for k, v in m.items() if k != "csv_line"}  # noqa: E731 - a line (CSV) or a row (Parquet)
    csv_meta, pq_meta = (read_jsonl(tmp_path / d / "fraud_dataset.meta.jsonl") for d in ("csv", "parquet"))
    assert [strip(m) for m in csv_meta] == [strip(m) for m in pq_meta]


def test_the_cli_lists_import_its_alias_and_synth_log(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["data", "-h"])
    text = capsys.readouterr().out
    assert "import (import-csv)" in text and "synth-log" in text


def test_device_and_account_open_columns_and_unix_seconds(tmp_path) -> None:
    """device_new is the first use of a device on the card; account age counts from log.opened; unix seconds read
    as the same times as the formatted column."""
    header = ["ts", "card", "device", "opened", "merchant", "category", "amt", "txn", "label"]
    rows = [  # seconds since 1970 for 2025-03-01 12:00:00 UTC, then later
        [1740830400, CARD_A, "phone-1", "2024-12-01", "Shop 1", "grocery_pos", "10.00", "t1", "0"],
        [1740834000, CARD_A, "phone-1", "2024-12-01", "Shop 2", "grocery_pos", "20.00", "t2", "0"],
        [1740837600, CARD_A, "laptop-9", "2024-12-01", "Shop 3", "shopping_net", "30.00", "t3", "1"],
        [1740841200, CARD_B, "phone-1", "", "Shop 4", "grocery_pos", "40.00", "t4", "0"],
    ]
    log = tmp_path / "devices.csv"
    log.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    mapping = _mapping(
        tmp_path,
        **{
            "columns/transaction_id": "txn",
            "columns/timestamp": "ts",
            "timestamp_format": "unix",
            "label/column": "label",
            "log/card": "card",
            "log/device": "device",
            "log/opened": "opened",
            "log/keep_warmup": True,
        },
    )
    assert _import(log, tmp_path / "out", _key_file(tmp_path), mapping)["errors"] == []
    txns = {i: m["transaction"] for i, m in _metas(tmp_path / "out").items()}
    assert [txns[t]["device_new"] for t in ("t1", "t2", "t3", "t4")] == [True, False, True, True]
    assert [txns[t]["customer"]["account_age_days"] for t in ("t1", "t4")] == [90, 0]
    assert [txns[t]["timestamp"] for t in ("t1", "t3")] == ["2025-03-01T12:00:00", "2025-03-01T14:00:00"]


def test_profile_rows_split_by_time_too(tmp_path, capsys) -> None:
    csv_map = REPO / "configs" / "csv_mapping.example.yaml"
    source = REPO / "tests" / "data" / "transactions.csv"
    code = main(["data", "import-csv", str(source), "--map", str(csv_map), "--out", str(tmp_path), "--split", "time"])
    assert code == 0 and json.loads(capsys.readouterr().out)["splits"] == {"train": 10, "val": 1, "test": 1}
    times = {
        s: [m["transaction"]["timestamp"] for m in read_jsonl(tmp_path / f"{s}.meta.jsonl")]
        for s in ("train", "val", "test")
    }
    assert max(times["train"]) <= min(times["val"]) <= max(times["val"]) <= min(times["test"])


def test_a_log_with_only_warmup_rows_writes_nothing(tmp_path, capsys) -> None:
    log = _hand_log(tmp_path, [(f"2025-01-0{d} 12:00:00", CARD_A, 10.0 + d, "home") for d in range(1, 5)])
    args = ["--map", str(MAP), "--out", str(tmp_path / "out"), "--key-file", str(_key_file(tmp_path))]
    code, out, err = _cli(capsys, str(log), *args)
    assert code == 1 and json.loads(out)["warmup_rows"] == 4
    assert err == f"{log}: no rows past the warm-up (see log.warmup_min_history); nothing written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hand.csv", "token.key"]


def test_a_card_token_ignores_how_the_number_is_separated() -> None:
    from fraudtune.data.imports.tokens import card_token

    key = b"k" * 32
    forms = [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
    ]
    assert len({card_token(key, form) for form in forms}) == 1
    assert card_token(key, forms[0]) != card_token(b"j" * 32, forms[0])
    assert card_token(key, forms[0]).startswith("K-") and len(card_token(key, forms[0])) == 22


def test_train_and_evaluate_on_an_imported_log_write_no_personal_value(tmp_path) -> None:
    """Import (time split, fewer negatives), then `fraudtune train` and `fraudtune evaluate` on the tiny model: no
    card number, name, street or birth date in any file of the run, adapter and reports included."""
    from conftest import TINY_CONFIG

    log, run = tmp_path / "log.csv", tmp_path / "run"
    synth_log(log, 12000, seed=11)
    _import(log, run / "data", _key_file(tmp_path), split="time", legit_per_fraud=1, test_legit_per_fraud=2)
    cfg = ["--config", str(TINY_CONFIG), "--run-dir", str(run), "--set", "train.threads=1", "--set", "train.epochs=1"]
    assert main(["train", *cfg]) == 0
    assert main(["evaluate", *cfg]) == 0
    evaluation = json.loads((run / "eval.json").read_text())
    assert {"fine_tuned", "gradient_boosting"} <= set(evaluation["models"])
    rows = _rows(log)
    exact = {r[c].encode() for r in rows for c in ("cc_num", "street", "dob")}
    words = {r[c] for r in rows for c in ("first", "last")}
    name_pattern = re.compile(rb"\b(" + b"|".join(w.encode() for w in sorted(words)) + rb")\b")
    written = [p for p in run.rglob("*") if p.is_file()]
    assert len(written) > 20
    for path in written:
        data = path.read_bytes()
        assert not [v for v in exact if v in data], path
        assert not name_pattern.search(data), (path, name_pattern.search(data))
