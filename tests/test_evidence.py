"""Evidence-first answers traced step by step: flags, then the score they add up to, then the verdict."""

from __future__ import annotations

from spec_oracle import DEMO_PROFILE, changed, sample_txn, spec_assess, spec_generic_score

from fraudtune.data.evidence import evidence_steps
from fraudtune.profile import load_profile

PROFILE = load_profile(DEMO_PROFILE)
# SPEC 3.1: a new device (10), a first-time category (5), a high-risk country (30) and a foreign merchant (15)
BORDER = changed(
    sample_txn(), device_new=True, **{"merchant.category": "clothing", "merchant.country": "NG"}
)  # 10 + 5 + 30 + 15 = 60: FRAUD
BELOW = changed(sample_txn(), device_new=True, **{"merchant.category": "clothing"})  # 10 + 5 = 15: LEGITIMATE
RULE_ONLY = changed(sample_txn(), **{"velocity.txn_last_1h": 7})  # VELOCITY_BURST alone: FRAUD, score 90


def row(txn):
    label, score, flags = spec_assess(txn)
    rule = next((f for f in flags if f == "VELOCITY_BURST"), None)
    return {
        "label": label,
        "risk_score": score,
        "red_flags": flags,
        "transaction": txn,
        "category": "company_specific" if rule else ("borderline" if score >= 40 else "clear_legitimate"),
        "generic_score": spec_generic_score(txn),
        "deciding_rule": rule,
        "rule_kind": "documented" if rule else None,
    }


def answer(flags: str, score: int, label: str) -> dict:
    text = f"Red Flags: [{flags}]\nRisk Score: {score}\n{label}\nReasoning: as listed."
    return {"label": label, "raw_text": text}


RIGHT = {
    "border": answer(
        "High-risk country (NG), Geographic mismatch (NG vs home US), New device (first use), "
        "First-time category (clothing)",
        60,
        "FRAUD",
    ),
    "below": answer("New device (first use), First-time category (clothing)", 15, "LEGITIMATE"),
    "rule": answer("Velocity burst (7 in 1h)", 90, "FRAUD"),
}


def test_the_oracle_rows_are_what_the_answers_assume():
    assert row(BORDER)["label"] == "FRAUD" and row(BORDER)["risk_score"] == 60
    assert row(BELOW)["label"] == "LEGITIMATE" and row(BELOW)["risk_score"] == 15
    assert row(RULE_ONLY)["label"] == "FRAUD" and row(RULE_ONLY)["risk_score"] == 90


def test_right_answers_agree_at_every_step():
    rows = [row(BORDER), row(BELOW), row(RULE_ONLY)]
    e = evidence_steps([RIGHT["border"], RIGHT["below"], RIGHT["rule"]], rows, PROFILE)
    assert e["n"] == 3 and e["wrong_verdicts"] == 0
    assert e["flags_exact"] == e["score_follows_flags"] == e["score_exact"] == e["verdict_follows_evidence"] == 1.0
    assert e["per_code"]["VELOCITY_BURST"] == {"precision": 1.0, "recall": 1.0, "n": 1}
    assert e["per_code"]["NEW_DEVICE"]["n"] == 2


def test_each_wrong_verdict_is_put_down_to_its_first_wrong_step():
    missed_country = answer(
        "Geographic mismatch (NG vs home US), New device (first use), First-time category (clothing)",
        30,
        "LEGITIMATE",
    )  # flags wrong (the sum and the verdict follow them)
    bad_sum = answer(
        "High-risk country (NG), Geographic mismatch (NG vs home US), New device (first use), "
        "First-time category (clothing)",
        45,
        "LEGITIMATE",
    )  # flags right, 45 is not what they add up to
    bad_verdict = answer(
        "High-risk country (NG), Geographic mismatch (NG vs home US), New device (first use), "
        "First-time category (clothing)",
        60,
        "LEGITIMATE",
    )  # flags and score right, the verdict does not follow
    missed_rule = answer("", 0, "LEGITIMATE")
    invented = answer("Velocity burst (1 in 1h), New device (first use), First-time category (clothing)", 90, "FRAUD")
    rows = [row(BORDER), row(BORDER), row(BORDER), row(RULE_ONLY), row(BELOW)]
    e = evidence_steps([missed_country, bad_sum, bad_verdict, missed_rule, invented], rows, PROFILE)
    assert e["wrong_verdicts"] == 5
    assert e["first_wrong_step"] == {"flags": 3, "score": 1, "verdict": 1}
    assert e["flags_exact"] == 2 / 5
    assert e["score_follows_flags"] == 4 / 5  # bad_sum alone
    assert e["verdict_follows_evidence"] == 4 / 5  # bad_verdict alone
    assert e["per_code"]["HIGH_RISK_COUNTRY"]["recall"] == 2 / 3
    assert e["per_code"]["VELOCITY_BURST"] == {"precision": 0.0, "recall": 0.0, "n": 1}


