"""Field setters that keep a draft transaction coherent: a merchant belongs to one category, a code to one
channel, the last 24 hours include the last hour, a young account has few past transactions.

Values of the form ("other", not_prefix, excluded) ask for any value outside `excluded`; ("prefix", p) for a
merchant id starting with p.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fraudtune.data import catalog
from fraudtune.data.schema import CATEGORIES, CHANNELS
from fraudtune.dotted import set_dotted

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


def _set_path(txn: dict[str, Any], name: str, value: Any) -> bool:
    if isinstance(value, tuple):  # "other"/"prefix" on a field without a domain: can't choose
        return False
    set_dotted(txn, name, value)
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


def set_field(d: Draft, name: str, value: Any, rng: random.Random) -> bool:
    """Set a field (or move a derived fact) keeping the transaction coherent; pins what it set."""
    setter = _SETTERS.get(name)
    ok = setter(d, value, rng) if setter else _set_path(d.txn, name, value)
    if ok:
        d.pinned.update(LEVERS.get(name, (name,)))
    return ok
