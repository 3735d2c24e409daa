"""An LLM regime on the test set: label probabilities, greedy explanations and sampled decisions.

All prompts of a regime start with the same tokens (the prompted base model's rulebook and few-shot turns are
~90% of its prompt), so that shared prefix is run once and its key/value cache reused for every transaction,
as a serving stack with prefix caching would. The numbers equal a full forward pass (tests check it); the
token counts reported are always those of the full prompt.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from fraudtune.data.chat import parse_answer
from fraudtune.kvcache import growing_cache
from fraudtune.predict import decoder_and_head, label_token_ids
from fraudtune.profile import Profile
from fraudtune.tokens import prompt_text

log = logging.getLogger(__name__)
_LEADING = re.compile(r"^\s*(FRAUD|LEGITIMATE)\b", re.IGNORECASE)
_DECISION = re.compile(r"\b(FRAUD|LEGITIMATE)\b")


def decision_of(text: str) -> str | None:
    """The answer's label: its first word in any case (as parse_answer reads it), else its first upper-case
    FRAUD/LEGITIMATE word (a model that writes a preamble before the label)."""
    found = _LEADING.match(text or "") or _DECISION.search(text or "")
    return found.group(1).upper() if found else None


@dataclass
class PromptSet:
    """Full prompt token ids of each chat, and the key/value cache of the prefix they all share."""

    ids: list[list[int]]
    prefix_len: int
    cache: Any = None


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Length of the shared token prefix, leaving every sequence at least one token of its own."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for seq in seqs[1:]:
        i = 0
        while i < n and seq[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


@torch.no_grad()
def encode_prompts(model: Any, tokenizer: Any, chats: list[list[dict[str, str]]]) -> PromptSet:
    """Tokenise the chats as the model sees them and run their common prefix once."""
    ids = [tokenizer(prompt_text(c, tokenizer), add_special_tokens=False)["input_ids"] for c in chats]
    n = common_prefix_len(ids)
    cache = None
    if n:
        decoder, _ = decoder_and_head(model)
        prefix = torch.tensor([ids[0][:n]], device=_device(model))
        cache = decoder(input_ids=prefix, cache=growing_cache(model), use_cache=True).cache
    return PromptSet(ids=ids, prefix_len=n, cache=cache)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _expanded(model: Any, cache: Any, rows: int) -> Any:
    """A private copy of the prefix cache for a batch of `rows` (a forward pass appends to its cache)."""
    if cache is None:
        return growing_cache(model)
    out = copy.deepcopy(cache)
    if rows > 1:
        out.batch_repeat_interleave(rows)
    return out


def _fraud_probability(logits: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    fraud_id, legit_id = label_token_ids(tokenizer)
    return torch.softmax(logits[:, [fraud_id, legit_id]].float(), dim=-1)[:, 0]


@torch.no_grad()
def score(model: Any, tokenizer: Any, prompts: PromptSet, batch_size: int, progress: bool = True) -> list[float]:
    """P(FRAUD) per prompt from one batched forward pass over each prompt's own tokens (right padding)."""
    decoder, head = decoder_and_head(model)
    device, start = _device(model), prompts.prefix_len
    suffixes = [seq[start:] for seq in prompts.ids]
    order = sorted(range(len(suffixes)), key=lambda i: len(suffixes[i]))
    probs = [0.0] * len(suffixes)
    for at in tqdm(range(0, len(order), batch_size), disable=not progress, desc="scoring", unit="batch"):
        idx = order[at : at + batch_size]
        width = max(len(suffixes[i]) for i in idx)
        ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), start + width), dtype=torch.long)
        mask[:, :start] = 1
        for row, i in enumerate(idx):
            ids[row, : len(suffixes[i])] = torch.tensor(suffixes[i])
            mask[row, start : start + len(suffixes[i])] = 1
        hidden = decoder(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            cache=_expanded(model, prompts.cache, len(idx)),
            use_cache=True,
        ).last_hidden_state
        lengths = torch.tensor([len(suffixes[i]) for i in idx], device=device)
        last = hidden[torch.arange(len(idx), device=device), lengths - 1]
        for i, p in zip(idx, _fraud_probability(head(last), tokenizer).tolist(), strict=True):
            probs[i] = p
    return probs


@dataclass
class Decoded:
    """Answers generated for one prompt, with the label probability and the time to it and to the end."""

    texts: list[str]
    completion_tokens: list[int]
    fraud_probability: float
    score_ms: float
    total_ms: float
    tokens: list[list[int]]


@dataclass
class Answer:
    """One greedy answer of a batch: its text, token ids and the label probability before it."""

    text: str
    tokens: list[int]
    fraud_probability: float


@torch.no_grad()
def decode(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    index: int,
    rows: int,
    max_new_tokens: int,
    temperature: float | None = None,
    seed: int = 0,
    until_decided: bool = False,
) -> Decoded:
    """Greedy (or sampled: `rows` answers at `temperature`) continuation of one prompt, with the KV cache.

    `until_decided` stops a row as soon as its text holds a decision (consistency only needs the label).
    """
    began = time.perf_counter()
    suffix = torch.tensor([prompts.ids[index][prompts.prefix_len :]], device=_device(model))
    out = model(input_ids=suffix, cache=_expanded(model, prompts.cache, 1), use_cache=True, logits_to_keep=1)
    logits, cache = out.logits[:, -1].float(), out.cache
    fraud_probability = float(_fraud_probability(logits, tokenizer)[0])
    score_ms = (time.perf_counter() - began) * 1000
    if rows > 1:
        cache.batch_repeat_interleave(rows)
        logits = logits.expand(rows, -1)
    tokens = _continue(model, tokenizer, logits, cache, max_new_tokens, temperature, seed, until_decided)
    texts = [tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]
    total_ms = (time.perf_counter() - began) * 1000
    return Decoded(texts, [len(t) for t in tokens], fraud_probability, score_ms, total_ms, tokens)


