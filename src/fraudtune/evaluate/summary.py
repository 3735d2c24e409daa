"""Per-model metric records for eval.json, from each model's per-transaction predictions.

models.<key> holds: description; accuracy, precision, recall, f1, roc_auc, pr_auc, confusion {tp, fp, tn, fn};
ci {metric: [lo, hi]} (95% bootstrap); at_production_rate {fraud_rate, precision, recall, f1, fpr,
alerts_per_1k}; threshold_at_fpr {target_fpr, threshold, fpr, recall}; company_knowledge {accuracy, n,
documented {accuracy, n}, historical {accuracy, n}, by_rule {code: {accuracy, n}}}; rule_only {accuracy, n,
by_rule} (a company rule decides, the generic score alone is under the threshold); near_miss {accuracy, n};
edge_cases {accuracy, n}; by_category {category: {accuracy, n}}; brier, ece, calibration [{bin, range,
mean_predicted, fraction_positive, count}]; consistency, consistency_n; parse_rate, red_flag_precision,
red_flag_recall, red_flag_f1, risk_score_mae, reasoning_coherence, explanation_clarity, generation_n;
latency_ms_p50, latency_ms_p95, latency_ms_p50_explain, latency_ms_p95_explain, latency_n (requests timed one at a
time); prompt_tokens_per_request,
completion_tokens_per_request, cost_per_1k. Baselines also hold mcnemar_p, mcnemar_b (fine-tuned right, this
model wrong), mcnemar_c (the reverse) and delta_ci {accuracy, f1, recall}: fine-tuned minus this model, paired.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fraudtune import stats
from fraudtune.config import EvalConfig
from fraudtune.evaluate import metrics
from fraudtune.evaluate.quality import QUALITY_KEYS, answer_flags, flag_agreement, response_quality
from fraudtune.profile import Profile

MODEL_ORDER = ("prompted_base", "rules_engine", "gradient_boosting", "api", "fine_tuned")
DESCRIPTIONS = {
    "fine_tuned": "the run's LoRA adapter on the base model; short prompt",
    "prompted_base": "same base model, no adapter; written rulebook + few-shot examples in the prompt",
    "rules_engine": "written rulebook (generic flags + documented rules) applied to the raw fields",
    "gradient_boosting": "HistGradientBoostingClassifier on the raw transaction fields of the train split",
    "api": "OpenAI-compatible chat endpoint with the rulebook prompt",
}
DETERMINISTIC = ("rules_engine", "gradient_boosting")
DELTA_METRICS = ("accuracy", "f1", "recall")


def summarise(
    records: dict[str, list[dict[str, Any]]],
    rows: list[dict[str, Any]],
    subset: list[int],
    ecfg: EvalConfig,
    seed: int,
    profile: Profile,
) -> dict[str, dict[str, Any]]:
    """models.<key> for every model, in table order, with the paired comparisons against fine_tuned."""
    y = np.array([r["label"] == "FRAUD" for r in rows])
    idx = stats.bootstrap_indices(len(rows), ecfg.bootstrap, seed)  # same resamples for all: paired intervals
    out, samples = {}, {}
    for key in (k for k in MODEL_ORDER if k in records):
        out[key], samples[key] = model_summary(key, records[key], rows, y, idx, ecfg, profile)
    tuned_correct = _correct(records["fine_tuned"], y)
    for key in out:
        if key == "fine_tuned":
            continue
        test = metrics.mcnemar_exact(tuned_correct, _correct(records[key], y))
        out[key].update(mcnemar_p=test["p"], mcnemar_b=test["b"], mcnemar_c=test["c"])
        out[key]["delta_ci"] = {
            m: stats.percentile_interval(samples["fine_tuned"][m] - samples[key][m]) for m in DELTA_METRICS
        }
    return out


def _correct(records: list[dict[str, Any]], y: np.ndarray) -> np.ndarray:
    return np.array([r["label"] == "FRAUD" for r in records]) == y


def model_summary(
    key: str,
    records: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    y: np.ndarray,
    idx: np.ndarray,
    ecfg: EvalConfig,
    profile: Profile,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One model's record (see the module docstring) and its bootstrap samples."""
    pred = np.array([r["label"] == "FRAUD" for r in records])
    prob = np.array([float(r["fraud_probability"]) for r in records])
    out: dict[str, Any] = {"description": DESCRIPTIONS[key], **metrics.classification(y, pred, prob)}
    samples = metrics.bootstrap_samples(y, pred, prob, idx)
    out["ci"] = {m: stats.percentile_interval(samples[m]) for m in metrics.CI_METRICS}
    out["at_production_rate"] = metrics.at_prevalence(y, pred, ecfg.production_fraud_rate)
    out["threshold_at_fpr"] = metrics.threshold_at_fpr(y, prob, ecfg.target_fpr)
    out.update(slices(pred == y, rows, profile.decision_threshold))
    out.update(metrics.calibration(y, prob, ecfg.calibration_bins))
    out.update(generation_summary(key, records, rows, profile))
    out.update(cost_summary(records, ecfg))
    return out, samples


