"""SPEC 4: no field or generic-score range may tell the labels apart except through the rules.

Each data set is built here from SPEC 3 by hand (checked against spec_oracle), so the expected figures follow from
how it was built: a value that only one label has gives a held-out balanced accuracy of exactly 1.0.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import pytest
from spec_oracle import BLACKLIST, DEMO_PROFILE, changed, sample_txn, spec_assess, spec_generic_score

from fraudtune.cli import main
from fraudtune.data.shortcuts import shortcut_report
from fraudtune.profile import load_profile

PROFILE = load_profile(DEMO_PROFILE)
TXN_CODE_RULES = ["MANUAL_KEY_ENTRY", "FORCE_POST_OVERRIDE", "NEW_ACCOUNT_FUNDING", "MARKETPLACE_TAKEOVER"]


def _everyday(rng: random.Random, flags: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """A purchase on which exactly the given generic flags fire; other fields drawn alike for every label."""
    avg = round(rng.uniform(40, 90), 2)
    category = rng.choice(["grocery", "restaurant", "clothing", "gas"])
    txn = changed(
        sample_txn(),
        **{
            "amount": round(rng.uniform(5, 150), 2),  # < 10x the average, never card testing
            "customer.avg_amount": avg,
            "customer.account_age_days": rng.randint(100, 4000),
            "customer.history_count": rng.randint(20, 800),
            "customer.password_reset_hours_ago": rng.choice([None, float(rng.randint(60, 500))]),
            "velocity.txn_last_1h": rng.randint(0, 5),
            "velocity.txn_last_24h": rng.randint(9, 14),  # drawn apart from the last hour: no echo of a burst
            "hour": rng.randint(8, 21),
            "channel": rng.choice(["in_person", "online", "recurring"]),
            "txn_code": rng.choice(["TC-01", "TC-05", "TC-20"]),
            "merchant.id": f"M-SHOP-{rng.randint(1000, 9999)}",
            "merchant.category": category,
            "customer.usual_categories": [category, "utilities"],
        },
    )
    minor = {
        "NEW_DEVICE": {"device_new": True},
        "UNUSUAL_HOUR": {"hour": rng.randint(0, 4)},
        "UNUSUAL_CATEGORY": {"customer.usual_categories": ["utilities"]},
        "GEO_MISMATCH": {"merchant.country": "FR"},
        "AMOUNT_SPIKE": {"amount": round(avg * rng.uniform(10.5, 11), 2)},  # under $1,000: no CNP flag
    }
    for flag in flags:
        txn = changed(txn, **minor[flag])
    txn = changed(txn, **fields)
    assert {f for f in spec_assess(txn)[2] if f in minor} == set(flags)
    return txn


def _random_flags(rng: random.Random, pool: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in pool if rng.random() < 0.3)


def _labelled(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    return rows, [spec_assess(t)[0] for t in rows]


def _blacklisted(rng: random.Random) -> str:
    return rng.choice(sorted(BLACKLIST))


POOL = ("NEW_DEVICE", "UNUSUAL_HOUR", "UNUSUAL_CATEGORY", "GEO_MISMATCH")  # at most 40 together: under 50


def clean_set() -> tuple[list[dict[str, Any]], list[str]]:
    """30 blacklisted + 30 velocity-burst FRAUD, 240 LEGITIMATE, all drawn alike; plus 40 rows the score decides."""
    rng = random.Random(1)
    rows = [_everyday(rng, _random_flags(rng, POOL)) for _ in range(240)]
    rows += [_everyday(rng, _random_flags(rng, POOL), **{"merchant.id": _blacklisted(rng)}) for _ in range(30)]
    rows += [_everyday(rng, _random_flags(rng, POOL), **{"velocity.txn_last_1h": rng.randint(6, 9)}) for _ in range(30)]
    rows += [_everyday(rng, ("AMOUNT_SPIKE", "GEO_MISMATCH", "NEW_DEVICE")) for _ in range(40)]  # score 55
    return _labelled(rows)


def generic_interval_set() -> tuple[list[dict[str, Any]], list[str]]:
    """SPEC 4's example: rule FRAUD at generic 20-35 only; LEGITIMATE at 0 (144 rows) or 40/45 (48 each)."""
    rng = random.Random(2)
    fraud = [
        ("NEW_DEVICE", "UNUSUAL_HOUR"),  # 20
        ("GEO_MISMATCH", "NEW_DEVICE"),  # 25
        ("AMOUNT_SPIKE",),  # 30
        ("AMOUNT_SPIKE", "UNUSUAL_CATEGORY"),  # 35
    ]
    legit = [("AMOUNT_SPIKE", "NEW_DEVICE"), ("AMOUNT_SPIKE", "NEW_DEVICE", "UNUSUAL_CATEGORY")]  # 40, 45
    rows = [_everyday(rng, fraud[i % 4], **{"merchant.id": _blacklisted(rng)}) for i in range(60)]
    rows += [_everyday(rng) for _ in range(144)]
    rows += [_everyday(rng, legit[i % 2]) for i in range(96)]
    return _labelled(rows)


