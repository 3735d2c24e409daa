"""What the generator is asked to make: one Intent per example, in the SPEC 4 shares, with every company rule
(and every listed value of a list rule, e.g. each blacklisted merchant id) covered, and its near misses.

A *unit* is one thing a learner has to know: a rule, or one value of a rule's list condition (a blacklist has
one unit per merchant id, since knowing one id says nothing about the others).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from fraudtune.errors import FraudtuneError
from fraudtune.profile import Condition, Profile, Rule

# SPEC 4: the 500-example mix; other sizes keep the ratios (largest-remainder rounding)
CATEGORY_MIX = {"clear_fraud": 100, "clear_legitimate": 200, "borderline": 150, "company_specific": 50}
HISTORICAL_SHARE = 1 / 3  # of company_specific: "about a third" from the historical patterns
# near misses (a rule's threshold narrowly missed) among the negatives of these categories
NEAR_MISS_SHARE = {"clear_legitimate": 0.12, "borderline": 1 / 3}
LISTED_FIELDS = ("merchant.id",)  # an `in` condition on these fields is a list whose values are learnt one by one
NUMERIC_OPS = ("ge", "gt", "le", "lt")

Unit = tuple[str, str | None]  # (rule code, listed value or None)


@dataclass(frozen=True)
class Intent:
    """What one example should be: its category and label, and the rule that decides or narrowly doesn't fire."""

    category: str
    label: str
    rule: str | None = None
    near_miss: str | None = None
    miss: int = 0  # which of the near-miss rule's thresholds is missed
    pick: str | None = None  # the listed value to use (rule) or to imitate (near miss: a lookalike)


