"""SPEC.md section 3 written again in plain Python, independently of fraudtune.profile, for the tests to compare.

Also: a clean sample transaction, a helper to change dotted fields, and a hypothesis strategy of valid
transactions that likes to sit on the thresholds.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
DEMO_PROFILE = REPO / "configs" / "profiles" / "demo_issuer.yaml"

HIGH_RISK_COUNTRIES = {"NG", "RU", "KP", "IR", "VE", "MM"}
HIGH_RISK_CATEGORIES = {"electronics", "jewelry", "gift_cards", "crypto_exchange", "money_transfer"}
BLACKLIST = {
    "M-QUICKGIFT-0007",
    "M-TOPUPKING-0113",
    "M-LUXWATCH-0420",
    "M-GLOBALPAY-0999",
    "M-CRYPTOFAST-0314",
    "M-EZPHARMA-0666",
    "M-DEALZONE-0271",
    "M-FASTFUEL-0088",
}
WEIGHTS = {
    "AMOUNT_SPIKE": 30,
    "HIGH_RISK_COUNTRY": 30,
    "GEO_MISMATCH": 15,
    "CNP_HIGH_AMOUNT": 15,
    "UNUSUAL_HOUR": 10,
    "NEW_DEVICE": 10,
    "HIGH_RISK_CATEGORY": 10,
    "NEW_CUSTOMER": 10,
    "UNUSUAL_CATEGORY": 5,
}
DOCUMENTED = {
    "BLACKLISTED_MERCHANT": 95,
    "MANUAL_KEY_ENTRY": 90,
    "FORCE_POST_OVERRIDE": 90,
    "NEW_ACCOUNT_FUNDING": 90,
    "GIFT_CARD_AFTER_RESET": 90,
    "VELOCITY_BURST": 90,
    "CARD_TESTING": 90,
}
HISTORICAL = {"FRAUD_RING_MERCHANT": 90, "MARKETPLACE_TAKEOVER": 85}
RULE_SCORES = {**DOCUMENTED, **HISTORICAL}
SPEC_ORDER = list(WEIGHTS) + list(DOCUMENTED) + list(HISTORICAL)
CATEGORIES = (
    "grocery",
    "restaurant",
    "gas",
    "pharmacy",
    "utilities",
    "subscription",
    "travel",
    "hotel",
    "clothing",
    "entertainment",
    "online_marketplace",
    "electronics",
    "jewelry",
    "gift_cards",
    "crypto_exchange",
    "money_transfer",
    "atm_cash",
)


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def spec_flags(t: dict[str, Any]) -> list[str]:
    """Codes that fire, in SPEC table order (3.1, then 3.2, then 3.3)."""
    m, c, v = t["merchant"], t["customer"], t["velocity"]
    hour = int(t["timestamp"][11:13])
    reset = c.get("password_reset_hours_ago")
    fired = {
        "AMOUNT_SPIKE": _dec(t["amount"]) >= 10 * _dec(c["avg_amount"]),
        "HIGH_RISK_COUNTRY": m["country"] in HIGH_RISK_COUNTRIES,
        "GEO_MISMATCH": m["country"] != c["home_country"] and m["country"] != c.get("travel_notice_country"),
        "CNP_HIGH_AMOUNT": t["channel"] == "online" and t["amount"] >= 1000,
        "UNUSUAL_HOUR": 0 <= hour <= 4,
        "NEW_DEVICE": t["device_new"] is True,
        "HIGH_RISK_CATEGORY": m["category"] in HIGH_RISK_CATEGORIES,
        "NEW_CUSTOMER": c["account_age_days"] < 30 or c["history_count"] < 5,
        "UNUSUAL_CATEGORY": m["category"] not in (c.get("usual_categories") or []),
        "BLACKLISTED_MERCHANT": m["id"] in BLACKLIST,
        "MANUAL_KEY_ENTRY": t["txn_code"] == "TC-07" and t["amount"] >= 500,
        "FORCE_POST_OVERRIDE": t["txn_code"] == "TC-33" and t["amount"] >= 200,
        "NEW_ACCOUNT_FUNDING": t["txn_code"] == "TC-44" and c["account_age_days"] < 30,
        "GIFT_CARD_AFTER_RESET": m["category"] == "gift_cards"
        and t["amount"] >= 300
        and reset is not None
        and reset <= 48,
        "VELOCITY_BURST": v["txn_last_1h"] >= 6,
        "CARD_TESTING": t["channel"] == "online" and t["amount"] < 2 and v["txn_last_24h"] >= 4,
        "FRAUD_RING_MERCHANT": m["id"].startswith("M-QX") and t["amount"] >= 50,
        "MARKETPLACE_TAKEOVER": m["category"] == "online_marketplace"
        and t["txn_code"] == "TC-21"
        and t["device_new"] is True
        and t["amount"] >= 400,
    }
    return [code for code in SPEC_ORDER if fired[code]]


def spec_assess(t: dict[str, Any]) -> tuple[str, int, list[str]]:
    """(label, risk score, flag codes) by SPEC 3."""
    flags = spec_flags(t)
    generic = sum(WEIGHTS[f] for f in flags if f in WEIGHTS)
    score = min(100, generic)
    forced = [RULE_SCORES[f] for f in flags if f in RULE_SCORES]
    if forced:
        return "FRAUD", max([score, *forced]), flags
    return ("FRAUD" if score >= 50 else "LEGITIMATE"), score, flags


def spec_generic_score(t: dict[str, Any]) -> int:
    return sum(WEIGHTS[f] for f in spec_flags(t) if f in WEIGHTS)


def sample_txn() -> dict[str, Any]:
    """An everyday purchase on which no flag fires."""
    return {
        "transaction_id": "T-0001",
        "timestamp": "2026-04-13T14:30:00",
        "amount": 54.2,
        "currency": "USD",
        "merchant": {"id": "M-GROC-1001", "name": "FreshMart Grocers", "category": "grocery", "country": "US"},
        "channel": "in_person",
        "txn_code": "TC-01",
        "device_new": False,
        "customer": {
            "id": "C-1",
            "home_country": "US",
            "avg_amount": 60.0,
            "history_count": 420,
            "account_age_days": 1500,
            "usual_categories": ["grocery", "restaurant"],
            "travel_notice_country": None,
            "password_reset_hours_ago": None,
        },
        "velocity": {"txn_last_1h": 0, "txn_last_24h": 2},
    }


def changed(txn: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy with dotted fields replaced: changed(t, **{"customer.avg_amount": 100, "hour": 4})."""
    out = copy.deepcopy(txn)
    for key, value in changes.items():
        if key == "hour":
            out["timestamp"] = f"{out['timestamp'][:11]}{value:02d}{out['timestamp'][13:]}"
            continue
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = value
    return out


