"""The statistics every stage shares: confusion counts, accuracy/precision/recall/F1, log loss, bootstrap resamples
and percentile intervals. FRAUD is the positive class."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def confusion(y: Sequence[bool] | np.ndarray, pred: Sequence[bool] | np.ndarray) -> dict[str, int]:
    """{tp, fp, tn, fn} with FRAUD as the positive class."""
    y, pred = np.asarray(y, bool), np.asarray(pred, bool)
    return {
        "tp": int(np.sum(y & pred)),
        "fp": int(np.sum(~y & pred)),
        "tn": int(np.sum(~y & ~pred)),
        "fn": int(np.sum(y & ~pred)),
    }


def f1_from(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def classification_scores(truth: Sequence[bool], pred: Sequence[bool]) -> dict[str, float]:
    """accuracy, precision, recall and F1 as plain floats (0.0 where a ratio is undefined): training's
    validation scores and the techniques' test scores."""
    c = confusion(truth, pred)
    precision = ratio(c["tp"], c["tp"] + c["fp"]) or 0.0
    recall = ratio(c["tp"], c["tp"] + c["fn"]) or 0.0
    return {
        "accuracy": ratio(c["tp"] + c["tn"], max(1, len(truth))) or 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1_from(precision, recall) or 0.0,
    }


def log_loss(probs: Sequence[float], truth: Sequence[bool], eps: float = 1e-6) -> float:
    """Mean negative log-likelihood of the true labels under P(FRAUD), probabilities clipped to [eps, 1]."""
    total = sum(-math.log(min(max(p if t else 1 - p, eps), 1.0)) for p, t in zip(probs, truth, strict=True))
    return total / max(1, len(truth))


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) row indices; the same seed gives every model the same resamples (paired intervals)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> list[float] | None:
    """[lo, hi] percentile interval of the defined (non-NaN) resamples."""
    samples = np.asarray(samples, float)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))]


def bootstrap_ci(rows: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of stat over resampled items."""
    rows = np.asarray(rows, dtype=float)
    values = np.array([stat(rows[i]) for i in bootstrap_indices(len(rows), n_boot, seed)])
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def paired_bootstrap(
    before: np.ndarray, after: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int, seed: int
) -> tuple[float, float]:
    """95% percentile interval of stat(after) - stat(before), resampling the same items for both (paired)."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    deltas = np.array([stat(after[i]) - stat(before[i]) for i in bootstrap_indices(len(before), n_boot, seed)])
    lo, hi = np.nanpercentile(deltas, [2.5, 97.5])
    return float(lo), float(hi)