def largest_remainder(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to `total`, proportional to `weights` (ties go to the earlier key)."""
    whole = sum(weights.values())
    exact = {k: total * w / whole for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    by_remainder = sorted(weights, key=lambda k: -(exact[k] - counts[k]))
    for k in by_remainder[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def listed_condition(rule: Rule) -> Condition | None:
    """The rule's list condition (merchant.id in [...]), if it has one."""
    return next((c for c in rule.when if c.op == "in" and c.field in LISTED_FIELDS), None)


def narrowed(rule: Rule, pick: str | None) -> Rule:
    """The rule with its list condition cut to one value, so that making it fire uses exactly that value."""
    listed = listed_condition(rule)
    if pick is None or listed is None:
        return rule
    when = tuple(Condition(c.field, "in", [pick]) if c is listed else c for c in rule.when)
    return replace(rule, when=when)


def units(rule: Rule) -> list[Unit]:
    listed = listed_condition(rule)
    return [(rule.code, str(v)) for v in listed.value] if listed else [(rule.code, None)]


def has_near_miss(rule: Rule) -> bool:
    """A threshold that can be narrowly missed, a list that a lookalike value narrowly misses, or alternatives."""
    return (
        any(c.op in NUMERIC_OPS for c in rule.when) or listed_condition(rule) is not None or bool(rule.when_any)
    ) and rule.kind != "generic"


def take_turns(rules: list[Rule], k: int) -> list[Unit]:
    """`k` units: the rules in turn, and within a list rule its values in turn."""
    if k and not rules:
        raise FraudtuneError("profile has no documented rules or historical patterns for company_specific examples")
    taken = [0] * len(rules)
    out = []
    for i in range(k):
        j = i % len(rules)
        options = units(rules[j])
        out.append(options[taken[j] % len(options)])
        taken[j] += 1
    return out


def per_unit_need(rule_min: int, train_frac: float) -> int:
    """Examples of one unit that put at least `rule_min` into the training split (the split is stratified by
    unit and matches the fractions within one example)."""
    return 0 if rule_min <= 0 else math.ceil(rule_min / train_frac) + 1


def plan(
    n: int,
    profile: Profile,
    rng: random.Random,
    rule_min: int = 0,
    train_frac: float = 0.8,
    item_min: int | None = None,
) -> list[Intent]:
    """The intents of the data set: SPEC 4 counts, balanced borderline labels, rules taken in turn, and with
    `rule_min` each unit of every company rule at least that often in the training split, with as many near
    misses (`item_min`, if given, for each listed value instead, with the list rule as a whole still at
    `rule_min`). The extra rule cases and near misses are added on top (the data set can outgrow `n`), and as many
    borderline frauds as the borderline near misses added, so the labels of the borderline stay balanced; the plain
    negatives keep their SPEC 4 count, since they are most of what a model is asked about (converting them
    into near misses left a k=100 set without one ordinary legitimate row, and its model called FRAUD on half
    of them)."""
    counts = largest_remainder(n, CATEGORY_MIX)
    need = unit_needs(profile, rule_min, item_min, train_frac)
    company = _company_units(profile, counts["company_specific"], need)
    near_rules = [r for r in profile.rules if has_near_miss(r)]
    n_legit, n_border = counts["clear_legitimate"], counts["borderline"]
    fraud_half = n_border // 2
    k_legit = round(n_legit * NEAR_MISS_SHARE["clear_legitimate"]) if near_rules else 0
    k_border = round((n_border - fraud_half) * NEAR_MISS_SHARE["borderline"]) if near_rules else 0
    base = take_turns(near_rules, k_legit + k_border)
    extra = _topped_up(base, near_rules, need)[len(base) :]
    # the top-ups go to both kinds of negatives in proportion to their sizes
    to_legit = largest_remainder(len(extra), {"a": n_legit, "b": n_border - fraud_half})["a"]
    legit_near = base[:k_legit] + extra[:to_legit]
    border_near = base[k_legit:] + extra[to_legit:]
    intents = [Intent("clear_fraud", "FRAUD")] * counts["clear_fraud"]
    intents += _negatives("clear_legitimate", n_legit - k_legit, legit_near)
    border_legit = _negatives("borderline", n_border - fraud_half - k_border, border_near)
    # as many borderline frauds as borderline negatives: the near-miss top-ups must not tilt the score threshold
    # (without this a k=100 set held 400 borderline frauds against 1,164 negatives)
    intents += [Intent("borderline", "FRAUD")] * (fraud_half + len(border_near) - k_border)
    intents += border_legit
    intents += [Intent("company_specific", "FRAUD", rule=code, pick=pick) for code, pick in company]
    rng.shuffle(intents)
    return intents


def unit_needs(profile: Profile, rule_min: int, item_min: int | None, train_frac: float) -> dict[Unit, int]:
    """Examples wanted per unit: `rule_min` (into the training split) for a rule; for one listed value of a list
    rule `item_min` (None: `rule_min`), but never so few that the rule as a whole falls under `rule_min`."""
    rule_need = per_unit_need(rule_min, train_frac)
    item_need = rule_need if item_min is None else per_unit_need(item_min, train_frac)
    needs = {}
    for rule in profile.rules:
        options = units(rule)
        for unit in options:
            needs[unit] = rule_need if unit[1] is None else max(item_need, math.ceil(rule_need / len(options)))
    return needs


def _company_units(profile: Profile, k: int, need: dict[Unit, int]) -> list[Unit]:
    documented, historical = profile.by_kind("documented"), profile.by_kind("historical")
    k_hist = round(k * HISTORICAL_SHARE) if documented and historical else (k if historical else 0)
    taken = take_turns(historical, k_hist) + take_turns(documented, k - k_hist)
    return _topped_up(taken, historical + documented, need)


def _topped_up(taken: list[Unit], rules: list[Rule], need: dict[Unit, int]) -> list[Unit]:
    """`taken` plus as many of each unit as it lacks to reach its `need`."""
    lacking = {u: max(0, need[u] - taken.count(u)) for r in rules for u in units(r)}
    extra = []
    for i in range(max(lacking.values(), default=0)):  # round robin, so any prefix covers every unit alike
        extra += [u for u, k in lacking.items() if k > i]
    return taken + extra


def _negatives(category: str, plain: int, near: list[Unit]) -> list[Intent]:
    """One LEGITIMATE near-miss intent per unit in `near` (a rule's thresholds are missed in turn) and `plain`
    plain ones."""
    seen: dict[Unit, int] = {}
    out = []
    for unit in near:
        out.append(Intent(category, "LEGITIMATE", near_miss=unit[0], miss=seen.get(unit, 0), pick=unit[1]))
        seen[unit] = seen.get(unit, 0) + 1
    return out + [Intent(category, "LEGITIMATE")] * plain


def unit_key(rule: str | None, pick: str | None) -> str | None:
    """A unit's name in metadata and data cards: 'MANUAL_KEY_ENTRY', 'BLACKLISTED_MERCHANT:M-QUICKGIFT-0007'."""
    if rule is None:
        return None
    return rule if pick is None else f"{rule}:{pick}"
