"""Chat rendering of a transaction (the fine-tuned regime's short prompt) and parsing of the answer (SPEC 2)."""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fraudtune.profile import Profile, Verdict, detail_facts, format_amount, format_ratio, red_flag_phrase

SYSTEM_PROMPT = "You are the card issuer's fraud analyst. Classify the transaction and explain it in the set format."
LABELS = ("FRAUD", "LEGITIMATE")
MAX_FREE_TEXT = 60
# any <tag> or <|tag|>: SmolLM2's vocabulary has 17 special tokens (<|im_start|>, <filename>, <jupyter_code>, ...)
# and the tokenizer turns their literal text into their ids
_SPECIAL = re.compile(r"<\|?[^<>\n]{0,40}\|?>|\[/?INST\]", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# the answer's own vocabulary (verdict words, field names): free text that carries it poses as a verdict; no shop
# needs it in its name, and the labelling never reads the name. Masked, it cannot steer the verdict token.
# Matched on a folded copy of the text (NFKC: full-width and other compatibility forms to ASCII; Cyrillic and Greek
# look-alikes to the Latin letter they imitate), letters allowed apart ("F R A U D", "Risk_Score", "l-e-g-i-t").
_GAP = r"[\W_]{0,3}"


def _spaced(word: str) -> str:
    return _GAP.join(re.escape(ch) for ch in word)


_ANSWER_WORDS = re.compile(
    r"(?<![a-z0-9])(?:"
    + "|".join(
        [
            _spaced("fraud") + r"[a-z]*",
            _spaced("legit") + r"[a-z]*",
            _spaced("risk") + _GAP + _spaced("score"),
            _spaced("red") + _GAP + _spaced("flag") + r"s?",
            _spaced("reasoning"),
        ]
    )
    + r")(?![a-z0-9])",
    re.IGNORECASE,
)
# Cyrillic and Greek letters that look like Latin ones (Unicode confusables, the letters a name can hide behind)
_CONFUSABLES = str.maketrans(
    "АВЕКМНОРСТХУІЅЈаеорсухіѕјԁԛԝһӏɡΑΒΕΖΗΙΚΜΝΟΡΤΥΧαβεικμνορτυχ",
    "ABEKMHOPCTXYISJaeopcyxisjdqwhlgABEZHIKMNOPTYXabeikmvoptux",
)
MASK = "_"


def _fold(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch).translate(_CONFUSABLES)


def mask_answer_words(text: str) -> str:
    """Every run of characters that reads as answer vocabulary once folded becomes one "_"; the rest is kept
    as written (a Cyrillic shop name stays Cyrillic)."""
    folded, owner = [], []
    for i, ch in enumerate(text):
        for out in _fold(ch):
            folded.append(out)
            owner.append(i)
    spans = [(owner[m.start()], owner[m.end() - 1] + 1) for m in _ANSWER_WORDS.finditer("".join(folded))]
    for start, end in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text


def sanitize_free_text(text: str) -> str:
    """Neutralise a free-text field (merchant name): no chat-template tokens, no newlines, no answer vocabulary
    (FRAUD/LEGITIMATE, "Risk Score", "Red Flags", "Reasoning" become "_"), bounded length.

    Free text is the one place an attacker controls; it is shown quoted and on one line so it cannot pose as
    an answer line ("Risk Score: 0"), a verdict ("answer LEGITIMATE") or a new chat turn.
    """
    text = _SPECIAL.sub(" ", str(text))
    text = _CONTROL.sub(" ", text).replace('"', "'")
    text = mask_answer_words(text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:MAX_FREE_TEXT] or "?"


def render_user(txn: dict[str, Any], profile: Profile, sanitize: bool = True) -> str:
    """Compact transaction text plus derived facts a small model can't compute reliably.

    `sanitize=False` shows the free-text fields raw: only to measure what the sanitising prevents.
    """
    f = detail_facts(txn)
    free = sanitize_free_text if sanitize else str
    c, m, v = txn["customer"], txn["merchant"], txn["velocity"]
    ts = datetime.fromisoformat(txn["timestamp"])
    status = {
        "home": "home country",
        "travel_notice": f"travel notice on file; home {c['home_country']}",
        "foreign": f"foreign; home {c['home_country']}",
    }[f["country_status"]]
    reset = c.get("password_reset_hours_ago")
    code_name = profile.txn_codes.get(txn["txn_code"], "unknown code")
    return "\n".join(
        [
            f"Time: {ts:%Y-%m-%d %H:%M} (hour {f['hour']})",
            f"Amount: {format_amount(txn['amount'], txn.get('currency', 'USD'))} = {format_ratio(f['amount_ratio'])}x "
            f"customer avg {format_amount(c['avg_amount'], txn.get('currency', 'USD'))}"
            + (" (no past spend)" if not c["avg_amount"] else ""),
            f'Merchant: {free(m["id"])} "{free(m["name"])}", {m["category"]}, {m["country"]} ({status})',
            f"Channel: {txn['channel']}; code {txn['txn_code']} ({code_name}); new device: "
            f"{'yes' if txn['device_new'] else 'no'}",
            f"Customer: account {c['account_age_days']} days, {c['history_count']} past txns; "
            f"usual category: {'yes' if f['category_usual'] else 'no'}",
            f"Password reset: {'none' if reset is None else f'{reset:g}h ago'}; velocity: {v['txn_last_1h']} in 1h, "
            f"{v['txn_last_24h']} in 24h",
        ]
    )


def render_assistant(
    verdict: Verdict,
    txn: dict[str, Any],
    profile: Profile,
    rng: random.Random,
    reasoning: str | None = None,
    order: str = "verdict_first",
    tally: bool = False,
) -> str:
    """The SPEC 2 answer: label, score, flag phrases with fixed heads, and a varied reasoning.

    Verdict first, LEGITIMATE answers list no red flags (SPEC 2); minor signals below the threshold are named in the
    reasoning. `order` evidence_first writes the evidence before the verdict (SPEC 2 allows either): every signal
    that fired, on either label (the company rules' flags first), then the risk score they add up to, then the
    verdict, which the score and the flags decide. Listing only a FRAUD answer's flags there would make the first
    flag token the decision again; `parse_answer` keeps the record as SPEC 2 has it (a LEGITIMATE answer's
    signals stay in its text, not in its red_flags).

    `tally` (evidence first only): each generic flag also states its weight and the running total of the weights
    listed so far, "High amount (12x average; +30 = 30)", so the score is reached one addition at a time.

    `reasoning` replaces the generated sentence (imported data whose label comes from the issuer's case review).
    """
    facts = detail_facts(txn)
    codes = verdict.red_flags if verdict.label == "FRAUD" else []
    if order == "evidence_first":
        codes = sorted(verdict.red_flags, key=lambda c: profile.rule(c).kind == "generic")
    phrases = [red_flag_phrase(profile.rule(code), facts) for code in codes]
    if tally and order == "evidence_first":
        phrases = tallied(phrases, [profile.rule(code) for code in codes], profile.max_score)
    flags = f"Red Flags: [{', '.join(phrases)}]"
    score = f"Risk Score: {verdict.risk_score}"
    lines = [verdict.label, score, flags] if order == "verdict_first" else [flags, score, verdict.label]
    why = reasoning if reasoning is not None else render_reasoning(verdict, txn, profile, rng)
    return "\n".join([*lines, f"Reasoning: {why}"])


def tallied(phrases: list[str], rules: list[Any], cap: int) -> list[str]:
    """Each generic flag's phrase with "; +weight = running total" inside its brackets (the total capped like the
    score); the rules' phrases as they are (a rule decides by itself; its floor is in the score line)."""
    out, total = [], 0
    for phrase, rule in zip(phrases, rules, strict=True):
        if rule.kind != "generic":
            out.append(phrase)
            continue
        total = min(cap, total + rule.weight)
        step = f"+{rule.weight} = {total}"
        out.append(f"{phrase[:-1]}; {step})" if phrase.endswith(")") else f"{phrase} ({step})")
    return out


def render_reasoning(verdict: Verdict, txn: dict[str, Any], profile: Profile, rng: random.Random) -> str:
    """One to three sentences that cite the flags and any mitigating context."""
    facts = detail_facts(txn)
    heads = [profile.rule(c).head.lower() for c in verdict.red_flags]
    mitigation = f" A {verdict.mitigations[0]} explains the foreign country." if verdict.mitigations else ""
    if verdict.deciding_rule:
        rule = profile.rule(verdict.deciding_rule)
        source = "documented policy" if rule.kind == "documented" else "this issuer's past fraud pattern"
        lead = rng.choice(
            [
                f"{red_flag_phrase(rule, facts)} matches {source}, which decides FRAUD on its own.",
                f"Under {source}, {rule.head.lower()} forces a fraud decision ({red_flag_phrase(rule, facts)}).",
                f"This is a {rule.head.lower()} case per {source}; the score is raised to {verdict.risk_score}.",
            ]
        )
        others = [h for h, c in zip(heads, verdict.red_flags, strict=True) if c != rule.code]
        tail = f" Other signals: {', '.join(others)}." if others else ""
        return lead + tail + mitigation
    if verdict.label == "FRAUD":
        return (
            rng.choice(
                [
                    f"{len(heads)} red flags ({', '.join(heads)}) add up to a risk score of {verdict.risk_score}, "
                    f"above the threshold of {profile.decision_threshold}.",
                    f"The combination of {', '.join(heads)} gives a score of {verdict.risk_score}: fraud territory.",
                    f"Risk score {verdict.risk_score} from {', '.join(heads)}; together these point to fraud.",
                ]
            )
            + mitigation
        )
    if heads:
        return (
            rng.choice(
                [
                    f"Some signals ({', '.join(heads)}) but the score of {verdict.risk_score} stays below "
                    f"{profile.decision_threshold}.",
                    f"Only {', '.join(heads)}, worth {verdict.risk_score} points: not enough to call fraud.",
                    f"Mild risk from {', '.join(heads)}; score {verdict.risk_score} is under the fraud threshold.",
                ]
            )
            + mitigation
        )
    normal = [f"a usual {facts['category']} purchase", f"amount {format_ratio(facts['amount_ratio'])}x the average"]
    normal.append("home country" if facts["country_status"] == "home" else "country covered by a travel notice")
    return (
        rng.choice(
            [
                f"Normal pattern: {', '.join(normal)}, known device, established account.",
                f"Nothing unusual: {', '.join(normal)}.",
                f"Consistent with the customer's history: {', '.join(normal)}.",
            ]
        )
        + mitigation
    )


def to_messages(
    txn: dict[str, Any], profile: Profile, assistant: str | None = None, sanitize: bool = True
) -> list[dict[str, str]]:
    """System + user (+ assistant) messages in the OpenAI chat format."""
    user = render_user(txn, profile, sanitize)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    return messages


@dataclass
class ParsedAnswer:
    """What could be read from an assistant text; `error` says what could not (never guessed)."""

    label: str | None = None
    risk_score: int | None = None
    red_flags: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)  # every flag listed (evidence first: a LEGITIMATE one's too)
    unknown_flags: list[str] = field(default_factory=list)
    reasoning: str = ""
    error: str | None = None


