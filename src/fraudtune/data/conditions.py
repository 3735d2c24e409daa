"""Make a profile rule fire or stay quiet on a draft transaction by editing the fields its conditions read.

The generator works from the profile's own conditions (not from a copy of SPEC 3), so a company that edits its
profile gets data for its own rules. Fields set on purpose are pinned: later edits go through other fields
(e.g. an amount pinned by a rule makes AMOUNT_SPIKE move the customer's average instead).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fraudtune.data import catalog
from fraudtune.data.schema import CATEGORIES, CHANNELS
from fraudtune.profile import Condition, Rule, derived_facts, fires, holds

NUMERIC_OPS = ("ge", "gt", "le", "lt")
NEGATE = {
    "ge": "lt",
    "lt": "ge",
    "gt": "le",
    "le": "gt",
    "eq": "ne",
    "ne": "eq",
    "in": "not_in",
    "not_in": "in",
    "is_true": "is_false",
    "is_false": "is_true",
    "startswith": "not_startswith",
    "not_startswith": "startswith",
}
# field -> (lowest, highest, decimals, may be null): the range a generated value is drawn from
NUMERIC = {
    "amount": (1.0, 10_000.0, 2, False),
    "customer.avg_amount": (1.0, 5_000.0, 2, False),
    "customer.account_age_days": (0, 7_000, 0, False),
    "customer.history_count": (0, 3_000, 0, False),
    "customer.password_reset_hours_ago": (0.5, 2_000.0, 1, True),
    "velocity.txn_last_1h": (0, 12, 0, False),
    "velocity.txn_last_24h": (0, 30, 0, False),
    "hour": (0, 23, 0, False),
    "amount_ratio": (0.1, 200.0, 2, False),
}
# derived facts and the raw fields that move them
LEVERS = {
    "amount_ratio": ("amount", "customer.avg_amount"),
    "hour": ("timestamp",),
    "country_status": ("merchant.country", "customer.home_country", "customer.travel_notice_country"),
    "category_usual": ("customer.usual_categories",),
}


@dataclass
class Draft:
    """A transaction being shaped, and the fields earlier steps set on purpose."""

    txn: dict[str, Any]
    pinned: set[str] = field(default_factory=set)

    def free(self, name: str) -> bool:
        return any(f not in self.pinned for f in LEVERS.get(name, (name,)))


def make_fire(d: Draft, rule: Rule, rng: random.Random, near: bool = False) -> bool:
    """Set fields so that every `when` condition and one `when_any` condition hold."""
    ok = all([make_hold(d, c, rng, near) for c in rule.when])
    if rule.when_any:
        ok = make_hold(d, rng.choice(rule.when_any), rng, near) and ok
    return ok


def make_quiet(d: Draft, rule: Rule, rng: random.Random, near: bool = False) -> bool:
    """Break one `when` condition (on a field still free), or every `when_any` condition."""
    if rule.when_any and (not rule.when or rng.random() < 0.5):
        return all([make_hold(d, negate(c), rng, near) for c in rule.when_any])
    free = [c for c in rule.when if d.free(c.field)]
    return bool(free) and make_hold(d, negate(rng.choice(free)), rng, near)


def make_near_miss(d: Draft, rule: Rule, rng: random.Random) -> bool:
    """Every condition holds except one threshold, missed narrowly (TC-07 at $450 when the rule says >= $500)."""
    if not rule.when and rule.when_any:  # e.g. NEW_CUSTOMER: just past every alternative (30-day account...)
        return all([make_hold(d, negate(c), rng, near=True) for c in rule.when_any])
    numeric = [c for c in rule.when if c.op in NUMERIC_OPS]
    if not numeric:
        return False
    missed = rng.choice(numeric)
    ok = all([make_hold(d, c, rng) for c in rule.when if c is not missed])
    if rule.when_any:
        ok = make_hold(d, rng.choice(rule.when_any), rng) and ok
    return make_hold(d, negate(missed), rng, near=True) and ok


def negate(c: Condition) -> Condition:
    return Condition(c.field, NEGATE[c.op], c.value)


def make_hold(d: Draft, c: Condition, rng: random.Random, near: bool = False) -> bool:
    """Change the condition's field so that it holds; False if it can't (pinned, or no such value).

    near: land close to the threshold even if the condition already holds (a near miss must be near)."""
    if _holds(d, c) and not (near and c.op in NUMERIC_OPS and d.free(c.field)):
        d.pinned.update(LEVERS.get(c.field, (c.field,)))
        return True
    if not d.free(c.field):
        return False
    for _ in range(4):  # a drawn value can be out of range for a pinned neighbour (avg for a pinned amount)
        value = _target(d, c, rng, near)
        if value is _NONE:
            return False
        if _set(d, c.field, value, rng) and _holds(d, c):
            return True
    return False


_NONE = object()


def _holds(d: Draft, c: Condition) -> bool:
    derived = derived_facts(d.txn)
    if c.op == "not_startswith":
        return not holds(Condition(c.field, "startswith", c.value), d.txn, derived)
    return holds(c, d.txn, derived)


def _target(d: Draft, c: Condition, rng: random.Random, near: bool) -> Any:
    if c.field == "hour" and c.op in NUMERIC_OPS and not near:  # ordinary hours follow daily traffic
        hours = [h for h in range(24) if holds(Condition("hour", c.op, c.value), {}, {"hour": h})]
        return rng.choices(hours, [catalog.DAY_HOUR_WEIGHTS.get(h, 1) for h in hours])[0] if hours else _NONE
    if c.op in NUMERIC_OPS:
        spec = NUMERIC.get(c.field)
        if spec is None:
            return _NONE
        if spec[3] and c.op in ("gt", "ge") and near and rng.random() < 0.3:
            return None  # a null reset time is a miss too ("no reset on file")
        return pick_number(c.op, c.value, spec, rng, near)
    if c.op in ("is_true", "is_false"):
        return c.op == "is_true"
    if c.op == "eq":
        return c.value
    if c.op == "in":
        return rng.choice(list(c.value))
    if c.op == "startswith":
        return ("prefix", c.value)
    excluded = [c.value] if c.op in ("ne", "not_startswith") else list(c.value)
    return ("other", c.op == "not_startswith", excluded)


def pick_number(op: str, x: float, spec: tuple, rng: random.Random, near: bool) -> float | int | object:
    """A value on the right side of `x`; near: within 20% of it (and sometimes exactly on it)."""
    lo, hi, decimals, _ = spec
    step = 10.0**-decimals
    a, b = {"ge": (x, hi), "gt": (x + step, hi), "le": (lo, x), "lt": (lo, x - step)}[op]
    a, b = max(a, lo), min(b, hi)
    if decimals == 0:
        a, b = math.ceil(a), math.floor(b)
    if a > b:
        return _NONE
    if near:
        width = max(2 * step, abs(x) * 0.2)
        a, b = (a, min(b, a + width)) if op in ("ge", "gt") else (max(a, b - width), b)
        if rng.random() < 0.25:
            return int(a if op in ("ge", "gt") else b) if decimals == 0 else round(a if op in ("ge", "gt") else b, 2)
    if decimals == 0:
        return rng.randint(int(a), int(b))
    value = math.exp(rng.uniform(math.log(a), math.log(b))) if a > 0 and b / a > 3 else rng.uniform(a, b)
    return min(max(round(value, decimals), a), b)


def _set(d: Draft, name: str, value: Any, rng: random.Random) -> bool:
    setter = _SETTERS.get(name)
    ok = setter(d, value, rng) if setter else _set_path(d.txn, name, value)
    if ok:
        d.pinned.update(LEVERS.get(name, (name,)))
    return ok


def _set_path(txn: dict[str, Any], name: str, value: Any) -> bool:
    if isinstance(value, tuple):  # "other"/"prefix" on a field without a domain: can't choose
        return False
    *parents, leaf = name.split(".")
    node = txn
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return True


def _set_hour(d: Draft, hour: int, rng: random.Random) -> bool:
    ts = datetime.fromisoformat(d.txn["timestamp"]).replace(hour=int(hour), minute=rng.randint(0, 59))
    d.txn["timestamp"] = ts.isoformat()
    return True


def _set_ratio(d: Draft, ratio: float, rng: random.Random) -> bool:
    """Move the amount (or, if the amount is pinned, the customer's average) to reach amount/avg = ratio."""
    txn, customer = d.txn, d.txn["customer"]
    amount, avg = txn["amount"], customer["avg_amount"]
    if "amount" not in d.pinned:
        amount = round(avg * ratio, 2)
        if not 1.0 <= amount <= 10_000:
            if "customer.avg_amount" in d.pinned:
                return False
            amount = round(min(max(amount, 1.0), 10_000 * rng.uniform(0.3, 1.0)), 2)
            avg = round(amount / ratio, 2)
    elif "customer.avg_amount" not in d.pinned:
        avg = round(amount / ratio, 2)
    else:
        return False
    if not 1.0 <= avg <= 5_000:
        return False
    txn["amount"], customer["avg_amount"] = amount, avg
    return True


def _set_age(d: Draft, days: int, rng: random.Random) -> bool:
    """A young account has had time for only a few transactions (at most ~3 a day)."""
    customer = d.txn["customer"]
    customer["account_age_days"] = days
    if customer["history_count"] > 3 * days + 5 and "customer.history_count" not in d.pinned:
        customer["history_count"] = rng.randint(0, 3 * days + 5)
    return True


def _set_status(d: Draft, status: Any, rng: random.Random) -> bool:
    """Make the merchant country home, covered by a travel notice, or foreign."""
    if isinstance(status, tuple):
        status = rng.choice([s for s in ("home", "travel_notice", "foreign") if s not in status[2]])
    m, c = d.txn["merchant"], d.txn["customer"]
    can_move_merchant = "merchant.country" not in d.pinned
    if status == "home":
        if can_move_merchant:
            m["country"] = c["home_country"]
        elif "customer.home_country" not in d.pinned:
            c["home_country"] = m["country"]
        return m["country"] == c["home_country"]
    if m["country"] == c["home_country"] or (status == "foreign" and m["country"] == c.get("travel_notice_country")):
        if can_move_merchant:
            m["country"] = rng.choice([x for x in catalog.FOREIGN_COUNTRIES if x != c["home_country"]])
        elif "customer.home_country" not in d.pinned:
            c["home_country"] = rng.choice([x for x in catalog.HOME_COUNTRY_WEIGHTS if x != m["country"]])
    if status == "travel_notice":
        c["travel_notice_country"] = m["country"]
    elif c.get("travel_notice_country") == m["country"]:
        c["travel_notice_country"] = None
    return True


def _set_usual(d: Draft, usual: bool, rng: random.Random) -> bool:
    cats = [x for x in d.txn["customer"]["usual_categories"] if x != d.txn["merchant"]["category"]]
    if usual:
        cats.append(d.txn["merchant"]["category"])
    d.txn["customer"]["usual_categories"] = [x for x in CATEGORIES if x in cats]
    return True


def _set_category(d: Draft, value: Any, rng: random.Random) -> bool:
    txn = d.txn
    if isinstance(value, tuple):
        options = [x for x in CATEGORIES if x not in value[2]]
        if "txn_code" in d.pinned or "channel" in d.pinned:
            options = [x for x in options if catalog.compatible(x, txn["txn_code"], txn["channel"])]
        if not options:
            return False
        value = rng.choice(options)
    txn["merchant"]["category"] = value
    if "merchant.id" not in d.pinned:
        _use_merchant(txn, rng.choice(catalog.MERCHANTS[value]))
    if catalog.compatible(value, txn["txn_code"], txn["channel"]):
        return True
    if "txn_code" in d.pinned or "channel" in d.pinned:
        return False
    channels = catalog.CHANNELS_OF_CATEGORY[value]
    txn["channel"] = rng.choices(list(channels), list(channels.values()))[0]
    codes = catalog.codes_for(value, txn["channel"])
    txn["txn_code"] = rng.choices(list(codes), list(codes.values()))[0]
    return True


def _set_code(d: Draft, code: Any, rng: random.Random) -> bool:
    txn, category = d.txn, d.txn["merchant"]["category"]
    if isinstance(code, tuple):
        codes = {x: w for x, w in catalog.codes_for(category, txn["channel"]).items() if x not in code[2]}
        if not codes:
            return False
        code = rng.choices(list(codes), list(codes.values()))[0]
    channel = "atm" if category == "atm_cash" and code == "TC-01" else catalog.CHANNEL_OF_CODE.get(code, "online")
    txn["txn_code"], txn["channel"] = code, channel
    d.pinned.add("channel")
    if catalog.compatible(category, code, channel):
        return True
    options = [x for x in CATEGORIES if catalog.compatible(x, code, channel)]
    return "merchant.category" not in d.pinned and bool(options) and _set_category(d, rng.choice(options), rng)


def _set_channel(d: Draft, channel: Any, rng: random.Random) -> bool:
    txn = d.txn
    if isinstance(channel, tuple):
        channel = rng.choice([x for x in CHANNELS if x not in channel[2]])
    if "merchant.category" not in d.pinned and channel not in catalog.CHANNELS_OF_CATEGORY[txn["merchant"]["category"]]:
        _use_category_only(d, rng.choice([x for x in CATEGORIES if channel in catalog.CHANNELS_OF_CATEGORY[x]]), rng)
    codes = catalog.codes_for(txn["merchant"]["category"], channel)
    if not codes or "txn_code" in d.pinned:
        return False
    txn["channel"] = channel
    txn["txn_code"] = rng.choices(list(codes), list(codes.values()))[0]
    d.pinned.add("txn_code")
    return True


def _use_category_only(d: Draft, category: str, rng: random.Random) -> None:
    d.txn["merchant"]["category"] = category
    if "merchant.id" not in d.pinned:
        _use_merchant(d.txn, rng.choice(catalog.MERCHANTS[category]))


def _set_merchant_id(d: Draft, value: Any, rng: random.Random) -> bool:
    m = d.txn["merchant"]
    if isinstance(value, tuple) and value[0] == "other":
        _, not_prefix, excluded = value
        pool = [
            x
            for x in catalog.MERCHANTS[m["category"]]
            if not (any(x.id.startswith(e) for e in excluded) if not_prefix else x.id in excluded)
        ]
        if not pool:
            return False
        chosen = rng.choice(pool)
    elif isinstance(value, tuple):
        ring = [x for x in catalog.RING_MERCHANTS if x.id.startswith(value[1])]
        same = [x for x in ring if x.category == m["category"]]
        chosen = (
            rng.choice(same or ring)
            if ring
            else catalog.Merchant(
                f"{value[1]}{rng.choice(('TRADE', 'MART', 'HUB'))}-{rng.randint(0, 9999):04d}",
                "Trade Hub",
                m["category"],
            )
        )
    else:
        chosen = catalog.merchant_for_id(str(value), m["category"])
    _use_merchant(d.txn, chosen)
    d.pinned.add("merchant.id")
    ok = chosen.category == m["category"] or (
        "merchant.category" not in d.pinned and _set_category(d, chosen.category, rng)
    )
    d.pinned.add("merchant.category")  # a merchant sells in one category
    return ok


def _use_merchant(txn: dict[str, Any], merchant: catalog.Merchant) -> None:
    txn["merchant"]["id"], txn["merchant"]["name"] = merchant.id, merchant.name


def _set_country(d: Draft, value: Any, rng: random.Random) -> bool:
    if isinstance(value, tuple):
        home = d.txn["customer"]["home_country"]
        value = (
            home if home not in value[2] else rng.choice([x for x in catalog.FOREIGN_COUNTRIES if x not in value[2]])
        )
    d.txn["merchant"]["country"] = value
    return True


def _set_velocity(key: str) -> Any:
    def setter(d: Draft, value: Any, rng: random.Random) -> bool:
        v = d.txn["velocity"]
        v[key] = value
        other = "txn_last_24h" if key == "txn_last_1h" else "txn_last_1h"
        if v["txn_last_24h"] >= v["txn_last_1h"]:
            return True
        if f"velocity.{other}" in d.pinned:
            return False
        # the last 24 hours include the last hour
        v[other] = value + rng.randint(0, 4) if other == "txn_last_24h" else rng.randint(0, value)
        return True

    return setter


_SETTERS = {
    "hour": _set_hour,
    "amount_ratio": _set_ratio,
    "country_status": _set_status,
    "category_usual": _set_usual,
    "merchant.category": _set_category,
    "merchant.id": _set_merchant_id,
    "merchant.country": _set_country,
    "customer.account_age_days": _set_age,
    "txn_code": _set_code,
    "channel": _set_channel,
    "velocity.txn_last_1h": _set_velocity("txn_last_1h"),
    "velocity.txn_last_24h": _set_velocity("txn_last_24h"),
}


def settle(d: Draft, rules: list[Rule], wanted: set[str], rng: random.Random, near: float = 0.2) -> bool:
    """Switch each rule on (code in `wanted`) or off, a few passes since one edit can move another flag."""
    order = sorted(rules, key=lambda r: any(c.field in LEVERS for c in r.when + r.when_any))  # raw fields first
    for _ in range(4):
        state = {r.code: fires(r, d.txn) for r in rules}
        if all(state[r.code] == (r.code in wanted) for r in rules):
            return True
        for rule in order:
            on = fires(rule, d.txn)
            if rule.code in wanted and not on:
                make_fire(d, rule, rng, near=rng.random() < near)
            elif rule.code not in wanted and on:
                make_quiet(d, rule, rng, near=rng.random() < near)
    return all(fires(r, d.txn) == (r.code in wanted) for r in rules)
