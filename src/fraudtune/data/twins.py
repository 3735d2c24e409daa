"""Minimal pairs (data.twins): each company-rule case, near miss and borderline row with a twin on the other side.

A rule case and a near miss drawn independently differ in many fields, so a learner can separate them by any of
those (a merchant, a country, a score range) and miss the threshold itself. A twin is the same transaction with the
one thing the rule reads moved just across its threshold: TC-07 at $512 (FRAUD) and at $488 (LEGITIMATE), a
blacklisted merchant id and its lookalike, 6 and 5 transactions in the last hour. A borderline row's twin has
one generic signal switched so that the score crosses the threshold (45 -> 50: a first-time category). Only the
rule, or the sum of the weights, tells the two apart, so it is what training has to learn. Twins are labelled by
the profile's oracle like every other row, get a customer and transaction id of their own, and go to their
anchor's split (never across splits).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

from fraudtune.data.conditions import make_fire, make_lookalike, make_near_miss, make_quiet
from fraudtune.data.plan import Intent, listed_condition, narrowed
from fraudtune.data.sampler import fresh_id
from fraudtune.data.schema import validate_transaction
from fraudtune.data.setters import Draft
from fraudtune.data.split import DuplicateIndex, Example
from fraudtune.profile import Profile, Verdict, assess

TWIN_ATTEMPTS = 20
MAX_MOVED = 3  # leaf fields a twin may change besides its ids (the deciding value and what it drags along)


def add_twins(
    examples: list[Example],
    profile: Profile,
    rng: random.Random,
    ids: set[str],
    duplicates: DuplicateIndex,
    make_example: Callable[[Intent, dict[str, Any], Verdict], Example],
    category_of: Callable[[Verdict], str | None],
) -> list[Example]:
    """One twin per company-specific, near-miss and borderline row (where the oracle agrees), in the anchor's split.

    `make_example(intent, txn, verdict)` renders a row as the generator does; `category_of(verdict)` is the SPEC 4
    category a verdict meets (None: none), which a twin must have like any generated row."""
    twins = []
    for anchor in examples:
        meta = anchor.meta
        generic = meta["category"] == "borderline" and not meta.get("near_miss")
        if meta["category"] != "company_specific" and not meta.get("near_miss") and not generic:
            continue
        for _ in range(TWIN_ATTEMPTS):
            made = _generic_twin(meta, profile, rng, ids) if generic else _twin(meta, profile, rng, ids)
            if made is None or duplicates.find(made) is not None or validate_transaction(made):
                continue
            if len(moved_fields(meta["transaction"], made)) > MAX_MOVED:  # e.g. a new category: a new merchant
                continue
            verdict = assess(profile, made)
            intent = _intent(meta, verdict, category_of(verdict), generic)
            if intent is None:
                continue
            ids.update({made["transaction_id"], made["customer"]["id"]})
            duplicates.add(made)
            twin = make_example(intent, made, verdict)
            twin.meta["twin_of"] = meta["transaction_id"]
            if "split" in meta:
                twin.meta["split"] = meta["split"]
            twins.append(twin)
            break
    return twins


def _intent(meta: dict[str, Any], verdict: Verdict, category: str | None, generic: bool) -> Intent | None:
    """What the twin stands for, or None when the oracle did not put it on the other side of the anchor's rule."""
    if verdict.label == meta["label"] or category is None:
        return None
    if generic:
        return Intent("borderline", verdict.label) if category == "borderline" and not verdict.deciding_rule else None
    code, pick = _unit(meta)
    if verdict.label == "LEGITIMATE":
        return Intent(category, "LEGITIMATE", near_miss=code, pick=pick)
    return Intent("company_specific", "FRAUD", rule=code, pick=pick) if verdict.deciding_rule == code else None


def moved_fields(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted names of the leaf fields that differ between two transactions, ids aside."""
    moved = set()
    for key in a.keys() | b.keys():
        name = f"{prefix}{key}"
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            moved |= moved_fields(a[key], b[key], name + ".")
        elif a.get(key) != b.get(key) and name not in ("transaction_id", "customer.id"):
            moved.add(name)
    return moved


def _unit(meta: dict[str, Any]) -> tuple[str, str | None]:
    """(rule code, listed value) the anchor stands for, from its unit key ('BLACKLISTED_MERCHANT:M-...')."""
    code, _, pick = (meta.get("unit") or meta.get("deciding_rule") or meta["near_miss"]).partition(":")
    return code, pick or None


def _twin(meta: dict[str, Any], profile: Profile, rng: random.Random, ids: set[str]) -> dict[str, Any] | None:
    """The anchor's transaction with its rule's deciding condition moved across, under fresh ids."""
    code, pick = _unit(meta)
    rule = profile.rule(code)
    draft = _fresh_copy(meta, rng, ids)
    if meta["label"] == "FRAUD":  # a rule case: its twin narrowly misses the rule
        if listed_condition(rule) is not None and pick:
            made = make_lookalike(draft, rule, pick, rng)
        else:
            made = make_near_miss(draft, rule, rng)
    else:  # a near miss: its twin narrowly meets the rule
        made = make_fire(draft, narrowed(rule, pick), rng, near=True)
    return draft.txn if made else None


def _generic_twin(meta: dict[str, Any], profile: Profile, rng: random.Random, ids: set[str]) -> dict[str, Any] | None:
    """A borderline row with one generic signal switched on or off so that its score crosses the threshold."""
    score, threshold = meta["generic_score"], profile.decision_threshold
    generic = profile.by_kind("generic")
    if meta["label"] == "FRAUD":
        options = [r for r in generic if r.code in meta["red_flags"] and score - r.weight < threshold]
    else:
        options = [r for r in generic if r.code not in meta["red_flags"] and score + r.weight >= threshold]
    if not options:
        return None
    draft = _fresh_copy(meta, rng, ids)
    rule = rng.choice(options)
    made = make_quiet(draft, rule, rng, near=True) if meta["label"] == "FRAUD" else make_fire(draft, rule, rng, True)
    return draft.txn if made else None


def _fresh_copy(meta: dict[str, Any], rng: random.Random, ids: set[str]) -> Draft:
    """The anchor's transaction to edit, under a transaction and customer id of its own."""
    txn = copy.deepcopy(meta["transaction"])
    txn["transaction_id"] = fresh_id(rng, "T", ids)
    txn["customer"]["id"] = fresh_id(rng, "C", ids)
    return Draft(txn)
