"""`fraudtune data generate`: the SPEC 4 chat data set, labelled by the issuer profile's oracle.

Each example starts as an ordinary transaction and is shaped towards a planned category (and, for
company-specific cases, a planned rule); only samples whose oracle verdict meets the category's definition are
kept, so every label, score and flag list is the oracle's, never the generator's intention.
"""

from __future__ import annotations

import functools
import itertools
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import DataConfig
from fraudtune.data import catalog
from fraudtune.data.chat import render_assistant, to_messages
from fraudtune.data.conditions import Draft, make_fire, make_near_miss, settle
from fraudtune.data.sampler import base_transaction
from fraudtune.data.schema import validate_transaction
from fraudtune.data.split import DuplicateIndex, Example, counts_by_split, split_examples, write_dataset
from fraudtune.errors import FraudtuneError
from fraudtune.profile import Profile, Rule, Verdict, assess, fires, load_profile

log = logging.getLogger(__name__)

# SPEC 4: the 500-example mix; other sizes keep the ratios (largest-remainder rounding)
CATEGORY_MIX = {"clear_fraud": 100, "clear_legitimate": 200, "borderline": 150, "company_specific": 50}
CLEAR_FRAUD_MIN_FLAGS, CLEAR_FRAUD_MIN_SCORE = 3, 85
CLEAR_LEGIT_MAX_SCORE = 15
BORDERLINE_SCORES = (40, 60)
HISTORICAL_SHARE = 1 / 3  # of company_specific: "about a third" from the historical patterns
# near misses (a rule's threshold narrowly missed) among the negatives of these categories
NEAR_MISS_SHARE = {"clear_legitimate": 0.12, "borderline": 1 / 3}
NEAR_MISS_PATIENCE = 40  # attempts before a near miss moves on to the next rule (some can't be clean)
MAX_ATTEMPTS = 1000


@dataclass(frozen=True)
class Intent:
    """What one example should be: its category and label, and the rule that decides or narrowly doesn't fire."""

    category: str
    label: str
    rule: str | None = None
    near_miss: str | None = None
    miss: int = 0  # which of the near-miss rule's thresholds is missed


def generate(
    out_dir: Path, profile_path: Path, n: int, seed: int, data_cfg: DataConfig | None = None
) -> dict[str, Any]:
    """Generate `n` examples from the profile and write the data set files into `out_dir`.

    Args:
        out_dir: folder for fraud_dataset.jsonl, train/val/test.jsonl, their .meta.jsonl files and data_card.json.
        profile_path: the issuer profile YAML (labelling oracle).
        n: number of examples; the SPEC 4 mix is kept for any n.
        seed: every random choice derives from it; the same seed writes byte-identical files.
        data_cfg: train/val fractions (defaults from DataConfig).
    """
    data_cfg = data_cfg or DataConfig()
    if n < 8:
        raise FraudtuneError(f"--n {n}: need at least 8 examples (one per category and split)")
    profile = load_profile(profile_path)
    rng = random.Random(seed)
    examples, attempts = [], 0
    ids, duplicates = set(), DuplicateIndex()
    for intent in plan(n, profile, rng):
        example, tries = sample_example(intent, profile, rng, ids, duplicates)
        examples.append(example)
        attempts += tries
    rng.shuffle(examples)
    split_examples(examples, data_cfg.train_frac, data_cfg.val_frac, seed)
    card = data_card(examples, profile, profile_path, n, seed, data_cfg)
    files = write_dataset(Path(out_dir), examples, card)
    log.info("generated %d examples in %d attempts", n, attempts)
    return {
        "out_dir": str(out_dir),
        "n": n,
        "seed": seed,
        "profile": str(profile_path),
        "files": files,
        "splits": card["splits"],
        "categories": card["counts"]["all"],
        "rules": card["deciding_rules"],
        "near_misses": card["near_misses"],
        "distinct_merchants": card["distinct_merchants"],
        "distinct_countries": card["distinct_countries"],
    }


