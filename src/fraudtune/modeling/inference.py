"""The one inference path: P(FRAUD) at the verdict token, and greedy or sampled generation.

`fraudtune predict`, both LLM regimes of `fraudtune evaluate` (fine-tuned and prompted base model), the
prompt-injection check, the forgetting probes and training's validation scoring all go through these functions,
so every figure about a model comes from the code that serves it.

All prompts of a call usually start with the same tokens (the chat header and system prompt; the prompted
baseline's rulebook and few-shot turns are ~90% of its prompt): that shared prefix is run once and its key/value
cache reused for every batch, as a serving stack with prefix caching would. The numbers equal a full forward
pass per prompt (tests check it); reported token counts are always those of the full prompt.

Verdict first (data.answer_order), scoring is one forward pass per transaction. Evidence first, the model first
writes its red flags and risk score greedily, and the verdict token's probability is read right after them.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from fraudtune.errors import FraudtuneError
from fraudtune.modeling.kvcache import growing_cache
from fraudtune.modeling.tokens import prompt_text

# evidence first: the answer has stated its flags and score once this line is written; the verdict comes next
EVIDENCE_END = re.compile(r"Risk\s*Score\s*:\s*\d+[^\S\n]*\n")
_LEADING = re.compile(r"^\s*(FRAUD|LEGITIMATE)\b", re.IGNORECASE)
_DECISION = re.compile(r"\b(FRAUD|LEGITIMATE)\b")


def decision_of(text: str) -> str | None:
    """The answer's label: its first word in any case (as parse_answer reads it), else its first upper-case
    FRAUD/LEGITIMATE word (a model that writes a preamble before the label)."""
    found = _LEADING.match(text or "") or _DECISION.search(text or "")
    return found.group(1).upper() if found else None


def label_token_ids(tokenizer: Any) -> tuple[int, int]:
    """First token of 'FRAUD' and of 'LEGITIMATE' as the answer's first word; they must differ."""
    fraud = tokenizer("FRAUD", add_special_tokens=False)["input_ids"][0]
    legit = tokenizer("LEGITIMATE", add_special_tokens=False)["input_ids"][0]
    if fraud == legit:
        raise FraudtuneError("tokenizer: FRAUD and LEGITIMATE start with the same token; scoring needs them distinct")
    return fraud, legit


def decoder_and_head(model: Any) -> tuple[Any, Any]:
    """The transformer body and the vocabulary projection, so logits are computed only where needed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


@dataclass
class PromptSet:
    """Full prompt token ids of each chat, and the key/value cache of the prefix they all share."""

    ids: list[list[int]]
    prefix_len: int
    cache: Any = None


def shared_prefix_length(seqs: list[list[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one token of its own."""
    first, n = seqs[0], min(len(s) for s in seqs) - 1
    for seq in seqs[1:]:
        i = 0
        while i < n and seq[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


@torch.no_grad()
def encode_prompts(
    model: Any, tokenizer: Any, chats: list[list[dict[str, str]]], reuse_prefix: bool = True
) -> PromptSet:
    """Tokenise the chats as the model sees them (template up to the assistant header); run their common prefix
    once. `reuse_prefix=False` runs every prompt whole (what `make bench` compares against)."""
    ids = [tokenizer(prompt_text(c, tokenizer), add_special_tokens=False)["input_ids"] for c in chats]
    n = shared_prefix_length(ids) if reuse_prefix and len(ids) > 1 else 0
    cache = None
    if n:
        decoder, _ = decoder_and_head(model)
        prefix = torch.tensor([ids[0][:n]], device=device_of(model))
        cache = decoder(input_ids=prefix, cache=growing_cache(model), use_cache=True).cache
    return PromptSet(ids=ids, prefix_len=n, cache=cache)


def _expanded(model: Any, cache: Any, rows: int) -> Any:
    """A private copy of the prefix cache for a batch of `rows` (a forward pass appends to its cache)."""
    if cache is None:
        return growing_cache(model)
    out = copy.deepcopy(cache)
    if rows > 1:
        out.batch_repeat_interleave(rows)
    return out


@torch.no_grad()
def next_token_logits(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    batch_size: int,
    progress: bool = False,
    suffixes: list[list[int]] | None = None,
) -> torch.Tensor:
    """(n, vocab) next-token logits after each prompt (plus its suffix: token ids an answer already wrote).

    Right padding after the shared prefix; the hidden state at each row's last real token goes through the head.
    """
    decoder, head = decoder_and_head(model)
    device, start = device_of(model), prompts.prefix_len
    own = [seq[start:] for seq in prompts.ids]
    if suffixes is not None:
        own = [o + list(s) for o, s in zip(own, suffixes, strict=True)]
    order = sorted(range(len(own)), key=lambda i: len(own[i]))  # similar lengths together: little padding
    out = torch.empty(len(own), head.weight.shape[0])
    for at in tqdm(range(0, len(order), batch_size), disable=not progress, desc="scoring", unit="batch"):
        idx = order[at : at + batch_size]
        width = max(len(own[i]) for i in idx)
        ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), start + width), dtype=torch.long)
        mask[:, :start] = 1
        for row, i in enumerate(idx):
            ids[row, : len(own[i])] = torch.tensor(own[i])
            mask[row, start : start + len(own[i])] = 1
        hidden = decoder(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            cache=_expanded(model, prompts.cache, len(idx)),
            use_cache=True,
        ).last_hidden_state
        last = torch.tensor([len(own[i]) - 1 for i in idx], device=device)
        out[idx] = head(hidden[torch.arange(len(idx), device=device), last]).float().cpu()
    return out


