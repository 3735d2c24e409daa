"""`fraudtune data import-csv` as users type it: the user's label is the truth, the profile only explains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from spec_oracle import REPO, read_jsonl, spec_assess

from fraudtune.cli import main
from fraudtune.data.validate import validate

CSV = REPO / "tests" / "data" / "transactions.csv"
MAP = REPO / "configs" / "csv_mapping.example.yaml"
HEADER, *ROWS = CSV.read_text().splitlines()


def _import(capsys, csv: Path, out: Path, mapping: Path = MAP) -> tuple[int, str, str]:
    code = main(["data", "import-csv", str(csv), "--map", str(mapping), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "cases.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_import_writes_the_same_files_as_generate(tmp_path, capsys) -> None:
    code, out, err = _import(capsys, CSV, tmp_path / "data")
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert (summary["rows"], summary["imported"], summary["skipped"]) == (12, 12, 0)
    assert sum(summary["splits"].values()) == 12
    names = {p.name for p in (tmp_path / "data").iterdir()}
    assert names == {"fraud_dataset.jsonl", "fraud_dataset.meta.jsonl", "data_card.json"} | {
        f"{s}{ext}" for s in ("train", "val", "test") for ext in (".jsonl", ".meta.jsonl")
    }
    assert validate(tmp_path / "data", count_tokens=False).ok


def test_user_label_is_kept_and_the_profile_explains(tmp_path, capsys) -> None:
    _import(capsys, CSV, tmp_path)
    metas = read_jsonl(tmp_path / "fraud_dataset.meta.jsonl")
    chats = {m["transaction_id"]: c for m, c in zip(metas, read_jsonl(tmp_path / "fraud_dataset.jsonl"), strict=True)}
    by_id = {m["transaction_id"]: m for m in metas}
    user_labels = {row.split(",")[0]: "FRAUD" if row.endswith(",1") else "LEGITIMATE" for row in ROWS}
    for txn_id, meta in by_id.items():
        assert meta["label"] == user_labels[txn_id]
        oracle_label, oracle_score, flags = spec_assess(meta["transaction"])
        assert (meta["oracle_label"], meta["oracle_risk_score"], meta["red_flags"]) == (
            oracle_label,
            oracle_score,
            flags,
        )
        answer = chats[txn_id]["messages"][-1]["content"]
        assert answer.splitlines()[0] == meta["label"]
        assert meta["agrees_with_profile"] == (oracle_label == meta["label"])
    # T1007: a clean restaurant meal the issuer confirmed as fraud; T1011: a risky trip the issuer cleared
    assert by_id["T1007"]["category"] == by_id["T1011"]["category"] == "imported"
    assert "Confirmed FRAUD by the issuer's case review" in chats["T1007"]["messages"][-1]["content"]
    assert "Risk Score: 50" in chats["T1007"]["messages"][-1]["content"]
    assert "Cleared as LEGITIMATE by the issuer's case review" in chats["T1011"]["messages"][-1]["content"]
    assert "Risk Score: 49" in chats["T1011"]["messages"][-1]["content"]
    assert by_id["T1003"]["deciding_rule"] == "MANUAL_KEY_ENTRY" and by_id["T1003"]["category"] == "company_specific"
    assert by_id["T1002"]["category"] == "clear_fraud"


def test_documented_defaults_fill_empty_cells(tmp_path, capsys) -> None:
    _import(capsys, CSV, tmp_path)
    txn = next(
        m["transaction"] for m in read_jsonl(tmp_path / "fraud_dataset.meta.jsonl") if m["transaction_id"] == "T1010"
    )
    assert txn["currency"] == "USD" and txn["txn_code"] == "TC-12"
    assert txn["velocity"] == {"txn_last_1h": 0, "txn_last_24h": 0}
    assert txn["customer"]["travel_notice_country"] is None
    assert txn["customer"]["password_reset_hours_ago"] is None
    assert txn["timestamp"] == "2026-03-06T06:00:00"


def test_minimal_mapping_uses_defaults_for_unmapped_fields(tmp_path, capsys) -> None:
    required = {
        "transaction_id": "txn_id",
        "timestamp": "event_time",
        "amount": "amount",
        "merchant.id": "merchant_id",
        "merchant.category": "merchant_group",
        "merchant.country": "merchant_country",
        "channel": "channel",
        "customer.id": "card_holder",
        "customer.home_country": "holder_country",
        "customer.avg_amount": "avg_spend_90d",
        "customer.history_count": "past_txns",
        "customer.account_age_days": "account_age_days",
    }
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        json.dumps(
            {
                "columns": required,
                "timestamp_format": "%Y-%m-%d %H:%M:%S",
                "label": {"column": "is_fraud", "values": {"1": "FRAUD", "0": "LEGITIMATE"}},
                "values": {"channel": {"POS": "in_person", "ECOM": "online", "REC": "recurring", "ATM": "atm"}},
            }
        )
    )
    code, _, err = _import(capsys, CSV, tmp_path / "out", mapping)
    assert (code, err) == (0, "")
    txn = read_jsonl(tmp_path / "out" / "fraud_dataset.meta.jsonl")[0]["transaction"]
    assert txn["merchant"]["name"] == txn["merchant"]["id"]
    assert txn["device_new"] is False and txn["customer"]["usual_categories"] == []
    assert txn["txn_code"] in ("TC-01", "TC-20", "TC-12")


def test_bad_rows_are_listed_and_the_rest_imported(tmp_path, capsys) -> None:
    rows = list(ROWS)
    rows[1] = rows[1].replace("2450.00", "lots")
    rows[2] = rows[2].replace("jewelry,US", "toys,US")
    rows[3] = rows[3][:-1] + "maybe"
    rows[4] = rows[4].rsplit(",", 5)[0]
    rows[5] = rows[5].replace("2026-03-04 16:45:00", "04/03/2026")
    rows[6] = rows[6].replace("T1007", "T1001")
    path = _csv(tmp_path, rows)
    code, out, err = _import(capsys, path, tmp_path / "out")
    assert code == 1
    assert err.splitlines() == [
        f"{path}:3: amount: not a number: 'lots' (column 'amount')",
        f"{path}:4: merchant.category: unknown value 'toys'; expected one of grocery, restaurant, gas, pharmacy, "
        "utilities, subscription, travel, hotel, clothing, entertainment, online_marketplace, electronics, jewelry, "
        "gift_cards, crypto_exchange, money_transfer, atm_cash",
        f"{path}:5: label: value 'maybe' (column 'is_fraud') is not in the mapping's label.values (1, 0)",
        f"{path}:6: row: 17 fields, the header has 22",
        f"{path}:7: timestamp: not a date-time in the format %Y-%m-%d %H:%M:%S: '04/03/2026' (column 'event_time')",
        f"{path}:8: transaction_id: duplicate id 'T1001'",
    ]
    summary = json.loads(out)
    assert (summary["rows"], summary["imported"], summary["skipped"]) == (12, 6, 6)
    assert len(read_jsonl(tmp_path / "out" / "fraud_dataset.jsonl")) == 6


def test_missing_column(tmp_path, capsys) -> None:
    header = HEADER.replace("is_fraud", "fraud_flag").replace("avg_spend_90d", "avg")
    path = _csv(tmp_path, ROWS, header=header)
    code, _, err = _import(capsys, path, tmp_path / "out")
    assert code == 1
    assert err.strip() == (
        f"error: {path}:1: header: missing column(s) 'avg_spend_90d' (customer.avg_amount), "
        f"'is_fraud' (label); the file has {header.replace(',', ', ')[:200]}"
    )
    assert not (tmp_path / "out").exists()


def test_wrong_delimiter(tmp_path, capsys) -> None:
    path = _csv(tmp_path, [r.replace(",", ";") for r in ROWS], header=HEADER.replace(",", ";"))
    code, _, err = _import(capsys, path, tmp_path / "out")
    assert code == 1
    assert err.strip() == (
        f"error: {path}:1: header: read as one column 'txn_id;event_time;amount;currency;"
        "merchant_id;merc'; the file looks ';'-separated: set delimiter: ';' in the mapping"
    )


def _example_mapping(**changes) -> dict:
    mapping = yaml.safe_load(MAP.read_text())
    for key, value in changes.items():
        *parents, leaf = key.split("/")
        node = mapping
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return mapping


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"columns/amout": "amount"},
            "columns.amout: not a transaction field; expected one of transaction_id, timestamp",
        ),
        (
            {"columns/amount": None, "columns/timestamp": None},
            "columns: required field(s) timestamp, amount not mapped to a column",
        ),
        ({"label/values": {"1": "SCAM"}}, "label.values: 'SCAM' is neither FRAUD nor LEGITIMATE"),
        ({"label": "is_fraud"}, "label: expected {column: NAME, values: {'1': FRAUD, '0': LEGITIMATE}}"),
        ({"colums": {}}, "colums: unknown key; expected delimiter, columns, label"),
        ({"delimiter": ";;"}, "delimiter: must be one character, got ';;'"),
        ({"values/channel": "POS"}, "values: expected {field: {cell text: value}} with transaction fields"),
        ({"strip_prefix": {"merchant.id": ""}}, "strip_prefix: expected {field: prefix text} with fields mapped"),
    ],
    ids=[
        "unknown field",
        "required fields unmapped",
        "bad label value",
        "label not a mapping",
        "unknown key",
        "long delimiter",
        "values not a mapping",
        "empty prefix",
    ],
)
def test_mapping_errors_name_the_key(tmp_path, capsys, changes: dict, problem: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(_example_mapping(**changes)))
    code, _, err = _import(capsys, CSV, tmp_path / "out", path)
    assert code == 1 and err.startswith(f"error: {path}: {problem}")


def test_strip_prefix_cuts_a_columns_leading_text(tmp_path, capsys) -> None:
    """A log that prefixes every merchant (e.g. 'fraud_<name>' on legitimate rows too): the prefix is cut."""
    column = HEADER.split(",").index("merchant_id")
    rows = [",".join(f"fraud_{c}" if i == column else c for i, c in enumerate(row.split(","))) for row in ROWS]
    mapping = tmp_path / "map.yaml"
    mapping.write_text(yaml.safe_dump(_example_mapping(strip_prefix={"merchant.id": "fraud_"})))
    code, _, err = _import(capsys, _csv(tmp_path, rows), tmp_path / "out", mapping)
    assert (code, err) == (0, "")
    ids = {m["transaction"]["merchant"]["id"] for m in read_jsonl(tmp_path / "out" / "fraud_dataset.meta.jsonl")}
    plain = {row.split(",")[column] for row in ROWS}
    assert ids == plain


def test_missing_mapping_file(tmp_path, capsys) -> None:
    code, _, err = _import(capsys, CSV, tmp_path / "out", tmp_path / "nope.yaml")
    assert code == 1 and "nope.yaml: mapping file not found; start from configs/csv_mapping.example.yaml" in err


def test_nothing_valid_writes_nothing(tmp_path, capsys) -> None:
    path = _csv(tmp_path, [r[:-1] + "9" for r in ROWS])
    code, _, err = _import(capsys, path, tmp_path / "out")
    assert code == 1
    assert err.splitlines()[-1] == f"{path}: no valid rows; nothing written"
    assert not (tmp_path / "out").exists()


CARD, EMAIL, PHONE = "4111 1111 1111 1111", "jane.doe@example.com", "+1 415 555 0100"


def _rows_with_personal_data() -> list[str]:
    """Three rows whose cells carry a card number (as the customer id), an email and a phone (merchant names)."""
    rows = list(ROWS)
    rows[0] = rows[0].replace(",C-1,", f",{CARD},")
    rows[1] = rows[1].replace("TechNova Electronics", f"TechNova {EMAIL}")
    rows[2] = rows[2].replace(rows[2].split(",")[5], f"Shop {PHONE}")
    return rows


def test_personal_data_in_a_cell_is_masked_before_anything_is_written(tmp_path, capsys) -> None:
    out = tmp_path / "data"
    code, stdout, _ = _import(capsys, _csv(tmp_path, _rows_with_personal_data()), out)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["imported"] == 12
    assert {(f["line"], f["field"], f["looks_like"]) for f in summary["personal_data"]} == {
        (2, "customer.id", "card"),
        (3, "merchant.name", "email"),
        (4, "merchant.name", "phone"),
    }
    for path in out.rglob("*"):  # every file the import wrote, meta files and the data card included
        text = path.read_text(encoding="utf-8")
        for value in (CARD, CARD.replace(" ", ""), EMAIL, PHONE):
            assert value not in text, f"{value} in {path.name}"
    assert "[CARD]" in (out / "fraud_dataset.meta.jsonl").read_text()


def test_pii_refuse_rejects_the_rows_and_names_them(tmp_path, capsys) -> None:
    mapping = yaml.safe_load(MAP.read_text())
    mapping["pii"] = "refuse"
    map_path = tmp_path / "map.yaml"
    map_path.write_text(yaml.safe_dump(mapping))
    out = tmp_path / "data"
    code, stdout, err = _import(capsys, _csv(tmp_path, _rows_with_personal_data()), out, map_path)
    assert json.loads(stdout)["imported"] == 9
    assert "cases.csv:2: customer.id: looks like personal data (card); row refused (pii: refuse)" in err
    for path in out.rglob("*"):
        assert EMAIL not in path.read_text(encoding="utf-8")