def country_set() -> tuple[list[dict[str, Any]], list[str]]:
    """Blacklisted FRAUD rows all shop in Canada (their home), LEGITIMATE ones in the US: no rule reads the country."""
    rng = random.Random(3)
    pool = POOL[:3]  # no geographic mismatch: the merchant is always in the home country
    at_home = {"merchant.country": "CA", "customer.home_country": "CA"}
    rows = [
        _everyday(rng, _random_flags(rng, pool), **at_home, **{"merchant.id": _blacklisted(rng)}) for _ in range(60)
    ]
    rows += [_everyday(rng, _random_flags(rng, pool)) for _ in range(240)]
    return _labelled(rows)


def txn_code_set() -> tuple[list[dict[str, Any]], list[str]]:
    """30 force-post FRAUD (TC-33, >= $200) and 30 blacklisted FRAUD that also carry TC-33 (under $200)."""
    rng = random.Random(6)
    force_post = {"txn_code": "TC-33"}
    rows = [
        _everyday(rng, _random_flags(rng, POOL), **force_post, amount=round(rng.uniform(200, 350), 2))
        for _ in range(30)
    ]
    rows += [
        _everyday(rng, _random_flags(rng, POOL), **force_post, **{"merchant.id": _blacklisted(rng)}) for _ in range(30)
    ]
    rows += [_everyday(rng, _random_flags(rng, POOL)) for _ in range(240)]
    return _labelled(rows)


def test_sets_are_built_as_described() -> None:
    rows, labels = generic_interval_set()
    scores = {
        label: sorted({spec_generic_score(t) for t, x in zip(rows, labels, strict=True) if x == label})
        for label in set(labels)
    }
    assert scores == {"FRAUD": [20, 25, 30, 35], "LEGITIMATE": [0, 40, 45]}
    rows, labels = clean_set()
    assert labels.count("FRAUD") == 100 and {spec_generic_score(t) for t in rows[-40:]} == {55}


def test_generic_score_interval_is_a_shortcut_even_at_a_neutral_auc() -> None:
    """An interval the tree finds exactly (1.0); AUC = the share of legitimate rows at 0 that fraud outranks."""
    report = shortcut_report(*generic_interval_set(), PROFILE)
    assert report["generic_score"]["FRAUD"] == {20: 15, 25: 15, 30: 15, 35: 15}
    assert report["generic_score"]["LEGITIMATE"] == {0: 144, 40: 48, 45: 48}
    assert report["generic_score"]["auc"] == pytest.approx(144 / 240)  # inside 0.35-0.65: the AUC alone misses it
    assert report["features"]["generic_score"]["balanced_accuracy"] == 1.0
    assert "generic_score" in report["shortcuts"]


