"""Can one field or the generic score tell the labels apart without the rulebook (SPEC 4)?

Only rows the generic score does not decide count: there a FRAUD label must come from a rule of 3.2/3.3, so any
other single feature that separates the labels is a shortcut a learner would take instead of the rules.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from fraudtune.profile import Profile, assess, derived_facts, lookup

# Balanced accuracy 0.75 = e.g. half of the rule-decided fraud caught with no legitimate row touched: a learner
# gets that much of the rulebook for free. Out of fold, a field unrelated to the label scores about 0.5 (usually
# less), with a standard error <= 0.08 at MIN_ROWS per class, so 0.75 is ~3 errors above chance; at 0.6-0.65 the
# mild imbalances any finite sample carries would be flagged too (unrelated fields reached 0.68 in 120 seeded clean
# sets of tests/test_shortcuts.py's shape, and 0.64 in the `data generate --n 500 --seed 7` demo set).
BOUND = 0.75
AUC_BAND = (0.35, 0.65)  # generic score vs label: AUC outside it ranks rule fraud above (or below) legitimate rows
MIN_ROWS = 10  # per label; fewer and a figure is noise, so nothing is measured
FOLDS = 5
SEED = 0  # fixed folds: the same data always gives the same report
LABELS = (("FRAUD", True), ("LEGITIMATE", False))
NULL = -1.0  # a missing number (no password reset) is its own value, below every real one

# the single features of a SPEC 1 transaction (dotted fields, profile-derived facts, travel notice present)
NUMERIC = ("amount", "customer.avg_amount", "customer.account_age_days", "customer.history_count", "hour")
NUMERIC += ("customer.password_reset_hours_ago", "velocity.txn_last_1h", "velocity.txn_last_24h", "amount_ratio")
CATEGORICAL = ("channel", "txn_code", "merchant.category", "merchant.country", "country_status", "device_new")
CATEGORICAL += ("category_usual", "travel_notice")
# the raw fields a derived feature is computed from: a rule that reads one of them explains the feature too
SOURCES = {
    "hour": ("timestamp",),
    "amount_ratio": ("amount", "customer.avg_amount"),
    "country_status": ("merchant.country", "customer.home_country", "customer.travel_notice_country"),
    "category_usual": ("merchant.category", "customer.usual_categories"),
    "travel_notice": ("customer.travel_notice_country",),
}


def shortcut_report(transactions: list[dict[str, Any]], labels: list[str], profile: Profile) -> dict[str, Any]:
    """How well each single feature, and the generic score, separates FRAUD from LEGITIMATE below the threshold.

    A rule's own fields are expected to separate its rows, so they count only if they still do without them.
    """
    columns, y, fired = _rows(transactions, labels, profile)
    features = {}
    for name, column in columns.items():
        fields = (name, *SOURCES.get(name, ()))
        reads = [r for r in profile.rules if any(c.field in fields for c in (*r.when, *r.when_any))]
        rules = [r.code for r in reads if r.kind != "generic"]
        features[name] = _measure(column, y, name in CATEGORICAL, rules, fired)
    scores = columns["generic_score"]
    auc = float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else None
    measured = auc is not None and min(y.sum(), (~y).sum()) >= MIN_ROWS
    features["generic_score"]["shortcut"] |= measured and not AUC_BAND[0] <= auc <= AUC_BAND[1]
    spread = {label: dict(sorted(Counter(scores[y == fraud].tolist()).items())) for label, fraud in LABELS}
    return {
        "n_fraud": int(y.sum()),
        "n_legit": int((~y).sum()),
        "bound": BOUND,
        "auc_band": list(AUC_BAND),
        "features": features,
        "generic_score": {**spread, "auc": auc},
        "shortcuts": [name for name, f in features.items() if f["shortcut"]],
    }


def _rows(
    transactions: list[dict[str, Any]], labels: list[str], profile: Profile
) -> tuple[dict[str, np.ndarray], np.ndarray, list[set[str]]]:
    """Feature columns, FRAUD mask and fired rules of the rows whose generic score stays below the threshold."""
    rows, fraud, fired = [], [], []
    for txn, label in zip(transactions, labels, strict=True):
        try:
            verdict, derived = assess(profile, txn), derived_facts(txn)
            derived["travel_notice"] = txn["customer"].get("travel_notice_country") is not None
            row = {name: _number(lookup(txn, name, derived)) for name in NUMERIC}
            row |= {name: str(lookup(txn, name, derived)) for name in CATEGORICAL}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # a malformed transaction is reported by the other checks
        if verdict.generic_score < profile.decision_threshold and label in ("FRAUD", "LEGITIMATE"):
            rows.append({"generic_score": verdict.generic_score, **row})
            fraud.append(label == "FRAUD")
            fired.append(set(verdict.red_flags))
    columns = {name: np.array([r[name] for r in rows]) for name in ("generic_score", *NUMERIC, *CATEGORICAL)}
    return columns, np.array(fraud, dtype=bool), fired


def _measure(
    column: np.ndarray, y: np.ndarray, categorical: bool, rules: list[str], flags: list[set[str]]
) -> dict[str, Any]:
    """Out-of-fold balanced accuracy, over all rows and (for a rule field) over the rows no such rule fires on."""
    accuracy = _stump_accuracy(column, y, categorical)
    without = None
    if rules:
        keep = np.array([not (f & set(rules)) for f in flags], dtype=bool)
        without = _stump_accuracy(column[keep], y[keep], categorical)
    deciding = without if rules else accuracy
    return {
        "balanced_accuracy": accuracy,
        "n_fraud": int(y.sum()),
        "n_legit": int((~y).sum()),
        "rule": rules,
        "without_rule_rows": without,
        "shortcut": deciding is not None and deciding >= BOUND,
    }


def _number(value: Any) -> float:
    """A missing value becomes NULL, an infinite one (an average of 0) a finite stand-in the tree can split on."""
    if value is None:
        return NULL
    return 1e12 if math.isinf(float(value)) else float(value)


def _stump_accuracy(column: np.ndarray, y: np.ndarray, categorical: bool) -> float | None:
    """Balanced accuracy of the best one-feature split, learnt on 4/5 and scored on the held-out 1/5.

    Held out so that a feature with a value per row (an amount in cents) cannot just memorise the labels.
    """
    if min(y.sum(), (~y).sum()) < MIN_ROWS:
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


def shortcut_problems(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(feature, problem naming the measured figure and the fix) for each shortcut in the report."""
    rows = f"{report['n_fraud']} FRAUD / {report['n_legit']} LEGITIMATE rows the generic score does not decide"
    out = []
    for name in report["shortcuts"]:
        f = report["features"][name]
        if name == "generic_score":
            figure = f"AUC {report['generic_score']['auc']:.2f} (band {AUC_BAND[0]}-{AUC_BAND[1]}), "
            figure += f"best-split balanced accuracy {f['balanced_accuracy']:.2f}"
            fix = "the generator should give company-specific rows the same generic-score spread as legitimate ones"
        elif f["rule"]:
            figure = f"balanced accuracy {f['without_rule_rows']:.2f} without the rows of {', '.join(f['rule'])}"
            fix = f"rows decided by other rules should carry {name} as legitimate rows do"
        else:
            figure = f"balanced accuracy {f['balanced_accuracy']:.2f}, and no rule reads it"
            fix = f"the generator should draw {name} for company-specific rows as for legitimate ones"
        out.append((name, f"tells FRAUD from LEGITIMATE without the rules: {figure} (bound {BOUND}) on {rows}; {fix}"))
    return out