_AMOUNTS = [1.0, 1.99, 2.0, 49.99, 50.0, 199.99, 200.0, 299.99, 300.0, 399.99, 400.0, 499.99, 500.0, 999.99, 1000.0]
_RESETS = [None, None, None, 0.0, 47.9, 48.0, 48.1, 100.0]
_MERCHANTS = ["M-GROC-1001", "M-QXSHOP-0001", "M-XQSHOP-0001", *sorted(BLACKLIST)]


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    """Valid SPEC 1 transactions, often on or next to a threshold (kept to few draws: hypothesis is per-draw slow)."""
    avg = draw(st.integers(1, 500_000)) / 100
    kind = draw(st.integers(0, 2))  # 0: any amount, 1: a rule threshold, 2: 10x the average +- a cent
    if kind == 1:
        amount = _AMOUNTS[draw(st.integers(0, len(_AMOUNTS) - 1))]
    elif kind == 2:
        amount = max(0.01, round(avg * 10 + draw(st.integers(-1, 1)) / 100, 2))
    else:
        amount = draw(st.integers(100, 1_000_000)) / 100
    mask = draw(st.integers(0, 2**17 - 1))
    reset_i = draw(st.integers(0, len(_RESETS)))
    reset = _RESETS[reset_i] if reset_i < len(_RESETS) else draw(st.integers(0, 5000)) / 10
    return {
        "transaction_id": "T-H",
        "timestamp": f"2026-04-13T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:00",
        "amount": amount,
        "currency": "USD",
        "merchant": {
            "id": draw(st.sampled_from(_MERCHANTS)),
            "name": "Shop",
            "category": draw(st.sampled_from(CATEGORIES)),
            "country": draw(st.sampled_from(["US", "GB", "FR", "NG", "RU", "KP", "IR", "VE", "MM"])),
        },
        "channel": draw(st.sampled_from(["in_person", "online", "recurring", "atm"])),
        "txn_code": draw(st.sampled_from(["TC-01", "TC-05", "TC-12", "TC-20", "TC-21", "TC-07", "TC-33", "TC-44"])),
        "device_new": draw(st.booleans()),
        "customer": {
            "id": "C-H",
            "home_country": draw(st.sampled_from(["US", "GB", "NG"])),
            "avg_amount": avg,
            "history_count": draw(st.integers(0, 12)) if draw(st.booleans()) else draw(st.integers(0, 5000)),
            "account_age_days": draw(st.integers(25, 35)) if draw(st.booleans()) else draw(st.integers(0, 9000)),
            "usual_categories": [c for i, c in enumerate(CATEGORIES) if mask >> i & 1],
            "travel_notice_country": draw(st.sampled_from([None, None, "FR", "NG", "GB"])),
            "password_reset_hours_ago": reset,
        },
        "velocity": {"txn_last_1h": draw(st.integers(0, 9)), "txn_last_24h": draw(st.integers(0, 12))},
    }


@functools.cache
def demo_dataset() -> Path:
    """`fraudtune data generate --n 500 --seed 7`, generated once per test session and shared by the modules."""
    from fraudtune.data.generate import generate

    out = Path(tempfile.mkdtemp(prefix="fraudtune-demo-data-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    generate(out, DEMO_PROFILE, n=500, seed=7)
    return out


def read_jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
