"""docs/DATASET_PREPARATION.md, written from the issuer profile and the generator's own constants.

Every table (flags, rules, patterns, codes, category definitions, CSV fields) is read from the same objects the
generator and importer use, so the guide cannot drift from the data; the prose around them is the guide's template,
docs/templates/DATASET_PREPARATION.md. Regenerate with `python -m fraudtune.report.docs_dataset` (or
`fraudtune report --docs`).
"""

from __future__ import annotations

import itertools
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from fraudtune.data import catalog, generate, plan
from fraudtune.data.chat import render_assistant, to_messages
from fraudtune.data.csv_mapping import FIELDS, load_mapping
from fraudtune.data.imports.history import History
from fraudtune.data.imports.leakage import MIN_AUC, MIN_ROWS, MIN_SHARE
from fraudtune.data.imports.logspec import LOG_KEYS, LogSpec
from fraudtune.data.imports.report import PERSONAL_WORDS
from fraudtune.data.imports.timesort import epoch_seconds
from fraudtune.files import write_text_atomic
from fraudtune.guides import fill_template
from fraudtune.paths import resolve_resource
from fraudtune.profile import Condition, Profile, Rule, assess

TEMPLATE = "DATASET_PREPARATION.md"  # in docs/templates/, named as the guide it renders
CARDLOG_MAPPING = Path("configs/cardlog_mapping.example.yaml")
# the worked example of a log import: one card's rows (time, the log's category, amount)
LOG_EXAMPLE = (
    ("2025-01-02 09:12:00", "grocery_pos", 64.20),
    ("2025-01-05 18:40:00", "food_dining", 31.75),
    ("2025-01-09 12:03:00", "gas_transport", 48.10),
    ("2025-01-20 10:15:00", "grocery_pos", 71.35),
    ("2025-01-27 19:22:00", "shopping_net", 89.99),
    ("2025-02-03 09:05:00", "grocery_pos", 58.60),
    ("2025-02-14 02:10:00", "shopping_net", 1249.00),
    ("2025-02-14 02:31:00", "misc_net", 980.00),
)

