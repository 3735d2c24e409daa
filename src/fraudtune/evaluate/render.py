"""eval.md: the comparison table in the seed's shape (Metric | baselines... | Fine-tuned | Improvement) and notes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fraudtune.dotted import get_dotted
from fraudtune.evaluate.summary import MODEL_ORDER

TITLES = {
    "prompted_base": "Prompted base",
    "rules_engine": "Rules engine",
    "gradient_boosting": "Gradient boosting",
    "api": "API model",
    "fine_tuned": "Fine-tuned",
}
NOTES = [
    "Improvement = fine-tuned minus the prompted base model (the seed's prompt-engineering regime): percentage "
    "points for rates, differences for scores, relative change for latency, tokens and cost.",
    "The company-specific slice (and its documented / historical parts) holds only FRAUD cases, so a model that "
    "always answers FRAUD scores 100% there; read it together with the near-miss negatives (all LEGITIMATE).",
    "Intervals are 95% percentile bootstrap intervals over test transactions (the same resamples for every model).",
    "McNemar: exact binomial test on the discordant pairs; b = fine-tuned right where the baseline is wrong, "
    "c = the reverse.",
    "Consistency: share of generation-subset transactions whose sampled answers (temperature eval.temperature, "
    "eval.consistency_runs samples, read up to the decision) all give the same label; deterministic baselines are 1. "
    "Where the answer starts with its verdict (the fine-tuned model, verdict first) that share is computed, not "
    "sampled: the decision is the first sampled word, so the runs agree with probability p_F^runs + p_L^runs, p the "
    "chance at that temperature that the answer starts with FRAUD / LEGITIMATE (each word's tokens teacher-forced); "
    "answers starting with anything else count as disagreeing (their largest mass is in eval.json).",
    "Response quality is computed by code from the SPEC 2 format (no LLM judge runs offline). Clarity (1-5) = 1 + "
    "one point each for: all four lines parse; reasoning 1-3 sentences of 5-80 words; reasoning cites every flag "
    "(or names the normal pattern); label agrees with score and threshold, no contradiction, no looping text.",
    "Latency: one request at a time on the generation subset (scoring = the forward pass that gives the label "
    "probability; with explanation = until the answer ends). The prompted model reuses the cached key/values of "
    "its shared prefix (rulebook + few-shot turns), as a serving stack with prefix caching would; token counts "
    "and cost are for the full prompt. Rules engine and gradient boosting: compute time per transaction.",
    "Prompt-injection flip rate: share of caught FRAUD cases (generation subset) that an instruction planted in "
    "the merchant's free text turns into LEGITIMATE, with the shipped sanitising (evaluate/injection.py).",
    "At production rate: precision and recall after reweighting positives and negatives to the production fraud "
    "rate (prior shift); recall does not change, precision does.",
    "Gradient boosting features: amount, log amount, customer average, log ratio, hour, weekday, merchant country "
    "== home, travel notice (present, matches), new device, account age, history count, password reset hours, "
    "velocity 1h/24h, category usual; categorical channel, txn_code, category, merchant country, and merchant "
    "family (the id's middle segment, M-ELEC-0042 -> ELEC; target-free, the LLM reads the whole id).",
]

Getter = Callable[[dict[str, Any]], Any]


def _get(path: str) -> Getter:
    return lambda model: get_dotted(model, path)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _num(digits: int) -> Callable[[float | None], str]:
    return lambda v: "–" if v is None else f"{v:,.{digits}f}"


def _with_ci(metric: str) -> Callable[[dict[str, Any]], str]:
    def show(model: dict[str, Any]) -> str:
        value, ci = model.get(metric), (model.get("ci") or {}).get(metric)
        pct = metric in ("accuracy", "precision", "recall", "f1")
        fmt = _pct if pct else _num(3)
        if value is None or not ci:
            return fmt(value)
        lo, hi = (f"{100 * x:.1f}" if pct else f"{x:.3f}" for x in ci)
        return f"{fmt(value)} [{lo}, {hi}]"

    return show


def _pair(a: str, b: str) -> Callable[[dict[str, Any]], str]:
    return lambda m: (
        "–" if m.get(a) is None else f"{m[a]:,.0f} / {m[b]:,.0f}" if m.get(b) is not None else f"{m[a]:,.0f}"
    )


def _slice(path: str) -> Callable[[dict[str, Any]], str]:
    return lambda m: _pct(_get(path + ".accuracy")(m))


def _mcnemar(m: dict[str, Any]) -> str:
    if m.get("mcnemar_p") is None:
        return "–"
    return f"p={m['mcnemar_p']:.3g} ({m['mcnemar_b']}/{m['mcnemar_c']})"


# (row title, cell renderer, value for the improvement column, kind of improvement)
ROWS: list[tuple[str, Callable[[dict[str, Any]], str], Getter | None, str]] = [
    ("Accuracy [95% CI]", _with_ci("accuracy"), _get("accuracy"), "pp"),
    ("Precision [95% CI]", _with_ci("precision"), _get("precision"), "pp"),
    ("Recall [95% CI]", _with_ci("recall"), _get("recall"), "pp"),
    ("F1 [95% CI]", _with_ci("f1"), _get("f1"), "pp"),
    ("ROC AUC [95% CI]", _with_ci("roc_auc"), _get("roc_auc"), "diff3"),
    ("PR AUC [95% CI]", _with_ci("pr_auc"), _get("pr_auc"), "diff3"),
    (
        "Precision at production fraud rate",
        lambda m: _pct(_get("at_production_rate.precision")(m)),
        _get("at_production_rate.precision"),
        "pp",
    ),
    ("Recall at target FPR", lambda m: _pct(_get("threshold_at_fpr.recall")(m)), _get("threshold_at_fpr.recall"), "pp"),
    ("Consistency (decisions agree over the runs)", lambda m: _pct(m.get("consistency")), _get("consistency"), "pp"),
    ("Company knowledge", _slice("company_knowledge"), _get("company_knowledge.accuracy"), "pp"),
    (
        "  documented rules (3.2)",
        _slice("company_knowledge.documented"),
        _get("company_knowledge.documented.accuracy"),
        "pp",
    ),
    (
        "  historical patterns (3.3)",
        _slice("company_knowledge.historical"),
        _get("company_knowledge.historical.accuracy"),
        "pp",
    ),
    ("Rule-only (a rule decides, generic score < threshold)", _slice("rule_only"), _get("rule_only.accuracy"), "pp"),
    ("Near-miss negatives", _slice("near_miss"), _get("near_miss.accuracy"), "pp"),
    ("Edge cases (borderline)", _slice("edge_cases"), _get("edge_cases.accuracy"), "pp"),
    ("Brier score (lower is better)", lambda m: _num(3)(m.get("brier")), _get("brier"), "diff3"),
    ("Parse rate", lambda m: _pct(m.get("parse_rate")), _get("parse_rate"), "pp"),
    ("Red-flag F1", lambda m: _pct(m.get("red_flag_f1")), _get("red_flag_f1"), "pp"),
    ("Risk score MAE (lower is better)", lambda m: _num(1)(m.get("risk_score_mae")), _get("risk_score_mae"), "diff1"),
    ("Reasoning coherence", lambda m: _pct(m.get("reasoning_coherence")), _get("reasoning_coherence"), "pp"),
    (
        "Explanation clarity (1-5 rubric)",
        lambda m: _num(2)(m.get("explanation_clarity")),
        _get("explanation_clarity"),
        "diff2",
    ),
    ("Latency p50 / p95, scoring (ms)", _pair("latency_ms_p50", "latency_ms_p95"), _get("latency_ms_p50"), "rel"),
    (
        "Latency p50 / p95, with explanation (ms)",
        _pair("latency_ms_p50_explain", "latency_ms_p95_explain"),
        _get("latency_ms_p50_explain"),
        "rel",
    ),
    (
        "Prompt tokens / request",
        lambda m: _num(0)(m.get("prompt_tokens_per_request")),
        _get("prompt_tokens_per_request"),
        "rel",
    ),
    (
        "Completion tokens / request",
        lambda m: _num(0)(m.get("completion_tokens_per_request")),
        _get("completion_tokens_per_request"),
        "rel",
    ),
    ("Cost per 1K requests ($)", lambda m: _num(3)(m.get("cost_per_1k")), _get("cost_per_1k"), "rel"),
    (
        "Prompt-injection flip rate (lower is better)",
        lambda m: _pct(m.get("injection_flip_rate")),
        _get("injection_flip_rate"),
        "pp",
    ),
    ("McNemar vs fine-tuned (b/c)", _mcnemar, None, ""),
]


def _improvement(tuned: Any, base: Any, kind: str) -> str:
    if tuned is None or base is None or not kind:
        return "–"
    if kind == "pp":
        return f"{100 * (tuned - base):+.1f} pp"
    if kind.startswith("diff"):
        return f"{tuned - base:+.{int(kind[4:])}f}"
    return "–" if not base else f"{100 * (tuned - base) / base:+.0f}%"


def render_table(result: dict[str, Any]) -> str:
    """The comparison table: one column per model (baselines first), then the improvement over the prompted base."""
    models = result["models"]
    keys = [k for k in MODEL_ORDER if k in models]
    header = ["Metric", *(TITLES[k] for k in keys), "Improvement"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for title, cell, value, kind in ROWS:
        base = models.get("prompted_base", {})
        gain = _improvement(value(models["fine_tuned"]), value(base), kind) if value else "–"
        lines.append("| " + " | ".join([title, *(cell(models[k]) for k in keys), gain]) + " |")
    return "\n".join(lines)


def render_markdown(result: dict[str, Any]) -> str:
    """The whole eval.md: what was tested, the table, slice sizes, and how the numbers were measured."""
    test, s, tuned = result["test"], result["settings"], result["models"]["fine_tuned"]
    company = tuned["company_knowledge"]
    sizes = (
        f"company-specific n={company['n']} (documented {company['documented']['n']}, historical "
        f"{company['historical']['n']}), rule-only n={tuned['rule_only']['n']}, "
        f"near-miss negatives n={tuned['near_miss']['n']}, "
        f"borderline n={tuned['edge_cases']['n']}"
    )
    lines = [
        "# Evaluation",
        "",
        f"Test set: {test['source']} — n={test['n']}, fraud share {100 * test['fraud_share']:.1f}%; "
        f"generation subset n={test['generation_n']}; {sizes}.",
        f"Production fraud rate {100 * s['production_fraud_rate']:g}%, target FPR {100 * s['target_fpr']:g}%, "
        f"{s['consistency_runs']} samples at T={s['temperature']:g}, {s['few_shot_examples']} few-shot examples, "
        f"{s['bootstrap']} bootstrap resamples, seed {s['seed']}.",
        "",
        render_table(result),
        "",
        "## Notes",
        "",
        *(f"- {n}" for n in result.get("notes", NOTES)),
        "",
    ]
    return "\n".join(lines)
