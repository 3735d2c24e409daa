"""docs/DATASET_PREPARATION.md is generated from the profile: the committed file must match, tables follow edits."""

from __future__ import annotations

from spec_oracle import DEMO_PROFILE, REPO

from fraudtune.data.csv_mapping import FIELDS
from fraudtune.profile import load_profile
from fraudtune.report.docs_dataset import render_dataset_doc, write_dataset_doc

PROFILE = load_profile(DEMO_PROFILE)


def test_committed_guide_is_up_to_date() -> None:
    committed = (REPO / "docs" / "DATASET_PREPARATION.md").read_text(encoding="utf-8")
    assert committed == render_dataset_doc(PROFILE), "regenerate: python -m fraudtune.report.docs_dataset"


def test_every_rule_and_csv_field_has_a_table_row() -> None:
    rows = [line for line in render_dataset_doc(PROFILE).splitlines() if line.startswith("| ")]
    for rule in PROFILE.rules:
        assert any(row.startswith(f"| {rule.code} | {rule.head} |") for row in rows), rule.code
    for name in FIELDS:
        assert any(row.startswith(f"| `{name}` |") for row in rows), name
    assert "| TC-44 | account funding (wallet / crypto load) | online |" in rows


def test_tables_follow_the_profile(tmp_path) -> None:
    text = DEMO_PROFILE.read_text().replace(
        "{field: txn_code, op: eq, value: TC-07}, {field: amount, op: ge, value: 500}",
        "{field: txn_code, op: eq, value: TC-07}, {field: amount, op: ge, value: 750}",
    )
    (tmp_path / "p.yaml").write_text(text)
    out = write_dataset_doc(load_profile(tmp_path / "p.yaml"), tmp_path / "guide.md")
    guide = out.read_text()
    assert (
        "| MANUAL_KEY_ENTRY | Manual key entry | txn_code = TC-07 and amount >= 750 | 90 | amount < 750, close" in guide
    )
    assert "amount >= 500" not in guide.split("## Proprietary signal catalog")[1].split("MANUAL_KEY_ENTRY")[1][:60]
