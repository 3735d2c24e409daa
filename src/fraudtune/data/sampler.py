"""An ordinary transaction of an established customer: the clean starting point the generator then shapes."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Any

from fraudtune.data import catalog
from fraudtune.data.schema import CATEGORIES

FIRST_DAY = datetime(2026, 1, 1)
DAYS = 181  # January to June 2026: every weekday many times over


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def fresh_id(rng: random.Random, prefix: str, used: set[str]) -> str:
    """A random id such as T-0F3A19C2 that is not in `used`."""
    while True:
        candidate = f"{prefix}-{rng.randrange(16**8):08X}"
        if candidate not in used:
            return candidate


def base_transaction(rng: random.Random, txn_id: str, customer_id: str) -> dict[str, Any]:
    """A plausible everyday purchase: usual category, usual amount, daytime, known device, home or notified trip."""
    category = rng.choice(CATEGORIES)
    merchant = rng.choice(catalog.MERCHANTS[category])
    channels = catalog.CHANNELS_OF_CATEGORY[category]
    channel = rng.choices(list(channels), list(channels.values()))[0]
    codes = catalog.codes_for(category, channel)
    txn_code = rng.choices(list(codes), list(codes.values()))[0]
    hour = rng.choices(list(catalog.DAY_HOUR_WEIGHTS), list(catalog.DAY_HOUR_WEIGHTS.values()))[0]
    when = FIRST_DAY + timedelta(days=rng.randrange(DAYS), hours=hour, minutes=rng.randrange(60))
    customer = _customer(rng, customer_id, category)
    abroad = rng.random() < 0.15
    country = customer["home_country"]
    if abroad:  # a trip the customer told the bank about
        country = rng.choice([c for c in catalog.FOREIGN_COUNTRIES if c != country])
        customer["travel_notice_country"] = country
    ratio = min(max(rng.lognormvariate(0, 0.6), 0.15), 5.0)
    one_hour = rng.choices((0, 1, 2), (6, 3, 1))[0]
    return {
        "transaction_id": txn_id,
        "timestamp": when.isoformat(),
        "amount": max(1.0, round(customer["avg_amount"] * ratio, 2)),
        "currency": "USD",
        "merchant": {"id": merchant.id, "name": merchant.name, "category": category, "country": country},
        "channel": channel,
        "txn_code": txn_code,
        "device_new": False,
        "customer": customer,
        "velocity": {"txn_last_1h": one_hour, "txn_last_24h": one_hour + rng.randint(0, 5)},
    }


def _customer(rng: random.Random, customer_id: str, category: str) -> dict[str, Any]:
    age = int(log_uniform(rng, 30, 6000))
    others = rng.sample([c for c in CATEGORIES if c != category], rng.randint(2, 5))
    low, high = catalog.AVG_AMOUNT_RANGE[category]
    notice = rng.choice(catalog.FOREIGN_COUNTRIES) if rng.random() < 0.05 else None
    home = rng.choices(list(catalog.HOME_COUNTRY_WEIGHTS), list(catalog.HOME_COUNTRY_WEIGHTS.values()))[0]
    return {
        "id": customer_id,
        "home_country": home,
        "avg_amount": round(log_uniform(rng, low, high), 2),
        "history_count": int(log_uniform(rng, 5, min(3000, age * 1.5))),
        "account_age_days": age,
        "usual_categories": [c for c in CATEGORIES if c == category or c in others],
        "travel_notice_country": notice if notice != home else None,
        "password_reset_hours_ago": round(log_uniform(rng, 1, 2000), 1) if rng.random() < 0.08 else None,
    }