_OPS = {"eq": "=", "ne": "!=", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
# derived facts (fraudtune.profile.derived_facts), as the tables show them
_DERIVED = {
    "amount_ratio": "amount / avg_amount",
    "hour": "local hour",
    "country_status": "country status",
    "category_usual": "category is usual",
}


def write_dataset_doc(profile: Profile, out_path: Path) -> Path:
    """Render the guide for `profile` and write it atomically to `out_path`."""
    write_text_atomic(Path(out_path), render_dataset_doc(profile))
    return Path(out_path)


def render_dataset_doc(profile: Profile) -> str:
    """docs/templates/DATASET_PREPARATION.md filled with the profile's and the generator's tables and numbers."""
    low, high = generate.BORDERLINE_SCORES
    hours = list(catalog.DAY_HOUR_WEIGHTS)
    return fill_template(
        TEMPLATE,
        source=_source(profile),
        profile_name=profile.name,
        decision_threshold=str(profile.decision_threshold),
        max_score=str(profile.max_score),
        taxonomy_table=_taxonomy(profile),
        near_miss_legitimate=f"{plan.NEAR_MISS_SHARE['clear_legitimate']:.0%}",
        near_miss_borderline=f"{plan.NEAR_MISS_SHARE['borderline']:.0%}",
        generic_table=_generic_flags(profile),
        day_start=str(min(hours)),
        day_end=str(max(hours)),
        normal_table=_normal(),
        borderline_low=str(low),
        borderline_high=str(high),
        borderline_table=_borderline(profile),
        documented_table=_proprietary(profile, "documented"),
        historical_table=_proprietary(profile, "historical"),
        codes_table=_codes(profile),
        example_turns=_example(profile),
        csv_table=_csv(),
        cardlog_mapping=resolve_resource(CARDLOG_MAPPING).read_text(encoding="utf-8").rstrip(),
        log_keys_table=_log_keys(),
        log_example_table=_log_example(),
        personal_words_table=_personal_words(),
        leakage_min_auc=str(MIN_AUC),
        leakage_min_rows=str(MIN_ROWS),
        leakage_min_share=f"{MIN_SHARE:.0%}",
    )


def condition_text(c: Condition) -> str:
    """`amount >= 500`, `merchant.country in {NG, RU}`, `merchant.id starts with M-QX`, `device_new is true`."""
    name = _DERIVED.get(c.field, c.field)
    if c.op in ("in", "not_in"):
        return f"{name} {'in' if c.op == 'in' else 'not in'} {{{', '.join(str(v) for v in c.value)}}}"
    if c.op in ("is_true", "is_false"):
        return f"{name} is {'true' if c.op == 'is_true' else 'false'}"
    if c.op == "startswith":
        return f"{name} starts with {c.value}"
    return f"{name} {_OPS[c.op]} {c.value}"


def rule_text(rule: Rule) -> str:
    parts = [condition_text(c) for c in rule.when]
    if rule.when_any:
        parts.append("(" + " or ".join(condition_text(c) for c in rule.when_any) + ")")
    return " and ".join(parts).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def _source(profile: Profile) -> str:
    return profile.source.name if profile.source else "the issuer profile"


def _taxonomy(profile: Profile) -> str:
    counts = plan.largest_remainder(500, plan.CATEGORY_MIX)
    low, high = generate.BORDERLINE_SCORES
    rows = [
        [
            "clear_fraud",
            counts["clear_fraud"],
            f">= {generate.CLEAR_FRAUD_MIN_FLAGS} generic flags, score >= "
            f"{generate.CLEAR_FRAUD_MIN_SCORE}, no documented rule or historical pattern",
            "FRAUD",
        ],
        [
            "clear_legitimate",
            counts["clear_legitimate"],
            f"score <= {generate.CLEAR_LEGIT_MAX_SCORE}, at most {generate.CLEAR_LEGIT_MAX_FLAGS} generic flags, no "
            f"rule; about {generate.MINOR_SHARE:.0%} carry one or two minor signals (a new device, a first-time "
            "category, a late hour...)",
            "LEGITIMATE",
        ],
        [
            "borderline",
            counts["borderline"],
            f"score {low}-{high}, no rule; FRAUD iff score >= {profile.decision_threshold}",
            "half each",
        ],
        [
            "company_specific",
            counts["company_specific"],
            "a documented rule or historical pattern decides: the "
            f"generic score is below {profile.decision_threshold}, the rule makes it FRAUD "
            f"(about {plan.HISTORICAL_SHARE:.0%} historical); their generic signals take the shapes of the "
            "legitimate rows (none, one or two minor flags, a borderline score under the threshold), so the score "
            "cannot tell them apart",
            "FRAUD",
        ],
    ]
    return _table(["category", "at n=500", "definition", "label"], rows)


def _generic_flags(profile: Profile) -> str:
    rows = [[r.code, r.head, rule_text(r), r.weight] for r in profile.by_kind("generic")]
    return _table(["code", "phrase head", "fires when", "weight"], rows)


def _normal() -> str:
    rows = []
    for category, channels in catalog.CHANNELS_OF_CATEGORY.items():
        low, high = catalog.AVG_AMOUNT_RANGE[category]
        names = ", ".join(m.name for m in catalog.MERCHANTS[category][:3])
        rows.append([category, ", ".join(channels), f"${low:,}-${high:,}", names])
    return _table(["category", "channels", "typical customer average", "merchants (examples)"], rows)


def _borderline(profile: Profile) -> str:
    generic = profile.by_kind("generic")
    low, high = generate.BORDERLINE_SCORES
    rows = []
    for score in range(low, high + 1):
        combos = [
            c
            for k in range(1, len(generic) + 1)
            for c in itertools.combinations(generic, k)
            if min(profile.max_score, sum(r.weight for r in c)) == score
        ]
        if combos:
            example = min(combos, key=len)
            label = "FRAUD" if score >= profile.decision_threshold else "LEGITIMATE"
            rows.append([score, label, len(combos), " + ".join(r.head.lower() for r in example)])
    return _table(["score", "label", "flag combinations", "e.g."], rows)


def _proprietary(profile: Profile, kind: str) -> str:
    """The documented or the historical rules of the profile."""
    rows = [[r.code, r.head, rule_text(r), r.min_score, _near_miss_text(r)] for r in profile.by_kind(kind)]
    return _table(["code", "phrase head", "rule", "min score", "near misses in the data"], rows)


def _near_miss_text(rule: Rule) -> str:
    numeric = [c for c in rule.when if c.op in ("ge", "gt", "le", "lt")]
    if not numeric:
        return "-"
    flipped = {"ge": "<", "gt": "<=", "le": ">", "lt": ">="}
    return " or ".join(f"{_DERIVED.get(c.field, c.field)} {flipped[c.op]} {c.value}, close to it" for c in numeric)


def _codes(profile: Profile) -> str:
    rows = [[code, name, catalog.CHANNEL_OF_CODE.get(code, "?")] for code, name in profile.txn_codes.items()]
    return _table(["code", "meaning", "channel"], rows)


def _example(profile: Profile) -> str:
    txn = {
        "transaction_id": "T-EXAMPLE",
        "timestamp": "2026-04-13T02:30:00",
        "amount": 2480.0,
        "currency": "USD",
        "merchant": {"id": "M-ELEC-0042", "name": "TechNova Electronics", "category": "electronics", "country": "NG"},
        "channel": "online",
        "txn_code": "TC-21",
        "device_new": True,
        "customer": {
            "id": "C-000001",
            "home_country": "US",
            "avg_amount": 75.0,
            "history_count": 210,
            "account_age_days": 1400,
            "usual_categories": ["grocery", "restaurant"],
            "travel_notice_country": None,
            "password_reset_hours_ago": None,
        },
        "velocity": {"txn_last_1h": 1, "txn_last_24h": 3},
    }
    verdict = assess(profile, txn)
    messages = to_messages(txn, profile, render_assistant(verdict, txn, profile, random.Random(0)))
    return "\n\n".join(f"**{m['role']}**\n\n```\n{m['content']}\n```" for m in messages)


def _csv() -> str:
    rows = [[f"`{name}`", "yes" if spec.required else "no", spec.default_doc or "-"] for name, spec in FIELDS.items()]
    return _table(["field", "required", "default when the column or cell is empty"], rows)


def _log_keys() -> str:
    defaults = {name: f.default for name, f in LogSpec.__dataclass_fields__.items()}
    rows = []
    for key, meaning in LOG_KEYS.items():
        default = defaults.get(key)
        shown = "required" if key == "card" else "-" if default is None else f"`{yaml.safe_dump(default).split()[0]}`"
        rows.append([f"`{key}`", shown, meaning])
    return _table(["log: key", "default", "meaning"], rows)


def _log_example() -> str:
    """The customer fields the example mapping derives for LOG_EXAMPLE, computed by the importer's own History."""
    mapping = load_mapping(resolve_resource(CARDLOG_MAPPING))
    assert mapping.log is not None
    spec, categories, history = mapping.log, mapping.values["merchant.category"], History()
    rows = []
    for when, code, amount in LOG_EXAMPLE:
        t = epoch_seconds(datetime.fromisoformat(when))
        past = history.features("card", t, code, None)
        warmup = past.history_count < spec.warmup_min_history or past.observed_days < spec.warmup_min_days
        usual = ", ".join(past.usual_categories) or "-"
        velocity = f"{past.txn_last_1h} / {past.txn_last_24h}"
        rows.append(
            [when, f"{code} -> {categories[code]}", f"{amount:,.2f}", past.history_count, f"{past.avg_amount:,.2f}",
             past.observed_days, usual, velocity, "yes" if warmup else "no"]
        )  # fmt: skip
        history.add("card", t, amount, categories[code], code, None)
    header = ["time", "category", "amount", "history_count", "avg_amount", "account_age_days", "usual_categories",
              "velocity 1h / 24h", "warm-up"]  # fmt: skip
    return _table(header, rows)


def _personal_words() -> str:
    return _table(["kind", "words in a column name"], [[k, ", ".join(w)] for k, w in PERSONAL_WORDS.items()])


if __name__ == "__main__":
    from fraudtune.config import DataConfig
    from fraudtune.paths import REPO_ROOT
    from fraudtune.profile import load_profile

    write_dataset_doc(load_profile(DataConfig().profile), REPO_ROOT / "docs" / "DATASET_PREPARATION.md")