def largest_remainder(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to `total`, proportional to `weights` (ties go to the earlier key)."""
    whole = sum(weights.values())
    exact = {k: total * w / whole for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    by_remainder = sorted(weights, key=lambda k: -(exact[k] - counts[k]))
    for k in by_remainder[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def plan(n: int, profile: Profile, rng: random.Random) -> list[Intent]:
    """The intents of all `n` examples: SPEC 4 counts, balanced borderline labels, rules taken in turn."""
    counts = largest_remainder(n, CATEGORY_MIX)
    intents = [Intent("clear_fraud", "FRAUD")] * counts["clear_fraud"]
    near_rules = itertools.cycle(near_miss_rules(profile) or [None])
    n_legit = counts["clear_legitimate"]
    intents += _with_near_misses("clear_legitimate", n_legit, NEAR_MISS_SHARE["clear_legitimate"], near_rules)
    fraud_half = counts["borderline"] // 2
    intents += [Intent("borderline", "FRAUD")] * fraud_half
    intents += _with_near_misses(
        "borderline", counts["borderline"] - fraud_half, NEAR_MISS_SHARE["borderline"], near_rules
    )
    documented, historical = profile.by_kind("documented"), profile.by_kind("historical")
    k = counts["company_specific"]
    k_hist = round(k * HISTORICAL_SHARE) if documented and historical else (k if historical else 0)
    intents += [Intent("company_specific", "FRAUD", rule=r.code) for r in _take_turns(historical, k_hist)]
    intents += [Intent("company_specific", "FRAUD", rule=r.code) for r in _take_turns(documented, k - k_hist)]
    rng.shuffle(intents)
    return intents


def near_miss_rules(profile: Profile) -> list[str]:
    """Documented rules and historical patterns with a threshold that can be narrowly missed."""
    return [
        r.code for r in profile.rules if r.kind != "generic" and any(c.op in ("ge", "gt", "le", "lt") for c in r.when)
    ]


def _with_near_misses(category: str, count: int, share: float, rules: itertools.cycle) -> list[Intent]:
    """`count` negatives, a `share` of them near misses; a rule's thresholds are missed in turn."""
    k = round(count * share)
    codes = [next(rules) for _ in range(k)]
    near = [Intent(category, "LEGITIMATE", near_miss=code, miss=codes[:i].count(code)) for i, code in enumerate(codes)]
    return near + [Intent(category, "LEGITIMATE")] * (count - k)


def _take_turns(rules: list[Rule], k: int) -> list[Rule]:
    if k and not rules:
        raise FraudtuneError("profile has no documented rules or historical patterns for company_specific examples")
    return [rules[i % len(rules)] for i in range(k)]


def classify(verdict: Verdict, profile: Profile) -> str | None:
    """The SPEC 4 category a verdict meets, or None (e.g. score 20-35: neither clear nor borderline)."""
    special = [c for c in verdict.red_flags if profile.rule(c).kind != "generic"]
    n_generic = len(verdict.red_flags) - len(special)
    if special:
        return "company_specific" if verdict.generic_score < profile.decision_threshold else None
    if n_generic == 0 and verdict.risk_score <= CLEAR_LEGIT_MAX_SCORE:
        return "clear_legitimate"
    if n_generic >= CLEAR_FRAUD_MIN_FLAGS and verdict.risk_score >= CLEAR_FRAUD_MIN_SCORE:
        return "clear_fraud"
    if BORDERLINE_SCORES[0] <= verdict.risk_score <= BORDERLINE_SCORES[1]:
        return "borderline"
    return None


def sample_example(
    intent: Intent, profile: Profile, rng: random.Random, ids: set[str], duplicates: DuplicateIndex
) -> tuple[Example, int]:
    """Shape fresh transactions until the oracle's verdict meets the intent; a near miss that can't be had for
    this category falls back to the next rule in turn, then to a plain example."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if intent.near_miss and attempt % NEAR_MISS_PATIENCE == 0:
            intent = _next_near_miss(intent, profile, attempt)
        txn = _attempt(intent, profile, rng, ids)
        if txn is None or duplicates.find(txn) is not None:
            continue
        verdict = assess(profile, txn)
        if _meets(intent, verdict, profile) and not validate_transaction(txn):
            ids.update({txn["transaction_id"], txn["customer"]["id"]})
            duplicates.add(txn)
            return _example(intent, txn, verdict, profile, rng), attempt
    raise FraudtuneError(
        f"{profile.source}: could not generate a {intent.category} example"
        f"{' for rule ' + intent.rule if intent.rule else ''} in {MAX_ATTEMPTS} tries; "
        "check that the rule's conditions can hold together"
    )


def _next_near_miss(intent: Intent, profile: Profile, attempt: int) -> Intent:
    codes = near_miss_rules(profile)
    nxt = codes[(codes.index(intent.near_miss) + 1) % len(codes)]
    done = attempt >= NEAR_MISS_PATIENCE * len(codes)
    return Intent(intent.category, intent.label, near_miss=None if done else nxt, miss=intent.miss)


def _attempt(intent: Intent, profile: Profile, rng: random.Random, ids: set[str]) -> dict[str, Any] | None:
    draft = Draft(base_transaction(rng, _fresh_id(rng, "T", ids), _fresh_id(rng, "C", ids)))
    if intent.rule and not make_fire(draft, profile.rule(intent.rule), rng, near=rng.random() < 0.25):
        return None
    if intent.near_miss and not make_near_miss(draft, profile.rule(intent.near_miss), rng, intent.miss):
        return None
    generic = profile.by_kind("generic")
    fired = {r.code for r in generic if fires(r, draft.txn)}
    wanted = _choose_flags(intent, generic, fired, profile, rng)
    if wanted is None:
        return None
    if intent.category != "clear_fraud" and rng.random() < 0.3:  # a generic threshold narrowly missed
        spare = [r for r in generic if r.code not in wanted]
        if spare:
            make_near_miss(draft, rng.choice(spare), rng)
    settle(draft, list(profile.rules), wanted | ({intent.rule} if intent.rule else set()), rng)
    return draft.txn if _consistent(draft.txn) else None


def _fresh_id(rng: random.Random, prefix: str, used: set[str]) -> str:
    while True:
        candidate = f"{prefix}-{rng.randrange(16**8):08X}"
        if candidate not in used:
            return candidate


def _choose_flags(
    intent: Intent, generic: list[Rule], fired: set[str], profile: Profile, rng: random.Random
) -> set[str] | None:
    """A set of generic flags whose score fits the intent, keeping flags the rule step already switched on."""
    options = _flag_sets(tuple((r.code, r.weight) for r in generic), profile.max_score)
    fits = [(s, score) for s, score in options if _score_fits(intent, s, score, profile)]
    kept = [(s, score) for s, score in fits if fired <= s] or fits
    if not kept:
        return None
    target = rng.choice(sorted({score for _, score in kept}))  # spread scores first, then pick flags
    return set(rng.choice([s for s, score in kept if score == target]))


@functools.cache
def _flag_sets(weights: tuple[tuple[str, int], ...], max_score: int) -> list[tuple[frozenset[str], int]]:
    """Every subset of the generic flags with its (capped) score; 2^9 = 512 for the demo profile."""
    codes = [c for c, _ in weights]
    return [
        (frozenset(s), min(max_score, sum(w for c, w in weights if c in s)))
        for k in range(len(codes) + 1)
        for s in itertools.combinations(codes, k)
    ]


def _score_fits(intent: Intent, flags: set[str], score: int, profile: Profile) -> bool:
    threshold = profile.decision_threshold
    match intent.category:
        case "clear_legitimate":
            return not flags
        case "clear_fraud":
            return len(flags) >= CLEAR_FRAUD_MIN_FLAGS and score >= CLEAR_FRAUD_MIN_SCORE
        case "borderline":
            low, high = BORDERLINE_SCORES
            return low <= score <= high and (score >= threshold) == (intent.label == "FRAUD")
        case _:
            return score < threshold


def _meets(intent: Intent, verdict: Verdict, profile: Profile) -> bool:
    if classify(verdict, profile) != intent.category or verdict.label != intent.label:
        return False
    if intent.rule:
        special = [c for c in verdict.red_flags if profile.rule(c).kind != "generic"]
        return special == [intent.rule]
    return True


def _consistent(txn: dict[str, Any]) -> bool:
    """Channel fits code and category (TC-01/05 in person, TC-12 recurring, ...); 24h velocity covers the last hour."""
    m, c, v = txn["merchant"], txn["customer"], txn["velocity"]
    return (
        catalog.compatible(m["category"], txn["txn_code"], txn["channel"])
        and v["txn_last_24h"] >= v["txn_last_1h"]
        and 1.0 <= txn["amount"] <= 10_000
        and 1.0 <= c["avg_amount"] <= 5_000
        and c["history_count"] <= 3 * c["account_age_days"] + 5
    )


def _example(intent: Intent, txn: dict[str, Any], verdict: Verdict, profile: Profile, rng: random.Random) -> Example:
    answer = render_assistant(verdict, txn, profile, rng)
    kind = profile.rule(verdict.deciding_rule).kind if verdict.deciding_rule else None
    meta = {
        "transaction_id": txn["transaction_id"],
        "category": intent.category,
        "label": verdict.label,
        "risk_score": verdict.risk_score,
        "red_flags": verdict.red_flags,
        "generic_score": verdict.generic_score,
        "deciding_rule": verdict.deciding_rule,
        "rule_kind": kind,
        "near_miss": intent.near_miss,
        "transaction": txn,
    }
    return Example(to_messages(txn, profile, answer), meta)


def data_card(
    examples: list[Example], profile: Profile, profile_path: Path, n: int, seed: int, data_cfg: DataConfig
) -> dict[str, Any]:
    """What is in the data set: sizes, seed, profile, rule and near-miss counts, diversity."""
    metas = [ex.meta for ex in examples]
    special = [r.code for r in profile.rules if r.kind != "generic"]
    return {
        "n": n,
        "seed": seed,
        "profile": str(profile_path),
        "profile_name": profile.name,
        "train_frac": data_cfg.train_frac,
        "val_frac": data_cfg.val_frac,
        "splits": {s: sum(m["split"] == s for m in metas) for s in paths.SPLITS},
        "counts": counts_by_split(examples),
        "deciding_rules": {c: sum(m["deciding_rule"] == c for m in metas) for c in special},
        "near_misses": {c: sum(m["near_miss"] == c for m in metas) for c in special},
        "distinct_merchants": len({m["transaction"]["merchant"]["id"] for m in metas}),
        "distinct_merchant_countries": len({m["transaction"]["merchant"]["country"] for m in metas}),
        "distinct_countries": len(
            {m["transaction"]["merchant"]["country"] for m in metas}
            | {m["transaction"]["customer"]["home_country"] for m in metas}
        ),
        "categories_seen": len({m["transaction"]["merchant"]["category"] for m in metas}),
    }
