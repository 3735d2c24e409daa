"""Classification metrics, bootstrap intervals, McNemar, prior shift, operating thresholds, calibration.

Pure functions of numpy arrays: `y` is 1 for FRAUD (the positive class), `pred` the 0/1 decision and `prob` the
fraud probability. Values that a sample can't define (an AUC with one class present, recall without frauds) are
None, never a guess; precision when nothing is flagged is 0, as scikit-learn's zero_division=0 reports it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_curve

from fraudtune.stats import confusion, f1_from
from fraudtune.stats import ratio as _ratio

CI_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")


def roc_auc(y: np.ndarray, prob: np.ndarray) -> float | None:
    """Area under the ROC curve via the Mann-Whitney rank statistic (ties count half, as in scikit-learn)."""
    y = np.asarray(y, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(prob)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, prob: np.ndarray) -> float | None:
    """PR AUC as average precision: sum over distinct thresholds of (recall step) x precision (scikit-learn's)."""
    y = np.asarray(y, bool)
    if not y.any():
        return None
    order = np.argsort(-np.asarray(prob, float), kind="mergesort")
    p_sorted, y_sorted = np.asarray(prob, float)[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    flagged = last_of_tie + 1
    precision, recall = tp / flagged, tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification(y: np.ndarray, pred: np.ndarray, prob: np.ndarray) -> dict[str, Any]:
    """accuracy, precision, recall, f1, roc_auc, pr_auc and the confusion counts."""
    c = confusion(y, pred)
    precision, recall = _ratio(c["tp"], c["tp"] + c["fp"]) or 0.0, _ratio(c["tp"], c["tp"] + c["fn"])
    return {
        "accuracy": _ratio(c["tp"] + c["tn"], len(y)),
        "precision": precision,
        "recall": recall,
        "f1": f1_from(precision, recall),
        "roc_auc": roc_auc(y, prob),
        "pr_auc": average_precision(y, prob),
        "confusion": c,
    }


def bootstrap_samples(y: np.ndarray, pred: np.ndarray, prob: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Each CI metric on every resample (NaN where a resample leaves it undefined)."""
    y, pred, prob = np.asarray(y, bool), np.asarray(pred, bool), np.asarray(prob, float)
    ys, ps = y[idx], pred[idx]
    tp, fp = (ys & ps).sum(1), (~ys & ps).sum(1)
    fn = (ys & ~ps).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    aucs = [(roc_auc(y[i], prob[i]), average_precision(y[i], prob[i])) for i in idx]
    return {
        "accuracy": (ys == ps).mean(1),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": np.array([np.nan if a is None else a for a, _ in aucs]),
        "pr_auc": np.array([np.nan if p is None else p for _, p in aucs]),
    }


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """Exact (binomial) McNemar test on paired decisions.

    b = A right where B is wrong, c = A wrong where B is right; under H0 b ~ Binomial(b + c, 1/2), two-sided.
    """
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    b, c = int(np.sum(a & ~b_)), int(np.sum(~a & b_))
    p = 1.0 if b + c == 0 else min(1.0, 2 * float(stats.binom.cdf(min(b, c), b + c, 0.5)))
    return {"b": b, "c": c, "p": p}


def at_prevalence(y: np.ndarray, pred: np.ndarray, rate: float) -> dict[str, Any]:
    """Precision, recall and alert volume if fraud made up `rate` of traffic (prior-shift reweighting).

    Positives are weighted rate / test share and negatives (1 - rate) / (1 - test share): recall and the
    false-positive rate carry over, precision does not.
    """
    c = confusion(y, pred)
    pos, neg = c["tp"] + c["fn"], c["fp"] + c["tn"]
    if pos == 0 or neg == 0:
        return {"fraud_rate": rate, "precision": None, "recall": None, "f1": None, "fpr": None, "alerts_per_1k": None}
    share = pos / (pos + neg)
    w_pos, w_neg = rate / share, (1 - rate) / (1 - share)
    precision = _ratio(w_pos * c["tp"], w_pos * c["tp"] + w_neg * c["fp"]) or 0.0
    recall, fpr = c["tp"] / pos, c["fp"] / neg
    return {
        "fraud_rate": rate,
        "precision": precision,
        "recall": recall,
        "f1": f1_from(precision, recall),
        "fpr": fpr,
        "alerts_per_1k": 1000 * (rate * recall + (1 - rate) * fpr),
    }


def threshold_at_fpr(y: np.ndarray, prob: np.ndarray, target_fpr: float) -> dict[str, Any]:
    """The lowest threshold (flag when prob >= threshold) whose false-positive rate is <= target, and its recall.

    threshold None means no threshold flags anything without exceeding the target.
    """
    y = np.asarray(y, bool)
    out: dict[str, Any] = {"target_fpr": target_fpr, "threshold": None, "fpr": None, "recall": None}
    if y.all() or not y.any():
        return out
    fpr, tpr, thresholds = roc_curve(y, prob, drop_intermediate=False)
    ok = np.flatnonzero(fpr <= target_fpr + 1e-12)
    best = int(ok[-1])
    threshold = None if math.isinf(thresholds[best]) else float(thresholds[best])
    return {**out, "threshold": threshold, "fpr": float(fpr[best]), "recall": float(tpr[best])}


def calibration(y: np.ndarray, prob: np.ndarray, bins: int) -> dict[str, Any]:
    """Brier score, expected calibration error and the reliability curve over equal-width bins."""
    y, prob = np.asarray(y, float), np.clip(np.asarray(prob, float), 0.0, 1.0)
    which = np.minimum((prob * bins).astype(int), bins - 1)
    points, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        mean_p, frac = float(prob[inside].mean()), float(y[inside].mean())
        ece += inside.mean() * abs(mean_p - frac)
        points.append(
            {
                "bin": b,
                "range": [b / bins, (b + 1) / bins],
                "mean_predicted": mean_p,
                "fraction_positive": frac,
                "count": int(inside.sum()),
            }
        )
    return {"brier": float(np.mean((prob - y) ** 2)) if len(y) else None, "ece": float(ece), "calibration": points}


def all_agree(decisions: list[list[str | None]]) -> float | None:
    """Share of items whose sampled decisions are all the same label (an unreadable decision never agrees)."""
    if not decisions:
        return None
    return float(np.mean([bool(d) and None not in d and len(set(d)) == 1 for d in decisions]))


def slice_accuracy(correct: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """{accuracy, n} over the rows in `mask` (accuracy None on an empty slice)."""
    mask = np.asarray(mask, bool)
    n = int(mask.sum())
    return {"accuracy": float(np.asarray(correct, bool)[mask].mean()) if n else None, "n": n}


def percentiles(values: list[float]) -> tuple[float | None, float | None]:
    """(p50, p95) of a list of latencies."""
    if not values:
        return None, None
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))
