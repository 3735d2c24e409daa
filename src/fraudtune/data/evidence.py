"""Where an evidence-first answer goes wrong: in the flags it lists, in the score it adds up from them, or in the
verdict it draws from the score.

An evidence-first answer (SPEC 2) writes every signal that fired, on either label, then the risk score, then the
verdict. Each step can be checked against the step before it and against the oracle (SPEC 3), so a wrong verdict
can be traced to the first step that went wrong:

- flags:   the signals listed are not exactly the ones that fire on the transaction;
- score:   the flags are right, but the score written is not what they add up to (SPEC 3.1 weights, 3.2/3.3 floors);
- verdict: flags and score are right, but the verdict does not follow from them (FRAUD iff a rule's flag is
           listed or the written score reaches the threshold).

This says which part of the recipe to work on (the data that teaches a flag, the arithmetic, the decision), which
the accuracy alone cannot.
"""

from __future__ import annotations

import re
from typing import Any

from fraudtune.data.chat import parse_evidence
from fraudtune.profile import Profile, score_of

_EVIDENCE_FIRST = re.compile(r"^\s*red\s*flags\s*:", re.IGNORECASE)


def evidence_steps(
    records: list[dict[str, Any]], rows: list[dict[str, Any]], profile: Profile
) -> dict[str, Any] | None:
    """Per-step agreement of evidence-first answers with the oracle, and the first wrong step of each wrong verdict.

    records: predict records (label, and the answer text: `evidence` from scoring, or `raw_text`); rows: the test
    rows' metadata (label, red_flags: every signal that fires on either label, risk_score). None when no answer
    lists its evidence first (verdict-first answers list no flags for a LEGITIMATE verdict, so their flags cannot
    be checked on both labels)."""
    steps, unparsed = [], 0
    for record, row in zip(records, rows, strict=True):
        text = record.get("evidence") or record.get("raw_text") or ""
        label = record.get("label")
        if not _EVIDENCE_FIRST.match(text) or label is None:
            continue
        score, codes, _ = parse_evidence(text, profile)
        if score is None:  # cut off or malformed before its score line
            unparsed += 1
            continue
        listed, true = set(codes), set(row.get("red_flags") or [])
        added, _ = score_of(profile, codes)
        rule_listed = any(profile.rule(c).kind != "generic" for c in codes)
        follows_label = "FRAUD" if rule_listed or score >= profile.decision_threshold else "LEGITIMATE"
        steps.append(
            {
                "listed": listed,
                "true": true,
                "flags_right": listed == true,
                "score_follows": score == added,
                "score_right": score == int(row["risk_score"]),
                "verdict_follows": label == follows_label,
                "verdict_right": label == row["label"],
            }
        )
    if not steps:
        return None
    n = len(steps)
    wrong = [s for s in steps if not s["verdict_right"]]
    first_wrong = {"flags": 0, "score": 0, "verdict": 0}
    for s in wrong:
        if not s["flags_right"]:
            first_wrong["flags"] += 1
        elif not s["score_follows"]:
            first_wrong["score"] += 1
        else:
            first_wrong["verdict"] += 1
    per_code = {}
    tp_all = sum(len(s["listed"] & s["true"]) for s in steps)
    listed_all, true_all = sum(len(s["listed"]) for s in steps), sum(len(s["true"]) for s in steps)
    for code in profile.codes:
        tp = sum(code in s["listed"] and code in s["true"] for s in steps)
        fp = sum(code in s["listed"] and code not in s["true"] for s in steps)
        fn = sum(code not in s["listed"] and code in s["true"] for s in steps)
        per_code[code] = {
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "n": tp + fn,
        }
    return {
        "n": n,
        "unparsed": unparsed,
        "flags_exact": sum(s["flags_right"] for s in steps) / n,
        # micro F1 of the listed flags against the true ones, every row and flag counted (1.0 when none fire or
        # are listed anywhere)
        "flags_f1": 2 * tp_all / (listed_all + true_all) if listed_all + true_all else 1.0,
        "score_follows_flags": sum(s["score_follows"] for s in steps) / n,
        "score_exact": sum(s["score_right"] for s in steps) / n,
        "verdict_follows_evidence": sum(s["verdict_follows"] for s in steps) / n,
        "wrong_verdicts": len(wrong),
        "first_wrong_step": first_wrong,
        "per_code": per_code,
    }