def fraud_probability(logits: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    """P(FRAUD) from the two label tokens' logits, renormalised."""
    fraud_id, legit_id = label_token_ids(tokenizer)
    return torch.softmax(logits[:, [fraud_id, legit_id]].float(), dim=-1)[:, 0]


@torch.no_grad()
def label_word_probabilities(
    model: Any, tokenizer: Any, prompts: PromptSet, temperature: float, batch_size: int
) -> torch.Tensor:
    """(n, 2): the chance that an answer sampled at `temperature` starts with the whole word FRAUD, LEGITIMATE.

    Each word's tokens are teacher-forced after the prompt: P(word) = prod_k softmax(logits_k / T)[token_k]. For a
    verdict-first answer this is the distribution of the sampled decision itself; 1 - (sum of both) is the mass
    of answers that start with anything else."""
    words = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in ("FRAUD", "LEGITIMATE")]
    n = len(prompts.ids)
    out = torch.ones(n, 2)
    first = torch.softmax(next_token_logits(model, tokenizer, prompts, batch_size) / temperature, dim=-1)
    for j, ids in enumerate(words):
        out[:, j] = first[:, ids[0]]
        for k in range(1, len(ids)):
            logits = next_token_logits(model, tokenizer, prompts, batch_size, suffixes=[ids[:k]] * n)
            out[:, j] *= torch.softmax(logits / temperature, dim=-1)[:, ids[k]]
    return out


@dataclass
class Answer:
    """One generated answer: text, token ids, P(FRAUD) at its first token, and the time it took.

    `first_ms` is the time to the first token's probabilities and `total_ms` to the end, both per row of its
    batch: with batches of one they are per-request latencies.
    """

    text: str
    ids: list[int]
    fraud_probability: float
    first_ms: float
    total_ms: float
    # P(FRAUD) of the token after the answer's last one: for an evidence-first answer stopped after its score
    # line, that token is the verdict, read from the decoding pass itself instead of a second forward pass
    next_fraud_probability: float | None = None

    @property
    def completion_tokens(self) -> int:
        return len(self.ids)


Stop = Callable[[str], bool]


def until_decided(text: str) -> bool:
    """Stop once the text holds a decision (consistency runs only need the label)."""
    return decision_of(text) is not None


