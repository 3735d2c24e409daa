"""Can one field or the generic score tell the labels apart without the rulebook (SPEC 4)?

Only rows the generic score does not decide count: there a FRAUD label must come from a rule of 3.2/3.3, so any
other single feature that separates the labels is a shortcut a learner would take instead of the rules.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from fraudtune.profile import Profile, assess, derived_facts

# Balanced accuracy 0.75 = e.g. half of the rule-decided fraud caught with no legitimate row touched: a learner
# gets that much of the rulebook for free. Out of fold, a field unrelated to the label scores about 0.5 (usually
# less), with a standard error <= 0.08 at MIN_ROWS per class, so 0.75 is ~3 errors above chance; at 0.6-0.65 the
# mild imbalances any finite sample carries would be flagged too.
BOUND = 0.75
AUC_BAND = (0.35, 0.65)  # generic score vs label: AUC outside it ranks rule fraud above (or below) legitimate rows
MIN_ROWS = 10  # per label; fewer and a figure is noise, so nothing is measured
FOLDS = 5
SEED = 0  # fixed folds: the same data always gives the same report
NULL = -1.0  # a missing number (no password reset) is its own value, below every real one

Getter = Callable[[dict[str, Any], dict[str, Any]], Any]
# name -> (categorical?, the raw fields it is computed from, value)
FEATURES: dict[str, tuple[bool, tuple[str, ...], Getter]] = {
    "amount": (False, ("amount",), lambda t, d: t["amount"]),
    "customer.avg_amount": (False, ("customer.avg_amount",), lambda t, d: t["customer"]["avg_amount"]),
    "customer.account_age_days": (
        False,
        ("customer.account_age_days",),
        lambda t, d: t["customer"]["account_age_days"],
    ),
    "customer.history_count": (False, ("customer.history_count",), lambda t, d: t["customer"]["history_count"]),
    "customer.password_reset_hours_ago": (
        False,
        ("customer.password_reset_hours_ago",),
        lambda t, d: t["customer"].get("password_reset_hours_ago"),
    ),
    "velocity.txn_last_1h": (False, ("velocity.txn_last_1h",), lambda t, d: t["velocity"]["txn_last_1h"]),
    "velocity.txn_last_24h": (False, ("velocity.txn_last_24h",), lambda t, d: t["velocity"]["txn_last_24h"]),
    "hour": (False, ("hour", "timestamp"), lambda t, d: d["hour"]),
    "amount_ratio": (False, ("amount_ratio", "amount", "customer.avg_amount"), lambda t, d: d["amount_ratio"]),
    "channel": (True, ("channel",), lambda t, d: t["channel"]),
    "txn_code": (True, ("txn_code",), lambda t, d: t["txn_code"]),
    "merchant.category": (True, ("merchant.category",), lambda t, d: t["merchant"]["category"]),
    "merchant.country": (True, ("merchant.country",), lambda t, d: t["merchant"]["country"]),
    "country_status": (
        True,
        ("country_status", "merchant.country", "customer.home_country", "customer.travel_notice_country"),
        lambda t, d: d["country_status"],
    ),
    "device_new": (True, ("device_new",), lambda t, d: t["device_new"]),
    "category_usual": (
        True,
        ("category_usual", "merchant.category", "customer.usual_categories"),
        lambda t, d: d["category_usual"],
    ),
    "travel_notice": (
        True,
        ("customer.travel_notice_country",),
        lambda t, d: t["customer"].get("travel_notice_country") is not None,
    ),
}


def shortcut_report(transactions: list[dict[str, Any]], labels: list[str], profile: Profile) -> dict[str, Any]:
    """How well each single feature, and the generic score, separates FRAUD from LEGITIMATE below the threshold.

    A rule's own fields are expected to separate its rows, so they count only if they still do without them.
    """
    rows = []
    for txn, label in zip(transactions, labels, strict=True):
        try:
            verdict, derived = assess(profile, txn), derived_facts(txn)
            values = {name: get(txn, derived) for name, (_, _, get) in FEATURES.items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # a malformed transaction is reported by the other checks
        if verdict.generic_score < profile.decision_threshold and label in ("FRAUD", "LEGITIMATE"):
            rows.append(({"generic_score": verdict.generic_score, **values}, label == "FRAUD", set(verdict.red_flags)))
    y = np.array([fraud for _, fraud, _ in rows], dtype=bool)
    features = {"generic_score": _measure([r[0]["generic_score"] for r in rows], y, False, [], [])}
    for name, (categorical, fields, _) in FEATURES.items():
        rules = [r.code for r in profile.rules if r.kind != "generic" and _reads(r, fields)]
        features[name] = _measure([r[0][name] for r in rows], y, categorical, rules, [r[2] for r in rows])
    scores = [r[0]["generic_score"] for r in rows]
    auc = float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else None
    generic = {
        "FRAUD": dict(sorted(Counter(s for s, f in zip(scores, y, strict=True) if f).items())),
        "LEGITIMATE": dict(sorted(Counter(s for s, f in zip(scores, y, strict=True) if not f).items())),
        "auc": auc,
        "shortcut": auc is not None and min(y.sum(), len(y) - y.sum()) >= MIN_ROWS and not _in_band(auc),
    }
    features["generic_score"]["shortcut"] |= generic["shortcut"]
    return {
        "n_fraud": int(y.sum()),
        "n_legit": int(len(y) - y.sum()),
        "bound": BOUND,
        "auc_band": list(AUC_BAND),
        "features": features,
        "generic_score": generic,
        "shortcuts": [name for name, f in features.items() if f["shortcut"]],
    }


def _reads(rule: Any, fields: tuple[str, ...]) -> bool:
    return any(c.field in fields for c in (*rule.when, *rule.when_any))


def _in_band(auc: float) -> bool:
    return AUC_BAND[0] <= auc <= AUC_BAND[1]


def _measure(values: list[Any], y: np.ndarray, categorical: bool, rules: list[str], flags: list[set[str]]) -> dict:
    """Out-of-fold balanced accuracy, over all rows and (for a rule field) over the rows no such rule fires on."""
    column = np.array([str(v) for v in values] if categorical else [_number(v) for v in values])
    accuracy = _stump_accuracy(column, y, categorical)
    without = None
    if rules:
        keep = np.array([not (f & set(rules)) for f in flags], dtype=bool)
        without = _stump_accuracy(column[keep], y[keep], categorical)
    deciding = without if rules else accuracy
    return {
        "balanced_accuracy": accuracy,
        "n_fraud": int(y.sum()),
        "n_legit": int(len(y) - y.sum()),
        "rule": rules,
        "without_rule_rows": without,
        "shortcut": deciding is not None and deciding >= BOUND,
    }


def _number(value: Any) -> float:
    if value is None:
        return NULL
    return 1e12 if math.isinf(float(value)) else float(value)  # an average of 0 makes the ratio infinite


def _stump_accuracy(column: np.ndarray, y: np.ndarray, categorical: bool) -> float | None:
    """Balanced accuracy of the best one-feature split, learnt on 4/5 and scored on the held-out 1/5.

    Held out so that a feature with a value per row (an amount in cents) cannot just memorise the labels.
    """
    if min(y.sum(), len(y) - y.sum()) < MIN_ROWS:
        return None
    predicted = np.zeros_like(y)
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(column, y):
        fit = _best_subset if categorical else _best_interval
        predicted[test] = fit(column[train], y[train], column[test])
    return round(float(balanced_accuracy_score(y, predicted)), 4)


def _best_interval(train: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Depth-2 tree on one number: the best threshold, interval or pair of intervals."""
    tree = DecisionTreeClassifier(max_depth=2, class_weight="balanced", random_state=SEED)
    return tree.fit(train.reshape(-1, 1), y).predict(test.reshape(-1, 1))


def _best_subset(train: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The values more common (by share) among FRAUD than LEGITIMATE rows: the best subset for balanced accuracy."""
    fraud, legit = Counter(train[y]), Counter(train[~y])
    chosen = [v for v in fraud if fraud[v] / y.sum() > legit.get(v, 0) / (~y).sum()]
    return np.isin(test, chosen)
