"""Response quality of generated explanations: parse rate, red-flag agreement, score error, coherence, clarity.

Everything is computed by code from the SPEC 2 answer format; there is no LLM judge (none runs offline), so
"clarity" is the rubric below, not a human or model rating.

Clarity rubric (1-5): one point to start, plus one for each criterion met:
  1. structure  - all four SPEC 2 lines parse (label, 'Risk Score: 0-100', 'Red Flags: [...]' with known heads,
                  'Reasoning: ...');
  2. length     - the reasoning is 1-3 sentences and 5-80 words;
  3. grounded   - the reasoning cites every predicted flag (coherence below), or, with no flags, names the
                  normal pattern (usual, normal, consistent, known, home, typical, ...);
  4. consistent - the label agrees with the risk score and the threshold (FRAUD iff score >= threshold, or a
                  company rule's flag is listed), the reasoning does not contradict the label, and the text does
                  not loop (no word 3-gram repeated three times).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from fraudtune.profile import Profile

# phrases that state the opposite decision; checked case-insensitively in the reasoning
CONTRADICTS = {
    "FRAUD": (
        r"\blegitimate\b",
        r"\bnot (?:enough to call )?fraud",
        r"\bno fraud\b",
        r"\bbelow (?:the )?(?:fraud )?threshold",
        r"\bunder the fraud threshold",
        r"\bnothing unusual\b",
        r"\bnormal pattern\b",
    ),
    "LEGITIMATE": (
        r"\babove the threshold",
        r"\bfraud territory\b",
        r"\bpoints? to fraud\b",
        r"\bdecides fraud\b",
        r"\bforces a fraud\b",
        r"\bis fraud(?:ulent)?\b",
    ),
}
NORMAL_WORDS = re.compile(r"\b(usual|normal|consistent|known|home|typical|regular|established|nothing unusual)\b", re.I)
STOPWORDS = {"high", "new", "the", "and", "after"}
_SENTENCE = re.compile(r"[.!?](?:\s|$)")


def head_words(head: str) -> list[str]:
    """The distinctive words of a flag head ('Card-not-present high amount' -> card, present, ...)."""
    words = re.findall(r"[a-z]+", head.lower())
    keep = [w for w in words if len(w) >= 4 and w not in STOPWORDS]
    return keep or words


def cites(reasoning: str, head: str) -> bool:
    """The reasoning names the flag: its whole head phrase, or one of its distinctive words."""
    text = reasoning.lower()
    if head.lower() in text:
        return True
    return any(re.search(rf"\b{re.escape(w)}", text) for w in head_words(head))


def contradicts(label: str | None, reasoning: str) -> bool:
    """The reasoning argues for the other label."""
    return label in CONTRADICTS and any(re.search(p, reasoning, re.I) for p in CONTRADICTS[label])


def coherent(answer: dict[str, Any], profile: Profile) -> bool:
    """Reasoning cites every predicted flag and never contradicts the label (needs a parsed label)."""
    if answer.get("label") is None:
        return False
    reasoning = answer.get("reasoning") or ""
    heads = [profile.rule(code).head for code in answer.get("red_flags") or []]
    return all(cites(reasoning, h) for h in heads) and not contradicts(answer["label"], reasoning)


def loops(text: str) -> bool:
    """Degenerate repetition: some word 3-gram occurs three or more times."""
    words = re.findall(r"\w+", text.lower())
    grams = Counter(zip(words, words[1:], words[2:], strict=False))
    return any(n >= 3 for n in grams.values())


def clarity(answer: dict[str, Any], profile: Profile) -> int:
    """The 1-5 rubric of the module docstring."""
    reasoning = (answer.get("reasoning") or "").strip()
    label, score, flags = answer.get("label"), answer.get("risk_score"), answer.get("red_flags") or []
    sentences = len(_SENTENCE.findall(reasoning + " ")) or (1 if reasoning else 0)
    words = len(reasoning.split())
    structure = not answer.get("error") and label is not None
    length = 1 <= sentences <= 3 and 5 <= words <= 80
    grounded = coherent(answer, profile) and (bool(flags) or bool(NORMAL_WORDS.search(reasoning)))
    forced = any(profile.rule(c).kind != "generic" for c in flags)
    agrees = score is not None and label == ("FRAUD" if score >= profile.decision_threshold or forced else "LEGITIMATE")
    consistent = agrees and not contradicts(label, reasoning) and not loops(answer.get("raw_text") or reasoning)
    return 1 + sum((structure, length, grounded, consistent))


def answer_flags(record: dict[str, Any]) -> list[str]:
    """The flags a SPEC 2 answer with this record's label lists: its flags when FRAUD, none when LEGITIMATE
    ("LEGITIMATE cases write Red Flags: []"; their minor signals go in the reasoning)."""
    return list(record.get("red_flags") or []) if record.get("label") == "FRAUD" else []


def flag_agreement(answers: list[dict[str, Any]], truths: list[list[str]]) -> dict[str, float | None]:
    """Micro-averaged precision/recall/F1 of predicted flag codes vs the expected ones, over parsed answers.

    `truths` are the flags the reference answer lists (`answer_flags` of the oracle's record): a LEGITIMATE row's
    minor signals are not in its answer, so a model that follows SPEC 2 is not counted as missing them."""
    tp = fp = fn = 0
    for answer, truth in zip(answers, truths, strict=True):
        if answer.get("label") is None:
            continue
        predicted, true = set(answer.get("red_flags") or []), set(truth)
        tp, fp, fn = tp + len(predicted & true), fp + len(predicted - true), fn + len(true - predicted)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    elif tp + fp + fn == 0 and any(a.get("label") for a in answers):
        precision = recall = f1 = 1.0  # no flags anywhere and none predicted: perfect agreement
    return {"red_flag_precision": precision, "red_flag_recall": recall, "red_flag_f1": f1}


def response_quality(answers: list[dict[str, Any]], metas: list[dict[str, Any]], profile: Profile) -> dict[str, Any]:
    """parse_rate, red_flag_f1 (+ precision, recall), risk_score_mae, reasoning_coherence, explanation_clarity."""
    if not answers:
        return dict.fromkeys(QUALITY_KEYS)
    parsed = [a for a in answers if a.get("label") is not None and not a.get("error")]
    errors = [
        abs(a["risk_score"] - m["risk_score"])
        for a, m in zip(answers, metas, strict=True)
        if a.get("risk_score") is not None
    ]
    return {
        "parse_rate": len(parsed) / len(answers),
        **flag_agreement(answers, [answer_flags(m) for m in metas]),
        "risk_score_mae": float(np.mean(errors)) if errors else None,
        "reasoning_coherence": float(np.mean([coherent(a, profile) for a in answers])),
        "explanation_clarity": float(np.mean([clarity(a, profile) for a in answers])),
    }


QUALITY_KEYS = (
    "parse_rate",
    "red_flag_precision",
    "red_flag_recall",
    "red_flag_f1",
    "risk_score_mae",
    "reasoning_coherence",
    "explanation_clarity",
)