def _continue(
    model: Any,
    tokenizer: Any,
    logits: torch.Tensor,
    cache: Any,
    max_new_tokens: int,
    temperature: float | None,
    seed: int,
    until_decided: bool,
    mask: torch.Tensor | None = None,
    next_position: torch.Tensor | None = None,
) -> list[list[int]]:
    """The decoding loop: one token per row per step until every row ends (end of turn, decision, or limit).

    `mask` and `next_position` come with padded rows (decode_batch): each step extends the attention mask and
    gives every row its own position, so a padded row continues exactly as it would alone.
    """
    generator = torch.Generator(device=logits.device).manual_seed(seed)
    tokens: list[list[int]] = [[] for _ in range(logits.shape[0])]
    finished = [False] * len(tokens)
    for _ in range(max_new_tokens):
        if temperature:
            nxt = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)[:, 0]
        else:
            nxt = logits.argmax(-1)
        for row, token in enumerate(nxt.tolist()):
            if finished[row]:
                continue
            if token == tokenizer.eos_token_id:
                finished[row] = True
                continue
            tokens[row].append(token)
            if until_decided and decision_of(tokenizer.decode(tokens[row], skip_special_tokens=True)):
                finished[row] = True
        if all(finished):
            break
        padded: dict[str, torch.Tensor] = {}
        if mask is not None and next_position is not None:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            padded = {"attention_mask": mask, "position_ids": next_position[:, None]}
            next_position = next_position + 1
        out = model(input_ids=nxt[:, None], cache=cache, use_cache=True, logits_to_keep=1, **padded)
        logits, cache = out.logits[:, -1].float(), out.cache
    return tokens


@torch.no_grad()
def decode_batch(
    model: Any, tokenizer: Any, prompts: PromptSet, indices: list[int], max_new_tokens: int
) -> list[Answer]:
    """Greedy answers of several prompts in one batch, one Answer per index, in order.

    Every row reuses the shared prefix cache; the rows' own tokens are left-padded right after the prefix
    (masked out, positions counted without the padding), so each row's answer is the one decode() gives it alone.
    """
    device, start = _device(model), prompts.prefix_len
    suffixes = [prompts.ids[i][start:] for i in indices]
    rows, width = len(suffixes), max(len(s) for s in suffixes)
    ids = torch.full((rows, width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((rows, start + width), dtype=torch.long)
    mask[:, :start] = 1
    positions = torch.empty((rows, width), dtype=torch.long)
    for row, suffix in enumerate(suffixes):
        pad = width - len(suffix)
        ids[row, pad:] = torch.tensor(suffix)
        mask[row, start + pad :] = 1
        positions[row] = start + (torch.arange(width) - pad).clamp(min=0)
    mask, positions = mask.to(device), positions.to(device)
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask,
        position_ids=positions,
        cache=_expanded(model, prompts.cache, rows),
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[:, -1].float()
    probs = _fraud_probability(logits, tokenizer).tolist()
    tokens = _continue(
        model,
        tokenizer,
        logits,
        out.cache,
        max_new_tokens,
        None,
        0,
        False,
        mask=mask,
        next_position=positions[:, -1] + 1,
    )
    return [
        Answer(tokenizer.decode(t, skip_special_tokens=True).strip(), t, p) for t, p in zip(tokens, probs, strict=True)
    ]


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
        d = decode(model, tokenizer, prompts, i, 1, max_new_tokens)
        answers[i] = answer_record(d.texts[0], d.completion_tokens[0], profile, d.score_ms, d.total_ms)
    rest = sorted(subset[len(timed) :], key=lambda i: len(prompts.ids[i]))  # similar lengths pad less
    for at in tqdm(range(0, len(rest), batch_size), desc="explaining (batched)", unit="batch", disable=not rest):
        batch = rest[at : at + batch_size]
        for i, answer in zip(batch, decode_batch(model, tokenizer, prompts, batch, max_new_tokens), strict=True):
            answers[i] = answer_record(answer.text, len(answer.tokens), profile, None, None)
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


def sample_decisions(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    subset: list[int],
    runs: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
) -> dict[int, list[str | None]]:
    """`runs` sampled answers per subset item, read only up to the decision; seeded per item."""
    decisions = {}
    for i in tqdm(subset, desc="consistency", unit="txn"):
        d = decode(model, tokenizer, prompts, i, runs, max_new_tokens, temperature, seed + i, until_decided=True)
        decisions[i] = [decision_of(t) for t in d.texts]
    return decisions


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
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-transaction records (label, probability; answer and sampled decisions on the subset) and part timings.

    `probs` are used as given when the caller scored already (the fine-tuned model goes through Predictor.score).
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
    decisions = sample_decisions(
        model, tokenizer, prompts, subset, ecfg.consistency_runs, ecfg.temperature, ecfg.decision_max_new_tokens, seed
    )
    timings["consistency"] = time.perf_counter() - began
    records = []
    for i, p in enumerate(probs):
        record = {"label": "FRAUD" if p >= 0.5 else "LEGITIMATE", "fraud_probability": p}
        record["prompt_tokens"] = len(prompts.ids[i])
        if i in answers:
            record["answer"], record["decisions"] = answers[i], decisions[i]
        records.append(record)
    return records, timings
