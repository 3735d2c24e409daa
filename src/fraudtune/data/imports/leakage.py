"""Leakage check: does one feature alone tell FRAUD from LEGITIMATE almost perfectly?

Real exports leak: negatives sampled from one day, a category that only fraud cases carry, amounts in another unit
for confirmed fraud, labels not yet mature for the last weeks. A model trained on such data learns the export, not
the fraud. Two tests per feature, on the rows written for training:

- separation: the single-feature AUC (numbers: the ranking by value, i.e. the best a threshold stump achieves;
  categories: the ranking by each value's fraud rate, values with fewer than `min_rows` rows pooled) is >= `min_auc`
  (or <= 1 - min_auc);
- purity: one value, or the range above or below a threshold, holds only rows of the rarer label (FRAUD, as a
  rule), at least `min_rows` of them and at least `min_share` of all its rows ("this category is always fraud").
  A range holding only the common label is no sign by itself (many cards never meet fraud); when it holds almost
  all of them ("every negative comes from one day"), the separation test fires.

Both need `min_rows` rows of each label; with fewer the check says it was skipped.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.stats import rankdata

MIN_AUC = 0.98
MIN_ROWS = 30
MIN_SHARE = 0.25
NUMERIC = (
    "amount",
    "customer.avg_amount",
    "amount_ratio",
    "customer.history_count",
    "customer.account_age_days",
    "velocity.txn_last_1h",
    "velocity.txn_last_24h",
    "time",
)
CATEGORICAL = (
    "merchant.category",
    "channel",
    "txn_code",
    "merchant.id",
    "merchant.country",
    "customer.home_country",
    "device_new",
    "merchant_new",
    "category_usual",
    "hour",
    "day",
)


@dataclass
class FeatureTable:
    """One compact column per feature (8 bytes a row for numbers, 4 for category codes)."""

    labels: array = field(default_factory=lambda: array("b"))
    numbers: dict[str, array] = field(default_factory=lambda: {n: array("d") for n in NUMERIC})
    codes: dict[str, array] = field(default_factory=lambda: {n: array("i") for n in CATEGORICAL})
    vocab: dict[str, dict[Any, int]] = field(default_factory=lambda: {n: {} for n in CATEGORICAL})

    def add(self, txn: dict[str, Any], fraud: bool, seconds: float, merchant_new: bool) -> None:
        c, m = txn["customer"], txn["merchant"]
        when = datetime.fromisoformat(txn["timestamp"])
        avg = c["avg_amount"]
        numbers = (
            txn["amount"],
            avg,
            txn["amount"] / avg if avg > 0 else math.inf,
            c["history_count"],
            c["account_age_days"],
            txn["velocity"]["txn_last_1h"],
            txn["velocity"]["txn_last_24h"],
            seconds,
        )
        values = (
            m["category"],
            txn["channel"],
            txn["txn_code"],
            m["id"],
            m["country"],
            c["home_country"],
            txn["device_new"],
            merchant_new,
            m["category"] in c["usual_categories"],
            when.hour,
            when.date().isoformat(),
        )
        self.labels.append(1 if fraud else 0)
        for name, value in zip(NUMERIC, numbers, strict=True):
            self.numbers[name].append(float(value))
        for name, value in zip(CATEGORICAL, values, strict=True):
            self.codes[name].append(self.vocab[name].setdefault(value, len(self.vocab[name])))


def leakage_warnings(
    table: FeatureTable, min_auc: float = MIN_AUC, min_rows: int = MIN_ROWS, min_share: float = MIN_SHARE
) -> tuple[list[dict[str, Any]], str | None]:
    """(warnings, why the check was skipped or None); each warning names the feature, the test and how."""
    y = np.frombuffer(table.labels, dtype=np.int8).astype(bool)
    n_fraud, n_legit = int(y.sum()), int((~y).sum())
    if min(n_fraud, n_legit) < min_rows:
        return [], f"skipped: {n_fraud} FRAUD and {n_legit} LEGITIMATE rows; it needs {min_rows} of each"
    warnings = []
    for name in NUMERIC:
        x = np.frombuffer(table.numbers[name], dtype=np.float64)
        if x.min() != x.max():
            warnings += _numeric(name, x, y, min_auc, min_rows, min_share)
    for name in CATEGORICAL:
        codes = np.frombuffer(table.codes[name], dtype=np.int32)
        if len(table.vocab[name]) > 1:
            names = {code: value for value, code in table.vocab[name].items()}
            warnings += _categorical(name, codes, names, y, min_auc, min_rows, min_share)
    return warnings, None


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """Probability that a random FRAUD row scores above a random LEGITIMATE one (ties count half)."""
    ranks = rankdata(score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _numeric(name: str, x: np.ndarray, y: np.ndarray, min_auc: float, min_rows: int, min_share: float) -> list[dict]:
    auc = _auc(x, y)
    if max(auc, 1 - auc) >= min_auc:
        how = _best_threshold(name, x, y, higher_is_fraud=auc >= 0.5)
        text = f"{name} separates the labels almost perfectly (single-feature AUC {auc:.3f}): {how}"
        return [{"feature": name, "test": "separation", "auc": round(auc, 4), "message": text}]
    return [w for w in (_pure_tail(name, x, y, top, min_rows, min_share) for top in (True, False)) if w]


def _best_threshold(name: str, x: np.ndarray, y: np.ndarray, higher_is_fraud: bool) -> str:
    """The cut with the largest TPR - FPR, put in words."""
    s = x if higher_is_fraud else -x
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_value = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # a cut falls only between different values
    tpr = np.cumsum(y_sorted) / y.sum()
    fpr = np.cumsum(~y_sorted) / (~y).sum()
    best = int(np.argmax(np.where(last_of_value, tpr - fpr, -np.inf)))
    cut = _show(name, float(x[order][best]))
    side = ">=" if higher_is_fraud else "<="
    return f"FRAUD rows have {name} {side} {cut} ({tpr[best]:.1%} of them), LEGITIMATE rows {fpr[best]:.1%}"


def _pure_tail(name: str, x: np.ndarray, y: np.ndarray, top: bool, min_rows: int, min_share: float) -> dict | None:
    """The widest range beyond a threshold that holds one label only."""
    order = np.argsort(-x if top else x, kind="stable")
    xs, ys = x[order], y[order]
    first = bool(ys[0])
    if first != _rarer(y):
        return None
    run = int(np.argmax(ys != first)) if (ys != first).any() else len(ys)
    while 0 < run < len(xs) and xs[run] == xs[run - 1]:  # the threshold cannot split equal values
        run -= 1
    label = _label(first)
    total = int((y == first).sum())
    if run < min_rows or run < min_share * total:
        return None
    cut = _show(name, float(xs[run - 1]))
    text = (
        f"{name} {'>=' if top else '<='} {cut} holds only {label} rows ({run} rows, {run / total:.0%} of all {label})"
    )
    return {"feature": name, "test": "purity", "rows": run, "message": text}


def _categorical(
    name: str, codes: np.ndarray, names: dict[int, Any], y: np.ndarray, min_auc: float, min_rows: int, min_share: float
) -> list[dict]:
    counts = np.bincount(codes)
    fraud = np.bincount(codes, weights=y, minlength=len(counts))
    rare = counts < min_rows
    rate = np.where(rare, fraud[rare].sum() / max(counts[rare].sum(), 1), fraud / np.maximum(counts, 1))
    auc = _auc(rate[codes], y)
    if auc >= min_auc:
        # the values holding one label only, those of the rarer label first: 'travel': 54 rows, all FRAUD
        rarer = _rarer(y)
        pure = [c for c in np.argsort(-counts, kind="stable") if not rare[c] and fraud[c] in (0, counts[c])]
        pure = sorted(pure, key=lambda c: (fraud[c] > 0) != rarer)[:3]
        shown = "; ".join(f"{names[c]!r}: {int(counts[c])} rows, all {_label(fraud[c] > 0)}" for c in pure)
        text = f"{name} separates the labels almost perfectly (AUC {auc:.3f} from its per-value fraud rate)"
        message = text + (f": {shown}" if shown else "")
        return [{"feature": name, "test": "separation", "auc": round(auc, 4), "message": message}]
    rarer = _rarer(y)
    held_rarer = fraud if rarer else counts - fraud
    total = int((y == rarer).sum())
    warnings = []
    for c in np.flatnonzero(~rare):
        if held_rarer[c] == counts[c] and counts[c] >= min_share * total:
            label, held = _label(rarer), int(counts[c])
            text = f"{name} = {names[c]!r} holds only {label} rows ({held} rows, {held / total:.0%} of all {label})"
            warnings.append({"feature": name, "test": "purity", "rows": held, "message": text})
    return warnings


def _label(fraud: bool) -> str:
    return "FRAUD" if fraud else "LEGITIMATE"


def _rarer(y: np.ndarray) -> bool:
    """The rarer label: True (FRAUD) unless fraud is the majority."""
    return bool(y.sum() <= (~y).sum())


def _show(name: str, value: float) -> str:
    if name == "time":
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{value:,.2f}" if not float(value).is_integer() else f"{int(value):,}"