def slices(correct: np.ndarray, rows: list[dict[str, Any]], threshold: int) -> dict[str, Any]:
    """Accuracy on the company-knowledge, rule-only, near-miss and borderline slices, and per category.

    Rule-only (SPEC 4): a company rule decides and the generic score alone stays under the threshold, so only
    company knowledge gets the row right; whatever its category (imported data has no categories)."""
    category = np.array([r["category"] for r in rows])
    kind = np.array([r.get("rule_kind") or "" for r in rows])
    rule = np.array([r.get("deciding_rule") or "" for r in rows])
    near = np.array([bool(r.get("near_miss")) and r["label"] == "LEGITIMATE" for r in rows])
    generic = np.array([r.get("generic_score", threshold) for r in rows])
    rule_only = (rule != "") & (generic < threshold)
    company = category == "company_specific"
    return {
        "rule_only": {
            **metrics.slice_accuracy(correct, rule_only),
            "by_rule": {
                code: metrics.slice_accuracy(correct, rule_only & (rule == code))
                for code in sorted(set(rule[rule_only]))
            },
        },
        "company_knowledge": {
            **metrics.slice_accuracy(correct, company),
            "documented": metrics.slice_accuracy(correct, company & (kind == "documented")),
            "historical": metrics.slice_accuracy(correct, company & (kind == "historical")),
            "by_rule": {code: metrics.slice_accuracy(correct, rule == code) for code in sorted(set(rule) - {""})},
        },
        "near_miss": metrics.slice_accuracy(correct, near),
        "edge_cases": metrics.slice_accuracy(correct, category == "borderline"),
        "by_category": {c: metrics.slice_accuracy(correct, category == c) for c in sorted(set(category))},
    }


def generation_summary(
    key: str, records: list[dict[str, Any]], rows: list[dict[str, Any]], profile: Profile
) -> dict[str, Any]:
    """Consistency, response quality and latency from the generated answers (LLMs) or the fast predictions."""
    answered = [i for i, r in enumerate(records) if "answer" in r]
    out: dict[str, Any] = dict.fromkeys(QUALITY_KEYS)
    if answered:
        answers = [records[i]["answer"] for i in answered]
        out.update(response_quality(answers, [rows[i] for i in answered], profile))
        exact = [records[i]["consistency"] for i in answered if "consistency" in records[i]]
        if exact:  # computed from the label words' probabilities (evaluate/llm.exact_agreement)
            out["consistency"], out["consistency_n"] = _mean([e["agreement"] for e in exact]), len(exact)
            out["consistency_method"] = "exact"
            out["consistency_other_mass_max"] = max(e["other_mass"] for e in exact)
        else:
            sampled = [records[i]["decisions"] for i in answered if "decisions" in records[i]]
            out["consistency"], out["consistency_n"] = metrics.all_agree(sampled), len(sampled)
            out["consistency_method"] = "sampled" if sampled else None
        timed = [a for a in answers if a.get("latency_ms") is not None]  # the rest were decoded in batches
        score_ms, explain_ms = [a["latency_ms"] for a in timed], [a["latency_ms_explain"] for a in timed]
    else:
        deterministic = key in DETERMINISTIC
        out["consistency"], out["consistency_n"] = (1.0 if deterministic else None), len(records)
        if "red_flags" in records[0]:  # the rules engine states its flags and score
            stated = [{**r, "red_flags": answer_flags(r)} for r in records]  # what its SPEC 2 answer would list
            out.update(flag_agreement(stated, [answer_flags(r) for r in rows]))
            out["risk_score_mae"] = float(
                np.mean([abs(p["risk_score"] - r["risk_score"]) for p, r in zip(records, rows, strict=True)])
            )
        score_ms, explain_ms = [r["latency_ms"] for r in records], []
    out["generation_n"] = len(answered)
    out["latency_n"] = len(score_ms)
    out["latency_ms_p50"], out["latency_ms_p95"] = metrics.percentiles(score_ms)
    out["latency_ms_p50_explain"], out["latency_ms_p95_explain"] = metrics.percentiles(explain_ms)
    return out


def _mean(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def cost_summary(records: list[dict[str, Any]], ecfg: EvalConfig) -> dict[str, Any]:
    """Mean prompt and completion tokens per request (tokenizer counts) and $ per 1K requests; None without tokens."""
    prompt = _mean([r.get("prompt_tokens") for r in records])
    completion = _mean([r["answer"].get("completion_tokens") for r in records if "answer" in r])
    cost = None
    if prompt is not None:
        cost = prompt * ecfg.price_prompt_per_1k + (completion or 0.0) * ecfg.price_completion_per_1k
    return {"prompt_tokens_per_request": prompt, "completion_tokens_per_request": completion, "cost_per_1k": cost}