def until_evidence(text: str) -> bool:
    """Stop once an evidence-first answer has written its risk-score line (the verdict is next)."""
    return bool(EVIDENCE_END.search(text))


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    indices: list[int],
    max_new_tokens: int,
    rows: int = 1,
    temperature: float | None = None,
    seed: int = 0,
    stop: Stop | None = None,
) -> list[Answer]:
    """Answers for the prompts `indices` in one batch, `rows` per prompt (sampled at `temperature`, else greedy).

    Every row reuses the shared prefix cache; the rows' own tokens are left-padded right after the prefix (masked
    out, positions counted without the padding), so each row's answer is the one it gets alone. A prompt with
    several rows is run once and its cache copied. A row ends at end of turn, when `stop(text)` says so, or at
    `max_new_tokens`. Returned in order: the rows of indices[0], then of indices[1], ...
    """
    began = time.perf_counter()
    device, start = device_of(model), prompts.prefix_len
    own = [prompts.ids[i][start:] for i in indices]
    n, width = len(own), max(len(s) for s in own)
    ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, start + width), dtype=torch.long)
    mask[:, :start] = 1
    positions = torch.empty((n, width), dtype=torch.long)
    for row, seq in enumerate(own):
        pad = width - len(seq)
        ids[row, pad:] = torch.tensor(seq)
        mask[row, start + pad :] = 1
        positions[row] = start + (torch.arange(width) - pad).clamp(min=0)
    mask, positions = mask.to(device), positions.to(device)
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask,
        position_ids=positions,
        cache=_expanded(model, prompts.cache, n),
        use_cache=True,
        logits_to_keep=1,
    )
    logits, cache = out.logits[:, -1].float(), out.cache
    probs = fraud_probability(logits, tokenizer).tolist()
    if rows > 1:
        cache.batch_repeat_interleave(rows)
        logits, mask = logits.repeat_interleave(rows, 0), mask.repeat_interleave(rows, 0)
        positions, probs = positions.repeat_interleave(rows, 0), [p for p in probs for _ in range(rows)]
    first_ms = (time.perf_counter() - began) * 1000 / len(probs)
    tokens, after = _continue(
        model, tokenizer, logits, cache, mask, positions[:, -1] + 1, max_new_tokens, temperature, seed, stop
    )
    total_ms = (time.perf_counter() - began) * 1000 / len(probs)
    nexts = fraud_probability(after, tokenizer).tolist()
    return [
        Answer(tokenizer.decode(t, skip_special_tokens=True).strip(), t, p, first_ms, total_ms, q)
        for t, p, q in zip(tokens, probs, nexts, strict=True)
    ]


