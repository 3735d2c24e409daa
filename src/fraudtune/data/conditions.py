"""Make a profile rule fire or stay quiet on a draft transaction by editing the fields its conditions read.

The generator works from the profile's own conditions (not from a copy of SPEC 3), so a company that edits its
profile gets data for its own rules. Fields set on purpose are pinned: later edits go through other fields
(e.g. an amount pinned by a rule makes AMOUNT_SPIKE move the customer's average instead).
"""

from __future__ import annotations

import math
import random
from typing import Any

from fraudtune.data import catalog
from fraudtune.data.setters import LEVERS, Draft, set_field
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


def make_near_miss(d: Draft, rule: Rule, rng: random.Random, which: int | None = None) -> bool:
    """Every condition holds except one threshold, missed narrowly (TC-07 at $450 when the rule says >= $500).

    which: index of the threshold to miss (taken in turn by the caller so each one is missed); None: random."""
    if not rule.when and rule.when_any:  # e.g. NEW_CUSTOMER: just past every alternative (30-day account...)
        return all([make_hold(d, negate(c), rng, near=True) for c in rule.when_any])
    numeric = [c for c in rule.when if c.op in NUMERIC_OPS]
    if not numeric:
        return False
    missed = rng.choice(numeric) if which is None else numeric[which % len(numeric)]
    ok = all([make_hold(d, c, rng) for c in rule.when if c is not missed])
    if rule.when_any:
        ok = make_hold(d, rng.choice(rule.when_any), rng) and ok
    return make_hold(d, negate(missed), rng, near=True) and ok


def make_lookalike(d: Draft, rule: Rule, pick: str, rng: random.Random) -> bool:
    """Every condition holds except the list one, which gets a lookalike of the listed value `pick` (the same
    merchant stem with another number): the narrowest miss of an exact list."""
    listed = next((c for c in rule.when if c.op == "in" and pick in c.value), None)
    if listed is None:
        return False
    ok = set_field(d, listed.field, catalog.lookalike_id(pick, list(listed.value), rng), rng)
    ok = all([make_hold(d, c, rng) for c in rule.when if c is not listed]) and ok
    if rule.when_any:
        ok = make_hold(d, rng.choice(rule.when_any), rng) and ok
    return ok and not fires(rule, d.txn)


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
        if set_field(d, c.field, value, rng) and _holds(d, c):
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
    """A value on the right side of `x`; near: within 20% of it, one step for small counts (velocity 5 for >= 6),
    and a quarter of the time exactly on it."""
    lo, hi, decimals, _ = spec
    step = 10.0**-decimals
    a, b = {"ge": (x, hi), "gt": (x + step, hi), "le": (lo, x), "lt": (lo, x - step)}[op]
    a, b = max(a, lo), min(b, hi)
    if decimals == 0:
        a, b = math.ceil(a), math.floor(b)
    if a > b:
        return _NONE
    if near:
        width = max(1, round(abs(x) * 0.1)) - 1 if decimals == 0 else max(2 * step, abs(x) * 0.2)
        a, b = (a, min(b, a + width)) if op in ("ge", "gt") else (max(a, b - width), b)
        if rng.random() < 0.25:
            return int(a if op in ("ge", "gt") else b) if decimals == 0 else round(a if op in ("ge", "gt") else b, 2)
    if decimals == 0:
        return rng.randint(int(a), int(b))
    value = math.exp(rng.uniform(math.log(a), math.log(b))) if a > 0 and b / a > 3 else rng.uniform(a, b)
    return min(max(round(value, decimals), a), b)


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
