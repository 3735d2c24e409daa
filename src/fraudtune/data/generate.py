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
from collections import Counter
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import DataConfig
from fraudtune.data import catalog
from fraudtune.data.chat import render_assistant, to_messages
from fraudtune.data.conditions import Draft, make_fire, make_lookalike, make_near_miss, settle
from fraudtune.data.plan import Intent, has_near_miss, narrowed, plan, unit_key, units
from fraudtune.data.sampler import base_transaction, fresh_id
from fraudtune.data.schema import validate_transaction
from fraudtune.data.split import DuplicateIndex, Example, counts_by_split, split_examples, write_dataset
from fraudtune.errors import FraudtuneError
from fraudtune.profile import Profile, Rule, Verdict, assess, fires, load_profile

log = logging.getLogger(__name__)

CLEAR_FRAUD_MIN_FLAGS, CLEAR_FRAUD_MIN_SCORE = 3, 85
# SPEC 4: clear legitimate rows score <= 35 and about half of them carry one or two minor signals
CLEAR_LEGIT_MAX_SCORE, CLEAR_LEGIT_MAX_FLAGS, MINOR_SHARE = 35, 2, 0.5
BORDERLINE_SCORES = (40, 60)
# company-specific rows take their generic signals in the shapes of the legitimate rows (no flag, one or two
# minor flags, a borderline score under the threshold) with the weights those shapes have among the SPEC 4
# negatives (200 clear legitimate, half of them with minor flags; 75 borderline legitimate), so the generic
# score cannot tell a rule case from a legitimate one
COMPANY_SHAPES = {"clean": 100, "minor": 100, "borderline": 75}
RULE_NEAR_SHARE = 1 / 3  # rule cases drawn close to the rule's threshold (TC-07 at $500-$550)
NEAR_MISS_PATIENCE = 40  # attempts before a near miss moves on to the next rule (some can't be clean)
MAX_ATTEMPTS = 1000


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
    intents = plan(n, profile, rng, data_cfg.rule_min, data_cfg.train_frac, data_cfg.item_min)
    for i, intent in enumerate(intents, 1):
        example, tries = sample_example(
            intent, profile, rng, ids, duplicates, data_cfg.answer_order, data_cfg.score_tally
        )
        examples.append(example)
        attempts += tries
        if i % 1000 == 0:
            log.info("generated %d / %d examples", i, len(intents))
    rng.shuffle(examples)
    split_examples(examples, data_cfg.train_frac, data_cfg.val_frac, seed)
    if data_cfg.twins:
        from fraudtune.data.twins import add_twins

        def render(intent: Intent, txn: dict[str, Any], verdict: Verdict) -> Example:
            return _example(intent, txn, verdict, profile, rng, data_cfg.answer_order, data_cfg.score_tally)

        twins = add_twins(examples, profile, rng, ids, duplicates, render, lambda v: classify(v, profile))
        log.info("added %d minimal-pair twins", len(twins))
        examples += twins
        rng.shuffle(examples)
    card = data_card(examples, profile, profile_path, n, seed, data_cfg)
    files = write_dataset(Path(out_dir), examples, card)
    log.info("generated %d examples in %d attempts", len(examples), attempts)
    return {
        "out_dir": str(out_dir),
        "n": len(examples),
        "n_requested": n,
        "rule_min": data_cfg.rule_min,
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


def classify(verdict: Verdict, profile: Profile) -> str | None:
    """The SPEC 4 category a verdict meets, or None (e.g. score 20-35: neither clear nor borderline)."""
    special = [c for c in verdict.red_flags if profile.rule(c).kind != "generic"]
    n_generic = len(verdict.red_flags) - len(special)
    if special:
        return "company_specific" if verdict.generic_score < profile.decision_threshold else None
    if n_generic <= CLEAR_LEGIT_MAX_FLAGS and verdict.risk_score <= CLEAR_LEGIT_MAX_SCORE:
        return "clear_legitimate"
    if n_generic >= CLEAR_FRAUD_MIN_FLAGS and verdict.risk_score >= CLEAR_FRAUD_MIN_SCORE:
        return "clear_fraud"
    if BORDERLINE_SCORES[0] <= verdict.risk_score <= BORDERLINE_SCORES[1]:
        return "borderline"
    return None


def sample_example(
    intent: Intent,
    profile: Profile,
    rng: random.Random,
    ids: set[str],
    duplicates: DuplicateIndex,
    answer_order: str = "verdict_first",
    tally: bool = False,
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
        if _meets(intent, txn, verdict, profile) and not validate_transaction(txn):
            ids.update({txn["transaction_id"], txn["customer"]["id"]})
            duplicates.add(txn)
            return _example(intent, txn, verdict, profile, rng, answer_order, tally), attempt
    raise FraudtuneError(
        f"{profile.source}: could not generate a {intent.category} example"
        f"{' for rule ' + intent.rule if intent.rule else ''} in {MAX_ATTEMPTS} tries; "
        "check that the rule's conditions can hold together"
    )


def _next_near_miss(intent: Intent, profile: Profile, attempt: int) -> Intent:
    """The next near-miss unit in turn (a unit that can't be had for this category gives way), then none."""
    order = [u for r in profile.rules if has_near_miss(r) for u in units(r)]
    nxt = order[(order.index((intent.near_miss, intent.pick)) + 1) % len(order)]
    done = attempt >= NEAR_MISS_PATIENCE * len(order)
    return Intent(intent.category, intent.label, near_miss=None if done else nxt[0], miss=intent.miss, pick=nxt[1])


def _attempt(intent: Intent, profile: Profile, rng: random.Random, ids: set[str]) -> dict[str, Any] | None:
    draft = Draft(base_transaction(rng, fresh_id(rng, "T", ids), fresh_id(rng, "C", ids)))
    if intent.rule:
        rule = narrowed(profile.rule(intent.rule), intent.pick)
        if not make_fire(draft, rule, rng, near=rng.random() < RULE_NEAR_SHARE):
            return None
    if intent.near_miss:
        rule = profile.rule(intent.near_miss)
        made = (
            make_lookalike(draft, rule, intent.pick, rng)
            if intent.pick
            else make_near_miss(draft, rule, rng, intent.miss)
        )
        if not made:
            return None
    generic = profile.by_kind("generic")
    fired = {r.code for r in generic if fires(r, draft.txn)}
    wanted = _choose_flags(intent, _shape(intent, rng), generic, fired, profile, rng)
    if wanted is None:
        return None
    if intent.category != "clear_fraud" and rng.random() < 0.3:  # a generic threshold narrowly missed
        spare = [r for r in generic if r.code not in wanted]
        if spare:
            make_near_miss(draft, rng.choice(spare), rng)
    settle(draft, list(profile.rules), wanted | ({intent.rule} if intent.rule else set()), rng)
    return draft.txn if _consistent(draft.txn) else None


def _shape(intent: Intent, rng: random.Random) -> str:
    """How many generic signals this example carries: clean, minor (one or two, score <= 35), borderline, or
    the category's own (clear fraud; borderline)."""
    if intent.category == "clear_legitimate":
        return "minor" if rng.random() < MINOR_SHARE else "clean"
    if intent.category == "company_specific":
        return rng.choices(list(COMPANY_SHAPES), list(COMPANY_SHAPES.values()))[0]
    return intent.category


def _choose_flags(
    intent: Intent, shape: str, generic: list[Rule], fired: set[str], profile: Profile, rng: random.Random
) -> set[str] | None:
    """A set of generic flags whose score fits the shape, keeping flags the rule step already switched on."""
    options = _flag_sets(tuple((r.code, r.weight) for r in generic), profile.max_score)
    fits = [(s, score) for s, score in options if _score_fits(intent, shape, s, score, profile)]
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


def _score_fits(intent: Intent, shape: str, flags: set[str], score: int, profile: Profile) -> bool:
    threshold = profile.decision_threshold
    match shape:
        case "clean":
            return not flags
        case "minor":
            return 1 <= len(flags) <= CLEAR_LEGIT_MAX_FLAGS and score <= CLEAR_LEGIT_MAX_SCORE
        case "clear_fraud":
            return len(flags) >= CLEAR_FRAUD_MIN_FLAGS and score >= CLEAR_FRAUD_MIN_SCORE
        case "borderline" if intent.category == "company_specific":  # a legitimate borderline score
            return BORDERLINE_SCORES[0] <= score < threshold
        case "borderline":
            low, high = BORDERLINE_SCORES
            return low <= score <= high and (score >= threshold) == (intent.label == "FRAUD")
    return score < threshold


def _meets(intent: Intent, txn: dict[str, Any], verdict: Verdict, profile: Profile) -> bool:
    if classify(verdict, profile) != intent.category or verdict.label != intent.label:
        return False
    if intent.rule:
        special = [c for c in verdict.red_flags if profile.rule(c).kind != "generic"]
        return special == [intent.rule] and fires(narrowed(profile.rule(intent.rule), intent.pick), txn)
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


def _example(
    intent: Intent,
    txn: dict[str, Any],
    verdict: Verdict,
    profile: Profile,
    rng: random.Random,
    answer_order: str,
    tally: bool = False,
) -> Example:
    answer = render_assistant(verdict, txn, profile, rng, order=answer_order, tally=tally)
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
        "unit": unit_key(intent.rule or intent.near_miss, intent.pick),
        "transaction": txn,
    }
    return Example(to_messages(txn, profile, answer), meta)


def data_card(
    examples: list[Example], profile: Profile, profile_path: Path, n: int, seed: int, data_cfg: DataConfig
) -> dict[str, Any]:
    """What is in the data set: sizes, seed, profile, rule and near-miss counts, per-unit coverage, diversity."""
    metas = [ex.meta for ex in examples]
    special = [r.code for r in profile.rules if r.kind != "generic"]
    return {
        "n": len(metas),
        "n_requested": n,
        "rule_min": data_cfg.rule_min,
        "item_min": data_cfg.item_min,
        "twins": sum("twin_of" in m for m in metas),
        "answer_order": data_cfg.answer_order,
        "score_tally": data_cfg.score_tally,
        "seed": seed,
        "profile": str(profile_path),
        "profile_name": profile.name,
        "train_frac": data_cfg.train_frac,
        "val_frac": data_cfg.val_frac,
        "splits": {s: sum(m["split"] == s for m in metas) for s in paths.SPLITS},
        "counts": counts_by_split(examples),
        "deciding_rules": {c: sum(m["deciding_rule"] == c for m in metas) for c in special},
        "near_misses": {c: sum(m["near_miss"] == c for m in metas) for c in special},
        "train_coverage": coverage([m for m in metas if m["split"] == "train"], profile),
        "distinct_merchants": len({m["transaction"]["merchant"]["id"] for m in metas}),
        "distinct_merchant_countries": len({m["transaction"]["merchant"]["country"] for m in metas}),
        "distinct_countries": len(
            {m["transaction"]["merchant"]["country"] for m in metas}
            | {m["transaction"]["customer"]["home_country"] for m in metas}
        ),
        "categories_seen": len({m["transaction"]["merchant"]["category"] for m in metas}),
    }


def coverage(metas: list[dict[str, Any]], profile: Profile) -> dict[str, dict[str, int]]:
    """Per unit (a company rule, or one listed value such as a blacklisted merchant id): the rows where it fires,
    those of them where the generic score stays under the threshold (rule-only), and its near misses."""
    table: dict[str, Counter] = {}
    for rule in (r for r in profile.rules if r.kind != "generic"):
        for code, pick in units(rule):
            unit = narrowed(rule, pick)
            cell = table.setdefault(unit_key(code, pick), Counter(positives=0, rule_only=0))
            for m in metas:
                if code in m["red_flags"] and fires(unit, m["transaction"]):
                    cell["positives"] += 1
                    cell["rule_only"] += m["generic_score"] < profile.decision_threshold
            cell["near_misses"] = sum(
                m.get("unit") == unit_key(code, pick) and m["label"] == "LEGITIMATE" for m in metas
            )
    return {k: dict(v) for k, v in table.items()}