def _continue(
    model: Any,
    tokenizer: Any,
    logits: torch.Tensor,
    cache: Any,
    mask: torch.Tensor,
    next_position: torch.Tensor,
    max_new_tokens: int,
    temperature: float | None,
    seed: int,
    stop: Stop | None,
) -> tuple[list[list[int]], torch.Tensor]:
    """The decoding loop: one token per row per step until every row ends (end of turn, stop, or limit).

    Each step extends the attention mask and gives every row its own position, so a padded row continues exactly
    as it would alone. A row that has ended leaves the batch (its cache, mask and position rows are dropped): the
    rest of the batch no longer pays for it. Returns the tokens and, per row, the logits of the token after its
    last one (a row that `stop` ended gets one more step for them: its last token is fed with the others still
    decoding).
    """
    generator = torch.Generator(device=logits.device).manual_seed(seed)
    tokens: list[list[int]] = [[] for _ in range(logits.shape[0])]
    after: list[torch.Tensor | None] = [None] * len(tokens)
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    live = list(range(len(tokens)))  # the original row of each row of the current batch
    pending: list[int] = []  # batch rows stopped by `stop` that wait for the logits after their last token
    for _ in range(max_new_tokens):
        for row in pending:
            after[live[row]] = logits[row]
        if temperature:
            nxt = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)[:, 0]
        else:
            nxt = logits.argmax(-1)
        keep, pending = [], []
        for row, token in enumerate(nxt.tolist()):
            original = live[row]
            if after[original] is not None:  # stopped last step: its logits are taken, it leaves now
                continue
            if token in ends:
                after[original] = logits[row]
                continue
            tokens[original].append(token)
            keep.append(row)
            if stop is not None and stop(tokenizer.decode(tokens[original], skip_special_tokens=True)):
                pending.append(len(keep) - 1)
        if not keep:
            break
        if len(keep) < len(live):
            index = torch.tensor(keep, device=logits.device)
            cache.batch_select_indices(index)
            mask, next_position, nxt = mask[index], next_position[index], nxt[index]
            live = [live[row] for row in keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=next_position[:, None],
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        next_position = next_position + 1
        logits, cache = out.logits[:, -1].float(), out.cache
    for row in pending:
        after[live[row]] = logits[row]
    for row, original in enumerate(live):  # rows cut by the token limit: the logits after their last token
        if after[original] is None:
            after[original] = logits[row]
    return tokens, torch.stack(after)  # type: ignore[arg-type]  (every row has its logits by now)


def generate_all(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    max_new_tokens: int,
    batch_size: int = 8,
    temperature: float | None = None,
    seed: int = 0,
    stop: Stop | None = None,
    indices: list[int] | None = None,
    progress: bool = False,
) -> list[Answer]:
    """One answer per prompt (or per index of `indices`, in that order), `batch_size` prompts at a time, prompts
    of similar length batched together."""
    indices = list(range(len(prompts.ids))) if indices is None else indices
    order = sorted(range(len(indices)), key=lambda k: len(prompts.ids[indices[k]]))
    answers: list[Answer | None] = [None] * len(indices)
    for at in tqdm(range(0, len(order), batch_size), disable=not progress, desc="generating", unit="batch"):
        batch = order[at : at + batch_size]
        got = generate(
            model, tokenizer, prompts, [indices[k] for k in batch], max_new_tokens, 1, temperature, seed + at, stop
        )
        for k, answer in zip(batch, got, strict=True):
            answers[k] = answer
    return [a for a in answers if a is not None]


def verdict_scores(
    model: Any,
    tokenizer: Any,
    prompts: PromptSet,
    batch_size: int,
    progress: bool = False,
    answer_order: str = "verdict_first",
    max_evidence_tokens: int = 192,
    evidence_batch_size: int = 64,
) -> tuple[list[float], list[Answer] | None]:
    """P(FRAUD) per prompt from the verdict token, and the evidence an evidence-first answer wrote before it.

    Evidence first, the flags and the risk-score line with its newline are generated greedily (generation stops
    there, so the next token is the verdict; an answer that never writes the score line within the token limit
    is read where it stopped), and the verdict's logits are those the decoding loop computes after them: no
    second pass over prompt and evidence. The evidence is written `evidence_batch_size` rows at a time (at least
    `batch_size`): a decoding step reads every weight once for the whole batch, so on a CPU a step of 64 rows
    costs per row a fraction of one at 16 (`make bench` prints the ratio).
    """
    if answer_order == "evidence_first":
        rows = max(batch_size, evidence_batch_size)
        evidence = generate_all(
            model, tokenizer, prompts, max_evidence_tokens, rows, stop=until_evidence, progress=progress
        )
        return [e.next_fraud_probability for e in evidence], evidence
    logits = next_token_logits(model, tokenizer, prompts, batch_size, progress)
    return fraud_probability(logits, tokenizer).tolist(), None


def fraud_probabilities(
    model: Any,
    tokenizer: Any,
    chats: list[list[dict[str, str]]],
    batch_size: int = 16,
    progress: bool = False,
    reuse_prefix: bool = True,
    answer_order: str = "verdict_first",
    max_evidence_tokens: int = 192,
) -> tuple[list[float], list[int]]:
    """P(FRAUD) per chat from the verdict token, and each chat's prompt token count."""
    prompts = encode_prompts(model, tokenizer, chats, reuse_prefix)
    probs, _ = verdict_scores(model, tokenizer, prompts, batch_size, progress, answer_order, max_evidence_tokens)
    return probs, [len(ids) for ids in prompts.ids]


def generate_answers(
    model: Any,
    tokenizer: Any,
    chats: list[list[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int = 8,
    temperature: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[Answer]:
    """One answer per chat (greedy, or sampled at a temperature), batched, with the shared prefix reused."""
    prompts = encode_prompts(model, tokenizer, chats)
    return generate_all(model, tokenizer, prompts, max_new_tokens, batch_size, temperature, seed, progress=progress)
