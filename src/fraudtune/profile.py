"""Issuer profile (company knowledge as data) and the labelling oracle that applies it to a transaction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from fraudtune.dotted import get_dotted
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_user_text, yaml_problem
from fraudtune.paths import resolve_resource

OPS = ("eq", "ne", "in", "not_in", "ge", "gt", "le", "lt", "startswith", "is_true", "is_false")
DERIVED = ("amount_ratio", "hour", "country_status", "category_usual")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Rule:
    """A generic flag (weight > 0) or an overriding rule (min_score > 0); fires when its conditions hold."""

    code: str
    head: str
    kind: str  # generic | documented | historical
    when: tuple[Condition, ...] = ()
    when_any: tuple[Condition, ...] = ()
    weight: int = 0
    min_score: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    rules: tuple[Rule, ...]
    decision_threshold: int = 50
    max_score: int = 100
    txn_codes: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    source: Path | None = None

    def by_kind(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind]

    def rule(self, code: str) -> Rule:
        for r in self.rules:
            if r.code == code:
                return r
        raise KeyError(code)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.rules]

    @property
    def head_to_code(self) -> dict[str, str]:
        return {r.head.lower(): r.code for r in self.rules}


@dataclass(frozen=True)
class Verdict:
    """What the oracle says of one transaction."""

    label: str  # FRAUD | LEGITIMATE
    risk_score: int
    red_flags: list[str]  # codes, in profile order
    generic_score: int  # sum of generic weights before capping/overrides
    deciding_rule: str | None  # documented/historical rule that forced FRAUD, if any
    mitigations: list[str]  # e.g. "travel notice on file"


def load_profile(path: Path) -> Profile:
    """Parse and check a profile YAML; every problem names the file and the rule."""
    path = resolve_resource(Path(path))
    if not path.exists():
        raise FraudtuneError(f"{path}: issuer profile not found; pass --profile or data.profile=PATH")
    try:
        raw = yaml.safe_load(read_user_text(path, "YAML issuer profile"))
    except yaml.YAMLError as exc:
        raise FraudtuneError(f"{path}: invalid YAML ({yaml_problem(exc)})") from exc
    if not isinstance(raw, dict):
        raise FraudtuneError(f"{path}: a profile must be a mapping")
    rules: list[Rule] = []
    for section, kind in (
        ("generic_flags", "generic"),
        ("documented_rules", "documented"),
        ("historical_patterns", "historical"),
    ):
        for i, item in enumerate(raw.get(section) or []):
            rules.append(_parse_rule(item, kind, f"{path}: {section}[{i}]"))
    codes = [r.code for r in rules]
    if len(set(codes)) != len(codes):
        raise FraudtuneError(f"{path}: duplicate rule codes {sorted({c for c in codes if codes.count(c) > 1})}")
    heads = [r.head.lower() for r in rules]
    if len(set(heads)) != len(heads):
        raise FraudtuneError(f"{path}: two rules share a phrase head; heads must map 1:1 to codes")
    return Profile(
        name=str(raw.get("name", path.stem)),
        rules=tuple(rules),
        decision_threshold=int(raw.get("decision_threshold", 50)),
        max_score=int(raw.get("max_score", 100)),
        txn_codes={str(k): str(v) for k, v in (raw.get("txn_codes") or {}).items()},
        categories=tuple(raw.get("categories") or ()),
        channels=tuple(raw.get("channels") or ()),
        source=path,
    )


def _parse_rule(item: Any, kind: str, where: str) -> Rule:
    if not isinstance(item, dict) or "code" not in item or "head" not in item:
        raise FraudtuneError(f"{where}: a rule needs 'code' and 'head'")
    unknown = set(item) - {"code", "head", "weight", "min_score", "when", "when_any", "detail"}
    if unknown:
        raise FraudtuneError(f"{where} ({item['code']}): unknown keys {sorted(unknown)}")
    conds = {
        key: tuple(_parse_condition(c, f"{where} ({item['code']}).{key}") for c in item.get(key) or [])
        for key in ("when", "when_any")
    }
    if not conds["when"] and not conds["when_any"]:
        raise FraudtuneError(f"{where} ({item['code']}): needs 'when' or 'when_any' conditions")
    weight, min_score = int(item.get("weight", 0)), int(item.get("min_score", 0))
    if kind == "generic" and weight <= 0:
        raise FraudtuneError(f"{where} ({item['code']}).weight: a generic flag needs a positive weight")
    if kind != "generic" and min_score <= 0:
        raise FraudtuneError(f"{where} ({item['code']}).min_score: a rule needs a positive min_score")
    return Rule(
        code=str(item["code"]),
        head=str(item["head"]),
        kind=kind,
        when=conds["when"],
        when_any=conds["when_any"],
        weight=weight,
        min_score=min_score,
        detail=str(item.get("detail", "")),
    )


def _parse_condition(raw: Any, where: str) -> Condition:
    if not isinstance(raw, dict) or "field" not in raw or raw.get("op") not in OPS:
        raise FraudtuneError(f"{where}: a condition is {{field, op, value}} with op one of {', '.join(OPS)}")
    return Condition(field=str(raw["field"]), op=str(raw["op"]), value=raw.get("value"))


def derived_facts(txn: dict[str, Any]) -> dict[str, Any]:
    """Facts computed from the raw fields: the ones rules use and the ones the chat rendering shows."""
    customer, merchant = txn["customer"], txn["merchant"]
    avg = float(customer["avg_amount"])
    # rounded so that an amount of exactly 10x the average compares as 10 (1.40 / 0.14 is 9.999999999999998)
    ratio = round(float(txn["amount"]) / avg, 9) if avg > 0 else math.inf
    hour = datetime.fromisoformat(txn["timestamp"]).hour
    country = merchant["country"]
    if country == customer["home_country"]:
        status = "home"
    elif country == customer.get("travel_notice_country"):
        status = "travel_notice"
    else:
        status = "foreign"
    return {
        "amount_ratio": ratio,
        "hour": hour,
        "country_status": status,
        "category_usual": merchant["category"] in (customer.get("usual_categories") or []),
    }


def lookup(txn: dict[str, Any], name: str, derived: dict[str, Any]) -> Any:
    """Value of a dotted field or derived fact; None when absent."""
    if name in derived:
        return derived[name]
    return get_dotted(txn, name)


def holds(cond: Condition, txn: dict[str, Any], derived: dict[str, Any]) -> bool:
    """One condition; a missing (None) value never satisfies a comparison."""
    value = lookup(txn, cond.field, derived)
    if cond.op == "is_true":
        return value is True
    if cond.op == "is_false":
        return value is False
    if value is None:
        return False
    match cond.op:
        case "eq":
            return value == cond.value
        case "ne":
            return value != cond.value
        case "in":
            return value in cond.value
        case "not_in":
            return value not in cond.value
        case "startswith":
            return isinstance(value, str) and value.startswith(cond.value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return {"ge": value >= cond.value, "gt": value > cond.value, "le": value <= cond.value, "lt": value < cond.value}[
        cond.op
    ]


def fires(rule: Rule, txn: dict[str, Any], derived: dict[str, Any] | None = None) -> bool:
    derived = derived if derived is not None else derived_facts(txn)
    if not all(holds(c, txn, derived) for c in rule.when):
        return False
    return not rule.when_any or any(holds(c, txn, derived) for c in rule.when_any)


def score_of(profile: Profile, codes: list[str]) -> tuple[int, str]:
    """The risk score and label SPEC 3 gives a transaction on which exactly these flags fire: the generic weights
    summed (capped at max_score), raised to the highest min_score of any rule among them; FRAUD iff a rule fired
    or the score reaches the threshold."""
    rules = [profile.rule(code) for code in codes]
    generic = min(profile.max_score, sum(r.weight for r in rules if r.kind == "generic"))
    overriding = [r.min_score for r in rules if r.kind != "generic"]
    score = max([generic, *overriding])
    return score, "FRAUD" if overriding or score >= profile.decision_threshold else "LEGITIMATE"


def assess(
    profile: Profile, txn: dict[str, Any], kinds: tuple[str, ...] = ("generic", "documented", "historical")
) -> Verdict:
    """The oracle: SPEC 3 applied to one transaction. `kinds` restricts which knowledge is used (baselines)."""
    derived = derived_facts(txn)
    fired = [r for r in profile.rules if r.kind in kinds and fires(r, txn, derived)]
    generic = sum(r.weight for r in fired if r.kind == "generic")
    deciding, floor = None, min(profile.max_score, generic)
    for r in fired:
        if r.kind != "generic" and r.min_score > floor:
            floor, deciding = r.min_score, r.code
        elif r.kind != "generic" and deciding is None:
            deciding = r.code
    score, label = score_of(profile, [r.code for r in fired])
    mitigations = []
    if derived["country_status"] == "travel_notice":
        mitigations.append("travel notice on file")
    return Verdict(
        label=label,
        risk_score=int(score),
        red_flags=[r.code for r in fired],
        generic_score=generic,
        deciding_rule=deciding,
        mitigations=mitigations,
    )


def detail_facts(txn: dict[str, Any]) -> dict[str, Any]:
    """The values `detail` format strings may use."""
    d = derived_facts(txn)
    c, m, v = txn["customer"], txn["merchant"], txn["velocity"]
    ts = datetime.fromisoformat(txn["timestamp"])
    reset = c.get("password_reset_hours_ago")
    return {
        **d,
        "amount_ratio_text": format_ratio(d["amount_ratio"]),
        "amount_text": format_amount(txn["amount"], txn.get("currency", "USD")),
        "time_text": ts.strftime("%I:%M %p").lstrip("0"),
        "merchant_country": m["country"],
        "home_country": c["home_country"],
        "category": m["category"],
        "merchant_id": m["id"],
        "merchant_name": m["name"],
        "account_age_days": c["account_age_days"],
        "history_count": c["history_count"],
        "txn_code": txn["txn_code"],
        "txn_last_1h": v["txn_last_1h"],
        "txn_last_24h": v["txn_last_24h"],
        "reset_hours_text": "?" if reset is None else f"{reset:g}",
    }


def red_flag_phrase(rule: Rule, facts: dict[str, Any]) -> str:
    """'High amount (33x average)': the fixed head, then the detail."""
    if not rule.detail:
        return rule.head
    try:
        return f"{rule.head} ({rule.detail.format(**facts)})"
    except (KeyError, ValueError, IndexError):
        return rule.head


def format_ratio(ratio: float) -> str:
    """The amount as a multiple of the customer's average, cut (not rounded) to a tenth below 10 and to a whole
    number above: the shown value never reaches a threshold the ratio does not (9.99x reads 9.9, not 10.0, so a
    10x rule and its text agree)."""
    if math.isinf(ratio):  # a customer without past spend (avg_amount 0)
        return "∞"
    if ratio >= 10:
        return str(math.floor(round(ratio, 6)))
    return f"{math.floor(round(ratio * 10, 6)) / 10:.1f}"


def format_amount(amount: float, currency: str = "USD") -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{amount:,.2f}"
