"""An LLM regime on the test set: label probabilities, greedy explanations and sampled decisions.

Both regimes (the fine-tuned model and the prompted base model) run through modeling.inference, the path
`fraudtune predict` serves with; the prompted base model's long shared prefix (rulebook, few-shot turns) is run
once per regime.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tqdm import tqdm

from fraudtune.data.chat import parse_answer
from fraudtune.modeling.inference import (
    PromptSet,
    decision_of,
    encode_prompts,
    generate,
    label_word_probabilities,
    until_decided,
    verdict_scores,
)
from fraudtune.profile import Profile

log = logging.getLogger(__name__)
__all__ = ["answer_record", "decision_of", "exact_agreement", "explain", "run_regime", "sample_decisions", "score"]


def score(model: Any, tokenizer: Any, prompts: PromptSet, batch_size: int, progress: bool = True) -> list[float]:
    """P(FRAUD) per prompt from the verdict token (a verdict-first answer's first token)."""
    return verdict_scores(model, tokenizer, prompts, batch_size, progress)[0]


def explain(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    subset: list[int],
    profile: Profile,
    max_new_tokens: int,
    latency_n: int | None = None,
    batch_size: int = 8,
) -> dict[int, dict[str, Any]]:
    """Greedy SPEC 2 answers for the subset.

    The first `latency_n` (None: all) are decoded one request at a time, so their times are per-request latencies;
    the rest are decoded `batch_size` at a time (same answers, no latency recorded for them).
    """
    timed = subset if latency_n is None else subset[:latency_n]
    answers = {}
    for i in tqdm(timed, desc="explaining (timed)", unit="txn"):
        (a,) = generate(model, tokenizer, prompts, [i], max_new_tokens)
        answers[i] = answer_record(a.text, a.completion_tokens, profile, a.first_ms, a.total_ms)
    rest = sorted(subset[len(timed) :], key=lambda i: len(prompts.ids[i]))  # similar lengths pad less
    for at in tqdm(range(0, len(rest), batch_size), desc="explaining (batched)", unit="batch", disable=not rest):
        batch = rest[at : at + batch_size]
        for i, answer in zip(batch, generate(model, tokenizer, prompts, batch, max_new_tokens), strict=True):
            answers[i] = answer_record(answer.text, answer.completion_tokens, profile, None, None)
    return {i: answers[i] for i in subset}


def answer_record(
    text: str, completion_tokens: int | None, profile: Profile, score_ms: float | None, total_ms: float | None
) -> dict[str, Any]:
    parsed = parse_answer(text, profile)
    return {
        "label": parsed.label,
        "risk_score": parsed.risk_score,
        "red_flags": parsed.red_flags,
        "reasoning": parsed.reasoning,
        "raw_text": text,
        "error": parsed.error,
        "completion_tokens": completion_tokens,
        "latency_ms": score_ms,
        "latency_ms_explain": total_ms,
    }


KV_TOKEN_BUDGET = 16_384  # prompt tokens per consistency batch (their key/value cache is copied per row)


def sample_decisions(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    subset: list[int],
    runs: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_rows: int = 64,
) -> dict[int, list[str | None]]:
    """`runs` sampled answers per subset item, read only up to the decision. Items are sampled together, about
    `batch_rows` rows per batch (a decoding step reads every weight once for the whole batch: `make bench` prints
    the cost per row at 16 and at 64 rows), and a row leaves the batch once it has decided. Seeded per batch: the
    same subset and batch_rows give the same samples. A batch holds at most KV_TOKEN_BUDGET prompt tokens: every
    row carries its own copy of the prompt's key/value cache, and the prompted baseline's prompt (rulebook and
    few-shot turns) is over a thousand tokens."""
    longest = max((len(prompts.ids[i]) for i in subset), default=1)
    rows = max(runs, min(batch_rows, KV_TOKEN_BUDGET // longest))
    per_batch = max(1, rows // runs)
    decisions = {}
    for at in tqdm(range(0, len(subset), per_batch), desc="consistency", unit="batch"):
        items = subset[at : at + per_batch]
        sampled = generate(
            model, tokenizer, prompts, items, max_new_tokens, runs, temperature, seed + items[0], until_decided
        )
        for k, i in enumerate(items):
            decisions[i] = [decision_of(a.text) for a in sampled[k * runs : (k + 1) * runs]]
    return decisions


def exact_agreement(
    model: Any, tokenizer: Any, prompts: PromptSet, subset: list[int], runs: int, temperature: float, batch_size: int
) -> dict[int, dict[str, float]]:
    """Per subset item, the exact chance that `runs` sampled verdict-first decisions all agree: p_F^runs + p_L^runs,
    with p the probabilities of answers starting with the words FRAUD / LEGITIMATE at `temperature`. Answers that
    start otherwise (mass 1 - p_F - p_L, kept as `other_mass`) count as disagreeing, so it is a lower bound that is
    exact when the two words carry all the mass."""
    chosen = PromptSet([prompts.ids[i] for i in subset], prompts.prefix_len, prompts.cache)
    probs = label_word_probabilities(model, tokenizer, chosen, temperature, batch_size)
    return {
        i: {"agreement": float(p[0] ** runs + p[1] ** runs), "other_mass": float(max(0.0, 1 - p.sum()))}
        for i, p in zip(subset, probs.double(), strict=True)
    }


def run_regime(
    model: Any,
    tokenizer: Any,
    chats: list[list[dict[str, str]]],
    subset: list[int],
    profile: Profile,
    ecfg: Any,
    seed: int,
    batch_size: int,
    probs: list[float] | None = None,
    exact_consistency: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-transaction records (label, probability; answer and sampled decisions on the subset) and part timings.

    `probs` are used as given when the caller scored already (the fine-tuned model goes through Predictor.score).
    `exact_consistency` (a verdict-first answer: the decision is the first sampled word) computes the chance that
    the samples agree from the label words' probabilities instead of sampling them.
    """
    timings: dict[str, float] = {}
    began = time.perf_counter()
    prompts = encode_prompts(model, tokenizer, chats)
    if probs is None:
        probs = score(model, tokenizer, prompts, batch_size)
    timings["scoring"] = time.perf_counter() - began
    began = time.perf_counter()
    answers = explain(
        model, tokenizer, prompts, subset, profile, ecfg.max_new_tokens, ecfg.latency_n, ecfg.explain_batch_size
    )
    timings["explanations"] = time.perf_counter() - began
    began = time.perf_counter()
    runs, temperature = ecfg.consistency_runs, ecfg.temperature
    if exact_consistency:
        agreement = exact_agreement(model, tokenizer, prompts, subset, runs, temperature, batch_size)
    else:
        decisions = sample_decisions(
            model, tokenizer, prompts, subset, runs, temperature, ecfg.decision_max_new_tokens, seed
        )
    timings["consistency"] = time.perf_counter() - began
    records = []
    for i, p in enumerate(probs):
        record = {"label": "FRAUD" if p >= 0.5 else "LEGITIMATE", "fraud_probability": p}
        record["prompt_tokens"] = len(prompts.ids[i])
        if i in answers:
            record["answer"] = answers[i]
            if exact_consistency:
                record["consistency"] = agreement[i]
            else:
                record["decisions"] = decisions[i]
        records.append(record)
    return records, timings
