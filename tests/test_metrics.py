"""Metrics checked against scikit-learn / scipy and against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from fraudtune import stats
from fraudtune.evaluate import metrics


def _data(seed: int, n: int = 200, ties: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    prob = np.clip(0.35 * y + rng.random(n) * 0.7, 0, 1)
    if ties:
        prob = np.round(prob, 1)  # many tied scores, like the rules engine's risk_score / 100
    return y, prob >= 0.5, prob


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [True, False])
def test_classification_matches_sklearn(seed, ties):
    y, pred, prob = _data(seed, ties=ties)
    got = metrics.classification(y, pred, prob)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(sk.precision_score(y, pred))
    assert got["recall"] == pytest.approx(sk.recall_score(y, pred))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, prob))
    assert got["pr_auc"] == pytest.approx(sk.average_precision_score(y, prob))
    tn, fp, fn, tp = sk.confusion_matrix(y, pred).ravel()
    assert got["confusion"] == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10)), min_size=2, max_size=40))
def test_aucs_match_sklearn_on_any_sample(pairs):
    y = np.array([p[0] for p in pairs])
    prob = np.array([p[1] / 10 for p in pairs])
    if y.all() or not y.any():
        assert metrics.roc_auc(y, prob) is None
        return
    assert metrics.roc_auc(y, prob) == pytest.approx(sk.roc_auc_score(y, prob))
    assert metrics.average_precision(y, prob) == pytest.approx(sk.average_precision_score(y, prob))


def test_undefined_values_are_none_not_guesses():
    y, pred = np.array([0, 0, 0]), np.array([0, 0, 0])
    got = metrics.classification(y, pred, np.array([0.1, 0.2, 0.3]))
    assert got["accuracy"] == 1.0
    assert got["recall"] is None and got["f1"] is None  # no fraud in the sample
    assert got["roc_auc"] is None and got["pr_auc"] is None
    assert got["precision"] == 0.0 == sk.precision_score(y, pred, zero_division=0)  # nothing flagged


def test_a_model_that_never_flags_has_zero_precision_and_f1():
    y, pred = np.array([1, 0, 1, 0]), np.zeros(4, int)
    got = metrics.classification(y, pred, np.full(4, 0.2))
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)
    assert got["f1"] == sk.f1_score(y, pred, zero_division=0)
    assert metrics.at_prevalence(y, pred, 0.05)["precision"] == 0.0


def _paired(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return np.array(a, bool), np.array(b, bool)


def test_mcnemar_exact_on_a_known_table():
    a, b = _paired(both=50, only_a=12, only_b=3, neither=5)
    got = metrics.mcnemar_exact(a, b)
    assert (got["b"], got["c"]) == (12, 3)
    # by hand: 2 * P(X <= 3), X ~ Bin(15, 1/2) = 2 * (1 + 15 + 105 + 455) / 2**15
    assert got["p"] == pytest.approx(2 * 576 / 2**15)
    assert got["p"] == pytest.approx(binomtest(3, 15, 0.5).pvalue)


@pytest.mark.parametrize("only_a,only_b", [(0, 0), (5, 5), (1, 0), (20, 2), (0, 9)])
def test_mcnemar_matches_scipy_binomtest(only_a, only_b):
    a, b = _paired(both=10, only_a=only_a, only_b=only_b, neither=4)
    got = metrics.mcnemar_exact(a, b)
    expected = 1.0 if only_a + only_b == 0 else binomtest(only_b, only_a + only_b, 0.5).pvalue
    assert got["p"] == pytest.approx(expected)


def test_prevalence_reweighting_worked_example():
    # test set: 50 fraud, 50 legitimate; the model catches 40 frauds and wrongly flags 5 legitimate ones
    y = np.array([1] * 50 + [0] * 50, bool)
    pred = np.array([1] * 40 + [0] * 10 + [1] * 5 + [0] * 45, bool)
    got = metrics.at_prevalence(y, pred, 0.05)
    # by hand, per 1,000 production transactions at 5% fraud: 50 frauds x recall 0.8 = 40 caught;
    # 950 legitimate x FPR 0.1 = 95 false alerts; precision = 40 / 135, alerts = 135
    assert got["recall"] == pytest.approx(0.8)
    assert got["fpr"] == pytest.approx(0.1)
    assert got["precision"] == pytest.approx(40 / 135)
    assert got["alerts_per_1k"] == pytest.approx(135)
    assert got["f1"] == pytest.approx(2 * (40 / 135) * 0.8 / (40 / 135 + 0.8))
    # on the balanced test set itself the precision is 40 / 45: the reweighting is what changes it
    assert metrics.classification(y, pred, pred.astype(float))["precision"] == pytest.approx(40 / 45)


def test_prevalence_without_both_classes_is_undefined():
    got = metrics.at_prevalence(np.array([1, 1], bool), np.array([1, 0], bool), 0.05)
    assert got["precision"] is None and got["alerts_per_1k"] is None


def test_threshold_at_fpr_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    prob = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.8, 0.95])
    # one false positive of four allowed: flagging >= 0.4 catches all three frauds and only the 0.9 negative
    got = metrics.threshold_at_fpr(y, prob, 0.25)
    assert got == {"target_fpr": 0.25, "threshold": 0.4, "fpr": 0.25, "recall": 1.0}
    # no false positive allowed: only the 0.95 fraud is above every negative
    got = metrics.threshold_at_fpr(y, prob, 0.0)
    assert got["threshold"] == 0.95 and got["recall"] == pytest.approx(1 / 3) and got["fpr"] == 0.0


def test_threshold_at_fpr_when_no_threshold_fits():
    y = np.array([0, 1], bool)
    got = metrics.threshold_at_fpr(y, np.array([0.9, 0.1]), 0.01)
    assert got["threshold"] is None and got["recall"] == 0.0


def test_calibration_matches_sklearn():
    rng = np.random.default_rng(3)
    prob = rng.random(500)
    y = rng.random(500) < prob
    got = metrics.calibration(y, prob, bins=10)
    assert got["brier"] == pytest.approx(sk.brier_score_loss(y, prob))
    frac, mean = calibration_curve(y, prob, n_bins=10, strategy="uniform")
    assert [p["fraction_positive"] for p in got["calibration"]] == pytest.approx(list(frac))
    assert [p["mean_predicted"] for p in got["calibration"]] == pytest.approx(list(mean))
    assert sum(p["count"] for p in got["calibration"]) == 500
    assert set(got["calibration"][0]) == {"bin", "range", "mean_predicted", "fraction_positive", "count"}


def test_bootstrap_is_paired_seeded_and_brackets_the_estimate():
    y, pred, prob = _data(5)
    idx = stats.bootstrap_indices(len(y), 300, seed=11)
    assert np.array_equal(idx, stats.bootstrap_indices(len(y), 300, seed=11))
    samples = metrics.bootstrap_samples(y, pred, prob, idx)
    point = metrics.classification(y, pred, prob)
    for name in metrics.CI_METRICS:
        lo, hi = stats.percentile_interval(samples[name])
        assert lo <= point[name] <= hi, name
    # one resample by hand
    i = idx[0]
    assert samples["accuracy"][0] == pytest.approx(np.mean(y[i] == pred[i]))
    assert samples["f1"][0] == pytest.approx(sk.f1_score(y[i], pred[i]))
    assert samples["roc_auc"][0] == pytest.approx(sk.roc_auc_score(y[i], prob[i]))


def test_consistency_and_slices():
    decisions = [["FRAUD", "FRAUD"], ["FRAUD", "LEGITIMATE"], [None, None], ["LEGITIMATE"] * 3]
    assert metrics.all_agree(decisions) == pytest.approx(2 / 4)
    assert metrics.all_agree([]) is None
    correct = np.array([1, 0, 1, 1], bool)
    assert metrics.slice_accuracy(correct, np.array([1, 1, 0, 0], bool)) == {"accuracy": 0.5, "n": 2}
    assert metrics.slice_accuracy(correct, np.zeros(4, bool)) == {"accuracy": None, "n": 0}
    assert metrics.percentiles([1.0, 2.0, 3.0, 4.0, 100.0]) == (3.0, pytest.approx(80.8))
    assert metrics.percentiles([]) == (None, None)


def test_rule_only_slice_counts_rule_cases_under_the_generic_threshold():
    from fraudtune.evaluate.summary import slices

    rows = [  # (category, deciding rule, generic score, label)
        {"category": "company_specific", "deciding_rule": "VELOCITY_BURST", "generic_score": 0, "label": "FRAUD"},
        {"category": "company_specific", "deciding_rule": "VELOCITY_BURST", "generic_score": 45, "label": "FRAUD"},
        {"category": "company_specific", "deciding_rule": "CARD_TESTING", "generic_score": 20, "label": "FRAUD"},
        {"category": "imported", "deciding_rule": "CARD_TESTING", "generic_score": 70, "label": "FRAUD"},  # not
        {"category": "clear_legitimate", "deciding_rule": None, "generic_score": 10, "label": "LEGITIMATE"},
    ]
    correct = np.array([1, 0, 1, 1, 1], bool)
    got = slices(correct, rows, 50)["rule_only"]
    assert (got["n"], got["accuracy"]) == (3, pytest.approx(2 / 3))
    assert got["by_rule"] == {"CARD_TESTING": {"accuracy": 1.0, "n": 1}, "VELOCITY_BURST": {"accuracy": 0.5, "n": 2}}