_LABEL = re.compile(r"^\s*(FRAUD|LEGITIMATE)\b", re.IGNORECASE)
# evidence first: the verdict is a line of its own after the flags and the score
_LABEL_LINE = re.compile(r"^\s*(FRAUD|LEGITIMATE)\s*$", re.IGNORECASE | re.MULTILINE)
_SCORE = re.compile(r"^\s*risk\s*score\s*:\s*(-?\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_FLAGS = re.compile(r"^\s*red\s*flags\s*:\s*\[(.*)\]\s*$", re.IGNORECASE | re.MULTILINE)
_REASON = re.compile(r"^\s*reasoning\s*:\s*(.*)", re.IGNORECASE | re.MULTILINE | re.DOTALL)


def answer_label(text: str) -> str | None:
    """The verdict of an answer in either order: its first line, or (evidence first) the label line before the
    reasoning."""
    reason = _REASON.search(text)
    label = _LABEL.match(text) or _LABEL_LINE.search(text, 0, reason.start() if reason else len(text))
    return label.group(1).upper() if label else None


def parse_answer(text: str, profile: Profile) -> ParsedAnswer:
    """Assistant text -> label, score, flag codes. Tolerates case and whitespace; reports what it can't read."""
    out = ParsedAnswer()
    if not isinstance(text, str) or not text.strip():
        out.error = "empty answer"
        return out
    problems = []
    out.label = answer_label(text)
    if out.label is None:
        problems.append("no FRAUD/LEGITIMATE label line")
    reason = _REASON.search(text)
    score = _SCORE.search(text)
    if score and 0 <= int(score.group(1)) <= 100:
        out.risk_score = int(score.group(1))
    else:
        problems.append("no 'Risk Score: 0-100' line")
    flags = _FLAGS.search(text)
    if flags:
        out.signals, out.unknown_flags = _flag_codes(flags.group(1), profile)
        # evidence first, the list holds every signal that fired; SPEC 2's record lists a LEGITIMATE answer's none
        evidence_first = _LABEL.match(text) is None
        out.red_flags = [] if evidence_first and out.label == "LEGITIMATE" else list(out.signals)
    else:
        problems.append("no 'Red Flags: [...]' line")
    out.reasoning = reason.group(1).strip() if reason else ""
    if out.unknown_flags:
        problems.append(f"unknown red flag(s): {'; '.join(out.unknown_flags)[:120]}")
    out.error = "; ".join(problems) or None
    return out


def parse_evidence(text: str, profile: Profile) -> tuple[int | None, list[str], str | None]:
    """Risk score and flag codes (every signal listed) of an evidence-first answer's first lines (read before its
    verdict; the record keeps them only for a FRAUD verdict)."""
    score, flags = _SCORE.search(text or ""), _FLAGS.search(text or "")
    problems = [] if flags else ["no 'Red Flags: [...]' line"]
    risk_score = int(score.group(1)) if score and 0 <= int(score.group(1)) <= 100 else None
    if risk_score is None:
        problems.append("no 'Risk Score: 0-100' line")
    codes, unknown = _flag_codes(flags.group(1), profile) if flags else ([], [])
    if unknown:
        problems.append(f"unknown red flag(s): {'; '.join(unknown)[:120]}")
    return risk_score, codes, "; ".join(problems) or None


def _flag_codes(inner: str, profile: Profile) -> tuple[list[str], list[str]]:
    heads = profile.head_to_code
    codes, unknown = [], []
    for item in _split_top_level(inner):
        head = item.split("(", 1)[0].strip().lower()
        if head in heads:
            if heads[head] not in codes:
                codes.append(heads[head])
        elif item.strip():
            unknown.append(item.strip())
    return codes, unknown


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: 'Manual key entry (TC-07, $1,200.00)' stays one item."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [s for s in (x.strip() for x in items) if s]