def test_a_scoring_record_is_traced_from_its_evidence_and_its_label():
    """`score` writes the evidence and reads the verdict from the next token's probability (no verdict line)."""
    scored = {"label": "LEGITIMATE", "evidence": "Red Flags: [Velocity burst (7 in 1h)]\nRisk Score: 90\n"}
    e = evidence_steps([scored], [row(RULE_ONLY)], PROFILE)
    assert e["flags_exact"] == e["score_follows_flags"] == 1.0
    assert e["verdict_follows_evidence"] == 0.0 and e["first_wrong_step"] == {"flags": 0, "score": 0, "verdict": 1}


def test_verdict_first_answers_are_not_traced():
    vf = {"label": "FRAUD", "raw_text": "FRAUD\nRisk Score: 60\nRed Flags: [New device]\nReasoning: x."}
    assert evidence_steps([vf], [row(BORDER)], PROFILE) is None
    assert evidence_steps([{"label": None, "raw_text": None}], [row(BORDER)], PROFILE) is None
    cut = {"label": "FRAUD", "evidence": "Red Flags: [New device (first use), High-risk"}  # no score line
    e = evidence_steps([cut, RIGHT["rule"]], [row(BORDER), row(RULE_ONLY)], PROFILE)
    assert e["n"] == 1 and e["unparsed"] == 1


def test_the_study_table_traces_evidence_first_settings_only():
    """docs/results/knowledge_study.md: a section per step for the evidence-first settings, none for the others."""
    from fraudtune.study import SLICES, judge, render_markdown

    rows = [row(BORDER), row(BELOW), row(RULE_ONLY)]
    records = [{**RIGHT["border"], "fraud_probability": 0.9}, {**RIGHT["below"], "fraud_probability": 0.1}]
    records.append({"label": "LEGITIMATE", "fraud_probability": 0.2, "evidence": "Red Flags: []\nRisk Score: 0\n"})
    judged = judge(records, rows, PROFILE)
    judged.pop("correct")

    def setting(evidence):
        return {
            "n_train": 10,
            "train_seconds": 60.0,
            "fine_tuned": judged,
            "gradient_boosting": judged,
            "mcnemar_vs_gradient_boosting": {"p": 1.0},
            "overrides": [],
            "evidence": evidence,
        }

    summary = {
        "test": {"n": 3, "source": "t", "seed": 1},
        "decision_threshold": 50,
        "rules_engine": judged,
        "settings": {"vf": setting(None), "ef": setting(evidence_steps(records, rows, PROFILE))},
        "pending": {},
    }
    text = render_markdown(summary)
    assert len(SLICES) == 7
    assert "## Evidence-first answers: where a wrong verdict first went wrong" in text
    right, missed = len(rows[0]["red_flags"]) + len(rows[1]["red_flags"]), len(rows[2]["red_flags"])
    f1 = 100 * 2 * right / (2 * right + missed)  # the rule-only row's flags missed, nothing invented
    assert f"| ef | 3 | 0 | 66.7 | {f1:.1f} | 100.0 | 66.7 | 100.0 | 1 | 1 | 0 | 0 |" in text
    assert "| vf |" in text and "| vf | 3 |" not in text.split("## Evidence-first")[1]
    assert "VELOCITY_BURST" in text.split("Per flag")[1] and "0.0 / – (n=1)" in text