def test_field_no_rule_reads_is_a_shortcut() -> None:
    report = shortcut_report(*country_set(), PROFILE)
    country = report["features"]["merchant.country"]
    assert (country["balanced_accuracy"], country["n_fraud"], country["n_legit"], country["rule"]) == (1.0, 60, 240, [])
    assert report["shortcuts"] == ["merchant.country"]


def test_rule_field_is_a_shortcut_when_it_separates_without_its_rules_rows() -> None:
    """Without the 30 force-post rows, TC-33 still marks every remaining (blacklisted) FRAUD row."""
    report = shortcut_report(*txn_code_set(), PROFILE)
    code = report["features"]["txn_code"]
    assert code["rule"] == TXN_CODE_RULES and code["without_rule_rows"] == 1.0
    assert report["shortcuts"] == ["txn_code"]


def test_clean_set_has_no_shortcut() -> None:
    """Rows scoring >= 50 are left out; the last-hour velocity separates only its own rule's rows.

    The stump `txn_last_1h >= 6` catches the 30 burst rows of 60 FRAUD and no LEGITIMATE one: (30/60 + 1) / 2 = 0.75.
    """
    report = shortcut_report(*clean_set(), PROFILE)
    assert (report["n_fraud"], report["n_legit"]) == (60, 240)
    velocity = report["features"]["velocity.txn_last_1h"]
    assert velocity["rule"] == ["VELOCITY_BURST"]
    assert velocity["balanced_accuracy"] == pytest.approx(0.75, abs=0.05)
    assert velocity["without_rule_rows"] < 0.65
    assert 0.35 <= report["generic_score"]["auc"] <= 0.65
    assert report["shortcuts"] == []


def test_too_few_rows_are_not_measured() -> None:
    rows, labels = country_set()
    report = shortcut_report(rows[51:], labels[51:], PROFILE)  # 9 FRAUD rows left
    assert report["features"]["merchant.country"]["balanced_accuracy"] is None and report["shortcuts"] == []


def _letters(i: int) -> str:
    return "".join(string.ascii_lowercase[i // 26**k % 26] for k in range(3))  # no digits: no near-duplicates


def _write_chat(path: Path, rows: list[dict[str, Any]], labels: list[str]) -> None:
    answers = {
        "FRAUD": "FRAUD\nRisk Score: 95\nRed Flags: [Blacklisted merchant]\nReasoning: The merchant is blacklisted.",
        "LEGITIMATE": "LEGITIMATE\nRisk Score: 0\nRed Flags: []\nReasoning: A usual purchase.",
    }
    chats, metas = [], []
    for i, (txn, label) in enumerate(zip(rows, labels, strict=True)):
        user = {"role": "user", "content": f"Transaction {_letters(i)}"}
        chats.append({"messages": [user, {"role": "assistant", "content": answers[label]}]})
        metas.append({"label": label, "category": "company_specific" if label == "FRAUD" else "x", "transaction": txn})
    path.write_text("".join(json.dumps(c) + "\n" for c in chats))
    path.with_name(path.stem + ".meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metas))


def test_validate_warns_with_the_figure_and_the_fix(tmp_path, capsys) -> None:
    path = tmp_path / "chat.jsonl"
    _write_chat(path, *country_set())
    assert main(["data", "validate", str(path), "--no-tokens"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        f"  {path}: merchant.country: tells FRAUD from LEGITIMATE without the rules: balanced accuracy 1.00, and no "
        "rule reads it (bound 0.75) on 60 FRAUD / 240 LEGITIMATE rows the generic score does not decide; the "
        "generator should draw merchant.country for company-specific rows as for legitimate ones"
    ) in out
    summary = next(line for line in out if line.startswith("shortcut check"))
    assert summary.startswith("shortcut check on 60 FRAUD / 240 LEGITIMATE rows below the generic threshold")
    assert summary.endswith("shortcuts: merchant.country") and out[-1] == "OK: 0 error(s), 1 warning(s)"
